//! How Ray History authenticates to Azure Blob Storage: the modes and their settings, and
//! choosing one ([`AzureAuth::resolve`]). Turning a mode into credentials is
//! [`crate::backend`]'s job.

use std::path::PathBuf;

use super::connection_string::{ConnectionCredential, ConnectionString};
use crate::error::ConfigError;
use crate::redact::Secret;

/// The setting that forces a mode.
const MODE_SETTING: &str = "AZURE_STORAGE_AUTH_MODE";

/// A way to authenticate to Azure Blob Storage, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureAuth {
    /// `AZURE_STORAGE_CONNECTION_STRING` (account key or SAS, optional endpoint).
    ConnectionString(ConnectionString),
    /// `AZURE_STORAGE_ACCOUNT_KEY` (with `AZURE_STORAGE_ACCOUNT_NAME`).
    AccountKey(Secret),
    /// `AZURE_STORAGE_SAS_TOKEN`.
    Sas(Secret),
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
    ServicePrincipal {
        /// Azure AD tenant.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
        /// Azure AD authority (`AZURE_AUTHORITY_HOST`), default the public cloud's.
        authority_host: Option<String>,
    },
    /// AKS workload identity: a federated token file exchanged for an Azure AD token.
    WorkloadIdentity {
        /// Azure AD tenant.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// `AZURE_FEDERATED_TOKEN_FILE`, re-read on every token refresh (it rotates).
        token_file: PathBuf,
        /// Azure AD authority (`AZURE_AUTHORITY_HOST`), default the public cloud's.
        authority_host: Option<String>,
    },
    /// The managed identity of the VM or node (IMDS); `client_id` picks a user-assigned one.
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        client_id: Option<String>,
        /// Token endpoint (`AZURE_MSI_ENDPOINT`), default the instance metadata service.
        msi_endpoint: Option<String>,
    },
}

/// The modes `AZURE_STORAGE_AUTH_MODE` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    ConnectionString,
    AccountKey,
    Sas,
    ServicePrincipal,
    WorkloadIdentity,
    ManagedIdentity,
}

/// The names `AZURE_STORAGE_AUTH_MODE` accepts, in the order modes are tried.
pub const AUTH_MODES: [&str; 6] = [
    "connection_string",
    "account_key",
    "sas",
    "service_principal",
    "workload_identity",
    "managed_identity",
];

impl Mode {
    /// In the order of [`AUTH_MODES`].
    const ALL: [Mode; 6] = [
        Mode::ConnectionString,
        Mode::AccountKey,
        Mode::Sas,
        Mode::ServicePrincipal,
        Mode::WorkloadIdentity,
        Mode::ManagedIdentity,
    ];

    fn parse(value: &str) -> Result<Self, ConfigError> {
        let wanted = value.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|mode| mode_name(*mode) == wanted)
            .ok_or_else(|| {
                ConfigError::new(
                    MODE_SETTING,
                    format!(
                        "unknown mode {value:?} (expected one of {})",
                        AUTH_MODES.join(", ")
                    ),
                )
            })
    }

    /// The setting whose presence selects this mode when no mode is forced.
    fn trigger(self) -> Option<&'static str> {
        match self {
            Mode::ConnectionString => Some("AZURE_STORAGE_CONNECTION_STRING"),
            Mode::AccountKey => Some("AZURE_STORAGE_ACCOUNT_KEY"),
            Mode::Sas => Some("AZURE_STORAGE_SAS_TOKEN"),
            Mode::ServicePrincipal => Some("AZURE_CLIENT_SECRET"),
            Mode::WorkloadIdentity => Some("AZURE_FEDERATED_TOKEN_FILE"),
            Mode::ManagedIdentity => None,
        }
    }
}

