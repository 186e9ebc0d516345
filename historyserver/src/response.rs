//! Response shapes: Ray's envelope `{"result", "msg", "data"}` for success and errors, and
//! the error type of all handlers (the API's and the auth guard's).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Error;

/// Ray's response envelope.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    result: bool,
    msg: &'a str,
    data: T,
}

/// JSON with the content type Ray's dashboard sends.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
        Err(e) => ApiError::internal(format!("cannot encode response: {e}")).into_response(),
    }
}

/// `{"result": true, "msg": msg, "data": data}` with status 200.
pub fn ok<T: Serialize>(msg: &str, data: T) -> Response {
    json(
        StatusCode::OK,
        &Envelope {
            result: true,
            msg,
            data,
        },
    )
}

/// Plain text, as some dashboard endpoints answer.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An error answered in Ray's envelope: `{"result": false, "msg": ..., "data": {"result": null}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    msg: String,
}

impl ApiError {
    /// An error with this status.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
        }
    }

    /// 400.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }

    /// 404.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, msg)
    }

    /// 500.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, msg)
    }

    /// Maps a library error to a status: bad input 400, missing things 404, past a limit 422,
    /// storage 502.
    pub fn from_error(error: &Error) -> Self {
        match error {
            Error::BadRequest(m) => Self::bad_request(m.clone()),
            Error::NotFound(m) => Self::not_found(m.clone()),
            Error::TooLarge(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
            Error::Storage(ray_history_storage::Error::NotFound { key }) => {
                Self::not_found(format!("{key} not found"))
            }
            Error::Storage(e) => Self::new(StatusCode::BAD_GATEWAY, format!("storage: {e}")),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self::from_error(&error)
    }
}

#[derive(Serialize)]
struct NullResult {
    result: Option<()>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(
            self.status,
            &Envelope {
                result: false,
                msg: &self.msg,
                data: NullResult { result: None },
            },
        )
    }
}

/// A JSON object with its keys in the order given: Ray builds its summaries from Python dicts,
/// and its CLI prints them in their insertion order (`serde_json::Value` would sort the keys).
pub(crate) struct InOrder<K, V>(pub Vec<(K, V)>);

impl<K: PartialEq, V> InOrder<K, V> {
    /// The value under `key`, appended with `make()` at the end when it is new (summaries
    /// have a handful of keys, so a scan beats a second index).
    pub(crate) fn entry(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let at = match self.0.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                self.0.push((key, make()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }
}

impl<K: Serialize, V: Serialize> Serialize for InOrder<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Ray's list result: `{"total", "num_after_truncation", "num_filtered", "result",
/// "partial_failure_warning", "warnings"}`.
#[derive(Serialize)]
pub(crate) struct ListResult<T: Serialize> {
    pub total: usize,
    pub num_after_truncation: usize,
    pub num_filtered: usize,
    pub result: T,
    pub partial_failure_warning: &'static str,
    pub warnings: Option<()>,
}

impl<T: Serialize> ListResult<T> {
    pub(crate) fn new(count: usize, result: T) -> Self {
        Self {
            total: count,
            num_after_truncation: count,
            num_filtered: count,
            result,
            partial_failure_warning: "",
            warnings: None,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Wrapped<T: Serialize> {
    pub result: T,
}

/// A session index file that cannot be read (local disk trouble).
pub(crate) fn rows_unreadable(error: std::io::Error) -> ApiError {
    tracing::error!(error = %error, "cannot read the session index's rows");
    ApiError::internal("cannot read the session's task rows")
}
