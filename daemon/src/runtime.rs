//! One generation of the daemon: configuration plus constructed plugins.
//!
//! A reload builds a complete new [`Runtime`] beside the running one and
//! publishes it with one pointer swap; a request holds one `Arc<Runtime>`
//! from start to end, so it sees exactly one generation. Both plugin
//! families are built by one generic [`build_family`]: resolve the type
//! (the [`registry`](crate::registry)), resolve secrets, reuse an unchanged
//! instance or build a new one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use gatehouse_sdk::abi::host::Library;
use gatehouse_sdk::proto::ConfigErrorEntry;
use gatehouse_sdk::{Context, Flow, Level, Logger, PluginError};

use crate::authn::local::{LocalSettings, PasswordPolicy};
use crate::config::secrets::resolve_secrets;
use crate::config::{Config, ConfigErrors, Location};
use crate::registry::{Authenticators, Family, Registry, Resources, Spec, VerifierTraits, Verifiers};
use crate::store::{self, Store};

/// A constructed plugin instance of family `F`.
pub struct Entry<F: Family> {
    /// Its configuration.
    pub spec: F::Spec,
    /// What the daemon knows of its type (flow, bearer tokens).
    pub traits: F::Traits,
    /// The instance.
    pub plugin: Arc<F::Object>,
    /// The context handed to its calls.
    pub context: Context,
    /// Its settings with secrets resolved (to detect changes on reload).
    pub resolved_settings: serde_json::Value,
    /// The plugin library it came from, if any (a file replaced at the
    /// same path is another library).
    pub library: Option<&'static Library>,
    /// Its backend's state as its calls found it.
    pub backend: Arc<crate::backend::BackendState>,
}

impl<F: Family> Entry<F> {
    /// Runs one call of this instance through [`crate::guard::plugin_call`]
    /// and records what it said about the backend.
    pub async fn call<T>(
        &self,
        what: &str,
        limit: std::time::Duration,
        fut: impl Future<Output = Result<T, PluginError>>,
    ) -> Result<T, PluginError> {
        let result = crate::guard::plugin_call(what, limit, fut).await;
        self.backend.observe(&result);
        result
    }
}

/// A constructed authenticator.
pub type AuthenticatorEntry = Entry<Authenticators>;

/// A constructed verifier.
pub type VerifierEntry = Entry<Verifiers>;

impl Entry<Authenticators> {
    /// Its login shape.
    pub fn flow(&self) -> Flow {
        self.traits
    }

    /// A redirect authenticator's callback URL (see
    /// [`registry::callback_url`](crate::registry::callback_url)).
    pub fn callback_url(&self) -> Option<&str> {
        self.resolved_settings
            .get("callback_url")
            .and_then(|v| v.as_str())
    }
}

impl Entry<Verifiers> {
    /// Whether forward auth must find a bearer token for it (false for
    /// verifiers that read the original request themselves).
    pub fn wants_bearer(&self) -> bool {
        let VerifierTraits { wants_bearer } = self.traits;
        wants_bearer
    }
}

/// One generation.
pub struct Runtime {
    /// Counts up from 1 with every successful load.
    pub generation: u64,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// The configuration it was built from.
    pub config: Arc<Config>,
    /// Every type this generation can build.
    pub registry: Registry,
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
    /// The token issuer, when `[issuer]` is configured: its keys and
    /// reuse cache outlive generations while its key settings stay.
    pub issuer: Option<Arc<crate::issuer::Issuer>>,
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

/// A plugin's refusal to build, as a configuration error on its settings.
/// The message is shown as the plugin wrote it, with the instance's secret
/// values and any input value serde quoted taken out: it reaches logs,
/// `/v1/health` and the reload answer.
fn settings_error<S: Spec>(spec: &S, key: &str, e: PluginError, secrets: &[&str]) -> ConfigErrorEntry {
    let message = match e {
        PluginError::Misconfigured(m) => m,
        other => other.to_string(),
    };
    let mut message = gatehouse_sdk::redact_input_values(&message);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        message = message.replace(secret, "<redacted>");
    }
    setting_error(spec, key, message)
}

/// A settings error at the key it names (`unknown field `k``, `missing
/// field `k``, or a message that starts with `k:`), on that key's line;
/// otherwise at the settings table.
fn setting_error<S: Spec>(spec: &S, key: &str, message: String) -> ConfigErrorEntry {
    match offending_setting(spec, &message) {
        Some(k) => spec
            .setting_location(&k)
            .error(format!("{key}.settings.{k}"), message),
        None => spec.settings_location().error(format!("{key}.settings"), message),
    }
}

