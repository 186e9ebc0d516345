//! Test builders and a scripted Kubernetes API server (`tower-test`): tests read the requests
//! the reconcilers make, in order, and choose the answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::ObjectMeta;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use crate::crd::server::{HistoryServer, HistoryServerSpec, StorageRef};
use crate::crd::storage::{
    AzureBlobSpec, CollectorSpec, CredentialsSecretRef, HistoryStorage, HistoryStorageSpec,
    HistoryStorageStatus, SecretKeys, StorageBackend,
};
use crate::metrics::Metrics;
use crate::reconcile::{Context, Settings};

/// Namespace of every fixture object.
pub const NS: &str = "ray";

/// A scripted API server.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

/// One request the client made, waiting for its answer.
pub struct Exchange {
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// JSON body (Null when empty).
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl Exchange {
    /// Asserts the method and that the path (without query) equals `path`.
    pub fn expect(self, method: Method, path: &str) -> Self {
        let actual = self.uri.split('?').next().unwrap_or_default();
        assert_eq!(
            (&self.method, actual),
            (&method, path),
            "unexpected request {} {}",
            self.method,
            self.uri
        );
        self
    }

    /// Answers with `status` and a JSON body.
    pub fn reply(self, status: StatusCode, body: &Value) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("response");
        self.send.send_response(response);
    }

    /// Answers 200 with the request's own body (what an apply or create returns).
    pub fn echo(self) {
        let body = self.body.clone();
        self.reply(StatusCode::OK, &body);
    }

    /// Answers 404 like the API server does.
    pub fn not_found(self) {
        self.reply(
            StatusCode::NOT_FOUND,
            &json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}),
        );
    }
}

impl ApiServerVerifier {
    /// The next request; panics if the client makes none.
    pub async fn next(&mut self) -> Exchange {
        let (request, send) =
            tokio::time::timeout(std::time::Duration::from_secs(30), self.0.next_request())
                .await
                .expect("timed out waiting for a request")
                .expect("client dropped");
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("json body")
        };
        Exchange {
            method,
            uri,
            body,
            send,
        }
    }
}

/// A context whose client talks to the returned scripted API server.
pub fn context(settings: Settings) -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let ctx = Context::new(
        client,
        Some("test".into()),
        Arc::new(Metrics::default()),
        settings,
    );
    (Arc::new(ctx), ApiServerVerifier(handle))
}

/// Builders for `HistoryStorage`.
impl HistoryStorage {
    /// An Azure `HistoryStorage` named `history` reading connection string key `connectionString`
    /// of Secret `azure-credentials`.
    pub fn test() -> Self {
        let mut hs = HistoryStorage::new(
            "history",
            HistoryStorageSpec {
                storage: StorageBackend::Azureblob,
                azureblob: Some(AzureBlobSpec {
                    container: Some("ray-history-test".into()),
                    ..Default::default()
                }),
                s3: None,
                gcs: None,
                prefix: None,
                credentials_secret_ref: Some(CredentialsSecretRef {
                    name: "azure-credentials".into(),
                    keys: SecretKeys {
                        connection_string: Some("connectionString".into()),
                        ..Default::default()
                    },
                }),
                collector: CollectorSpec {
                    inject: true,
                    ..Default::default()
                },
            },
        );
        hs.metadata.namespace = Some(NS.into());
        hs.metadata.uid = Some("5a1e1b6c-0000-4000-8000-000000000001".into());
        hs.metadata.generation = Some(3);
        hs
    }

    /// With a written ConfigMap in its status (what the webhook requires).
    pub fn configured(mut self) -> Self {
        self.status = Some(HistoryStorageStatus {
            config_map: Some(self.config_map_name()),
            ..Default::default()
        });
        self
    }

    /// In another namespace.
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.metadata.namespace = Some(ns.into());
        self
    }
}

/// Builders for `HistoryServer`.
impl HistoryServer {
    /// A server named `history` reading `HistoryStorage` `history`.
    pub fn test() -> Self {
        let mut hs = HistoryServer::new(
            "history",
            HistoryServerSpec {
                storage_ref: StorageRef {
                    name: "history".into(),
                },
                replicas: Some(2),
                image: None,
                image_pull_policy: None,
                service: Default::default(),
                resources: None,
                cache_max_bytes: None,
                ray_dashboard: None,
                auth: None,
            },
        );
        hs.metadata.namespace = Some(NS.into());
        hs.metadata.uid = Some("5a1e1b6c-0000-4000-8000-000000000002".into());
        hs.metadata.generation = Some(1);
        hs
    }
}

/// A Secret with string data.
pub fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// Runs `kubernetes-validate --strict` for Kubernetes 1.33 to 1.37 over `objects`; panics
/// with the tool's output unless every object passes for every version.
pub fn kubernetes_validate(objects: &[Value]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command =
        std::process::Command::new(ray_history_testkit::tool("venv/bin/kubernetes-validate"));
    command.arg("--strict");
    for version in ["1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0"] {
        command.args(["-k", version]);
    }
    for (i, obj) in objects.iter().enumerate() {
        let file = dir.path().join(format!("{i}.json"));
        std::fs::write(&file, serde_json::to_vec(obj).expect("json")).expect("write");
        command.arg(file);
    }
    let out = command.output().expect("run kubernetes-validate");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let passed = text
        .lines()
        .filter(|l| l.starts_with("INFO") && l.contains(" passed "))
        .count();
    assert!(
        out.status.success() && passed == objects.len() * 5,
        "kubernetes-validate --strict:\n{text}"
    );
}

/// The condition `type_` in a status body.
pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

impl ApiServerVerifier {
    /// Asserts the client made no further request (call after the reconcile returned).
    pub async fn done(mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.0.next_request()).await
        {
            panic!(
                "unexpected extra request {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}
