//! `HistoryStorage` reconcile: resolve the Secret, validate the settings with the storage
//! crate's own rules, write ConfigMap `<name>-storage`, probe the storage end to end with the
//! shared `check`, and report `SecretResolved`, `StorageReachable` and `Ready`.
//!
//! Problems with the user's objects become conditions and Events, never errors: errors are
//! reserved for API calls that failed (and are retried).
//!
//! Over 600 lines only with its unit tests, which stay beside the conditions they check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ObjectMeta;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use ray_history_storage::StorageConfig;

use super::{Context, apply, apply_status};
use crate::Result;
use crate::crd::storage::{HistoryStorage, HistoryStorageStatus};
use crate::crd::{self, MANAGER};
use crate::metrics::ProbeLabels;

/// Condition: the credentials Secret and its keys exist.
pub const SECRET_RESOLVED: &str = "SecretResolved";
/// Condition: the storage check passed.
pub const STORAGE_REACHABLE: &str = "StorageReachable";
/// Condition: everything above, pods can be injected and history is stored.
pub const READY: &str = "Ready";

/// Reconciles one `HistoryStorage`.
pub async fn reconcile(hs: Arc<HistoryStorage>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = hs.reconcile(&ctx).await;
    ctx.metrics
        .reconciled("HistoryStorage", result.is_ok(), started.elapsed());
    result
}

