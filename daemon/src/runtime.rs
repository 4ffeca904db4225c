//! One generation of the daemon: configuration plus constructed plugins.
//!
//! A reload builds a complete new [`Runtime`] beside the running one and
//! publishes it with one pointer swap; a request holds one `Arc<Runtime>`
//! from start to end, so it sees exactly one generation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use gatehouse_sdk::proto::ConfigErrorEntry;
use gatehouse_sdk::{Authenticator, Context, Flow, Level, Logger, PluginConfig, PluginError};

use crate::authn::local::{LocalSettings, PasswordPolicy};
use crate::authn::{self, Resources};
use crate::config::{AuthenticatorSpec, Config, ConfigErrors, Isolation, Location};
use crate::store::{self, Store};

/// A constructed authenticator.
pub struct AuthenticatorEntry {
    /// Its configuration.
    pub spec: AuthenticatorSpec,
    /// Its login shape.
    pub flow: Flow,
    /// The instance.
    pub plugin: Arc<dyn Authenticator>,
    /// The context handed to its calls.
    pub context: Context,
}

/// One generation.
pub struct Runtime {
    /// Counts up from 1 with every successful load.
    pub generation: u64,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// The configuration it was built from.
    pub config: Arc<Config>,
    /// Authenticators in login order.
    pub authenticators: Vec<AuthenticatorEntry>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Password rules for user administration (the first local
    /// authenticator's, else the defaults).
    pub passwords: PasswordPolicy,
    /// Files whose change triggers a reload (configuration and secrets).
    pub watched_files: Vec<PathBuf>,
}

impl Runtime {
    /// The authenticator called `name`.
    pub fn authenticator(&self, name: &str) -> Option<&AuthenticatorEntry> {
        self.authenticators.iter().find(|a| a.spec.name == name)
    }
}

/// Forwards plugin log records to `tracing`, tagged with the instance.
struct TracingLogger {
    instance: String,
}

impl Logger for TracingLogger {
    fn log(&self, level: Level, message: &str) {
        let plugin = self.instance.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

fn plugin_context(name: &str, config: &Config) -> Context {
    Context::new(name)
        .with_logger(Arc::new(TracingLogger {
            instance: name.to_owned(),
        }))
        .with_state_dir(config.daemon.state_dir.join("plugins").join(sanitize(name)))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads `K_file` and `K_credential` settings into `K` for the secret keys a
/// plugin declares; `*_credential` names a file in `$CREDENTIALS_DIRECTORY`.
fn resolve_secrets(
    settings: &mut serde_json::Value,
    secret_keys: &[&str],
    loc: &Location,
    key_prefix: &str,
    read: &mut Vec<PathBuf>,
    errors: &mut Vec<ConfigErrorEntry>,
) {
    let Some(map) = settings.as_object_mut() else {
        return;
    };
    for key in secret_keys {
        let file_key = format!("{key}_file");
        let cred_key = format!("{key}_credential");
        let given: Vec<&str> = [key.to_string(), file_key.clone(), cred_key.clone()]
            .iter()
            .filter(|k| map.contains_key(k.as_str()))
            .map(|k| {
                if k == &file_key {
                    "_file"
                } else if k == &cred_key {
                    "_credential"
                } else {
                    "inline"
                }
            })
            .collect();
        if given.len() > 1 {
            errors.push(loc.error(
                format!("{key_prefix}.{key}"),
                format!("give {key} only once (inline, {file_key} or {cred_key})"),
            ));
            continue;
        }
        let path = if let Some(v) = map.remove(&file_key) {
            match v.as_str() {
                Some(p) => {
                    let p = PathBuf::from(p);
                    if p.is_relative() {
                        loc.file.parent().map_or(p.clone(), |d| d.join(&p))
                    } else {
                        p
                    }
                }
                None => {
                    errors.push(loc.error(format!("{key_prefix}.{file_key}"), "must be a path string"));
                    continue;
                }
            }
        } else if let Some(v) = map.remove(&cred_key) {
            let Some(name) = v.as_str().filter(|n| !n.contains('/') && !n.is_empty()) else {
                errors.push(loc.error(format!("{key_prefix}.{cred_key}"), "must be a credential name"));
                continue;
            };
            match std::env::var_os("CREDENTIALS_DIRECTORY") {
                Some(dir) => PathBuf::from(dir).join(name),
                None => {
                    errors.push(loc.error(
                        format!("{key_prefix}.{cred_key}"),
                        "$CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)",
                    ));
                    continue;
                }
            }
        } else {
            continue;
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                read.push(path);
                let value = text.strip_suffix('\n').unwrap_or(&text);
                let value = value.strip_suffix('\r').unwrap_or(value);
                map.insert((*key).to_owned(), serde_json::Value::String(value.to_owned()));
            }
            Err(e) => errors.push(loc.error(
                format!("{key_prefix}.{key}"),
                format!("cannot read secret file {}: {e}", path.display()),
            )),
        }
    }
}

/// Builds a generation from a configuration. Plugins whose configuration is
/// unchanged since `previous` are reused (their caches and connections
/// survive); the rest are built anew. Nothing of `previous` is modified.
pub fn build(
    config: Config,
    generation: u64,
    previous: Option<&Runtime>,
    hashing: &Arc<tokio::sync::Semaphore>,
) -> Result<Runtime, ConfigErrors> {
    let mut errors = Vec::new();
    let store: Arc<dyn Store> = match previous {
        Some(p) if p.config.store == config.store => Arc::clone(&p.store),
        _ => match store::open(&config.store.url) {
            Ok(s) => s,
            Err(e) => {
                return Err(ConfigErrors::one(
                    Location::file(&config.main_file)
                        .error("store.url", format!("cannot open the store: {e}")),
                ));
            }
        },
    };
    let resources = Resources {
        store: Arc::clone(&store),
        hashing: Arc::clone(hashing),
    };
    let store_reused = previous.is_some_and(|p| Arc::ptr_eq(&p.store, &store));
    let mut watched = config.files.clone();
    let mut authenticators = Vec::new();
    let mut passwords = None;

    for spec in &config.authenticators {
        let key = format!("authenticators[{:?}]", spec.name);
        let Some(builtin) = authn::builtin(&spec.kind) else {
            let known: Vec<_> = authn::BUILTINS.iter().map(|b| b.type_name).collect();
            errors.push(spec.location.error(
                format!("{key}.type"),
                format!(
                    "unknown authenticator type {:?} (available: {})",
                    spec.kind,
                    known.join(", ")
                ),
            ));
            continue;
        };
        if spec.library.is_some() {
            errors.push(spec.location.error(
                format!("{key}.library"),
                format!("type {:?} is built in; it cannot come from a library", spec.kind),
            ));
            continue;
        }
        if spec.isolation == Isolation::Process {
            errors.push(spec.location.error(
                format!("{key}.isolation"),
                "built-in authenticators run in the daemon's process; isolation = \"process\" is for plugin libraries",
            ));
            continue;
        }
        let mut settings = spec.settings.clone();
        resolve_secrets(
            &mut settings,
            builtin.secret_settings,
            &spec.settings_location,
            &format!("{key}.settings"),
            &mut watched,
            &mut errors,
        );
        if spec.kind == "local" && passwords.is_none() && spec.enabled {
            // A bad setting is reported by the build below.
            if let Ok(s) = serde_json::from_value::<LocalSettings>(settings.clone()) {
                passwords = PasswordPolicy::new(&s).ok();
            }
        }
        // Reuse an unchanged instance from the previous generation.
        if let Some(old) = previous.and_then(|p| p.authenticator(&spec.name)).filter(|old| {
            old.spec.kind == spec.kind
                && old.spec.settings == spec.settings
                && old.spec.library == spec.library
                && old.spec.isolation == spec.isolation
                && store_reused
        }) {
            authenticators.push(AuthenticatorEntry {
                spec: spec.clone(),
                flow: old.flow,
                plugin: Arc::clone(&old.plugin),
                context: old.context.clone(),
            });
            continue;
        }
        let context = plugin_context(&spec.name, &config);
        let plugin_config = PluginConfig::new(spec.name.clone(), settings).with_context(context.clone());
        match (builtin.build)(plugin_config, &resources) {
            Ok(plugin) => authenticators.push(AuthenticatorEntry {
                spec: spec.clone(),
                flow: builtin.flow,
                plugin,
                context,
            }),
            Err(PluginError::Misconfigured(m)) => {
                errors.push(spec.settings_location.error(format!("{key}.settings"), m));
            }
            Err(e) => errors.push(
                spec.settings_location
                    .error(format!("{key}.settings"), e.to_string()),
            ),
        }
    }
    for spec in &config.verifiers {
        errors.push(spec.location.error(
            format!("verifiers[{:?}].type", spec.name),
            format!(
                "unknown verifier type {:?} (none are available in this version)",
                spec.kind
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let passwords = match passwords {
        Some(p) => p,
        None => PasswordPolicy::new(&LocalSettings::default()).map_err(|e| {
            ConfigErrors::one(Location::file(&config.main_file).error("authenticators", e.to_string()))
        })?,
    };
    watched.sort();
    watched.dedup();
    Ok(Runtime {
        generation,
        loaded_at: SystemTime::now(),
        config: Arc::new(config),
        authenticators,
        store,
        passwords,
        watched_files: watched,
    })
}
