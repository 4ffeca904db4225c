//! The [`Authenticator`] trait and the types of a login.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Context, Identity, PluginError, Secret};

/// The two login shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// Username and password in one call, maybe continued by challenges
    /// (local, LDAP, RADIUS, TACACS+).
    Password,
    /// The browser is sent to an identity provider and comes back with
    /// callback parameters (SAML, OIDC, GitHub).
    Redirect,
}

impl Flow {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Redirect => "redirect",
        }
    }
}

/// A password login as the daemon passes it to a plugin.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[non_exhaustive]
pub struct PasswordLogin {
    /// The username exactly as the user typed it.
    pub username: String,
    /// The password. Never log it.
    pub password: Secret,
    /// The end user's network address, when the calling application gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
}

impl PasswordLogin {
    /// A login attempt for `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            remote_addr: None,
        }
    }
}

/// A question the backend asks before it decides (RADIUS Access-Challenge,
/// TACACS+ GETDATA, a one-time code).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Challenge {
    /// The text to show the user.
    pub prompt: String,
    /// Whether the answer may be echoed while typed (false for codes and
    /// passwords).
    pub echo: bool,
    /// Opaque plugin state handed back to
    /// [`Authenticator::continue_login`]. The daemon keeps it in memory
    /// only, bound to a random login id.
    pub state: serde_json::Value,
}

impl Challenge {
    /// A challenge with a prompt, echo flag and plugin state.
    pub fn new(prompt: impl Into<String>, echo: bool, state: serde_json::Value) -> Self {
        Self {
            prompt: prompt.into(),
            echo,
            state,
        }
    }
}

/// The outcome of one step of a password login.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoginStep {
    /// The backend accepted the user.
    Authenticated(Identity),
    /// The backend wants another answer first.
    Challenge(Challenge),
}

/// The start of a redirect login.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[non_exhaustive]
pub struct StartRequest {
    /// Where the application wants the browser to end up afterwards.
    #[serde(default)]
    pub return_to: Option<String>,
    /// A fresh random value the daemon generated; the plugin must put it in
    /// the request to the identity provider (OIDC `state`, SAML `RelayState`)
    /// so the callback can be tied to this start.
    pub state: String,
    /// The URL the identity provider sends the browser back to (OIDC
    /// `redirect_uri`, the SAML ACS URL): the authenticator's
    /// `callback_url`, or one derived from the daemon's `public_url`.
    /// `None` when neither is configured.
    #[serde(default)]
    pub callback_url: Option<String>,
}

impl StartRequest {
    /// A start tied to `state`, with the callback URL the provider must
    /// send the browser back to.
    pub fn new(state: impl Into<String>, callback_url: Option<String>) -> Self {
        Self {
            return_to: None,
            state: state.into(),
            callback_url,
        }
    }
}

/// Where to send the browser.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Redirect {
    /// The identity provider URL, with every query parameter.
    pub url: String,
    /// Plugin state the daemon keeps (bound to `state`, single use, expiring)
    /// and hands back to [`Authenticator::finish`]: a nonce, a PKCE
    /// verifier, a SAML request id.
    pub flow_state: serde_json::Value,
}

impl Redirect {
    /// A redirect to `url` that keeps `flow_state` for the callback.
    pub fn new(url: impl Into<String>, flow_state: serde_json::Value) -> Self {
        Self {
            url: url.into(),
            flow_state,
        }
    }
}

/// The end of a redirect login.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[non_exhaustive]
pub struct FinishRequest {
    /// The callback's query or form parameters.
    pub params: BTreeMap<String, String>,
    /// What [`Redirect::flow_state`] held, when the daemon found the start
    /// this callback belongs to; `None` for an IdP-initiated login.
    #[serde(default)]
    pub flow_state: Option<serde_json::Value>,
    /// The same callback URL the start was given (the OIDC code exchange
    /// must repeat `redirect_uri`; SAML checks `Destination` against it).
    #[serde(default)]
    pub callback_url: Option<String>,
}

impl FinishRequest {
    /// A finish with the callback parameters, the start's flow state (if
    /// one was found) and the callback URL.
    pub fn new(
        params: BTreeMap<String, String>,
        flow_state: Option<serde_json::Value>,
        callback_url: Option<String>,
    ) -> Self {
        Self {
            params,
            flow_state,
            callback_url,
        }
    }
}

/// A document an authenticator publishes (SAML SP metadata).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Metadata {
    /// The media type, e.g. `application/samlmetadata+xml`.
    pub content_type: String,
    /// The document.
    pub body: String,
}

impl Metadata {
    /// A document of media type `content_type`.
    pub fn new(content_type: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            content_type: content_type.into(),
            body: body.into(),
        }
    }
}

/// A configured login backend.
///
/// Implement the methods of your type's [`Flow`] (declared once, by its
/// [`AuthenticatorFactory::flow`](crate::AuthenticatorFactory::flow)); the
/// defaults answer [`PluginError::Unsupported`]. Every method may be called
/// concurrently and may be cancelled (its future dropped) at any await
/// point, so keep no half-updated state across awaits.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks a username and password.
    async fn login(&self, ctx: &Context, request: PasswordLogin) -> Result<LoginStep, PluginError> {
        let _ = (ctx, request);
        Err(PluginError::Unsupported(
            "this authenticator has no password login".into(),
        ))
    }

    /// Continues a login after a [`Challenge`].
    async fn continue_login(
        &self,
        ctx: &Context,
        state: serde_json::Value,
        response: Secret,
    ) -> Result<LoginStep, PluginError> {
        let _ = (ctx, state, response);
        Err(PluginError::Unsupported(
            "this authenticator asks no challenges".into(),
        ))
    }

    /// Begins a redirect login.
    async fn start(&self, ctx: &Context, request: StartRequest) -> Result<Redirect, PluginError> {
        let _ = (ctx, request);
        Err(PluginError::Unsupported(
            "this authenticator has no redirect login".into(),
        ))
    }

    /// Completes a redirect login from the callback parameters. May answer
    /// a [`Challenge`] (a second factor after the identity provider), which
    /// the daemon continues through [`Authenticator::continue_login`].
    async fn finish(&self, ctx: &Context, request: FinishRequest) -> Result<LoginStep, PluginError> {
        let _ = (ctx, request);
        Err(PluginError::Unsupported(
            "this authenticator has no redirect login".into(),
        ))
    }

    /// A document to publish, such as SAML SP metadata.
    async fn metadata(&self, ctx: &Context) -> Result<Metadata, PluginError> {
        let _ = ctx;
        Err(PluginError::Unsupported(
            "this authenticator publishes no metadata".into(),
        ))
    }
}
