//! Settings: snake_case as in CONFIG.md, and the platform's own uppercase
//! names (`SERVER_URI`, `BIND_DN`, …) so an exported configuration pastes
//! in. Everything is checked when the instance is built.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_sdk::{PluginError, Secret};
use ldap3::Scope;
use serde::Deserialize;

/// `%(user)s` in templates and filters.
pub(crate) const USER: &str = "%(user)s";

/// One string or a list of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `[base, scope, filter]`, or a list of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum RawSearches {
    One(Vec<String>),
    Many(Vec<Vec<String>>),
}

/// The settings as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    #[serde(alias = "SERVER_URI")]
    server_uri: OneOrMany,
    #[serde(default, alias = "BIND_DN")]
    bind_dn: String,
    #[serde(default, alias = "BIND_PASSWORD")]
    bind_password: Secret,
    #[serde(default, alias = "START_TLS")]
    start_tls: bool,
    #[serde(default, alias = "CA_FILE")]
    pub(crate) ca_file: Option<String>,
    #[serde(default, alias = "CONNECTION_OPTIONS")]
    connection_options: BTreeMap<String, serde_json::Value>,
    #[serde(default, alias = "USER_DN_TEMPLATE")]
    user_dn_template: Option<String>,
    #[serde(default, alias = "USER_SEARCH")]
    user_search: Option<RawSearches>,
    #[serde(default, alias = "USER_ATTR_MAP")]
    user_attr_map: BTreeMap<String, String>,
    #[serde(default, alias = "GROUP_TYPE")]
    group_type: Option<String>,
    #[serde(default, alias = "GROUP_TYPE_PARAMS")]
    group_type_params: BTreeMap<String, String>,
    #[serde(default, alias = "GROUP_SEARCH")]
    group_search: Option<Vec<String>>,
    #[serde(default, alias = "REQUIRE_GROUP")]
    require_group: Option<String>,
    #[serde(default, alias = "DENY_GROUP")]
    deny_group: Option<String>,
    /// Bound service connections kept for searches.
    #[serde(default = "default_pool")]
    pool_size: usize,
    /// Nesting depth for Nested* group types.
    #[serde(default = "default_depth")]
    nested_group_depth: usize,
    /// Seconds the parents of a group (nested types) are remembered; the
    /// user's own, direct memberships are always read fresh. 0: no cache.
    #[serde(default = "default_group_cache")]
    group_cache_seconds: u64,
}

fn default_group_cache() -> u64 {
    30
}

fn default_pool() -> usize {
    4
}
fn default_depth() -> usize {
    10
}

/// One `[base, scope, filter]`.
#[derive(Clone, Debug)]
pub(crate) struct Search {
    pub(crate) base: String,
    pub(crate) scope: Scope,
    pub(crate) filter: String,
}

/// How group membership is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupKind {
    /// `posixGroup`: primary `gidNumber` and `memberUid`.
    Posix,
    /// Groups whose `member_attr` holds the member's DN.
    MemberDn,
}

/// The group configuration.
#[derive(Clone, Debug)]
pub(crate) struct Groups {
    pub(crate) kind: GroupKind,
    pub(crate) nested: bool,
    pub(crate) member_attr: String,
    pub(crate) name_attr: String,
    pub(crate) search: Search,
}

/// Checked settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) servers: Vec<String>,
    pub(crate) bind_dn: String,
    pub(crate) bind_password: Secret,
    pub(crate) start_tls: bool,
    pub(crate) ca_file: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) user_dn_template: Option<String>,
    pub(crate) user_search: Vec<Search>,
    pub(crate) attr_map: BTreeMap<String, String>,
    pub(crate) groups: Option<Groups>,
    pub(crate) require_group: Option<String>,
    pub(crate) deny_group: Option<String>,
    pub(crate) pool_size: usize,
    pub(crate) depth: usize,
    pub(crate) group_cache: Duration,
}

fn bad(msg: impl Into<String>) -> PluginError {
    PluginError::Misconfigured(msg.into())
}

