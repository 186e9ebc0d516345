//! A real Azurite blob service on a free port.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::TryStreamExt;
use nix::sys::signal::Signal;
use ray_history_storage::Storage;
use tempfile::TempDir;

use super::process::{Group, free_port, http_get};
use ray_history_storage::config::{AzureAuth, AzureConfig, EMULATOR_ACCOUNT, EMULATOR_KEY};
use ray_history_storage::config::{Backend, StorageConfig};
use ray_history_storage::redact::Secret;

/// How long Azurite may take to answer after starting.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Azurite (blob service only). Stopped by process id when dropped.
#[derive(Debug)]
pub struct Azurite {
    host: Ipv4Addr,
    port: u16,
    dir: TempDir,
    on_disk: bool,
    process: Option<Group>,
}

impl Azurite {
    /// Starts Azurite with in-memory persistence on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::launch(false, Ipv4Addr::LOCALHOST)
    }

    /// Like [`Azurite::start`], listening on `host` (one of this machine's addresses, e.g. the
    /// host side of a [`crate::Netns`] veth pair, so nodes in a namespace reach it too).
    pub fn start_on(host: Ipv4Addr) -> Self {
        Self::launch(false, host)
    }

    /// Like [`Azurite::start`], but keeps the data in a temporary folder so that it survives
    /// [`Azurite::stop`] and [`Azurite::start_again`] (outage tests).
    pub fn start_on_disk() -> Self {
        Self::launch(true, Ipv4Addr::LOCALHOST)
    }

    /// One Azurite shared by every test of the test binary (for tests that need no outage).
    /// Its process ends shortly after the test binary exits.
    pub fn shared() -> &'static Azurite {
        static SHARED: OnceLock<Azurite> = OnceLock::new();
        SHARED.get_or_init(Azurite::start)
    }

    fn launch(on_disk: bool, host: Ipv4Addr) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("azurite-")
            .tempdir()
            .expect("cannot create a temp dir for Azurite");
        let mut azurite = Self {
            host,
            port: free_port(),
            dir,
            on_disk,
            process: None,
        };
        azurite.start_again();
        azurite
    }

    /// Starts Azurite again on the same port after [`Azurite::stop`].
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "Azurite is already running");
        let binary = super::tool("azurite/node_modules/.bin/azurite-blob");
        let mut command = Command::new(binary);
        command.args([
            "--blobHost",
            &self.host.to_string(),
            "--blobPort",
            &self.port.to_string(),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]);
        if self.on_disk {
            command.arg("--location").arg(self.dir.path().join("data"));
        } else {
            command.arg("--inMemoryPersistence");
        }
        let log = self.dir.path().join("azurite.log");
        let mut group = Group::spawn(
            command,
            &log,
            Signal::SIGKILL,
            Duration::from_secs(1),
            self.dir.path(),
        );
        let deadline = Instant::now() + START_TIMEOUT;
        // Any HTTP answer (Azurite says 400 to a bare GET) means it is listening.
        while http_get(self.host, self.port, "/").is_none() {
            if !group.running() || Instant::now() > deadline {
                let tail = group.log_tail(4000);
                group.kill();
                panic!("Azurite did not start on port {}:\n{tail}", self.port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.process = Some(group);
    }

    /// Stops Azurite and waits until it is gone: an on-disk Azurite gets SIGTERM first (it
    /// saves its metadata, ~1 s), then the process group gets SIGKILL.
    /// [`Azurite::start_again`] uses the same port.
    pub fn stop(&mut self) {
        if let Some(mut group) = self.process.take() {
            if self.on_disk {
                group.signal_leader(Signal::SIGTERM);
                group.wait_for_exit(Duration::from_secs(10));
            }
            group.kill();
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Group::pid)
    }

    /// The blob endpoint, `http://<host>:<port>/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}/{EMULATOR_ACCOUNT}", self.host, self.port)
    }

    /// A connection string with the well-known account key and this endpoint.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={EMULATOR_ACCOUNT};AccountKey={EMULATOR_KEY};BlobEndpoint={};",
            self.endpoint()
        )
    }

    /// A storage configuration for `container` (account key auth, container created on use).
    pub fn storage_config(&self, container: &str) -> StorageConfig {
        let azure = AzureConfig::new(
            container.to_string(),
            Some(self.endpoint()),
            Some(EMULATOR_ACCOUNT.to_string()),
            AzureAuth::AccountKey(Secret::new(EMULATOR_KEY)),
            true,
        )
        .expect("valid Azurite configuration");
        StorageConfig {
            backend: Backend::Azure(azure),
            prefix: None,
        }
    }

    /// Creates `container` if needed (opening storage on it does).
    pub async fn create_container(&self, container: &str) {
        Storage::open(&self.storage_config(container))
            .await
            .expect("Azurite opens the container");
    }

    /// Whether `container` exists (opening storage that may not create it tells).
    pub async fn container_exists(&self, container: &str) -> bool {
        let mut config = self.storage_config(container);
        if let Backend::Azure(azure) = &mut config.backend {
            azure.create_container = false;
        }
        Storage::open(&config).await.is_ok()
    }

    /// Deletes every blob in `container`.
    pub async fn empty_container(&self, container: &str) {
        let storage = Storage::open(&self.storage_config(container))
            .await
            .expect("Azurite opens the container");
        let keys: Vec<_> = storage
            .list(None)
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .expect("list");
        for key in keys {
            storage.delete(&key).await.expect("delete");
        }
    }

    /// Creates `container` if needed and returns a SAS token for it (read, add, create, write,
    /// delete, list; valid for a day), without the leading `?`.
    pub async fn container_sas(&self, container: &str) -> String {
        self.container_sas_with(container, "racwdl").await
    }

    /// Creates `container` if needed and returns a service SAS token for it with the
    /// `permissions` letters (`rl`: read and list), valid for a day, without the leading `?`.
    pub async fn container_sas_with(&self, container: &str, permissions: &str) -> String {
        self.create_container(container).await;
        service_sas(
            container,
            permissions,
            chrono::Utc::now() + chrono::TimeDelta::days(1),
        )
    }

    /// Azurite's working folder (its log is `azurite.log` there).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Signs a container's service SAS with the emulator's well-known key. By hand because the
/// product needs no SAS signing (it only uses tokens), and no small crate makes them.
fn service_sas(
    container: &str,
    permissions: &str,
    expiry: chrono::DateTime<chrono::Utc>,
) -> String {
    const VERSION: &str = "2020-12-06";
    let expiry = expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let resource = format!("/blob/{EMULATOR_ACCOUNT}/{container}");
    // The fields of a service SAS since 2020-12-06: permissions, start, expiry, resource,
    // identifier, IP, protocol, version, resource type, snapshot time, encryption scope and
    // five response headers.
    let to_sign = [
        permissions,
        "",
        &expiry,
        &resource,
        "",
        "",
        "",
        VERSION,
        "c",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    .join("\n");
    let key = BASE64
        .decode(EMULATOR_KEY)
        .expect("the well-known key is base64");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let signature = BASE64.encode(aws_lc_rs::hmac::sign(&key, to_sign.as_bytes()));
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", VERSION)
        .append_pair("se", &expiry)
        .append_pair("sr", "c")
        .append_pair("sp", permissions)
        .append_pair("sig", &signature)
        .finish()
}
