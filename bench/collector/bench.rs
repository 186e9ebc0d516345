//! Collector benchmark (`make bench-collector`), against a real Azurite on disk.
//!
//! 1. One-shot: a generated session-like tree (2,000 files, about 1 GiB, sizes from a few
//!    bytes to 200 MiB) uploaded by `ray-history-collector sync` and by `rclone copy`,
//!    alternating, each into a fresh container: wall time, throughput ratio, CPU seconds and
//!    peak RSS (from `/usr/bin/time -v`).
//! 2. Streaming: 200 files appended at 5 MB/s in total for 60 s while the collector runs:
//!    its CPU use and peak RSS, and the lag from a write to the bytes being visible in storage.
//!
//! Settings (environment): BENCH_FILES (2000), BENCH_MIB (1024), BENCH_ROUNDS (2),
//! STREAM_FILES (200), STREAM_MBPS (5), STREAM_SECONDS (60), COLLECTOR_BIN
//! (target/release/ray-history-collector).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use ray_history_storage::Storage;
use ray_history_testkit::{Azurite, workspace_root};

const NODE: &str = "2c19cf3212f28247c3219bcfea6f3840dda46c43df2052e23770e17e";
const SESSION: &str = "session_2026-11-21_04-23-31_898414_12602";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A session dir as a Ray node leaves it, with `files` files totalling about `mib` MiB.
fn generate_tree(root: &Path, files: usize, mib: u64) -> (PathBuf, u64) {
    let session = root.join(SESSION);
    let logs = session.join("logs");
    std::fs::create_dir_all(logs.join("events")).unwrap();
    std::fs::create_dir_all(logs.join("export_events")).unwrap();
    std::fs::write(session.join(format!("metrics_agent_port_{NODE}")), "1").unwrap();
    let mib_bytes = 1024 * 1024;
    // A few big files carry most of the volume, like raylet.out and busy worker logs.
    let mut sizes: Vec<u64> = vec![200 * mib_bytes, 150 * mib_bytes];
    sizes.extend(std::iter::repeat_n(40 * mib_bytes, 5));
    sizes.extend(std::iter::repeat_n(10 * mib_bytes, 15));
    sizes.extend(std::iter::repeat_n(mib_bytes, 120));
    let target = mib * mib_bytes;
    let big: u64 = sizes.iter().sum::<u64>().min(target);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let small_count = files.saturating_sub(sizes.len()).max(1) as u64;
    let left = target.saturating_sub(big);
    for _ in 0..small_count {
        sizes.push(rng.random_range(1..=(2 * left / small_count).max(2)));
    }
    sizes.truncate(files);
    let line: Vec<u8> = (0..4096u32)
        .map(|i| {
            if i % 97 == 96 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    let mut total = 0;
    for (i, size) in sizes.iter().enumerate() {
        let dir = match i % 10 {
            0 => "events/",
            1 => "export_events/",
            _ => "",
        };
        let path = logs.join(format!("{dir}worker-{i:05}.log"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut left = *size;
        while left > 0 {
            let n = left.min(line.len() as u64) as usize;
            file.write_all(&line[..n]).unwrap();
            left -= n as u64;
        }
        total += size;
    }
    (session, total)
}

/// What `/usr/bin/time -v` reported.
#[derive(Debug, Clone, Copy)]
struct Usage {
    wall: f64,
    cpu: f64,
    max_rss_mib: f64,
}

fn timed(command: Command, label: &str) -> Usage {
    let report = std::env::temp_dir().join(format!("bench-time-{}.txt", std::process::id()));
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = command
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args)
        .envs(envs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("cannot run /usr/bin/time");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "{label} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&report).unwrap();
    std::fs::remove_file(&report).ok();
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Usage {
        wall,
        cpu: field("User time (seconds):") + field("System time (seconds):"),
        max_rss_mib: field("Maximum resident set size (kbytes):") / 1024.0,
    }
}

fn collector_bin() -> PathBuf {
    std::env::var_os("COLLECTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/ray-history-collector"))
}

fn azure_env(azurite: &Azurite, container: &str) -> Vec<(String, String)> {
    vec![
        ("STORAGE".into(), "azureblob".into()),
        (
            "AZURE_STORAGE_CONNECTION_STRING".into(),
            azurite.connection_string(),
        ),
        ("AZURE_STORAGE_CONTAINER".into(), container.into()),
        ("RAY_CLUSTER_NAME".into(), "bench".into()),
        ("RUST_LOG".into(), "warn".into()),
    ]
}

fn block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

/// `rclone copy` to a container through a container SAS URL (this rclone's emulator mode
/// builds a URL without a scheme, and its endpoint option cannot hold a path).
fn rclone_copy(azurite: &Azurite, from: &Path, container: &str, prefix: &str) -> Command {
    let token = block(azurite.container_sas(container));
    let url = format!("{}/{container}?{token}", azurite.endpoint());
    let mut command = Command::new("rclone");
    command
        .arg("copy")
        .arg(from)
        .arg(format!("az:{container}/{prefix}"))
        .env("RCLONE_CONFIG_AZ_TYPE", "azureblob")
        .env("RCLONE_CONFIG_AZ_SAS_URL", url);
    command
}

fn empty_container(azurite: &Azurite, container: &str) {
    block(azurite.empty_container(container));
}

fn one_shot(azurite: &Azurite) {
    let files = env_or("BENCH_FILES", 2000usize);
    let mib = env_or("BENCH_MIB", 1024u64);
    let rounds = env_or("BENCH_ROUNDS", 2usize);
    let dir = tempfile::Builder::new()
        .prefix("bench-tree")
        .tempdir()
        .unwrap();
    let generated = Instant::now();
    let (session, total) = generate_tree(dir.path(), files, mib);
    let total_mib = total as f64 / 1048576.0;
    println!(
        "one-shot: {files} files, {total_mib:.0} MiB generated in {:.1}s",
        generated.elapsed().as_secs_f64()
    );
    let mut results: HashMap<&str, Vec<Usage>> = HashMap::new();
    for round in 0..rounds {
        for tool in ["collector", "rclone"] {
            let container = format!("bench-{tool}-{round}");
            let usage = match tool {
                "collector" => {
                    let mut command = Command::new(collector_bin());
                    command
                        .arg("sync")
                        .arg(&session)
                        .envs(azure_env(azurite, &container));
                    timed(command, "collector sync")
                }
                _ => {
                    let prefix = format!("log/bench_local/{SESSION}/logs/{NODE}");
                    timed(
                        rclone_copy(azurite, &session.join("logs"), &container, &prefix),
                        "rclone copy",
                    )
                }
            };
            println!(
                "  round {round} {tool:9}: {:6.2}s  {:7.1} MiB/s  cpu {:6.2}s  peak RSS {:6.1} MiB",
                usage.wall,
                total_mib / usage.wall,
                usage.cpu,
                usage.max_rss_mib
            );
            results.entry(tool).or_default().push(usage);
            empty_container(azurite, &container);
        }
    }
    let mean = |tool: &str, f: fn(&Usage) -> f64| {
        let runs = &results[tool];
        runs.iter().map(f).sum::<f64>() / runs.len() as f64
    };
    let (cw, rw) = (mean("collector", |u| u.wall), mean("rclone", |u| u.wall));
    println!(
        "one-shot summary: collector {:.1} MiB/s, rclone {:.1} MiB/s, throughput ratio {:.2}",
        total_mib / cw,
        total_mib / rw,
        rw / cw
    );
    println!(
        "  cpu seconds: collector {:.2}, rclone {:.2}; peak RSS MiB: collector {:.1}, rclone {:.1}",
        mean("collector", |u| u.cpu),
        mean("rclone", |u| u.cpu),
        results["collector"]
            .iter()
            .map(|u| u.max_rss_mib)
            .fold(0.0, f64::max),
        results["rclone"]
            .iter()
            .map(|u| u.max_rss_mib)
            .fold(0.0, f64::max)
    );
}

/// CPU ticks (user + system) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn streaming(azurite: &Azurite) {
    let files = env_or("STREAM_FILES", 200usize);
    let mbps = env_or("STREAM_MBPS", 5.0f64);
    let seconds = env_or("STREAM_SECONDS", 60u64);
    let flush = Duration::from_secs(2);
    let root = tempfile::Builder::new()
        .prefix("bench-ray")
        .tempdir()
        .unwrap();
    let session = root.path().join(SESSION);
    let logs = session.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(session.join(format!("metrics_agent_port_{NODE}")), "1").unwrap();
    std::os::unix::fs::symlink(&session, root.path().join("session_latest")).unwrap();
    let container = "bench-stream";
    let log =
        std::fs::File::create(std::env::temp_dir().join("bench-collector-stream.log")).unwrap();
    let mut child = Command::new(collector_bin())
        .env("RAY_TMP_ROOT", root.path())
        .env("FLUSH_INTERVAL", "2s")
        .env("EVENTS_LISTEN", "off")
        .env("METRICS_LISTEN", "off")
        .envs(azure_env(azurite, container))
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(2));

    // Writer: every 100 ms, (rate / 10) bytes spread over all files; records when each
    // file reached each length.
    let stop = Arc::new(AtomicBool::new(false));
    let writes: Arc<Mutex<Vec<(usize, u64, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, writes, logs) = (Arc::clone(&stop), Arc::clone(&writes), logs.clone());
        std::thread::spawn(move || {
            let per_tick = (mbps * 1_000_000.0 / 10.0) as usize / files;
            let mut handles: Vec<std::fs::File> = (0..files)
                .map(|i| std::fs::File::create(logs.join(format!("worker-{i:03}.out"))).unwrap())
                .collect();
            let mut lens = vec![0u64; files];
            let mut line = 0u64;
            let started = Instant::now();
            let mut tick = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for (i, handle) in handles.iter_mut().enumerate() {
                    let mut chunk = Vec::with_capacity(per_tick);
                    while chunk.len() < per_tick {
                        chunk.extend_from_slice(
                            format!("{line:010} some log text of a busy worker\n").as_bytes(),
                        );
                        line += 1;
                    }
                    handle.write_all(&chunk).unwrap();
                    lens[i] += chunk.len() as u64;
                    if i % 10 == 0 {
                        writes.lock().unwrap().push((i, lens[i], Instant::now()));
                    }
                }
                tick += 1;
                let next = started + Duration::from_millis(100) * tick;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            lens.iter().sum::<u64>()
        })
    };

    // Poller: which length of each sampled file is visible, and since when.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let storage = runtime
        .block_on(Storage::open(&azurite.storage_config(container)))
        .unwrap();
    let cluster = ray_history_storage::layout::ClusterRef::new("bench", "local").unwrap();
    let session_name = ray_history_storage::layout::SessionName::new(SESSION).unwrap();
    let node = ray_history_storage::layout::NodeId::new(NODE).unwrap();
    let sampled: Vec<usize> = (0..files).step_by(10).collect();
    let keys: Vec<_> = sampled
        .iter()
        .map(|i| {
            cluster
                .log_file(&session_name, &node, &format!("worker-{i:03}.out"))
                .unwrap()
        })
        .collect();
    let mut visible: Vec<Vec<(u64, Instant)>> = vec![Vec::new(); files];
    let cpu_start = cpu_ticks(pid);
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(seconds) {
        for (i, key) in sampled.iter().zip(&keys) {
            if let Ok(Some(meta)) = runtime.block_on(storage.head(key)) {
                visible[*i].push((meta.size, Instant::now()));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpu_seconds = (cpu_ticks(pid) - cpu_start) as f64 / 100.0;
    let window_secs = window.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let rss = peak_rss_mib(pid);
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();

    // Lag of each sampled write: first time storage showed at least that length.
    let mut lags: Vec<f64> = Vec::new();
    for (file, len, at) in writes.lock().unwrap().iter() {
        if let Some((_, seen)) = visible[*file]
            .iter()
            .find(|(size, seen)| size >= len && seen >= at)
        {
            lags.push(seen.duration_since(*at).as_secs_f64());
        }
    }
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| {
        lags.get(((lags.len() as f64 * p) as usize).min(lags.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "streaming: {files} files, {:.1} MB/s written for {window_secs:.0}s ({:.0} MB), flush interval {flush:?}",
        written as f64 / 1e6 / (window_secs + 2.0),
        written as f64 / 1e6
    );
    println!(
        "  collector cpu {:.1}% of one core, peak RSS {rss:.1} MiB; lag p50 {:.2}s p99 {:.2}s max {:.2}s ({} samples); exit {status}",
        100.0 * cpu_seconds / window_secs,
        pct(0.5),
        pct(0.99),
        lags.last().copied().unwrap_or(f64::NAN),
        lags.len()
    );
}

fn main() {
    assert!(
        collector_bin().exists(),
        "{} is missing: build it with `cargo build --release -p ray-history-collector`",
        collector_bin().display()
    );
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let azurite = Azurite::start_on_disk();
    if which == "all" || which == "one-shot" {
        one_shot(&azurite);
    }
    if which == "all" || which == "streaming" {
        streaming(&azurite);
    }
}
