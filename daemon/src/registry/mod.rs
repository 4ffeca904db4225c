//! The plugin registry: the one place a configured `type = "…"` is
//! resolved to where it comes from — built into the daemon
//! ([`builtin`]), a first-party crate linked in ([`linked`]), or a plugin
//! library ([`library`]) — and what the daemon must know about it before
//! building an instance (secret settings, login flow, bearer tokens).
//!
//! Authenticators and verifiers are two [`Family`]s of the same shape, so
//! resolution, secret handling, construction and reuse across reloads are
//! written once (`runtime::build`).

pub mod builtin;
pub mod library;
pub mod linked;
pub mod reference;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use gatehouse_sdk::abi::CreateConfig;
use gatehouse_sdk::abi::host::Library;
use gatehouse_sdk::proto::ConfigErrorEntry;
use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Flow, PluginConfig, PluginError, Verifier, VerifierFactory,
};

use crate::config::{AuthenticatorSpec, Config, Isolation, Location, VerifierSpec};
use crate::isolation::supervisor::Isolated;
use crate::store::Store;

pub use builtin::Builtin;
pub use library::{Catalog, LibraryInfo, Skipped};

/// What built-in types may use besides their configuration.
#[derive(Clone)]
pub struct Resources {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Limits concurrent password hashing across the daemon.
    pub hashing: Arc<tokio::sync::Semaphore>,
}

/// The fields every `[[authenticators]]` and `[[verifiers]]` entry has.
pub trait Spec: Clone + Send + Sync + 'static {
    /// `name = "…"`.
    fn name(&self) -> &str;
    /// `type = "…"`.
    fn type_name(&self) -> &str;
    /// `library = "…"`.
    fn library(&self) -> Option<&PathBuf>;
    /// `isolation = "…"`.
    fn isolation(&self) -> Isolation;
    /// The settings (secrets not yet resolved).
    fn settings(&self) -> &serde_json::Value;
    /// Where the entry is.
    fn location(&self) -> &Location;
    /// Where its settings are.
    fn settings_location(&self) -> &Location;
    /// Where one setting is (its line), else where the settings are.
    fn setting_location(&self, key: &str) -> Location {
        let mut loc = self.settings_location().clone();
        if let Some(line) = self.setting_line(key) {
            loc.line = Some(line);
        }
        loc
    }
    /// The line of one setting key, when known.
    fn setting_line(&self, key: &str) -> Option<u32>;
}

macro_rules! impl_spec {
    ($t:ty) => {
        impl Spec for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn type_name(&self) -> &str {
                &self.kind
            }
            fn library(&self) -> Option<&PathBuf> {
                self.library.as_ref()
            }
            fn isolation(&self) -> Isolation {
                self.isolation
            }
            fn settings(&self) -> &serde_json::Value {
                &self.settings
            }
            fn location(&self) -> &Location {
                &self.location
            }
            fn settings_location(&self) -> &Location {
                &self.settings_location
            }
            fn setting_line(&self, key: &str) -> Option<u32> {
                self.setting_lines.get(key).copied()
            }
        }
    };
}

impl_spec!(AuthenticatorSpec);
impl_spec!(VerifierSpec);

