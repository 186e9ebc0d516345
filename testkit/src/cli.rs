//! Ray's own CLI from the project's venv, pointed at a live dashboard or a session URL.

use std::process::Output;

use serde_json::Value;

/// Runs `ray <args> --address <address>`; its stdout. Panics with stderr when it fails
/// (`ray job status` and `ray job logs` of a failed job exit 0).
pub fn ray_cli(address: &str, args: &[&str]) -> String {
    let out = ray_cli_with_env(address, args, &[]);
    assert!(
        out.status.success(),
        "ray {} --address {address}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ray <args> --address <address>` with `env` added (e.g. Ray's token auth,
/// `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN`, which replace the default `disabled`); its
/// output, whether it succeeded or not.
pub fn ray_cli_with_env(address: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(super::tool("venv/bin/ray"))
        .args(args)
        .args(["--address", address])
        .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        .env("RAY_AUTH_MODE", "disabled")
        .envs(env.iter().copied())
        .output()
        .expect("cannot run the venv's ray")
}

/// `ray list <what> --format json --limit 10000`: the rows (empty when Ray says there are none).
pub fn ray_list(address: &str, what: &str) -> Vec<Value> {
    let out = ray_cli(
        address,
        &["list", what, "--format", "json", "--limit", "10000"],
    );
    // Ray prints this instead of `[]` for an empty list.
    if out.trim() == "No resource in the cluster" {
        return Vec::new();
    }
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ray list {what}: not JSON ({e}): {out}"))
}

/// The CLI's output without its own log prefixes (time, `cli.py:<line> --`), the line naming
/// the address it talked to and the time a summary was printed: what is left is what it was
/// told.
pub fn cli_text(output: &str) -> String {
    output
        .lines()
        .filter(|l| !l.contains("Job submission server address") && !l.contains(" Summary: "))
        .map(|l| {
            match l
                .find(" cli.py:")
                .and_then(|i| l[i..].find(" -- ").map(|j| i + j + 4))
            {
                Some(start) => &l[start..],
                None => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
