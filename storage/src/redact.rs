//! Keeping secrets out of logs, errors and debug output.
//!
//! [`Secret`] wraps a credential so that `Debug` and `Display` print `***`. [`scrub`] removes
//! credentials from free text (backend error messages, URLs): connection-string keys, SAS
//! signatures and bearer tokens.

use std::fmt;

/// A credential. Printing it shows `***`; [`Secret::expose`] gives the value to the code that
/// must send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that sends it to the service.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Names whose values are secret, in connection strings (`Name=value;`) and URL queries
/// (`name=value&`). Compared case-insensitively.
const SECRET_NAMES: &[&str] = &[
    "accountkey",
    "sharedaccesssignature",
    "sig",
    "signature",
    "client_secret",
    "password",
    "token",
    "access_token",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// Returns `text` with every secret value replaced by `***`: `AccountKey=…`, `sig=…`, SAS
/// signatures, `Bearer …` and `SharedKey account:…` authorisation values.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let name_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        let name = &before[name_start..];
        out.push_str(before);
        out.push('=');
        let value = &after[1..];
        let end = value
            .find([';', '&', ' ', '"', '\'', ',', '\n', ')', '>'])
            .unwrap_or(value.len());
        if SECRET_NAMES.iter().any(|s| s.eq_ignore_ascii_case(name)) && end > 0 {
            out.push_str("***");
            rest = &value[end..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    scrub_auth_headers(&out)
}

/// Replaces the credential after `Bearer ` and `SharedKey ` with `***`.
fn scrub_auth_headers(text: &str) -> String {
    let mut out = text.to_string();
    for scheme in ["Bearer ", "SharedKey "] {
        let mut from = 0;
        while let Some(pos) = out[from..].find(scheme) {
            let start = from + pos + scheme.len();
            let end = out[start..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
                .map_or(out.len(), |i| start + i);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_stars() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn scrub_removes_known_secrets() {
        let text = "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=abc+/==;BlobEndpoint=http://x";
        let clean = scrub(text);
        assert!(!clean.contains("abc+/"), "{clean}");
        assert!(clean.contains("AccountName=dev"));
        assert!(clean.contains("AccountKey=***"));

        let url = "GET http://h/c/b?sv=2023&sig=SECRETSIG%3D&se=2030 failed";
        let clean = scrub(url);
        assert!(!clean.contains("SECRETSIG"), "{clean}");
        assert!(clean.contains("sv=2023"));

        let header = "authorization: Bearer eyJhbGciOi.xyz, SharedKey dev:c2VjcmV0";
        let clean = scrub(header);
        assert!(
            !clean.contains("eyJhbG") && !clean.contains("c2VjcmV0"),
            "{clean}"
        );
    }

    #[test]
    fn scrub_keeps_plain_text() {
        let text = "put log/a_local/x: connection refused (a=b)";
        assert_eq!(scrub(text), text);
    }
}
