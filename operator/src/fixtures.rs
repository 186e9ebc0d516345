//! Test builders and a scripted Kubernetes API server (`tower-test`): tests read the requests
//! the reconcilers make, in order, and choose the answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
pub use ray_history_testkit::apiserver::{ApiServerVerifier, Exchange};
use serde_json::Value;

use crate::crd::server::{HistoryServer, HistoryServerSpec, StorageRef};
use crate::crd::storage::{
    AzureBlobSpec, CollectorSpec, CredentialsSecretRef, HistoryStorage, HistoryStorageSpec,
    HistoryStorageStatus, SecretKeys, StorageBackend,
};
use crate::metrics::Metrics;
use crate::reconcile::{Context, Settings};

/// Namespace of every fixture object.
pub const NS: &str = "ray";

/// A context whose client talks to the returned scripted API server.
pub fn context(settings: Settings) -> (Arc<Context>, ApiServerVerifier) {
    let (client, verifier) = ApiServerVerifier::client(NS);
    let ctx = Context::new(
        client,
        Some("test".into()),
        Arc::new(Metrics::default()),
        settings,
    );
    (Arc::new(ctx), verifier)
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
                retention: None,
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
