//! Configuration: TOML read in two stages.
//!
//! Stage one (`raw`) deserializes every file with `deny_unknown_fields`
//! and keeps spans; stage two (this module) checks values and builds the
//! resolved [`Config`], in which an invalid state cannot be represented.
//! Every error names a file, a line and a key, and all errors of a file set
//! are reported together.

mod connections;
mod duration;
pub mod host;
pub mod log;
// `http` would shadow the `http` crate in this module.
#[path = "http.rs"]
mod http_table;
pub(crate) mod raw;
pub mod secrets;
mod source;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_sdk::proto::ConfigErrorEntry;
use toml::Spanned;

pub use crate::api::check::routes::{PathMatch, RequiredTeam, Route};
pub use connections::{ConnectionLimits, ForwardAuthConfig};
pub use duration::parse_duration;
pub use host::{HostConfig, HostGroupKinds, IdRange};
pub use http_table::HttpConfig;
pub use source::Location;

use raw::{RawAuthenticator, RawFile, RawVerifier};
use source::SourceFile;

/// Where the daemon looks for its configuration when none is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/gatehouse/gatehouse.toml";
/// The default socket path.
pub const DEFAULT_SOCKET: &str = "/run/gatehouse/gatehouse.sock";
/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gatehouse";
/// The default largest request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest name an authenticator or verifier may have.
pub const MAX_NAME_LEN: usize = 512;

/// A configuration that failed to load: every problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigErrorEntry>);

impl ConfigErrors {
    /// One error.
    pub fn one(entry: ConfigErrorEntry) -> Self {
        Self(vec![entry])
    }

    /// A short summary for logs and `last_reload_error`.
    pub fn summary(&self) -> String {
        let mut s = self
            .0
            .iter()
            .take(3)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if self.0.len() > 3 {
            s.push_str(&format!("; and {} more", self.0.len() - 3));
        }
        s
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The resolved configuration of one generation.
#[derive(Clone, Debug)]
pub struct Config {
    /// The main file.
    pub main_file: PathBuf,
    /// `[daemon]`.
    pub daemon: DaemonSettings,
    /// `[access]`.
    pub access: AccessPolicy,
    /// `[store]`.
    pub store: StoreSettings,
    /// `[lockout]`.
    pub lockout: LockoutSettings,
    /// `[http]`: every plugin's HTTP client settings.
    pub http: HttpConfig,
    /// `[log]`: log format and the audit trail's destination.
    pub log: log::LogSettings,
    /// `[forward_auth]`: the TCP listener for `/v1/check`, when configured.
    pub forward_auth: Option<ForwardAuthConfig>,
    /// `[issuer]`: service access tokens, when configured.
    pub issuer: Option<crate::issuer::IssuerConfig>,
    /// `[host]`: users and groups for the host's name service, when configured.
    pub host: Option<HostConfig>,
    /// `[[authenticators]]`, in login order.
    pub authenticators: Vec<AuthenticatorSpec>,
    /// `[[verifiers]]`.
    pub verifiers: Vec<VerifierSpec>,
    /// `[[routes]]`, in order (the first match decides).
    pub routes: Vec<Route>,
    /// Every configuration file read (main file first).
    pub files: Vec<PathBuf>,
    /// Absolute include patterns: a new file matching one triggers a reload.
    pub include_patterns: Vec<String>,
    /// Where `*_credential` secrets are read from.
    pub credentials: secrets::Credentials,
    /// Problems that do not stop a load (an include pattern that matches
    /// no file): logged at every load, printed by `--check-config`.
    pub warnings: Vec<ConfigErrorEntry>,
}

/// `[daemon]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSettings {
    /// The socket path.
    pub socket: PathBuf,
    /// The socket file's permission bits.
    pub socket_mode: u32,
    /// Where the store and caches live.
    pub state_dir: PathBuf,
    /// Directories searched for plugin libraries.
    pub plugin_dirs: Vec<PathBuf>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// How long file changes settle before a reload.
    pub reload_debounce: Duration,
    /// Default log filter (`RUST_LOG` overrides).
    pub log_level: String,
    /// Threads serving requests; `None`: one per CPU.
    pub worker_threads: Option<usize>,
    /// The base of derived callback URLs (`{public_url}/callback/{name}`),
    /// without a trailing slash.
    pub public_url: Option<String>,
    /// Connection caps and timeouts.
    pub connections: ConnectionLimits,
}

/// `[access]`: which peers may call what, by their socket credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Uids allowed on admin endpoints.
    pub admin_uids: Vec<u32>,
    /// Gids allowed on admin endpoints.
    pub admin_gids: Vec<u32>,
    /// Uids allowed on client endpoints (empty with `client_gids` empty: anyone).
    pub client_uids: Vec<u32>,
    /// Gids allowed on client endpoints.
    pub client_gids: Vec<u32>,
}

/// `[store]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// Which store.
    pub url: StoreUrl,
}

/// Checks an absolute `https://` (or `http://`) URL with a host, as the
/// base of callback URLs must be.
pub fn absolute_url(url: &str) -> Result<&str, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an absolute http(s) URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not an absolute http(s) URL with a host"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    Ok(url)
}

