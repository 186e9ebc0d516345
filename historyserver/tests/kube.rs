//! The server binary against a real API server. The retention sweeper runs in the one replica
//! that holds its Lease, and another takes over when that one dies.
//!
//! `--auth kubernetes` end to end: the server binary reviews real ServiceAccount tokens with a
//! real API server (TokenReview, SubjectAccessReview), under its own ServiceAccount that has
//! only the chart's ClusterRole. Alice may `get rayclusters.ray.io` in both namespaces, Bob
//! in one; the test checks listings, every kind of session route, the login cookie, oauth2-
//! proxy's header, Ray's CLI with a token, and the audit lines; and that no listing or
//! session route is served when the API server cannot be asked.
//!
//! Over 600 lines: one suite, whose tests share one started control plane and its ServiceAccounts.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::ControlPlane;
use ray_history_testkit::cli::ray_cli_with_env;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

const SESSION: &str = "session_2026-11-21_04-23-31_898414_12602";
/// A session that exists in neither namespace.
const MISSING: &str = "session_2026-01-01_00-00-00_000000_1";
const NODE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef01234567";
const NS_A: &str = "kubeauth-team-a";
const NS_B: &str = "kubeauth-team-b";
const USERS: &str = "kubeauth-users";

/// The RBAC the chart gives the history server (`templates/rbac.yaml`) and the users'.
fn rbac() -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: kubeauth-history-server}}
rules:
  - apiGroups: [authentication.k8s.io]
    resources: [tokenreviews]
    verbs: [create]
  - apiGroups: [authorization.k8s.io]
    resources: [subjectaccessreviews]
    verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: kubeauth-history-server}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeauth-history-server}}
subjects: [{{kind: ServiceAccount, name: history-server, namespace: {USERS}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: kubeauth-raycluster-viewer}}
rules:
  - apiGroups: [ray.io]
    resources: [rayclusters]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: viewers, namespace: {NS_A}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeauth-raycluster-viewer}}
subjects:
  - {{kind: ServiceAccount, name: alice, namespace: {USERS}}}
  - {{kind: ServiceAccount, name: bob, namespace: {USERS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: viewers, namespace: {NS_B}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeauth-raycluster-viewer}}
subjects: [{{kind: ServiceAccount, name: alice, namespace: {USERS}}}]
"
    )
}

/// A finished session with a head node in each namespace, in the local layout the server reads.
async fn store_sessions(root: &Path) {
    let storage = Storage::open(&StorageConfig::local(root)).await.unwrap();
    let cluster = ClusterRef::new(support::CLUSTER, support::CLUSTER_ID).unwrap();
    let session = SessionName::new(SESSION).unwrap();
    let node = NodeId::new(NODE).unwrap();
    let now = Utc::now();
    for namespace in [NS_A, NS_B] {
        let meta_ref = MetaRef::new(namespace, support::CLUSTER).unwrap();
        let meta =
            support::session_metadata(&meta_ref, &cluster, &session, Some(&node), now, Some(now));
        support::put_documents(&storage, &meta_ref, &meta, &node).await;
    }
}

