//! Built-in authenticators and the factory table the registry consults.

pub mod local;

use std::sync::Arc;

use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Flow, Plugin, PluginConfig, PluginError, VerifierFactory,
};

use crate::store::Store;

/// What built-in authenticators may use besides their configuration.
#[derive(Clone)]
pub struct Resources {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Limits concurrent password hashing across the daemon.
    pub hashing: Arc<tokio::sync::Semaphore>,
}

/// Builds an instance of a built-in type.
pub type BuildFn = fn(PluginConfig, &Resources) -> Result<Arc<dyn Authenticator>, PluginError>;

/// A built-in authenticator type.
pub struct Builtin {
    /// `type = "…"`.
    pub type_name: &'static str,
    /// Its login shape.
    pub flow: Flow,
    /// Settings that hold secrets.
    pub secret_settings: &'static [&'static str],
    /// Builds an instance.
    pub build: BuildFn,
}

/// Every built-in authenticator type (needing daemon resources).
pub const BUILTINS: &[Builtin] = &[Builtin {
    type_name: "local",
    flow: Flow::Password,
    secret_settings: &[],
    build: local::build,
}];

/// Finds a built-in type that needs daemon resources.
pub fn builtin(type_name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.type_name == type_name)
}

/// First-party plugins linked into the daemon (built on the SDK like any
/// other plugin, but without the C ABI in between).
pub fn linked() -> &'static [Box<dyn AuthenticatorFactory>] {
    static LINKED: std::sync::OnceLock<Vec<Box<dyn AuthenticatorFactory>>> = std::sync::OnceLock::new();
    LINKED.get_or_init(|| gatehouse_plugin_ldap::LdapPlugin.authenticators())
}

/// Finds a linked plugin type.
pub fn linked_type(type_name: &str) -> Option<&'static dyn AuthenticatorFactory> {
    linked()
        .iter()
        .find(|f| f.type_name() == type_name)
        .map(|f| f.as_ref())
}

/// Verifier types linked into the daemon.
pub fn linked_verifiers() -> &'static [Box<dyn VerifierFactory>] {
    static LINKED: std::sync::OnceLock<Vec<Box<dyn VerifierFactory>>> = std::sync::OnceLock::new();
    LINKED.get_or_init(|| gatehouse_plugin_jwt::JwtPlugin.verifiers())
}

/// Finds a linked verifier type.
pub fn linked_verifier(type_name: &str) -> Option<&'static dyn VerifierFactory> {
    linked_verifiers()
        .iter()
        .find(|f| f.type_name() == type_name)
        .map(|f| f.as_ref())
}

/// True for every type the daemon provides itself.
pub fn is_builtin(type_name: &str) -> bool {
    builtin(type_name).is_some() || linked_type(type_name).is_some()
}

/// Every type the daemon provides itself.
pub fn builtin_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = BUILTINS.iter().map(|b| b.type_name).collect();
    v.extend(linked().iter().map(|f| f.type_name()));
    v
}