/// A store location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several hosts.
    Postgres(crate::store::PostgresSettings),
}

/// `[lockout]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Failures per (authenticator, username) within `window` before lockout.
    pub max_failures: u32,
    /// Failures per peer uid within `window` before its logins are
    /// delayed (never refused).
    pub max_failures_per_peer: u32,
    /// Failures per (peer uid, `remote_addr`) within `window` before
    /// logins from that address are refused.
    pub max_failures_per_address: u32,
    /// The longest delay a peer over `max_failures_per_peer` waits.
    pub max_delay: Duration,
    /// The counting window (also the lockout duration).
    pub window: Duration,
}

/// One `[[authenticators]]` entry. Its `Debug` shows setting names only.
#[derive(Clone)]
pub struct AuthenticatorSpec {
    /// Unique name.
    pub name: String,
    /// `type`.
    pub kind: String,
    /// Whether it takes logins.
    pub enabled: bool,
    /// Position in the login order.
    pub order: i64,
    /// Create organizations and teams that maps name.
    pub create_objects: bool,
    /// Remove memberships the maps no longer grant.
    pub remove_users: bool,
    /// Legacy authenticators whose users move here on first login.
    pub auto_migrate_users_from: Vec<String>,
    /// Offline login: how long after the authenticator last accepted a
    /// user's password that password still logs in while every backend is
    /// unreachable (`None`: never; see [`crate::offline`]).
    pub offline_max_age: Option<Duration>,
    /// An explicit plugin library.
    pub library: Option<PathBuf>,
    /// Where the plugin runs.
    pub isolation: Isolation,
    /// Settings merged with `additional`, as JSON.
    pub settings: serde_json::Value,
    /// Where the entry is.
    pub location: Location,
    /// Where its settings are.
    pub settings_location: Location,
    /// The line of each setting key (`settings` and `additional`).
    pub setting_lines: std::collections::BTreeMap<String, u32>,
    /// Its maps, in order.
    pub maps: Vec<crate::maps::Map>,
}

impl std::fmt::Debug for AuthenticatorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatorSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("enabled", &self.enabled)
            .field("order", &self.order)
            .field("library", &self.library)
            .field("isolation", &self.isolation)
            .field("settings", &gatehouse_sdk::SettingNames(&self.settings))
            .field("location", &self.location)
            .field("maps", &self.maps.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for VerifierSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("library", &self.library)
            .field("isolation", &self.isolation)
            .field("settings", &gatehouse_sdk::SettingNames(&self.settings))
            .field("subjects", &self.subjects)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// One `[[verifiers]]` entry. Its `Debug` shows setting names only.
#[derive(Clone)]
pub struct VerifierSpec {
    /// Unique name.
    pub name: String,
    /// `type`.
    pub kind: String,
    /// An explicit plugin library.
    pub library: Option<PathBuf>,
    /// Where the plugin runs.
    pub isolation: Isolation,
    /// Settings as JSON.
    pub settings: serde_json::Value,
    /// `[verifiers.subjects]`: for each issuer (`iss`, without a trailing
    /// `/`), the authenticator whose identities its token subjects are. A
    /// subject names a user only through that authenticator's link
    /// `(authenticator, uid = sub) → user` (for a `local` authenticator:
    /// the account of that username); issuers not listed vouch for no user.
    pub subjects: std::collections::BTreeMap<String, String>,
    /// Where the entry is.
    pub location: Location,
    /// Where its settings are.
    pub settings_location: Location,
    /// The line of each setting key.
    pub setting_lines: std::collections::BTreeMap<String, u32>,
}

/// Where a plugin runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// In the daemon's process.
    #[default]
    InProcess,
    /// In a child `gatehoused plugin-host` process.
    Process,
}

/// Loads and resolves the configuration rooted at `path`, reading
/// `*_credential` secrets from `$CREDENTIALS_DIRECTORY`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &secrets::Credentials::FromEnvironment)
}