/// The server binary, killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(root: &Path, kubeconfig: &Path, log: PathBuf) -> Server {
        Self::start_with(root, kubeconfig, log, &[("AUTH_MODE", "kubernetes".into())])
    }

    fn start_with(root: &Path, kubeconfig: &Path, log: PathBuf, env: &[(&str, String)]) -> Server {
        let port = ray_history_testkit::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_ray-history-server"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--storage", "local", "--local-storage-path"])
            .arg(root)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the server binary");
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if healthy(&server.base) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the server exited ({status}):\n{}", server.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "no /healthz:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `/healthz` over a plain TCP connection (the server is started from sync code).
fn healthy(base: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(base.trim_start_matches("http://")) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn namespaces(body: &str) -> Vec<String> {
    let page: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let mut namespaces: Vec<String> = page["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|s| s["namespace"].as_str().unwrap().to_string())
        .collect();
    namespaces.sort();
    namespaces
}

fn assert_json_error(status: u16, expected: u16, body: &str, what: &str) {
    assert_eq!(status, expected, "{what}: {body}");
    let error: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    assert_eq!(
        error["result"], false,
        "{what}: Ray's JSON envelope: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_reviews_tokens_and_namespaces() {
    let cp = ControlPlane::shared();
    for ns in [NS_A, NS_B, USERS] {
        cp.kubectl_ok(&["create", "namespace", ns]);
    }
    for sa in ["alice", "bob", "history-server"] {
        cp.kubectl_ok(&["create", "serviceaccount", sa, "-n", USERS]);
    }
    cp.apply(&rbac());
    let alice = cp.service_account_token(USERS, "alice");
    let bob = cp.service_account_token(USERS, "bob");
    let server_token = cp.service_account_token(USERS, "history-server");
    let kubeconfig = cp.token_kubeconfig("history-server", &server_token);

    let root = tempfile::tempdir().unwrap();
    store_sessions(root.path()).await;
    let server = Server::start(root.path(), &kubeconfig, cp.scratch().join("server.log"));
    let base = &server.base;
    let list = format!("{base}/api/sessions");
    let cluster = support::CLUSTER;

    // No token, a bad token: 401 in Ray's envelope. Probes stay open.
    let (status, _, body) = get(&list, &[]).await;
    assert_json_error(status, 401, &body, "no token");
    let (status, _, body) = get(&list, &[("Authorization", "Bearer not-a-token")]).await;
    assert_json_error(status, 401, &body, "bad token");
    let (status, _, body) = get(&list, &[("Authorization", &bearer(&server_token[..40]))]).await;
    assert_json_error(status, 401, &body, "truncated token");
    assert_eq!(get(&format!("{base}/healthz"), &[]).await.0, 200);

    // Listings show only the namespaces a user may see.
    let (status, _, body) = get(&list, &[("Authorization", &bearer(&alice))]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(namespaces(&body), [NS_A, NS_B]);
    let (status, _, body) = get(&list, &[("Authorization", &bearer(&bob))]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(namespaces(&body), [NS_A]);
    assert!(!body.contains(NS_B), "{body}");
    let filtered = format!("{list}?namespace={NS_B}");
    let (_, _, body) = get(&filtered, &[("Authorization", &bearer(&bob))]).await;
    assert_eq!(
        namespaces(&body),
        Vec::<String>::new(),
        "a filter adds nothing"
    );

    // Session routes: Bob gets one 403 in NS_B whether the session exists or not.
    let routes = |ns: &str, session: &str| {
        [
            format!("{base}/sessions/{ns}/{cluster}/{session}/api/version"),
            format!("{base}/sessions/{ns}/{cluster}/{session}/api/v0/tasks"),
            format!("{base}/sessions/{ns}/{cluster}/{session}/api/jobs/"),
            format!("{base}/sessions/{ns}/{cluster}/{session}/events"),
            format!("{base}/sessions/{ns}/{cluster}/{session}/nodes?view=summary"),
            format!("{base}/api/sessions/{ns}/{cluster}/{session}"),
        ]
    };
    let mut denied_bodies = std::collections::BTreeSet::new();
    for session in [SESSION, MISSING, "latest"] {
        for url in routes(NS_B, session) {
            let (status, _, body) = get(&url, &[("Authorization", &bearer(&bob))]).await;
            assert_json_error(status, 403, &body, &url);
            assert!(
                !body.contains(NS_B) && !body.contains(session),
                "{url}: {body}"
            );
            denied_bodies.insert(body);
        }
    }
    assert_eq!(
        denied_bodies.len(),
        1,
        "one body for every denial: {denied_bodies:?}"
    );
    for url in routes(NS_A, SESSION) {
        let (status, _, body) = get(&url, &[("Authorization", &bearer(&bob))]).await;
        assert_eq!(status, 200, "{url}: {body}");
    }
    let (status, _, _) = get(
        &format!("{base}/api/sessions/{NS_A}/{cluster}/{MISSING}"),
        &[("Authorization", &bearer(&bob))],
    )
    .await;
    assert_eq!(
        status, 404,
        "in a namespace Bob may see, a missing session is missing"
    );
    for ns in [NS_A, NS_B] {
        for url in routes(ns, SESSION) {
            let (status, _, body) = get(&url, &[("Authorization", &bearer(&alice))]).await;
            assert_eq!(status, 200, "{url}: {body}");
        }
    }

    // oauth2-proxy's --pass-access-token header.
    let (status, _, body) = get(&list, &[("X-Forwarded-Access-Token", &bob)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(namespaces(&body), [NS_A]);

    browser_login(base, &alice, &bob).await;
    ray_cli(base, &alice, &bob);

    // One audit line per denial, naming the user, the namespace and the path; no token.
    let log = server.log_text();
    let bob_name = format!("system:serviceaccount:{USERS}:bob");
    let denial = log
        .lines()
        .find(|l| l.contains("request denied") && l.contains(&bob_name) && l.contains(NS_B))
        .unwrap_or_else(|| panic!("no audit line for Bob in {NS_B}:\n{log}"));
    assert!(
        denial.contains("/api/version") || denial.contains("/sessions/"),
        "{denial}"
    );
    for token in [&alice, &bob, &server_token] {
        assert!(
            !log.contains(token.as_str()),
            "a token is in the log:\n{log}"
        );
    }
}

/// The login page's cookie, the redirect of a browser without one, and logout.
async fn browser_login(base: &str, alice: &str, bob: &str) {
    let (status, headers, _) = get(&format!("{base}/"), &[("Accept", "text/html")]).await;
    assert_eq!(status, 303, "a browser without a token is sent to sign in");
    assert_eq!(headers["location"], "/login?next=%2F");
    // Ray's dashboard page of a session: signing in returns there.
    let dashboard = format!("/sessions/{NS_A}/{}/{SESSION}/?tab=1", support::CLUSTER);
    let (status, headers, _) = get(&format!("{base}{dashboard}"), &[("Accept", "text/html")]).await;
    assert_eq!(status, 303);
    let location = headers["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/login?next=%2Fsessions%2F"),
        "{location}"
    );
    let (status, headers, page) = get(&format!("{base}{location}"), &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert!(
        page.contains(&format!("name=\"next\" value=\"{dashboard}\"")),
        "{page}"
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("form-action 'self'")
    );

    let login_to = |token: &str, next: &str| {
        client()
            .post(format!("{base}/login"))
            .form(&[("token", token), ("next", next)])
            .send()
    };
    let response = login_to(bob, &dashboard).await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], dashboard.as_str());
    let response = login_to(bob, "//evil.example/").await.unwrap();
    assert_eq!(response.headers()["location"], "/", "never to another site");

    let login = |token: &str, https: bool| {
        let mut request = client()
            .post(format!("{base}/login"))
            .form(&[("token", token)]);
        if https {
            request = request.header("X-Forwarded-Proto", "https");
        }
        request.send()
    };
    let refused = login("not-a-token", false).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert!(refused.headers().get("set-cookie").is_none());

    let response = login(bob, false).await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("ray-history-token="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let (status, _, body) = get(&format!("{base}/api/sessions"), &[("Cookie", &pair)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(namespaces(&body), [NS_A]);
    let (status, _, _) = get(
        &format!("{base}/"),
        &[("Cookie", &pair), ("Accept", "text/html")],
    )
    .await;
    assert_eq!(status, 200, "the UI with the cookie");
    let url = format!(
        "{base}/sessions/{NS_B}/{}/{SESSION}/api/version",
        support::CLUSTER
    );
    assert_eq!(get(&url, &[("Cookie", &pair)]).await.0, 403);

    let response = login(alice, true).await.unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "behind HTTPS: {cookie}");

    let response = client()
        .post(format!("{base}/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/login");
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("ray-history-token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

/// Ray's CLI against a session URL, with its token auth (`RAY_AUTH_MODE=token`,
/// `RAY_AUTH_TOKEN`) for State API commands and `RAY_JOB_HEADERS` for job commands, as the
/// README says.
fn ray_cli(base: &str, alice: &str, bob: &str) {
    let session = |ns: &str| format!("{base}/sessions/{ns}/{}/{SESSION}", support::CLUSTER);
    let nodes = ["list", "nodes", "--format", "json"];
    let with_token = |token| [("RAY_AUTH_MODE", "token"), ("RAY_AUTH_TOKEN", token)];

    let out = ray_cli_with_env(&session(NS_A), &nodes, &with_token(bob));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ray list nodes with Bob's token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(NODE), "{stdout}");
    let out = ray_cli_with_env(&session(NS_B), &nodes, &with_token(alice));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Ray reports our 401 and 403 as its own token auth's errors.
    let refused = |out: std::process::Output, what: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("AuthenticationError"),
            "{what}: {stderr}"
        );
    };
    refused(
        ray_cli_with_env(&session(NS_B), &nodes, &with_token(bob)),
        "Bob may not list NS_B's nodes",
    );
    refused(
        ray_cli_with_env(&session(NS_A), &nodes, &[]),
        "no token, no nodes",
    );

    let headers = serde_json::json!({"Authorization": bearer(bob)}).to_string();
    let out = ray_cli_with_env(
        &session(NS_A),
        &["job", "list"],
        &[("RAY_JOB_HEADERS", headers.as_str())],
    );
    assert!(
        out.status.success(),
        "ray job list with RAY_JOB_HEADERS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ray_cli_with_env(&session(NS_A), &["job", "list"], &with_token(bob));
    assert!(
        out.status.success(),
        "ray job list with RAY_AUTH_TOKEN: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused(
        ray_cli_with_env(&session(NS_B), &["job", "list"], &with_token(bob)),
        "Bob may not list NS_B's jobs",
    );
}

/// Without an API server to ask, nothing is served: a kubeconfig naming a closed port gives
/// 503 (in Ray's envelope) for every protected route, probes stay up; no configuration at all
/// is one line at start-up.
#[tokio::test]
async fn kubernetes_mode_fails_closed_without_an_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("storage");
    std::fs::create_dir(&root).unwrap();
    store_sessions(&root).await;
    let dead = format!("https://127.0.0.1:{}", ray_history_testkit::free_port());
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: dead\n    cluster: {{server: \
             {dead}, insecure-skip-tls-verify: true}}\nusers:\n  - name: u\n    user: {{token: \
             x}}\ncontexts:\n  - name: dead\n    context: {{cluster: dead, user: u}}\n\
             current-context: dead\n"
        ),
    )
    .unwrap();
    let server = Server::start(&root, &kubeconfig, dir.path().join("server.log"));
    let base = &server.base;
    let cluster = support::CLUSTER;
    for url in [
        format!("{base}/api/sessions"),
        format!("{base}/sessions/{NS_A}/{cluster}/{SESSION}/api/version"),
    ] {
        let (status, _, body) = get(&url, &[("Authorization", "Bearer some-token")]).await;
        assert_json_error(status, 503, &body, &url);
    }
    assert_eq!(get(&format!("{base}/healthz"), &[]).await.0, 200);

    let out = Command::new(env!("CARGO_BIN_EXE_ray-history-server"))
        .args(["--listen", "127.0.0.1:0", "--storage", "local"])
        .arg("--local-storage-path")
        .arg(&root)
        .env("AUTH_MODE", "kubernetes")
        .env("KUBECONFIG", dir.path().join("missing"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("AUTH_MODE=kubernetes: no Kubernetes API configuration"),
        "{stderr}"
    );
}

const SWEEP_NS: &str = "retention-sweep";

/// Finished sessions `first..=last` of cluster `sweep`, started `n` days ago.
async fn store_old_sessions(root: &Path, first: u32, last: u32) {
    let storage = Storage::open(&StorageConfig::local(root)).await.unwrap();
    let cluster = ClusterRef::new("sweep", support::CLUSTER_ID).unwrap();
    let meta_ref = MetaRef::new(support::NAMESPACE, "sweep").unwrap();
    let node = NodeId::new(NODE).unwrap();
    for n in first..=last {
        let session =
            SessionName::new(&format!("session_2026-11-{n:02}_00-00-00_000000_1")).unwrap();
        let start = Utc::now() - chrono::Duration::days(30 - i64::from(n));
        let meta = support::session_metadata(
            &meta_ref,
            &cluster,
            &session,
            Some(&node),
            start,
            Some(start),
        );
        support::put_documents(&storage, &meta_ref, &meta, &node).await;
    }
}

/// A counter of a server's `/metrics` (0 when absent).
fn counter(base: &str, name: &str) -> u64 {
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let text = ray_history_testkit::http_get(std::net::Ipv4Addr::LOCALHOST, port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn lease_holder(cp: &ControlPlane) -> Option<String> {
    let out = cp
        .kubectl()
        .args([
            "get",
            "lease",
            "ray-history-server-retention",
            "-n",
            SWEEP_NS,
        ])
        .args(["-o", "jsonpath={.spec.holderIdentity}"])
        .output()
        .ok()?;
    let holder = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !holder.is_empty()).then_some(holder)
}

#[test]
fn one_replica_sweeps_and_another_takes_over_when_it_dies() {
    let cp = ControlPlane::shared();
    cp.kubectl_ok(&["create", "namespace", SWEEP_NS]);
    let root = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(store_old_sessions(root.path(), 1, 3));
    let start = |name: &str| {
        Server::start_with(
            root.path(),
            &cp.kubeconfig(),
            cp.scratch().join(format!("sweeper-{name}.log")),
            &[
                ("POD_NAMESPACE", SWEEP_NS.into()),
                ("POD_NAME", name.into()),
                ("RETENTION_MAX_SESSIONS_PER_CLUSTER", "1".into()),
                ("RETENTION_GRACE", "1s".into()),
                ("RETENTION_INTERVAL", "300ms".into()),
            ],
        )
    };
    let mut replicas = vec![("a", start("a")), ("b", start("b"))];
    let holder = cp.eventually("a replica holds the Lease", Duration::from_secs(60), || {
        lease_holder(cp)
    });
    let deleted = |base: &str| counter(base, "ray_history_server_sessions_deleted_total");
    let sweeps = |base: &str| counter(base, "ray_history_server_retention_sweeps_total");
    let leader = replicas.iter().position(|(n, _)| *n == holder).unwrap();
    let follower = 1 - leader;
    cp.eventually(
        "the leader deletes the two old sessions",
        Duration::from_secs(60),
        || (deleted(&replicas[leader].1.base) == 2).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sweeps(&replicas[follower].1.base),
        0,
        "the follower never sweeps"
    );

    // The leader dies; once its Lease expires the other replica sweeps new old sessions.
    runtime.block_on(store_old_sessions(root.path(), 4, 6));
    let (dead, server) = replicas.remove(leader);
    drop(server);
    let survivor = &replicas[0];
    cp.eventually(
        "the survivor takes the Lease",
        Duration::from_secs(90),
        || lease_holder(cp).filter(|h| h == survivor.0),
    );
    cp.eventually("the survivor sweeps", Duration::from_secs(60), || {
        (deleted(&survivor.1.base) >= 3).then_some(())
    });
    assert_ne!(dead, survivor.0);
}
