//! End to end with a real Ray 2.60 head and real Azurite: run a workload (tasks, a failing
//! task, a named actor with a failing method, a submitted job that succeeds and one that
//! fails), record the live dashboard's answers, stop Ray, upload the session dir in the
//! storage layout, start the history server on it and compare: same ids, states, names,
//! error types and timestamps. Once with export-event files, once with HTTP RayEvents
//! (received by a small receiver here and stored under `node_events/`, as the collector does).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, NodeId, SessionName};
use ray_history_testkit::cli::{cli_text, ray_cli, ray_list};
use ray_history_testkit::{Azurite, RayHead, RayHeadOptions};
use serde_json::Value;

const DRIVER: &str = r#"
import ray, time
ray.init()

@ray.remote
def square(x):
    print(f"square {x}", flush=True)
    return x * x

@ray.remote
def boom():
    raise ValueError("intentional failure from boom()")

@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def incr(self):
        self.n += 1
        return self.n
    def fail(self):
        raise RuntimeError("intentional actor method failure")

print(ray.get([square.remote(i) for i in range(4)]))
try:
    ray.get(boom.remote())
except Exception as e:
    print("boom failed", type(e))
c = Counter.options(name="probe_counter").remote()
print(ray.get([c.incr.remote() for _ in range(2)]))
try:
    ray.get(c.fail.remote())
except Exception as e:
    print("fail failed", type(e))
ray.kill(c)
time.sleep(1)
"#;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    ExportFiles,
    HttpEvents,
}

