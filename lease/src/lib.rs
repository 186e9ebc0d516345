//! Leader election with a `coordination.k8s.io` Lease, as client-go does it (kube-rs has none,
//! and `kube-lease-manager` 0.12 is built on kube 4 and k8s-openapi 0.28, a second copy of both
//! beside our kube 5; the operator and the history server's retention sweeper use this one):
//! the holder renews `renewTime`; others take over once `renewTime + leaseDurationSeconds` has
//! passed. Writes carry the Lease's `resourceVersion`, so two candidates can never both win a
//! round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// One candidate for one Lease.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaseLock {
    /// A candidate `identity` (e.g. the pod name) for Lease `name` in `namespace`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    /// One election round: `true` if this candidate holds the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> kube::Result<bool> {
        let now = jiff::Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return lost_race(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let held_for = spec
            .lease_duration_seconds
            .map(|s| jiff::SignedDuration::from_secs(s.into()))
            .unwrap_or_default();
        let expired = match (&spec.holder_identity, &spec.renew_time) {
            (None, _) | (_, None) => true,
            (Some(_), Some(renewed)) => renewed.0 + held_for < now,
        };
        if !mine && !expired {
            return Ok(false);
        }
        let mut next = lease.clone();
        next.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if mine {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!mine)),
            ..spec
        });
        lost_race(
            self.api
                .replace(&self.name, &PostParams::default(), &next)
                .await,
        )
    }

    /// Runs rounds every third of the lease duration, publishing leadership on `tx`.
    /// Errors count as not leading, so a replica cut off from the API server steps down.
    pub async fn run(self, tx: watch::Sender<bool>) {
        let mut tick = tokio::time::interval(self.duration / 3);
        loop {
            tick.tick().await;
            let leading = match self.try_acquire_or_renew().await {
                Ok(leading) => leading,
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.name, "leader election round failed");
                    false
                }
            };
            tx.send_if_modified(|current| {
                let changed = *current != leading;
                *current = leading;
                changed
            });
        }
    }
}

/// A 409 means another candidate wrote first: not an error, just not the leader.
fn lost_race(result: kube::Result<Lease>) -> kube::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, StatusCode};
    use serde_json::{Value, json};

    use super::*;
    use ray_history_testkit::apiserver::ApiServerVerifier;

    const LEASE: &str =
        "/apis/coordination.k8s.io/v1/namespaces/ray-history/leases/ray-history-operator";
    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ray-history/leases";

    fn lease(holder: &str, renewed_secs_ago: i64, transitions: i32) -> Value {
        let renewed = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago);
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "ray-history-operator", "namespace": "ray-history", "resourceVersion": "41"},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": 15,
                "acquireTime": "2026-01-01T00:00:00.000000Z",
                "renewTime": MicroTime(renewed),
                "leaseTransitions": transitions
            }
        })
    }

    async fn round(
        script: impl FnOnce(ApiServerVerifier) -> futures::future::BoxFuture<'static, ApiServerVerifier>,
    ) -> bool {
        let (client, verifier) = ApiServerVerifier::client("ray-history");
        let lock = LeaseLock::new(
            client,
            "ray-history",
            "ray-history-operator",
            "me",
            Duration::from_secs(15),
        );
        let server = tokio::spawn(script(verifier));
        let leading = lock.try_acquire_or_renew().await.expect("round");
        drop(lock);
        server.await.unwrap().done().await;
        leading
    }

    #[tokio::test]
    async fn creates_a_missing_lease() {
        let leading = round(|mut api| {
            Box::pin(async move {
                api.next().await.expect(Method::GET, LEASE).not_found();
                let create = api.next().await.expect(Method::POST, LEASES);
                assert_eq!(create.body["spec"]["holderIdentity"], "me");
                assert_eq!(create.body["spec"]["leaseDurationSeconds"], 15);
                create.echo();
                api
            })
        })
        .await;
        assert!(leading);
    }

    #[tokio::test]
    async fn leaves_a_live_lease_alone() {
        let leading = round(|mut api| {
            Box::pin(async move {
                api.next()
                    .await
                    .expect(Method::GET, LEASE)
                    .reply(StatusCode::OK, &lease("other", 2, 4));
                api
            })
        })
        .await;
        assert!(!leading);
    }

    #[tokio::test]
    async fn takes_over_an_expired_lease_with_its_resource_version() {
        let leading = round(|mut api| {
            Box::pin(async move {
                api.next()
                    .await
                    .expect(Method::GET, LEASE)
                    .reply(StatusCode::OK, &lease("other", 60, 4));
                let put = api.next().await.expect(Method::PUT, LEASE);
                assert_eq!(
                    put.body["metadata"]["resourceVersion"], "41",
                    "optimistic concurrency"
                );
                assert_eq!(put.body["spec"]["holderIdentity"], "me");
                assert_eq!(put.body["spec"]["leaseTransitions"], 5);
                put.echo();
                api
            })
        })
        .await;
        assert!(leading);
    }

    #[tokio::test]
    async fn renews_its_own_lease_and_loses_races_quietly() {
        let renewed = round(|mut api| {
            Box::pin(async move {
                api.next()
                    .await
                    .expect(Method::GET, LEASE)
                    .reply(StatusCode::OK, &lease("me", 5, 1));
                let put = api.next().await.expect(Method::PUT, LEASE);
                assert_eq!(
                    put.body["spec"]["acquireTime"], "2026-01-01T00:00:00.000000Z",
                    "acquire time kept"
                );
                assert_eq!(put.body["spec"]["leaseTransitions"], 1);
                put.echo();
                api
            })
        })
        .await;
        assert!(renewed);
        let raced = round(|mut api| {
            Box::pin(async move {
                api.next().await.expect(Method::GET, LEASE).reply(StatusCode::OK, &lease("other", 60, 4));
                api.next().await.expect(Method::PUT, LEASE).reply(
                    StatusCode::CONFLICT,
                    &json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409,"message":"the object has been modified"}),
                );
                api
            })
        })
        .await;
        assert!(!raced);
    }
}
