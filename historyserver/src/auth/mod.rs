//! Who may see which namespace's sessions (`--auth`).
//!
//! - `none`: everyone sees everything (the default; a loud warning when the server listens on
//!   a non-loopback address).
//! - `header`: behind a trusted proxy (oauth2-proxy, an ingress with auth): the proxy's
//!   `X-Forwarded-User` and `X-Forwarded-Groups` are believed only from `--auth-trusted-proxies`,
//!   and an ACL file maps users and groups to namespaces, with admin groups seeing all, as
//!   Spark's history server maps users to applications ([`header`]).
//! - `kubernetes`: the request's bearer token is checked with a TokenReview, and each
//!   namespace with a SubjectAccessReview (`get rayclusters.ray.io` by default), both cached
//!   briefly ([`kubernetes`]); browsers sign in once on `/login` ([`login`]).
//!
//! Every mode ends in the same [`guard`]: it authenticates the request into a [`Principal`],
//! refuses a path naming a namespace the principal may not see, and leaves the principal for
//! handlers that list sessions. Denials answer 401/403 in Ray's JSON envelope without naming
//! the session or namespace (so a denied route does not tell whether the session exists), and
//! each writes an audit log line (target `audit`) with the user, namespace and path, never a
//! token.

pub mod header;
pub mod kubernetes;
pub mod login;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header as http_header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt;
use ipnet::IpNet;

pub use header::{Acl, parse_networks};
pub use kubernetes::{KubeSettings, ReviewError, Reviews};

use crate::response::ApiError;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// No authentication: every namespace to everyone.
    None,
    /// The user and groups a trusted proxy forwards, checked against `--auth-acl`.
    Header,
    /// A bearer token checked by TokenReview, namespaces by SubjectAccessReview.
    Kubernetes,
}

/// The checked settings of the mode in use (the guard's state).
#[derive(Debug)]
pub enum AuthConfig {
    /// No authentication.
    None,
    /// A trusted proxy's forwarded identity and an ACL.
    Header {
        /// Peers whose forwarded identity is believed.
        trusted_proxies: Vec<IpNet>,
        /// Users and groups to namespaces.
        acl: Acl,
    },
    /// Token and access reviews against the Kubernetes API server.
    Kubernetes(Arc<Reviews>),
}

/// The namespaces a request may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every namespace.
    All,
    /// Only these.
    Namespaces(BTreeSet<String>),
}

impl Access {
    /// Whether sessions of `namespace` may be shown.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Access::All => true,
            Access::Namespaces(allowed) => allowed.contains(namespace),
        }
    }
}

/// Most SubjectAccessReviews in flight for one listing (a first listing on a cluster with
/// hundreds of namespaces must not open hundreds of requests to the API server at once).
const CONCURRENT_REVIEWS: usize = 16;

/// Who made a request, as the [`guard`] authenticated it (a request extension). What they
/// may see is asked per namespace, so `kubernetes` mode reviews only the namespaces a
/// request is about.
#[derive(Debug, Clone)]
pub struct Principal {
    user: String,
    grant: Grant,
}

#[derive(Debug, Clone)]
enum Grant {
    /// Known up front (`none`, `header`).
    Fixed(Access),
    /// Asked of the API server (cached).
    Kubernetes(Arc<Reviews>, Arc<kubernetes::Subject>),
}

impl Principal {
    /// The user name, for audit lines (empty in `none` mode).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether sessions of `namespace` may be shown; an error when the API server cannot say.
    pub async fn allows(&self, namespace: &str) -> Result<bool, ReviewError> {
        match &self.grant {
            Grant::Fixed(access) => Ok(access.allows(namespace)),
            Grant::Kubernetes(reviews, subject) => reviews.allows(subject, namespace).await,
        }
    }

