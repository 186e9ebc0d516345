//! Parsers and merge rules on real Ray 2.60 event files (`fixtures/ray-2.60-session`):
//! export events, HTTP RayEvents (camelCase and snake_case) and cluster events. Shuffled and
//! re-split input gives the identical state.

use std::path::PathBuf;

use ray_history_server::events::FileKind;
use ray_history_server::loader::parse_files;
use ray_history_server::model::{ActorState, JobStatus, NodeState, Session, TaskState, TaskType};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ray-2.60-session")
}

/// Every event file of a fixture session dir, with its kind.
fn session_files(name_suffix: &str) -> Vec<(FileKind, Vec<u8>)> {
    let dir = std::fs::read_dir(fixtures())
        .expect("fixtures/ray-2.60-session must exist in the repository")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(name_suffix))
        .expect("fixture session")
        .path();
    let mut files = Vec::new();
    for sub in ["export_events", "events"] {
        for entry in std::fs::read_dir(dir.join("logs").join(sub))
            .unwrap()
            .flatten()
        {
            let relative = format!("{sub}/{}", entry.file_name().to_string_lossy());
            if let Some(kind) = FileKind::of_log_path(&relative) {
                files.push((kind, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    files
}

/// JSON Lines of RayEvents as the collector stores them: one POST body (array) per line.
fn http_posts(file: &str) -> Vec<u8> {
    let text =
        std::fs::read_to_string(fixtures().join("http-aggregator-posts").join(file)).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        out.extend_from_slice(record["body"].as_str().unwrap().as_bytes());
        out.push(b'\n');
    }
    out
}

fn parse(files: &[(FileKind, Vec<u8>)]) -> Session {
    parse_files(
        files
            .iter()
            .map(|(k, d)| (*k, d.as_slice()))
            .collect::<Vec<_>>(),
    )
}

fn task<'a>(s: &'a Session, name: &str) -> Vec<&'a ray_history_server::model::Task> {
    let rows = s
        .tasks
        .memory_rows()
        .expect("parsed sessions hold their rows");
    rows.iter().filter(|t| &*t.def.name == name).collect()
}

fn assert_same(a: &Session, b: &Session) {
    assert_eq!(a.tasks.all().unwrap(), b.tasks.all().unwrap());
    assert_eq!(a.actors, b.actors);
    assert_eq!(a.driver_jobs, b.driver_jobs);
    assert_eq!(a.submission_jobs, b.submission_jobs);
    assert_eq!(a.nodes, b.nodes);
    assert_eq!(a.events, b.events);
}

/// Splits all lines of `files` into `parts` files of the same kind, in a shuffled order.
fn reshuffle(files: &[(FileKind, Vec<u8>)], seed: u64, parts: usize) -> Vec<(FileKind, Vec<u8>)> {
    let mut lines: Vec<(FileKind, Vec<u8>)> = files
        .iter()
        .flat_map(|(k, d)| {
            d.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| (*k, l.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    // xorshift: deterministic, no extra dependency.
    let mut x = seed | 1;
    for i in (1..lines.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lines.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut out: Vec<(FileKind, Vec<u8>)> = Vec::new();
    for (i, (kind, line)) in lines.into_iter().enumerate() {
        let slot = i % parts;
        match out.iter_mut().filter(|(k, _)| *k == kind).nth(slot) {
            Some((_, data)) => {
                data.extend_from_slice(&line);
                data.push(b'\n');
            }
            None => out.push((kind, [line, b"\n".to_vec()].concat())),
        }
    }
    out
}

#[test]
fn export_events_give_tasks_actors_jobs_nodes() {
    let files = session_files("_export_api_on");
    let s = parse(&files);
    assert_eq!(s.stats.corrupt_lines, 0);
    let squares = task(&s, "square");
    assert_eq!(squares.len(), 4);
    assert!(squares.iter().all(|t| t.state == TaskState::Finished));
    assert!(squares.iter().all(|t| t.ts(TaskState::Running).is_some()));
    let boom = task(&s, "boom");
    assert_eq!(boom.len(), 1);
    assert_eq!(boom[0].state, TaskState::Failed);
    let error = boom[0].error.as_ref().unwrap();
    assert_eq!(&*error.error_type, "TASK_EXECUTION_EXCEPTION");
    assert!(error.message.contains("intentional failure from boom()"));
    assert_eq!(
        boom[0].task_id.hex(),
        "e0dc174c83599034ffffffffffffffffffffffff01000000"
    );
    assert_eq!(
        task(&s, "probe_counter:Counter.__init__")[0].def.task_type,
        Some(TaskType::ActorCreation)
    );
    assert_eq!(task(&s, "Counter.fail")[0].state, TaskState::Failed);
    let counter = s
        .actors
        .iter()
        .find(|a| &*a.def.name == "probe_counter")
        .unwrap();
    assert_eq!(counter.current().unwrap().state, ActorState::Dead);
    assert!(counter.current().unwrap().exit_detail.contains("ray.kill"));
    assert_eq!(counter.actor_id.hex(), "cd572ec7ee101a647e31848501000000");
    let a = s
        .submission_jobs
        .iter()
        .find(|j| &*j.submission_id == "probe-job-A")
        .unwrap();
    assert_eq!(a.status, Some(JobStatus::Succeeded));
    let fail = s
        .submission_jobs
        .iter()
        .find(|j| &*j.submission_id == "probe-job-A-fail")
        .unwrap();
    assert_eq!(fail.status, Some(JobStatus::Failed));
    assert_eq!(fail.driver_exit_code, Some(3));
    let driver = s
        .driver_jobs
        .iter()
        .find(|j| j.job_id.unwrap().hex() == "01000000")
        .unwrap();
    assert!(driver.is_dead);
    assert!(driver.end_ms > driver.start_ms);
    assert_eq!(s.nodes.len(), 1);
    assert_eq!(s.nodes[0].state, NodeState::Dead);
    assert!(s.nodes[0].is_head);
    assert_eq!(&*s.nodes[0].death_reason, "EXPECTED_TERMINATION");
    assert_eq!(s.events.len(), 4);
    assert_eq!(
        s.events[0].json["custom_fields"]["submission_id"],
        "probe-job-A"
    );
}

#[test]
fn http_events_camel_and_snake_case() {
    for (file, expected_tasks) in [
        ("posts_run_B.jsonl", 16),
        ("posts_run_C_snake_case.jsonl", 12),
    ] {
        let data = http_posts(file);
        let s = parse(&[(FileKind::RayEvents, data)]);
        assert_eq!(s.stats.corrupt_lines, 0, "{file}");
        assert_eq!(s.tasks.len(), expected_tasks, "{file}");
        let squares = task(&s, "square");
        assert_eq!(squares.len(), 4, "{file}");
        assert!(
            squares.iter().all(|t| t.state == TaskState::Finished),
            "{file}"
        );
        let boom = task(&s, "boom");
        assert_eq!(boom[0].state, TaskState::Failed, "{file}");
        assert_eq!(
            &*boom[0].error.as_ref().unwrap().error_type,
            "TASK_EXECUTION_EXCEPTION"
        );
        let creation = task(&s, "probe_counter:Counter.__init__");
        assert_eq!(
            creation[0].def.func_or_class_name.as_ref(),
            "Counter.__init__",
            "{file}"
        );
        assert!(creation[0].def.actor_id.is_some(), "{file}");
        let counter = s
            .actors
            .iter()
            .find(|a| &*a.def.name == "probe_counter")
            .unwrap();
        assert_eq!(counter.current().unwrap().state, ActorState::Dead, "{file}");
        assert!(counter.placement().unwrap().pid > 0, "{file}");
        assert!(
            s.driver_jobs
                .iter()
                .any(|j| j.job_id.unwrap().hex() == "01000000" && j.is_dead),
            "{file}"
        );
        assert_eq!(s.nodes.len(), 1, "{file}");
        assert!(!s.nodes[0].resources_total.is_empty(), "{file}");
    }
    let b = parse(&[(FileKind::RayEvents, http_posts("posts_run_B.jsonl"))]);
    let square = task(&b, "square")[0];
    assert!(square.profile.as_ref().is_some_and(|p| p.events.len() == 4));
    let submitted = b
        .driver_jobs
        .iter()
        .find(|j| &*j.submission_id == "probe-job-B")
        .unwrap();
    assert_eq!(submitted.job_id.unwrap().hex(), "03000000");
}

#[test]
fn shuffled_and_resplit_input_gives_the_same_state() {
    let export = session_files("_export_api_on");
    let http = vec![(FileKind::RayEvents, http_posts("posts_run_B.jsonl"))];
    for files in [export, http] {
        let reference = parse(&files);
        for (seed, parts) in [(1, 1), (7, 3), (42, 5), (1234567, 11)] {
            assert_same(&reference, &parse(&reshuffle(&files, seed, parts)));
        }
    }
}

#[test]
fn corrupt_and_unknown_lines_are_counted_and_skipped() {
    let mut files = session_files("_export_api_on");
    let reference = parse(&files);
    files.push((
        FileKind::Export,
        b"{not json\n\n{\"source_type\":\"EXPORT_TASK\",\"event_data\":{}}\n".to_vec(),
    ));
    files.push((
        FileKind::Export,
        b"{\"source_type\":\"EXPORT_FUTURE\",\"timestamp\":1,\"event_data\":{}}\n".to_vec(),
    ));
    files.push((
        FileKind::RayEvents,
        b"[{\"eventType\":\"TASK_LIFECYCLE_EVENT\"}, 3]\n\xff\xfe\n".to_vec(),
    ));
    let s = parse(&files);
    assert_eq!(s.stats.corrupt_lines, 4);
    assert_eq!(s.stats.unknown_events, 1);
    assert_eq!(s.tasks.all().unwrap(), reference.tasks.all().unwrap());
}
