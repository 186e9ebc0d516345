//! Credentials for both Azure clients from an [`AzureAuth`].
//!
//! `object_store` implements every mode (shared key, SAS, service principal, workload identity,
//! managed identity) with token caching; our own REST calls ([`super::rest`]) sign with the
//! credential provider it builds here, so each mode is implemented once.

use object_store::azure::MicrosoftAzureBuilder;

use crate::config::azure_auth::sas_pairs;
use crate::config::{AzureAuth, ConnectionCredential, ConnectionString};
use crate::error::ConfigError;

impl AzureAuth {
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
}

fn with_authority(builder: MicrosoftAzureBuilder, host: &Option<String>) -> MicrosoftAzureBuilder {
    match host {
        Some(host) => builder.with_authority_host(host),
        None => builder,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use object_store::azure::AzureCredential;

    use super::*;
    use crate::config::azure_auth::tests::resolve;

    /// A token endpoint on a real socket: answers `status` and `response` to each of `count`
    /// requests and hands back every request (request line, headers and body).
    pub(crate) fn token_server(
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

    /// Builds the backend for `auth` and asks its credential provider for a token, as an
    /// append would.
    async fn token_of(auth: &AzureAuth) -> object_store::Result<String> {
        let builder = MicrosoftAzureBuilder::new()
            .with_account("acct")
            .with_container_name("c")
            .with_endpoint("http://127.0.0.1:9/acct".to_string())
            .with_allow_http(true);
        let store = auth.configure(builder).unwrap().build().unwrap();
        match store.credentials().get_credential().await?.as_ref() {
            AzureCredential::BearerToken(token) => Ok(token.clone()),
            other => panic!("expected an Azure AD token, got {other:?}"),
        }
    }

    pub(crate) const OAUTH: &str =
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
        let token = token_of(&auth).await.unwrap();
        assert_eq!(token, "tok-123");
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
        let token = token_of(&auth).await.unwrap();
        assert_eq!(token, "tok-123");
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
        let err = token_of(&auth).await.unwrap_err();
        assert!(err.to_string().to_lowercase().contains("token"), "{err}");
    }

    #[tokio::test]
    async fn managed_identity_asks_the_metadata_endpoint() {
        let expires = chrono::Utc::now().timestamp() + 3600;
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
        let token = token_of(&auth).await.unwrap();
        assert_eq!(token, "mi-tok");
        let request = requests.recv().unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("get /metadata/identity/oauth2/token?"),
            "{request}"
        );
        assert!(request.contains("client_id=user-assigned"), "{request}");
        assert!(request.contains("metadata: true"), "{request}");
    }
}
