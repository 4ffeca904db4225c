//! One generation of the daemon: configuration plus constructed plugins.
//!
//! A reload builds a complete new [`Runtime`] beside the running one and
//! publishes it with one pointer swap; a request holds one `Arc<Runtime>`
//! from start to end, so it sees exactly one generation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use gatehouse_sdk::proto::ConfigErrorEntry;
use gatehouse_sdk::{Authenticator, Context, Flow, Level, Logger, PluginConfig, PluginError, Verifier};

use crate::authn::local::{LocalSettings, PasswordPolicy};
use crate::authn::{self, Resources};
use crate::config::{AuthenticatorSpec, Config, ConfigErrors, Isolation, Location, VerifierSpec};
use crate::isolation::supervisor::Isolated;
use crate::plugins::Catalog;
use crate::store::{self, Store};
use gatehouse_sdk::abi::CreateConfig;
use gatehouse_sdk::abi::host::Library;

/// Where a configured type comes from: built into the daemon (`B`), a
/// first-party plugin linked in (`F`), or a plugin library.
enum Origin<B: 'static, F: ?Sized + 'static> {
    Builtin(&'static B),
    Linked(&'static F),
    Library(&'static Library),
}

impl<B, F: ?Sized> Clone for Origin<B, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B, F: ?Sized> Copy for Origin<B, F> {}

impl<B, F: ?Sized> Origin<B, F> {
    fn library(self) -> Option<&'static Library> {
        match self {
            Self::Builtin(_) | Self::Linked(_) => None,
            Self::Library(l) => Some(l),
        }
    }
}

/// Where an authenticator type comes from.
type Source = Origin<authn::Builtin, dyn gatehouse_sdk::AuthenticatorFactory>;

/// Where a verifier type comes from.
type VerifierSource = Origin<crate::verifiers::BuiltinVerifier, dyn gatehouse_sdk::VerifierFactory>;

impl VerifierSource {
    fn wants_bearer(self) -> bool {
        match self {
            Self::Builtin(b) => b.wants_bearer,
            Self::Linked(_) | Self::Library(_) => true,
        }
    }
}

/// True when both are built in, or both come from the same loaded library
/// (the same file, not merely the same path).
fn same_library(a: Option<&'static Library>, b: Option<&'static Library>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        _ => false,
    }
}

/// A plugin's refusal to build, as a configuration error on its settings
/// (a `Misconfigured` message is shown as the plugin wrote it).
fn settings_error(location: &Location, key: &str, e: PluginError) -> ConfigErrorEntry {
    let message = match e {
        PluginError::Misconfigured(m) => m,
        other => other.to_string(),
    };
    location.error(format!("{key}.settings"), message)
}

/// The error for a built-in (or linked-in) type given a `library` or
/// `isolation = "process"`: both are for plugin libraries.
fn misplaced_builtin(
    location: &Location,
    key: &str,
    kind: &str,
    library: &Option<PathBuf>,
    isolation: Isolation,
) -> Option<ConfigErrorEntry> {
    (library.is_some() || isolation == Isolation::Process).then(|| {
        location.error(
            format!("{key}.library"),
            format!("type {kind:?} is built in; it cannot come from a library or run isolated"),
        )
    })
}

/// Builds an instance from a plugin library, in this process or in a child.
fn build_from_library(
    lib: &'static Library,
    spec: &AuthenticatorSpec,
    settings: serde_json::Value,
    context: &Context,
) -> Result<(Arc<dyn Authenticator>, Flow), PluginError> {
    let flow = lib
        .descriptor
        .authenticator(&spec.kind)
        .map_or(Flow::Password, |t| t.flow);
    let create = create_config(&spec.name, settings, &spec.settings_location, context);
    match spec.isolation {
        Isolation::InProcess => lib.create_authenticator(&spec.kind, &create).map(|a| (a, flow)),
        Isolation::Process => {
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|_| PluginError::Internal("process isolation needs the async runtime".into()))?;
            let isolated =
                handle.block_on(Isolated::start(lib.path.clone(), spec.kind.clone(), flow, create))?;
            Ok((Arc::new(isolated), flow))
        }
    }
}

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
    /// Its settings with secrets resolved (to detect changes on reload).
    pub resolved_settings: serde_json::Value,
    /// The plugin library it came from, if any (a file replaced at the
    /// same path is another library).
    pub library: Option<&'static Library>,
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
    /// Verifiers in configuration order.
    pub verifiers: Vec<VerifierEntry>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Password rules for user administration (the first local
    /// authenticator's, else the defaults).
    pub passwords: PasswordPolicy,
    /// Files whose change triggers a reload (configuration and secrets).
    pub watched_files: Vec<PathBuf>,
}

