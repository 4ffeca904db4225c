//! The `ldap` authenticator: binds users against LDAP directories
//! (OpenLDAP, Active Directory, 389-ds) with the settings of the
//! automation platform's LDAP authenticator.
//!
//! A login: refuse an empty password; find the user's DN (from
//! `user_dn_template`, or by searching with the service account — every
//! `user_search` is run and a user found more than once cannot log in);
//! bind as the user on a separate connection to check the password; read
//! the user's attributes and groups (every `group_type`, nested ones
//! transitively with a depth limit and cycle protection); apply
//! `require_group` / `deny_group`. `%(user)s` is escaped per RFC 4515 in
//! filters and RFC 4514 in DNs. Usernames are case-insensitive: the identity
//! carries them lowercased.
//!
//! TLS (`ldaps://` or `start_tls`) trusts the system's roots; `ca_file`
//! (PEM) adds its certificates to them, as `ca_file` does everywhere in
//! gatehouse (before this version it replaced them).

mod conn;
mod settings;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Context, Flow, Identity, LoginStep, PasswordLogin, Plugin,
    PluginConfig, PluginError, async_trait,
};
use ldap3::{Ldap, Scope, SearchEntry, dn_escape, ldap_escape};

use conn::{Connector, INVALID_CREDENTIALS};
use settings::{GroupKind, RawSettings, Search, Settings, USER};

/// The plugin: one authenticator type, `ldap`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LdapPlugin;

impl Plugin for LdapPlugin {
    fn name(&self) -> &str {
        "ldap"
    }

    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        vec![Box::new(LdapFactory)]
    }
}

/// Builds `ldap` authenticators.
#[derive(Clone, Copy, Debug, Default)]
pub struct LdapFactory;

impl AuthenticatorFactory for LdapFactory {
    fn type_name(&self) -> &str {
        "ldap"
    }

    fn flow(&self) -> Flow {
        Flow::Password
    }

    fn config_schema(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "required": ["server_uri"],
            "properties": {
                "server_uri": {"type": ["string", "array"], "description": "ldap:// or ldaps:// URI of the directory; several (a list, or space/comma separated) are tried in order"},
                "bind_dn": {"type": "string", "description": "DN the service connection binds as for searches; empty: anonymous"},
                "bind_password": {"type": "string", "description": "the password of bind_dn"},
                "start_tls": {"type": "boolean", "description": "upgrade ldap:// connections with StartTLS (default false)"},
                "ca_file": {"type": "string", "description": "a PEM bundle of CA roots for the directory's certificate (default: the system's)"},
                "connection_options": {"type": "object", "description": "OPT_NETWORK_TIMEOUT (seconds, at most 300) and OPT_REFERRALS (must be 0: referrals are not chased)"},
                "user_dn_template": {"type": "string", "description": "the user's DN with %(user)s for the username (binds directly, no search); or user_search"},
                "user_search": {"type": "array", "description": "[base, scope, filter] with %(user)s in the filter (scope SCOPE_BASE, SCOPE_ONELEVEL or SCOPE_SUBTREE), or a list of them tried in order; or user_dn_template"},
                "user_attr_map": {"type": "object", "description": "identity field (first_name, last_name, email) to LDAP attribute"},
                "group_type": {"type": "string", "description": "how memberships are read: PosixGroupType, MemberDNGroupType, GroupOfNamesType, GroupOfUniqueNamesType, ActiveDirectoryGroupType, OrganizationalRoleGroupType, or Nested… of the DN-based ones"},
                "group_type_params": {"type": "object", "description": "name_attr and member_attr overriding the group type's attributes (member_attr not for PosixGroupType)"},
                "group_search": {"type": "array", "description": "[base, scope, filter] where groups are searched; required with group_type"},
                "require_group": {"type": "string", "description": "DN of a group the user must be a member of to log in"},
                "deny_group": {"type": "string", "description": "DN of a group whose members may not log in"},
                "pool_size": {"type": "integer", "description": "bound service connections kept for searches (default 4)"},
                "nested_group_depth": {"type": "integer", "description": "how deep Nested… group types follow groups in groups (default 10)"},
                "group_cache_seconds": {"type": "integer", "description": "seconds the parents of a group are remembered (Nested… types; a user's direct memberships are always read fresh), at most 3600; 0: no cache; default 30"}
            }
        })
    }

    fn secret_settings(&self) -> &[&str] {
        &["bind_password"]
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        let mut raw: RawSettings = config.parse()?;
        if let Some(ca) = raw.ca_file.as_mut() {
            *ca = config.context.resolve_path(&*ca).display().to_string();
        }
        let settings = raw.resolve()?;
        let connector = Connector::new(&settings)?;
        Ok(Arc::new(LdapAuthenticator {
            settings,
            connector,
            parents: Mutex::new(HashMap::new()),
        }))
    }
}