/// [`load`], with `*_credential` secrets of the daemon's own tables
/// (`[store]`, `[issuer]`) read as `credentials` says (a check outside the
/// unit leaves them unchecked, with a note, rather than failing).
pub fn load_with(path: &Path, credentials: &secrets::Credentials) -> Result<Config, ConfigErrors> {
    let main_file = absolute(path);
    let main = read_source(&main_file)?;
    let (main_raw, mut errors) = parse(&main);
    let Some(main_raw) = main_raw else {
        return Err(ConfigErrors(errors));
    };
    let base = main_file.parent().unwrap_or(Path::new("/")).to_owned();

    let include: Vec<String> = main_raw
        .daemon
        .as_ref()
        .map(|d| d.get_ref().include.clone())
        .unwrap_or_default();
    let mut patterns = Vec::new();
    let mut drop_ins: Vec<PathBuf> = Vec::new();
    let mut warnings = Vec::new();
    for pattern in &include {
        let abs = join(&base, pattern).display().to_string();
        match glob::glob(&abs) {
            Ok(paths) => {
                let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
                found.sort();
                if found.is_empty() {
                    // A literal path names a file that must exist; a
                    // pattern may match nothing yet (an empty conf.d).
                    let literal = !pattern.contains(['*', '?', '[']);
                    let entry = Location::file(&main_file).error(
                        "daemon.include",
                        if literal {
                            format!("{pattern:?}: no such file ({abs})")
                        } else {
                            format!("{pattern:?} matches no file ({abs})")
                        },
                    );
                    if literal {
                        errors.push(entry);
                    } else {
                        warnings.push(entry);
                    }
                }
                drop_ins.extend(found);
            }
            Err(e) => errors.push(
                Location::file(&main_file).error("daemon.include", format!("bad pattern {pattern:?}: {e}")),
            ),
        }
        patterns.push(abs);
    }
    let mut seen = BTreeSet::new();
    drop_ins.retain(|p| p != &main_file && seen.insert(p.clone()));

    let mut sources = vec![(main, main_raw)];
    for p in &drop_ins {
        match read_source(p) {
            Ok(src) => {
                let (raw, e) = parse(&src);
                errors.extend(e);
                if let Some(raw) = raw {
                    sources.push((src, raw));
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    let mut config = resolve(&main_file, &base, sources, errors, credentials)?;
    config.include_patterns = patterns;
    warnings.append(&mut config.warnings);
    config.warnings = warnings;
    Ok(config)
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        clean(path)
    } else {
        std::env::current_dir()
            .map(|d| clean(&d.join(path)))
            .unwrap_or_else(|_| path.to_owned())
    }
}

/// `dir.join(rel)` with `.` and `..` removed lexically (the socket path must
/// stay short, and logs should show the real location).
pub(crate) fn join(dir: &Path, rel: impl AsRef<Path>) -> PathBuf {
    clean(&dir.join(rel))
}

fn clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn read_source(path: &Path) -> Result<SourceFile, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SourceFile {
            path: path.to_owned(),
            text,
        }),
        Err(e) => Err(ConfigErrors::one(ConfigErrorEntry {
            file: path.display().to_string(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })),
    }
}

/// The most stage-one (type and unknown-key) errors reported per file.
const MAX_ERRORS_PER_FILE: usize = 100;

/// Stage one for one file. A TOML syntax error stops it (the document has
/// no reliable shape after one); a type error or an unknown key does not:
/// the offending entry is left out and the file read again, so every such
/// error of the file is reported in one run, each at its own key. The
/// returned file (without the bad entries) still goes through stage two so
/// its value errors are reported too.
fn parse(src: &SourceFile) -> (Option<RawFile>, Vec<ConfigErrorEntry>) {
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    let entry = |e: &toml::de::Error| {
        let span = e.span();
        ConfigErrorEntry {
            file: src.path.display().to_string(),
            line: span.as_ref().map(|s| src.line_of(s.start)),
            key: span.as_ref().and_then(|s| src.key_at(s)),
            // The message may quote the value (`invalid type: integer
            // `8675309123``): values go, key names stay.
            message: gatehouse_sdk::redact_input_values(e.message().trim()),
        }
    };
    let mut doc = match toml::de::DeTable::parse(&src.text) {
        Ok(doc) => doc,
        Err(e) => return (None, vec![entry(&e)]),
    };
    let mut errors = Vec::new();
    while errors.len() < MAX_ERRORS_PER_FILE {
        match RawFile::deserialize(doc.clone().into_deserializer()) {
            Ok(raw) => return (Some(raw), errors),
            Err(e) => {
                errors.push(entry(&e));
                let removed = e.span().is_some_and(|span| {
                    let whole = doc.span();
                    span != whole && remove_entry_at(doc.get_mut(), &span)
                });
                if !removed {
                    return (None, errors);
                }
            }
        }
    }
    (None, errors)
}

/// Removes the innermost entry (a key with its value, or an array
/// element) whose key or value covers `span`. False when none does.
/// (A table's own span may be its header only, so every entry is
/// searched, not only those that cover the span.)
fn remove_entry_at(table: &mut toml::de::DeTable<'_>, span: &std::ops::Range<usize>) -> bool {
    let covers = |outer: std::ops::Range<usize>| outer.start <= span.start && span.end <= outer.end;
    let mut hit = None;
    for (key, value) in table.iter_mut() {
        if remove_within(value.get_mut(), span) {
            return true;
        }
        if hit.is_none() && (covers(key.span()) || covers(value.span())) {
            hit = Some(key.clone());
        }
    }
    hit.is_some_and(|key| table.remove(&key).is_some())
}

/// Removes the entry at `span` inside a table or array value.
fn remove_within(value: &mut toml::de::DeValue<'_>, span: &std::ops::Range<usize>) -> bool {
    let covers = |outer: std::ops::Range<usize>| outer.start <= span.start && span.end <= outer.end;
    match value {
        toml::de::DeValue::Table(t) => remove_entry_at(t, span),
        toml::de::DeValue::Array(items) => {
            let mut hit = None;
            for (i, item) in items.iter_mut().enumerate() {
                if remove_within(item.get_mut(), span) {
                    return true;
                }
                if hit.is_none() && covers(item.span()) {
                    hit = Some(i);
                }
            }
            let Some(pos) = hit else {
                return false;
            };
            let mut kept = toml::de::DeArray::new();
            for (i, item) in items.iter().enumerate() {
                if i != pos {
                    kept.push(item.clone());
                }
            }
            *items = kept;
            true
        }
        _ => false,
    }
}

/// Collects errors while resolving one file. The resolvers of each table
/// (here, `maps::config`, `api::check::routes`) record every problem they
/// find, so all errors of a file set are reported together.
pub(crate) struct Resolver<'a> {
    errors: Vec<ConfigErrorEntry>,
    /// Problems that do not stop the load (printed by `--check-config`).
    notes: Vec<ConfigErrorEntry>,
    pub(crate) src: &'a SourceFile,
    /// Where `*_credential` secrets of the daemon's own tables come from.
    pub(crate) credentials: &'a secrets::Credentials,
}

