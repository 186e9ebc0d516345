//! Who may see which namespace's sessions (`--auth`).
//!
//! - `none`: everyone sees everything (the default; a loud warning when the server listens on
//!   a non-loopback address).
//! - `header`: behind a trusted proxy (oauth2-proxy, an ingress with auth): the proxy's
//!   `X-Forwarded-User` and `X-Forwarded-Groups` are believed only from `--auth-trusted-proxies`,
//!   and an ACL file maps users and groups to namespaces, with admin groups seeing all, as
//!   Spark's history server maps users to applications.
//!
//! Denials answer 401/403 in Ray's JSON envelope without naming the session or namespace, and
//! each writes an audit log line (target `audit`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use serde::Deserialize;

use crate::api::ApiError;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// No authentication: every namespace to everyone.
    None,
    /// The user and groups a trusted proxy forwards, checked against `--auth-acl`.
    Header,
}

/// The ACL file of `header` mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Groups whose members see every namespace.
    #[serde(default)]
    pub admins: BTreeSet<String>,
    /// Namespaces per group.
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// Namespaces per user.
    #[serde(default)]
    pub users: BTreeMap<String, BTreeSet<String>>,
}

impl Acl {
    /// Reads the YAML file; the error names the setting and the problem.
    pub fn load(path: &Path) -> Result<Acl, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("AUTH_ACL: cannot read {}: {e}", path.display()))?;
        serde_yaml::from_str(&text)
            .map_err(|e| format!("AUTH_ACL: {} is not a valid ACL: {e}", path.display()))
    }

    /// What a user in `groups` may see.
    pub fn access(&self, user: &str, groups: &[&str]) -> Access {
        if groups.iter().any(|g| self.admins.contains(*g)) {
            return Access::All;
        }
        let mut namespaces: BTreeSet<String> = self.users.get(user).cloned().unwrap_or_default();
        for group in groups {
            namespaces.extend(self.groups.get(*group).into_iter().flatten().cloned());
        }
        Access::Namespaces(namespaces)
    }
}

/// The namespaces a request may see (a request extension set by [`guard`]).
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

/// Settings of the guard.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The mode.
    pub mode: AuthMode,
    /// Peers whose forwarded identity is believed (`header` mode).
    pub trusted_proxies: Vec<IpNet>,
    /// Users and groups to namespaces (`header` mode).
    pub acl: Acl,
}

impl AuthConfig {
    /// No authentication.
    pub fn none() -> AuthConfig {
        AuthConfig {
            mode: AuthMode::None,
            trusted_proxies: Vec::new(),
            acl: Acl::default(),
        }
    }
}

/// Parses `10.0.0.0/8,127.0.0.1`: networks or single addresses.
pub fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("AUTH_TRUSTED_PROXIES: {s:?} is not an address or network"))
        })
        .collect()
}

/// The namespace a path is about: `/sessions/<ns>/…` and `/api/sessions/<ns>/…`.
fn namespace_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/sessions/")
        .or_else(|| path.strip_prefix("/api/sessions/"))?;
    rest.split('/').next().filter(|ns| !ns.is_empty())
}

fn deny(
    status: StatusCode,
    reason: &str,
    user: &str,
    peer: Option<IpAddr>,
    path: &str,
) -> Response {
    tracing::warn!(target: "audit", %status, reason, user, peer = ?peer, path, "request denied");
    let message = if status == StatusCode::UNAUTHORIZED {
        "authentication required"
    } else {
        "not allowed"
    };
    ApiError::new(status, message).into_response()
}

/// Middleware: authenticates the request, checks the namespace its path names, and leaves
/// the [`Access`] for handlers that list sessions.
pub async fn guard(
    State(config): State<std::sync::Arc<AuthConfig>>,
    mut request: Request,
    next: Next,
) -> Response {
    let access = match config.mode {
        AuthMode::None => Access::All,
        AuthMode::Header => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            let path = request.uri().path().to_string();
            let trusted =
                peer.is_some_and(|ip| config.trusted_proxies.iter().any(|n| n.contains(&ip)));
            if !trusted {
                return deny(
                    StatusCode::UNAUTHORIZED,
                    "not from a trusted proxy",
                    "",
                    peer,
                    &path,
                );
            }
            let header = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .unwrap_or_default()
            };
            let user = header("x-forwarded-user");
            if user.is_empty() {
                return deny(
                    StatusCode::UNAUTHORIZED,
                    "no X-Forwarded-User",
                    "",
                    peer,
                    &path,
                );
            }
            let groups = header("x-forwarded-groups");
            let groups: Vec<&str> = groups
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .collect();
            let access = config.acl.access(&user, &groups);
            if let Some(namespace) = namespace_of(&path)
                && !access.allows(namespace)
            {
                return deny(
                    StatusCode::FORBIDDEN,
                    "namespace not allowed",
                    &user,
                    peer,
                    &path,
                );
            }
            access
        }
    };
    request.extensions_mut().insert(access);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_users_map_to_namespaces_and_admins_see_all() {
        let acl: Acl = serde_yaml::from_str(
            "admins: [platform]\ngroups:\n  team-a: [ns-a]\nusers:\n  bob: [ns-b]\n",
        )
        .unwrap();
        assert_eq!(acl.access("x", &["platform"]), Access::All);
        let alice = acl.access("alice", &["team-a", "other"]);
        assert!(alice.allows("ns-a") && !alice.allows("ns-b"));
        let bob = acl.access("bob", &["team-a"]);
        assert!(bob.allows("ns-a") && bob.allows("ns-b"));
        assert!(!acl.access("eve", &[]).allows("ns-a"));
        assert!(
            serde_yaml::from_str::<Acl>("admin: [x]\n").is_err(),
            "typos are refused"
        );
    }

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

    #[test]
    fn trusted_proxies_are_networks_or_addresses() {
        let nets = parse_networks("10.0.0.0/8, 127.0.0.1").unwrap();
        assert!(nets[0].contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        assert!(nets[1].contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(
            parse_networks("proxy.local")
                .unwrap_err()
                .starts_with("AUTH_TRUSTED_PROXIES")
        );
    }
}
