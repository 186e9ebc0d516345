//! History server benchmark (`make bench-server`).
//!
//! `run` does everything and prints a table:
//! 1. generates sessions of 100k and 1M tasks as Ray 2.60 export events (per task: the
//!    owner's definition + pending/submitted transitions, the worker's RUNNING update with log
//!    offsets, the owner's FINISHED or FAILED update; 1% fail with an error; one actor per
//!    1,000 tasks; 4 nodes with a driver and 8 workers each, so 36 task files per session),
//!    on local disk and in Azurite;
//! 2. times a cold load of each (a child process per load, reporting its peak RSS);
//! 3. runs the release server and `wrk -c 64` on `api/v0/tasks?limit=100` (warm);
//! 4. stores a 1 GiB log and times the tail of its last 1,000 lines over HTTP.
//!
//! `load` is the child of step 2: `load <storage-url> <session>`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::metadata::{
    LAYOUT_VERSION, NodeMetadata, NodeType, SessionMetadata, SessionState,
};
use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::Azurite;
use ray_history_testkit::generated::{
    CLUSTER, CLUSTER_ID, NAMESPACE, generate, mix, node_id, session_name, store_session,
};

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

/// Child process: one cold load, printing `seconds peak_rss_mib tasks`.
async fn load(storage_url: &str, connection: Option<String>, session: &str) {
    let config = match connection {
        Some(conn) => {
            let args = ray_history_storage::StorageArgs {
                storage: Some("azureblob".into()),
                azure_connection_string: Some(conn),
                azure_container: Some(storage_url.to_string()),
                ..Default::default()
            };
            args.resolve().unwrap()
        }
        None => StorageConfig::local(storage_url),
    };
    let storage = Storage::open(&config).await.unwrap();
    let meta_ref = MetaRef::new(NAMESPACE, CLUSTER).unwrap();
    let name = SessionName::new(session).unwrap();
    let started = Instant::now();
    let meta: SessionMetadata =
        serde_json::from_slice(&storage.get(&meta_ref.metadata(&name)).await.unwrap()).unwrap();
    let loaded = ray_history_server::loader::load(&storage, meta, Vec::new(), None)
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{secs:.3} {:.0} {}",
        peak_rss_mib(),
        loaded.state.tasks.len()
    );
}

fn cold_load(
    exe: &Path,
    target: &str,
    connection: Option<&str>,
    session: &str,
) -> (f64, f64, usize) {
    let mut cmd = Command::new(exe);
    cmd.args(["load", target, session]);
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
    let mut report = Vec::new();
    for tasks in [100_000u64, 1_000_000] {
        let started = Instant::now();
        let files = generate(tasks);
        let bytes: usize = files.iter().map(|f| f.2.len()).sum();
        store_session(&local, tasks, &files).await;
        let t_local = started.elapsed();
        store_session(&azure, tasks, &files).await;
        drop(files);
        eprintln!(
            "generated {tasks} tasks: {} MiB in 36+2 files (local {:.1}s, azurite {:.1}s)",
            bytes >> 20,
            t_local.as_secs_f64(),
            started.elapsed().as_secs_f64() - t_local.as_secs_f64()
        );
        let session = session_name(tasks);
        let (secs, rss, n) = cold_load(&exe, local_root.to_str().unwrap(), None, &session);
        report.push(format!("cold load {tasks} tasks, local disk: {secs:.2} s, peak RSS {rss:.0} MiB ({n} rows, {} MiB of events)", bytes >> 20));
        let (secs, rss, n) = cold_load(&exe, "bench", Some(&azurite.connection_string()), &session);
        report.push(format!(
            "cold load {tasks} tasks, Azurite:    {secs:.2} s, peak RSS {rss:.0} MiB ({n} rows)"
        ));
        eprintln!("{}", report[report.len() - 2..].join("\n"));
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
        let server = start_server(&server_bin, &env);
        for tasks in [100_000u64, 1_000_000] {
            let prefix = format!(
                "{}/sessions/{NAMESPACE}/{CLUSTER}/{}",
                server.base,
                session_name(tasks)
            );
            let url = format!("{prefix}/api/v0/tasks?limit=100");
            let (first, _) = curl_time(&url);
            // Warm up (connections, allocator, page cache writeback) before measuring.
            wrk(&url, "5s");
            let summary = wrk_summary(&wrk(&url, "15s"));
            report.push(format!("{label}: warm api/v0/tasks?limit=100 ({tasks} tasks) wrk -c 64: {summary} (first, cold request {first:.2} s)"));
            eprintln!("{}", report.last().unwrap());
        }
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
            let connection = std::env::var("BENCH_AZURE_CONNECTION_STRING").ok();
            load(&args[2], connection, &args[3]).await
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
                "usage: bench-server [run [<work dir>] | load <storage> <session>] (got {other})"
            );
            std::process::exit(2);
        }
    }
}