impl Resolver<'_> {
    /// Records an error at `span`. Returns `None` so a resolver that has
    /// no value to give can `return r.err(..)`; as a statement, write
    /// `r.err::<()>(..)`.
    pub(crate) fn err<T>(
        &mut self,
        span: &std::ops::Range<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> Option<T> {
        self.errors.push(self.src.at(span).error(key, msg));
        None
    }

    /// Records an error found elsewhere (another file the table names).
    pub(crate) fn push(&mut self, entry: ConfigErrorEntry) {
        self.errors.push(entry);
    }

    /// Reads the secrets of one of the daemon's own tables as plugin
    /// secrets are read ([`secrets::resolve_secrets`]: each of `keys`
    /// inline, `*_file` or `*_credential`) from the `given` settings:
    /// errors are recorded, and a credential that a check outside the unit
    /// cannot read is noted. The values by key, `None` when a credential
    /// was left unchecked.
    pub(crate) fn daemon_secrets(
        &mut self,
        table: &str,
        keys: &[&str],
        given: &[(&str, Option<&Spanned<String>>)],
        table_span: &std::ops::Range<usize>,
    ) -> Option<serde_json::Value> {
        let mut settings = serde_json::Map::new();
        let mut span = table_span.clone();
        for (key, value) in given {
            if let Some(v) = value {
                span = v.span();
                settings.insert((*key).to_owned(), serde_json::Value::String(v.get_ref().clone()));
            }
        }
        let mut settings = serde_json::Value::Object(settings);
        let credentials = secrets::credential_keys(&settings);
        let (mut errors, mut read) = (Vec::new(), Vec::new());
        let at = self.src.at(&span);
        let checked = secrets::resolve_secrets(
            &mut settings,
            keys,
            &at,
            table,
            self.credentials,
            &mut read,
            &mut errors,
        );
        self.errors.extend(errors);
        if checked {
            return Some(settings);
        }
        for key in credentials {
            self.notes
                .push(at.error(format!("{table}.{key}"), secrets::NOT_CHECKED));
        }
        None
    }

    /// How many errors are recorded so far.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }
}

