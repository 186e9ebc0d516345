//! Azure storage connection strings (`AccountName=…;AccountKey=…;BlobEndpoint=…`).
//!
//! Parsed here (no Azure SDK is used; see `backend::azure::rest`) so that every problem
//! becomes a one-line [`ConfigError`] naming `AZURE_STORAGE_CONNECTION_STRING` without
//! echoing the secret parts.

use crate::error::ConfigError;
use crate::redact::Secret;

/// The setting every error of this module names.
const SETTING: &str = "AZURE_STORAGE_CONNECTION_STRING";
/// Azurite's well-known account.
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known (public) account key.
pub const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default blob endpoint, used for `UseDevelopmentStorage=true`.
pub const EMULATOR_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// The credential a connection string carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionCredential {
    /// `AccountKey=…`.
    AccountKey(Secret),
    /// `SharedAccessSignature=…`.
    Sas(Secret),
}

/// A parsed connection string, reduced to what the blob service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// `AccountName`, when given (always set for key auth and the emulator).
    pub account_name: Option<String>,
    /// The key or SAS token.
    pub credential: ConnectionCredential,
    /// `BlobEndpoint`, when given explicitly.
    pub blob_endpoint: Option<String>,
    /// The endpoint built from `DefaultEndpointsProtocol`, `AccountName` and `EndpointSuffix`
    /// (or Azurite's default for `UseDevelopmentStorage=true`) when `BlobEndpoint` is absent.
    pub derived_endpoint: Option<String>,
}

impl ConnectionString {
    /// Parses a connection string. Keys are matched case-insensitively; endpoints of other
    /// services (queue, table, file) are ignored.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = |problem: String| ConfigError::new(SETTING, problem);
        let mut account_name = None;
        let mut account_key = None;
        let mut sas = None;
        let mut blob_endpoint = None;
        let mut protocol = None;
        let mut suffix = None;
        let mut development = false;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(bad("has a part without '=' (expected Name=value;…)".into()));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "accountname" => account_name = Some(value.to_string()),
                "accountkey" => account_key = Some(Secret::new(value)),
                "sharedaccesssignature" => sas = Some(Secret::new(value)),
                "blobendpoint" => blob_endpoint = Some(value.trim_end_matches('/').to_string()),
                "defaultendpointsprotocol" => protocol = Some(value.to_ascii_lowercase()),
                "endpointsuffix" => suffix = Some(value.to_string()),
                "usedevelopmentstorage" => {
                    development = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("UseDevelopmentStorage must be true or false".into())),
                    }
                }
                "queueendpoint"
                | "tableendpoint"
                | "fileendpoint"
                | "dfsendpoint"
                | "developmentstorageproxyuri" => {}
                other => return Err(bad(format!("has an unknown part {other:?}"))),
            }
        }
        if development {
            if account_key.is_some() || sas.is_some() || account_name.is_some() {
                return Err(bad(
                    "UseDevelopmentStorage=true cannot be combined with AccountName, AccountKey or SharedAccessSignature".into(),
                ));
            }
            return Ok(Self {
                account_name: Some(EMULATOR_ACCOUNT.to_string()),
                credential: ConnectionCredential::AccountKey(Secret::new(EMULATOR_KEY)),
                blob_endpoint,
                derived_endpoint: Some(EMULATOR_ENDPOINT.to_string()),
            });
        }
        let credential = match (account_key, sas) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "has both AccountKey and SharedAccessSignature; keep one".into(),
                ));
            }
            (Some(key), None) => {
                if account_name.is_none() {
                    return Err(bad("has an AccountKey but no AccountName".into()));
                }
                ConnectionCredential::AccountKey(key)
            }
            (None, Some(sas)) => ConnectionCredential::Sas(sas),
            (None, None) => {
                return Err(bad("has no AccountKey or SharedAccessSignature".into()));
            }
        };
        if protocol
            .as_deref()
            .is_some_and(|p| p != "http" && p != "https")
        {
            return Err(bad("DefaultEndpointsProtocol must be http or https".into()));
        }
        let derived_endpoint = account_name.as_ref().map(|account| {
            format!(
                "{}://{account}.blob.{}",
                protocol.as_deref().unwrap_or("https"),
                suffix.as_deref().unwrap_or("core.windows.net")
            )
        });
        if blob_endpoint.is_none() && derived_endpoint.is_none() {
            return Err(bad("has no AccountName or BlobEndpoint".into()));
        }
        Ok(Self {
            account_name,
            credential,
            blob_endpoint,
            derived_endpoint,
        })
    }

    /// `BlobEndpoint` if given, otherwise the derived endpoint.
    pub fn endpoint(&self) -> Option<&str> {
        self.blob_endpoint
            .as_deref()
            .or(self.derived_endpoint.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_strings_with_derived_endpoint() {
        let cs = ConnectionString::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn",
        )
        .unwrap();
        assert_eq!(cs.account_name.as_deref(), Some("acct"));
        assert_eq!(
            cs.credential,
            ConnectionCredential::AccountKey(Secret::new("a2V5"))
        );
        assert_eq!(
            cs.endpoint(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
    }

    #[test]
    fn explicit_blob_endpoint_wins() {
        let cs = ConnectionString::parse(
            "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1234/devstoreaccount1/;",
        )
        .unwrap();
        assert_eq!(
            cs.endpoint(),
            Some("http://127.0.0.1:1234/devstoreaccount1")
        );
    }

    #[test]
    fn sas_strings_need_an_endpoint_or_account() {
        let cs = ConnectionString::parse(
            "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=1&sig=x",
        )
        .unwrap();
        assert_eq!(
            cs.credential,
            ConnectionCredential::Sas(Secret::new("sv=1&sig=x"))
        );
        assert_eq!(cs.account_name, None);
        let err = ConnectionString::parse("SharedAccessSignature=sv=1&sig=x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "AZURE_STORAGE_CONNECTION_STRING: has no AccountName or BlobEndpoint"
        );
    }

    #[test]
    fn development_storage_uses_the_well_known_account() {
        let cs = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(cs.account_name.as_deref(), Some(EMULATOR_ACCOUNT));
        assert_eq!(cs.endpoint(), Some(EMULATOR_ENDPOINT));
        assert_eq!(cs.blob_endpoint, None);
    }

    #[test]
    fn errors_name_the_setting_and_hide_the_key() {
        for (text, problem) in [
            (
                "AccountName=a;AccountKey=SECRET;SharedAccessSignature=SECRET",
                "both AccountKey",
            ),
            ("AccountKey=SECRET", "no AccountName"),
            ("AccountName=a", "no AccountKey"),
            (
                "AccountName=a;AccountKey=SECRET;Bogus=1",
                "unknown part \"bogus\"",
            ),
            ("AccountName=a;AccountKey", "without '='"),
            ("UseDevelopmentStorage=maybe", "true or false"),
            (
                "DefaultEndpointsProtocol=ftp;AccountName=a;AccountKey=SECRET",
                "http or https",
            ),
        ] {
            let err = ConnectionString::parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with("AZURE_STORAGE_CONNECTION_STRING: "),
                "{err}"
            );
            assert!(err.contains(problem), "{text}: {err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
    }
}
