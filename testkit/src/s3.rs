//! A real S3-compatible server: moto in server mode (from PyPI, in the tools venv).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::process::{Group, free_port, http_get, http_request};
use ray_history_storage::config::{Backend, S3Config, StorageConfig};
use ray_history_storage::redact::Secret;

/// How long moto may take to answer after starting (it imports a lot of Python).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Moto accepts any credentials; these only have to be present.
const ACCESS_KEY_ID: &str = "testing";
const SECRET_ACCESS_KEY: &str = "testing-secret";
const REGION: &str = "us-east-1";

/// A running moto S3 server (in-memory). Stopped by process id when dropped.
#[derive(Debug)]
pub struct MotoS3 {
    port: u16,
    _dir: TempDir,
    process: Group,
}

impl MotoS3 {
    /// Starts moto on a free port and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("moto-")
            .tempdir()
            .expect("cannot create a temp dir for moto");
        let port = free_port();
        let mut command = Command::new(super::tool("venv/bin/moto_server"));
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let mut process = Group::spawn(
            command,
            &dir.path().join("moto.log"),
            Signal::SIGKILL,
            Duration::from_secs(1),
            dir.path(),
        );
        let deadline = Instant::now() + START_TIMEOUT;
        while http_get(Ipv4Addr::LOCALHOST, port, "/moto-api/").is_none() {
            if !process.running() || Instant::now() > deadline {
                let tail = process.log_tail(4000);
                process.kill();
                panic!("moto did not start on port {port}:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            port,
            _dir: dir,
            process,
        }
    }

    /// One server shared by every test of the test binary.
    pub fn shared() -> &'static MotoS3 {
        static SHARED: OnceLock<MotoS3> = OnceLock::new();
        SHARED.get_or_init(MotoS3::start)
    }

    /// The endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (if needed) and returns a configuration for it.
    pub fn storage_config(&self, bucket: &str) -> StorageConfig {
        self.create_bucket(bucket);
        StorageConfig {
            backend: Backend::S3(S3Config {
                bucket: bucket.to_string(),
                endpoint: Some(self.endpoint()),
                region: Some(REGION.into()),
                access_key_id: Some(ACCESS_KEY_ID.into()),
                secret_access_key: Some(Secret::new(SECRET_ACCESS_KEY)),
            }),
            prefix: None,
        }
    }

    /// The environment that points the project's binaries at `bucket`.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        self.create_bucket(bucket);
        [
            ("STORAGE", "s3".to_string()),
            ("S3_BUCKET", bucket.to_string()),
            ("S3_ENDPOINT", self.endpoint()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn create_bucket(&self, bucket: &str) {
        // Moto does not check signatures: a bare PUT creates the bucket (200 again if it exists).
        let answer = http_request(
            Ipv4Addr::LOCALHOST,
            self.port,
            "PUT",
            &format!("/{bucket}"),
            b"",
        );
        assert!(
            matches!(answer, Some((200 | 409, _))),
            "cannot create bucket {bucket}: {answer:?}"
        );
    }

    /// The server's log (for panic messages).
    pub fn log_tail(&self) -> String {
        self.process.log_tail(4000)
    }
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        self.process.kill();
    }
}
