//! The validated names keys are made of: clusters, namespaces, sessions, nodes. Each is
//! checked once, when it is built, so every key made from them parses back.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{LayoutError, Result};

/// Checks one path segment: not empty, not `.`/`..`, no `/`, `\` or control characters.
pub(super) fn check_segment(what: &'static str, value: &str) -> Result<()> {
    let bad = |reason| {
        Err(LayoutError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("must not be empty");
    }
    if value == "." || value == ".." {
        return bad("must not be '.' or '..'");
    }
    if value.len() > 255 {
        return bad("is longer than 255 bytes");
    }
    if value.contains(['/', '\\']) {
        return bad("must not contain '/' or '\\'");
    }
    if value.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a name.
            pub fn new(value: &str) -> Result<Self> {
                check_segment($what, value)?;
                let extra: fn(&str) -> Option<&'static str> = $extra;
                if let Some(reason) = extra(value) {
                    return Err(LayoutError::InvalidName { what: $what, value: value.to_string(), reason });
                }
                Ok(Self(value.to_string()))
            }
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = LayoutError;
            fn try_from(value: String) -> Result<Self> {
                Self::new(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = LayoutError;
            fn from_str(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }
    };
}

name_type!(
    /// A Ray cluster's name (the `ray.io/cluster` label in Kubernetes).
    ClusterName, "cluster name", |_| None
);
name_type!(
    /// A cluster's unique id: the RayCluster's Kubernetes UID, or `local`. Never contains `_`.
    ClusterId, "cluster id", |v| v.contains('_').then_some("must not contain '_'")
);
name_type!(
    /// A Kubernetes namespace (or `default` outside Kubernetes). Never contains `_`.
    Namespace, "namespace", |v| v.contains('_').then_some("must not contain '_'")
);
name_type!(
    /// Ray's session directory name, e.g. `session_2026-11-21_04-23-31_898414_12602`.
    SessionName, "session name", |v| (!v.starts_with("session_")).then_some("must start with 'session_'")
);
name_type!(
    /// A Ray node id: 56 lowercase hex characters.
    NodeId, "node id", |v| (v.len() != 56 || !v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then_some("must be 56 lowercase hex characters")
);
