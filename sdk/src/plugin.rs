//! Factories: how the daemon builds plugin instances from configuration.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::{Authenticator, Context, Flow, PluginError, Verifier};

/// The configuration of one plugin instance, as the daemon resolved it.
///
/// `settings` is the `[authenticators.settings]` (or `[verifiers.settings]`)
/// table merged with `[authenticators.additional]`, converted to JSON, with
/// `*_file` and `*_credential` secrets already read into their plain keys.
#[derive(Clone)]
#[non_exhaustive]
pub struct PluginConfig {
    /// The instance name (`name = "…"` in the configuration).
    pub name: String,
    /// The type-specific settings.
    pub settings: serde_json::Value,
    /// Services the daemon offers this instance.
    pub context: Context,
}

impl PluginConfig {
    /// A configuration with a name and settings, and a fresh test context.
    pub fn new(name: impl Into<String>, settings: serde_json::Value) -> Self {
        let name = name.into();
        Self {
            context: Context::new(name.clone()),
            name,
            settings,
        }
    }

    /// Replaces the context.
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Deserializes the settings into the plugin's own settings type.
    ///
    /// Errors become [`PluginError::Misconfigured`] naming the offending key,
    /// which the daemon reports with the file and line of the settings table.
    /// The message never repeats the value given (it may be a password):
    /// see [`redact_input_values`](crate::redact_input_values).
    /// Use `#[serde(deny_unknown_fields)]` on `T` so typos are caught.
    /// A type error (`invalid type: …`) is prefixed with the key it is
    /// about (`pool_size: invalid type: …`), found by leaving each key out
    /// in turn, so the daemon can point at that key's line.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        T::deserialize(&self.settings).map_err(|e| {
            let message = e.to_string();
            let message = match offending_key::<T>(&self.settings, &message) {
                Some(key) => format!("{key}: {message}"),
                None => message,
            };
            PluginError::Misconfigured(crate::redact_input_values(&message))
        })
    }
}

/// The top-level key whose value caused `message`: leaving it out makes
/// the error go away or change. `None` when the message already names a
/// field, or no single key is to blame.
fn offending_key<T: DeserializeOwned>(settings: &serde_json::Value, message: &str) -> Option<String> {
    if message.contains("field `") {
        return None;
    }
    let map = settings.as_object()?;
    map.keys()
        .find(|key| {
            let mut without = map.clone();
            without.remove(key.as_str());
            match T::deserialize(&serde_json::Value::Object(without)) {
                Ok(_) => true,
                Err(e) => e.to_string() != message,
            }
        })
        .cloned()
}

/// Shows the setting names only: values may be secrets.
impl std::fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginConfig")
            .field("name", &self.name)
            .field("settings", &crate::SettingNames(&self.settings))
            .field("context", &self.context)
            .finish()
    }
}

/// Builds [`Authenticator`] instances of one type.
pub trait AuthenticatorFactory: Send + Sync + 'static {
    /// The `type = "…"` this factory answers to.
    fn type_name(&self) -> &str;

    /// The login shape of the instances.
    fn flow(&self) -> Flow;

    /// A JSON Schema of the settings (documentation and up-front checks).
    fn config_schema(&self) -> serde_json::Value {
        serde_json::json!({ "type": "object" })
    }

    /// Settings that hold secrets. For each name `K` listed here the daemon
    /// also accepts `K_file` (a path) and `K_credential` (a name in
    /// systemd's `$CREDENTIALS_DIRECTORY`) and reads them into `K`.
    fn secret_settings(&self) -> &[&str] {
        &[]
    }

    /// Checks the settings and builds an instance. Called on every load and
    /// reload that changed this instance's configuration; must not block
    /// on the network (connect lazily).
    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError>;
}

/// Builds [`Verifier`] instances of one type.
pub trait VerifierFactory: Send + Sync + 'static {
    /// The `type = "…"` this factory answers to.
    fn type_name(&self) -> &str;

    /// A JSON Schema of the settings.
    fn config_schema(&self) -> serde_json::Value {
        serde_json::json!({ "type": "object" })
    }

    /// Settings that hold secrets (see [`AuthenticatorFactory::secret_settings`]).
    fn secret_settings(&self) -> &[&str] {
        &[]
    }

    /// Checks the settings and builds an instance.
    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Verifier>, PluginError>;
}

/// A plugin: a set of authenticator and verifier types. Export one from a
/// `cdylib` with [`export_plugin!`](crate::export_plugin); the daemon can
/// also link one in directly.
pub trait Plugin: Send + Sync + 'static {
    /// A name for logs.
    fn name(&self) -> &str;

    /// The authenticator types.
    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        Vec::new()
    }

    /// The verifier types.
    fn verifiers(&self) -> Vec<Box<dyn VerifierFactory>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        url: String,
        #[serde(default)]
        pool_size: usize,
        #[serde(default)]
        tls: bool,
    }

    /// A type error named the expected type only (`invalid type: string,
    /// expected usize`): the daemon could not tell which key to point at.
    #[test]
    fn a_type_error_names_its_key_and_never_the_value() {
        let config = PluginConfig::new(
            "x",
            serde_json::json!({"url": "ldap://h", "pool_size": "hunter2", "tls": true}),
        );
        let Err(PluginError::Misconfigured(m)) = config.parse::<Settings>() else {
            panic!("expected a settings error");
        };
        assert!(m.starts_with("pool_size: invalid type"), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
        // a required key of the wrong type is named too
        let config = PluginConfig::new("x", serde_json::json!({"url": 5, "tls": true}));
        let Err(PluginError::Misconfigured(m)) = config.parse::<Settings>() else {
            panic!("expected a settings error");
        };
        assert!(m.starts_with("url: invalid type"), "{m}");
        // an unknown key already names itself
        let config = PluginConfig::new("x", serde_json::json!({"url": "u", "tsl": true}));
        let Err(PluginError::Misconfigured(m)) = config.parse::<Settings>() else {
            panic!("expected a settings error");
        };
        assert!(m.starts_with("unknown field `tsl`"), "{m}");
    }
}
