//! Opening the configured backend, one module per kind, and mapping each client's errors to
//! ours (typed status and service code, transient or not, redacted).

pub mod azure;
mod gcs;
mod local;
mod s3;

use std::sync::Arc;

use object_store::ObjectStore;

use crate::config::{Backend, StorageConfig};
use crate::error::{Error, Result};
use crate::redact;

/// Retries inside one backend call. Kept short: long outages are ridden out by callers with
/// [`crate::retry`], and `check` must fail quickly when storage is unreachable.
pub(crate) const INNER_RETRIES: u32 = 3;
/// Time limit for the retries inside one backend call.
pub(crate) const INNER_RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `object_store`'s retry settings for every cloud backend.
pub(crate) fn inner_retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: INNER_RETRIES as usize,
        retry_timeout: INNER_RETRY_TIMEOUT,
        ..Default::default()
    }
}

/// The same schedule for our own REST calls: `object_store`'s waits (100 ms doubling), so
/// that one call's retries stay well inside a caller's short policy (the collector gives a
/// call 5 s before its next round tries again).
pub(crate) fn inner_schedule() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(100))
        .with_max_delay(std::time::Duration::from_secs(15))
        .with_factor(2.0)
        .with_max_times(INNER_RETRIES as usize)
        .with_total_delay(Some(INNER_RETRY_TIMEOUT))
        .with_jitter()
}

/// An opened backend, keys without the storage prefix.
pub(crate) struct Opened {
    /// Ordinary operations.
    pub store: Arc<dyn ObjectStore>,
    /// Azure's own blob calls (appends, copy waits), on Azure only.
    pub azure: Option<azure::AzureBlobs>,
}

/// Opens the backend `config` describes.
pub(crate) async fn open(config: &StorageConfig) -> Result<Opened> {
    let store = match &config.backend {
        Backend::Azure(azure) => return azure::open(azure).await,
        Backend::S3(s3) => s3::open(s3)?,
        Backend::Gcs(gcs) => gcs::open(gcs)?,
        Backend::Local { path } => local::open(path)?,
        // In-process memory needs no module of its own: one constructor call.
        Backend::Memory => Arc::new(object_store::memory::InMemory::new()),
    };
    Ok(Opened { store, azure: None })
}

/// Whether an answer with this HTTP status may pass on retry: a timeout, throttling or a
/// server error. Other answers (400, 403, 409, …) will not change.
pub(crate) fn transient_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Maps an `object_store` error to ours, redacting its text.
pub(crate) fn backend_error(
    operation: &'static str,
    key: &str,
    error: object_store::Error,
) -> Error {
    match error {
        object_store::Error::NotFound { .. } => Error::NotFound {
            key: key.to_string(),
        },
        object_store::Error::AlreadyExists { .. } => Error::AlreadyExists {
            key: key.to_string(),
        },
        other => {
            let text = other.to_string();
            let status = answered_status(&text);
            Error::Backend {
                operation,
                key: key.to_string(),
                status,
                code: service_code(&text),
                transient: transport_failed(&other) || status.is_some_and(transient_status),
                message: redact::scrub(&text),
            }
        }
    }
}

/// Whether a transport failure (no answer) is among an `object_store` error's causes.
fn transport_failed(error: &object_store::Error) -> bool {
    if !matches!(error, object_store::Error::Generic { .. }) {
        return false;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return true;
        }
        cause = e.source();
    }
    false
}

// `object_store` keeps the status and the body of an answer in a private error type: they
// reach us only in its text ("... non-2xx status code: 503 Service Unavailable: <body>"), so
// they are read from it here, once, into `Error::Backend`'s typed fields.

/// The HTTP status of an answer, from an `object_store` error's text.
fn answered_status(text: &str) -> Option<u16> {
    text.split("status code: ")
        .nth(1)
        .and_then(|rest| rest.get(..3)?.parse().ok())
}

/// The service's error code in an answer's body (`<Code>…</Code>` on Azure, S3 and GCS XML,
/// `"code": "…"` in JSON), from an `object_store` error's text.
fn service_code(text: &str) -> Option<String> {
    let xml = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code);
    let json = || {
        let rest = text.split_once("\"code\"")?.1.trim_start();
        let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
        rest.split_once('"').map(|(code, _)| code)
    };
    xml.or_else(json)
        .filter(|code| !code.is_empty() && code.len() <= 64)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use object_store::client::{HttpError, HttpErrorKind};

    use super::*;

    fn generic(source: Box<dyn std::error::Error + Send + Sync>) -> object_store::Error {
        object_store::Error::Generic {
            store: "MicrosoftAzure",
            source,
        }
    }

    #[test]
    fn answers_carry_their_status_and_service_code() {
        let e = backend_error(
            "append",
            "k",
            generic("Server returned non-2xx status code: 409 Conflict: <?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlockCountExceedsLimit</Code><Message>The committed block count cannot exceed</Message></Error>".into()),
        );
        assert_eq!(e.status(), Some(409));
        assert_eq!(e.service_code(), Some("BlockCountExceedsLimit"));
        assert!(!e.is_transient());
        let e = backend_error(
            "get",
            "k",
            generic("Server returned non-2xx status code: 503 Service Unavailable: {\"code\": \"ServerBusy\"}".into()),
        );
        assert_eq!(
            (e.status(), e.service_code()),
            (Some(503), Some("ServerBusy"))
        );
        assert!(e.is_transient());
        let e = backend_error("get", "k", generic("connection reset".into()));
        assert_eq!((e.status(), e.service_code()), (None, None));
    }

    fn transient(error: object_store::Error) -> bool {
        backend_error("get", "k", error).is_transient()
    }

    #[test]
    fn transport_failures_and_server_errors_are_transient() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(transient(generic(Box::new(HttpError::new(
            HttpErrorKind::Connect,
            refused
        )))));
        for text in [
            "Error performing PUT x - Server returned non-2xx status code: 503 Service Unavailable: ",
            "Server returned non-2xx status code: 429 Too Many Requests",
        ] {
            assert!(transient(generic(text.into())), "{text}");
        }
        for text in [
            "Server returned non-2xx status code: 400 Bad Request: InvalidBlobOrBlock",
            "something else",
        ] {
            assert!(!transient(generic(text.into())), "{text}");
        }
        let missing = object_store::Error::NotFound {
            path: "a".into(),
            source: "gone".into(),
        };
        assert!(!transient(missing));
    }

    #[test]
    fn one_calls_retries_wait_well_under_the_collectors_five_seconds() {
        use backon::BackoffBuilder;
        let waits: Vec<_> = inner_schedule().build().collect();
        assert_eq!(waits.len(), INNER_RETRIES as usize);
        let total: std::time::Duration = waits.iter().sum();
        assert!(total < std::time::Duration::from_secs(2), "{waits:?}");
    }

    #[test]
    fn backend_errors_are_redacted() {
        let e = backend_error(
            "get",
            "k",
            generic("GET http://h/c/k?sv=1&sig=SECRET%3D failed".into()),
        );
        let text = e.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.starts_with("get k: "), "{text}");
    }
}