impl AzureAuth {
    /// Chooses the auth mode. `mode` (`AZURE_STORAGE_AUTH_MODE`) forces one; otherwise exactly
    /// one credential setting may be present (connection string, account key, SAS token, client
    /// secret, federated token file), and with none the managed identity is used. `get` reads
    /// plain settings and `secret` secret ones, both by environment name.
    pub fn resolve(
        mode: Option<&str>,
        get: &dyn Fn(&str) -> Option<String>,
        secret: &dyn Fn(&str) -> Option<Secret>,
    ) -> Result<AzureAuth, ConfigError> {
        let mode = match mode {
            Some(value) => Mode::parse(value)?,
            None => {
                let present: Vec<&'static str> = Mode::ALL
                    .iter()
                    .filter_map(|mode| mode.trigger())
                    .filter(|name| get(name).is_some() || secret(name).is_some())
                    .collect();
                if let [first, second, ..] = present[..] {
                    return Err(ConfigError::new(
                        second,
                        format!(
                            "conflicts with {first}; set one way to authenticate \
                             or choose one with {MODE_SETTING}"
                        ),
                    ));
                }
                Mode::ALL
                    .into_iter()
                    .find(|mode| mode.trigger().is_some_and(|t| present.contains(&t)))
                    .unwrap_or(Mode::ManagedIdentity)
            }
        };
        let need = |name: &str| {
            get(name).ok_or_else(|| {
                ConfigError::new(name, format!("not set (needed for {})", mode_name(mode)))
            })
        };
        let need_secret = |name: &str| {
            secret(name).ok_or_else(|| {
                ConfigError::new(name, format!("not set (needed for {})", mode_name(mode)))
            })
        };
        Ok(match mode {
            Mode::ConnectionString => AzureAuth::ConnectionString(ConnectionString::parse(
                need_secret("AZURE_STORAGE_CONNECTION_STRING")?.expose(),
            )?),
            Mode::AccountKey => AzureAuth::AccountKey(need_secret("AZURE_STORAGE_ACCOUNT_KEY")?),
            Mode::Sas => AzureAuth::Sas(need_secret("AZURE_STORAGE_SAS_TOKEN")?),
            Mode::ServicePrincipal => AzureAuth::ServicePrincipal {
                tenant_id: need("AZURE_TENANT_ID")?,
                client_id: need("AZURE_CLIENT_ID")?,
                client_secret: need_secret("AZURE_CLIENT_SECRET")?,
                authority_host: get("AZURE_AUTHORITY_HOST"),
            },
            Mode::WorkloadIdentity => AzureAuth::WorkloadIdentity {
                tenant_id: need("AZURE_TENANT_ID")?,
                client_id: need("AZURE_CLIENT_ID")?,
                token_file: PathBuf::from(need("AZURE_FEDERATED_TOKEN_FILE")?),
                authority_host: get("AZURE_AUTHORITY_HOST"),
            },
            Mode::ManagedIdentity => AzureAuth::ManagedIdentity {
                client_id: get("AZURE_CLIENT_ID"),
                msi_endpoint: get("AZURE_MSI_ENDPOINT"),
            },
        })
    }

    /// The mode's name, as `AZURE_STORAGE_AUTH_MODE` spells it.
    pub fn mode_name(&self) -> &'static str {
        mode_name(match self {
            AzureAuth::ConnectionString(_) => Mode::ConnectionString,
            AzureAuth::AccountKey(_) => Mode::AccountKey,
            AzureAuth::Sas(_) => Mode::Sas,
            AzureAuth::ServicePrincipal { .. } => Mode::ServicePrincipal,
            AzureAuth::WorkloadIdentity { .. } => Mode::WorkloadIdentity,
            AzureAuth::ManagedIdentity { .. } => Mode::ManagedIdentity,
        })
    }

    /// Whether requests are signed with the account key.
    pub(crate) fn is_shared_key(&self) -> bool {
        self.shared_key().is_some()
    }

    /// The account key, for the modes that sign with it.
    pub(crate) fn shared_key(&self) -> Option<&Secret> {
        match self {
            AzureAuth::AccountKey(key)
            | AzureAuth::ConnectionString(ConnectionString {
                credential: ConnectionCredential::AccountKey(key),
                ..
            }) => Some(key),
            _ => None,
        }
    }

    pub(crate) fn sas(&self) -> Option<&Secret> {
        match self {
            AzureAuth::Sas(token)
            | AzureAuth::ConnectionString(ConnectionString {
                credential: ConnectionCredential::Sas(token),
                ..
            }) => Some(token),
            _ => None,
        }
    }

    /// The setting that carries this mode's credential, for error messages.
    pub(crate) fn setting(&self) -> &'static str {
        match self {
            AzureAuth::ConnectionString(_) => "AZURE_STORAGE_CONNECTION_STRING",
            AzureAuth::AccountKey(_) => "AZURE_STORAGE_ACCOUNT_KEY",
            AzureAuth::Sas(_) => "AZURE_STORAGE_SAS_TOKEN",
            AzureAuth::ServicePrincipal { .. } => "AZURE_CLIENT_SECRET",
            AzureAuth::WorkloadIdentity { .. } => "AZURE_FEDERATED_TOKEN_FILE",
            AzureAuth::ManagedIdentity { .. } => MODE_SETTING,
        }
    }

    /// Validates the credential's format (key in base64, SAS with a signature).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(key) = self.shared_key() {
            check_key(self.setting(), key)?;
        }
        if let Some(token) = self.sas() {
            let pairs = sas_pairs(self.setting(), token)?;
            if !pairs.iter().any(|(name, _)| name == "sig") {
                return Err(ConfigError::new(
                    self.setting(),
                    "is not a SAS token (it has no sig=)",
                ));
            }
        }
        Ok(())
    }
}

