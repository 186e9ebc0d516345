//! The Azure Blob Storage backend: opening it ([`open`]), and the three things `object_store`
//! cannot do — creating the container on first use, appending to append blobs ([`append`])
//! and waiting for a pending copy ([`copy`]), both on [`AzureBlobs`] — done with a few REST
//! calls of our own ([`rest`]).

mod append;
mod copy;
mod credential;
mod rest;

use std::sync::Arc;

use http::StatusCode;
use object_store::azure::MicrosoftAzureBuilder;

pub use append::AzureBlobs;

use super::Opened;
use crate::config::AzureConfig;
use crate::error::{Error, Result};
use rest::Container;

/// Opens the container: builds both clients and, when `create_container` is set, creates the
/// container if it does not exist yet (otherwise a missing container is an error). The backend
/// has appends.
pub(super) async fn open(config: &AzureConfig) -> Result<Opened> {
    let builder = MicrosoftAzureBuilder::new()
        .with_account(&config.account_name)
        .with_container_name(&config.container)
        .with_endpoint(config.endpoint.clone())
        .with_allow_http(config.endpoint.starts_with("http://"))
        .with_retry(super::inner_retry());
    let store = config
        .auth
        .configure(builder)?
        .build()
        .map_err(|e| super::backend_error("open", "", e))?;
    // The same credential provider signs both clients' requests.
    let container = Container::new(
        &config.endpoint,
        &config.account_name,
        &config.container,
        Arc::clone(store.credentials()),
    )?;
    ensure_container(&container, config).await?;
    Ok(Opened {
        store: Arc::new(store),
        azure: Some(AzureBlobs::new(container)),
    })
}

/// Makes sure the container exists, creating it when allowed.
async fn ensure_container(container: &Container, config: &AzureConfig) -> Result<()> {
    let properties = container.properties().await?;
    match properties.status {
        status if status.is_success() => return Ok(()),
        StatusCode::NOT_FOUND => {}
        // A container SAS or a narrow Azure AD role may not read the container's properties;
        // the first real call tells whether access works. A refused shared key is an error.
        StatusCode::FORBIDDEN if !config.auth.is_shared_key() => {
            tracing::debug!(container = %config.container, "cannot read container properties; assuming it exists");
            return Ok(());
        }
        _ => return Err(properties.error("open", "")),
    }
    if !config.create_container {
        return Err(Error::backend(
            "open",
            "",
            format!(
                "container {} does not exist and STORAGE_CREATE_CONTAINER is false",
                config.container
            ),
            false,
        ));
    }
    let created = container.create().await?;
    match created.status {
        status if status.is_success() => {
            tracing::info!(container = %config.container, "created container");
            Ok(())
        }
        StatusCode::CONFLICT => Ok(()),
        _ => Err(created.error("create container", "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AzureAuth;

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn workload_identity(authority: String, dir: &std::path::Path) -> AzureConfig {
        let token_file = dir.join("token");
        std::fs::write(&token_file, "jwt").unwrap();
        let auth = AzureAuth::WorkloadIdentity {
            tenant_id: "t".into(),
            client_id: "c".into(),
            token_file,
            authority_host: Some(authority),
        };
        let closed = closed_port();
        AzureConfig::new(
            "c-1".into(),
            Some(format!("http://127.0.0.1:{closed}/acct")),
            None,
            auth,
            false,
        )
        .unwrap()
    }

    /// Token failures reach callers as storage errors: an unreachable token endpoint is
    /// transient, a refused identity is not.
    #[tokio::test]
    async fn token_failures_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let closed = closed_port();
        let config = workload_identity(format!("http://127.0.0.1:{closed}"), dir.path());
        let err = open(&config).await.err().expect("no token endpoint");
        assert!(err.is_transient(), "{err}");

        let (authority, _requests) = credential::tests::token_server(
            8,
            "400 Bad Request",
            r#"{"error":"invalid_client","error_description":"AADSTS700016"}"#,
        );
        let config = workload_identity(authority, dir.path());
        let err = open(&config).await.err().expect("identity refused");
        assert!(!err.is_transient(), "{err}");
        assert!(err.to_string().contains("400"), "{err}");
    }
}