fn scope(s: &str) -> Result<Scope, PluginError> {
    match s.trim().to_ascii_uppercase().trim_start_matches("LDAP.") {
        "SCOPE_SUBTREE" | "SUBTREE" => Ok(Scope::Subtree),
        "SCOPE_ONELEVEL" | "ONELEVEL" => Ok(Scope::OneLevel),
        "SCOPE_BASE" | "BASE" => Ok(Scope::Base),
        _ => Err(bad(format!(
            "invalid scope {s:?}: expected SCOPE_SUBTREE, SCOPE_ONELEVEL or SCOPE_BASE"
        ))),
    }
}

fn check_filter(filter: &str, key: &str) -> Result<(), PluginError> {
    let probe = filter.replace(USER, "probe");
    ldap3::parse_filter(&probe).map_err(|_| bad(format!("{key}: invalid LDAP filter {filter:?}")))?;
    Ok(())
}

fn search(v: &[String], key: &str, needs_user: bool) -> Result<Search, PluginError> {
    let [base, sc, filter] = v else {
        return Err(bad(format!(
            "{key}: expected [base, scope, filter], got {} items",
            v.len()
        )));
    };
    check_filter(filter, key)?;
    if needs_user && !filter.contains(USER) {
        return Err(bad(format!("{key}: the filter must contain {USER}")));
    }
    Ok(Search {
        base: base.clone(),
        scope: scope(sc).map_err(|e| bad(format!("{key}: {e}")))?,
        filter: filter.clone(),
    })
}

fn check_uri(uri: &str) -> Result<(), PluginError> {
    let rest = uri
        .strip_prefix("ldap://")
        .or_else(|| uri.strip_prefix("ldaps://"))
        .ok_or_else(|| bad(format!("server_uri: {uri:?} must start with ldap:// or ldaps://")))?;
    let host = rest.split('/').next().unwrap_or("");
    let (h, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (host, None),
    };
    if h.is_empty() || h.contains(|c: char| c.is_whitespace()) {
        return Err(bad(format!("server_uri: {uri:?} has no host")));
    }
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err(bad(format!("server_uri: {uri:?} has an invalid port")));
    }
    Ok(())
}