fn mode_name(mode: Mode) -> &'static str {
    AUTH_MODES[mode as usize]
}

fn check_key(setting: &str, key: &Secret) -> Result<(), ConfigError> {
    object_store::azure::AzureAccessKey::try_new(key.expose())
        .map(drop)
        .map_err(|_| ConfigError::new(setting, "the account key is not valid base64"))
}

pub(crate) fn sas_pairs(
    setting: &str,
    token: &Secret,
) -> Result<Vec<(String, String)>, ConfigError> {
    object_store::azure::split_sas(token.expose())
        .map_err(|_| ConfigError::new(setting, "is not a valid SAS token"))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    pub(crate) fn resolve(
        mode: Option<&str>,
        settings: &[(&str, &str)],
    ) -> Result<AzureAuth, ConfigError> {
        let map: HashMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AzureAuth::resolve(mode, &|name| map.get(name).cloned(), &|name| {
            map.get(name).map(Secret::new)
        })
    }

    #[test]
    fn picks_the_mode_from_the_one_credential_given() {
        let cs = "AccountName=a;AccountKey=a2V5";
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[("AZURE_STORAGE_CONNECTION_STRING", cs)],
                "connection_string",
            ),
            (&[("AZURE_STORAGE_ACCOUNT_KEY", "a2V5")], "account_key"),
            (&[("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=x")], "sas"),
            (
                &[
                    ("AZURE_TENANT_ID", "t"),
                    ("AZURE_CLIENT_ID", "c"),
                    ("AZURE_CLIENT_SECRET", "s"),
                ],
                "service_principal",
            ),
            (
                &[
                    ("AZURE_TENANT_ID", "t"),
                    ("AZURE_CLIENT_ID", "c"),
                    ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
                ],
                "workload_identity",
            ),
            (&[("AZURE_CLIENT_ID", "c")], "managed_identity"),
        ];
        for (settings, mode) in cases {
            assert_eq!(
                resolve(None, settings).unwrap().mode_name(),
                mode,
                "{settings:?}"
            );
        }
        assert_eq!(
            resolve(None, &[]).unwrap(),
            AzureAuth::ManagedIdentity {
                client_id: None,
                msi_endpoint: None
            }
        );
    }

    #[test]
    fn conflicting_credentials_are_refused_by_name() {
        let err = resolve(
            None,
            &[
                ("AZURE_STORAGE_ACCOUNT_KEY", "SECRETKEY"),
                ("AZURE_STORAGE_SAS_TOKEN", "sig=SECRETSIG"),
            ],
        )
        .unwrap_err();
        assert_eq!(err.setting, "AZURE_STORAGE_SAS_TOKEN");
        assert!(err.problem.contains("AZURE_STORAGE_ACCOUNT_KEY"), "{err}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn a_forced_mode_uses_its_settings_and_needs_them() {
        let settings = [
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
            ("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=x"),
        ];
        assert_eq!(
            resolve(Some("sas"), &settings).unwrap(),
            AzureAuth::Sas(Secret::new("sv=1&sig=x"))
        );
        assert_eq!(
            resolve(Some("Account-Key"), &settings).unwrap().mode_name(),
            "account_key"
        );
        let err = resolve(Some("workload_identity"), &[("AZURE_CLIENT_ID", "c")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AZURE_TENANT_ID: not set (needed for workload_identity)"
        );
        let err = resolve(Some("kerberos"), &[]).unwrap_err();
        assert_eq!(err.setting, "AZURE_STORAGE_AUTH_MODE");
        let err = resolve(
            Some("service_principal"),
            &[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")],
        )
        .unwrap_err();
        assert_eq!(err.setting, "AZURE_CLIENT_SECRET");
    }

    #[test]
    fn every_mode_is_named_and_parsed_back() {
        for mode in Mode::ALL {
            assert_eq!(Mode::parse(mode_name(mode)).unwrap(), mode);
        }
    }

    #[test]
    fn bad_credential_formats_are_refused() {
        let key = AzureAuth::AccountKey(Secret::new("not base64!"));
        assert_eq!(
            key.validate().unwrap_err().setting,
            "AZURE_STORAGE_ACCOUNT_KEY"
        );
        let sas = AzureAuth::Sas(Secret::new("sv=2020&se=2030"));
        assert!(sas.validate().unwrap_err().problem.contains("no sig="));
        assert!(
            AzureAuth::Sas(Secret::new("?sv=2020&sig=abc%3D"))
                .validate()
                .is_ok()
        );
    }
}
