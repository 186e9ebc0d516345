//! Azure Blob Storage: settings ([`AzureConfig`], [`AzureAuth`]), opening the backend
//! ([`open`]), and the two things `object_store` cannot do — creating the container on first
//! use and appending to append blobs ([`AppendBlobs`]) — done with `azure_storage_blobs`.

mod append;
mod auth;
mod connection_string;

use std::sync::Arc;

use azure_core::{ExponentialRetryOptions, RetryOptions, StatusCode};
use azure_storage::CloudLocation;
use azure_storage_blobs::prelude::{ClientBuilder, ContainerClient};
use object_store::ObjectStore;
use object_store::azure::MicrosoftAzureBuilder;

pub use append::AppendBlobs;
pub use auth::AzureAuth;
pub use connection_string::{
    ConnectionCredential, ConnectionString, EMULATOR_ACCOUNT, EMULATOR_ENDPOINT, EMULATOR_KEY,
};

use crate::error::{ConfigError, Error, Result};
use crate::redact;
use crate::store::{INNER_RETRIES, INNER_RETRY_TIMEOUT};

/// Validated Azure settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureConfig {
    /// Container name.
    pub container: String,
    /// The blob service endpoint of the account, e.g. `https://acct.blob.core.windows.net` or
    /// Azurite's `http://127.0.0.1:10000/devstoreaccount1` (no trailing `/`).
    pub endpoint: String,
    /// Storage account name.
    pub account_name: String,
    /// How to authenticate.
    pub auth: AzureAuth,
    /// Create the container when it does not exist.
    pub create_container: bool,
}

impl AzureConfig {
    /// Validates and combines the settings. The account and endpoint come from the explicit
    /// settings or the connection string (an explicit one may not contradict it); without
    /// either the endpoint is the public cloud's, and without an account name the account is
    /// taken from the endpoint.
    pub fn new(
        container: String,
        endpoint: Option<String>,
        account_name: Option<String>,
        auth: AzureAuth,
        create_container: bool,
    ) -> Result<Self, ConfigError> {
        check_container(&container)?;
        auth.validate()?;
        let endpoint = endpoint.map(|e| e.trim().trim_end_matches('/').to_string());
        let (cs_account, cs_endpoint, cs_explicit) = match &auth {
            AzureAuth::ConnectionString(cs) => (
                cs.account_name.clone(),
                cs.endpoint().map(str::to_string),
                cs.blob_endpoint.is_some(),
            ),
            _ => (None, None, false),
        };
        if let (Some(given), Some(from_cs)) = (&account_name, &cs_account)
            && given != from_cs
        {
            return Err(ConfigError::new(
                "AZURE_STORAGE_ACCOUNT_NAME",
                "differs from the AccountName in AZURE_STORAGE_CONNECTION_STRING",
            ));
        }
        // AZURE_STORAGE_ENDPOINT may replace an endpoint the connection string only implies
        // (e.g. UseDevelopmentStorage=true with Azurite on another port), not an explicit one.
        if let (Some(given), Some(from_cs), true) = (&endpoint, &cs_endpoint, cs_explicit)
            && given != from_cs
        {
            return Err(ConfigError::new(
                "AZURE_STORAGE_ENDPOINT",
                "differs from the BlobEndpoint in AZURE_STORAGE_CONNECTION_STRING",
            ));
        }
        let account_name = account_name.or(cs_account);
        let endpoint = match (endpoint.or(cs_endpoint), &account_name) {
            (Some(endpoint), _) => endpoint,
            (None, Some(account)) => format!("https://{account}.blob.core.windows.net"),
            (None, None) => {
                return Err(ConfigError::new(
                    "AZURE_STORAGE_ACCOUNT_NAME",
                    "not set (nor AZURE_STORAGE_ENDPOINT or a connection string)",
                ));
            }
        };
        let url = url::Url::parse(&endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| ConfigError::new("AZURE_STORAGE_ENDPOINT", "is not an http(s) URL"))?;
        if url.query().is_some() || !url.username().is_empty() {
            return Err(ConfigError::new(
                "AZURE_STORAGE_ENDPOINT",
                "must not carry a query or credentials; use AZURE_STORAGE_SAS_TOKEN",
            ));
        }
        let account_name = match account_name {
            Some(account) => account,
            None => account_from_url(&url).ok_or_else(|| {
                ConfigError::new(
                    "AZURE_STORAGE_ACCOUNT_NAME",
                    "not set and not found in the endpoint",
                )
            })?,
        };
        Ok(Self {
            container,
            endpoint,
            account_name,
            auth,
            create_container,
        })
    }

    /// One line for logs, without secrets.
    pub fn describe(&self) -> String {
        format!(
            "azureblob container {} at {} ({})",
            self.container,
            self.endpoint,
            self.auth.mode_name()
        )
    }
}

/// The account in an endpoint: the first path segment for path-style endpoints (Azurite),
/// otherwise the first label of the host name.
fn account_from_url(url: &url::Url) -> Option<String> {
    let from_path = url
        .path_segments()
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty());
    let host = url.host_str()?;
    let from_host = host
        .split('.')
        .next()
        .filter(|_| url.domain().is_some() && host.contains('.'));
    from_path.or(from_host).map(str::to_string)
}

