//! Keeping secrets out of logs, errors and debug output.
//!
//! [`Secret`] wraps a credential so that `Debug` and `Display` print `***`. [`scrub`] removes
//! credentials from free text (backend error messages, URLs): connection-string keys, SAS
//! signatures, bearer tokens and the string values of secret JSON keys (`"private_key"`,
//! `"access_token"`, `"client_secret"`, …), also in JSON quoted inside a message.

use std::fmt;

/// A credential. Printing it shows `***`; [`Secret::expose`] gives the value to the code that
/// must send it. Our own type rather than `secrecy`'s `SecretString`, which has no `Eq`: the
/// configurations holding secrets are compared (the operator's change detection, tests).
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
    scrub_json_fields(&scrub_auth_headers(&out))
}

/// JSON keys whose string values are secret (service-account key files, OAuth token answers).
const JSON_SECRET_NAMES: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "private_key",
    "client_secret",
    "password",
    "token",
    "accountkey",
    "account_key",
    "sas_token",
    "secret_access_key",
];

/// Replaces the string value of every secret JSON key with `***`, in plain JSON
/// (`"private_key": "…"`) and in JSON quoted inside a string (`\"access_token\":\"…\"`).
fn scrub_json_fields(text: &str) -> String {
    let mut out = text.to_string();
    for name in JSON_SECRET_NAMES {
        for quote in ["\\\"", "\""] {
            let key = format!("{quote}{name}{quote}");
            let mut from = 0;
            while let Some(pos) = find_ignore_case(&out[from..], &key) {
                let after_key = from + pos + key.len();
                from = after_key;
                let rest = &out[after_key..];
                let Some(colon) = rest.find(|c: char| !c.is_whitespace()) else {
                    break;
                };
                if !rest[colon..].starts_with(':') {
                    continue;
                }
                let after_colon = &rest[colon + 1..];
                let Some(open) = after_colon.find(|c: char| !c.is_whitespace()) else {
                    break;
                };
                if !after_colon[open..].starts_with(quote) {
                    continue;
                }
                let start = after_key + colon + 1 + open + quote.len();
                let Some(len) = value_len(&out[start..], quote) else {
                    break;
                };
                out.replace_range(start..start + len, "***");
                from = start + 3;
            }
        }
    }
    out
}

/// Length of a JSON string body up to its closing `quote` (`"` or `\"`), skipping escapes.
fn value_len(body: &str, quote: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if body[i..].starts_with(quote) {
            return Some(i);
        }
        // An escaped character inside plain JSON; inside quoted JSON, escapes are doubled.
        let escape = if quote == "\"" { "\\" } else { "\\\\" };
        i += if body[i..].starts_with(escape) {
            escape.len() + 1
        } else {
            1
        };
        while i < bytes.len() && !body.is_char_boundary(i) {
            i += 1;
        }
    }
    None
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
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
    fn scrub_removes_json_shaped_secrets() {
        let key_file = r#"{"type": "service_account", "private_key_id": "abc", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----\n", "client_email": "x@y"}"#;
        let out = scrub(key_file);
        assert!(!out.contains("MIIEv"), "{out}");
        assert!(out.contains(r#""private_key": "***""#), "{out}");
        assert!(out.contains(r#""client_email": "x@y""#), "{out}");
        let token = r#"token endpoint said {"Access_Token":"eyJhbGci.xyz","expires_in":3599,"client_secret" : "s3cr3t\"q"}"#;
        let out = scrub(token);
        assert!(
            !out.contains("eyJhbGci") && !out.contains("s3cr3t"),
            "{out}"
        );
        assert!(out.contains("expires_in\":3599"), "{out}");
        // JSON quoted inside a string, as error bodies often arrive.
        let nested = r#"error: "{\"access_token\":\"eyJ.nested\",\"kind\":\"x\"}""#;
        let out = scrub(nested);
        assert!(!out.contains("eyJ.nested"), "{out}");
        assert!(out.contains(r#"\"kind\":\"x\""#), "{out}");
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
