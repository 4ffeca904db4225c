//! `htpasswd`: an example third-party plugin. It logs users in against an
//! Apache-style htpasswd file (`user:hash` per line) with bcrypt
//! (`$2y$`, `$2b$`, `$2a$`), SHA-256-crypt (`$5$`) or SHA-512-crypt (`$6$`)
//! entries; weaker formats (MD5, DES crypt, plain SHA-1, plaintext) are
//! refused.
//!
//! ```toml
//! [[authenticators]]
//! name = "Web users"
//! type = "htpasswd"
//! [authenticators.settings]
//! file = "users.htpasswd"   # relative to this configuration file
//! ```
//!
//! The file is re-read when its modification time changes; a file that
//! became unreadable or invalid keeps the last good content (and logs why).
//! It depends on `gatehouse-sdk` only, and is built as a `cdylib` that the
//! daemon loads from `plugin_dirs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Context, Flow, Identity, LoginStep, PasswordLogin, Plugin,
    PluginConfig, PluginError, async_trait, blocking, serde_json,
};
// Through the SDK's re-export: the SDK is this plugin's only gatehouse
// (and serde) dependency.
use gatehouse_sdk::serde::Deserialize;

/// The plugin: one authenticator type, `htpasswd`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HtpasswdPlugin;

impl Plugin for HtpasswdPlugin {
    fn name(&self) -> &str {
        "htpasswd"
    }

    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        vec![Box::new(HtpasswdFactory)]
    }
}

gatehouse_sdk::export_plugin!(
    HtpasswdPlugin,
    authenticators = ["htpasswd"],
    verifiers = [],
    capabilities = ["files"],
);

/// Settings of `type = "htpasswd"`.
#[derive(Debug, Deserialize)]
#[serde(crate = "gatehouse_sdk::serde", deny_unknown_fields)]
struct Settings {
    /// The htpasswd file.
    file: PathBuf,
}

/// Builds `htpasswd` authenticators.
#[derive(Clone, Copy, Debug, Default)]
pub struct HtpasswdFactory;

impl AuthenticatorFactory for HtpasswdFactory {
    fn type_name(&self) -> &str {
        "htpasswd"
    }

    fn flow(&self) -> Flow {
        Flow::Password
    }

    fn config_schema(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["file"],
            "properties": {"file": {"type": "string", "description": "path of the htpasswd file"}}
        })
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        let settings: Settings = config.parse()?;
        let file = config.context.resolve_path(&settings.file);
        let (entries, mtime) = read(&file).map_err(PluginError::Misconfigured)?;
        Ok(Arc::new(Htpasswd {
            file,
            state: Mutex::new(Loaded { entries, mtime }),
        }))
    }
}

struct Loaded {
    entries: Entries,
    mtime: Option<SystemTime>,
}

struct Htpasswd {
    file: PathBuf,
    state: Mutex<Loaded>,
}

/// A bcrypt hash (default cost) of a fixed string: unknown users are
/// checked against it so they take as long as known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| pwhash::bcrypt::hash("gatehouse-htpasswd-dummy").unwrap_or_default())
}

fn supported(hash: &str) -> bool {
    ["$2y$", "$2b$", "$2a$", "$5$", "$6$"]
        .iter()
        .any(|p| hash.starts_with(p))
}

/// Users and hashes by username.
type Entries = Arc<BTreeMap<String, String>>;

fn read(path: &PathBuf) -> Result<(Entries, Option<SystemTime>), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("file: cannot read {}: {e}", path.display()))?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("file: cannot read {}: {e}", path.display()))?;
    let mut entries = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!("{}:{}: expected user:hash", path.display(), i + 1));
        };
        if !supported(hash) {
            return Err(format!(
                "{}:{}: unsupported hash for {user:?} (use bcrypt, SHA-256-crypt or SHA-512-crypt)",
                path.display(),
                i + 1
            ));
        }
        if entries.insert(user.to_owned(), hash.to_owned()).is_some() {
            return Err(format!(
                "{}:{}: user {user:?} appears twice",
                path.display(),
                i + 1
            ));
        }
    }
    Ok((Arc::new(entries), meta.modified().ok()))
}

impl Htpasswd {
    /// The current entries, re-read when the file's mtime changed.
    fn entries(&self, ctx: &Context) -> Entries {
        let mtime = std::fs::metadata(&self.file).and_then(|m| m.modified()).ok();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if mtime.is_some() && mtime != state.mtime {
            match read(&self.file) {
                Ok((entries, mtime)) => {
                    ctx.info(&format!(
                        "reloaded {} ({} users)",
                        self.file.display(),
                        entries.len()
                    ));
                    *state = Loaded { entries, mtime };
                }
                Err(e) => {
                    ctx.warn(&format!("keeping the previous users: {e}"));
                    state.mtime = mtime;
                }
            }
        }
        Arc::clone(&state.entries)
    }
}

#[async_trait]
impl Authenticator for Htpasswd {
    async fn login(&self, ctx: &Context, request: PasswordLogin) -> Result<LoginStep, PluginError> {
        if request.password.is_empty() {
            return Err(PluginError::InvalidCredentials);
        }
        let entries = self.entries(ctx);
        let known = entries.get(&request.username).cloned();
        let hash = known.clone().unwrap_or_else(|| dummy_hash().to_owned());
        let password = request.password.clone();
        let ok = blocking(move || pwhash::unix::verify(password.expose(), &hash)).await?;
        match (ok, known) {
            (true, Some(_)) => Ok(LoginStep::Authenticated(Identity::new(
                request.username.clone(),
                request.username,
            ))),
            _ => Err(PluginError::InvalidCredentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_sdk::testing::AuthenticatorSuite;

    #[test]
    fn conformance_linked_in() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(
            &file,
            format!(
                "# test users\nann:{}\nbob:{}\n",
                pwhash::bcrypt::hash("ann's password").unwrap(),
                pwhash::sha512_crypt::hash("bob's password").unwrap()
            ),
        )
        .unwrap();
        AuthenticatorSuite::new(&HtpasswdFactory, serde_json::json!({ "file": file }))
            .good("ann", "ann's password")
            .bad_settings(serde_json::json!({}))
            .bad_settings(serde_json::json!({ "file": dir.path().join("missing") }))
            .run()
            .unwrap();
        AuthenticatorSuite::new(&HtpasswdFactory, serde_json::json!({ "file": file }))
            .good("bob", "bob's password")
            .run()
            .unwrap();
    }

    #[test]
    fn weak_hashes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "ann:$apr1$abc$def\n").unwrap();
        let e = HtpasswdFactory
            .build(PluginConfig::new("t", serde_json::json!({ "file": file })))
            .err()
            .unwrap();
        assert!(matches!(e, PluginError::Misconfigured(m) if m.contains("unsupported hash")));
    }
}
