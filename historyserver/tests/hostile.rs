//! Hostile requests against the server binary, run as a child process over local-disk
//! storage so its RSS is its own: 16 concurrent whole downloads of a 1.5 GB log, a gzip bomb,
//! a newline-free 300 MB log tailed, malformed ranges, deeply nested query values and
//! thousands of connections that send nothing or trickle. Throughout, the server's RSS must
//! stay within idle + 256 MiB and `/healthz` must answer within 100 ms (release builds:
//! `cargo test --release -p ray-history-server --test hostile -- --nocapture` prints the
//! figures).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ray_history_storage::layout::{ClusterRef, NodeId, SessionName};
use ray_history_storage::{Storage, StorageConfig};
use tokio::io::AsyncWriteExt;

const NODE: &str = "3a9b4df81080f082d6c30fd89c7aae18fdbdc0df8d6543f09ff1df38";
const SESSION: &str = "session_2026-11-21_05-21-56_756984_14093";
const BIG: u64 = 1_500_000_000;
const FLAT: u64 = 300_000_000;
const BOMB: u64 = 2 << 30;
const DOWNLOADS: usize = 16;
/// The budgets the issue sets.
const RSS_BUDGET_KIB: u64 = 256 * 1024;
/// 100 ms as the issue asks, in release builds; unoptimized hyper and tokio are about ten
/// times slower, so a debug build (plain `cargo test`) on a 2-core machine gets 1 s.
const HEALTHZ_BUDGET: Duration = if cfg!(debug_assertions) {
    Duration::from_secs(1)
} else {
    Duration::from_millis(100)
};
/// Tail caps of the server (`logs::MAX_TAIL_BYTES`).
const MAX_TAIL_BYTES: usize = 16 * 1024 * 1024;

const PHASES: [&str; 6] = [
    "downloads",
    "gzip bomb",
    "newline-free tail",
    "malformed ranges",
    "nested query values",
    "slow clients",
];

/// The server process, killed when the test ends however it ends.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("server process status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

/// Per-phase peaks of the server's RSS and of `/healthz` latency, sampled every 200 ms.
#[derive(Default)]
struct Samples {
    phase: AtomicUsize,
    stop: AtomicBool,
    peaks: std::sync::Mutex<[(u64, Duration); PHASES.len()]>,
}

/// Raises this process's open-file limit to its hard limit (the server inherits it) and
/// returns how many slow connections fit on both sides.
fn raise_fd_limit() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    (hard.saturating_sub(500) as usize).min(10_000)
}

fn log_path(root: &Path, relative: &str) -> PathBuf {
    let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
    let key = cluster
        .log_file(
            &SessionName::new(SESSION).unwrap(),
            &NodeId::new(NODE).unwrap(),
            relative,
        )
        .unwrap();
    root.join(key.as_ref())
}

/// A file of `len` zero bytes, sparse so it costs neither time nor disk.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// 2 GiB of zeros, gzipped (about 2 MB).
fn gzip_bomb(path: &Path) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..BOMB >> 20 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap().flush().unwrap();
}

