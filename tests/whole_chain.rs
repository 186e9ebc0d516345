//! The whole chain on a real two-node Ray 2.60 cluster: the head on this host, a worker node in
//! a network namespace of the test's own (veth addresses, its own `/tmp/ray` view), one
//! collector per node writing to Azurite, each collector SIGKILLed and restarted while Ray
//! runs; then Ray stopped, the collectors SIGTERMed, and the history server started on what
//! they stored. Ray's own State API and CLI, asked just before the cluster stopped, are
//! compared with the same questions asked of the session URL: every task, actor, job and node,
//! with nothing extra; and every file under every node's `logs/` is byte-identical in storage.
//!
//! Run for export-event files, for HTTP events, and for a driver whose environment lacks the
//! event settings (the cluster has them), where the head's snapshots of the GCS fill the gap.
//!
//! Over 600 lines: one suite, whose tests share one started two-node Ray cluster and its stored
//! session.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, NodeId, SessionName};
use ray_history_testkit::cli::{cli_text, ray_cli, ray_list};
use ray_history_testkit::{
    Azurite, Group, Netns, RayHead, RayHeadOptions, RayWorker, Signal, free_port, short_temp_dir,
    tool, workspace_binary,
};
use serde_json::Value;

const CLUSTER: &str = "chain";
const CONTAINER: &str = "history";
/// Marks what the server inferred at the session's end (`model::INFERRED_AT_END`).
const INFERRED: &str = "inferred by Ray History";

/// Tasks on both nodes, a retried task, a failing task, an actor restarted once, a detached
/// actor, and a task and an actor pinned to the worker.
const WORKLOAD: &str = r#"
import os, sys, time, ray
ray.init()

@ray.remote(resources={"head_node": 0.01})
def on_head(x):
    return x

@ray.remote(resources={"worker_node": 0.01})
def on_worker(x):
    return x

@ray.remote(max_retries=2, retry_exceptions=True)
def flaky(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError("the first attempt fails")
    return "ok"

@ray.remote(max_retries=0)
def boom():
    raise RuntimeError("intentional failure")

@ray.remote(max_restarts=1, max_task_retries=0)
class Phoenix:
    def pid(self):
        return os.getpid()
    def die(self):
        os._exit(1)

@ray.remote
class Keeper:
    def ping(self):
        return "pong"

@ray.remote(resources={"worker_node": 0.01})
class OnWorker:
    def node(self):
        return ray.get_runtime_context().get_node_id()

print(ray.get([on_head.remote(i) for i in range(3)] + [on_worker.remote(i) for i in range(3)]))
print(ray.get(flaky.remote(sys.argv[1])))
try:
    ray.get(boom.remote())
except Exception:
    print("boom failed")
phoenix = Phoenix.remote()
first = ray.get(phoenix.pid.remote())
try:
    ray.get(phoenix.die.remote())
except Exception:
    pass
for _ in range(120):
    try:
        second = ray.get(phoenix.pid.remote())
        break
    except Exception:
        time.sleep(0.5)
assert first != second, "the actor did not restart"
keeper = Keeper.options(name="keeper", namespace="chain", lifetime="detached").remote()
print(ray.get(keeper.ping.remote()))
on = OnWorker.remote()
print(ray.get(on.node.remote()))
group = ray.util.placement_group([{"CPU": 0.01}], name="chain-group")
ray.get(group.ready())
time.sleep(1)
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `RAY_enable_export_api_write=1` everywhere.
    ExportFiles,
    /// RayEvents pushed to each node's collector.
    HttpEvents,
    /// The cluster writes export files, the driver process has no event settings.
    DriverWithoutEnv,
}

/// The three modes share the machine's two cores: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn whole_chain_with_export_files() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    run(Mode::ExportFiles);
}

#[test]
fn whole_chain_with_http_events() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    run(Mode::HttpEvents);
}

#[test]
fn whole_chain_with_a_driver_without_the_event_environment() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    run(Mode::DriverWithoutEnv);
}

/// The environment Ray's processes on a node get in `mode`, pushing to `events_port`.
fn ray_env(mode: Mode, events_port: u16) -> Vec<(String, String)> {
    let pairs: Vec<(&str, String)> = match mode {
        Mode::ExportFiles | Mode::DriverWithoutEnv => {
            vec![("RAY_enable_export_api_write", "1".into())]
        }
        Mode::HttpEvents => vec![
            ("RAY_enable_ray_event", "1".into()),
            ("RAY_enable_core_worker_ray_event_to_aggregator", "1".into()),
            (
                "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR",
                format!("http://127.0.0.1:{events_port}/v1/events"),
            ),
        ],
    };
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// One node's collector: how to start it again after a SIGKILL.
struct Collector<'a> {
    command: Box<dyn Fn() -> Command + 'a>,
    log: PathBuf,
    state: PathBuf,
    group: Option<Group>,
}

