//! The Azure Blob Storage backend: opening it ([`open`]), and the two things `object_store`
//! cannot do — creating the container on first use and appending to append blobs
//! ([`AppendBlobs`]) — done with `azure_storage_blobs`.

mod append;
mod credential;

use std::sync::Arc;

use azure_core::{ExponentialRetryOptions, RetryOptions, StatusCode};
use azure_storage::CloudLocation;
use azure_storage_blobs::prelude::{ClientBuilder, ContainerClient};
use object_store::azure::MicrosoftAzureBuilder;

pub use append::AppendBlobs;

use super::{INNER_RETRIES, INNER_RETRY_TIMEOUT, Opened};
use crate::config::AzureConfig;
use crate::error::{Error, Result};
use crate::redact;

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
    let credentials = config
        .auth
        .blob_credentials(&config.account_name, store.credentials())?;
    let location = CloudLocation::Custom {
        account: config.account_name.clone(),
        uri: config.endpoint.clone(),
    };
    let retry = ExponentialRetryOptions::default()
        .max_retries(INNER_RETRIES)
        .max_total_elapsed(INNER_RETRY_TIMEOUT);
    let container = ClientBuilder::with_location(location, credentials)
        .retry(RetryOptions::exponential(retry))
        .container_client(config.container.clone());
    ensure_container(&container, config).await?;
    Ok(Opened {
        store: Arc::new(store),
        append: Some(AppendBlobs::new(container)),
    })
}

/// Makes sure the container exists, creating it when allowed.
async fn ensure_container(container: &ContainerClient, config: &AzureConfig) -> Result<()> {
    match container.get_properties().await {
        Ok(_) => return Ok(()),
        Err(e) if status(&e) == Some(StatusCode::NotFound) => {}
        // A container SAS or a narrow Azure AD role may not read the container's properties;
        // the first real call tells whether access works. A refused shared key is an error.
        Err(e) if status(&e) == Some(StatusCode::Forbidden) && !config.auth.is_shared_key() => {
            tracing::debug!(container = %config.container, "cannot read container properties; assuming it exists");
            return Ok(());
        }
        Err(e) => return Err(azure_error("open", "", &e)),
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
    match container.create().await {
        Ok(_) => {
            tracing::info!(container = %config.container, "created container");
            Ok(())
        }
        Err(e) if status(&e) == Some(StatusCode::Conflict) => Ok(()),
        Err(e) => Err(azure_error("create container", "", &e)),
    }
}

/// The HTTP status of an `azure_core` error, if it came from a response.
fn status(error: &azure_core::Error) -> Option<StatusCode> {
    match error.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, .. } => Some(*status),
        _ => None,
    }
}

/// The service's error code (e.g. `AppendPositionConditionNotMet`), if any.
fn error_code(error: &azure_core::Error) -> Option<&str> {
    match error.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

/// Maps an `azure_core` error to ours, redacted; 408, 429, 5xx and transport errors are
/// transient.
fn azure_error(operation: &'static str, key: &str, error: &azure_core::Error) -> Error {
    let transient = match status(error) {
        Some(status) => {
            let code = status as u16;
            code == 408 || code == 429 || code >= 500
        }
        // The SDK wraps token failures as Credential errors; an Io error inside (see
        // `ObjectStoreToken`) means the token endpoint was unreachable.
        None => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
            let mut io = false;
            while let Some(e) = cause {
                io |= e.downcast_ref::<azure_core::Error>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Other
                    )
                });
                cause = e.source();
            }
            io
        }
    };
    if status(error) == Some(StatusCode::NotFound) && !key.is_empty() {
        return Error::NotFound {
            key: key.to_string(),
        };
    }
    Error::Backend {
        operation,
        key: key.to_string(),
        message: redact::scrub(&describe(error)),
        status: status(error).map(|s| s as u16),
        code: error_code(error).map(str::to_string),
        transient,
    }
}

/// A short description: `HTTP 403 AuthorizationFailure (…)` for answers (the SDK's own text
/// lists every response header), the chain of causes for everything else.
fn describe(error: &azure_core::Error) -> String {
    match error.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, error_code } => {
            let code = error_code.clone().unwrap_or_else(|| status.to_string());
            let hint = match *status as u16 {
                401 | 403 => " (the credentials were refused)",
                _ => "",
            };
            format!("HTTP {} {code}{hint}", *status as u16)
        }
        _ => full_message(error),
    }
}

/// The error with its causes, on one line.
fn full_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message.replace('\n', " ")
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
