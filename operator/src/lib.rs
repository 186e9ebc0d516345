//! Ray History operator: the `HistoryStorage` and `HistoryServer` custom resources, their
//! reconcilers, and the admission webhook that injects the collector into KubeRay pods.

pub mod app;
pub mod crd;
#[cfg(test)]
pub mod fixtures;
pub mod metrics;
pub mod reconcile;
pub mod webhook;

/// Everything that can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The webhook's TLS certificate could not be made or loaded.
    #[error("webhook TLS: {0}")]
    Tls(#[source] webhook::tls::TlsError),
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
