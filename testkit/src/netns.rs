//! A second host for multi-node tests: a network namespace joined to this one by a veth pair
//! with a /30 of 10.231.0.0/16 (addresses of our own, nothing leaves the machine). Commands
//! run in it also get a private mount namespace in which one directory is bind-mounted over
//! another, so a Ray node there sees its own `/tmp/ray` at the same path as the head's (Ray
//! uses one temp dir path cluster-wide, and one machine has one filesystem). Needs root.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A network namespace with a veth pair to the host. Deleted (with the pair) when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates a namespace and its veth pair on a /30 picked from the process id; panics
    /// with the reason when it cannot (not root, no iproute2).
    pub fn create() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() * 8 + COUNTER.fetch_add(1, Ordering::Relaxed)) % 16_384;
        let (third, fourth) = ((n / 64) as u8, ((n % 64) * 4) as u8);
        let name = format!("rh{n}");
        let netns = Netns {
            host_ip: Ipv4Addr::new(10, 231, third, fourth + 1),
            ns_ip: Ipv4Addr::new(10, 231, third, fourth + 2),
            name,
        };
        // A namespace left behind by a killed run of the same pid would block ours.
        let _ = ip(&["netns", "del", &netns.name]);
        let (host_if, ns_if) = (format!("{}h", netns.name), format!("{}n", netns.name));
        let host_cidr = format!("{}/30", netns.host_ip);
        let ns_cidr = format!("{}/30", netns.ns_ip);
        let steps: [&[&str]; 8] = [
            &["netns", "add", &netns.name],
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            &["link", "set", &ns_if, "netns", &netns.name],
            &["addr", "add", &host_cidr, "dev", &host_if],
            &["link", "set", &host_if, "up"],
            &["-n", &netns.name, "addr", "add", &ns_cidr, "dev", &ns_if],
            &["-n", &netns.name, "link", "set", &ns_if, "up"],
            &["-n", &netns.name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                panic!(
                    "cannot set up network namespace {} (needs root): {e}",
                    netns.name
                );
            }
        }
        netns
    }

    /// This host's address on the pair (reachable from inside the namespace).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The namespace's address on the pair.
    pub fn ns_ip(&self) -> Ipv4Addr {
        self.ns_ip
    }

    /// A command running `program` in the namespace with `source`'s contents shown at
    /// `target`; the caller adds the program's arguments and environment.
    pub fn command(&self, program: &Path, source: &Path, target: &Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .args(["unshare", "--mount", "--propagation", "private"])
            .args([
                "sh",
                "-c",
                r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#,
                "sh",
            ])
            .arg(source)
            .arg(target)
            .arg(program);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}
