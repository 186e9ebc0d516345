//! Shared pieces of the collector's integration tests: a fake Ray dir (session dir, port file,
//! `session_latest`), the collector binary as a child process, and byte-for-byte comparison of
//! files with their objects.
#![allow(dead_code)]

pub mod kills;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use object_store::path::Path as Key;
use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::{Azurite, MotoS3, free_port};

pub const CLUSTER: &str = "itest";
pub const NODE: &str = "2c19cf3212f28247c3219bcfea6f3840dda46c43df2052e23770e17e";
pub const SESSION: &str = "session_2026-11-21_04-23-31_898414_12602";

/// A Ray temp dir with one live session, as a Ray node leaves it.
pub struct FakeRay {
    pub root: tempfile::TempDir,
}

impl FakeRay {
    pub fn new() -> FakeRay {
        FakeRay::with_session(SESSION)
    }

    pub fn with_session(name: &str) -> FakeRay {
        let root = tempfile::Builder::new().prefix("rhc").tempdir().unwrap();
        let session = root.path().join(name);
        std::fs::create_dir_all(session.join("logs/events")).unwrap();
        std::fs::write(session.join(format!("metrics_agent_port_{NODE}")), "1").unwrap();
        std::os::unix::fs::symlink(&session, root.path().join("session_latest")).unwrap();
        FakeRay { root }
    }

    pub fn logs(&self) -> PathBuf {
        self.root.path().join(SESSION).join("logs")
    }
}

/// Where the collector under test writes.
pub struct Target {
    pub storage: Storage,
    pub env: Vec<(String, String)>,
}

impl Target {
    pub async fn azurite(azurite: &Azurite, container: &str) -> Target {
        Target::with_config(
            azurite.storage_config(container),
            vec![
                ("STORAGE".into(), "azureblob".into()),
                (
                    "AZURE_STORAGE_CONNECTION_STRING".into(),
                    azurite.connection_string(),
                ),
                ("AZURE_STORAGE_CONTAINER".into(), container.into()),
            ],
        )
        .await
    }

    /// Local disk under `dir`.
    pub async fn local(dir: &Path) -> Target {
        Target::with_config(
            StorageConfig::local(dir),
            vec![
                ("STORAGE".into(), "local".into()),
                ("LOCAL_STORAGE_PATH".into(), dir.display().to_string()),
            ],
        )
        .await
    }

    /// A bucket of a moto S3 server.
    pub async fn s3(moto: &MotoS3, bucket: &str) -> Target {
        Target::with_config(moto.storage_config(bucket), moto.env(bucket)).await
    }

    async fn with_config(config: StorageConfig, env: Vec<(String, String)>) -> Target {
        let storage = Storage::open(&config).await.unwrap();
        Target { storage, env }
    }
}

pub fn cluster() -> ClusterRef {
    ClusterRef::new(CLUSTER, "local").unwrap()
}

pub fn meta() -> MetaRef {
    MetaRef::new("default", CLUSTER).unwrap()
}

pub fn session() -> SessionName {
    SessionName::new(SESSION).unwrap()
}

pub fn node() -> NodeId {
    NodeId::new(NODE).unwrap()
}

/// The collector binary, running.
pub struct Collector {
    child: Option<Child>,
    pub metrics_port: u16,
    pub events_port: u16,
    pub log: PathBuf,
}

impl Collector {
    /// Starts `ray-history-collector run` on `ray_root`, with `extra` settings.
    pub fn start(ray_root: &Path, target: &Target, extra: &[(&str, &str)]) -> Collector {
        Collector::start_with_events_port(ray_root, target, extra, free_port())
    }

    /// Like [`Collector::start`], with the event receiver on `events_port` (so posters keep
    /// one address across restarts).
    pub fn start_with_events_port(
        ray_root: &Path,
        target: &Target,
        extra: &[(&str, &str)],
        events_port: u16,
    ) -> Collector {
        let metrics_port = free_port();
        // Outside the watched dir, so the collector's own log does not wake it up.
        let log = std::env::temp_dir().join(format!("rhc-collector-{metrics_port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ray-history-collector"));
        command
            .env_clear()
            .env("RAY_TMP_ROOT", ray_root)
            .env("RAY_CLUSTER_NAME", CLUSTER)
            .env("FLUSH_INTERVAL", "500ms")
            .env("METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("EVENTS_LISTEN", format!("127.0.0.1:{events_port}"))
            .env("RUST_LOG", "info,ray_history_collector=debug")
            .envs(target.env.iter().map(|(k, v)| (k, v)))
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file);
        let child = command.spawn().expect("cannot start the collector binary");
        Collector {
            child: Some(child),
            metrics_port,
            events_port,
            log,
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("collector exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "collector not ready:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        reqwest::get(&url).await.unwrap().text().await.unwrap()
    }

    /// SIGKILL: no flush, no checkpoint save beyond the last one.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits until the process aborts (a test hook fired) within `timeout`.
    pub fn wait_abort(mut self, timeout: Duration) {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(
                    status.signal(),
                    Some(Signal::SIGABRT as i32),
                    "collector exited with {status}, not by its hook:\n{}",
                    self.log_text()
                );
                return;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!(
                    "collector did not reach its hook within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for a clean exit (0) within `timeout`.
    pub fn terminate(mut self, timeout: Duration) {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "collector exited with {status}:\n{}",
                    self.log_text()
                );
                return;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!(
                    "collector did not stop within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// The object for a file under the session's `logs/`.
pub fn log_key(relative: &str) -> Key {
    cluster().log_file(&session(), &node(), relative).unwrap()
}

/// Every regular file under `logs` by relative path.
pub fn files_under(logs: &Path) -> Vec<(String, PathBuf)> {
    walk(logs, logs)
}

fn walk(base: &Path, dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(walk(base, &entry.path()));
        } else if kind.is_file() {
            let rel = entry
                .path()
                .strip_prefix(base)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            out.push((rel, entry.path()));
        }
    }
    out.sort();
    out
}

/// Differences between the files under `logs` and their objects (empty when mirrored).
pub async fn differences(
    storage: &Storage,
    logs: &Path,
    key_of: impl Fn(&str) -> Key,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (relative, path) in files_under(logs) {
        let Ok(on_disk) = std::fs::read(&path) else {
            continue;
        };
        match storage.get(&key_of(&relative)).await {
            Ok(object) if object[..] == on_disk[..] => {}
            Ok(object) => diffs.push(format!(
                "{relative}: object {} bytes, file {} bytes{}",
                object.len(),
                on_disk.len(),
                if object.len() > on_disk.len() && object.starts_with(&on_disk) {
                    " (object has extra bytes)"
                } else {
                    ""
                }
            )),
            Err(e) => diffs.push(format!("{relative}: {e}")),
        }
    }
    diffs
}

/// Waits until every file equals its object.
pub async fn wait_mirrored(storage: &Storage, logs: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let diffs = differences(storage, logs, log_key).await;
        if diffs.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not mirrored after {timeout:?}: {diffs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Appends `text` to a file (creating it).
pub fn append(path: &Path, text: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text).unwrap();
}
