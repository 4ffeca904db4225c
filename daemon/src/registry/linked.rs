//! First-party plugins linked into the daemon: built on the SDK like any
//! other plugin, without the C ABI in between. Each sits behind the cargo
//! feature of its name (default on), so a distribution can leave a plugin
//! and its system libraries out. Adding one is one line in [`plugins`].

use std::sync::OnceLock;

use gatehouse_sdk::{AuthenticatorFactory, Plugin, VerifierFactory};

/// The linked plugins: one line each.
fn plugins() -> Vec<Box<dyn Plugin>> {
    vec![
        #[cfg(feature = "ldap")]
        Box::new(gatehouse_plugin_ldap::LdapPlugin),
        #[cfg(feature = "jwt")]
        Box::new(gatehouse_plugin_jwt::JwtPlugin),
    ]
}

/// Every linked authenticator factory.
pub fn authenticators() -> &'static [Box<dyn AuthenticatorFactory>] {
    static ALL: OnceLock<Vec<Box<dyn AuthenticatorFactory>>> = OnceLock::new();
    ALL.get_or_init(|| plugins().iter().flat_map(|p| p.authenticators()).collect())
}

/// Every linked verifier factory.
pub fn verifiers() -> &'static [Box<dyn VerifierFactory>] {
    static ALL: OnceLock<Vec<Box<dyn VerifierFactory>>> = OnceLock::new();
    ALL.get_or_init(|| plugins().iter().flat_map(|p| p.verifiers()).collect())
}