fn resolve(
    main_file: &Path,
    base: &Path,
    sources: Vec<(SourceFile, RawFile)>,
    stage_one: Vec<ConfigErrorEntry>,
    credentials: &secrets::Credentials,
) -> Result<Config, ConfigErrors> {
    // Entries left out by stage one are missing here: checks across
    // entries (names, references) would only report follow-on errors.
    let partial = !stage_one.is_empty();
    let mut errors = stage_one;
    let mut daemon = DaemonSettings {
        socket: PathBuf::from(DEFAULT_SOCKET),
        socket_mode: 0o660,
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        plugin_dirs: Vec::new(),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        shutdown_timeout: Duration::from_secs(10),
        reload_debounce: Duration::from_millis(200),
        log_level: "info".into(),
        worker_threads: None,
        public_url: None,
        connections: ConnectionLimits::default(),
    };
    let mut access = AccessPolicy {
        admin_uids: vec![0],
        admin_gids: Vec::new(),
        client_uids: Vec::new(),
        client_gids: Vec::new(),
    };
    let mut store = None;
    let mut lockout = LockoutSettings {
        max_failures: 5,
        max_failures_per_peer: 50,
        max_failures_per_address: 20,
        max_delay: Duration::from_secs(5),
        window: Duration::from_secs(15 * 60),
    };
    let mut http = HttpConfig::default();
    let mut log_settings = log::LogSettings::default();
    let mut forward_auth = None;
    let mut issuer = None;
    let mut host = None;
    let mut authenticators: Vec<(AuthenticatorSpec, Option<i64>)> = Vec::new();
    let mut verifiers = Vec::new();
    let mut routes: Vec<Route> = Vec::new();
    let mut files = Vec::new();
    let mut notes = Vec::new();
    // which file set each singleton table, to report duplicates
    let mut singleton_seen: Vec<(&'static str, String)> = Vec::new();

    for (idx, (src, raw)) in sources.iter().enumerate() {
        files.push(src.path.clone());
        let dir = src.path.parent().unwrap_or(base).to_owned();
        let mut r = Resolver {
            errors: Vec::new(),
            notes: Vec::new(),
            src,
            credentials,
        };
        let mut singleton = |name: &'static str, span: &std::ops::Range<usize>, r: &mut Resolver<'_>| {
            if let Some((_, other)) = singleton_seen.iter().find(|(n, _)| *n == name) {
                r.err::<()>(
                    span,
                    name,
                    format!("[{name}] is already set in {other}; it may appear in one file only"),
                );
                false
            } else {
                singleton_seen.push((name, src.path.display().to_string()));
                true
            }
        };

        if let Some(d) = &raw.daemon {
            if idx > 0 {
                r.err::<()>(
                    &d.span(),
                    "daemon",
                    "[daemon] is only allowed in the main configuration file",
                );
            } else {
                resolve_daemon(&mut r, d.get_ref(), &dir, &mut daemon);
            }
        }
        if let Some(a) = &raw.access
            && singleton("access", &a.span(), &mut r)
        {
            let a = a.get_ref();
            if let Some(u) = &a.admin_uids {
                access.admin_uids = u.clone();
            }
            access.admin_gids = a.admin_gids.clone();
            access.client_uids = a.client_uids.clone();
            access.client_gids = a.client_gids.clone();
        }
        if let Some(s) = &raw.store
            && singleton("store", &s.span(), &mut r)
        {
            store = resolve_store(&mut r, s.get_ref(), &dir);
        }
        if let Some(l) = &raw.lockout
            && singleton("lockout", &l.span(), &mut r)
        {
            resolve_lockout(&mut r, l.get_ref(), &mut lockout);
        }
        if let Some(h) = &raw.http
            && singleton("http", &h.span(), &mut r)
        {
            http = http_table::resolve(&mut r, h, &dir);
        }
        if let Some(l) = &raw.log
            && singleton("log", &l.span(), &mut r)
        {
            log_settings = log::resolve(&mut r, l.get_ref());
        }
        if let Some(f) = &raw.forward_auth
            && singleton("forward_auth", &f.span(), &mut r)
        {
            forward_auth = connections::resolve_forward_auth(&mut r, f);
        }
        if let Some(i) = &raw.issuer
            && singleton("issuer", &i.span(), &mut r)
        {
            issuer = crate::issuer::config::resolve(&mut r, i, &dir, &daemon.state_dir);
        }
        if let Some(h) = &raw.host
            && singleton("host", &h.span(), &mut r)
        {
            host = host::resolve(&mut r, h, &dir);
        }
        for route in &raw.routes {
            if let Some(rt) = crate::api::check::routes::resolve_route(&mut r, route) {
                routes.push(rt);
            }
        }
        for a in &raw.authenticators {
            if let Some(spec) = resolve_authenticator(&mut r, a, &dir) {
                authenticators.push(spec);
            }
        }
        for v in &raw.verifiers {
            if let Some(spec) = resolve_verifier(&mut r, v, &dir) {
                verifiers.push(spec);
            }
        }
        errors.extend(r.errors);
        notes.extend(r.notes);
    }

    if partial {
        return Err(ConfigErrors(errors));
    }
    // names are unique across authenticators, and across verifiers
    let mut names = BTreeSet::new();
    for (a, _) in &authenticators {
        if !names.insert(a.name.clone()) {
            errors.push(a.location.error(
                format!("authenticators[{:?}].name", a.name),
                format!("duplicate authenticator name {:?}", a.name),
            ));
        }
    }
    for (a, _) in &authenticators {
        for legacy in &a.auto_migrate_users_from {
            if legacy == &a.name {
                errors.push(a.location.error(
                    format!("authenticators[{:?}].auto_migrate_users_from", a.name),
                    "an authenticator cannot migrate users from itself",
                ));
            }
        }
    }
    let mut vnames = BTreeSet::new();
    for v in &verifiers {
        if !vnames.insert(v.name.clone()) {
            errors.push(v.location.error(
                format!("verifiers[{:?}].name", v.name),
                format!("duplicate verifier name {:?}", v.name),
            ));
        }
    }
    errors.extend(crate::api::check::routes::check_verifiers(&routes, &vnames));
    for v in &verifiers {
        for (issuer, authenticator) in &v.subjects {
            if !names.contains(authenticator) {
                errors.push(v.location.error(
                    format!("verifiers[{:?}].subjects", v.name),
                    format!("issuer {issuer:?}: no authenticator named {authenticator:?}"),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }

    // Login order: explicit `order`, else position (1-based); ties keep file order.
    for (pos, (spec, order)) in authenticators.iter_mut().enumerate() {
        spec.order = order.unwrap_or(i64::try_from(pos + 1).unwrap_or(i64::MAX));
    }
    let mut authenticators: Vec<AuthenticatorSpec> = authenticators.into_iter().map(|(s, _)| s).collect();
    authenticators.sort_by_key(|a| a.order);

    let store = store.unwrap_or_else(|| StoreSettings {
        url: StoreUrl::Sqlite(PathBuf::from("gatehouse.db")),
    });
    let store = StoreSettings {
        url: match store.url {
            StoreUrl::Sqlite(p) if p.is_relative() => StoreUrl::Sqlite(join(&daemon.state_dir, p)),
            other => other,
        },
    };

    Ok(Config {
        main_file: main_file.to_owned(),
        daemon,
        access,
        store,
        lockout,
        http,
        log: log_settings,
        forward_auth,
        issuer,
        host,
        authenticators,
        verifiers,
        routes,
        files,
        include_patterns: Vec::new(),
        credentials: credentials.clone(),
        warnings: notes,
    })
}

fn resolve_daemon(r: &mut Resolver<'_>, d: &raw::RawDaemon, dir: &Path, out: &mut DaemonSettings) {
    if let Some(s) = &d.socket {
        out.socket = join(dir, s);
    }
    if let Some(m) = &d.socket_mode {
        match u32::from_str_radix(m.get_ref().trim_start_matches("0o"), 8) {
            Ok(mode) if mode <= 0o777 => out.socket_mode = mode,
            _ => {
                r.err::<()>(
                    &m.span(),
                    "daemon.socket_mode",
                    format!("invalid mode {:?}: expected octal like \"0660\"", m.get_ref()),
                );
            }
        }
    }
    if let Some(s) = &d.state_dir {
        out.state_dir = join(dir, s);
    }
    out.plugin_dirs = d.plugin_dirs.iter().map(|p| join(dir, p)).collect();
    if let Some(b) = &d.max_body_bytes {
        match usize::try_from(*b.get_ref()) {
            Ok(n) if (1024..=64 * 1024 * 1024).contains(&n) => out.max_body_bytes = n,
            _ => {
                r.err::<()>(
                    &b.span(),
                    "daemon.max_body_bytes",
                    "must be between 1024 and 67108864",
                );
            }
        }
    }
    if let Some(t) = &d.shutdown_timeout {
        match parse_duration(t.get_ref()) {
            Ok(v) => out.shutdown_timeout = v,
            Err(e) => {
                r.err::<()>(&t.span(), "daemon.shutdown_timeout", e);
            }
        }
    }
    if let Some(t) = &d.reload_debounce {
        match parse_duration(t.get_ref()) {
            Ok(v) if v <= Duration::from_secs(10) => out.reload_debounce = v,
            Ok(_) => {
                r.err::<()>(&t.span(), "daemon.reload_debounce", "must be at most 10s");
            }
            Err(e) => {
                r.err::<()>(&t.span(), "daemon.reload_debounce", e);
            }
        }
    }
    if let Some(l) = &d.log_level {
        out.log_level = l.clone();
    }
    if let Some(u) = &d.public_url {
        match absolute_url(u.get_ref()) {
            Ok(url) => out.public_url = Some(url.trim_end_matches('/').to_owned()),
            Err(e) => {
                r.err::<()>(&u.span(), "daemon.public_url", e);
            }
        }
    }
    connections::resolve_limits(
        r,
        d.max_connections.as_ref(),
        d.max_connections_per_uid.as_ref(),
        d.request_timeout.as_ref(),
        d.idle_timeout.as_ref(),
        &mut out.connections,
    );
    if let Some(w) = &d.worker_threads {
        match usize::try_from(*w.get_ref()) {
            Ok(0) => out.worker_threads = None,
            Ok(n) if n <= 256 => out.worker_threads = Some(n),
            _ => {
                r.err::<()>(
                    &w.span(),
                    "daemon.worker_threads",
                    "must be between 0 (one per CPU) and 256",
                );
            }
        }
    }
}

fn resolve_store(r: &mut Resolver<'_>, raw: &raw::RawStore, dir: &Path) -> Option<StoreSettings> {
    let url = &raw.url;
    let u = url.get_ref();
    let postgres = u.starts_with("postgres://") || u.starts_with("postgresql://");
    if !postgres {
        // the PostgreSQL keys mean nothing to SQLite: say so rather than ignore them
        let given = [
            ("store.pool_size", raw.pool_size.as_ref().map(Spanned::span)),
            (
                "store.connect_timeout",
                raw.connect_timeout.as_ref().map(Spanned::span),
            ),
            ("store.ca_file", raw.ca_file.as_ref().map(Spanned::span)),
            ("store.password", raw.password.as_ref().map(Spanned::span)),
            (
                "store.password_file",
                raw.password_file.as_ref().map(Spanned::span),
            ),
            (
                "store.password_credential",
                raw.password_credential.as_ref().map(Spanned::span),
            ),
        ];
        for (key, span) in given {
            if let Some(span) = span {
                r.err::<()>(&span, key, "only a postgres:// store takes this key");
            }
        }
    }
    if let Some(path) = u.strip_prefix("sqlite://") {
        if path.is_empty() {
            return r.err(&url.span(), "store.url", "sqlite:// needs a file name");
        }
        // `sqlite:///abs/path` is absolute; `sqlite://name.db` is relative to state_dir.
        Some(StoreSettings {
            url: StoreUrl::Sqlite(PathBuf::from(path)),
        })
    } else if postgres {
        resolve_postgres(r, raw, dir)
    } else {
        r.err(
            &url.span(),
            "store.url",
            // the URL itself may hold a password: name its scheme only
            format!(
                "unsupported store URL scheme {:?}: expected sqlite://FILE or postgres://…",
                u.split_once("://").map_or("", |(scheme, _)| scheme)
            ),
        )
    }
}

/// The most connections `store.pool_size` allows.
const MAX_POOL_SIZE: i64 = 256;

fn resolve_postgres(r: &mut Resolver<'_>, raw: &raw::RawStore, dir: &Path) -> Option<StoreSettings> {
    let before = r.error_count();
    let url = raw.url.get_ref();
    // Parse now, so a typo is a configuration error with a line number;
    // the message never repeats the URL (it may hold a password).
    if url.parse::<postgres::Config>().is_err() {
        r.err::<()>(
            &raw.url.span(),
            "store.url",
            format!("not a valid PostgreSQL URL ({})", crate::store::redacted_url(url)),
        );
    }
    let mut pool_size = 8;
    if let Some(p) = &raw.pool_size {
        match *p.get_ref() {
            n @ 1..=MAX_POOL_SIZE => pool_size = usize::try_from(n).unwrap_or(8),
            _ => {
                r.err::<()>(
                    &p.span(),
                    "store.pool_size",
                    format!("must be between 1 and {MAX_POOL_SIZE}"),
                );
            }
        }
    }
    let mut connect_timeout = Duration::from_secs(5);
    if let Some(t) = &raw.connect_timeout {
        match parse_duration(t.get_ref()) {
            Ok(d) if d >= Duration::from_millis(100) && d <= Duration::from_secs(300) => connect_timeout = d,
            Ok(_) => {
                r.err::<()>(
                    &t.span(),
                    "store.connect_timeout",
                    "must be between 100ms and 300s",
                );
            }
            Err(e) => {
                r.err::<()>(&t.span(), "store.connect_timeout", e);
            }
        }
    }
    let ca_file = raw.ca_file.as_ref().and_then(|c| {
        let path = join(dir, c.get_ref());
        if path.is_file() {
            Some(path)
        } else {
            r.err(
                &c.span(),
                "store.ca_file",
                format!("{} is not a readable file", path.display()),
            )
        }
    });
    let secrets = r.daemon_secrets(
        "store",
        &["password"],
        &[
            ("password", raw.password.as_ref()),
            ("password_file", raw.password_file.as_ref()),
            ("password_credential", raw.password_credential.as_ref()),
        ],
        &raw.url.span(),
    );
    let password = secrets
        .as_ref()
        .and_then(|s| s.get("password"))
        .and_then(serde_json::Value::as_str)
        .map(gatehouse_sdk::Secret::new);
    if r.error_count() > before {
        return None;
    }
    Some(StoreSettings {
        url: StoreUrl::Postgres(crate::store::PostgresSettings {
            url: gatehouse_sdk::Secret::new(url.clone()),
            password,
            pool_size,
            connect_timeout,
            ca_file,
        }),
    })
}

fn resolve_lockout(r: &mut Resolver<'_>, l: &raw::RawLockout, out: &mut LockoutSettings) {
    let mut count = |v: &Option<Spanned<i64>>, key: &str, slot: &mut u32| {
        if let Some(v) = v {
            match u32::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => *slot = n,
                _ => {
                    r.err::<()>(&v.span(), key, "must be a positive integer");
                }
            }
        }
    };
    count(&l.max_failures, "lockout.max_failures", &mut out.max_failures);
    count(
        &l.max_failures_per_peer,
        "lockout.max_failures_per_peer",
        &mut out.max_failures_per_peer,
    );
    count(
        &l.max_failures_per_address,
        "lockout.max_failures_per_address",
        &mut out.max_failures_per_address,
    );
    if let Some(d) = &l.max_delay {
        match parse_duration(d.get_ref()) {
            Ok(v) if v <= Duration::from_secs(60) => out.max_delay = v,
            Ok(_) => {
                r.err::<()>(&d.span(), "lockout.max_delay", "must be at most 60s");
            }
            Err(e) => {
                r.err::<()>(&d.span(), "lockout.max_delay", e);
            }
        }
    }
    if let Some(w) = &l.window {
        match parse_duration(w.get_ref()) {
            Ok(d) if d >= Duration::from_secs(1) => out.window = d,
            Ok(_) => {
                r.err::<()>(&w.span(), "lockout.window", "must be at least 1s");
            }
            Err(e) => {
                r.err::<()>(&w.span(), "lockout.window", e);
            }
        }
    }
}

pub(crate) fn check_name(r: &mut Resolver<'_>, name: &Spanned<String>, key: &str) -> bool {
    let n = name.get_ref();
    if n.trim().is_empty() {
        r.err::<()>(&name.span(), key, "must not be empty");
        false
    } else if n.chars().count() > MAX_NAME_LEN {
        r.err::<()>(
            &name.span(),
            key,
            format!("longer than {MAX_NAME_LEN} characters"),
        );
        false
    } else if n.chars().any(char::is_control) {
        r.err::<()>(&name.span(), key, "must not contain control characters");
        false
    } else {
        true
    }
}

fn isolation(r: &mut Resolver<'_>, v: &Option<Spanned<String>>, key: &str) -> Isolation {
    match v.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("in_process", _)) => Isolation::InProcess,
        Some(("process", _)) => Isolation::Process,
        Some((other, span)) => {
            r.err::<()>(
                &span,
                key,
                format!("unknown isolation {other:?}: expected \"in_process\" or \"process\""),
            );
            Isolation::InProcess
        }
    }
}

fn settings_json(
    settings: Option<&Spanned<toml::Table>>,
    additional: Option<&Spanned<toml::Table>>,
) -> serde_json::Value {
    let mut table = settings.map(|s| s.get_ref().clone()).unwrap_or_default();
    if let Some(extra) = additional {
        for (k, v) in extra.get_ref() {
            table.insert(k.clone(), v.clone());
        }
    }
    toml_to_json(toml::Value::Table(table))
}

/// Converts TOML to JSON for plugins (datetimes become RFC 3339 strings).
pub(crate) fn toml_to_json(v: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect()),
    }
}

