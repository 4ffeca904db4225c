//! Types built into the daemon itself: they need daemon resources (the
//! store, the hashing limit) that plugins never see.

use std::sync::Arc;

use gatehouse_sdk::{Flow, PluginConfig, PluginError};

use super::{Authenticators, Family, Resources, VerifierTraits, Verifiers};
use crate::authn::local;
use crate::verifiers::static_object;

/// How a built-in type of family `F` is built.
pub type BuildFn<F> = fn(PluginConfig, &Resources) -> Result<Arc<<F as Family>::Object>, PluginError>;

/// A built-in type of family `F`.
pub struct Builtin<F: Family> {
    /// `type = "…"`.
    pub type_name: &'static str,
    /// What the daemon must know of it.
    pub traits: F::Traits,
    /// Settings that hold secrets.
    pub secret_settings: &'static [&'static str],
    /// Builds an instance.
    pub build: BuildFn<F>,
}

/// The built-in authenticator types.
pub const AUTHENTICATORS: &[Builtin<Authenticators>] = &[Builtin {
    type_name: "local",
    traits: Flow::Password,
    secret_settings: &[],
    build: local::build,
}];

/// The built-in verifier types.
pub const VERIFIERS: &[Builtin<Verifiers>] = &[Builtin {
    type_name: "static_object",
    traits: VerifierTraits { wants_bearer: false },
    secret_settings: &["storage_token"],
    build: static_object::build,
}];
