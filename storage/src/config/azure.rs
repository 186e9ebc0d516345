//! Azure Blob Storage settings: the container, the account's endpoint and how to
//! authenticate, validated together.

use super::AzureAuth;
use crate::error::ConfigError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConnectionString, EMULATOR_ACCOUNT, EMULATOR_KEY};
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
}
