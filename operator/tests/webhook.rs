//! The admission webhook over real HTTPS (rustls with an rcgen certificate, a reqwest client
//! trusting only that CA), fed real `AdmissionReview` JSON built from KubeRay-shaped pods.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use ray_history_operator::crd::storage::{HistoryStorage, HistoryStorageStatus};
use ray_history_operator::metrics::Metrics;
use ray_history_operator::webhook::tls::{self, Resolver};
use ray_history_operator::webhook::{self, WebhookState};
use serde_json::{Value, json};

/// Short, so the silent-client test is quick.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

const COLLECTOR_IMAGE: &str = "registry.example.com/ray-history-collector:test";

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

/// The sample HistoryStorage from config/, as the operator leaves it once configured.
fn sample_storage() -> HistoryStorage {
    let path = ray_history_testkit::workspace_root().join("config/samples/historystorage.yaml");
    let mut hs: HistoryStorage =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("sample")).expect("yaml");
    hs.status = Some(HistoryStorageStatus {
        config_map: Some(hs.config_map_name()),
        ..Default::default()
    });
    hs
}

fn review(pod: &Value, namespace: &str, uid: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kuberay:kuberay-operator", "groups": ["system:serviceaccounts"]},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// A webhook on HTTPS with a fresh certificate, and a client trusting only its CA.
struct Server {
    url: String,
    client: reqwest::Client,
    resolver: Arc<Resolver>,
    port: u16,
    writer: Writer<HistoryStorage>,
    metrics: Arc<Metrics>,
}

impl Server {
    async fn start(storages: Vec<HistoryStorage>) -> Self {
        let bundle = tls::generate(&["localhost".to_string()], 30).expect("certificate");
        let resolver = Arc::new(Resolver::default());
        resolver
            .load_pem(bundle.cert_pem.as_bytes(), bundle.key_pem.as_bytes())
            .expect("load");
        let (store, mut writer) = reflector::store();
        for hs in storages {
            writer.apply_watcher_event(&watcher::Event::Apply(hs));
        }
        let metrics = Arc::new(Metrics::default());
        let state = WebhookState {
            storages: store,
            client: None,
            collector_image: COLLECTOR_IMAGE.to_string(),
            metrics: metrics.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(tls::serve(
            listener,
            webhook::router(state),
            resolver.clone(),
            HANDSHAKE_TIMEOUT,
        ));
        Self {
            url: format!("https://localhost:{port}{}", webhook::MUTATE_PATH),
            client: client_trusting(&bundle.ca_pem),
            resolver,
            port,
            writer,
            metrics,
        }
    }

    async fn post(&self, body: Vec<u8>) -> Value {
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("webhook answers over HTTPS");
        assert_eq!(response.status(), 200);
        response.json().await.expect("AdmissionReview JSON")
    }

    /// Sends a review of `pod`; returns the response and the pod after applying its patch.
    async fn admit(&self, pod: &Value, namespace: &str) -> (Value, Value) {
        let uid = "3f0e2a51-1111-4d2b-9c3e-5a6b7c8d9e0f";
        let answer = self
            .post(serde_json::to_vec(&review(pod, namespace, uid)).unwrap())
            .await;
        let response = answer["response"].clone();
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(response["uid"], uid, "uid echoed");
        assert_eq!(response["allowed"], true, "never blocks a pod: {response}");
        let mut patched = pod.clone();
        if let Some(patch) = response.get("patch") {
            assert_eq!(response["patchType"], "JSONPatch");
            let bytes = patch_bytes(patch);
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("JSON patch");
            json_patch::patch(&mut patched, &patch).expect("patch applies to the pod");
        }
        (response, patched)
    }
}

/// The patch as bytes: kube serialises `[]byte` as an array of numbers, which Go's decoder
/// accepts like a base64 string; take either.
fn patch_bytes(patch: &Value) -> Vec<u8> {
    use base64::Engine;
    match patch {
        Value::String(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64 patch"),
        Value::Array(items) => items
            .iter()
            .map(|b| u8::try_from(b.as_u64().expect("byte")).expect("byte"))
            .collect(),
        other => panic!("patch is neither base64 nor bytes: {other}"),
    }
}

fn client_trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca")])
        .build()
        .expect("client")
}

fn as_pod(v: &Value) -> Pod {
    serde_json::from_value(v.clone()).expect("a valid Pod")
}

fn collector(pod: &Pod) -> Container {
    let spec = pod.spec.as_ref().expect("spec");
    let init = spec.init_containers.as_ref().expect("init containers");
    assert_eq!(
        init[0].name, "ray-history-collector",
        "collector starts first"
    );
    init[0].clone()
}

fn env_value(c: &Container, name: &str) -> Option<String> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

fn validate_pod(pod: &Value, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{name}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(pod).unwrap()).unwrap();
    let result = support::kubernetes_validate(&[file]);
    assert_eq!(
        result.passed,
        support::K8S_VERSIONS.len(),
        "{}",
        result.output
    );
}

#[tokio::test]
async fn head_pod_gets_collector_sidecar_and_passes_strict_validation() {
    let server = Server::start(vec![sample_storage()]).await;
    let head = fixture("head-pod.json");
    let (response, patched) = server.admit(&head, "ray").await;
    assert!(
        response.get("patch").is_some(),
        "head pod patched: {response}"
    );
    validate_pod(&patched, "head");

    let pod = as_pod(&patched);
    let c = collector(&pod);
    assert_eq!(
        c.restart_policy.as_deref(),
        Some("Always"),
        "native sidecar"
    );
    assert_eq!(c.image.as_deref(), Some(COLLECTOR_IMAGE));
    assert_eq!(
        c.args.as_ref().unwrap(),
        &[
            "run",
            "--state-dir",
            "/var/lib/ray-history",
            "--flush-interval",
            "2s",
            "--metrics-listen",
            "0.0.0.0:9091"
        ]
    );
    assert_eq!(
        env_value(&c, "RAY_CLUSTER_NAME").as_deref(),
        Some("squares-abc12")
    );
    assert_eq!(
        env_value(&c, "RAY_CLUSTER_ID").as_deref(),
        Some("7d3c1a52-4e7b-4b8e-9a51-2f0c8e6d1b11")
    );
    assert_eq!(env_value(&c, "RAY_NODE_TYPE").as_deref(), Some("head"));
    assert_eq!(env_value(&c, "OWNER_KIND").as_deref(), Some("RayJob"));
    assert_eq!(env_value(&c, "OWNER_NAME").as_deref(), Some("squares"));
    assert_eq!(env_value(&c, "RAY_TMP_ROOT").as_deref(), Some("/tmp/ray"));
    let env = c.env.as_ref().unwrap();
    let field = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.clone())
            .and_then(|v| v.field_ref)
            .map(|f| f.field_path)
    };
    assert_eq!(field("POD_NAME").as_deref(), Some("metadata.name"));
    assert_eq!(field("POD_IP").as_deref(), Some("status.podIP"));
    assert_eq!(
        field("RAY_CLUSTER_NAMESPACE").as_deref(),
        Some("metadata.namespace")
    );
    let secret = env
        .iter()
        .find(|e| e.name == "AZURE_STORAGE_CONNECTION_STRING")
        .and_then(|e| e.value_from.clone())
        .and_then(|v| v.secret_key_ref)
        .expect("connection string from the Secret");
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("azurite-credentials", "connectionString")
    );
    let env_from = c.env_from.as_ref().unwrap();
    assert_eq!(
        env_from[0].config_map_ref.as_ref().unwrap().name,
        "history-storage"
    );

    // /tmp/ray is shared through a new emptyDir, mounted in both containers.
    let spec = pod.spec.as_ref().unwrap();
    let ray = &spec.containers[0];
    let mount = |c: &Container| {
        c.volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/tmp/ray")
            .map(|m| m.name.clone())
    };
    assert_eq!(mount(ray).as_deref(), Some("ray-history-tmp"));
    assert_eq!(mount(&c).as_deref(), Some("ray-history-tmp"));
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name == "ray-history-tmp" && v.empty_dir.is_some())
    );
    assert_eq!(
        env_value(ray, "RAY_enable_export_api_write").as_deref(),
        Some("1")
    );
    assert_eq!(
        spec.termination_grace_period_seconds,
        Some(60),
        "grace period raised for the final flush"
    );
    assert_eq!(
        pod.metadata.annotations.as_ref().unwrap()["rayhistory.io/injected"],
        "history"
    );
    let metrics = server.metrics.encode();
    assert!(
        metrics.contains(r#"ray_history_operator_admissions_total{outcome="injected"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn worker_pod_reuses_its_tmp_ray_volume_and_keeps_user_settings() {
    let server = Server::start(vec![sample_storage()]).await;
    let worker = fixture("worker-pod.json");
    let (_, patched) = server.admit(&worker, "ray").await;
    validate_pod(&patched, "worker");
    let pod = as_pod(&patched);
    let spec = pod.spec.as_ref().unwrap();
    let c = collector(&pod);
    assert_eq!(
        spec.init_containers.as_ref().unwrap()[1].name,
        "wait-gcs-ready",
        "KubeRay's init container kept"
    );
    assert_eq!(
        c.volume_mounts.as_ref().unwrap()[0].name,
        "ray-logs",
        "reuses the Ray container's /tmp/ray volume"
    );
    assert!(
        !spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == "ray-history-tmp"),
        "no extra volume"
    );
    assert_eq!(env_value(&c, "RAY_NODE_TYPE").as_deref(), Some("worker"));
    assert_eq!(env_value(&c, "OWNER_KIND").as_deref(), Some("RayCluster"));
    assert_eq!(env_value(&c, "OWNER_NAME").as_deref(), Some("demo"));
    assert_eq!(
        env_value(&spec.containers[0], "RAY_enable_export_api_write").as_deref(),
        Some("0"),
        "the user's value wins"
    );
    assert_eq!(
        spec.termination_grace_period_seconds,
        Some(120),
        "a longer grace period is kept"
    );
}

