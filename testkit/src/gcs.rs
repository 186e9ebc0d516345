//! A real GCS API server: fake-gcs-server, built from its Go module by `make kube-tools`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::process::{Group, free_port, http_get, http_request};
use ray_history_storage::config::{Backend, GcsConfig, StorageConfig};

/// How long fake-gcs-server may take to answer after starting.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running fake-gcs-server (in-memory, plain HTTP). Stopped by process id when dropped.
#[derive(Debug)]
pub struct FakeGcs {
    port: u16,
    dir: TempDir,
    process: Group,
}

impl FakeGcs {
    /// Starts fake-gcs-server on a free port and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fake-gcs-")
            .tempdir()
            .expect("cannot create a temp dir for fake-gcs-server");
        let port = free_port();
        let mut command = Command::new(super::tool("kube/bin/fake-gcs-server"));
        command.args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-log-level",
            "warn",
        ]);
        let mut process = Group::spawn(
            command,
            &dir.path().join("fake-gcs.log"),
            Signal::SIGKILL,
            Duration::from_secs(1),
            dir.path(),
        );
        let deadline = Instant::now() + START_TIMEOUT;
        while http_get(Ipv4Addr::LOCALHOST, port, "/storage/v1/b").is_none() {
            if !process.running() || Instant::now() > deadline {
                let tail = process.log_tail(4000);
                process.kill();
                panic!("fake-gcs-server did not start on port {port}:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let gcs = Self { port, dir, process };
        // object_store's GCS client takes its base URL and "no OAuth" from a service account
        // file: the way to point it at an emulator.
        let credentials = serde_json::json!({
            "gcs_base_url": gcs.endpoint(),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        std::fs::write(gcs.credentials_file(), credentials.to_string())
            .expect("cannot write the emulator's credentials file");
        gcs
    }

    /// One server shared by every test of the test binary.
    pub fn shared() -> &'static FakeGcs {
        static SHARED: OnceLock<FakeGcs> = OnceLock::new();
        SHARED.get_or_init(FakeGcs::start)
    }

    /// The endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The service account file that points a client at this server.
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("credentials.json")
    }

    /// Creates `bucket` (if needed) and returns a configuration for it.
    pub fn storage_config(&self, bucket: &str) -> StorageConfig {
        self.create_bucket(bucket);
        StorageConfig {
            backend: Backend::Gcs(GcsConfig {
                bucket: bucket.to_string(),
                credentials_file: Some(self.credentials_file()),
            }),
            prefix: None,
        }
    }

    /// The environment that points the project's binaries at `bucket`.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        self.create_bucket(bucket);
        vec![
            ("STORAGE".into(), "gcs".into()),
            ("GCS_BUCKET".into(), bucket.into()),
            (
                "GOOGLE_APPLICATION_CREDENTIALS".into(),
                self.credentials_file().display().to_string(),
            ),
        ]
    }

    fn create_bucket(&self, bucket: &str) {
        let body = serde_json::json!({ "name": bucket }).to_string();
        let answer = http_request(
            Ipv4Addr::LOCALHOST,
            self.port,
            "POST",
            "/storage/v1/b?project=test",
            body.as_bytes(),
        );
        assert!(
            matches!(answer, Some((200 | 409, _))),
            "cannot create bucket {bucket}: {answer:?}"
        );
    }

    /// Stores an object through the JSON API's media upload. fake-gcs-server (v1.56) does not
    /// take the XML API uploads `object_store` makes, so tests seed objects this way.
    pub fn upload(&self, bucket: &str, name: &str, data: &[u8]) {
        let path = format!(
            "/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            percent_encode(name)
        );
        let answer = http_request(Ipv4Addr::LOCALHOST, self.port, "POST", &path, data);
        assert!(
            matches!(answer, Some((200, _))),
            "cannot upload {name}: {answer:?}"
        );
    }

    /// The server's log (for panic messages).
    pub fn log_tail(&self) -> String {
        self.process.log_tail(4000)
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        self.process.kill();
    }
}

/// Percent-encodes everything but unreserved characters (an object name in a query).
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