/// A boxed future (isolated children start asynchronously).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One kind of plugin instance: authenticators or verifiers.
pub trait Family: Sized + 'static {
    /// The instance: `dyn Authenticator` or `dyn Verifier`.
    type Object: ?Sized + Send + Sync + 'static;
    /// A linked-in factory: `dyn AuthenticatorFactory` or `dyn VerifierFactory`.
    type Factory: ?Sized + Send + Sync + 'static;
    /// What the daemon must know of a type (an authenticator's [`Flow`],
    /// a verifier's [`VerifierTraits`]).
    type Traits: Copy + Send + Sync + std::fmt::Debug + 'static;
    /// Its configuration entries.
    type Spec: Spec;

    /// `"authenticator"` or `"verifier"`.
    const NOUN: &'static str;
    /// The configuration array: `"authenticators"` or `"verifiers"`.
    const SECTION: &'static str;

    /// The built-in types of this family.
    fn builtins() -> &'static [Builtin<Self>];
    /// The linked-in factories of this family.
    fn linked() -> &'static [Box<Self::Factory>];
    /// A factory's `type`.
    fn factory_type(f: &Self::Factory) -> &str;
    /// A factory's traits.
    fn factory_traits(f: &Self::Factory) -> Self::Traits;
    /// A factory's secret settings.
    fn factory_secrets(f: &Self::Factory) -> Vec<String>;
    /// Builds through a factory.
    fn factory_build(f: &Self::Factory, config: PluginConfig) -> Result<Arc<Self::Object>, PluginError>;
    /// Traits and secret settings of a library's type, if it provides it.
    fn library_type(lib: &Library, type_name: &str) -> Option<(Self::Traits, Vec<String>)>;
    /// Every type of this family a library provides.
    fn library_types(lib: &Library) -> Vec<String>;
    /// Builds in this process through the C ABI.
    fn create_in_process(
        lib: &'static Library,
        type_name: &str,
        create: &CreateConfig,
    ) -> Result<Arc<Self::Object>, PluginError>;
    /// Completes the settings the daemon owns before a build (a redirect
    /// authenticator's effective `callback_url`); an error names the
    /// problem with the setting.
    fn prepare_settings(
        traits: Self::Traits,
        spec: &Self::Spec,
        config: &Config,
        settings: &mut serde_json::Value,
    ) -> Result<(), String> {
        let _ = (traits, spec, config, settings);
        Ok(())
    }
    /// Starts a child process hosting the instance.
    fn start_isolated(
        library: PathBuf,
        type_name: String,
        create: CreateConfig,
    ) -> BoxFuture<Result<Arc<Self::Object>, PluginError>>;
}

/// What the daemon must know of a verifier type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifierTraits {
    /// False when the verifier reads its credentials from the original
    /// request (headers, query) rather than from a bearer token.
    pub wants_bearer: bool,
}

/// The authenticator family.
pub enum Authenticators {}

/// The verifier family.
pub enum Verifiers {}

impl Family for Authenticators {
    type Object = dyn Authenticator;
    type Factory = dyn AuthenticatorFactory;
    type Traits = Flow;
    type Spec = AuthenticatorSpec;
    const NOUN: &'static str = "authenticator";
    const SECTION: &'static str = "authenticators";

    fn builtins() -> &'static [Builtin<Self>] {
        builtin::AUTHENTICATORS
    }
    fn linked() -> &'static [Box<Self::Factory>] {
        linked::authenticators()
    }
    fn factory_type(f: &Self::Factory) -> &str {
        f.type_name()
    }
    fn factory_traits(f: &Self::Factory) -> Flow {
        f.flow()
    }
    fn factory_secrets(f: &Self::Factory) -> Vec<String> {
        f.secret_settings().iter().map(|s| (*s).to_owned()).collect()
    }
    fn factory_build(f: &Self::Factory, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        f.build(config)
    }
    fn library_type(lib: &Library, type_name: &str) -> Option<(Flow, Vec<String>)> {
        lib.descriptor
            .authenticator(type_name)
            .map(|t| (t.flow, t.secret_settings.clone()))
    }
    fn library_types(lib: &Library) -> Vec<String> {
        lib.descriptor
            .authenticators
            .iter()
            .map(|t| t.type_name.clone())
            .collect()
    }
    fn create_in_process(
        lib: &'static Library,
        type_name: &str,
        create: &CreateConfig,
    ) -> Result<Arc<dyn Authenticator>, PluginError> {
        lib.create_authenticator(type_name, create)
    }
    fn prepare_settings(
        flow: Flow,
        spec: &AuthenticatorSpec,
        config: &Config,
        settings: &mut serde_json::Value,
    ) -> Result<(), String> {
        if flow != Flow::Redirect {
            return Ok(());
        }
        let url = callback_url(spec, config, settings)?;
        if let (Some(url), Some(map)) = (url, settings.as_object_mut()) {
            map.insert("callback_url".into(), serde_json::Value::String(url));
        }
        Ok(())
    }
    fn start_isolated(
        library: PathBuf,
        type_name: String,
        create: CreateConfig,
    ) -> BoxFuture<Result<Arc<dyn Authenticator>, PluginError>> {
        Box::pin(async move {
            let isolated = Isolated::start(library, type_name, create).await?;
            Ok(Arc::new(isolated) as Arc<dyn Authenticator>)
        })
    }
}

