//! First-party plugins linked into the daemon: built on the SDK like any
//! other plugin, without the C ABI in between. Each sits behind the cargo
//! feature of its name (default on), so a distribution can leave a plugin
//! and its system libraries out. Adding one is one line in [`plugins`].
//!
//! A program that embeds the daemon (or a test of the in-process tier) may
//! [`link`] more plugins before the first configuration is built.

use std::sync::{Mutex, OnceLock};

use gatehouse_sdk::{AuthenticatorFactory, Plugin, VerifierFactory};

/// The linked plugins: one line each.
fn plugins() -> Vec<Box<dyn Plugin>> {
    vec![
        #[cfg(feature = "ldap")]
        Box::new(gatehouse_plugin_ldap::LdapPlugin),
        #[cfg(feature = "jwt")]
        Box::new(gatehouse_plugin_jwt::JwtPlugin),
        #[cfg(feature = "github")]
        Box::new(gatehouse_plugin_github::GithubPlugin),
        #[cfg(feature = "oidc")]
        Box::new(gatehouse_plugin_oidc::OidcPlugin),
        #[cfg(feature = "radius")]
        Box::new(gatehouse_plugin_radius::RadiusPlugin),
        #[cfg(feature = "saml")]
        Box::new(gatehouse_plugin_saml::SamlPlugin),
    ]
}

/// Plugins given to [`link`], waiting for the table to be built (`None`
/// once it was: the table is fixed).
static EXTRA: Mutex<Option<Vec<Box<dyn Plugin>>>> = Mutex::new(Some(Vec::new()));
/// Every linked plugin, fixed at first use.
static ALL: OnceLock<Vec<Box<dyn Plugin>>> = OnceLock::new();

fn all() -> &'static [Box<dyn Plugin>] {
    ALL.get_or_init(|| {
        let mut all = plugins();
        if let Ok(mut extra) = EXTRA.lock()
            && let Some(mut more) = extra.take()
        {
            all.append(&mut more);
        }
        all
    })
}

/// Links another plugin into this process's daemon. Only before the first
/// configuration is built: afterwards the table is fixed and `Err` gives
/// the plugin back.
pub fn link(plugin: Box<dyn Plugin>) -> Result<(), Box<dyn Plugin>> {
    match EXTRA.lock() {
        Ok(mut extra) => match extra.as_mut() {
            Some(waiting) => {
                waiting.push(plugin);
                Ok(())
            }
            None => Err(plugin),
        },
        Err(_) => Err(plugin),
    }
}

/// Every linked authenticator factory.
pub fn authenticators() -> &'static [Box<dyn AuthenticatorFactory>] {
    static FACTORIES: OnceLock<Vec<Box<dyn AuthenticatorFactory>>> = OnceLock::new();
    FACTORIES.get_or_init(|| all().iter().flat_map(|p| p.authenticators()).collect())
}

/// Every linked verifier factory.
pub fn verifiers() -> &'static [Box<dyn VerifierFactory>] {
    static FACTORIES: OnceLock<Vec<Box<dyn VerifierFactory>>> = OnceLock::new();
    FACTORIES.get_or_init(|| all().iter().flat_map(|p| p.verifiers()).collect())
}
