//! `make demo` end to end, non-interactively (`DEMO_EXIT=1`): `scripts/demo.sh` builds the
//! binaries, runs a real Ray head with the sample workload and the collector on local-disk
//! storage, stops both, starts the history server and checks that its URL answers with the
//! demo session; the script must exit 0 and leave nothing running.

use std::process::Command;

use ray_history_testkit::workspace_root;

#[test]
fn demo_runs_to_a_url_that_serves_the_demo_session() {
    let root = workspace_root();
    let demo_dir = tempfile::tempdir().unwrap();
    let output = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .current_dir(&root)
        .env("DEMO_EXIT", "1")
        .env("DEMO_DIR", demo_dir.path())
        .env_remove("STORAGE")
        .env_remove("DEMO_PORT")
        .output()
        .expect("cannot run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo.sh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for step in 1..=9 {
        assert!(
            stdout.contains(&format!("[{step}/9]")),
            "step {step} missing:\n{stdout}"
        );
    }
    let session = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("ok: ")?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no served session in the output:\n{stdout}"));
    assert!(session.starts_with("session_"), "{session}");
    assert!(
        stdout.contains(&format!("/#/s/default/demo/{session}")),
        "no session URL printed:\n{stdout}"
    );
    // The collector wrote the session to the demo's storage dir.
    let stored = demo_dir
        .path()
        .join("storage/metadir/default_demo")
        .join(session)
        .join("metadata.json");
    let metadata = std::fs::read_to_string(&stored).expect("no metadata.json in demo storage");
    assert!(metadata.contains("\"finished\""), "{metadata}");
    // Everything the demo started is gone: its server port no longer answers.
    let url = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("sessions")?.trim().strip_suffix('/'))
        .expect("no sessions URL printed");
    let addr = url.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the history server at {addr} still runs"
    );
}