/// Receives Ray's event POSTs (a JSON array per request) and keeps them as JSON Lines.
async fn start_receiver(lines: Arc<Mutex<Vec<u8>>>) -> u16 {
    async fn receive(State(lines): State<Arc<Mutex<Vec<u8>>>>, body: Bytes) -> &'static str {
        let mut lines = lines.lock().unwrap();
        lines.extend_from_slice(&body);
        lines.push(b'\n');
        "ok"
    }
    let app = Router::new()
        .route("/v1/events", post(receive))
        .with_state(lines);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn live_json(base: &str, path: &str) -> Value {
    let text = live_text(base, path);
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn live_text(base: &str, path: &str) -> String {
    let url = format!("{base}/{path}");
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "30", &url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the live dashboard shows every task of the workload in a final state.
fn wait_for_tasks(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = live_json(base, "api/v0/tasks?limit=1000");
        let rows = tasks["data"]["result"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let done = rows
            .iter()
            .filter(|t| t["state"] == "FINISHED" || t["state"] == "FAILED")
            .count();
        // 4 squares, boom, the actor's creation, 2 incr, fail; plus the jobs' tasks.
        if done >= 9 && done == rows.len() {
            return;
        }
        assert!(Instant::now() < deadline, "tasks did not finish: {tasks}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Live {
    cli: [Vec<Value>; 4],
    cli_jobs: [String; 6],
    tasks: Value,
    actors: Value,
    jobs: Value,
    nodes: Value,
    events: Value,
    timeline: Value,
    summaries: [Value; 2],
    logs: Value,
    job_log: String,
    task_log: String,
    square_id: String,
    node: String,
}

/// What `ray list <what>` prints, each row keyed by `id` and cut to the columns compared.
const CLI_LISTS: [(&str, &str, &[&str]); 4] = [
    (
        "actors",
        "actor_id",
        &["class_name", "name", "job_id", "state"],
    ),
    ("nodes", "node_id", &["node_ip", "is_head_node"]),
    (
        "jobs",
        "submission_id",
        &["job_id", "type", "status", "entrypoint"],
    ),
    (
        "tasks",
        "task_id",
        &[
            "attempt_number",
            "name",
            "state",
            "type",
            "func_or_class_name",
            "job_id",
            "parent_task_id",
            "error_type",
        ],
    ),
];

/// `ray job …` commands compared as text (what Ray's CLI prints on stdout).
const CLI_JOB_COMMANDS: [&[&str]; 6] = [
    &["job", "logs", "e2e-ok"],
    &["job", "logs", "--follow", "e2e-ok"],
    &["job", "logs", "e2e-fail"],
    &["job", "status", "e2e-fail"],
    &["summary", "tasks"],
    &["summary", "actors"],
];

fn record(head: &RayHead) -> Live {
    let base = head.dashboard_url();
    wait_for_tasks(&base);
    // Let the task event buffers flush (export files and HTTP pushes happen every second).
    std::thread::sleep(Duration::from_secs(3));
    let nodes = live_json(&base, "nodes?view=summary");
    let node = nodes["data"]["summary"][0]["raylet"]["nodeId"]
        .as_str()
        .unwrap()
        .to_string();
    let tasks = live_json(&base, "api/v0/tasks?limit=1000&detail=1");
    let square_id = tasks["data"]["result"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "square")
        .unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    Live {
        cli: CLI_LISTS.map(|(what, _, _)| ray_list(&base, what)),
        cli_jobs: CLI_JOB_COMMANDS.map(|args| ray_cli(&base, args)),
        actors: live_json(&base, "logical/actors"),
        jobs: live_json(&base, "api/jobs/"),
        events: live_json(&base, "events"),
        timeline: live_json(&base, "api/v0/tasks/timeline"),
        summaries: [
            live_json(&base, "api/v0/tasks/summarize"),
            live_json(&base, "api/v0/tasks/summarize?summary_by=lineage"),
        ],
        logs: live_json(&base, &format!("api/v0/logs?node_id={node}")),
        job_log: live_text(
            &base,
            &format!("api/v0/logs/file?node_id={node}&filename=job-driver-e2e-ok.log&lines=100"),
        ),
        task_log: live_text(
            &base,
            &format!("api/v0/logs/file?task_id={square_id}&lines=50"),
        ),
        tasks,
        nodes,
        square_id,
        node,
    }
}

async fn run(mode: Mode, container: &str) {
    let azurite = Azurite::shared();
    let storage = Storage::open(&azurite.storage_config(container))
        .await
        .unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let mut env = vec![];
    match mode {
        Mode::ExportFiles => env.push(("RAY_enable_export_api_write".into(), "1".into())),
        Mode::HttpEvents => {
            let port = start_receiver(received.clone()).await;
            env.extend([
                ("RAY_enable_ray_event".to_string(), "1".to_string()),
                (
                    "RAY_enable_core_worker_ray_event_to_aggregator".into(),
                    "1".into(),
                ),
                (
                    "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR".into(),
                    format!("http://127.0.0.1:{port}/v1/events"),
                ),
                (
                    "RAY_DASHBOARD_AGGREGATOR_AGENT_EXPOSABLE_EVENT_TYPES".into(),
                    "ALL".into(),
                ),
            ]);
        }
    }
    let (session_dir, live, session_name) = tokio::task::spawn_blocking(move || {
        let mut head = RayHead::start(RayHeadOptions {
            env,
            ..Default::default()
        });
        let out = head.run_python(DRIVER);
        assert!(
            out.status.success(),
            "driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ok = head.submit_job(
            "python -c \"import ray; ray.init(); print('job ok')\"",
            "e2e-ok",
        );
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let failed = head.submit_job("echo about to fail; exit 3", "e2e-fail");
        assert!(!failed.status.success());
        let live = record(&head);
        let session_dir = head.session_dir();
        head.stop();
        let name = session_dir
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        // The temp dir lives as long as `head`: keep the session by copying it out.
        let keep = tempfile::tempdir().unwrap().keep();
        let copy = keep.join(&name);
        let status = std::process::Command::new("cp")
            .args(["-r", session_dir.to_str().unwrap(), copy.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        (copy, live, name)
    })
    .await
    .unwrap();

    let node_id = support::head_node_id(&session_dir);
    assert_eq!(node_id, live.node);
    support::upload_session(&storage, &session_dir, &session_name, &node_id).await;
    if mode == Mode::HttpEvents {
        let lines = std::mem::take(&mut *received.lock().unwrap());
        assert!(!lines.is_empty(), "Ray pushed no events");
        let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
        let key = cluster.node_events(
            &SessionName::new(&session_name).unwrap(),
            &NodeId::new(&node_id).unwrap(),
            1,
        );
        storage.put(&key, lines.into()).await.unwrap();
    }
    std::fs::remove_dir_all(&session_dir).ok();

    let base = support::start_server(storage).await;
    let prefix = format!(
        "{base}/sessions/{}/{}/{session_name}",
        support::NAMESPACE,
        support::CLUSTER
    );
    let mut diffs = Vec::new();
    let (status, tasks) =
        support::get_json(&format!("{prefix}/api/v0/tasks?limit=1000&detail=1")).await;
    assert_eq!(status, 200);
    support::compare::tasks(&live.tasks, &tasks, &mut diffs);
    let (_, actors) = support::get_json(&format!("{prefix}/logical/actors")).await;
    support::compare::actors(&live.actors, &actors, &mut diffs);
    // Export actor events have second resolution; GCS stamps start/end a millisecond or so
    // apart from the HTTP lifecycle events.
    let tolerance = if mode == Mode::ExportFiles { 1000 } else { 5 };
    support::compare::actor_times(&live.actors, &actors, tolerance, &mut diffs);
    let (_, jobs) = support::get_json(&format!("{prefix}/api/jobs/")).await;
    support::compare::jobs(&live.jobs, &jobs, mode == Mode::ExportFiles, &mut diffs);
    let (_, nodes) = support::get_json(&format!("{prefix}/nodes?view=summary")).await;
    support::compare::nodes(
        &live.nodes,
        &nodes,
        &[
            "ip",
            "raylet.nodeId",
            "raylet.isHeadNode",
            "raylet.startTimeMs",
            "raylet.nodeManagerAddress",
            "raylet.labels",
        ],
        &mut diffs,
    );
    let (_, events) = support::get_json(&format!("{prefix}/events")).await;
    support::compare::events(&live.events, &events, &mut diffs);
    let (_, timeline) = support::get_json(&format!("{prefix}/api/v0/tasks/timeline")).await;
    support::compare::timeline(&live.timeline, &timeline, &mut diffs);
    for (live_summary, query) in live.summaries.iter().zip(["", "?summary_by=lineage"]) {
        let (_, ours) = support::get_json(&format!("{prefix}/api/v0/tasks/summarize{query}")).await;
        if ours["data"] != live_summary["data"] {
            diffs.push(format!(
                "summarize{query}: live {}\nvs ours {}",
                live_summary["data"], ours["data"]
            ));
        }
    }
    let (_, logs) = support::get_json(&format!("{prefix}/api/v0/logs?node_id={}", live.node)).await;
    support::compare::log_lists(&live.logs, &logs, &mut diffs);
    let job_log = reqwest::get(format!(
        "{prefix}/api/v0/logs/file?node_id={}&filename=job-driver-e2e-ok.log&lines=100",
        live.node
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    if job_log != live.job_log {
        diffs.push(format!(
            "job log: live {:?} vs ours {job_log:?}",
            live.job_log
        ));
    }
    let task_log = reqwest::get(format!(
        "{prefix}/api/v0/logs/file?task_id={}&lines=50",
        live.square_id
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    if task_log != live.task_log {
        diffs.push(format!(
            "task log: live {:?} vs ours {task_log:?}",
            live.task_log
        ));
    }
    // Ray's own CLI pointed at the session URL prints what it printed against the live head.
    let address = prefix.clone();
    let (ours, our_jobs): (Vec<Vec<Value>>, Vec<String>) = tokio::task::spawn_blocking(move || {
        (
            CLI_LISTS
                .iter()
                .map(|(what, _, _)| ray_list(&address, what))
                .collect(),
            CLI_JOB_COMMANDS
                .iter()
                .map(|args| ray_cli(&address, args))
                .collect(),
        )
    })
    .await
    .unwrap();
    for ((args, live_out), our_out) in CLI_JOB_COMMANDS.iter().zip(&live.cli_jobs).zip(&our_jobs) {
        let (live_out, our_out) = (cli_text(live_out), cli_text(our_out));
        // With HTTP events a failed job's message lives only in the GCS (point 3 of the issue).
        if mode == Mode::HttpEvents && args[1] == "status" {
            let head = |t: &str| t.split("Status message:").next().unwrap_or("").to_string();
            if head(&live_out) != head(&our_out) {
                diffs.push(format!(
                    "ray {}: live {live_out:?} ours {our_out:?}",
                    args.join(" ")
                ));
            }
            continue;
        }
        if live_out != our_out {
            diffs.push(format!(
                "ray {}: live {live_out:?} ours {our_out:?}",
                args.join(" ")
            ));
        }
    }
    for ((what, id, fields), (live_rows, our_rows)) in
        CLI_LISTS.iter().zip(live.cli.iter().zip(&ours))
    {
        let key = |row: &Value| format!("{}#{}", row[id], row["attempt_number"]);
        if live_rows.len() != our_rows.len() {
            diffs.push(format!(
                "ray list {what}: {} live rows, {} ours",
                live_rows.len(),
                our_rows.len()
            ));
        }
        let matched = live_rows
            .iter()
            .filter(|l| our_rows.iter().any(|r| key(r) == key(l)))
            .count();
        // The comparison table of the issue note (`--nocapture` shows it).
        println!(
            "{container}: ray list {what}: live {}, history {}, matched {matched}",
            live_rows.len(),
            our_rows.len()
        );
        for live_row in live_rows {
            let Some(our_row) = our_rows.iter().find(|r| key(r) == key(live_row)) else {
                diffs.push(format!("ray list {what}: no row {}", key(live_row)));
                continue;
            };
            for field in *fields {
                // HTTP events carry no submission-job record: a submitted job's entrypoint
                // lives only in the GCS (issue "Ray's own tools on dead clusters", point 3).
                if mode == Mode::HttpEvents && *what == "jobs" && *field == "entrypoint" {
                    continue;
                }
                if live_row[field] != our_row[field] {
                    diffs.push(format!(
                        "ray list {what} {}: {field} live {} ours {}",
                        key(live_row),
                        live_row[field],
                        our_row[field]
                    ));
                }
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences ({}):\n{}",
        diffs.len(),
        container,
        diffs.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_ray_vs_history_export_files() {
    run(Mode::ExportFiles, "e2e-export").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_ray_vs_history_http_events() {
    run(Mode::HttpEvents, "e2e-http").await;
}