struct LdapAuthenticator {
    settings: Settings,
    connector: Connector,
    /// group DN (lowercased) → (when read, the groups holding it)
    parents: Mutex<ParentCache>,
}

/// A group: its DN and its name.
type GroupRef = (String, String);

/// Parents of groups, by lowercased DN, with the time they were read.
type ParentCache = HashMap<String, (Instant, Vec<GroupRef>)>;

/// Prefix of failures of an operation on an open connection (as opposed
/// to no server answering, or the service account being refused).
const OP_FAILED: &str = "LDAP operation failed: ";

fn unavailable(e: ldap3::LdapError) -> PluginError {
    PluginError::Unavailable(format!("{OP_FAILED}{e}"))
}

fn first<'a>(entry: &'a SearchEntry, attr: &str) -> Option<&'a String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
}

fn dn_key(dn: &str) -> String {
    dn.to_lowercase()
}

impl LdapAuthenticator {
    /// Runs a search on a connection; results as entries.
    async fn search(
        ldap: &mut Ldap,
        s: &Search,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, PluginError> {
        let r = ldap
            .search(&s.base, s.scope, filter, attrs.to_vec())
            .await
            .map_err(unavailable)?;
        match r.1.rc {
            0 => Ok(r.0.into_iter().map(SearchEntry::construct).collect()),
            32 => Ok(Vec::new()), // no such object: the base is not visible
            rc => Err(PluginError::Unavailable(format!(
                "LDAP search failed: result {rc} {}",
                r.1.text
            ))),
        }
    }

    /// A connection to search with: the pooled service account, or (with a
    /// DN template and no service account) the user's own bound connection.
    async fn service(&self) -> Result<Option<Ldap>, PluginError> {
        if self.settings.bind_dn.is_empty() {
            return Ok(None);
        }
        self.connector
            .service(&self.settings.bind_dn, &self.settings.bind_password)
            .await
            .map(Some)
    }

    /// The user's entry: from the template (DN only; attributes are read
    /// after the bind), else the one entry every search found, with its
    /// attributes. `Ok(None)`: unknown user (or found more than once).
    async fn find_user(
        &self,
        ctx: &Context,
        searcher: Option<&mut Ldap>,
        username: &str,
    ) -> Result<Option<SearchEntry>, PluginError> {
        if let Some(t) = &self.settings.user_dn_template {
            return Ok(Some(SearchEntry {
                dn: t.replace(USER, &dn_escape(username)),
                attrs: HashMap::new(),
                bin_attrs: HashMap::new(),
            }));
        }
        // Settings guarantee a service account whenever user_search is used.
        let searcher =
            searcher.ok_or_else(|| PluginError::Internal("user_search without a service account".into()))?;
        let escaped = ldap_escape(username);
        let mut found: Vec<SearchEntry> = Vec::new();
        for s in &self.settings.user_search {
            let filter = s.filter.replace(USER, &escaped);
            for e in Self::search(searcher, s, &filter, &["*"]).await? {
                if !found.iter().any(|d| dn_key(&d.dn) == dn_key(&e.dn)) {
                    found.push(e);
                }
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => {
                ctx.warn(&format!(
                    "user {username:?} was found {n} times by user_search; refusing the login"
                ));
                Ok(None)
            }
        }
    }

    fn cached_parents(&self, group_dn: &str) -> Option<Vec<GroupRef>> {
        if self.settings.group_cache.is_zero() {
            return None;
        }
        let cache = self.parents.lock().ok()?;
        let (at, parents) = cache.get(&dn_key(group_dn))?;
        (at.elapsed() < self.settings.group_cache).then(|| parents.clone())
    }

    /// Records, for each asked group, which of the found groups hold it.
    fn remember_parents(
        &self,
        asked: &[String],
        found: &[SearchEntry],
        member_attr: &str,
        name_of: &dyn Fn(&SearchEntry) -> String,
    ) {
        if self.settings.group_cache.is_zero() {
            return;
        }
        let Ok(mut cache) = self.parents.lock() else {
            return;
        };
        if cache.len() > 10_000 {
            cache.clear();
        }
        let now = Instant::now();
        for child in asked {
            let key = dn_key(child);
            let parents: Vec<(String, String)> = found
                .iter()
                .filter(|e| {
                    e.attrs
                        .iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case(member_attr))
                        .flat_map(|(_, v)| v.iter())
                        .any(|m| dn_key(m) == key)
                })
                .map(|e| (e.dn.clone(), name_of(e)))
                .collect();
            cache.insert(key, (now, parents));
        }
    }

    /// Groups of a user: DNs and names.
    async fn groups(
        &self,
        ldap: &mut Ldap,
        user_dn: &str,
        entry: &SearchEntry,
    ) -> Result<Vec<(String, String)>, PluginError> {
        let Some(g) = &self.settings.groups else {
            return Ok(Vec::new());
        };
        let attrs = [g.name_attr.as_str(), g.member_attr.as_str()];
        let name_of = |e: &SearchEntry| first(e, &g.name_attr).cloned().unwrap_or_default();
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        match g.kind {
            GroupKind::Posix => {
                let mut parts = Vec::new();
                if let Some(uid) = first(entry, "uid") {
                    parts.push(format!("(memberUid={})", ldap_escape(uid.as_str())));
                }
                if let Some(gid) = first(entry, "gidNumber") {
                    parts.push(format!("(gidNumber={})", ldap_escape(gid.as_str())));
                }
                if parts.is_empty() {
                    return Ok(out);
                }
                let filter = format!("(&{}(|{}))", g.search.filter, parts.concat());
                for e in Self::search(ldap, &g.search, &filter, &attrs).await? {
                    if seen.insert(dn_key(&e.dn)) {
                        out.push((e.dn.clone(), name_of(&e)));
                    }
                }
            }
            GroupKind::MemberDn => {
                // Breadth-first: groups holding the user (always read
                // fresh), then (nested) groups holding those groups, with a
                // depth limit; `seen` stops cycles. The parents of a group
                // come from a short-lived cache when it is on.
                let mut frontier = vec![user_dn.to_owned()];
                let depth = if g.nested { self.settings.depth } else { 1 };
                for level in 0..depth {
                    if frontier.is_empty() {
                        break;
                    }
                    let mut next = Vec::new();
                    let mut ask = Vec::new();
                    for dn in frontier {
                        match (level > 0).then(|| self.cached_parents(&dn)).flatten() {
                            Some(parents) => {
                                for (pdn, name) in parents {
                                    if seen.insert(dn_key(&pdn)) {
                                        out.push((pdn.clone(), name));
                                        next.push(pdn);
                                    }
                                }
                            }
                            None => ask.push(dn),
                        }
                    }
                    for chunk in ask.chunks(50) {
                        let ors: String = chunk
                            .iter()
                            .map(|dn| format!("({}={})", g.member_attr, ldap_escape(dn.as_str())))
                            .collect();
                        let filter = format!("(&{}(|{ors}))", g.search.filter);
                        let found = Self::search(ldap, &g.search, &filter, &attrs).await?;
                        if level > 0 {
                            self.remember_parents(chunk, &found, &g.member_attr, &name_of);
                        }
                        for e in found {
                            if seen.insert(dn_key(&e.dn)) {
                                out.push((e.dn.clone(), name_of(&e)));
                                next.push(e.dn);
                            }
                        }
                    }
                    frontier = next;
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Authenticator for LdapAuthenticator {
    async fn login(&self, ctx: &Context, req: PasswordLogin) -> Result<LoginStep, PluginError> {
        match self.attempt(ctx, &req).await {
            // A pooled connection the server closed (idle timeout, restart)
            // fails the first operation: retry once on fresh connections.
            Err(PluginError::Unavailable(why)) if why.starts_with(OP_FAILED) => {
                self.connector.drop_pools();
                ctx.debug(&format!("retrying on fresh connections after: {why}"));
                self.attempt(ctx, &req).await
            }
            other => other,
        }
    }
}

impl LdapAuthenticator {
    async fn attempt(&self, ctx: &Context, req: &PasswordLogin) -> Result<LoginStep, PluginError> {
        // An empty password would be an unauthenticated bind, which many
        // servers accept as success: never send one.
        if req.password.is_empty() || req.username.is_empty() || req.username.contains('\0') {
            return Err(PluginError::InvalidCredentials);
        }
        let username = req.username.as_str();
        let mut service = self.service().await?;
        let found = self.find_user(ctx, service.as_mut(), username).await?;
        let Some(mut entry) = found else {
            if let Some(s) = service {
                self.connector.give_back(s);
            }
            return Err(PluginError::InvalidCredentials);
        };
        let dn = entry.dn.clone();

        // Check the password with a bind of its own; with a service account
        // the groups are read at the same time (and dropped if the bind fails).
        let mut bind_conn = self.connector.for_bind().await?;
        let bind = async {
            bind_conn
                .simple_bind(&dn, req.password.expose())
                .await
                .map_err(unavailable)
        };
        let (bind, early_groups) = match &mut service {
            Some(s) if !entry.attrs.is_empty() => {
                let (b, g) = tokio::join!(bind, self.groups(s, &dn, &entry));
                (b?, Some(g?))
            }
            _ => (bind.await?, None),
        };
        match bind.rc {
            0 => {}
            INVALID_CREDENTIALS | 32 | 34 => {
                self.connector.give_back_bind(bind_conn);
                if let Some(s) = service {
                    self.connector.give_back(s);
                }
                return Err(PluginError::InvalidCredentials);
            }
            rc => {
                return Err(PluginError::Unavailable(format!(
                    "user bind failed: result {rc} {}",
                    bind.text
                )));
            }
        }

        let groups = match early_groups {
            Some(g) => g,
            None => {
                // DN template: read the entry (and groups) with the service
                // account when there is one, else as the user.
                let reader: &mut Ldap = match &mut service {
                    Some(s) => s,
                    None => &mut bind_conn,
                };
                let base = Search {
                    base: dn.clone(),
                    scope: Scope::Base,
                    filter: "(objectClass=*)".into(),
                };
                if let Some(e) = Self::search(reader, &base, "(objectClass=*)", &["*"])
                    .await?
                    .into_iter()
                    .next()
                {
                    entry = e;
                }
                self.groups(reader, &dn, &entry).await?
            }
        };
        self.connector.give_back_bind(bind_conn);
        if let Some(s) = service {
            self.connector.give_back(s);
        }

        let in_group = |g: &str| groups.iter().any(|(d, _)| dn_key(d) == dn_key(g));
        if let Some(req_g) = &self.settings.require_group
            && !in_group(req_g)
        {
            return Err(PluginError::Denied("not a member of the required group".into()));
        }
        if let Some(deny) = &self.settings.deny_group
            && in_group(deny)
        {
            return Err(PluginError::Denied("member of a denied group".into()));
        }

        let lower = username.to_lowercase();
        let mut id = Identity::new(lower.clone(), lower).case_insensitive(true);
        let attr = |k: &str, default: &str| -> Option<String> {
            let name = self.settings.attr_map.get(k).map_or(default, String::as_str);
            first(&entry, name).cloned()
        };
        id.first_name = attr("first_name", "givenName");
        id.last_name = attr("last_name", "sn");
        id.email = attr("email", "mail");
        let mut names: Vec<String> = Vec::new();
        for (gdn, name) in &groups {
            id.groups.push(gdn.clone());
            if !name.is_empty() {
                names.push(name.clone());
            }
        }
        id.groups.extend(names.iter().cloned());
        id.attributes.insert("dn".into(), vec![dn]);
        if !names.is_empty() {
            id.attributes.insert("ldap_group_names".into(), names);
        }
        for (k, v) in entry.attrs {
            if !k.eq_ignore_ascii_case("userPassword") {
                id.attributes.entry(k).or_insert(v);
            }
        }
        Ok(LoginStep::Authenticated(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(settings: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
        LdapFactory.build(PluginConfig::new("t", settings))
    }

    fn misconfigured(settings: serde_json::Value, needle: &str) {
        match build(settings.clone()) {
            Err(PluginError::Misconfigured(m)) => assert!(m.contains(needle), "{settings}: {m}"),
            Err(e) => panic!("{settings}: {e:?}"),
            Ok(_) => panic!("{settings}: accepted"),
        }
    }

    #[test]
    fn setting_errors_are_caught_at_build() {
        let ok = serde_json::json!({"server_uri": "ldap://127.0.0.1:389", "user_dn_template": "uid=%(user)s,dc=x"});
        assert!(build(ok).is_ok());
        misconfigured(
            serde_json::json!({"server_uri": "http://x", "user_dn_template": "uid=%(user)s"}),
            "ldap://",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h:99999", "user_dn_template": "uid=%(user)s"}),
            "port",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h", "user_dn_template": "uid=x"}),
            "%(user)s",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h"}),
            "user_dn_template or user_search",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h", "bind_dn": "cn=r", "bind_password": "p",
                "user_search": ["dc=x", "SCOPE_SIDEWAYS", "(uid=%(user)s)"]}),
            "scope",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h", "bind_dn": "cn=r", "bind_password": "p",
                "user_search": ["dc=x", "SCOPE_SUBTREE", "(uid=%(user)s"]}),
            "invalid LDAP filter",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h", "bind_dn": "cn=r", "user_dn_template": "uid=%(user)s"}),
            "bind_password",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h", "user_dn_template": "uid=%(user)s", "group_type": "WeirdType",
                "group_search": ["dc=x", "SCOPE_SUBTREE", "(objectClass=*)"]}),
            "group_type",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h", "user_dn_template": "uid=%(user)s", "require_group": "cn=g"}),
            "group_type",
        );
        misconfigured(
            serde_json::json!({"server_uri": "ldap://h", "user_dn_template": "uid=%(user)s",
                "connection_options": {"OPT_REFERRALS": 1}}),
            "referral",
        );
        // the platform's uppercase names paste in
        let upper = serde_json::json!({
            "SERVER_URI": ["ldap://a:389", "ldap://b:389"], "BIND_DN": "cn=r", "BIND_PASSWORD": "p",
            "USER_SEARCH": [["ou=a,dc=x", "SCOPE_SUBTREE", "(uid=%(user)s)"], ["ou=b,dc=x", "SCOPE_ONELEVEL", "(cn=%(user)s)"]],
            "USER_ATTR_MAP": {"first_name": "givenName", "email": "mail"},
            "GROUP_TYPE": "NestedGroupOfNamesType", "GROUP_TYPE_PARAMS": {"name_attr": "cn"},
            "GROUP_SEARCH": ["ou=groups,dc=x", "SCOPE_SUBTREE", "(objectClass=groupOfNames)"],
            "REQUIRE_GROUP": "cn=staff,ou=groups,dc=x", "CONNECTION_OPTIONS": {"OPT_REFERRALS": 0, "OPT_NETWORK_TIMEOUT": 3}
        });
        assert!(build(upper).is_ok());
    }

    #[test]
    fn empty_passwords_never_reach_the_server() {
        // No server listens here: an attempt to connect would be Unavailable.
        let a = build(
            serde_json::json!({"server_uri": "ldap://127.0.0.1:9", "user_dn_template": "uid=%(user)s,dc=x"}),
        )
        .unwrap();
        let ctx = Context::new("t");
        let r = gatehouse_sdk::block_on(a.login(&ctx, PasswordLogin::new("alice", "")));
        assert!(matches!(r, Err(PluginError::InvalidCredentials)), "{r:?}");
    }
}
