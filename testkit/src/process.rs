//! Child processes for the harness: each runs in its own process group, is watched by a tiny
//! shell watchdog that ends it if the test process dies without dropping it (statics are
//! never dropped), and is stopped by signalling its group.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after), never one
/// this process was given before: the kernel may hand a just-released port out again, and
/// Ray refuses two of its components on one port.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("cannot bind 127.0.0.1:0")
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// A process group led by `child`, plus its watchdog.
#[derive(Debug)]
pub struct Group {
    child: Child,
    watchdog: Child,
    log: PathBuf,
}

impl Group {
    /// Starts `command` in a new process group with stdout and stderr appended to `log`.
    /// If the test process exits without stopping it, the watchdog sends `exit_signal` to the
    /// group, SIGKILL after `grace`, and removes `cleanup` (the tool's temp dir).
    pub fn spawn(
        mut command: Command,
        log: &Path,
        exit_signal: Signal,
        grace: Duration,
        cleanup: &Path,
    ) -> Self {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
        let err = out.try_clone().expect("cannot clone log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        let script = format!(
            "while kill -0 {parent} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             kill -0 {parent} 2>/dev/null && exit 0; \
             kill -{sig} -{pid} 2>/dev/null; sleep {grace}; kill -KILL -{pid} 2>/dev/null; \
             rm -rf '{dir}'",
            parent = std::process::id(),
            pid = child.id(),
            sig = exit_signal.as_str().trim_start_matches("SIG"),
            grace = grace.as_secs().max(1),
            dir = cleanup.display(),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start the watchdog shell");
        Self {
            child,
            watchdog,
            log: log.to_path_buf(),
        }
    }

    /// The leader's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the leader is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` to the leader only.
    pub fn signal_leader(&self, signal: Signal) {
        nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), signal).ok();
    }

    /// Waits up to `timeout` for the leader to exit; true if it did.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        !self.running()
    }

    /// SIGKILLs the watchdog, then the whole group, and reaps both.
    pub fn kill(&mut self) {
        killpg(Pid::from_raw(self.watchdog.id() as i32), Signal::SIGKILL).ok();
        self.watchdog.wait().ok();
        killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL).ok();
        self.child.wait().ok();
    }

    /// The last `max` bytes of the log, for panic messages.
    pub fn log_tail(&self, max: usize) -> String {
        let mut text = String::new();
        File::open(&self.log)
            .and_then(|mut f| f.read_to_string(&mut text))
            .ok();
        let start = text.len().saturating_sub(max);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }
}

/// A plain HTTP/1.0 GET; returns the status code and body, or `None` when nothing answers.
pub fn http_get(host: Ipv4Addr, port: u16, path: &str) -> Option<(u16, String)> {
    http_request(host, port, "GET", path, b"")
}

/// A plain HTTP/1.0 request with a body (emulators' admin calls: creating buckets).
pub(crate) fn http_request(
    host: Ipv4Addr,
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&(host, port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {host}:{port}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .ok()?;
    stream.write_all(body).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
