//! A real Kubernetes control plane (etcd, kube-apiserver, controller manager, scheduler, kwok
//! with one fake node, KubeRay's operator), started by `scripts/kube/up.sh --foreground` in a
//! temporary folder, on free loopback ports. One per test binary: [`ControlPlane::shared`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::process::Group;
use super::{tool, workspace_root};

/// Building is `make kube-tools`' job; starting takes ~20 s, more on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(240);

/// A running control plane; stopped (by its process group) when dropped or when the test
/// process exits.
#[derive(Debug)]
pub struct ControlPlane {
    dir: TempDir,
    process: Group,
    env: BTreeMap<String, String>,
}

impl ControlPlane {
    /// One control plane shared by every test of the test binary.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(ControlPlane::start)
    }

    /// Starts a control plane and waits until every component answers.
    pub fn start() -> Self {
        // The binaries must have been built (`make kube-tools`); say so plainly if not.
        tool("kube/bin/kube-apiserver");
        tool("kube/bin/kuberay-operator");
        let dir = tempfile::Builder::new()
            .prefix("kube-")
            .tempdir()
            .expect("cannot create a temp dir for the control plane");
        let run = dir.path().join("run");
        let mut command = Command::new("bash");
        command
            .arg(workspace_root().join("scripts/kube/up.sh"))
            .arg("--foreground")
            .env("KUBE_TOOLS", super::tools_dir().join("kube"))
            .env("KUBE_RUN", &run);
        let log = dir.path().join("up.log");
        let mut process = Group::spawn(
            command,
            &log,
            Signal::SIGTERM,
            Duration::from_secs(10),
            dir.path(),
        );
        let deadline = Instant::now() + START_TIMEOUT;
        while !run.join("ready").exists() {
            assert!(
                process.running() && Instant::now() < deadline,
                "the control plane did not start:\n{}",
                process.log_tail(4000)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let env = std::fs::read_to_string(run.join("env"))
            .expect("up.sh writes its env file before ready")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self { dir, process, env }
    }

    /// The admin kubeconfig (system:masters, client certificate).
    pub fn kubeconfig(&self) -> PathBuf {
        PathBuf::from(&self.env["KUBECONFIG"])
    }

    /// The API server's URL.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.env["KUBE_API_PORT"])
    }

    /// The CA that signed the API server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        PathBuf::from(&self.env["KUBE_CA"])
    }

    /// A folder for the caller's files, removed with the control plane.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        self.kubectl_as(&self.kubeconfig())
    }

    /// `kubectl` with another kubeconfig, e.g. one of [`ControlPlane::token_kubeconfig`].
    pub fn kubectl_as(&self, kubeconfig: &Path) -> Command {
        let mut command = Command::new(PathBuf::from(&self.env["KUBE_BIN"]).join("kubectl"));
        command.arg("--kubeconfig").arg(kubeconfig);
        command
    }

    /// Runs `kubectl args…` as admin; panics with its output unless it succeeds.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl().args(args).output().expect("run kubectl");
        assert_success(&out, &format!("kubectl {}", args.join(" ")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies YAML or JSON manifests as admin (server-side).
    pub fn apply(&self, manifest: &str) -> String {
        use std::io::Write;
        let mut child = self
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl apply");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(manifest.as_bytes())
            .expect("write manifest");
        let out = child.wait_with_output().expect("kubectl apply");
        assert_success(&out, &format!("kubectl apply of:\n{manifest}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A kubeconfig that authenticates with `token` (e.g. a ServiceAccount's, from
    /// [`ControlPlane::service_account_token`]), written under [`ControlPlane::scratch`].
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let path = self.scratch().join(format!("kubeconfig-{name}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: local\n    cluster:\n      \
             server: {server}\n      certificate-authority: {ca}\nusers:\n  - name: {name}\n    \
             user:\n      token: {token}\ncontexts:\n  - name: local\n    context: {{cluster: local, \
             user: {name}}}\ncurrent-context: local\n",
            server = self.server(),
            ca = self.ca_file().display(),
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// A TokenRequest token of `namespace/service_account`, valid for an hour.
    pub fn service_account_token(&self, namespace: &str, service_account: &str) -> String {
        self.kubectl_ok(&[
            "create",
            "token",
            service_account,
            "-n",
            namespace,
            "--duration",
            "1h",
        ])
        .trim()
        .to_string()
    }

    /// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with
    /// `what` and the last kubectl state the caller names.
    pub fn eventually<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?}: {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The log of one component (`kube-apiserver`, `kuberay-operator`, …), for diagnostics.
    pub fn component_log(&self, component: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("run/logs/{component}.log")))
            .unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.process.signal_leader(Signal::SIGTERM);
        if !self.process.wait_for_exit(Duration::from_secs(15)) {
            self.process.kill();
        }
    }
}

/// Panics with `what`, the exit status and both outputs unless `out` succeeded.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