impl Family for Verifiers {
    type Object = dyn Verifier;
    type Factory = dyn VerifierFactory;
    type Traits = VerifierTraits;
    type Spec = VerifierSpec;
    const NOUN: &'static str = "verifier";
    const SECTION: &'static str = "verifiers";

    fn builtins() -> &'static [Builtin<Self>] {
        builtin::VERIFIERS
    }
    fn linked() -> &'static [Box<Self::Factory>] {
        linked::verifiers()
    }
    fn factory_type(f: &Self::Factory) -> &str {
        f.type_name()
    }
    fn factory_traits(_: &Self::Factory) -> VerifierTraits {
        VerifierTraits { wants_bearer: true }
    }
    fn factory_secrets(f: &Self::Factory) -> Vec<String> {
        f.secret_settings().iter().map(|s| (*s).to_owned()).collect()
    }
    fn factory_build(f: &Self::Factory, config: PluginConfig) -> Result<Arc<dyn Verifier>, PluginError> {
        f.build(config)
    }
    fn library_type(lib: &Library, type_name: &str) -> Option<(VerifierTraits, Vec<String>)> {
        lib.descriptor
            .verifier(type_name)
            .map(|t| (VerifierTraits { wants_bearer: true }, t.secret_settings.clone()))
    }
    fn library_types(lib: &Library) -> Vec<String> {
        lib.descriptor
            .verifiers
            .iter()
            .map(|t| t.type_name.clone())
            .collect()
    }
    fn create_in_process(
        lib: &'static Library,
        type_name: &str,
        create: &CreateConfig,
    ) -> Result<Arc<dyn Verifier>, PluginError> {
        lib.create_verifier(type_name, create)
    }
    fn start_isolated(
        library: PathBuf,
        type_name: String,
        create: CreateConfig,
    ) -> BoxFuture<Result<Arc<dyn Verifier>, PluginError>> {
        Box::pin(async move {
            let isolated = Isolated::start_verifier(library, type_name, create).await?;
            Ok(Arc::new(isolated) as Arc<dyn Verifier>)
        })
    }
}

/// The URL a redirect authenticator's identity provider sends the browser
/// back to: its `callback_url` setting, else `{public_url}/callback/{name}`
/// (the name percent-encoded), else none (the plugin decides whether it
/// can work without one).
pub fn callback_url(
    spec: &AuthenticatorSpec,
    config: &Config,
    settings: &serde_json::Value,
) -> Result<Option<String>, String> {
    match settings.get("callback_url") {
        Some(serde_json::Value::String(url)) => crate::config::absolute_url(url).map(|u| Some(u.to_owned())),
        Some(_) => Err("callback_url must be a string".into()),
        None => Ok(config
            .daemon
            .public_url
            .as_ref()
            .map(|base| format!("{base}/callback/{}", crate::client::encode_segment(&spec.name)))),
    }
}

