//! Test harness: real Azurite, moto (S3), fake-gcs-server, a real Ray head and a real
//! Kubernetes control plane, started on free ports from the project's tools folder and stopped
//! by process id. A missing tool is a panic that
//! says to run `make tools`, never a silent skip.

pub mod apiserver;
mod azurite;
pub mod cli;
mod gcs;
pub mod generated;
pub mod kube;
mod netns;
mod process;
mod ray;
mod s3;

use std::path::PathBuf;

pub use azurite::Azurite;
pub use gcs::FakeGcs;
pub use kube::ControlPlane;
pub use netns::Netns;
pub use nix::sys::signal::Signal;
pub use process::{Group, free_port, http_get};
pub use ray::{RayHead, RayHeadOptions, RayWorker, short_temp_dir};
pub use s3::MotoS3;

/// The tools folder: `RAY_HISTORY_TOOLS`, else `<workspace>/.tools`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("RAY_HISTORY_TOOLS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".tools"),
    }
}

/// The workspace root (this crate's parent folder, fixed at compile time).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A binary of this workspace (`ray-history-collector`, `ray-history-server`), built by
/// cargo first, for tests outside the binary's own package (where `CARGO_BIN_EXE_*` is unset).
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", name])
        .current_dir(workspace_root())
        .status()
        .expect("cannot run cargo");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {name} failed"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join(name)
}

/// A tool under [`tools_dir`]; panics with the fix when it is missing.
pub fn tool(relative: &str) -> PathBuf {
    let path = tools_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `make tools` in {} (or set RAY_HISTORY_TOOLS)",
        path.display(),
        workspace_root().display()
    );
    path
}
