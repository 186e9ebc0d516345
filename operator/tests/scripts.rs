//! Every shell script of the repository must parse and be shellcheck-clean (following the files
//! it sources). `make e2e-kind` cannot run here (no Docker); the control-plane scripts run in
//! the Kubernetes tests.

use std::process::Command;

use ray_history_testkit::workspace_root;

#[test]
fn shell_scripts_are_shellcheck_clean() {
    let root = workspace_root();
    let mut scripts = Vec::new();
    for dir in ["scripts", "scripts/kube", "bench/collector", ".ci"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let path = entry.path();
            let is_shell = path.extension().is_some_and(|e| e == "sh")
                || std::fs::read_to_string(&path)
                    .is_ok_and(|t| t.starts_with("#!/usr/bin/env bash"));
            if path.is_file() && is_shell {
                scripts.push(path);
            }
        }
    }
    assert!(scripts.len() >= 6, "{scripts:?}");
    for script in scripts {
        let syntax = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .status()
            .expect("bash");
        assert!(syntax.success(), "bash -n {}", script.display());
        let out = Command::new("shellcheck")
            .arg("-x")
            .arg(&script)
            .current_dir(script.parent().unwrap())
            .output()
            .unwrap_or_else(|e| panic!("shellcheck not runnable ({e}): run `make tools`"));
        assert!(
            out.status.success(),
            "shellcheck {}:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