/// A constructed verifier.
pub struct VerifierEntry {
    /// Its configuration.
    pub spec: VerifierSpec,
    /// The instance.
    pub plugin: Arc<dyn Verifier>,
    /// The context handed to its calls.
    pub context: Context,
    /// Settings with secrets resolved.
    pub resolved_settings: serde_json::Value,
    /// Whether forward auth must find a bearer token for it (false for
    /// verifiers that read the original request themselves).
    pub wants_bearer: bool,
    /// The plugin library it came from (none: built in).
    pub library: Option<&'static Library>,
}

impl Runtime {
    /// The verifier called `name`.
    pub fn verifier(&self, name: &str) -> Option<&VerifierEntry> {
        self.verifiers.iter().find(|v| v.spec.name == name)
    }

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
        .with_http(config.http.settings.clone())
}

/// The context of one instance: [`plugin_context`] plus the directory of
/// the file its settings are in (relative paths resolve against it).
fn instance_context(name: &str, settings_location: &Location, config: &Config) -> Context {
    let ctx = plugin_context(name, config);
    match settings_location.file.parent() {
        Some(dir) => ctx.with_config_dir(dir),
        None => ctx,
    }
}

/// The ABI `create` document of one instance.
fn create_config(
    name: &str,
    settings: serde_json::Value,
    settings_location: &Location,
    context: &Context,
) -> CreateConfig {
    CreateConfig {
        name: name.to_owned(),
        settings,
        state_dir: context.state_dir().map(|d| d.display().to_string()),
        config_dir: settings_location.file.parent().map(|d| d.display().to_string()),
        http: context.http().clone(),
    }
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

    let catalog = Catalog::scan(&config, &mut errors);
    for spec in &config.authenticators {
        let key = format!("authenticators[{:?}]", spec.name);
        let source = match authn::builtin(&spec.kind) {
            Some(builtin) => {
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
                Source::Builtin(builtin)
            }
            None => match authn::linked_type(&spec.kind) {
                Some(f) => {
                    if let Some(e) =
                        misplaced_builtin(&spec.location, &key, &spec.kind, &spec.library, spec.isolation)
                    {
                        errors.push(e);
                        continue;
                    }
                    Source::Linked(f)
                }
                None => match catalog.authenticator_library(spec) {
                    Ok(lib) => Source::Library(lib),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
            },
        };
        let secret_keys: Vec<&str> = match source {
            Source::Builtin(b) => b.secret_settings.to_vec(),
            Source::Linked(f) => f.secret_settings().to_vec(),
            Source::Library(lib) => lib
                .descriptor
                .authenticator(&spec.kind)
                .map(|t| t.secret_settings.iter().map(String::as_str).collect())
                .unwrap_or_default(),
        };
        let mut settings = spec.settings.clone();
        resolve_secrets(
            &mut settings,
            &secret_keys,
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
        // Reuse an unchanged instance from the previous generation (secret
        // files included: a changed secret builds a new instance).
        if let Some(old) = previous.and_then(|p| p.authenticator(&spec.name)).filter(|old| {
            old.spec.kind == spec.kind
                && old.resolved_settings == settings
                && old.spec.library == spec.library
                && old.spec.isolation == spec.isolation
                && same_library(old.library, source.library())
                && old.context.http() == &config.http.settings
                && store_reused
        }) {
            authenticators.push(AuthenticatorEntry {
                spec: spec.clone(),
                flow: old.flow,
                plugin: Arc::clone(&old.plugin),
                context: old.context.clone(),
                resolved_settings: settings,
                library: old.library,
            });
            continue;
        }
        let context = instance_context(&spec.name, &spec.settings_location, &config);
        let built = match source {
            Source::Builtin(builtin) => {
                let plugin_config =
                    PluginConfig::new(spec.name.clone(), settings.clone()).with_context(context.clone());
                (builtin.build)(plugin_config, &resources).map(|p| (p, builtin.flow))
            }
            Source::Linked(f) => {
                let plugin_config =
                    PluginConfig::new(spec.name.clone(), settings.clone()).with_context(context.clone());
                f.build(plugin_config).map(|p| (p, f.flow()))
            }
            Source::Library(lib) => build_from_library(lib, spec, settings.clone(), &context),
        };
        match built {
            Ok((plugin, flow)) => authenticators.push(AuthenticatorEntry {
                spec: spec.clone(),
                flow,
                plugin,
                context,
                resolved_settings: settings,
                library: source.library(),
            }),
            Err(e) => errors.push(settings_error(&spec.settings_location, &key, e)),
        }
    }
    let mut verifiers = Vec::new();
    for spec in &config.verifiers {
        let key = format!("verifiers[{:?}]", spec.name);
        let source = match (
            crate::verifiers::builtin(&spec.kind),
            authn::linked_verifier(&spec.kind),
        ) {
            (Some(b), _) => {
                if let Some(e) =
                    misplaced_builtin(&spec.location, &key, &spec.kind, &spec.library, spec.isolation)
                {
                    errors.push(e);
                    continue;
                }
                VerifierSource::Builtin(b)
            }
            (None, Some(f)) => {
                if let Some(e) =
                    misplaced_builtin(&spec.location, &key, &spec.kind, &spec.library, spec.isolation)
                {
                    errors.push(e);
                    continue;
                }
                VerifierSource::Linked(f)
            }
            (None, None) => match catalog.verifier_library(spec) {
                Ok(l) => VerifierSource::Library(l),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
        };
        let secret_keys: Vec<&str> = match source {
            VerifierSource::Builtin(b) => b.secret_settings.to_vec(),
            VerifierSource::Linked(f) => f.secret_settings().to_vec(),
            VerifierSource::Library(lib) => lib
                .descriptor
                .verifier(&spec.kind)
                .map(|t| t.secret_settings.iter().map(String::as_str).collect())
                .unwrap_or_default(),
        };
        let mut settings = spec.settings.clone();
        resolve_secrets(
            &mut settings,
            &secret_keys,
            &spec.settings_location,
            &format!("{key}.settings"),
            &mut watched,
            &mut errors,
        );
        if let Some(old) = previous.and_then(|p| p.verifier(&spec.name)).filter(|old| {
            old.spec.kind == spec.kind
                && old.resolved_settings == settings
                && old.spec.library == spec.library
                && old.spec.isolation == spec.isolation
                && same_library(old.library, source.library())
                && old.context.http() == &config.http.settings
                && store_reused
        }) {
            verifiers.push(VerifierEntry {
                spec: spec.clone(),
                plugin: Arc::clone(&old.plugin),
                context: old.context.clone(),
                resolved_settings: settings,
                wants_bearer: old.wants_bearer,
                library: old.library,
            });
            continue;
        }
        let context = instance_context(&spec.name, &spec.settings_location, &config);
        let create = create_config(&spec.name, settings.clone(), &spec.settings_location, &context);
        let built: Result<Arc<dyn Verifier>, PluginError> = match (source, spec.isolation) {
            (VerifierSource::Builtin(b), _) => (b.build)(
                PluginConfig::new(spec.name.clone(), settings.clone()).with_context(context.clone()),
                &resources,
            ),
            (VerifierSource::Linked(f), _) => {
                f.build(PluginConfig::new(spec.name.clone(), settings.clone()).with_context(context.clone()))
            }
            (VerifierSource::Library(lib), Isolation::InProcess) => lib.create_verifier(&spec.kind, &create),
            (VerifierSource::Library(lib), Isolation::Process) => tokio::runtime::Handle::try_current()
                .map_err(|_| PluginError::Internal("process isolation needs the async runtime".into()))
                .and_then(|h| {
                    h.block_on(Isolated::start_verifier(
                        lib.path.clone(),
                        spec.kind.clone(),
                        create,
                    ))
                })
                .map(|v| Arc::new(v) as Arc<dyn Verifier>),
        };
        match built {
            Ok(plugin) => verifiers.push(VerifierEntry {
                spec: spec.clone(),
                plugin,
                context,
                resolved_settings: settings,
                wants_bearer: source.wants_bearer(),
                library: source.library(),
            }),
            Err(e) => errors.push(settings_error(&spec.settings_location, &key, e)),
        }
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
        verifiers,
        store,
        passwords,
        watched_files: watched,
    })
}