/// The credentials found, or why not.
enum Credentials {
    Resolved(BTreeMap<&'static str, String>),
    /// The operator may not read Secrets in this namespace (least privilege: it reads them
    /// only where the chart's `rbac.secretNamespaces` lets it); pods still get them from the
    /// kubelet.
    NotPermitted,
    Problem {
        reason: &'static str,
        message: String,
    },
}

/// What the probe found; `None` when it did not run (with the reason and message).
type ProbeOutcome = Result<String, (Option<&'static str>, String)>;

impl HistoryStorage {
    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        let ns = self.namespace().unwrap_or_default();
        let name = self.name_any();
        let generation = self.metadata.generation;
        let previous = self.status.clone().unwrap_or_default();
        let prev = previous.conditions.as_slice();
        let mut status = HistoryStorageStatus {
            observed_generation: generation,
            ..Default::default()
        };

        let values = match self.credentials(ctx, &ns).await? {
            Credentials::Resolved(values) => {
                let message = match &self.spec.credentials_secret_ref {
                    Some(r) => format!("Secret {} has every key named", r.name),
                    None => {
                        "no credentialsSecretRef: using workload or managed identity".to_string()
                    }
                };
                status.conditions.push(crd::condition(
                    prev,
                    SECRET_RESOLVED,
                    true,
                    "Resolved",
                    message,
                    generation,
                ));
                Some(Some(values))
            }
            Credentials::NotPermitted => {
                status.conditions.push(crd::unknown(
                    prev,
                    SECRET_RESOLVED,
                    "NotPermitted",
                    &format!(
                        "not checked: the operator may not read Secrets in namespace {ns} \
                         (the chart's rbac.secretNamespaces); pods get the Secret from the kubelet"
                    ),
                    generation,
                ));
                Some(None)
            }
            Credentials::Problem { reason, message } => {
                status.conditions.push(crd::condition(
                    prev,
                    SECRET_RESOLVED,
                    false,
                    reason,
                    message,
                    generation,
                ));
                None
            }
        };

        // Ok: reachable; Err((None, _)): unreachable; Err((Some(reason), _)): not probed.
        let outcome: ProbeOutcome = match values {
            None => Err((
                Some("SecretNotResolved"),
                "not probed: the credentials Secret is not resolved".to_string(),
            )),
            Some(None) => {
                self.apply_config_map(ctx, &ns).await?;
                status.config_map = Some(self.config_map_name());
                Err((
                    Some("SecretNotChecked"),
                    "not probed: the operator may not read the credentials Secret".to_string(),
                ))
            }
            Some(Some(values)) => match self.spec.storage_config(&values) {
                Err(e) => Err((Some("InvalidSpec"), e.to_string())),
                Ok(config) => {
                    self.apply_config_map(ctx, &ns).await?;
                    status.config_map = Some(self.config_map_name());
                    status.location = Some(config.describe());
                    let with_secret = self.spec.credentials_secret_ref.is_some();
                    match ctx.settings.probe_policy.refusal(&config, with_secret) {
                        Some(refusal) => Err((Some(refusal.reason), refusal.message)),
                        None => self.probe(ctx, &ns, &config).await,
                    }
                }
            },
        };
        let (reachable, ready_reason, ready_message) = match outcome {
            Ok(message) => {
                status.conditions.push(crd::condition(
                    prev,
                    STORAGE_REACHABLE,
                    true,
                    "Reachable",
                    message,
                    generation,
                ));
                (
                    Some(true),
                    "Ready",
                    format!(
                        "history goes to {}",
                        status.location.clone().unwrap_or_default()
                    ),
                )
            }
            Err((None, message)) => {
                status.conditions.push(crd::condition(
                    prev,
                    STORAGE_REACHABLE,
                    false,
                    "Unreachable",
                    message.clone(),
                    generation,
                ));
                (Some(false), "StorageUnreachable", message)
            }
            // Spec and Secret problems make the object not ready; a probe the operator may not
            // run leaves readiness unknown (pods are still injected).
            Err((Some(reason), message)) => {
                status.conditions.push(crd::unknown(
                    prev,
                    STORAGE_REACHABLE,
                    reason,
                    &message,
                    generation,
                ));
                let known_bad = matches!(reason, "SecretNotResolved" | "InvalidSpec");
                (known_bad.then_some(false), reason, message)
            }
        };
        status.conditions.push(match reachable {
            Some(ready) => crd::condition(
                prev,
                READY,
                ready,
                ready_reason,
                ready_message.clone(),
                generation,
            ),
            None => crd::unknown(prev, READY, ready_reason, &ready_message, generation),
        });

        let was_ready = previous
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .map(|c| (c.status.clone(), c.reason.clone()));
        let now_ready = status
            .conditions
            .last()
            .map(|c| (c.status.clone(), c.reason.clone()));
        self.patch_status(ctx, &ns, &status).await?;
        if was_ready != now_ready {
            ctx.event(self, reachable == Some(false), ready_reason, ready_message)
                .await;
        }
        tracing::info!(namespace = %ns, name, ready = ?reachable, reason = ready_reason, "reconciled HistoryStorage");
        Ok(Action::requeue(if reachable != Some(false) {
            ctx.settings.probe_interval
        } else {
            ctx.settings.retry_interval
        }))
    }

    /// Reads the Secret's values for the keys the spec names.
    async fn credentials(&self, ctx: &Context, ns: &str) -> Result<Credentials> {
        let Some(r) = &self.spec.credentials_secret_ref else {
            return Ok(Credentials::Resolved(BTreeMap::new()));
        };
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let found = match secrets.get_opt(&r.name).await {
            Err(kube::Error::Api(e)) if e.code == 403 => return Ok(Credentials::NotPermitted),
            found => found?,
        };
        let Some(secret) = found else {
            return Ok(Credentials::Problem {
                reason: "SecretNotFound",
                message: format!("Secret {} not found in namespace {ns}", r.name),
            });
        };
        let data = secret.data.unwrap_or_default();
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for wanted in self.spec.secret_env() {
            match data
                .get(&wanted.key)
                .map(|v| String::from_utf8(v.0.clone()))
            {
                Some(Ok(value)) if !value.trim().is_empty() => {
                    values.insert(wanted.env, value.trim().to_string());
                }
                _ => missing.push(wanted.key),
            }
        }
        if !missing.is_empty() {
            return Ok(Credentials::Problem {
                reason: "KeyNotFound",
                message: format!(
                    "Secret {} has no non-empty key {}",
                    r.name,
                    missing.join(", ")
                ),
            });
        }
        Ok(Credentials::Resolved(values))
    }

    /// Runs the storage check with the tenant's credentials. The status gets a brief line
    /// (no response body the storage echoed); the log gets the whole redacted error.
    async fn probe(&self, ctx: &Context, ns: &str, config: &StorageConfig) -> ProbeOutcome {
        let probe = tokio::time::timeout(
            ctx.settings.probe_timeout,
            ray_history_storage::check::run(config),
        )
        .await;
        let outcome = match probe {
            Ok(Ok(report)) => Ok(format!("check passed: {}", report.storage)),
            Ok(Err(e)) => {
                tracing::warn!(namespace = %ns, name = %self.name_any(), error = %e, "storage check failed");
                Err((None, e.brief()))
            }
            Err(_) => Err((
                None,
                format!(
                    "check timed out after {}",
                    humantime::format_duration(ctx.settings.probe_timeout)
                ),
            )),
        };
        let result = if outcome.is_ok() {
            "reachable"
        } else {
            "unreachable"
        };
        ctx.metrics
            .probes
            .get_or_create(&ProbeLabels { result })
            .inc();
        outcome
    }

    /// Server-side applies ConfigMap `<name>-storage`, owned by this object.
    async fn apply_config_map(&self, ctx: &Context, ns: &str) -> Result<()> {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.config_map_name()),
                namespace: Some(ns.to_string()),
                labels: Some(BTreeMap::from([
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        MANAGER.to_string(),
                    ),
                    ("rayhistory.io/storage".to_string(), self.name_any()),
                ])),
                owner_references: self.controller_owner_ref(&()).map(|o| vec![o]),
                ..Default::default()
            },
            data: Some(self.spec.settings()),
            ..Default::default()
        };
        apply(ctx, ns, &cm).await?;
        Ok(())
    }

    async fn patch_status(
        &self,
        ctx: &Context,
        ns: &str,
        status: &HistoryStorageStatus,
    ) -> Result<()> {
        apply_status(ctx, ns, self, status).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use http::{Method, StatusCode};
    use ray_history_testkit::Azurite;
    use serde_json::Value;

    use super::*;
    use crate::crd::storage::StorageBackend;
    use crate::fixtures::{self, ApiServerVerifier, NS, condition, secret};
    use crate::reconcile::{ProbePolicy, Settings};

    const SECRET_PATH: &str = "/api/v1/namespaces/ray/secrets/azure-credentials";
    const CM_PATH: &str = "/api/v1/namespaces/ray/configmaps/history-storage";
    const STATUS_PATH: &str =
        "/apis/rayhistory.io/v1alpha1/namespaces/ray/historystorages/history/status";
    const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/ray/events";

    fn settings() -> Settings {
        Settings {
            probe_timeout: Duration::from_secs(20),
            probe_policy: ProbePolicy::new(&["127.0.0.1".into()]).unwrap(),
            ..Settings::default()
        }
    }

    /// Reconciles `hs` while `script` plays the API server; returns the action and what the
    /// script returned.
    async fn run<F, Fut, T>(hs: HistoryStorage, script: F) -> (Action, T)
    where
        F: FnOnce(ApiServerVerifier) -> Fut,
        Fut: Future<Output = (T, ApiServerVerifier)> + Send + 'static,
        T: Send + 'static,
    {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let (ctx, verifier) = fixtures::context(settings());
        let server = tokio::spawn(script(verifier));
        let action = reconcile(Arc::new(hs), ctx)
            .await
            .expect("reconcile succeeds");
        let (out, verifier) = server.await.expect("script");
        verifier.done().await;
        (action, out)
    }

    /// Answers the status patch and the Event; returns the applied status.
    async fn status_and_event(
        mut api: ApiServerVerifier,
        warning: bool,
    ) -> (Value, ApiServerVerifier) {
        let patch = api.next().await.expect(Method::PATCH, STATUS_PATH);
        assert!(
            patch.uri.contains("fieldManager=ray-history-operator"),
            "{}",
            patch.uri
        );
        assert_eq!(patch.body["kind"], "HistoryStorage");
        let status = patch.body["status"].clone();
        patch.reply(StatusCode::OK, &with_status(&status));
        let event = api.next().await.expect(Method::POST, EVENTS_PATH);
        assert_eq!(
            event.body["type"],
            if warning { "Warning" } else { "Normal" }
        );
        assert_eq!(event.body["regarding"]["name"], "history");
        let note = event.body["note"].as_str().unwrap_or_default().to_string();
        assert!(
            !note.contains("AccountKey="),
            "no secrets in events: {note}"
        );
        event.echo();
        (status, api)
    }

    /// What the API server returns for a status patch: the whole object.
    fn with_status(status: &Value) -> Value {
        let mut obj = serde_json::to_value(HistoryStorage::test()).unwrap();
        obj["status"] = status.clone();
        obj
    }

    fn assert_condition(status: &Value, type_: &str, value: &str, reason: &str) {
        let c = condition(status, type_);
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some(value), Some(reason)),
            "{c}"
        );
        assert_eq!(c["observedGeneration"], 3);
    }

    #[tokio::test]
    async fn missing_secret_is_a_condition_not_an_error() {
        let (action, status) = run(HistoryStorage::test(), |mut api| async move {
            api.next()
                .await
                .expect(Method::GET, SECRET_PATH)
                .not_found();
            status_and_event(api, true).await
        })
        .await;
        assert_condition(&status, SECRET_RESOLVED, "False", "SecretNotFound");
        assert_condition(&status, STORAGE_REACHABLE, "Unknown", "SecretNotResolved");
        assert_condition(&status, READY, "False", "SecretNotResolved");
        assert!(
            condition(&status, SECRET_RESOLVED)["message"]
                .as_str()
                .unwrap()
                .contains("azure-credentials")
        );
        assert!(
            status.get("configMap").is_none(),
            "no ConfigMap, so no injection"
        );
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(action, Action::requeue(settings().retry_interval));
    }

    #[tokio::test]
    async fn missing_key_names_the_key() {
        let (_, status) = run(HistoryStorage::test(), |mut api| async move {
            let s = secret("azure-credentials", &[("other", "x")]);
            api.next()
                .await
                .expect(Method::GET, SECRET_PATH)
                .reply(StatusCode::OK, &serde_json::to_value(s).unwrap());
            status_and_event(api, true).await
        })
        .await;
        assert_condition(&status, SECRET_RESOLVED, "False", "KeyNotFound");
        assert!(
            condition(&status, SECRET_RESOLVED)["message"]
                .as_str()
                .unwrap()
                .contains("connectionString")
        );
        assert_condition(&status, READY, "False", "SecretNotResolved");
    }

    #[tokio::test]
    async fn invalid_spec_names_the_setting() {
        let mut hs = HistoryStorage::test();
        hs.spec.storage = StorageBackend::S3;
        hs.spec.credentials_secret_ref = None;
        let (action, status) =
            run(hs, |api| async move { status_and_event(api, true).await }).await;
        assert_condition(&status, SECRET_RESOLVED, "True", "Resolved");
        assert_condition(&status, STORAGE_REACHABLE, "Unknown", "InvalidSpec");
        assert_condition(&status, READY, "False", "InvalidSpec");
        assert!(
            condition(&status, READY)["message"]
                .as_str()
                .unwrap()
                .contains("S3_BUCKET"),
            "{status}"
        );
        assert_eq!(action, Action::requeue(settings().retry_interval));
    }

    /// Plays GET Secret (with `connection`) and the ConfigMap apply; returns the ConfigMap.
    async fn secret_and_config_map(
        mut api: ApiServerVerifier,
        connection: String,
    ) -> (Value, ApiServerVerifier) {
        let s = secret("azure-credentials", &[("connectionString", &connection)]);
        api.next()
            .await
            .expect(Method::GET, SECRET_PATH)
            .reply(StatusCode::OK, &serde_json::to_value(s).unwrap());
        let cm = api.next().await.expect(Method::PATCH, CM_PATH);
        assert!(
            cm.uri.contains("fieldManager=ray-history-operator") && cm.uri.contains("force=true"),
            "{}",
            cm.uri
        );
        let body = cm.body.clone();
        cm.echo();
        (body, api)
    }

    #[tokio::test]
    async fn stopped_azurite_is_unreachable() {
        let mut azurite = Azurite::start();
        let connection = azurite.connection_string();
        azurite.stop();
        let (action, (cm, status)) = run(HistoryStorage::test(), |api| async move {
            let (cm, api) = secret_and_config_map(api, connection).await;
            let (status, api) = status_and_event(api, true).await;
            ((cm, status), api)
        })
        .await;
        assert_eq!(cm["data"]["STORAGE"], "azureblob");
        assert_condition(&status, SECRET_RESOLVED, "True", "Resolved");
        assert_condition(&status, STORAGE_REACHABLE, "False", "Unreachable");
        assert_condition(&status, READY, "False", "StorageUnreachable");
        let message = condition(&status, STORAGE_REACHABLE)["message"]
            .as_str()
            .unwrap();
        assert!(
            !message.contains("Eby8vdM02"),
            "no account key in status: {message}"
        );
        // Injection continues through an outage: the collector retries.
        assert_eq!(status["configMap"], "history-storage");
        assert_eq!(action, Action::requeue(settings().retry_interval));
    }

    #[tokio::test]
    async fn reachable_azurite_makes_it_ready_and_writes_the_config_map() {
        let azurite = Azurite::shared();
        let connection = azurite.connection_string();
        let (action, (cm, status)) = run(HistoryStorage::test(), |api| async move {
            let (cm, api) = secret_and_config_map(api, connection).await;
            let (status, api) = status_and_event(api, false).await;
            ((cm, status), api)
        })
        .await;
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(
            cm["data"],
            serde_json::json!({"STORAGE": "azureblob", "AZURE_STORAGE_CONTAINER": "ray-history-test"})
        );
        assert_eq!(
            cm["metadata"]["ownerReferences"][0]["uid"],
            "5a1e1b6c-0000-4000-8000-000000000001"
        );
        assert_eq!(cm["metadata"]["ownerReferences"][0]["controller"], true);
        fixtures::kubernetes_validate(std::slice::from_ref(&cm));
        assert_condition(&status, SECRET_RESOLVED, "True", "Resolved");
        assert_condition(&status, STORAGE_REACHABLE, "True", "Reachable");
        assert_condition(&status, READY, "True", "Ready");
        assert_eq!(status["configMap"], "history-storage");
        assert!(
            status["location"]
                .as_str()
                .unwrap()
                .contains("ray-history-test"),
            "{status}"
        );
        assert_eq!(action, Action::requeue(settings().probe_interval));
    }

    #[tokio::test]
    async fn unchanged_readiness_publishes_no_event() {
        let azurite = Azurite::shared();
        let connection = azurite.connection_string();
        let mut hs = HistoryStorage::test();
        hs.status = Some(HistoryStorageStatus {
            conditions: vec![crd::condition(&[], READY, true, "Ready", "", Some(3))],
            ..Default::default()
        });
        let previous = hs.status.clone().unwrap().conditions[0]
            .last_transition_time
            .clone();
        let (_, status) = run(hs, |api| async move {
            let (_, mut api) = secret_and_config_map(api, connection).await;
            let patch = api.next().await.expect(Method::PATCH, STATUS_PATH);
            let status = patch.body["status"].clone();
            patch.reply(StatusCode::OK, &with_status(&status));
            (status, api)
        })
        .await;
        assert_condition(&status, READY, "True", "Ready");
        let kept = serde_json::to_value(&previous).unwrap();
        assert_eq!(
            condition(&status, READY)["lastTransitionTime"],
            kept,
            "no transition, same time"
        );
        let _ = NS;
    }
}
