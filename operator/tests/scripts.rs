//! The end-to-end script (`make e2e-kind`) cannot run here (no Docker), but it must parse and
//! be shellcheck-clean.

use std::process::Command;

use ray_history_storage::testing::workspace_root;

#[test]
fn e2e_kind_script_is_shellcheck_clean() {
    let script = workspace_root().join("scripts/e2e-kind.sh");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .expect("bash");
    assert!(syntax.success(), "bash -n {}", script.display());
    let out = Command::new("shellcheck")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("shellcheck not runnable ({e}): run `make tools`"));
    assert!(
        out.status.success(),
        "shellcheck {}:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}