/// The longest `offline_max_age`.
const MAX_OFFLINE_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

fn resolve_authenticator(
    r: &mut Resolver<'_>,
    a: &Spanned<RawAuthenticator>,
    dir: &Path,
) -> Option<(AuthenticatorSpec, Option<i64>)> {
    let raw = a.get_ref();
    let key = format!("authenticators[{:?}]", raw.name.get_ref());
    let mut ok = check_name(r, &raw.name, &format!("{key}.name"));
    if raw.kind.get_ref().trim().is_empty() {
        r.err::<()>(&raw.kind.span(), format!("{key}.type"), "must not be empty");
        ok = false;
    }
    let iso = isolation(r, &raw.isolation, &format!("{key}.isolation"));
    let offline_max_age = raw.offline_max_age.as_ref().and_then(|t| {
        let k = format!("{key}.offline_max_age");
        let v = match parse_duration(t.get_ref()) {
            Ok(v) if v.is_zero() || v > MAX_OFFLINE_AGE => {
                Err("must be between 1s and 365d (leave it out to turn offline login off)".to_owned())
            }
            Ok(_) if raw.kind.get_ref() == "local" => Err(
                "the local authenticator keeps its passwords itself and needs no backend: offline login does not apply"
                    .to_owned(),
            ),
            other => other,
        };
        v.map_err(|e| r.err::<()>(&t.span(), k, e)).ok()
    });
    if raw.offline_max_age.is_some() && offline_max_age.is_none() {
        ok = false;
    }
    let maps = crate::maps::config::resolve_maps(r, &raw.maps, &key);
    if maps.is_none() {
        ok = false;
    }
    let location = r.src.at(&a.span());
    let settings_location = raw
        .settings
        .as_ref()
        .map_or_else(|| location.clone(), |s| r.src.at(&s.span()));
    ok.then(|| {
        (
            AuthenticatorSpec {
                name: raw.name.get_ref().clone(),
                kind: raw.kind.get_ref().clone(),
                enabled: raw.enabled,
                order: 0,
                create_objects: raw.create_objects,
                remove_users: raw.remove_users,
                offline_max_age,
                auto_migrate_users_from: raw
                    .auto_migrate_users_from
                    .iter()
                    .map(|s| s.get_ref().clone())
                    .collect(),
                library: raw.library.as_ref().map(|l| join(dir, l.get_ref())),
                isolation: iso,
                maps: maps.unwrap_or_default(),
                settings: settings_json(raw.settings.as_ref(), raw.additional.as_ref()),
                setting_lines: [raw.settings.as_ref(), raw.additional.as_ref()]
                    .into_iter()
                    .flatten()
                    .flat_map(|t| r.src.key_lines(&t.span()))
                    .collect(),
                location,
                settings_location,
            },
            raw.order,
        )
    })
}

