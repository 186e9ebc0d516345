//! A real Ray head (`ray start --head --block`) from the project's venv, on free ports and a
//! short temp dir (Ray's socket paths must stay short).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::netns::Netns;
use super::process::{Group, free_port, http_get};

/// How long a head may take until its dashboard answers.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `ray start --block` may take to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Options for [`RayHead::start`].
#[derive(Debug, Clone, Default)]
pub struct RayHeadOptions {
    /// Extra environment for the head (and its drivers), e.g. `RAY_enable_export_api_write=1`.
    pub env: Vec<(String, String)>,
    /// Extra `ray start` arguments.
    pub args: Vec<String>,
    /// The node's address (default 127.0.0.1); the GCS listens there.
    pub node_ip: Option<Ipv4Addr>,
    /// The dashboard's port (default: a free one), for a collector started before Ray.
    pub dashboard_port: Option<u16>,
}

/// A running Ray head. Stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct RayHead {
    temp: TempDir,
    node_ip: Ipv4Addr,
    gcs_port: u16,
    dashboard_port: u16,
    env: Vec<(String, String)>,
    process: Option<Group>,
}

impl RayHead {
    /// Starts a head with one CPU and waits until its dashboard answers `/api/version`.
    pub fn start(options: RayHeadOptions) -> Self {
        Self::start_in(short_temp_dir("rh"), options)
    }

