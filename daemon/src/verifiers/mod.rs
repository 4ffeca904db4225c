//! Built-in verifier types that need daemon resources (the store).

pub mod static_object;

use std::sync::Arc;

use gatehouse_sdk::{PluginConfig, PluginError, Verifier};

use crate::authn::Resources;

/// Builds an instance of a built-in verifier type.
pub type BuildFn = fn(PluginConfig, &Resources) -> Result<Arc<dyn Verifier>, PluginError>;

/// A built-in verifier type.
pub struct BuiltinVerifier {
    /// `type = "…"`.
    pub type_name: &'static str,
    /// Settings that hold secrets.
    pub secret_settings: &'static [&'static str],
    /// False when the verifier reads its credentials from the original
    /// request (headers, query) rather than from a bearer token.
    pub wants_bearer: bool,
    /// Builds an instance.
    pub build: BuildFn,
}

/// Every built-in verifier type needing daemon resources.
pub const BUILTINS: &[BuiltinVerifier] = &[BuiltinVerifier {
    type_name: "static_object",
    secret_settings: &["storage_token"],
    wants_bearer: false,
    build: static_object::build,
}];

/// Finds one.
pub fn builtin(type_name: &str) -> Option<&'static BuiltinVerifier> {
    BUILTINS.iter().find(|b| b.type_name == type_name)
}
