//! `--auth header`: the user and groups a trusted proxy forwards (`X-Forwarded-User`,
//! `X-Forwarded-Groups`), believed only from `--auth-trusted-proxies`, mapped to namespaces
//! by an ACL file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::Deserialize;

use super::{Access, Grant, Principal, Refusal};

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
        serde_yaml_ng::from_str(&text)
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

/// The forwarded identity of a request from a trusted proxy.
pub(super) fn authenticate(
    trusted_proxies: &[IpNet],
    acl: &Acl,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Principal, Refusal> {
    let trusted = peer.is_some_and(|ip| trusted_proxies.iter().any(|n| n.contains(&ip)));
    if !trusted {
        return Err(Refusal::Unauthenticated("not from a trusted proxy"));
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let user = header("x-forwarded-user");
    if user.is_empty() {
        return Err(Refusal::Unauthenticated("no X-Forwarded-User"));
    }
    let groups: Vec<&str> = header("x-forwarded-groups")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    Ok(Principal {
        user: user.to_string(),
        grant: Grant::Fixed(acl.access(user, &groups)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_users_map_to_namespaces_and_admins_see_all() {
        let acl: Acl = serde_yaml_ng::from_str(
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
            serde_yaml_ng::from_str::<Acl>("admin: [x]\n").is_err(),
            "typos are refused"
        );
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
