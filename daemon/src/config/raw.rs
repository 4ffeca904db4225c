//! Stage one: the configuration exactly as written, `deny_unknown_fields`
//! everywhere. Nothing here is validated beyond TOML types.

use serde::Deserialize;
use toml::Spanned;

/// One configuration file (the main file or a drop-in).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) daemon: Option<Spanned<RawDaemon>>,
    pub(crate) access: Option<Spanned<RawAccess>>,
    pub(crate) store: Option<Spanned<RawStore>>,
    pub(crate) lockout: Option<Spanned<RawLockout>>,
    pub(crate) issuer: Option<Spanned<crate::issuer::config::RawIssuer>>,
    pub(crate) http: Option<Spanned<super::http_table::RawHttp>>,
    pub(crate) log: Option<Spanned<super::log::RawLog>>,
    pub(crate) forward_auth: Option<Spanned<super::connections::RawForwardAuth>>,
    pub(crate) host: Option<Spanned<super::host::RawHost>>,
    #[serde(default)]
    pub(crate) authenticators: Vec<Spanned<RawAuthenticator>>,
    #[serde(default)]
    pub(crate) verifiers: Vec<Spanned<RawVerifier>>,
    #[serde(default)]
    pub(crate) routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub(crate) socket: Option<String>,
    pub(crate) socket_mode: Option<Spanned<String>>,
    pub(crate) state_dir: Option<String>,
    #[serde(default)]
    pub(crate) plugin_dirs: Vec<String>,
    #[serde(default)]
    pub(crate) include: Vec<String>,
    pub(crate) max_body_bytes: Option<Spanned<i64>>,
    pub(crate) shutdown_timeout: Option<Spanned<String>>,
    pub(crate) reload_debounce: Option<Spanned<String>>,
    pub(crate) log_level: Option<String>,
    pub(crate) worker_threads: Option<Spanned<i64>>,
    pub(crate) public_url: Option<Spanned<String>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) max_connections_per_uid: Option<Spanned<i64>>,
    pub(crate) request_timeout: Option<Spanned<String>>,
    pub(crate) idle_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    pub(crate) admin_uids: Option<Vec<u32>>,
    #[serde(default)]
    pub(crate) admin_gids: Vec<u32>,
    #[serde(default)]
    pub(crate) client_uids: Vec<u32>,
    #[serde(default)]
    pub(crate) client_gids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub(crate) url: Spanned<String>,
    pub(crate) pool_size: Option<Spanned<i64>>,
    pub(crate) connect_timeout: Option<Spanned<String>>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) password: Option<Spanned<String>>,
    pub(crate) password_file: Option<Spanned<String>>,
    pub(crate) password_credential: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLockout {
    pub(crate) max_failures: Option<Spanned<i64>>,
    pub(crate) window: Option<Spanned<String>>,
    pub(crate) max_failures_per_peer: Option<Spanned<i64>>,
    pub(crate) max_failures_per_address: Option<Spanned<i64>>,
    pub(crate) max_delay: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthenticator {
    pub(crate) name: Spanned<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Spanned<String>,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    pub(crate) order: Option<i64>,
    #[serde(default = "yes")]
    pub(crate) create_objects: bool,
    #[serde(default = "yes")]
    pub(crate) remove_users: bool,
    #[serde(default)]
    pub(crate) auto_migrate_users_from: Vec<Spanned<String>>,
    pub(crate) offline_max_age: Option<Spanned<String>>,
    pub(crate) library: Option<Spanned<String>>,
    pub(crate) isolation: Option<Spanned<String>>,
    pub(crate) settings: Option<Spanned<toml::Table>>,
    pub(crate) additional: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub(crate) maps: Vec<Spanned<RawMap>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMap {
    pub(crate) name: Option<String>,
    pub(crate) map_type: Spanned<String>,
    pub(crate) organization: Option<String>,
    pub(crate) team: Option<String>,
    pub(crate) role: Option<String>,
    #[serde(default)]
    pub(crate) revoke: bool,
    pub(crate) order: Option<i64>,
    pub(crate) triggers: Option<Spanned<RawTriggers>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTriggers {
    pub(crate) always: Option<toml::Table>,
    pub(crate) never: Option<toml::Table>,
    pub(crate) groups: Option<crate::maps::GroupTrigger>,
    pub(crate) attributes: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVerifier {
    pub(crate) name: Spanned<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Spanned<String>,
    pub(crate) library: Option<Spanned<String>>,
    pub(crate) isolation: Option<Spanned<String>>,
    pub(crate) settings: Option<Spanned<toml::Table>>,
    /// Issuer → the authenticator whose users its token subjects are.
    #[serde(default)]
    pub(crate) subjects: Option<Spanned<std::collections::BTreeMap<String, String>>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) name: Spanned<String>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) path_regex: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) methods: Vec<String>,
    pub(crate) verifier: Spanned<String>,
    pub(crate) unit_primitive: Option<String>,
    pub(crate) audience: Option<String>,
    #[serde(default)]
    pub(crate) require_superuser: bool,
    pub(crate) require_organization: Option<String>,
    pub(crate) require_team: Option<String>,
    #[serde(default)]
    pub(crate) headers: std::collections::BTreeMap<String, String>,
}
