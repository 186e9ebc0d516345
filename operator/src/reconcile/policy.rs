//! Which storage the operator probes on a tenant's behalf. A probe runs in the operator's own
//! process and network, so a tenant must not be able to aim it anywhere: the operator probes
//! only with the tenant's own credentials (never with its own workload identity) and only
//! endpoints on the public clouds' storage domains or in the admin's allowlist.

use globset::{Glob, GlobSet, GlobSetBuilder};
use ray_history_storage::StorageConfig;

/// Storage hosts of the public clouds, always allowed.
pub const PUBLIC_ENDPOINTS: &[&str] = &[
    "*.blob.core.windows.net",
    "*.blob.core.chinacloudapi.cn",
    "*.blob.core.usgovcloudapi.net",
    "*.amazonaws.com",
];

/// Endpoint hosts the operator may probe.
#[derive(Debug, Clone)]
pub struct ProbePolicy {
    allowed: GlobSet,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        Self::new(&[]).expect("the public endpoint patterns are valid")
    }
}

/// Why a storage is not probed: a condition reason and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Condition reason.
    pub reason: &'static str,
    /// Condition message.
    pub message: String,
}

impl ProbePolicy {
    /// The public endpoints plus `extra` host patterns (`*` matches within a host, e.g.
    /// `*.svc.cluster.local` or `azurite.ray-history.svc`).
    pub fn new(extra: &[String]) -> Result<Self, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        for pattern in PUBLIC_ENDPOINTS
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
        {
            builder.add(Glob::new(&pattern.to_ascii_lowercase())?);
        }
        Ok(Self {
            allowed: builder.build()?,
        })
    }

    /// Why `config` must not be probed, if it must not. `with_secret`: the credentials come
    /// from the tenant's Secret (otherwise they would be the operator's own identity).
    pub fn refusal(&self, config: &StorageConfig, with_secret: bool) -> Option<Refusal> {
        if !with_secret {
            return Some(Refusal {
                reason: "IdentityNotProbed",
                message: "not probed: without a credentialsSecretRef the probe would use the \
                          operator's own identity; the collectors report whether storage works"
                    .into(),
            });
        }
        let endpoint = config.endpoint()?;
        let host = url::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        match host {
            Some(host) if self.allowed.is_match(&host) => None,
            Some(host) => Some(Refusal {
                reason: "EndpointNotAllowed",
                message: format!(
                    "not probed: endpoint host {host} is not in the operator's ALLOWED_ENDPOINTS"
                ),
            }),
            None => Some(Refusal {
                reason: "EndpointNotAllowed",
                message: "not probed: the endpoint has no host".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use ray_history_storage::config::Settings;

    use super::*;

    fn config(url: &str, endpoint: Option<&str>) -> StorageConfig {
        let given = [
            ("STORAGE_URL", Some(url.to_string())),
            ("S3_ENDPOINT", endpoint.map(str::to_string)),
            ("AZURE_STORAGE_ACCOUNT_KEY", Some("a2V5".into())),
            ("AZURE_STORAGE_ACCOUNT_NAME", Some("acct".into())),
            ("AWS_ACCESS_KEY_ID", Some("id".into())),
            ("AWS_SECRET_ACCESS_KEY", Some("secret".into())),
            ("AWS_REGION", Some("us-east-1".into())),
        ];
        Settings::new(Some("/dev/null".into()), given)
            .resolve()
            .unwrap()
    }

    #[test]
    fn public_clouds_are_probed_custom_endpoints_only_when_allowed() {
        let policy = ProbePolicy::new(&["*.svc.cluster.local".into(), "10.0.0.7".into()]).unwrap();
        assert_eq!(policy.refusal(&config("az://history", None), true), None);
        assert_eq!(policy.refusal(&config("s3://bucket", None), true), None);
        assert_eq!(policy.refusal(&config("gs://bucket", None), true), None);
        let allowed = config(
            "s3://bucket",
            Some("http://minio.ray.svc.cluster.local:9000"),
        );
        assert_eq!(policy.refusal(&allowed, true), None);
        assert_eq!(
            policy.refusal(&config("s3://bucket", Some("http://10.0.0.7:9000")), true),
            None
        );
        let metadata = config("s3://bucket", Some("http://169.254.169.254"));
        assert_eq!(
            policy.refusal(&metadata, true).unwrap().reason,
            "EndpointNotAllowed"
        );
        assert!(
            ProbePolicy::default()
                .refusal(&allowed, true)
                .unwrap()
                .message
                .contains("minio.ray.svc.cluster.local")
        );
    }

    #[test]
    fn identity_modes_are_never_probed() {
        let refusal = ProbePolicy::default()
            .refusal(&config("az://history", None), false)
            .unwrap();
        assert_eq!(refusal.reason, "IdentityNotProbed");
    }
}
