//! The `ray-history-operator` binary as deployed, against an in-memory fake API server
//! (tests/support/fake_apiserver.py) and a real Azurite: it elects itself leader, issues the
//! webhook certificate and publishes its CA, reconciles a `HistoryStorage` to Ready through
//! real watches, reports ready, and injects the collector over HTTPS with that certificate.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use ray_history_storage::testing::{Azurite, free_port};
use serde_json::{Value, json};

/// A child process killed (by its own PID) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct FakeApi {
    _process: Process,
    url: String,
    http: reqwest::Client,
}

impl FakeApi {
    fn start() -> Self {
        let mut child = support::python_command()
            .arg(support::support_file("fake_apiserver.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fake API server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("port on the first line");
        Self {
            _process: Process(child),
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    async fn create(&self, path: &str, obj: Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&obj)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "seeding {path}: {}",
            response.status()
        );
    }

    async fn objects(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/__store", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn find(&self, kind: &str, name: &str) -> Option<Value> {
        self.objects()
            .await
            .into_iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn operator_runs_end_to_end_against_a_fake_api_server() {
    let azurite = Azurite::start();
    let api = FakeApi::start();
    api.create(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "ray-history"},
            "webhooks": [{"name": "pods.rayhistory.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "clientConfig": {"service": {"name": "ray-history-webhook", "namespace": "ray-history", "path": "/mutate"}}}]
        }),
    )
    .await;
    let connection = base64::engine::general_purpose::STANDARD.encode(azurite.connection_string());
    api.create(
        "/api/v1/namespaces/ray/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azure-credentials"}, "data": {"connectionString": connection}}),
    )
    .await;
    api.create(
        "/apis/rayhistory.io/v1alpha1/namespaces/ray/historystorages",
        json!({
            "apiVersion": "rayhistory.io/v1alpha1", "kind": "HistoryStorage",
            "metadata": {"name": "history"},
            "spec": {
                "storage": "azureblob",
                "azureblob": {"container": "operator-run"},
                "credentialsSecretRef": {"name": "azure-credentials", "keys": {"connectionString": "connectionString"}},
                "collector": {"inject": true}
            }
        }),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}]
        }))
        .unwrap(),
    )
    .unwrap();
    let (metrics_port, webhook_port) = (free_port(), free_port());
    let _operator = Process(
        Command::new(env!("CARGO_BIN_EXE_ray-history-operator"))
            .args([
                "run",
                "--namespace",
                "ray-history",
                "--pod-name",
                "operator-0",
                "--lease-duration",
                "3s",
            ])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--webhook-listen", &format!("127.0.0.1:{webhook_port}")])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start operator"),
    );

    let lease = eventually("the leader Lease", || {
        api.find("Lease", "ray-history-operator")
    })
    .await;
    assert_eq!(lease["spec"]["holderIdentity"], "operator-0");

    let storage = eventually("HistoryStorage Ready", || async {
        let hs = api.find("HistoryStorage", "history").await?;
        let ready = hs["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(hs)
    })
    .await;
    assert_eq!(storage["status"]["configMap"], "history-storage");
    let cm = api
        .find("ConfigMap", "history-storage")
        .await
        .expect("ConfigMap written");
    assert_eq!(cm["data"]["STORAGE"], "azureblob");
    assert!(
        api.objects()
            .await
            .iter()
            .any(|o| o["kind"] == "Event" && o["regarding"]["name"] == "history"),
        "an Event"
    );

    let ready_url = format!("http://127.0.0.1:{metrics_port}/readyz");
    eventually("/readyz", || async {
        let r = reqwest::get(&ready_url).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let secret = api
        .find("Secret", "ray-history-webhook-tls")
        .await
        .expect("webhook certificate Secret");
    let ca_b64 = secret["data"]["ca.crt"].as_str().unwrap().to_string();
    let mwc = eventually("caBundle", || async {
        let m = api
            .find("MutatingWebhookConfiguration", "ray-history")
            .await?;
        m["webhooks"][0]["clientConfig"]
            .get("caBundle")
            .is_some()
            .then_some(m)
    })
    .await;
    assert_eq!(
        mwc["webhooks"][0]["clientConfig"]["caBundle"],
        ca_b64.as_str()
    );

    // The webhook, reached by the Service DNS name its certificate is for.
    let ca = base64::engine::general_purpose::STANDARD
        .decode(&ca_b64)
        .unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(
            "ray-history-webhook.ray-history.svc",
            SocketAddr::from(([127, 0, 0, 1], webhook_port)),
        )
        .build()
        .unwrap();
    let pod: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/head-pod.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": "ray",
        "operation": "CREATE", "userInfo": {"username": "kuberay"}, "object": pod}});
    let url = format!("https://ray-history-webhook.ray-history.svc:{webhook_port}/mutate");
    let answer: Value = eventually("an injecting webhook", || async {
        let a: Value = client
            .post(&url)
            .json(&review)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        a["response"].get("patch").is_some().then_some(a)
    })
    .await;
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["uid"], "u-1");

    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ray_history_operator_leader 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ray_history_operator_storage_probes_total{result="reachable"}"#),
        "{metrics}"
    );
}
