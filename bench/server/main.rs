//! History server benchmark (`make bench-server`).
//!
//! `run` does everything and prints a table, each figure next to the same run's figure for
//! the previous design (every load parses the event files, every row stays in memory):
//! 1. generates sessions of 100k, 1M and 10M tasks (`BENCH_TASKS=100000,1000000,10000000`)
//!    as Ray 2.60 export events (`ray_history_testkit::generated`), on local disk and in
//!    Azurite (sizes above 1M on local disk only, and without the previous design, which
//!    would hold about 12 GB of rows);
//! 2. times cold loads of each in a child process per load, reporting its peak RSS: the
//!    previous design, a first-ever load with the session index (parse and build; the load
//!    does not wait for storing it), and a load with the index present; the 100k session
//!    also under one core (`taskset -c 0`);
//! 3. runs a fresh release server per design and size: the first answer of
//!    `api/v0/tasks?limit=100`, then `wrk -c 64` on it (warm), then the server's RSS;
//! 4. for each size up to 1M, a fresh server on the session without its index: how long
//!    until the server has indexed it ahead (`--index-ahead`, no request made), and the first
//!    answer after that;
//! 5. stores a 1 GiB log and times the tail of its last 1,000 lines over HTTP.
//!
//! `load` is the child of step 2: `load <storage-url> <session>`; `generate <dir> <tasks>`
//! stores one generated session on local disk (for profiling a load by hand).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ray_history_server::loader::IndexDir;
use ray_history_storage::layout::Key;
use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::metadata::SessionMetadata;
use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::Azurite;
use ray_history_testkit::generated::{
    CLUSTER, CLUSTER_ID, NAMESPACE, mix, node_id, session_name, store_generated,
};

/// Sizes above this run on local disk only, with our design only (disk space and time).
const BOTH_BACKENDS_UP_TO: u64 = 1_000_000;

/// Writes a 1 GiB log of realistic lines to `path`.
fn write_big_log(path: &Path) -> u64 {
    let mut out = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut i = 0u64;
    while written < 1 << 30 {
        let line = format!(
            "[2026-11-21 05:21:00,{:03} I 12019 12019] (raylet) worker_pool.cc:564: Started worker process with pid {} worker_id={:056x}\n",
            i % 1000,
            10_000 + i % 50_000,
            mix(i) as u128 * 0x1_0000_0001
        );
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        i += 1;
    }
    out.flush().unwrap();
    written
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Child process: one cold load, printing `seconds peak_rss_mib tasks`; with `index_dir`, the
/// session index is read when stored, else built and stored.
async fn load(
    storage_url: &str,
    connection: Option<String>,
    session: &str,
    index_dir: Option<&Path>,
) {
    let storage = open_storage(storage_url, connection).await;
    let meta_ref = MetaRef::new(NAMESPACE, CLUSTER).unwrap();
    let name = SessionName::new(session).unwrap();
    let started = Instant::now();
    let meta: SessionMetadata =
        serde_json::from_slice(&storage.get(&meta_ref.metadata(&name)).await.unwrap()).unwrap();
    let index_dir = index_dir.map(IndexDir::new);
    let loaded = ray_history_server::loader::load(&storage, meta, Vec::new(), index_dir.as_ref())
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{secs:.3} {:.0} {}",
        peak_rss_mib(),
        loaded.state.tasks.len()
    );
    // The index is stored in the background after the first answer: the next load of this
    // session must find it.
    if let Some(dir) = index_dir {
        assert!(
            dir.uploads_ended(Duration::from_secs(600)).await,
            "the session index was not stored in 10 min"
        );
        assert!(!index_keys(&storage, &name).await.is_empty());
    }
}

/// The stored session index objects of a generated session.
async fn index_keys(storage: &Storage, session: &SessionName) -> Vec<object_store::path::Path> {
    let cluster = ClusterRef::new(CLUSTER, CLUSTER_ID).unwrap();
    let objects: Vec<_> = storage
        .list(Some(&cluster.session_prefix(session)))
        .try_collect()
        .await
        .unwrap();
    objects
        .into_iter()
        .map(|o| o.location)
        .filter(|key| matches!(Key::parse(key), Ok(Key::SessionIndex { .. })))
        .collect()
}

