//! `testkit_redirect`: a redirect authenticator whose identity provider is
//! simulated by its settings, so the end-to-end tests drive the daemon's
//! whole redirect flow (start → provider → finish → maybe a challenge)
//! in every plugin mode.
//!
//! - `start` answers `{idp_url}?state=…&nonce=…&redirect_uri=…` and keeps
//!   the nonce and callback URL as flow state.
//! - The "provider" hands back `code = "<username>.<nonce>"`; `finish`
//!   accepts it only with the flow state of the same start (nonce equal,
//!   callback URL unchanged) for a user of `users`.
//! - A user with `second_factor = true` gets a challenge after `finish`;
//!   `654321` answers it.
//! - Without flow state (an unsolicited callback) only
//!   `allow_unsolicited = true` accepts, with `user = "<username>"`.
//! - `metadata` publishes a small XML document naming the callback URL.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Challenge, Context, FinishRequest, Flow, Identity, LoginStep,
    Metadata, PluginConfig, PluginError, Redirect, Secret, StartRequest, async_trait,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    second_factor: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_idp")]
    idp_url: String,
    #[serde(default)]
    users: BTreeMap<String, User>,
    #[serde(default)]
    allow_unsolicited: bool,
    /// Filled in by the daemon (the setting, or derived from `public_url`).
    #[serde(default)]
    callback_url: Option<String>,
}

fn default_idp() -> String {
    "https://idp.testkit.invalid/authorize".into()
}

/// The `testkit_redirect` factory.
pub(crate) struct RedirectFactory;

impl AuthenticatorFactory for RedirectFactory {
    fn type_name(&self) -> &str {
        "testkit_redirect"
    }

    fn flow(&self) -> Flow {
        Flow::Redirect
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        let s: Settings = config.parse()?;
        if !s.idp_url.starts_with("https://") {
            return Err(PluginError::Misconfigured(
                "idp_url: must be an https:// URL".into(),
            ));
        }
        Ok(Arc::new(TestRedirect(s)))
    }
}

struct TestRedirect(Settings);

/// A random-enough nonce for a fixture (the daemon's `state` is the real
/// random value).
fn nonce() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6e6f6e6365);
    format!("{:016x}", h.finish())
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl TestRedirect {
    fn identity(&self, username: &str) -> Result<Identity, PluginError> {
        let user = self
            .0
            .users
            .get(username)
            .ok_or(PluginError::InvalidCredentials)?;
        let mut id = Identity::new(username, username);
        id.email = user.email.clone();
        id.groups = user.groups.clone();
        Ok(id)
    }
}

#[async_trait]
impl Authenticator for TestRedirect {
    async fn start(&self, _ctx: &Context, req: StartRequest) -> Result<Redirect, PluginError> {
        if req.state.is_empty() {
            return Err(PluginError::BadRequest("a start needs the daemon's state".into()));
        }
        let nonce = nonce();
        let mut url = format!("{}?state={}&nonce={nonce}", self.0.idp_url, encode(&req.state));
        if let Some(cb) = &req.callback_url {
            url.push_str(&format!("&redirect_uri={}", encode(cb)));
        }
        Ok(Redirect::new(
            url,
            json!({"nonce": nonce, "callback_url": req.callback_url}),
        ))
    }

    async fn finish(&self, _ctx: &Context, req: FinishRequest) -> Result<LoginStep, PluginError> {
        let Some(flow) = req.flow_state else {
            if !self.0.allow_unsolicited {
                return Err(PluginError::InvalidCredentials);
            }
            let user = req.params.get("user").ok_or(PluginError::InvalidCredentials)?;
            return Ok(LoginStep::Authenticated(self.identity(user)?));
        };
        if flow["callback_url"].as_str() != req.callback_url.as_deref() {
            return Err(PluginError::BadRequest(
                "the callback URL changed since the start".into(),
            ));
        }
        let code = req.params.get("code").ok_or(PluginError::InvalidCredentials)?;
        let (username, nonce) = code.rsplit_once('.').ok_or(PluginError::InvalidCredentials)?;
        let expected = flow["nonce"].as_str().unwrap_or_default();
        if expected.is_empty() || !Secret::new(expected).constant_time_eq(nonce.as_bytes()) {
            return Err(PluginError::InvalidCredentials);
        }
        let identity = self.identity(username)?;
        if self.0.users.get(username).is_some_and(|u| u.second_factor) {
            return Ok(LoginStep::Challenge(Challenge::new(
                "Authenticator code:",
                false,
                json!({"user": username}),
            )));
        }
        Ok(LoginStep::Authenticated(identity))
    }

    async fn continue_login(
        &self,
        _ctx: &Context,
        state: serde_json::Value,
        response: Secret,
    ) -> Result<LoginStep, PluginError> {
        let user = state["user"]
            .as_str()
            .ok_or_else(|| PluginError::BadRequest("no challenge is pending".into()))?;
        if response.constant_time_eq(b"654321") {
            Ok(LoginStep::Authenticated(self.identity(user)?))
        } else {
            Err(PluginError::InvalidCredentials)
        }
    }

    async fn metadata(&self, _ctx: &Context) -> Result<Metadata, PluginError> {
        let acs = self.0.callback_url.as_deref().unwrap_or("");
        Ok(Metadata::new(
            "application/samlmetadata+xml",
            format!(
                "<EntityDescriptor entityID=\"testkit\"><AssertionConsumerService Location=\"{}\"/></EntityDescriptor>",
                acs.replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
            ),
        ))
    }
}
