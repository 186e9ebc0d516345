//! Errors of the storage crate. Messages never contain secrets: every text that may carry a
//! credential (backend errors, URLs) goes through [`crate::redact`] first.

/// A configuration that cannot be used. The message is one line that names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The setting at fault, by its environment name (e.g. `AZURE_STORAGE_CONNECTION_STRING`).
    pub setting: String,
    /// What is wrong with it (never the secret value itself).
    pub problem: String,
}

impl ConfigError {
    /// Builds an error for `setting`.
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// Errors from storage operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The object does not exist.
    #[error("{key}: not found")]
    NotFound {
        /// The key, relative to the prefix.
        key: String,
    },
    /// A create-only write found an existing object.
    #[error("{key}: already exists")]
    AlreadyExists {
        /// The key, relative to the prefix.
        key: String,
    },
    /// An append carried an offset that is not the blob's current size.
    #[error("{key}: append expected the blob at {expected} bytes, it has {actual:?}")]
    AppendPosition {
        /// The key, relative to the prefix.
        key: String,
        /// The offset the caller expected.
        expected: u64,
        /// The blob's actual size, when it could be read.
        actual: Option<u64>,
    },
    /// The backend cannot append (use whole-object puts instead).
    #[error("appends are not supported by the {backend} backend")]
    AppendUnsupported {
        /// Backend name.
        backend: &'static str,
    },
    /// Any other backend failure; `message` is already redacted.
    #[error("{operation}{}: {message}", if key.is_empty() { String::new() } else { format!(" {key}") })]
    Backend {
        /// What was being done (`put`, `get`, `append`, …).
        operation: &'static str,
        /// The key, relative to the prefix (empty for container-level operations).
        key: String,
        /// The redacted cause.
        message: String,
        /// The HTTP status the service answered with, when it answered.
        status: Option<u16>,
        /// The service's error code (`BlockCountExceedsLimit`, `SlowDown`, …), when it sent one.
        code: Option<String>,
        /// Whether retrying may help (timeouts, 5xx, connection errors).
        transient: bool,
    },
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A backend failure that carries no answer of the service (a local check, a refused
    /// setting, a local I/O error).
    pub fn backend(
        operation: &'static str,
        key: impl Into<String>,
        message: impl Into<String>,
        transient: bool,
    ) -> Self {
        Error::Backend {
            operation,
            key: key.into(),
            message: message.into(),
            status: None,
            code: None,
            transient,
        }
    }

    /// The service's error code of a backend failure, if it sent one.
    pub fn service_code(&self) -> Option<&str> {
        match self {
            Error::Backend { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of a backend failure, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Backend { status, .. } => *status,
            _ => None,
        }
    }

    /// One line for places other people read (a Kubernetes status): the error's first line
    /// up to any response body the backend echoed (JSON or XML), at most 200 characters.
    pub fn brief(&self) -> String {
        let text = self.to_string();
        let line = text.lines().next().unwrap_or_default();
        let line = match line.find(['{', '<']) {
            Some(body) => line[..body].trim_end_matches([':', ' ']),
            None => line,
        };
        match line.char_indices().nth(200) {
            Some((end, _)) => format!("{}…", &line[..end]),
            None => line.to_string(),
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                transient: true,
                ..
            }
        )
    }
}

/// Result with the storage [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_drops_response_bodies_and_long_tails() {
        let e = Error::backend(
            "put",
            "a/b",
            "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>AuthorizationFailure</Code></Error>\nmore",
            false,
        );
        assert_eq!(
            e.brief(),
            "put a/b: Server returned non-2xx status code: 403 Forbidden"
        );
        let json = Error::backend(
            "get",
            "",
            "400 Bad Request: {\"error\":{\"message\":\"secret stuff\"}}",
            false,
        );
        assert_eq!(json.brief(), "get: 400 Bad Request");
        let long = Error::NotFound {
            key: "k".repeat(300),
        };
        assert_eq!(long.brief().chars().count(), 201);
    }
}