    /// What may be seen of `namespaces` (for listings). A namespace the API server cannot
    /// decide on now is left out: listings fail closed.
    pub async fn access(&self, namespaces: BTreeSet<&str>) -> Access {
        match &self.grant {
            Grant::Fixed(access) => access.clone(),
            Grant::Kubernetes(reviews, subject) => {
                // Owned names: a stream of futures borrowing them would not be `Send`.
                let decisions: Vec<_> = futures::stream::iter(namespaces)
                    .map(str::to_string)
                    .map(|ns| async move {
                        let decision = reviews.allows(subject, &ns).await;
                        (ns, decision)
                    })
                    .buffer_unordered(CONCURRENT_REVIEWS)
                    .collect()
                    .await;
                let mut allowed = BTreeSet::new();
                for (namespace, decision) in decisions {
                    match decision {
                        Ok(true) => {
                            allowed.insert(namespace);
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(
                            namespace = %namespace,
                            user = %self.user,
                            error = %e,
                            "SubjectAccessReview failed; the namespace is not listed"
                        ),
                    }
                }
                Access::Namespaces(allowed)
            }
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No credentials, or ones that do not prove who the caller is.
    Unauthenticated(&'static str),
    /// The API server could not review the credentials.
    Unavailable(ReviewError),
}

impl AuthConfig {
    /// Who sent a request with these headers.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Principal, Refusal> {
        match self {
            AuthConfig::None => Ok(Principal {
                user: String::new(),
                grant: Grant::Fixed(Access::All),
            }),
            AuthConfig::Header {
                trusted_proxies,
                acl,
            } => header::authenticate(trusted_proxies, acl, headers, peer),
            AuthConfig::Kubernetes(reviews) => {
                let token = kubernetes::request_token(headers)
                    .ok_or(Refusal::Unauthenticated("no bearer token"))?;
                let subject = reviews
                    .authenticate(token)
                    .await
                    .map_err(Refusal::Unavailable)?
                    .ok_or(Refusal::Unauthenticated("token not authenticated"))?;
                Ok(Principal {
                    user: subject.username().to_string(),
                    grant: Grant::Kubernetes(reviews.clone(), subject),
                })
            }
        }
    }
}

/// The namespace a path is about: `/sessions/<ns>/…` and `/api/sessions/<ns>/…`.
fn namespace_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/sessions/")
        .or_else(|| path.strip_prefix("/api/sessions/"))?;
    rest.split('/').next().filter(|ns| !ns.is_empty())
}

/// What a denied request was about, for its audit line.
struct Denied<'a> {
    user: &'a str,
    namespace: Option<&'a str>,
    peer: Option<IpAddr>,
    path: &'a str,
}

impl Denied<'_> {
    fn respond(&self, status: StatusCode, reason: &str) -> Response {
        tracing::warn!(
            target: "audit",
            %status,
            reason,
            user = self.user,
            namespace = self.namespace.unwrap_or(""),
            peer = ?self.peer,
            path = self.path,
            "request denied"
        );
        let message = match status {
            StatusCode::UNAUTHORIZED => "authentication required",
            StatusCode::FORBIDDEN => "not allowed",
            _ => "authorization is unavailable, try again",
        };
        ApiError::new(status, message).into_response()
    }
}

/// A browser navigating (rather than a script or Ray's CLI calling the API): sent to the
/// login page instead of a JSON 401.
fn is_navigation(request: &Request) -> bool {
    request.method() == Method::GET
        && request
            .headers()
            .get(http_header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// Middleware: authenticates the request, checks the namespace its path names, and leaves
/// the [`Principal`] for handlers that list sessions.
pub async fn guard(
    State(config): State<Arc<AuthConfig>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let path = request.uri().path().to_string();
    let namespace = namespace_of(&path);
    let mut denied = Denied {
        user: "",
        namespace,
        peer,
        path: &path,
    };
    let principal = match config.authenticate(request.headers(), peer).await {
        Ok(principal) => principal,
        Err(Refusal::Unauthenticated(reason)) => {
            if matches!(*config, AuthConfig::Kubernetes(_)) && is_navigation(&request) {
                denied.respond(StatusCode::UNAUTHORIZED, reason);
                let here = request.uri().path_and_query().map_or("/", |p| p.as_str());
                return Redirect::to(&login::login_url(here)).into_response();
            }
            return denied.respond(StatusCode::UNAUTHORIZED, reason);
        }
        Err(Refusal::Unavailable(e)) => {
            tracing::warn!(error = %e, "TokenReview failed");
            return denied.respond(StatusCode::SERVICE_UNAVAILABLE, "TokenReview failed");
        }
    };
    denied.user = principal.user();
    if let Some(namespace) = namespace {
        match principal.allows(namespace).await {
            Ok(true) => {}
            Ok(false) => return denied.respond(StatusCode::FORBIDDEN, "namespace not allowed"),
            Err(e) => {
                tracing::warn!(error = %e, "SubjectAccessReview failed");
                return denied.respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SubjectAccessReview failed",
                );
            }
        }
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_namespace() {
        assert_eq!(
            namespace_of("/sessions/ns-a/c/s/api/v0/tasks"),
            Some("ns-a")
        );
        assert_eq!(namespace_of("/api/sessions/ns-b/c/latest"), Some("ns-b"));
        assert_eq!(namespace_of("/api/sessions"), None);
        assert_eq!(namespace_of("/"), None);
    }
}