    /// Like [`RayHead::start`], in `temp` (made with [`short_temp_dir`]), so that a collector
    /// can watch it before Ray starts.
    pub fn start_in(temp: TempDir, options: RayHeadOptions) -> Self {
        let ray = super::tool("venv/bin/ray");
        let gcs_port = free_port();
        let node_ip = options.node_ip.unwrap_or(Ipv4Addr::LOCALHOST);
        let dashboard_port = options.dashboard_port.unwrap_or_else(free_port);
        let mut command = Command::new(ray);
        command
            .args([
                "start",
                "--head",
                "--block",
                "--num-cpus=1",
                "--disable-usage-stats",
            ])
            .args(["--include-dashboard=true", "--dashboard-host=127.0.0.1"])
            .arg(format!("--node-ip-address={node_ip}"))
            .arg(format!("--port={gcs_port}"))
            .arg(format!("--dashboard-port={dashboard_port}"))
            // Fixed defaults (10001, 52365, …) would collide with other heads on the machine.
            .arg(format!("--ray-client-server-port={}", free_port()))
            .arg(format!("--dashboard-agent-listen-port={}", free_port()))
            .arg(format!("--dashboard-agent-grpc-port={}", free_port()))
            .arg(format!("--metrics-export-port={}", free_port()))
            .arg(format!("--runtime-env-agent-port={}", free_port()))
            .arg("--temp-dir")
            .arg(temp.path())
            .args(&options.args)
            .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", multi_node(node_ip))
            .env("PATH", venv_path())
            // A token in ~/.ray (from any earlier `ray start`) must not turn on Ray's token auth.
            .env("RAY_AUTH_MODE", "disabled")
            .envs(options.env.iter().map(|(k, v)| (k, v)));
        let log = temp.path().join("ray-start.log");
        let mut group = Group::spawn(command, &log, Signal::SIGTERM, STOP_TIMEOUT, temp.path());
        let deadline = Instant::now() + START_TIMEOUT;
        // The dashboard first, then the head's raylet registered alive: a driver started
        // before that cannot find its node.
        let ready = || {
            matches!(
                http_get(Ipv4Addr::LOCALHOST, dashboard_port, "/api/version"),
                Some((200, _))
            ) && http_get(
                Ipv4Addr::LOCALHOST,
                dashboard_port,
                "/api/v0/nodes?filter_keys=is_head_node&filter_predicates=%3D&filter_values=true",
            )
            .is_some_and(|(status, body)| status == 200 && body.contains(r#""state": "ALIVE""#))
        };
        while !ready() {
            if !group.running() || Instant::now() > deadline {
                let tail = group.log_tail(6000);
                group.kill();
                panic!("the Ray head did not start (dashboard port {dashboard_port}):\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Self {
            temp,
            node_ip,
            gcs_port,
            dashboard_port,
            env: options.env,
            process: Some(group),
        }
    }

    /// The GCS address, `<node ip>:<port>` (what `RAY_ADDRESS` takes).
    pub fn gcs_address(&self) -> String {
        format!("{}:{}", self.node_ip, self.gcs_port)
    }

    /// The dashboard's base URL, `http://127.0.0.1:<port>`.
    pub fn dashboard_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.dashboard_port)
    }

    /// Ray's temp dir (holds `session_latest` and the `session_*` dirs).
    pub fn temp_dir(&self) -> &Path {
        self.temp.path()
    }

    /// The current session dir (`session_latest` resolved).
    pub fn session_dir(&self) -> PathBuf {
        let latest = self.temp.path().join("session_latest");
        std::fs::canonicalize(&latest)
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", latest.display()))
    }

    /// A command for `program` (the venv's `python` or `ray`, say) with the head's
    /// environment and `RAY_ADDRESS`; `with_env` false leaves out the head's extra
    /// environment (a driver that connects without the cluster's settings).
    pub fn command_for(&self, program: &Path, with_env: bool) -> Command {
        let mut command = Command::new(program);
        command
            .env(
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
                multi_node(self.node_ip),
            )
            .env("PATH", venv_path())
            // A token in ~/.ray (from any earlier `ray start`) must not turn on Ray's token auth.
            .env("RAY_AUTH_MODE", "disabled")
            .env("RAY_ADDRESS", self.gcs_address());
        if with_env {
            command.envs(self.env.iter().map(|(k, v)| (k, v)));
        }
        command
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env(
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
                multi_node(self.node_ip),
            )
            .env("PATH", venv_path())
            // A token in ~/.ray (from any earlier `ray start`) must not turn on Ray's token auth.
            .env("RAY_AUTH_MODE", "disabled")
            .env("RAY_ADDRESS", self.gcs_address())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `script` as a Python driver connected to this head (`RAY_ADDRESS` set).
    pub fn run_python(&self, script: &str) -> Output {
        self.command(&super::tool("venv/bin/python"))
            .args(["-c", script])
            .output()
            .expect("cannot run the venv's python")
    }

    /// Submits `entrypoint` (a shell command; `python` is the venv's) as a Ray job and waits
    /// for it to finish.
    pub fn submit_job(&self, entrypoint: &str, submission_id: &str) -> Output {
        self.command(&super::tool("venv/bin/ray"))
            .args(["job", "submit", "--address", &self.dashboard_url()])
            .args([
                "--submission-id",
                submission_id,
                "--",
                "sh",
                "-c",
                entrypoint,
            ])
            .output()
            .expect("cannot run `ray job submit`")
    }

    /// Stops the head: SIGTERM to `ray start --block` (it drains and stops its children),
    /// then SIGKILL to the process group after 60 s.
    pub fn stop(&mut self) {
        stop_gracefully(&mut self.process);
    }
}

impl Drop for RayHead {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A worker node in a [`Netns`], joined to a head: its own temp dir, shown at the head's
/// temp dir path inside the node's mount namespace. Stopped (SIGTERM, then SIGKILL) when
/// dropped.
#[derive(Debug)]
pub struct RayWorker {
    temp: TempDir,
    process: Option<Group>,
}

impl RayWorker {
    /// Starts `ray start --address <head>` in `netns` with one CPU, the extra `env` and
    /// `args`, and waits until the head lists the node alive.
    /// `temp` (made with [`short_temp_dir`]) becomes the node's temp dir.
    pub fn start_in(
        temp: TempDir,
        head: &RayHead,
        netns: &Netns,
        env: &[(String, String)],
        args: &[String],
    ) -> Self {
        let ray = super::tool("venv/bin/ray");
        let mut command = netns.command(&ray, temp.path(), head.temp_dir());
        command
            .args(["start", "--block", "--num-cpus=1", "--disable-usage-stats"])
            .arg(format!("--address={}", head.gcs_address()))
            .arg(format!("--node-ip-address={}", netns.ns_ip()))
            .arg("--temp-dir")
            .arg(head.temp_dir())
            .args(args)
            .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
            .env("PATH", venv_path())
            // A token in ~/.ray (from any earlier `ray start`) must not turn on Ray's token auth.
            .env("RAY_AUTH_MODE", "disabled")
            .envs(env.iter().map(|(k, v)| (k, v)));
        let log = temp.path().join("ray-start.log");
        let mut group = Group::spawn(command, &log, Signal::SIGTERM, STOP_TIMEOUT, temp.path());
        let deadline = Instant::now() + START_TIMEOUT;
        let ip = netns.ns_ip().to_string();
        loop {
            let nodes = http_get(
                Ipv4Addr::LOCALHOST,
                head.dashboard_port,
                "/api/v0/nodes?limit=100",
            )
            .map(|(_, body)| body)
            .unwrap_or_default();
            if nodes.contains(&format!(r#""node_ip": "{ip}""#)) {
                break;
            }
            if !group.running() || Instant::now() > deadline {
                let tail = group.log_tail(6000);
                group.kill();
                panic!("the Ray worker at {ip} did not join:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Self {
            temp,
            process: Some(group),
        }
    }

    /// The worker's own temp dir as this host sees it (its `session_*` dirs).
    pub fn temp_dir(&self) -> &Path {
        self.temp.path()
    }

    /// SIGTERM to `ray start --block`, then SIGKILL to the group after 60 s.
    pub fn stop(&mut self) {
        stop_gracefully(&mut self.process);
    }
}

impl Drop for RayWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM to `ray start --block` (it drains and stops its children), then SIGKILL to the
/// group after [`STOP_TIMEOUT`].
fn stop_gracefully(process: &mut Option<Group>) {
    if let Some(mut group) = process.take() {
        group.signal_leader(Signal::SIGTERM);
        group.wait_for_exit(STOP_TIMEOUT);
        group.kill();
    }
}

/// Ray's switch for multi-node clusters: off for a head alone on loopback (everything binds
/// 127.0.0.1), on for a head that workers join.
fn multi_node(node_ip: Ipv4Addr) -> &'static str {
    if node_ip.is_loopback() { "0" } else { "1" }
}

/// A new temp dir under `/tmp` with a short name (Ray's socket paths must stay short).
pub fn short_temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("cannot create a temp dir under /tmp")
}

/// `PATH` with the venv's `bin` first, so `python` and `ray` in jobs are the project's.
fn venv_path() -> std::ffi::OsString {
    let mut paths = vec![super::tools_dir().join("venv/bin")];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}