async fn open_storage(storage_url: &str, connection: Option<String>) -> Storage {
    let config = match connection {
        Some(conn) => {
            let args = ray_history_cli::StorageArgs {
                storage: Some("azureblob".into()),
                azure_connection_string: Some(conn),
                azure_container: Some(storage_url.to_string()),
                ..Default::default()
            };
            args.resolve().unwrap()
        }
        None => StorageConfig::local(storage_url),
    };
    Storage::open(&config).await.unwrap()
}

/// How a cold load runs: the previous design parses every time; ours reads or builds the
/// session index.
#[derive(Clone, Copy, PartialEq)]
enum Design {
    Previous,
    Indexed,
}

fn cold_load(
    exe: &Path,
    target: &str,
    connection: Option<&str>,
    session: &str,
    design: Design,
    one_core: bool,
) -> (f64, f64, usize) {
    let mut cmd = if one_core {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(["load", target, session]);
    let index_dir = std::env::temp_dir();
    if design == Design::Indexed {
        cmd.arg(&index_dir);
    }
    if let Some(c) = connection {
        cmd.env("BENCH_AZURE_CONNECTION_STRING", c);
    }
    let out = cmd.stderr(Stdio::inherit()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let parts: Vec<&str> = text.split_whitespace().collect();
    assert!(parts.len() == 3, "load child failed: {text}");
    (
        parts[0].parse().unwrap(),
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
    )
}

/// Deletes the stored index of a generated session, so that the next load is a first one.
async fn drop_index(storage: &Storage, tasks: u64) {
    let session = SessionName::new(&session_name(tasks)).unwrap();
    for key in index_keys(storage, &session).await {
        storage.delete(&key).await.unwrap();
    }
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn rss_of(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Server {
    child: std::process::Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start_server(server_bin: &Path, env: &[(&str, String)]) -> Server {
    let port = ray_history_testkit::free_port();
    let child = Command::new(server_bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cache-max-bytes",
            "4GiB",
            // wrk's 64 connections stand for 64 clients, all from one address.
            "--max-requests-per-client",
            "64",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("run the release server: cargo build --release -p ray-history-server");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Command::new("curl")
        .args(["-sf", &format!("{base}/healthz")])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Server { child, base }
}

fn curl_time(url: &str) -> (f64, usize) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/tmp/bench-curl.out",
            "-w",
            "%{time_total}",
            url,
        ])
        .output()
        .unwrap();
    let secs: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(-1.0);
    let lines = std::fs::read_to_string("/tmp/bench-curl.out").map_or(0, |t| t.lines().count());
    (secs, lines)
}

/// Starts a server on a session that has no index and asks nothing until the server has
/// indexed it ahead: the seconds from the start until then, and the first answer after.
fn indexed_ahead(server_bin: &Path, env: &[(&str, String)], path: &str) -> (f64, f64) {
    let started = Instant::now();
    let server = start_server(server_bin, env);
    let metrics = format!("{}/metrics", server.base);
    let done = "ray_history_server_sessions_indexed_ahead_total 1";
    let deadline = started + Duration::from_secs(900);
    while !Command::new("curl")
        .args(["-s", &metrics])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == done)
        })
    {
        assert!(
            Instant::now() < deadline,
            "the session was not indexed ahead"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ahead = started.elapsed().as_secs_f64();
    (ahead, curl_time(&format!("{}{path}", server.base)).0)
}

fn wrk(url: &str, duration: &str) -> String {
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", "64", "-d", duration, "--latency", url])
        .output()
        .expect("wrk is needed: apt-get install -y wrk");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wrk_summary(text: &str) -> String {
    let pick = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_else(|| "?".into())
    };
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    format!("p50 {} p99 {} req/s {rps}", pick("50%"), pick("99%"))
}

async fn run(out_dir: PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("ray-history-server"))
        .unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    let local_root = out_dir.join("store");
    let _ = std::fs::remove_dir_all(&local_root);
    let local = Storage::open(&StorageConfig::local(&local_root))
        .await
        .unwrap();
    let azurite = Azurite::start_on_disk();
    let az_config = azurite.storage_config("bench");
    let azure = Storage::open(&az_config).await.unwrap();
    let sizes: Vec<u64> = std::env::var("BENCH_TASKS")
        .unwrap_or_else(|_| "100000,1000000,10000000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("BENCH_TASKS: comma-separated task counts")
        })
        .collect();
    let connection = azurite.connection_string();
    let local_target = local_root.to_str().unwrap().to_string();
    let targets: [(&str, &str, Option<&str>, &Storage); 2] = [
        ("local disk", &local_target, None, &local),
        ("Azurite", "bench", Some(&connection), &azure),
    ];
    let mut report = Vec::new();
    for &tasks in &sizes {
        let started = Instant::now();
        let bytes = store_generated(&local, tasks).await;
        let t_local = started.elapsed();
        let big = tasks > BOTH_BACKENDS_UP_TO;
        if !big {
            store_generated(&azure, tasks).await;
        }
        eprintln!(
            "generated {tasks} tasks: {} MiB of events (local {:.1}s, azurite {:.1}s)",
            bytes >> 20,
            t_local.as_secs_f64(),
            started.elapsed().as_secs_f64() - t_local.as_secs_f64()
        );
        let session = session_name(tasks);
        for (label, target, connection, storage) in targets {
            if big && connection.is_some() {
                continue;
            }
            let load =
                |design, one_core| cold_load(&exe, target, connection, &session, design, one_core);
            if big {
                // The previous design holds every row: about 1.2 GB per million tasks.
                drop_index(storage, tasks).await;
                let (first_s, first_rss, n) = load(Design::Indexed, false);
                let (again_s, again_rss, _) = load(Design::Indexed, false);
                report.push(format!(
                    "{label}, {tasks} tasks ({n} rows, {} MiB of events), cold load: previous design not run (it holds every row in memory, ~1.2 GB per million tasks) | first-ever (parse and build the index) {first_s:.2} s, {first_rss:.0} MiB | index present {again_s:.2} s, {again_rss:.0} MiB",
                    bytes >> 20,
                ));
                eprintln!("{}", report.last().unwrap());
                continue;
            }
            let (prev_s, prev_rss, n) = load(Design::Previous, false);
            drop_index(storage, tasks).await;
            let (first_s, first_rss, _) = load(Design::Indexed, false);
            let (again_s, again_rss, _) = load(Design::Indexed, false);
            report.push(format!(
                "{label}, {tasks} tasks ({n} rows, {} MiB of events), cold load: previous design {prev_s:.2} s, {prev_rss:.0} MiB peak | first-ever (parse and build the index) {first_s:.2} s, {first_rss:.0} MiB ({:.2}x the previous) | index present {again_s:.2} s, {again_rss:.0} MiB ({:.1}x faster, {:.1}x less memory)",
                bytes >> 20,
                first_s / prev_s,
                prev_s / again_s,
                prev_rss / again_rss.max(1.0),
            ));
            eprintln!("{}", report.last().unwrap());
            if tasks == 100_000 && connection.is_none() {
                let (prev_s, _, _) = load(Design::Previous, true);
                drop_index(storage, tasks).await;
                let (first_s, _, _) = load(Design::Indexed, true);
                let (again_s, _, _) = load(Design::Indexed, true);
                report.push(format!(
                    "{label}, {tasks} tasks on one core (taskset -c 0), cold load: previous design {prev_s:.2} s | first-ever {first_s:.2} s ({:.2}x) | index present {again_s:.2} s ({:.1}x faster)",
                    first_s / prev_s,
                    prev_s / again_s
                ));
                eprintln!("{}", report.last().unwrap());
            }
        }
    }
    // Warm API under load, and the 1 GiB tail, against the release server.
    let big = out_dir.join("big.log");
    let size = write_big_log(&big);
    let cluster = ClusterRef::new(CLUSTER, CLUSTER_ID).unwrap();
    let session = SessionName::new(&session_name(100_000)).unwrap();
    let head = NodeId::new(&hex::encode(node_id(0))).unwrap();
    let key = cluster.log_file(&session, &head, "big.log").unwrap();
    local.put_file(&key, &big, size).await.unwrap();
    azure.put_file(&key, &big, size).await.unwrap();
    std::fs::remove_file(&big).ok();
    let backends: [(&str, Vec<(&str, String)>); 2] = [
        (
            "local disk",
            vec![("STORAGE_URL", format!("file://{}", local_root.display()))],
        ),
        (
            "Azurite",
            vec![
                ("STORAGE", "azureblob".to_string()),
                (
                    "AZURE_STORAGE_CONNECTION_STRING",
                    azurite.connection_string(),
                ),
                ("AZURE_STORAGE_CONTAINER", "bench".to_string()),
            ],
        ),
    ];
    for (label, env) in backends {
        let storage = if label == "Azurite" { &azure } else { &local };
        for &tasks in &sizes {
            if tasks <= BOTH_BACKENDS_UP_TO {
                drop_index(storage, tasks).await;
                let path = format!(
                    "/sessions/{NAMESPACE}/{CLUSTER}/{}/api/v0/tasks?limit=100",
                    session_name(tasks)
                );
                let (ahead, first) = indexed_ahead(&server_bin, &env, &path);
                report.push(format!("{label}, {tasks} tasks, indexed ahead (a fresh server, the session just finished, no index, no request): indexed {ahead:.2} s after the server started; the first answer then {:.0} ms", first * 1000.0));
                eprintln!("{}", report.last().unwrap());
            }
            for design in [Design::Previous, Design::Indexed] {
                if tasks > BOTH_BACKENDS_UP_TO && (design == Design::Previous || label == "Azurite")
                {
                    continue;
                }
                let mut env = env.clone();
                env.push(("SESSION_INDEX", (design == Design::Indexed).to_string()));
                let server = start_server(&server_bin, &env);
                let prefix = format!(
                    "{}/sessions/{NAMESPACE}/{CLUSTER}/{}",
                    server.base,
                    session_name(tasks)
                );
                let url = format!("{prefix}/api/v0/tasks?limit=100");
                let (first, _) = curl_time(&url);
                // Warm up (connections, allocator, page cache) before measuring.
                wrk(&url, "5s");
                let summary = wrk_summary(&wrk(&url, "15s"));
                let (rss, hwm) = rss_of(server.child.id());
                let name = match design {
                    Design::Previous => "previous design",
                    Design::Indexed => "index present",
                };
                report.push(format!("{label}, {tasks} tasks, {name}: first answer of a fresh server {first:.2} s; api/v0/tasks?limit=100 wrk -c 64: {summary}; server RSS {rss:.0} MiB (peak {hwm:.0} MiB)"));
                eprintln!("{}", report.last().unwrap());
            }
        }
        let server = start_server(&server_bin, &env);
        let prefix = format!(
            "{}/sessions/{NAMESPACE}/{CLUSTER}/{}",
            server.base,
            session_name(100_000)
        );
        let url = format!("{prefix}/api/v0/logs/file?node_id={head}&filename=big.log&lines=1000");
        let mut times = Vec::new();
        let mut lines = 0;
        for _ in 0..5 {
            let (t, n) = curl_time(&url);
            times.push(t);
            lines = n;
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        report.push(format!(
            "{label}: tail 1,000 lines of a {} MiB log: median {:.0} ms, max {:.0} ms ({lines} lines returned)",
            size >> 20,
            times[2] * 1000.0,
            times[4] * 1000.0
        ));
        eprintln!("{}", report.last().unwrap());
    }
    println!("\n== history server benchmark ==");
    for line in &report {
        println!("{line}");
    }
    let _ = std::fs::remove_dir_all(&local_root);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("load") => {
            ray_history_cli::telemetry::init_tracing();
            let connection = std::env::var("BENCH_AZURE_CONNECTION_STRING").ok();
            let index_dir = args.get(4).map(PathBuf::from);
            load(&args[2], connection, &args[3], index_dir.as_deref()).await
        }
        Some("generate") if args.len() == 4 => {
            let tasks: u64 = args[3].parse().expect("generate: <tasks> is a number");
            let storage = open_storage(&args[2], None).await;
            store_generated(&storage, tasks).await;
            println!("{}", session_name(tasks));
        }
        Some("run") | None => {
            let dir = args
                .get(2)
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("ray-history-bench"));
            run(dir).await
        }
        Some(other) => {
            eprintln!(
                "usage: bench-server [run [<work dir>] | load <storage> <session> [<index dir>] | generate <dir> <tasks>] (got {other})"
            );
            std::process::exit(2);
        }
    }
}