/// The setting a plugin's message is about, if it names one.
fn offending_setting<S: Spec>(spec: &S, message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.split_once(marker).map(|(_, r)| r)
            && let Some((name, _)) = rest.split_once('`')
        {
            return Some(name.to_owned());
        }
    }
    let word: String = message
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-'))
        .collect();
    if word.is_empty() || !message[word.len()..].starts_with(':') {
        return None;
    }
    // a secret read from `K_file` / `K_credential` is reported as `K`
    [word.clone(), format!("{word}_file"), format!("{word}_credential")]
        .into_iter()
        .find(|k| spec.setting_line(k).is_some())
        .or_else(|| spec.settings().get(&word).map(|_| word))
}

/// The plain values of an instance's secret settings (to scrub messages).
fn secret_values<'a>(settings: &'a serde_json::Value, keys: &[String]) -> Vec<&'a str> {
    keys.iter()
        .filter_map(|k| settings.get(k).and_then(|v| v.as_str()))
        .collect()
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

/// What every instance of a generation shares while it is built.
struct Shared<'a> {
    config: &'a Config,
    registry: &'a Registry,
    resources: &'a Resources,
    /// Whether the store is the previous generation's (instances built on
    /// another store are never reused).
    store_reused: bool,
}

/// Builds every entry of one family. An instance of `previous` is reused
/// when its type comes from the same place and its resolved settings are
/// unchanged (a changed secret file builds a new instance).
fn build_family<F: Family>(
    specs: &[F::Spec],
    previous: &[Entry<F>],
    shared: &Shared<'_>,
    watched: &mut Vec<PathBuf>,
    errors: &mut Vec<ConfigErrorEntry>,
) -> Vec<Entry<F>> {
    let mut built = Vec::with_capacity(specs.len());
    for spec in specs {
        let key = format!("{}[{:?}]", F::SECTION, spec.name());
        let resolved = match shared.registry.resolve::<F>(spec) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mut settings = spec.settings().clone();
        let errors_before = errors.len();
        let complete = resolve_secrets(
            &mut settings,
            &resolved.secret_settings,
            spec.settings_location(),
            &format!("{key}.settings"),
            &shared.config.credentials,
            watched,
            errors,
        );
        if !complete || errors.len() > errors_before {
            // A secret that could not be read (or a check outside the unit,
            // noted by `check_config`): building would only add a
            // follow-on "required" error.
            continue;
        }
        if let Err(e) = F::prepare_settings(resolved.traits, spec, shared.config, &mut settings) {
            errors.push(setting_error(spec, &key, e));
            continue;
        }
        let library = resolved.origin.library();
        let reusable = previous.iter().find(|old| {
            old.spec.name() == spec.name()
                && old.spec.type_name() == spec.type_name()
                && old.spec.library() == spec.library()
                && old.spec.isolation() == spec.isolation()
                && old.resolved_settings == settings
                && same_library(old.library, library)
                && old.context.http() == &shared.config.http.settings
                && shared.store_reused
        });
        if let Some(old) = reusable {
            built.push(Entry {
                spec: spec.clone(),
                traits: old.traits,
                plugin: Arc::clone(&old.plugin),
                context: old.context.clone(),
                resolved_settings: settings,
                library: old.library,
                backend: Arc::clone(&old.backend),
            });
            continue;
        }
        let context = instance_context(spec.name(), spec.settings_location(), shared.config);
        match resolved.build(spec, settings.clone(), &context, shared.resources) {
            Ok(plugin) => built.push(Entry {
                spec: spec.clone(),
                traits: resolved.traits,
                plugin,
                context,
                resolved_settings: settings,
                library,
                backend: Arc::default(),
            }),
            Err(e) => {
                let secrets = secret_values(&settings, &resolved.secret_settings);
                errors.push(settings_error(spec, &key, e, &secrets));
            }
        }
    }
    built
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

/// The password rules of the first enabled local authenticator.
fn password_policy(authenticators: &[AuthenticatorEntry]) -> Option<PasswordPolicy> {
    let local = authenticators
        .iter()
        .find(|a| a.spec.kind == "local" && a.spec.enabled)?;
    let settings = serde_json::from_value::<LocalSettings>(local.resolved_settings.clone()).ok()?;
    PasswordPolicy::new(&settings).ok()
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
    let store: Arc<dyn Store> = match previous {
        Some(p) if p.config.store == config.store => Arc::clone(&p.store),
        // `build` runs on a blocking thread: waiting here stalls no worker.
        _ => match tokio::runtime::Handle::try_current()
            .map_err(|e| store::StoreError::Backend(e.to_string()))
            .and_then(|h| h.block_on(store::open(&config.store.url)))
        {
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
    let mut errors = Vec::new();
    let registry = Registry::scan(&config, &mut errors);
    let shared = Shared {
        config: &config,
        registry: &registry,
        resources: &resources,
        store_reused: previous.is_some_and(|p| Arc::ptr_eq(&p.store, &store)),
    };
    let mut watched = config.files.clone();
    let authenticators = build_family::<Authenticators>(
        &config.authenticators,
        previous.map_or(&[], |p| &p.authenticators),
        &shared,
        &mut watched,
        &mut errors,
    );
    for a in authenticators
        .iter()
        .filter(|a| a.spec.offline_max_age.is_some() && a.flow() != Flow::Password)
    {
        errors.push(a.spec.location.error(
            format!("authenticators[{:?}].offline_max_age", a.spec.name),
            "offline login keeps passwords: it applies to password authenticators, not to redirect logins",
        ));
    }
    let verifiers = build_family::<Verifiers>(
        &config.verifiers,
        previous.map_or(&[], |p| &p.verifiers),
        &shared,
        &mut watched,
        &mut errors,
    );
    let issuer = match &config.issuer {
        None => None,
        Some(ic) => {
            watched.extend(ic.catalog.files.iter().cloned());
            match previous.and_then(|p| Some((p.issuer.as_ref()?, p.config.issuer.as_ref()?))) {
                Some((i, old)) if old.same_keys(ic) && shared.store_reused => Some(Arc::clone(i)),
                // `build` runs on a blocking thread: waiting here stalls no worker.
                _ => match tokio::runtime::Handle::try_current()
                    .map_err(|e| {
                        crate::issuer::keys::KeyError::Store(store::StoreError::Backend(e.to_string()))
                    })
                    .and_then(|h| {
                        h.block_on(crate::issuer::Issuer::open(
                            ic,
                            Arc::clone(&store),
                            gatehouse_sdk::jose::unix(SystemTime::now()),
                        ))
                    }) {
                    Ok(i) => Some(Arc::new(i)),
                    Err(e) => {
                        errors.push(Location::file(&config.main_file).error("issuer", e.to_string()));
                        None
                    }
                },
            }
        }
    };
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let passwords = match password_policy(&authenticators) {
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
        registry,
        authenticators,
        verifiers,
        store,
        passwords,
        watched_files: watched,
        issuer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One authenticator spec loaded from `settings` (a `[…settings]` body).
    fn spec(settings: &str) -> (tempfile::TempDir, crate::config::AuthenticatorSpec) {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("g.toml");
        std::fs::write(
            &main,
            format!(
                "[[authenticators]]\nname = \"X\"\ntype = \"ldap\"\n\n[authenticators.settings]\n{settings}"
            ),
        )
        .unwrap();
        let spec = crate::config::load(&main).unwrap().authenticators.remove(0);
        (dir, spec)
    }

    #[test]
    fn settings_errors_lose_secret_values_and_quoted_input() {
        let (_dir, spec) = spec("a = 1\n");
        let e = settings_error(
            &spec,
            "authenticators[\"X\"]",
            PluginError::Misconfigured("cannot bind as cn=svc with hunter2-hunter2 to ldap://h".into()),
            &["hunter2-hunter2"],
        );
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(e.message.contains("<redacted>"), "{}", e.message);
        let e = settings_error(
            &spec,
            "authenticators[\"X\"]",
            PluginError::Misconfigured("invalid type: integer `8675309123`, expected a string".into()),
            &[],
        );
        assert!(!e.message.contains("8675309123"), "{}", e.message);
    }

    /// A plugin's settings error pointed at the `[authenticators.settings]`
    /// header: it names the key and its line now.
    #[test]
    fn settings_errors_point_at_the_offending_key() {
        let (_dir, spec) =
            spec("server_uri = \"ldap://h\"\n\n\npool_size = \"ten\"\nbind_password_file = \"pw\"\n");
        let key = "authenticators[\"X\"]";
        let e = settings_error(
            &spec,
            key,
            PluginError::Misconfigured("pool_size: invalid type".into()),
            &[],
        );
        assert_eq!(e.key.as_deref(), Some("authenticators[\"X\"].settings.pool_size"));
        assert_eq!(e.line, Some(9));
        let e = settings_error(
            &spec,
            key,
            PluginError::Misconfigured("unknown field `server_uri`, expected one of …".into()),
            &[],
        );
        assert_eq!(
            e.key.as_deref(),
            Some("authenticators[\"X\"].settings.server_uri")
        );
        assert_eq!(e.line, Some(6));
        // a secret given as `K_file` is reported at that line
        let e = settings_error(
            &spec,
            key,
            PluginError::Misconfigured("bind_password: too short".into()),
            &[],
        );
        assert_eq!(
            e.key.as_deref(),
            Some("authenticators[\"X\"].settings.bind_password_file")
        );
        assert_eq!(e.line, Some(10));
        // a missing key: the table's line
        let e = settings_error(
            &spec,
            key,
            PluginError::Misconfigured("missing field `base`".into()),
            &[],
        );
        assert_eq!(e.key.as_deref(), Some("authenticators[\"X\"].settings.base"));
        assert_eq!(e.line, Some(5));
        // no key named: the table
        let e = settings_error(
            &spec,
            key,
            PluginError::Misconfigured("TLS: no roots".into()),
            &[],
        );
        assert_eq!(e.key.as_deref(), Some("authenticators[\"X\"].settings"));
        assert_eq!(e.line, Some(5));
    }
}
