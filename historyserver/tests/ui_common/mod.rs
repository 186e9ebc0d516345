//! Shared by the UI tests (which also declare `mod support`): the history server in-process on
//! a storage with Ray's dashboard build from the venv, generated session metadata, and the
//! headless Chromium flags.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, MetaRef, SessionName};
use ray_history_testkit::tool;

use crate::support::session_metadata;

/// Headless Chromium flags shared by the UI tests: no sandbox, GPU, background traffic or
/// first-run screens, and a fixed window size.
pub const CHROMIUM_ARGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
];

/// An executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Older finished sessions of other clusters in namespace `bulk`: a second page of sessions.
pub fn add_old_sessions(rt: &tokio::runtime::Runtime, storage: &Storage, count: i64) {
    rt.block_on(async {
        for i in 0..count {
            let cluster = ClusterRef::new(&format!("bulk-{}", i % 5), "local").unwrap();
            let meta_ref = MetaRef::new("bulk", cluster.name.as_str()).unwrap();
            let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(i);
            let name = format!("session_{}_{i}", start.format("%Y-%m-%d_%H-%M-%S_000000"));
            let session = SessionName::new(&name).unwrap();
            let end = start + Duration::seconds(90);
            let meta = session_metadata(&meta_ref, &cluster, &session, None, start, Some(end));
            let doc = serde_json::to_vec(&meta).unwrap();
            storage
                .put(&meta_ref.metadata(&session), doc.into())
                .await
                .unwrap();
        }
    });
}

/// `ray/dashboard/client/build` of the venv's Ray, as the demo finds it.
pub fn ray_dashboard_build() -> PathBuf {
    let out = Command::new(tool("venv/bin/python"))
        .args([
            "-c",
            "import os, ray.dashboard as d; print(os.path.join(os.path.dirname(d.__file__), 'client', 'build'))",
        ])
        .output()
        .expect("cannot run the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Starts the server in-process with Ray's dashboard build; returns its base URL.
pub fn start_server(rt: &tokio::runtime::Runtime, storage: Storage) -> String {
    // The test flags reload live sessions every second: the tail-follow test waits for it.
    let mut args = crate::support::serve_args();
    args.ray_dashboard_dir = Some(ray_dashboard_build());
    rt.block_on(crate::support::serve(storage, args))
}