impl RawSettings {
    /// Checks everything.
    pub(crate) fn resolve(self) -> Result<Settings, PluginError> {
        let servers: Vec<String> = match self.server_uri {
            OneOrMany::One(s) => s
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            OneOrMany::Many(v) => v,
        };
        if servers.is_empty() {
            return Err(bad("server_uri: at least one server is needed"));
        }
        for s in &servers {
            check_uri(s)?;
        }
        if self.start_tls && servers.iter().any(|s| s.starts_with("ldaps://")) {
            return Err(bad("start_tls: cannot be combined with ldaps:// servers"));
        }
        if !self.bind_dn.is_empty() && self.bind_password.is_empty() {
            return Err(bad(
                "bind_password: required with bind_dn (an empty password would be an unauthenticated bind)",
            ));
        }
        let mut timeout = Duration::from_secs(5);
        for (k, v) in &self.connection_options {
            match k.as_str() {
                "OPT_NETWORK_TIMEOUT" | "network_timeout" => {
                    let secs = v.as_f64().filter(|s| *s > 0.0 && *s <= 300.0).ok_or_else(|| {
                        bad("connection_options.OPT_NETWORK_TIMEOUT: seconds between 0 and 300")
                    })?;
                    timeout = Duration::from_secs_f64(secs);
                }
                "OPT_REFERRALS" | "referrals" => {
                    let on = v.as_bool().unwrap_or_else(|| v.as_i64().is_some_and(|n| n != 0));
                    if on {
                        return Err(bad(
                            "connection_options.OPT_REFERRALS: referral chasing is not supported; set it to 0",
                        ));
                    }
                }
                other => return Err(bad(format!("connection_options: unknown option {other:?}"))),
            }
        }
        if let Some(t) = &self.user_dn_template
            && !t.contains(USER)
        {
            return Err(bad(format!("user_dn_template: must contain {USER}")));
        }
        let user_search = match self.user_search {
            None => Vec::new(),
            Some(RawSearches::One(v)) => vec![search(&v, "user_search", true)?],
            Some(RawSearches::Many(vs)) => vs
                .iter()
                .enumerate()
                .map(|(i, v)| search(v, &format!("user_search[{i}]"), true))
                .collect::<Result<_, _>>()?,
        };
        if self.user_dn_template.is_none() && user_search.is_empty() {
            return Err(bad("either user_dn_template or user_search is required"));
        }
        if !user_search.is_empty() && self.bind_dn.is_empty() && self.user_dn_template.is_none() {
            return Err(bad(
                "user_search needs bind_dn and bind_password (anonymous searches are not used)",
            ));
        }
        for k in self.user_attr_map.keys() {
            if !["first_name", "last_name", "email"].contains(&k.as_str()) {
                return Err(bad(format!(
                    "user_attr_map: unknown key {k:?} (first_name, last_name, email)"
                )));
            }
        }
        let groups = match &self.group_type {
            None => None,
            Some(t) => {
                let (nested, base) = match t.strip_prefix("Nested") {
                    Some(b) => (true, b),
                    None => (false, t.as_str()),
                };
                let (kind, member_attr, name_attr) = match base {
                    "PosixGroupType" if !nested => (GroupKind::Posix, "memberUid", "cn"),
                    "MemberDNGroupType" => (GroupKind::MemberDn, "member", "cn"),
                    "GroupOfNamesType" => (GroupKind::MemberDn, "member", "cn"),
                    "GroupOfUniqueNamesType" => (GroupKind::MemberDn, "uniqueMember", "cn"),
                    "ActiveDirectoryGroupType" => (GroupKind::MemberDn, "member", "cn"),
                    "OrganizationalRoleGroupType" => (GroupKind::MemberDn, "roleOccupant", "cn"),
                    _ => return Err(bad(format!("group_type: unknown type {t:?}"))),
                };
                for k in self.group_type_params.keys() {
                    if k != "name_attr" && k != "member_attr" {
                        return Err(bad(format!(
                            "group_type_params: unknown key {k:?} (name_attr, member_attr)"
                        )));
                    }
                }
                if kind == GroupKind::Posix && self.group_type_params.contains_key("member_attr") {
                    return Err(bad(
                        "group_type_params.member_attr: PosixGroupType always uses memberUid",
                    ));
                }
                let gs = self
                    .group_search
                    .as_ref()
                    .ok_or_else(|| bad("group_search: required with group_type"))?;
                Some(Groups {
                    kind,
                    nested,
                    member_attr: self
                        .group_type_params
                        .get("member_attr")
                        .cloned()
                        .unwrap_or(member_attr.into()),
                    name_attr: self
                        .group_type_params
                        .get("name_attr")
                        .cloned()
                        .unwrap_or(name_attr.into()),
                    search: search(gs, "group_search", false)?,
                })
            }
        };
        if (self.require_group.is_some() || self.deny_group.is_some()) && groups.is_none() {
            return Err(bad(
                "require_group and deny_group need group_type and group_search",
            ));
        }
        if !(1..=64).contains(&self.pool_size) {
            return Err(bad("pool_size: between 1 and 64"));
        }
        if !(1..=64).contains(&self.nested_group_depth) {
            return Err(bad("nested_group_depth: between 1 and 64"));
        }
        Ok(Settings {
            servers,
            bind_dn: self.bind_dn,
            bind_password: self.bind_password,
            start_tls: self.start_tls,
            ca_file: self.ca_file,
            timeout,
            user_dn_template: self.user_dn_template,
            user_search,
            attr_map: self.user_attr_map,
            groups,
            require_group: self.require_group,
            deny_group: self.deny_group,
            pool_size: self.pool_size,
            depth: self.nested_group_depth,
            group_cache: Duration::from_secs(self.group_cache_seconds.min(3600)),
        })
    }
}