fn resolve_verifier(r: &mut Resolver<'_>, v: &Spanned<RawVerifier>, dir: &Path) -> Option<VerifierSpec> {
    let raw = v.get_ref();
    let key = format!("verifiers[{:?}]", raw.name.get_ref());
    let mut ok = check_name(r, &raw.name, &format!("{key}.name"));
    let iso = isolation(r, &raw.isolation, &format!("{key}.isolation"));
    let location = r.src.at(&v.span());
    let settings_location = raw
        .settings
        .as_ref()
        .map_or_else(|| location.clone(), |s| r.src.at(&s.span()));
    let mut subjects = std::collections::BTreeMap::new();
    if let Some(table) = &raw.subjects {
        for (issuer, authenticator) in table.get_ref() {
            let issuer = issuer.trim().trim_end_matches('/');
            if issuer.is_empty() || authenticator.trim().is_empty() {
                r.err::<()>(
                    &table.span(),
                    format!("{key}.subjects"),
                    "each entry is \"issuer\" = \"authenticator name\", neither empty",
                );
                ok = false;
            } else {
                subjects.insert(issuer.to_owned(), authenticator.clone());
            }
        }
    }
    ok.then(|| VerifierSpec {
        name: raw.name.get_ref().clone(),
        kind: raw.kind.get_ref().clone(),
        library: raw.library.as_ref().map(|l| join(dir, l.get_ref())),
        isolation: iso,
        settings: settings_json(raw.settings.as_ref(), None),
        setting_lines: raw
            .settings
            .as_ref()
            .map(|t| r.src.key_lines(&t.span()).into_iter().collect())
            .unwrap_or_default(),
        subjects,
        location,
        settings_location,
    })
}

#[cfg(test)]
mod tests;
