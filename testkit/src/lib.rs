//! Test harness: real Azurite, a real Ray head and a real Kubernetes control plane, started on free ports
//! from the project's tools folder and stopped by process id. A missing tool is a panic that
//! says to run `make tools`, never a silent skip.

mod azurite;
pub mod kube;
mod process;
mod ray;

use std::path::PathBuf;

pub use azurite::Azurite;
pub use kube::ControlPlane;
pub use nix::sys::signal::Signal;
pub use process::{Group, free_port};
pub use ray::{RayHead, RayHeadOptions};

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