impl Collector<'_> {
    fn start(&mut self) {
        let group = Group::spawn(
            (self.command)(),
            &self.log,
            Signal::SIGTERM,
            Duration::from_secs(30),
            &self.state,
        );
        self.group = Some(group);
    }

    fn sigkill(&mut self) {
        if let Some(mut group) = self.group.take() {
            group.kill();
        }
    }

    /// SIGTERM, as Kubernetes stops the sidecar after Ray: the final flush must finish.
    fn sigterm(&mut self) {
        let mut group = self.group.take().expect("collector running");
        group.signal_leader(Signal::SIGTERM);
        assert!(
            group.wait_for_exit(Duration::from_secs(60)),
            "collector did not stop on SIGTERM:\n{}",
            group.log_tail(4000)
        );
        group.kill();
    }
}

/// The settings both collectors share.
fn collector_env(azurite: &Azurite, node_type: &str, events_port: u16) -> Vec<(String, String)> {
    [
        ("STORAGE", "azureblob".to_string()),
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            azurite.connection_string(),
        ),
        ("AZURE_STORAGE_CONTAINER", CONTAINER.into()),
        ("RAY_CLUSTER_NAME", CLUSTER.into()),
        ("RAY_NODE_TYPE", node_type.into()),
        ("FLUSH_INTERVAL", "500ms".into()),
        ("RESCAN_INTERVAL", "2s".into()),
        ("HEARTBEAT_INTERVAL", "5s".into()),
        ("EVENTS_LISTEN", format!("127.0.0.1:{events_port}")),
        ("METRICS_LISTEN", format!("127.0.0.1:{}", free_port())),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "60", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get_json(url: &str) -> Value {
    let text = curl(url);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
}

fn rows(answer: &Value) -> Vec<Value> {
    answer["data"]["result"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a State API list: {answer}"))
}

/// The State API lists the comparison uses, with the id columns and compared fields.
const LISTS: [(&str, &str, &[&str], &[&str]); 6] = [
    (
        "tasks",
        "api/v0/tasks?detail=true&limit=10000",
        &["task_id", "attempt_number"],
        &[
            "state",
            "name",
            "func_or_class_name",
            "type",
            "job_id",
            "node_id",
            "actor_id",
            "error_type",
            "parent_task_id",
        ],
    ),
    (
        "actors",
        "api/v0/actors?detail=true&limit=10000",
        &["actor_id"],
        &[
            "state",
            "class_name",
            "name",
            "num_restarts",
            "job_id",
            "node_id",
        ],
    ),
    (
        "jobs",
        "api/v0/jobs?detail=true&limit=10000",
        &["submission_id", "job_id"],
        &["status", "message", "entrypoint", "type"],
    ),
    (
        "nodes",
        "api/v0/nodes?detail=true&limit=10000",
        &["node_id"],
        &["node_ip", "is_head_node", "state"],
    ),
    (
        "placement-groups",
        "api/v0/placement_groups?detail=true&limit=10000",
        &["placement_group_id"],
        &["name", "creator_job_id", "state", "is_detached"],
    ),
    (
        "workers",
        "api/v0/workers?detail=true&limit=10000",
        &["worker_id"],
        &["worker_type", "node_id", "ip", "pid", "is_alive"],
    ),
];

/// `ray` commands whose text must be the same.
const CLI_TEXT: [&[&str]; 6] = [
    &["summary", "tasks"],
    &["job", "logs", "--follow", "ok-job"],
    &["job", "status", "ok-job"],
    &["job", "status", "fail-job"],
    &["job", "logs", "ok-job"],
    &["job", "logs", "fail-job"],
];

fn key(row: &Value, ids: &[&str]) -> String {
    ids.iter()
        .map(|id| row[id].to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `ours` is what the server shows for `live` after the session ended: a live entity
/// still running is ended and marked inferred, or Ray's own shutdown record ended it.
fn ended_at_shutdown(what: &str, field: &str, live: &Value, ours: &Value) -> bool {
    let text = ours.to_string();
    match (what, field) {
        ("nodes", "state") => live[field] == "ALIVE" && ours[field] == "DEAD",
        ("workers", "is_alive") => live[field] == true && ours[field] == false,
        ("actors", "state") => live[field] == "ALIVE" && ours[field] == "DEAD",
        ("tasks", "state" | "error_type") => {
            !matches!(live["state"].as_str(), Some("FINISHED" | "FAILED"))
                && ours["state"] == "FAILED"
                && text.contains(INFERRED)
        }
        _ => false,
    }
}

/// Compares one list; pushes each difference, and counts rows per side.
fn compare(
    what: &str,
    ids: &[&str],
    fields: &[&str],
    live: &[Value],
    ours: &[Value],
    diffs: &mut Vec<String>,
) -> (usize, usize, usize) {
    let ours_by_key: BTreeMap<String, &Value> = ours.iter().map(|r| (key(r, ids), r)).collect();
    let live_keys: BTreeSet<String> = live.iter().map(|r| key(r, ids)).collect();
    let mut matched = 0;
    for row in live {
        let Some(our_row) = ours_by_key.get(&key(row, ids)) else {
            diffs.push(format!("{what}: missing {}", key(row, ids)));
            continue;
        };
        let mut same = true;
        for field in fields {
            if row[field] != our_row[field] && !ended_at_shutdown(what, field, row, our_row) {
                same = false;
                diffs.push(format!(
                    "{what} {}: {field} live {} ours {}",
                    key(row, ids),
                    row[field],
                    our_row[field]
                ));
            }
        }
        matched += usize::from(same);
    }
    for extra in ours_by_key.keys().filter(|k| !live_keys.contains(*k)) {
        diffs.push(format!(
            "{what}: extra {extra} (the live cluster never listed it)"
        ));
    }
    (live.len(), ours.len(), matched)
}

struct Captured {
    lists: Vec<Vec<Value>>,
    cli_lists: Vec<Vec<Value>>,
    cli_text: Vec<String>,
    actor_summary: String,
}

fn capture(address: &str) -> Captured {
    Captured {
        lists: LISTS
            .iter()
            .map(|(_, path, _, _)| rows(&get_json(&format!("{address}/{path}"))))
            .collect(),
        cli_lists: LISTS
            .iter()
            .map(|(what, _, _, _)| ray_list(address, what))
            .collect(),
        cli_text: CLI_TEXT.iter().map(|args| ray_cli(address, args)).collect(),
        actor_summary: ray_cli(address, &["summary", "actors"]),
    }
}

/// Waits until every task the live dashboard lists is finished or failed.
fn wait_for_tasks(dashboard: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tasks = rows(&get_json(&format!(
            "{dashboard}/api/v0/tasks?limit=10000&exclude_driver=false"
        )));
        let open: Vec<&Value> = tasks
            .iter()
            .filter(|t| t["type"] != "DRIVER_TASK")
            .filter(|t| !matches!(t["state"].as_str(), Some("FINISHED" | "FAILED")))
            .collect();
        if open.is_empty() && tasks.len() > 10 {
            return;
        }
        assert!(Instant::now() < deadline, "tasks still open: {open:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn run(mode: Mode) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let netns = Netns::create();
    let azurite = Azurite::start_on(netns.host_ip());
    let events_port = free_port();
    let collector_bin = workspace_binary("ray-history-collector", "ray-history-collector");
    let server_bin = workspace_binary("ray-history-server", "ray-history-server");

    // Collectors first, as the webhook's native sidecars start before Ray.
    let head_temp = short_temp_dir("rc");
    let worker_temp = short_temp_dir("rw");
    let logs = short_temp_dir("rl");
    let dashboard_port = free_port();
    let mut head_env = collector_env(&azurite, "head", events_port);
    head_env.push((
        "RAY_DASHBOARD_URL".into(),
        format!("http://127.0.0.1:{dashboard_port}"),
    ));
    head_env.push(("SNAPSHOT_INTERVAL".into(), "3s".into()));
    let mut head_collector = {
        let (bin, root, state) = (
            collector_bin.clone(),
            head_temp.path().to_path_buf(),
            logs.path().join("head-state"),
        );
        let env = head_env.clone();
        Collector {
            command: Box::new(move || {
                let mut command = Command::new(&bin);
                command
                    .env_clear()
                    .env("RAY_TMP_ROOT", &root)
                    .env("STATE_DIR", &state)
                    .envs(env.iter().map(|(k, v)| (k, v)));
                command
            }),
            log: logs.path().join("head-collector.log"),
            state: logs.path().join("head-state"),
            group: None,
        }
    };
    let mut worker_collector = {
        let (bin, source, target, state) = (
            collector_bin.clone(),
            worker_temp.path().to_path_buf(),
            head_temp.path().to_path_buf(),
            logs.path().join("worker-state"),
        );
        let env = collector_env(&azurite, "worker", events_port);
        let netns = &netns;
        Collector {
            // In the worker's namespaces, seeing the worker's dir at Ray's temp dir path.
            command: Box::new(move || {
                let mut command = netns.command(&bin, &source, &target);
                command
                    .arg("run")
                    .env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("RAY_TMP_ROOT", &target)
                    .env("STATE_DIR", &state)
                    .envs(env.iter().map(|(k, v)| (k, v)));
                command
            }),
            log: logs.path().join("worker-collector.log"),
            state: logs.path().join("worker-state"),
            group: None,
        }
    };
    head_collector.start();
    worker_collector.start();

    let env = ray_env(mode, events_port);
    let mut head = RayHead::start_in(
        head_temp,
        RayHeadOptions {
            env: env.clone(),
            args: vec![r#"--resources={"head_node": 1}"#.into()],
            node_ip: Some(netns.host_ip()),
            dashboard_port: Some(dashboard_port),
        },
    );
    let mut worker = RayWorker::start_in(
        worker_temp,
        &head,
        &netns,
        &env,
        &[r#"--resources={"worker_node": 1}"#.into()],
    );
    let dashboard = head.dashboard_url();

    // The workload, with each collector SIGKILLed and restarted while it runs.
    let marker = logs.path().join("flaky-marker");
    let driver = head
        .command_for(&tool("venv/bin/python"), mode != Mode::DriverWithoutEnv)
        .args(["-c", WORKLOAD])
        .arg(&marker)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot start the driver");
    std::thread::sleep(Duration::from_secs(5));
    head_collector.sigkill();
    head_collector.start();
    std::thread::sleep(Duration::from_secs(3));
    worker_collector.sigkill();
    worker_collector.start();
    let out = driver.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the workload failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = head.submit_job("python -c \"print('job ok')\"", "ok-job");
    assert!(ok.status.success(), "{ok:?}");
    let failed = head.submit_job(
        "python -c \"import sys; print('failing'); sys.exit(3)\"",
        "fail-job",
    );
    assert!(!failed.status.success());
    wait_for_tasks(&dashboard);
    // Ray flushes task events every second; the head's snapshot comes every 3 s.
    std::thread::sleep(Duration::from_secs(5));
    let live = capture(&dashboard);
    let nodes = &live.lists[3];
    let node_of = |head_node: bool| -> String {
        nodes
            .iter()
            .find(|n| n["is_head_node"] == head_node)
            .and_then(|n| n["node_id"].as_str())
            .expect("both nodes listed")
            .to_string()
    };
    let (head_node, worker_node) = (node_of(true), node_of(false));
    let session = head.session_dir();
    let session_name = session.file_name().unwrap().to_str().unwrap().to_string();
    let head_temp_dir = head.temp_dir().to_path_buf();
    let worker_session = worker.temp_dir().join(&session_name);

    worker.stop();
    head.stop();
    worker_collector.sigterm();
    head_collector.sigterm();

    // Every file under every node's logs/ is in storage, byte for byte.
    let storage = runtime
        .block_on(Storage::open(&azurite.storage_config(CONTAINER)))
        .unwrap();
    let cluster = ClusterRef::new(CLUSTER, "local").unwrap();
    let session_ref = SessionName::new(&session_name).unwrap();
    let mut files = 0;
    let mut mismatched = Vec::new();
    for (node, dir) in [
        (&head_node, session.join("logs")),
        (&worker_node, worker_session.join("logs")),
    ] {
        let node = NodeId::new(node).unwrap();
        for (relative, local) in walk(&dir) {
            let key = cluster.log_file(&session_ref, &node, &relative).unwrap();
            let stored = runtime.block_on(storage.get(&key));
            match stored {
                Ok(bytes) if bytes.as_ref() == local.as_slice() => files += 1,
                Ok(bytes) => mismatched.push(format!(
                    "{relative}: {} bytes stored, {} on disk",
                    bytes.len(),
                    local.len()
                )),
                Err(e) => mismatched.push(format!("{relative}: {e}")),
            }
        }
    }
    assert!(mismatched.is_empty(), "{mismatched:#?}");
    assert!(files > 40, "only {files} log files");
    let snapshots: Vec<_> = runtime
        .block_on(
            storage
                .list(Some(&cluster.session_prefix(&session_ref).join("snapshot")))
                .try_collect::<Vec<_>>(),
        )
        .unwrap();
    assert!(snapshots.len() >= 6, "the head's snapshots: {snapshots:?}");

    // The history server on what was stored; Ray's CLI pointed at the session URL.
    let ours = with_server(&server_bin, &azurite, logs.path(), &session_name, capture);
    // What the events alone give, without the head's snapshots (figures for the notes).
    for snapshot in &snapshots {
        runtime
            .block_on(storage.delete(&snapshot.location))
            .unwrap();
    }
    let events_only = with_server(&server_bin, &azurite, logs.path(), &session_name, |a| {
        LISTS
            .iter()
            .map(|(_, path, _, _)| rows(&get_json(&format!("{a}/{path}"))))
            .collect::<Vec<_>>()
    });

    let mut diffs = Vec::new();
    let mut table = Vec::new();
    for (i, (what, _, ids, fields)) in LISTS.iter().enumerate() {
        let counts = compare(
            what,
            ids,
            fields,
            &live.lists[i],
            &ours.lists[i],
            &mut diffs,
        );
        table.push(format!(
            "| {mode:?} | {what} | {} | {} | {} |",
            counts.0, counts.1, counts.2
        ));
        let cli = compare(
            what,
            ids,
            fields,
            &live.cli_lists[i],
            &ours.cli_lists[i],
            &mut diffs,
        );
        table.push(format!(
            "| {mode:?} | `ray list {what}` | {} | {} | {} |",
            cli.0, cli.1, cli.2
        ));
        let alone = compare(
            what,
            ids,
            fields,
            &live.lists[i],
            &events_only[i],
            &mut Vec::new(),
        );
        table.push(format!(
            "| {mode:?} | {what}, events only (no snapshots) | {} | {} | {} |",
            alone.0, alone.1, alone.2
        ));
    }
    for ((args, live_text), our_text) in CLI_TEXT.iter().zip(&live.cli_text).zip(&ours.cli_text) {
        if cli_text(live_text) != cli_text(our_text) {
            diffs.push(format!(
                "ray {}:\nlive:\n{live_text}\nours:\n{our_text}",
                args.join(" ")
            ));
        }
    }
    // Still-alive actors are ended in the history: the classes and totals stay.
    let classes = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("Phoenix") || l.contains("Keeper") || l.contains("OnWorker"))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    };
    if classes(&live.actor_summary) != classes(&ours.actor_summary) {
        diffs.push(format!(
            "ray summary actors:\nlive:\n{}\nours:\n{}",
            live.actor_summary, ours.actor_summary
        ));
    }
    eprintln!(
        "| mode | entity | live | history | matched |\n|---|---|---|---|---|\n{}",
        table.join("\n")
    );
    let phoenix = ours.lists[1]
        .iter()
        .find(|a| a["class_name"] == "Phoenix")
        .expect("the restarted actor");
    assert_eq!(phoenix["num_restarts"], "1", "{phoenix}");
    let on_worker = ours.lists[1]
        .iter()
        .find(|a| a["class_name"] == "OnWorker")
        .expect("the pinned actor");
    assert_eq!(on_worker["node_id"], worker_node.as_str());
    assert!(
        diffs.is_empty(),
        "{mode:?}: {} differences:\n{}\n(collector logs in {})",
        diffs.len(),
        diffs.join("\n"),
        head_temp_dir.display()
    );
}

/// Starts the history server on the stored sessions, runs `ask` with the session's URL, stops
/// the server.
fn with_server<T>(
    binary: &Path,
    azurite: &Azurite,
    dir: &Path,
    session_name: &str,
    ask: impl FnOnce(&str) -> T,
) -> T {
    let port = free_port();
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("STORAGE", "azureblob")
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            azurite.connection_string(),
        )
        .env("AZURE_STORAGE_CONTAINER", CONTAINER)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    let log = dir.join(format!("server-{port}.log"));
    let mut server = Group::spawn(command, &log, Signal::SIGTERM, Duration::from_secs(5), dir);
    let address = format!("http://127.0.0.1:{port}/sessions/default/{CLUSTER}/{session_name}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !curl(&format!("{address}/api/version")).contains(session_name) {
        assert!(
            Instant::now() < deadline && server.running(),
            "the server did not serve the session:\n{}",
            server.log_tail(4000)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let answer = ask(&address);
    server.kill();
    answer
}

/// Every regular file under `dir`, as (path relative to `dir`, contents).
fn walk(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}
