//! Built-in authenticators and the factory table the registry consults.

pub mod local;

use std::sync::Arc;

use gatehouse_sdk::{Authenticator, Flow, PluginConfig, PluginError};

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

/// Every built-in authenticator type.
pub const BUILTINS: &[Builtin] = &[Builtin {
    type_name: "local",
    flow: Flow::Password,
    secret_settings: &[],
    build: local::build,
}];

/// Finds a built-in type.
pub fn builtin(type_name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.type_name == type_name)
}
