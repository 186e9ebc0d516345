//! How Ray History authenticates to Azure Blob Storage: choosing the mode from the settings
//! ([`AzureAuth::resolve`]) and turning it into credentials for both clients.
//!
//! `object_store` implements every mode (shared key, SAS, service principal, workload identity,
//! managed identity) with token caching. `azure_storage_blobs`, used only for container creation
//! and append blobs, gets the same tokens through [`ObjectStoreToken`], so each Azure AD mode is
//! implemented once.

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::auth::{AccessToken, TokenCredential};
use azure_storage::StorageCredentials;
use object_store::azure::{AzureCredential, AzureCredentialProvider, MicrosoftAzureBuilder};

use super::connection_string::{ConnectionCredential, ConnectionString};
use crate::error::ConfigError;
use crate::redact::{self, Secret};

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

impl Mode {
    const ALL: [(Mode, &'static str); 6] = [
        (Mode::ConnectionString, "connection_string"),
        (Mode::AccountKey, "account_key"),
        (Mode::Sas, "sas"),
        (Mode::ServicePrincipal, "service_principal"),
        (Mode::WorkloadIdentity, "workload_identity"),
        (Mode::ManagedIdentity, "managed_identity"),
    ];

    fn parse(value: &str) -> Result<Self, ConfigError> {
        let wanted = value.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .iter()
            .find(|(_, name)| *name == wanted)
            .map(|(mode, _)| *mode)
            .ok_or_else(|| {
                ConfigError::new(
                    MODE_SETTING,
                    format!(
                        "unknown mode {value:?} (expected connection_string, account_key, sas, \
                         service_principal, workload_identity or managed_identity)"
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
                    .filter_map(|(mode, _)| mode.trigger())
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
                    .iter()
                    .find(|(mode, _)| mode.trigger().is_some_and(|t| present.contains(&t)))
                    .map_or(Mode::ManagedIdentity, |(mode, _)| *mode)
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
    fn shared_key(&self) -> Option<&Secret> {
        match self {
            AzureAuth::AccountKey(key)
            | AzureAuth::ConnectionString(ConnectionString {
                credential: ConnectionCredential::AccountKey(key),
                ..
            }) => Some(key),
            _ => None,
        }
    }

    fn sas(&self) -> Option<&Secret> {
        match self {
            AzureAuth::Sas(token)
            | AzureAuth::ConnectionString(ConnectionString {
                credential: ConnectionCredential::Sas(token),
                ..
            }) => Some(token),
            _ => None,
        }
    }

    /// Adds this mode's credentials to an `object_store` builder.
    pub(crate) fn configure(
        &self,
        builder: MicrosoftAzureBuilder,
    ) -> Result<MicrosoftAzureBuilder, ConfigError> {
        Ok(match self {
            AzureAuth::AccountKey(key)
            | AzureAuth::ConnectionString(ConnectionString {
                credential: ConnectionCredential::AccountKey(key),
                ..
            }) => builder.with_access_key(key.expose()),
            AzureAuth::Sas(token)
            | AzureAuth::ConnectionString(ConnectionString {
                credential: ConnectionCredential::Sas(token),
                ..
            }) => builder.with_sas_authorization(sas_pairs(self.setting(), token)?),
            AzureAuth::ServicePrincipal {
                tenant_id,
                client_id,
                client_secret,
                authority_host,
            } => {
                let builder = builder.with_client_secret_authorization(
                    client_id,
                    client_secret.expose(),
                    tenant_id,
                );
                with_authority(builder, authority_host)
            }
            AzureAuth::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
                authority_host,
            } => {
                let builder = builder
                    .with_credential_type("workload_identity")
                    .with_tenant_id(tenant_id)
                    .with_client_id(client_id)
                    .with_federated_token_file(token_file.display().to_string());
                with_authority(builder, authority_host)
            }
            AzureAuth::ManagedIdentity {
                client_id,
                msi_endpoint,
            } => {
                let mut builder = builder.with_credential_type("managed_identity");
                if let Some(id) = client_id {
                    builder = builder.with_client_id(id);
                }
                if let Some(endpoint) = msi_endpoint {
                    builder = builder.with_msi_endpoint(endpoint);
                }
                builder
            }
        })
    }

    /// Credentials for `azure_storage_blobs`. Azure AD modes reuse `provider`, the token
    /// source `object_store` built for the same settings.
    pub(crate) fn blob_credentials(
        &self,
        account: &str,
        provider: &AzureCredentialProvider,
    ) -> Result<StorageCredentials, ConfigError> {
        if let Some(key) = self.shared_key() {
            return Ok(StorageCredentials::access_key(
                account.to_string(),
                key.expose().to_string(),
            ));
        }
        if let Some(token) = self.sas() {
            return StorageCredentials::sas_token(token.expose())
                .map_err(|_| ConfigError::new(self.setting(), "is not a valid SAS token"));
        }
        Ok(StorageCredentials::token_credential(Arc::new(
            ObjectStoreToken(Arc::clone(provider)),
        )))
    }

    /// The setting that carries this mode's credential, for error messages.
    fn setting(&self) -> &'static str {
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
    Mode::ALL
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or("", |(_, name)| name)
}

fn with_authority(builder: MicrosoftAzureBuilder, host: &Option<String>) -> MicrosoftAzureBuilder {
    match host {
        Some(host) => builder.with_authority_host(host),
        None => builder,
    }
}

fn check_key(setting: &str, key: &Secret) -> Result<(), ConfigError> {
    object_store::azure::AzureAccessKey::try_new(key.expose())
        .map(drop)
        .map_err(|_| ConfigError::new(setting, "the account key is not valid base64"))
}

fn sas_pairs(setting: &str, token: &Secret) -> Result<Vec<(String, String)>, ConfigError> {
    object_store::azure::split_sas(token.expose())
        .map_err(|_| ConfigError::new(setting, "is not a valid SAS token"))
}

/// Hands `object_store`'s Azure AD tokens (cached and refreshed there) to `azure_core`.
#[derive(Debug)]
pub(crate) struct ObjectStoreToken(pub(crate) AzureCredentialProvider);

/// How long `azure_core` may treat a token as valid; `object_store` refreshes it well before
/// it really expires, and this type is asked again on every request.
const TOKEN_REUSE: time::Duration = time::Duration::minutes(1);

#[async_trait::async_trait]
impl TokenCredential for ObjectStoreToken {
    async fn get_token(&self, _scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let credential = self.0.get_credential().await.map_err(|e| {
            // Io marks an unreachable token endpoint as worth retrying; Credential does not.
            let kind = if crate::store::is_transient(&e) {
                azure_core::error::ErrorKind::Io
            } else {
                azure_core::error::ErrorKind::Credential
            };
            azure_core::Error::message(kind, redact::scrub(&e.to_string()))
        })?;
        match credential.as_ref() {
            AzureCredential::BearerToken(token) => Ok(AccessToken::new(
                token.clone(),
                time::OffsetDateTime::now_utc() + TOKEN_REUSE,
            )),
            _ => Err(azure_core::Error::message(
                azure_core::error::ErrorKind::Credential,
                "expected an Azure AD token",
            )),
        }
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use object_store::azure::MicrosoftAzureBuilder;

    use super::*;

    fn resolve(mode: Option<&str>, settings: &[(&str, &str)]) -> Result<AzureAuth, ConfigError> {
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

    /// A token endpoint on a real socket: answers `status` and `response` to each of `count`
    /// requests and hands back every request (request line, headers and body).
    pub(in crate::azure) fn token_server(
        count: usize,
        status: &'static str,
        response: &'static str,
    ) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(count) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    request.push_str(&line);
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                request.push_str(&String::from_utf8_lossy(&body));
                write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{response}",
                    response.len(),
                )
                .unwrap();
                tx.send(request).unwrap();
            }
        });
        (url, rx)
    }

    /// Builds the backend for `auth` and asks the bridge for a token, as an append would.
    async fn token_through_bridge(auth: &AzureAuth) -> azure_core::Result<AccessToken> {
        let builder = MicrosoftAzureBuilder::new()
            .with_account("acct")
            .with_container_name("c")
            .with_endpoint("http://127.0.0.1:9/acct".to_string())
            .with_allow_http(true);
        let store = auth.configure(builder).unwrap().build().unwrap();
        let bridge = ObjectStoreToken(Arc::clone(store.credentials()));
        bridge
            .get_token(&["https://storage.azure.com/.default"])
            .await
    }

    pub(in crate::azure) const OAUTH: &str =
        r#"{"access_token":"tok-123","expires_in":3600,"token_type":"Bearer"}"#;

    #[tokio::test]
    async fn service_principal_gets_a_token_with_its_secret() {
        let (authority, requests) = token_server(1, "200 OK", OAUTH);
        let auth = resolve(
            None,
            &[
                ("AZURE_TENANT_ID", "tenant-1"),
                ("AZURE_CLIENT_ID", "client-1"),
                ("AZURE_CLIENT_SECRET", "s3cret"),
                ("AZURE_AUTHORITY_HOST", &authority),
            ],
        )
        .unwrap();
        let token = token_through_bridge(&auth).await.unwrap();
        assert_eq!(token.token.secret(), "tok-123");
        let request = requests.recv().unwrap();
        assert!(
            request.starts_with("POST /tenant-1/oauth2/v2.0/token "),
            "{request}"
        );
        assert!(request.contains("client_id=client-1"), "{request}");
        assert!(request.contains("client_secret=s3cret"), "{request}");
        assert!(
            request.contains("grant_type=client_credentials"),
            "{request}"
        );
        assert!(format!("{auth:?}").contains("Secret(***)"));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn workload_identity_exchanges_the_federated_token_file() {
        let (authority, requests) = token_server(1, "200 OK", OAUTH);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("azure-identity-token");
        std::fs::write(&file, "projected.sa.jwt").unwrap();
        let auth = resolve(
            None,
            &[
                ("AZURE_TENANT_ID", "tenant-2"),
                ("AZURE_CLIENT_ID", "client-2"),
                ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
                ("AZURE_AUTHORITY_HOST", &authority),
            ],
        )
        .unwrap();
        assert_eq!(auth.mode_name(), "workload_identity");
        let token = token_through_bridge(&auth).await.unwrap();
        assert_eq!(token.token.secret(), "tok-123");
        let request = requests.recv().unwrap();
        assert!(
            request.starts_with("POST /tenant-2/oauth2/v2.0/token "),
            "{request}"
        );
        assert!(
            request.contains("client_assertion=projected.sa.jwt"),
            "{request}"
        );
        assert!(request.contains("client_id=client-2"), "{request}");
        assert!(request.contains("jwt-bearer"), "{request}");
    }

    #[tokio::test]
    async fn workload_identity_with_a_missing_token_file_fails_cleanly() {
        let auth = AzureAuth::WorkloadIdentity {
            tenant_id: "t".into(),
            client_id: "c".into(),
            token_file: "/nonexistent/token".into(),
            authority_host: Some("http://127.0.0.1:9".into()),
        };
        let err = token_through_bridge(&auth).await.unwrap_err();
        assert!(err.to_string().to_lowercase().contains("token"), "{err}");
    }

    #[tokio::test]
    async fn managed_identity_asks_the_metadata_endpoint() {
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        let body: &'static str = Box::leak(
            format!(
                r#"{{"access_token":"mi-tok","expires_on":"{expires}","token_type":"Bearer"}}"#
            )
            .into_boxed_str(),
        );
        let (endpoint, requests) = token_server(1, "200 OK", body);
        let auth = resolve(
            None,
            &[
                ("AZURE_CLIENT_ID", "user-assigned"),
                (
                    "AZURE_MSI_ENDPOINT",
                    &format!("{endpoint}/metadata/identity/oauth2/token"),
                ),
            ],
        )
        .unwrap();
        let token = token_through_bridge(&auth).await.unwrap();
        assert_eq!(token.token.secret(), "mi-tok");
        let request = requests.recv().unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("get /metadata/identity/oauth2/token?"),
            "{request}"
        );
        assert!(request.contains("client_id=user-assigned"), "{request}");
        assert!(request.contains("metadata: true"), "{request}");
    }
}
