//! `--auth kubernetes`: the caller's bearer token is checked with a TokenReview, and access to
//! a namespace with a SubjectAccessReview of the reviewed user (`get rayclusters.ray.io` in
//! that namespace unless `--auth-sar-*` say otherwise). Both answers are cached for
//! `--auth-cache-ttl`, keyed on a SHA-256 of the token, so a page's burst of API calls costs
//! one review and no token is kept or logged.
//!
//! The token is taken from `Authorization: Bearer …` (Ray's CLI, scripts), else
//! `X-Forwarded-Access-Token` (oauth2-proxy's `--pass-access-token`), else the cookie the login
//! page sets. The server's own identity (in-cluster ServiceAccount, or `KUBECONFIG`) needs
//! `create` on `tokenreviews` and `subjectaccessreviews`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use moka::future::Cache;
use sha2::{Digest, Sha256};

/// Most cached tokens and decisions (a few hundred bytes each).
const CACHE_ENTRIES: u64 = 10_000;

/// A failed review (the API server unreachable or refusing the server's own identity); shared
/// by every request that waited for the same review.
pub type ReviewError = Arc<kube::Error>;

/// Settings of `kubernetes` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSettings {
    /// Audiences the token must be valid for (empty: the API server's own).
    pub audiences: Vec<String>,
    /// Verb of the SubjectAccessReview, e.g. `get`.
    pub verb: String,
    /// API group of its resource, e.g. `ray.io`.
    pub group: String,
    /// Its resource, e.g. `rayclusters`.
    pub resource: String,
    /// How long a review's answer is reused.
    pub cache_ttl: Duration,
}

type TokenHash = [u8; 32];

/// A user the API server authenticated.
#[derive(Debug)]
pub struct Subject {
    token: TokenHash,
    user: UserInfo,
}

impl Subject {
    /// The user's name, e.g. `system:serviceaccount:team-a:alice`.
    pub fn username(&self) -> &str {
        self.user.username.as_deref().unwrap_or_default()
    }
}

/// Token and access reviews with their caches.
pub struct Reviews {
    client: kube::Client,
    settings: KubeSettings,
    /// `None`: the token does not authenticate.
    tokens: Cache<TokenHash, Option<Arc<Subject>>>,
    decisions: Cache<(TokenHash, String), bool>,
}

impl std::fmt::Debug for Reviews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reviews")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Reviews {
    /// Reviews against the API server `client` talks to.
    pub fn new(client: kube::Client, settings: KubeSettings) -> Reviews {
        Reviews {
            client,
            tokens: cache(settings.cache_ttl),
            decisions: cache(settings.cache_ttl),
            settings,
        }
    }

    /// Who `token` belongs to, or `None` when it does not authenticate (for the configured
    /// audiences).
    pub async fn authenticate(&self, token: &str) -> Result<Option<Arc<Subject>>, ReviewError> {
        let key: TokenHash = Sha256::digest(token.as_bytes()).into();
        self.tokens
            .try_get_with(key, self.token_review(key, token))
            .await
    }

    /// Whether `subject` may see sessions of `namespace`.
    pub async fn allows(&self, subject: &Subject, namespace: &str) -> Result<bool, ReviewError> {
        self.decisions
            .try_get_with(
                (subject.token, namespace.to_string()),
                self.access_review(subject, namespace),
            )
            .await
    }

    async fn token_review(
        &self,
        key: TokenHash,
        token: &str,
    ) -> Result<Option<Arc<Subject>>, kube::Error> {
        let audiences = &self.settings.audiences;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: (!audiences.is_empty()).then(|| audiences.clone()),
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let Some(status) = answer.status.filter(|s| s.authenticated == Some(true)) else {
            return Ok(None);
        };
        // The API server answers which of the asked audiences the token is valid for; clients
        // must check that it is one of theirs.
        if !audiences.is_empty()
            && !status
                .audiences
                .unwrap_or_default()
                .iter()
                .any(|a| audiences.contains(a))
        {
            return Ok(None);
        }
        Ok(status
            .user
            .filter(|u| u.username.as_deref().is_some_and(|n| !n.is_empty()))
            .map(|user| Arc::new(Subject { token: key, user })))
    }

    async fn access_review(&self, subject: &Subject, namespace: &str) -> Result<bool, kube::Error> {
        let user = &subject.user;
        let settings = &self.settings;
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    verb: Some(settings.verb.clone()),
                    group: Some(settings.group.clone()),
                    resource: Some(settings.resource.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

fn cache<K, V>(ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(CACHE_ENTRIES)
        .time_to_live(ttl)
        .build()
}

/// The request's token: `Authorization: Bearer`, else `X-Forwarded-Access-Token`, else the
/// login cookie.
pub fn request_token(headers: &HeaderMap) -> Option<&str> {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = value("authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token)
    });
    [bearer, value("x-forwarded-access-token")]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|t| !t.is_empty())
        .or_else(|| super::login::cookie_token(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (axum::http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn the_token_comes_from_the_header_then_the_proxy_then_the_cookie() {
        let all = [
            ("authorization", "Bearer from-header"),
            ("x-forwarded-access-token", "from-proxy"),
            ("cookie", "a=b; ray-history-token=from-cookie"),
        ];
        assert_eq!(request_token(&headers(&all)), Some("from-header"));
        assert_eq!(request_token(&headers(&all[1..])), Some("from-proxy"));
        assert_eq!(request_token(&headers(&all[2..])), Some("from-cookie"));
        assert_eq!(
            request_token(&headers(&[("authorization", "Basic dXNlcjpwdw==")])),
            None,
            "only bearer tokens"
        );
        assert_eq!(
            request_token(&headers(&[("authorization", "bearer  x ")])),
            Some("x")
        );
        assert_eq!(request_token(&HeaderMap::new()), None);
    }
}