/// Azure container names: 3–63 characters, lower-case letters, digits and single hyphens,
/// starting and ending with a letter or digit.
fn check_container(name: &str) -> Result<(), ConfigError> {
    let bad = |problem: &str| ConfigError::new("AZURE_STORAGE_CONTAINER", problem.to_string());
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if !(3..=63).contains(&name.len()) {
        return Err(bad("must be 3 to 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("may contain only lower-case letters, digits and '-'"));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(bad(
            "must start and end with a letter or digit and have no '--'",
        ));
    }
    Ok(())
}

/// An opened Azure backend: `object_store` for ordinary operations, plus append blobs.
pub struct Opened {
    /// The container as an object store (keys without the storage prefix).
    pub store: Arc<dyn ObjectStore>,
    /// Append-blob writer for the same container.
    pub append: AppendBlobs,
}

/// Opens the container: builds both clients and, when `create_container` is set, creates the
/// container if it does not exist yet (otherwise a missing container is an error).
pub async fn open(config: &AzureConfig) -> Result<Opened> {
    let builder = MicrosoftAzureBuilder::new()
        .with_account(&config.account_name)
        .with_container_name(&config.container)
        .with_endpoint(config.endpoint.clone())
        .with_allow_http(config.endpoint.starts_with("http://"))
        .with_retry(crate::store::inner_retry());
    let store = config
        .auth
        .configure(builder)?
        .build()
        .map_err(|e| crate::store::backend_error("open", "", e))?;
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
        append: AppendBlobs::new(container),
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
    use crate::redact::Secret;

    fn key() -> AzureAuth {
        AzureAuth::AccountKey(Secret::new(EMULATOR_KEY))
    }

    #[test]
    fn container_names_follow_azure_rules() {
        for good in ["abc", "ray-historyserver", "a1-b2", &"a".repeat(63)] {
            check_container(good).unwrap();
        }
        for bad in [
            "",
            "ab",
            "Upper",
            "a_b",
            "-ab",
            "ab-",
            "a--b",
            &"a".repeat(64),
        ] {
            let err = check_container(bad).unwrap_err();
            assert_eq!(err.setting, "AZURE_STORAGE_CONTAINER", "{bad}");
        }
    }

    #[test]
    fn public_cloud_endpoint_by_default() {
        let c = AzureConfig::new("c-1".into(), None, Some("acct".into()), key(), true).unwrap();
        assert_eq!(c.endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(
            c.describe(),
            "azureblob container c-1 at https://acct.blob.core.windows.net (account_key)"
        );
    }

    #[test]
    fn account_comes_from_the_endpoint_when_not_given() {
        let azurite = AzureConfig::new(
            "c-1".into(),
            Some("http://127.0.0.1:10000/devstoreaccount1/".into()),
            None,
            AzureAuth::Sas(Secret::new("sv=1&sig=x")),
            true,
        )
        .unwrap();
        assert_eq!(azurite.account_name, "devstoreaccount1");
        assert_eq!(azurite.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        let public = AzureConfig::new(
            "c-1".into(),
            Some("https://acct2.blob.core.windows.net".into()),
            None,
            AzureAuth::ManagedIdentity {
                client_id: None,
                msi_endpoint: None,
            },
            true,
        )
        .unwrap();
        assert_eq!(public.account_name, "acct2");
        let err = AzureConfig::new("c-1".into(), None, None, key(), true).unwrap_err();
        assert_eq!(err.setting, "AZURE_STORAGE_ACCOUNT_NAME");
    }

    #[test]
    fn endpoint_may_replace_an_implied_one_but_not_contradict_an_explicit_one() {
        let dev = AzureAuth::ConnectionString(
            ConnectionString::parse("UseDevelopmentStorage=true").unwrap(),
        );
        let c = AzureConfig::new(
            "c-1".into(),
            Some("http://127.0.0.1:4321/devstoreaccount1".into()),
            None,
            dev,
            true,
        )
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:4321/devstoreaccount1");
        assert_eq!(c.account_name, EMULATOR_ACCOUNT);

        let explicit = AzureAuth::ConnectionString(
            ConnectionString::parse("AccountName=a;AccountKey=a2V5;BlobEndpoint=http://h:1/a")
                .unwrap(),
        );
        let err = AzureConfig::new(
            "c-1".into(),
            Some("http://h:2/a".into()),
            None,
            explicit.clone(),
            true,
        )
        .unwrap_err();
        assert_eq!(err.setting, "AZURE_STORAGE_ENDPOINT");
        let err =
            AzureConfig::new("c-1".into(), None, Some("b".into()), explicit, true).unwrap_err();
        assert_eq!(err.setting, "AZURE_STORAGE_ACCOUNT_NAME");
    }

    #[test]
    fn endpoints_must_be_plain_http_urls() {
        for bad in [
            "ftp://h/a",
            "not a url",
            "https://h/a?sig=SECRET",
            "https://u:p@h/a",
        ] {
            let err = AzureConfig::new(
                "c-1".into(),
                Some(bad.into()),
                Some("a".into()),
                key(),
                true,
            )
            .unwrap_err();
            assert_eq!(err.setting, "AZURE_STORAGE_ENDPOINT", "{bad}");
            assert!(!err.to_string().contains("SECRET"));
        }
    }

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

        let (authority, _requests) = auth::tests::token_server(
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
