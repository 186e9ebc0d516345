//! Property tests: the event parsers never panic on arbitrary or mangled input, and the log
//! helpers (name checks, tails, ranges) keep their guarantees on any input.

use proptest::prelude::*;
use ray_history_server::events::{FileKind, parse_to_builder};
use ray_history_server::log_reader::{RangeRequest, check_relative, parse_range, tail_start};
use ray_history_storage::layout::{ClusterRef, NodeId, SessionName};

const SAMPLES: &[&str] = &[
    r#"{"event_data":{"attempt_number":0,"job_id":"AQAAAA==","state_updates":{"node_id":"seQ/dkvK4DMXQ0FWVFr2pjbviiBKTnmbPKlTog==","state_ts_ns":{"1":"1795235131315575454","11":"1795235131460664629"},"worker_id":"suaBCpr5bOKEck2fe9x14iXufNfaeSw94wP+Pg=="},"task_id":"yO9FzNARJXH///////////////8BAAAA","task_info":{"func_or_class_name":"square","language":"PYTHON","parent_task_id":"//////////////////////////8BAAAA","required_resources":{"CPU":1},"type":"NORMAL_TASK"}},"event_id":"f0","source_type":"EXPORT_TASK","timestamp":1795235131}"#,
    r#"{"event_data":{"actor_id":"zVcux+4QGmR+MYSFAQAAAA==","class_name":"Counter","death_cause":{"actor_died_error_context":{"error_message":"killed"}},"job_id":"AQAAAA==","name":"probe_counter","node_id":"seQ/dkvK4DMXQ0FWVFr2pjbviiBKTnmbPKlTog==","pid":16146,"state":"DEAD"},"event_id":"22","source_type":"EXPORT_ACTOR","timestamp":1795235132}"#,
    r#"{"event_id": "c2", "timestamp": 1795235135, "source_type": "EXPORT_SUBMISSION_JOB", "event_data": {"submission_job_id": "probe-job-A", "status": "FAILED", "start_time": "1795235135675", "driver_exit_code": 3}}"#,
    r#"[{"eventType": "TASK_LIFECYCLE_EVENT", "timestamp": "2026-11-21T04:27:10.901309850Z", "taskLifecycleEvent": {"taskId": "4NwXTINZkDT///////////////8BAAAA", "stateTransitions": [{"state": "FAILED", "timestamp": "2026-11-21T04:27:10.901309850Z"}], "rayErrorInfo": {"errorMessage": "x", "errorType": "TASK_EXECUTION_EXCEPTION"}, "taskAttempt": 0}}]"#,
    r#"{"event_type": "ACTOR_LIFECYCLE_EVENT", "timestamp": "2026-11-21T04:28:11.484699999Z", "actor_lifecycle_event": {"actor_id": "pDwkQ5mlh2i4wkS4AQAAAA==", "state_transitions": [{"timestamp": "2026-11-21T04:28:11.484700600Z", "state": "ALIVE", "pid": 3}]}}"#,
    r#"{"event_id": "e0", "source_type": "JOBS", "message": "Started a ray job probe-job-A.", "timestamp": "1795235135", "custom_fields": {"submission_id": "probe-job-A"}}"#,
];

fn all_kinds() -> [FileKind; 3] {
    [FileKind::Export, FileKind::RayEvents, FileKind::Cluster]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsers_survive_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for kind in all_kinds() {
            let _ = parse_to_builder(kind, &data).finish();
        }
    }

    #[test]
    fn parsers_survive_mangled_real_lines(
        sample in 0..SAMPLES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut line = SAMPLES[sample].as_bytes().to_vec();
        for (at, byte) in edits {
            let i = at.index(line.len());
            line[i] = byte;
        }
        let keep = cut.index(line.len() + 1);
        line.truncate(keep.max(line.len() / 2));
        for kind in all_kinds() {
            let builder = parse_to_builder(kind, &line);
            let lines = builder.stats.lines;
            let session = builder.finish();
            prop_assert!(session.stats.corrupt_lines <= lines);
        }
    }

    #[test]
    fn accepted_log_names_stay_inside_the_node_dir(name in "[a-zA-Z0-9._/\\\\-]{0,40}|.{0,20}") {
        if check_relative(&name).is_ok() {
            prop_assert!(!name.starts_with('/'));
            prop_assert!(!name.contains('\\'));
            prop_assert!(name.split('/').all(|p| !p.is_empty() && p != "." && p != ".."));
            let cluster = ClusterRef::new("c", "local").unwrap();
            let session = SessionName::new("session_x").unwrap();
            let node = NodeId::new(&"ab".repeat(28)).unwrap();
            let key = cluster.log_file(&session, &node, &name).unwrap();
            let prefix = cluster.node_logs_prefix(&session, &node);
            let inside = format!("{}/", prefix.as_ref());
            prop_assert!(key.as_ref().starts_with(&inside));
        }
    }

    #[test]
    fn tail_start_returns_the_last_n_lines(data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a')], 0..200), n in 1usize..20) {
        let start = tail_start(&data, n);
        prop_assert!(start <= data.len());
        prop_assert!(start == 0 || data[start - 1] == b'\n');
        let newlines = |d: &[u8]| {
            let body = d.strip_suffix(b"\n").unwrap_or(d);
            body.iter().filter(|b| **b == b'\n').count()
        };
        if start > 0 {
            prop_assert_eq!(newlines(&data[start..]), n - 1);
        } else {
            prop_assert!(newlines(&data) < n);
        }
    }

    #[test]
    fn ranges_stay_inside_the_object(header in ".{0,30}", size in 0u64..10_000) {
        if let RangeRequest::Bytes(range) = parse_range(header.as_bytes(), size) {
            prop_assert!(range.start < range.end && range.end <= size);
        }
    }
}
