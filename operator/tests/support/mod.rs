//! Helpers shared by the integration tests: the project's Python tools (kubernetes-validate,
//! helm-sdkpy) driven as processes. A missing tool panics with "run `make tools`".
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ray_history_testkit::{tool, workspace_root};

/// Kubernetes versions every manifest is validated against.
pub const K8S_VERSIONS: [&str; 5] = ["1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0"];

/// The venv's Python.
pub fn python() -> PathBuf {
    tool("venv/bin/python")
}

/// A command running the venv's Python without leaving `__pycache__` in the source tree.
pub fn python_command() -> Command {
    let mut command = Command::new(python());
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// A file of this crate's `tests/support` folder.
pub fn support_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// The chart folder.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("charts/ray-history")
}

/// What `kubernetes-validate --strict` said about a set of files.
#[derive(Debug)]
pub struct Validation {
    /// `INFO … passed` lines.
    pub passed: usize,
    /// Kinds it has no schema for (custom resources), as `apiVersion kind` strings.
    pub unknown_kinds: Vec<String>,
    /// Full output.
    pub output: String,
}

/// Runs `kubernetes-validate --strict` for every version in [`K8S_VERSIONS`] over `files`;
/// panics on any validation error, with the tool's output.
pub fn kubernetes_validate(files: &[PathBuf]) -> Validation {
    let mut command = Command::new(tool("venv/bin/kubernetes-validate"));
    command.arg("--strict");
    for version in K8S_VERSIONS {
        command.args(["-k", version]);
    }
    let out = command
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let output =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubernetes-validate --strict failed:\n{output}"
    );
    assert!(
        !output.contains("ERROR") && !output.contains("FATAL"),
        "{output}"
    );
    let passed = output
        .lines()
        .filter(|l| l.starts_with("INFO") && l.contains(" passed "))
        .count();
    let mut unknown_kinds: Vec<String> = output
        .lines()
        .filter_map(|l| l.split("Couldn't find schema for kind ").nth(1))
        .filter_map(|rest| {
            let (kind, rest) = rest.split_once(" with api version ")?;
            let api = rest.split(' ').next()?;
            Some(format!("{api} {kind}"))
        })
        .collect();
    unknown_kinds.sort();
    unknown_kinds.dedup();
    Validation {
        passed,
        unknown_kinds,
        output,
    }
}

/// Validates custom resources in `files` against the CRDs in `crd_file` (strict structural
/// schema check); returns the tool's JSON lines, or the error output.
pub fn crd_validate(crd_file: &Path, files: &[PathBuf]) -> Result<Vec<serde_json::Value>, String> {
    let out = python_command()
        .arg(support_file("crd_validate.py"))
        .arg(crd_file)
        .args(files)
        .output()
        .expect("run crd_validate.py");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect())
}