fn start_server(root: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_ray-history-server"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--storage", "local", "--local-storage-path"])
        .arg(root)
        .args(["--refresh-interval", "1h"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server binary");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// One `/healthz` over a fresh connection (as a kubelet probes), with blocking I/O on its
/// own thread so the test's busy runtime does not count in the latency.
fn healthz(addr: &str) -> Duration {
    use std::io::Read;
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect for /healthz");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("a /healthz answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    started.elapsed()
}

/// A whole download as `Range: bytes=0-`, read to the end by a plain HTTP/1.1 client (the
/// test's own CPU use stays small, so the figures are the server's).
async fn download(addr: &str, path: &str) {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let body_start = loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the headers");
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 206"), "{text}");
    assert!(
        text.contains(&format!("content-range: bytes 0-{}/{BIG}", BIG - 1)),
        "{text}"
    );
    assert!(text.contains(&format!("content-length: {BIG}")), "{text}");
    let mut read = (head.len() - body_start) as u64;
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    assert_eq!(read, BIG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_stay_bounded() {
    let slow_clients = raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&StorageConfig::local(dir.path()))
        .await
        .unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/live-export/session");
    support::upload_session(&storage, &data, SESSION, NODE).await;
    sparse(&log_path(dir.path(), "big.log"), BIG);
    sparse(&log_path(dir.path(), "flat.log"), FLAT);
    let bomb = log_path(dir.path(), "bomb.log.gz");
    let setup = Instant::now();
    tokio::task::spawn_blocking(move || gzip_bomb(&bomb))
        .await
        .unwrap();
    println!(
        "gzip bomb written in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let server = Arc::new(start_server(dir.path()));
    let addr = server.base.trim_start_matches("http://").to_string();
    let ready = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!(
        "{}/sessions/{}/{}/{SESSION}",
        server.base,
        support::NAMESPACE,
        support::CLUSTER
    );
    let file = |q: &str| format!("{base}/api/v0/logs/file?node_id={NODE}&{q}");
    let client = reqwest::Client::new();
    // Idle: started, with the session loaded (the cache is steady state, not per request).
    let warm = client.get(file("filename=big.log&lines=1")).send().await;
    assert_eq!(warm.unwrap().status(), 200);
    let idle = server.rss_kib();

    let samples = Arc::new(Samples::default());
    let monitor = std::thread::spawn({
        let (server, samples, addr) = (server.clone(), samples.clone(), addr.clone());
        move || {
            while !samples.stop.load(Ordering::Relaxed) {
                let latency = healthz(&addr);
                let rss = server.rss_kib();
                let phase = samples.phase.load(Ordering::Relaxed);
                let mut peaks = samples.peaks.lock().unwrap();
                peaks[phase].0 = peaks[phase].0.max(rss);
                peaks[phase].1 = peaks[phase].1.max(latency);
                drop(peaks);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let started = Instant::now();
    let mut took = [Duration::ZERO; PHASES.len()];
    let mut phase_started = Instant::now();
    let mut enter = |phase: usize| {
        took[phase - 1] = phase_started.elapsed();
        phase_started = Instant::now();
        samples.phase.store(phase, Ordering::Relaxed);
    };

    // 1. Whole downloads as ranges, read fully.
    let path = file("filename=big.log");
    let path = path.trim_start_matches(&server.base);
    let downloads = (0..DOWNLOADS).map(|_| download(&addr, path));
    futures::future::join_all(downloads).await;

    // 2. A gzip bomb: refused past the inflate cap, naming it.
    enter(1);
    let bomb = file("filename=bomb.log.gz&lines=10");
    let bombs = (0..4).map(|_| support::get_json(&bomb));
    for (status, body) in futures::future::join_all(bombs).await {
        assert_eq!(status, 422, "{body}");
        let msg = body["msg"].as_str().unwrap();
        assert!(msg.contains("256 MiB"), "{msg}");
    }

    // 3. lines=1000 on a log without newlines: the last bytes, at most the cap.
    enter(2);
    let tails = (0..4).map(|_| {
        let (client, url) = (client.clone(), file("filename=flat.log&lines=1000"));
        async move {
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.bytes().await.unwrap().len(), MAX_TAIL_BYTES);
        }
    });
    futures::future::join_all(tails).await;

    // 4. Malformed and unsatisfiable ranges: 416 naming the size; other units ignored.
    enter(3);
    for bad in [
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=5-1",
        "bytes=-0",
        "bytes=1500000000-",
        "bytes=0-1,5-9",
        "bytes=--1",
        "bytes=18446744073709551616-",
        "bytes 0-1",
    ] {
        let response = client
            .get(file("filename=big.log"))
            .header("Range", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 416, "{bad}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes */{BIG}")
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["result"], false, "{bad}");
    }
    let lines_unit = client
        .get(file("filename=big.log&lines=1"))
        .header("Range", "lines=5")
        .send()
        .await
        .unwrap();
    assert_eq!(lines_unit.status(), 200);
    let one = client
        .get(file("filename=big.log"))
        .header("Range", "bytes=-1")
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 206);
    assert_eq!(one.bytes().await.unwrap().len(), 1);

    // 5. Deeply nested values in query parameters: an answer, never a 5xx or a crash.
    enter(4);
    // Far past serde_json's recursion limit (128), within what a URI may hold.
    let nested = format!("{}{}", "[{\"a\":".repeat(1_000), "1");
    let nested: String = url::form_urlencoded::byte_serialize(nested.as_bytes()).collect();
    for path in [
        "api/v0/tasks?filter_keys=name&filter_predicates=%3D&filter_values=",
        "api/v0/actors?filter_keys=state&filter_predicates=%3D&filter_values=",
        "api/v0/logs?node_id=",
        "api/v0/logs/file?filename=",
        "api/jobs/?limit=",
    ] {
        let response = client
            .get(format!("{base}/{path}{nested}"))
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .unwrap();
        assert!(
            response.status().as_u16() < 500,
            "{path}: {}",
            response.status()
        );
    }
    let index = client
        .get(format!("{}/api/sessions?cluster={nested}", server.base))
        .send()
        .await
        .map_err(reqwest::Error::without_url)
        .unwrap();
    assert!(index.status().as_u16() < 500, "{}", index.status());

    // 6. Connections that send nothing, or a request one byte at a time.
    enter(5);
    let connections = futures::stream::iter(0..slow_clients)
        .map(|_| tokio::net::TcpStream::connect(addr.clone()))
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await;
    let mut sockets: Vec<_> = connections.into_iter().map(Result::unwrap).collect();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
    for step in 0..10 {
        for socket in sockets.iter_mut().skip(1).step_by(2) {
            // A closed connection is the server's right (a timeout); the point is its memory.
            let _ = socket.write_all(&request[step..step + 1]).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let probe = addr.clone();
    let still_healthy = tokio::task::spawn_blocking(move || healthz(&probe))
        .await
        .unwrap();
    drop(sockets);
    took[PHASES.len() - 1] = phase_started.elapsed();

    samples.stop.store(true, Ordering::Relaxed);
    monitor.join().unwrap();
    let peaks = *samples.peaks.lock().unwrap();
    println!("idle RSS: {} MiB", idle / 1024);
    println!("phase                 peak RSS above idle   max /healthz   took");
    for ((name, (rss, latency)), took) in PHASES.iter().zip(peaks).zip(took) {
        if latency.is_zero() {
            println!(
                "{name:<22}{:>8} {:>21} {:>6.1} s",
                "-",
                "-",
                took.as_secs_f64()
            );
            continue;
        }
        println!(
            "{name:<22}{:>8.1} MiB {:>17.1} ms {:>6.1} s",
            rss.saturating_sub(idle) as f64 / 1024.0,
            latency.as_secs_f64() * 1000.0,
            took.as_secs_f64()
        );
    }
    let peak = peaks.iter().map(|p| p.0).max().unwrap();
    let slowest = peaks.iter().map(|p| p.1).max().unwrap().max(still_healthy);
    println!(
        "overall: peak RSS {:.1} MiB above idle, max /healthz {:.1} ms, {slow_clients} slow clients, {:.0} s",
        peak.saturating_sub(idle) as f64 / 1024.0,
        slowest.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    );
    assert!(
        peak.saturating_sub(idle) < RSS_BUDGET_KIB,
        "server RSS grew by {} MiB",
        (peak - idle) / 1024
    );
    assert!(slowest < HEALTHZ_BUDGET, "/healthz took {slowest:?}");
}