/// Where a configured type comes from.
pub enum Origin<F: Family> {
    /// Built into the daemon (needs daemon resources).
    Builtin(&'static Builtin<F>),
    /// A first-party plugin crate linked in.
    Linked(&'static F::Factory),
    /// A plugin library (from `library = …` or `plugin_dirs`).
    Library(&'static Library),
}

impl<F: Family> Clone for Origin<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Family> Copy for Origin<F> {}

impl<F: Family> Origin<F> {
    /// The library it comes from, if any.
    pub fn library(self) -> Option<&'static Library> {
        match self {
            Self::Builtin(_) | Self::Linked(_) => None,
            Self::Library(l) => Some(l),
        }
    }

    /// A word for listings: `built-in`, `linked` or the library's path.
    pub fn describe(self) -> String {
        match self {
            Self::Builtin(_) => "built-in".into(),
            Self::Linked(_) => "linked".into(),
            Self::Library(l) => l.path.display().to_string(),
        }
    }
}

/// A type resolved for one configuration entry.
pub struct Resolved<F: Family> {
    /// Where it comes from.
    pub origin: Origin<F>,
    /// What the daemon must know of it.
    pub traits: F::Traits,
    /// Settings that hold secrets (`K`, `K_file`, `K_credential`).
    pub secret_settings: Vec<String>,
}

impl<F: Family> Resolved<F> {
    /// Builds an instance from resolved settings, in the way its origin
    /// and the entry's `isolation` say.
    pub fn build(
        &self,
        spec: &F::Spec,
        settings: serde_json::Value,
        context: &gatehouse_sdk::Context,
        resources: &Resources,
    ) -> Result<Arc<F::Object>, PluginError> {
        let plugin_config = || PluginConfig::new(spec.name(), settings.clone()).with_context(context.clone());
        match self.origin {
            Origin::Builtin(b) => (b.build)(plugin_config(), resources),
            Origin::Linked(f) => match spec.isolation() {
                Isolation::InProcess => F::factory_build(f, plugin_config()),
                Isolation::Process => {
                    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                        PluginError::Internal("process isolation needs the async runtime".into())
                    })?;
                    let create = create_config(spec, settings.clone(), context);
                    let started = F::start_isolated(
                        PathBuf::from(crate::isolation::LINKED),
                        spec.type_name().to_owned(),
                        create,
                    );
                    handle.block_on(started)
                }
            },
            Origin::Library(lib) => {
                let create = create_config(spec, settings.clone(), context);
                match spec.isolation() {
                    Isolation::InProcess => F::create_in_process(lib, spec.type_name(), &create),
                    Isolation::Process => {
                        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                            PluginError::Internal("process isolation needs the async runtime".into())
                        })?;
                        let started =
                            F::start_isolated(lib.path.clone(), spec.type_name().to_owned(), create);
                        // `build` runs on a blocking thread (never on an async worker).
                        handle.block_on(started)
                    }
                }
            }
        }
    }
}

/// The ABI `create` document of one instance.
pub fn create_config(
    spec: &impl Spec,
    settings: serde_json::Value,
    context: &gatehouse_sdk::Context,
) -> CreateConfig {
    CreateConfig {
        name: spec.name().to_owned(),
        settings,
        state_dir: context.state_dir().map(|d| d.display().to_string()),
        config_dir: spec
            .settings_location()
            .file
            .parent()
            .map(|d| d.display().to_string()),
        http: context.http().clone(),
    }
}

/// Every type this generation can build: built-ins, linked crates, and the
/// libraries of `plugin_dirs`.
pub struct Registry {
    catalog: Catalog,
}

impl Registry {
    /// Scans the configuration's `plugin_dirs` (see [`Catalog::scan`]).
    pub fn scan(config: &Config, errors: &mut Vec<ConfigErrorEntry>) -> Self {
        Self {
            catalog: Catalog::scan(config, errors),
        }
    }