#[tokio::test]
async fn injecting_twice_equals_injecting_once() {
    let server = Server::start(vec![sample_storage()]).await;
    for name in ["head-pod.json", "worker-pod.json"] {
        let (_, once) = server.admit(&fixture(name), "ray").await;
        let (response, twice) = server.admit(&once, "ray").await;
        assert!(
            response.get("patch").is_none(),
            "an injected pod gets no patch: {response}"
        );
        assert_eq!(once, twice);
    }
}

#[tokio::test]
async fn other_pods_and_namespaces_are_untouched() {
    let mut no_inject = sample_storage();
    no_inject.metadata.namespace = Some("batch".into());
    no_inject.spec.collector.inject = false;
    let mut unconfigured = sample_storage();
    unconfigured.metadata.namespace = Some("fresh".into());
    unconfigured.status = None;
    let server = Server::start(vec![sample_storage(), no_inject, unconfigured]).await;
    let head = fixture("head-pod.json");

    let mut plain = head.clone();
    plain["metadata"]["labels"] = json!({"app": "web"});
    let mut opted_out = head.clone();
    opted_out["metadata"]["annotations"]["rayhistory.io/inject"] = json!("false");
    let mut unselected = head.clone();
    unselected["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("rayhistory.io/enabled");
    let mut redis = head.clone();
    redis["metadata"]["labels"]["ray.io/node-type"] = json!("redis-cleanup");

    for (pod, ns, why) in [
        (&plain, "ray", "no KubeRay labels"),
        (&redis, "ray", "not a head or worker"),
        (&opted_out, "ray", "opted out"),
        (&unselected, "ray", "podSelector does not match"),
        (&head, "default", "namespace without HistoryStorage"),
        (&head, "batch", "inject: false"),
        (&head, "fresh", "ConfigMap not written yet"),
    ] {
        let (response, after) = server.admit(pod, ns).await;
        assert!(response.get("patch").is_none(), "{why}: {response}");
        assert_eq!(&after, pod, "{why}");
    }
}

#[tokio::test]
async fn malformed_reviews_are_allowed_with_a_warning() {
    let server = Server::start(vec![sample_storage()]).await;
    let head = fixture("head-pod.json");
    let mut not_a_pod = review(&head, "ray", "a1b2");
    not_a_pod["request"]["object"]["spec"] = json!("not a pod spec");
    let mut no_request = review(&head, "ray", "c3d4");
    no_request.as_object_mut().unwrap().remove("request");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not json".to_vec(), ""),
        (b"{}".to_vec(), ""),
        (serde_json::to_vec(&no_request).unwrap(), ""),
        (serde_json::to_vec(&not_a_pod).unwrap(), "a1b2"),
    ];
    for (body, uid) in cases {
        let answer = server.post(body).await;
        let response = &answer["response"];
        assert_eq!(response["allowed"], true, "{answer}");
        assert_eq!(response["uid"], uid, "uid kept when readable: {answer}");
        assert!(response.get("patch").is_none(), "{answer}");
        let warnings = response["warnings"].as_array().expect("a warning");
        assert!(
            warnings[0]
                .as_str()
                .unwrap()
                .contains("malformed admission review"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn new_certificate_is_served_without_restart() {
    let server = Server::start(vec![]).await;
    let rotated = tls::generate(&["localhost".to_string()], 30).expect("certificate");
    let new_client = client_trusting(&rotated.ca_pem);
    let url = format!("https://localhost:{}/healthz", server.port);
    assert!(
        new_client.get(&url).send().await.is_err(),
        "old certificate is not trusted by the new CA"
    );
    server
        .resolver
        .load_pem(rotated.cert_pem.as_bytes(), rotated.key_pem.as_bytes())
        .unwrap();
    let ok = new_client
        .get(&url)
        .send()
        .await
        .expect("rotated certificate served");
    assert_eq!(ok.status(), 200);
    drop(server.writer);
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_dropped() {
    use tokio::io::AsyncReadExt;
    let server = Server::start(vec![]).await;
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let mut buf = [0u8; 16];
    // The server closes the connection once the handshake timeout passes.
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("closed within the timeout");
    assert_eq!(read.expect("read"), 0, "connection closed without data");
    // And it still serves a proper client.
    let (response, _) = server.admit(&fixture("head-pod.json"), "ray").await;
    assert_eq!(response["allowed"], true);
}
