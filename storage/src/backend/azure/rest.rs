//! The Blob service calls `object_store` has no method for (container properties and
//! creation, append blobs), made over `reqwest` and signed by `object_store`'s own
//! [`AzureAuthorizer`] with the credential its provider hands out, so every auth mode (shared
//! key, SAS, Azure AD tokens) is implemented once, there.
//!
//! Written by hand because no maintained crate does these calls with Shared Key: the current
//! Azure SDK (`azure_storage_blob` 1.x) has no Shared Key auth, which Azurite and connection
//! strings need, and the old one (0.21) brought some twenty second versions of crates.

use std::time::Duration;

use backon::Retryable;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use object_store::azure::{AzureAuthorizer, AzureCredentialProvider};
use object_store::client::HttpRequestBody;
use object_store::path::Path;
use url::Url;

use crate::backend::{inner_schedule, transient_status};
use crate::error::{Error, Result};
use crate::redact;

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one whole call (an append carries up to 4 MiB).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A signed HTTP client for one container.
#[derive(Clone)]
pub(crate) struct Container {
    http: reqwest::Client,
    /// The container's URL (`<endpoint>/<container>`).
    url: Url,
    account: String,
    credentials: AzureCredentialProvider,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("url", &self.url.as_str())
            .finish()
    }
}

/// What the service answered: status and headers (the bodies of these calls carry nothing
/// that is used).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

impl Answer {
    /// The service's error code (`x-ms-error-code`, also sent on bodiless HEAD answers).
    pub fn code(&self) -> Option<&str> {
        self.headers.get("x-ms-error-code")?.to_str().ok()
    }

    /// This answer as an error of `operation` on `key` (empty for the container).
    pub fn error(&self, operation: &'static str, key: &str) -> Error {
        if self.status == StatusCode::NOT_FOUND && !key.is_empty() {
            return Error::NotFound {
                key: key.to_string(),
            };
        }
        let status = self.status.as_u16();
        let code = self.code().map(str::to_string);
        let hint = match status {
            401 | 403 => " (the credentials were refused)",
            _ => "",
        };
        Error::Backend {
            operation,
            key: key.to_string(),
            message: format!(
                "HTTP {status} {}{hint}",
                code.as_deref()
                    .unwrap_or(self.status.canonical_reason().unwrap_or(""))
            ),
            status: Some(status),
            code,
            transient: transient_status(status),
        }
    }
}

impl Container {
    /// A client for `container` at the account `endpoint`, signing with `credentials`.
    pub fn new(
        endpoint: &str,
        account: &str,
        container: &str,
        credentials: AzureCredentialProvider,
    ) -> Result<Self> {
        let mut url = Url::parse(endpoint)
            .map_err(|e| Error::backend("open", "", format!("endpoint: {e}"), false))?;
        url.path_segments_mut()
            .map_err(|()| Error::backend("open", "", "endpoint cannot hold a path", false))?
            .pop_if_empty()
            .push(container);
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::backend("open", "", e.to_string(), false))?;
        Ok(Self {
            http,
            url,
            account: account.to_string(),
            credentials,
        })
    }

    /// The URL of the blob `name` (each part encoded as `object_store` encodes it, so both
    /// clients name the same blob).
    fn blob_url(&self, name: &Path) -> Url {
        let mut url = self.url.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .extend(name.parts());
        url
    }

    /// `GET <container>?restype=container`: the container's properties.
    pub async fn properties(&self) -> Result<Answer> {
        self.call("open", "", Method::GET, self.container_url(), &[], None)
            .await
    }

    /// `PUT <container>?restype=container`: creates the container.
    pub async fn create(&self) -> Result<Answer> {
        self.call(
            "create container",
            "",
            Method::PUT,
            self.container_url(),
            &[],
            None,
        )
        .await
    }

    /// `PUT <blob>` with `x-ms-blob-type: AppendBlob`, create-only (`If-None-Match: *`).
    pub async fn create_append_blob(&self, name: &Path, content_type: &str) -> Result<Answer> {
        let headers = [
            (HeaderName::from_static("x-ms-blob-type"), "AppendBlob"),
            (http::header::CONTENT_TYPE, content_type),
            (http::header::IF_NONE_MATCH, "*"),
        ];
        let url = self.blob_url(name);
        self.call("append", name.as_ref(), Method::PUT, url, &headers, None)
            .await
    }

    /// `PUT <blob>?comp=appendblock`, accepted only if the blob holds `position` bytes.
    pub async fn append_block(&self, name: &Path, position: u64, block: Bytes) -> Result<Answer> {
        let position = position.to_string();
        let headers = [(
            HeaderName::from_static("x-ms-blob-condition-appendpos"),
            position.as_str(),
        )];
        let mut url = self.blob_url(name);
        url.query_pairs_mut().append_pair("comp", "appendblock");
        self.call(
            "append",
            name.as_ref(),
            Method::PUT,
            url,
            &headers,
            Some(block),
        )
        .await
    }

    /// `HEAD <blob>`: the blob's properties (its size is `Content-Length`).
    pub async fn blob_properties(&self, name: &Path) -> Result<Answer> {
        let url = self.blob_url(name);
        self.call("head", name.as_ref(), Method::HEAD, url, &[], None)
            .await
    }

    fn container_url(&self) -> Url {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("restype", "container");
        url
    }

    /// Sends one signed request, retrying transport failures, throttling and 5xx a few times
    /// (longer outages are the callers'). Any answer the service gives is returned, errors too.
    async fn call(
        &self,
        operation: &'static str,
        key: &str,
        method: Method,
        url: Url,
        headers: &[(HeaderName, &str)],
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let attempt = || async {
            let answer = self
                .send(operation, key, &method, &url, headers, body.clone())
                .await?;
            if transient_status(answer.status.as_u16()) {
                return Err(answer.error(operation, key));
            }
            Ok(answer)
        };
        attempt
            .retry(inner_schedule())
            .sleep(tokio::time::sleep)
            .when(Error::is_transient)
            .notify(|error, delay| {
                tracing::debug!(operation, %error, ?delay, "azure call failed, retrying");
            })
            .await
    }

    async fn send(
        &self,
        operation: &'static str,
        key: &str,
        method: &Method,
        url: &Url,
        headers: &[(HeaderName, &str)],
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| super::super::backend_error(operation, key, e))?;
        // The signature covers the headers, Content-Length among them, so the request is
        // built and signed as `object_store` signs its own, then sent with the body.
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| Error::backend(operation, key, e.to_string(), false))?;
        let length = body.as_ref().map_or(0, Bytes::len);
        let request_headers = request.headers_mut();
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|e| Error::backend(operation, key, e.to_string(), false))?;
            request_headers.insert(name.clone(), value);
        }
        if *method != Method::GET && *method != Method::HEAD {
            request_headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        AzureAuthorizer::new(&credential, &self.account)
            .try_authorize(&mut request)
            .map_err(|e| super::super::backend_error(operation, key, e))?;
        let (parts, _) = request.into_parts();
        let mut builder = self
            .http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers);
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let transport = |e: reqwest::Error| {
            Error::backend(operation, key, redact::scrub(&transport_message(e)), true)
        };
        let response = builder.send().await.map_err(transport)?;
        let answer = Answer {
            status: response.status(),
            headers: response.headers().clone(),
        };
        // Read to the end so that the connection is reused (error bodies are a few hundred
        // bytes; the code is in a header too).
        response.bytes().await.map_err(transport)?;
        Ok(answer)
    }
}

/// A transport failure with its causes on one line, without the URL (a SAS rides in it).
fn transport_message(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