    /// The type an entry names: its `library` if set, else a built-in, a
    /// linked crate, or a library from `plugin_dirs`, in that order. A
    /// `library` or `isolation = "process"` for a type the daemon provides
    /// itself is an error (library types never shadow built-in ones).
    pub fn resolve<F: Family>(&self, spec: &F::Spec) -> Result<Resolved<F>, ConfigErrorEntry> {
        let key = format!("{}[{:?}]", F::SECTION, spec.name());
        let type_name = spec.type_name();
        if let Some(own) = own_type::<F>(type_name) {
            // A linked crate may run in a child process (hostile input,
            // C libraries, heavy CPU, like SAML's); a built-in needs
            // the daemon's store and stays in process.
            let isolable = matches!(own.origin, Origin::Linked(_));
            if spec.library().is_some() || (spec.isolation() == Isolation::Process && !isolable) {
                let field = if spec.library().is_some() {
                    "library"
                } else {
                    "isolation"
                };
                return Err(spec.location().error(
                    format!("{key}.{field}"),
                    format!(
                        "{} type {type_name:?} is built into the daemon; `library` is for \
                         plugin libraries, isolation = \"process\" for libraries and linked plugins",
                        F::NOUN
                    ),
                ));
            }
            return Ok(own);
        }
        let lib = match spec.library() {
            Some(path) => self.catalog.load_explicit::<F>(path, spec, &key)?,
            None => self.catalog.get::<F>(type_name).ok_or_else(|| {
                let mut known = own_types::<F>();
                known.extend(self.catalog.types::<F>().map(str::to_owned));
                spec.location().error(
                    format!("{key}.type"),
                    format!(
                        "unknown {} type {type_name:?} (available: {})",
                        F::NOUN,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?,
        };
        let (traits, secret_settings) = F::library_type(lib, type_name).ok_or_else(|| {
            spec.location().error(
                format!("{key}.type"),
                format!(
                    "{} provides no {} type {type_name:?}",
                    lib.path.display(),
                    F::NOUN
                ),
            )
        })?;
        Ok(Resolved {
            origin: Origin::Library(lib),
            traits,
            secret_settings,
        })
    }

    /// Every type of both families with where it comes from, for
    /// `gatehouse plugins` and `/v1/health`.
    pub fn listing(&self) -> Vec<TypeListing> {
        let mut out = listing_of::<Authenticators>(self);
        out.extend(listing_of::<Verifiers>(self));
        out
    }

    /// The plugin libraries in use: those of `plugin_dirs` and those named
    /// by `library = "…"`.
    pub fn libraries(&self) -> Vec<LibraryInfo> {
        self.catalog.libraries()
    }

    /// The files of `plugin_dirs` that were skipped as not plugins.
    pub fn skipped(&self) -> &[Skipped] {
        self.catalog.skipped()
    }
}

/// One row of [`Registry::listing`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TypeListing {
    /// `authenticator` or `verifier`.
    pub family: &'static str,
    /// `type = "…"`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// `built-in`, `linked`, or the library path.
    pub origin: String,
}

fn listing_of<F: Family>(registry: &Registry) -> Vec<TypeListing> {
    let mut out: Vec<TypeListing> = own_types::<F>()
        .into_iter()
        .filter_map(|t| {
            own_type::<F>(&t).map(|o| TypeListing {
                family: F::NOUN,
                origin: o.origin.describe(),
                type_name: t,
            })
        })
        .collect();
    out.extend(registry.catalog.entries::<F>().map(|(t, lib)| TypeListing {
        family: F::NOUN,
        type_name: t.to_owned(),
        origin: lib.path.display().to_string(),
    }));
    for info in registry.catalog.explicit_libraries() {
        for t in F::library_types(info.library) {
            let row = TypeListing {
                family: F::NOUN,
                type_name: t,
                origin: info.library.path.display().to_string(),
            };
            if !out.contains(&row) {
                out.push(row);
            }
        }
    }
    out
}

/// A type the daemon provides itself (built in or linked).
pub fn own_type<F: Family>(type_name: &str) -> Option<Resolved<F>> {
    if let Some(b) = F::builtins().iter().find(|b| b.type_name == type_name) {
        return Some(Resolved {
            origin: Origin::Builtin(b),
            traits: b.traits,
            secret_settings: b.secret_settings.iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    F::linked()
        .iter()
        .find(|f| F::factory_type(f) == type_name)
        .map(|f| Resolved {
            origin: Origin::Linked(&**f),
            traits: F::factory_traits(f),
            secret_settings: F::factory_secrets(f),
        })
}

/// True for a type built into the daemon itself (not a linked crate nor a
/// library): such types resolve their subjects through the store.
pub fn is_builtin<F: Family>(type_name: &str) -> bool {
    F::builtins().iter().any(|b| b.type_name == type_name)
}

/// The names of every type the daemon provides itself.
pub fn own_types<F: Family>() -> Vec<String> {
    let mut v: Vec<String> = F::builtins().iter().map(|b| b.type_name.to_owned()).collect();
    v.extend(F::linked().iter().map(|f| F::factory_type(f).to_owned()));
    v
}
