//! Shared by the UI tests: the history server in-process on a storage, with Ray's dashboard
//! build from the venv, and generated session metadata.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use clap::Parser;
use ray_history_server::config::ServeArgs;
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, MetaRef, SessionName};
use ray_history_storage::metadata::{LAYOUT_VERSION, SessionMetadata, SessionState};
use ray_history_storage::testing::tool;

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
            let meta = SessionMetadata {
                layout_version: LAYOUT_VERSION,
                cluster_name: cluster.name.clone(),
                cluster_id: cluster.id.clone(),
                namespace: meta_ref.namespace.clone(),
                session_name: session.clone(),
                owner: None,
                ray_version: Some("2.60.0".into()),
                head_node_id: None,
                start_time: start,
                last_heartbeat: start + Duration::seconds(90),
                end_time: Some(start + Duration::seconds(90)),
                state: SessionState::Finished,
                collector_version: "test".into(),
            };
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

pub fn start_server(rt: &tokio::runtime::Runtime, storage: Storage) -> String {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let dashboard = ray_dashboard_build();
    let args = Wrapper::parse_from([
        "test",
        "--listen",
        "127.0.0.1:0",
        // Live sessions are reloaded this often: the tail-follow test waits for it.
        "--refresh-interval",
        "1s",
        "--ray-dashboard-dir",
        dashboard.to_str().unwrap(),
    ])
    .serve;
    rt.block_on(async {
        let state = ray_history_server::server::state(storage, &args)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            ray_history_server::server::serve_on(listener, state, &args, std::future::pending())
                .await
                .unwrap();
        });
        format!("http://{addr}")
    })
}
