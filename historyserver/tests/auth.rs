//! `--auth header` end to end over real HTTP: a trusted proxy's user and groups decide which
//! namespaces' sessions are listed and served; everything else is 401/403 without naming what
//! was asked for; probes stay open. Also `--auth kubernetes` settings refused at start (its
//! reviews are tested in `kube_auth.rs`).

mod support;

use chrono::Utc;
use ray_history_server::auth::AuthMode;
use ray_history_storage::layout::{ClusterRef, MetaRef, SessionName};
use ray_history_storage::{Storage, StorageConfig};

const SESSION: &str = "session_2026-11-21_04-23-31_898414_12602";

async fn storage_with_two_namespaces() -> Storage {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    for namespace in ["team-a-ns", "team-b-ns"] {
        let meta_ref = MetaRef::new(namespace, support::CLUSTER).unwrap();
        let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
        let session = SessionName::new(SESSION).unwrap();
        let meta = support::session_metadata(
            &meta_ref,
            &cluster,
            &session,
            None,
            Utc::now(),
            Some(Utc::now()),
        );
        storage
            .put(
                &meta_ref.metadata(&session),
                serde_json::to_vec(&meta).unwrap().into(),
            )
            .await
            .unwrap();
    }
    storage
}

async fn server(trusted: &str) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl.yaml");
    std::fs::write(
        &acl,
        "admins: [platform]\ngroups:\n  team-a: [team-a-ns]\nusers:\n  bob: [team-b-ns]\n",
    )
    .unwrap();
    let mut args = support::serve_args();
    args.auth = AuthMode::Header;
    args.auth_trusted_proxies = trusted.into();
    args.auth_acl = Some(acl);
    (
        support::serve(storage_with_two_namespaces().await, args).await,
        dir,
    )
}

async fn get(url: &str, user: Option<&str>, groups: &str) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(user) = user {
        request = request
            .header("X-Forwarded-User", user)
            .header("X-Forwarded-Groups", groups);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn namespaces(body: &str) -> Vec<String> {
    let page: serde_json::Value = serde_json::from_str(body).unwrap();
    page["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|s| s["namespace"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn header_mode_filters_lists_and_checks_every_session_route() {
    let (base, _dir) = server("127.0.0.1").await;
    let cluster = support::CLUSTER;

    let (status, body) = get(&format!("{base}/api/sessions"), Some("alice"), "team-a").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(namespaces(&body), ["team-a-ns"]);
    let (_, body) = get(&format!("{base}/api/sessions"), Some("bob"), "").await;
    assert_eq!(
        namespaces(&body),
        ["team-b-ns"],
        "users map to namespaces too"
    );
    let (_, body) = get(&format!("{base}/api/sessions"), Some("root"), "x, platform").await;
    let mut all = namespaces(&body);
    all.sort();
    assert_eq!(all, ["team-a-ns", "team-b-ns"], "admins see everything");

    let allowed = format!("{base}/sessions/team-a-ns/{cluster}/{SESSION}/api/version");
    assert_eq!(get(&allowed, Some("alice"), "team-a").await.0, 200);
    for denied in [
        format!("{base}/sessions/team-b-ns/{cluster}/{SESSION}/api/version"),
        format!("{base}/sessions/team-b-ns/{cluster}/{SESSION}/api/v0/tasks"),
        format!("{base}/api/sessions/team-b-ns/{cluster}/latest"),
    ] {
        let (status, body) = get(&denied, Some("alice"), "team-a").await;
        assert_eq!(status, 403, "{denied}: {body}");
        assert!(
            !body.contains("team-b-ns") && !body.contains(SESSION),
            "{body}"
        );
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["result"], false, "Ray's JSON envelope: {body}");
    }

    // No forwarded user: not authenticated. Probes need none.
    let (status, body) = get(&format!("{base}/api/sessions"), None, "").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(get(&format!("{base}/healthz"), None, "").await.0, 200);
}

#[tokio::test]
async fn forwarded_identities_count_only_from_trusted_proxies() {
    // The test client connects from 127.0.0.1, which is not this proxy.
    let (base, _dir) = server("10.231.255.1/32").await;
    let (status, body) = get(&format!("{base}/api/sessions"), Some("root"), "platform").await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn header_mode_without_its_settings_fails_at_start_with_one_line() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let mut args = support::serve_args();
    args.auth = AuthMode::Header;
    let err = ray_history_server::server::state(storage.clone(), &args)
        .await
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "AUTH_TRUSTED_PROXIES: required with AUTH_MODE=header"
    );
    args.auth_trusted_proxies = "127.0.0.1".into();
    let err = ray_history_server::server::state(storage, &args)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.to_string(), "AUTH_ACL: required with AUTH_MODE=header");
}

#[tokio::test]
async fn kubernetes_mode_refuses_a_cache_longer_than_an_hour() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    let mut args = support::serve_args();
    args.auth = AuthMode::Kubernetes;
    args.auth_cache_ttl = std::time::Duration::from_secs(7200);
    let err = ray_history_server::server::state(storage, &args)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.to_string(), "AUTH_CACHE_TTL: at most 1h");
}
