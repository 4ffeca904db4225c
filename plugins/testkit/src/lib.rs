//! Test fixtures (not for production): a plugin library with authenticator
//! types whose behaviour the end-to-end tests control.
//!
//! - `testkit_users`: accepts the users of `users` (username → identity
//!   fields) with the one `password` (a secret setting: `password_file` and
//!   `password_credential` work too).
//! - `testkit_down`: always [`PluginError::Unavailable`].
//! - `testkit_panic`: panics in `login`.
//! - `testkit_abort`: aborts the process in `login` (for `isolation = "process"`).
//! - `testkit_accept`: accepts anyone with a non-empty password, at once
//!   (the trivial authenticator of the overhead benchmark).
//! - `testkit_otp`: a password (`otp-password`) then a one-time code
//!   challenge (`123456`); a second challenge when the code is `again`.
//! - `testkit_redirect`: a redirect login against a simulated identity
//!   provider (see [`redirect`](crate::redirect)).
//! - `testkit_http`: accepts anyone with a non-empty password and echoes the
//!   instance's `[http]` settings (`ctx.http()`) as identity attributes
//!   (`http_timeout_ms`, `http_connect_timeout_ms`, `http_user_agent`,
//!   `http_ca_file`, `http_proxy_set`, `http_danger_allow_http`); with
//!   `fetch = "URL"` it also GETs the URL with `ctx.http_client()` and
//!   reports `http_fetch` = `ok:<body>` or `error:<code>`.
//! - verifier `testkit_tokens`: the tokens of `tokens` (token → claims) are
//!   valid, those in `revoked` are revoked; audience and unit primitive are
//!   checked like the real JWT verifier does.

use std::collections::BTreeMap;
use std::sync::Arc;

use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Context, Flow, Identity, LoginStep, PasswordLogin, Plugin,
    PluginConfig, PluginError, Secret, TokenRejection, VerifiedToken, Verifier, VerifierFactory,
    VerifyRequest, async_trait,
};
use serde::Deserialize;

mod redirect;

/// The fixture plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Testkit;

impl Plugin for Testkit {
    fn name(&self) -> &str {
        "testkit"
    }

    fn verifiers(&self) -> Vec<Box<dyn VerifierFactory>> {
        vec![Box::new(TokensFactory)]
    }

    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        vec![
            Box::new(Factory(Kind::Users)),
            Box::new(Factory(Kind::Down)),
            Box::new(Factory(Kind::Panic)),
            Box::new(Factory(Kind::Abort)),
            Box::new(Factory(Kind::Accept)),
            Box::new(Factory(Kind::Otp)),
            Box::new(redirect::RedirectFactory),
            Box::new(HttpEchoFactory),
        ]
    }
}

gatehouse_sdk::export_plugin!(Testkit);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Users,
    Down,
    Panic,
    Abort,
    Accept,
    Otp,
}

/// One fixture type.
#[derive(Clone, Copy, Debug)]
struct Factory(Kind);

/// Identity fields of a `testkit_users` user.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSpec {
    uid: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersSettings {
    password: Secret,
    #[serde(default)]
    case_insensitive: bool,
    #[serde(default)]
    users: BTreeMap<String, UserSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

impl AuthenticatorFactory for Factory {
    fn type_name(&self) -> &str {
        match self.0 {
            Kind::Users => "testkit_users",
            Kind::Down => "testkit_down",
            Kind::Panic => "testkit_panic",
            Kind::Abort => "testkit_abort",
            Kind::Accept => "testkit_accept",
            Kind::Otp => "testkit_otp",
        }
    }

    fn flow(&self) -> Flow {
        Flow::Password
    }

    fn secret_settings(&self) -> &[&str] {
        if self.0 == Kind::Users { &["password"] } else { &[] }
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        Ok(match self.0 {
            Kind::Users => {
                let s: UsersSettings = config.parse()?;
                if s.password.is_empty() {
                    return Err(PluginError::Misconfigured("password: must not be empty".into()));
                }
                Arc::new(Users(s))
            }
            other => {
                let _: NoSettings = config.parse()?;
                Arc::new(Fixed(other))
            }
        })
    }
}

struct Users(UsersSettings);

#[async_trait]
impl Authenticator for Users {
    async fn login(&self, _ctx: &Context, req: PasswordLogin) -> Result<LoginStep, PluginError> {
        let key = if self.0.case_insensitive {
            req.username.to_lowercase()
        } else {
            req.username.clone()
        };
        let user = self.0.users.iter().find(|(name, _)| {
            if self.0.case_insensitive {
                name.to_lowercase() == key
            } else {
                **name == key
            }
        });
        let ok =
            !req.password.is_empty() && self.0.password.constant_time_eq(req.password.expose().as_bytes());
        match (ok, user) {
            (true, Some((name, spec))) => {
                let mut id = Identity::new(
                    spec.uid.clone().unwrap_or_else(|| name.clone()),
                    req.username.clone(),
                )
                .case_insensitive(self.0.case_insensitive);
                id.email = spec.email.clone();
                id.first_name = spec.first_name.clone();
                id.last_name = spec.last_name.clone();
                id.groups = spec.groups.clone();
                id.attributes = spec.attributes.clone();
                Ok(LoginStep::Authenticated(id))
            }
            _ => Err(PluginError::InvalidCredentials),
        }
    }
}

struct Fixed(Kind);

#[async_trait]
impl Authenticator for Fixed {
    async fn continue_login(
        &self,
        _ctx: &Context,
        state: serde_json::Value,
        response: Secret,
    ) -> Result<LoginStep, PluginError> {
        let user = state["user"].as_str().unwrap_or_default().to_owned();
        if self.0 != Kind::Otp || user.is_empty() {
            return Err(PluginError::BadRequest("no challenge is pending".into()));
        }
        if response.constant_time_eq(b"again") {
            return Ok(LoginStep::Challenge(gatehouse_sdk::Challenge::new(
                "Second code:",
                true,
                serde_json::json!({"user": user}),
            )));
        }
        if response.constant_time_eq(b"123456") {
            Ok(LoginStep::Authenticated(Identity::new(user.clone(), user)))
        } else {
            Err(PluginError::InvalidCredentials)
        }
    }

    async fn login(&self, _ctx: &Context, req: PasswordLogin) -> Result<LoginStep, PluginError> {
        match self.0 {
            Kind::Down => Err(PluginError::Unavailable("testkit_down is always down".into())),
            Kind::Panic => panic!("testkit_panic panics on purpose"),
            Kind::Abort => std::process::abort(),
            Kind::Accept if !req.password.is_empty() => Ok(LoginStep::Authenticated(Identity::new(
                req.username.clone(),
                req.username,
            ))),
            Kind::Otp if req.password.constant_time_eq(b"otp-password") => Ok(LoginStep::Challenge(
                gatehouse_sdk::Challenge::new("Code:", false, serde_json::json!({"user": req.username})),
            )),
            _ => Err(PluginError::InvalidCredentials),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpEchoSettings {
    fetch: Option<String>,
}

struct HttpEchoFactory;

impl AuthenticatorFactory for HttpEchoFactory {
    fn type_name(&self) -> &str {
        "testkit_http"
    }

    fn flow(&self) -> Flow {
        Flow::Password
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        Ok(Arc::new(HttpEcho(config.parse()?)))
    }
}

struct HttpEcho(HttpEchoSettings);

#[async_trait]
impl Authenticator for HttpEcho {
    async fn login(&self, ctx: &Context, req: PasswordLogin) -> Result<LoginStep, PluginError> {
        if req.password.is_empty() {
            return Err(PluginError::InvalidCredentials);
        }
        let h = ctx.http();
        let mut id = Identity::new(req.username.clone(), req.username);
        let mut put = |k: &str, v: String| {
            id.attributes.insert(k.to_owned(), vec![v]);
        };
        put("http_timeout_ms", h.timeout.as_millis().to_string());
        put(
            "http_connect_timeout_ms",
            h.connect_timeout.as_millis().to_string(),
        );
        put("http_user_agent", h.user_agent.clone());
        put("http_ca_file", h.ca_file.clone().unwrap_or_default());
        put("http_proxy_set", h.proxy.is_some().to_string());
        put("http_danger_allow_http", h.danger_allow_http.to_string());
        if let Some(url) = &self.0.fetch {
            let result = match ctx.http_client() {
                Ok(client) => client.get_bytes(url, 4096).await,
                Err(e) => Err(e),
            };
            put(
                "http_fetch",
                match result {
                    Ok(body) => format!("ok:{}", String::from_utf8_lossy(&body)),
                    Err(e) => format!("error:{}", e.code()),
                },
            );
        }
        Ok(LoginStep::Authenticated(id))
    }
}

/// Claims of a `testkit_tokens` token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    subject: String,
    #[serde(default = "default_issuer")]
    issuer: String,
    #[serde(default)]
    audience: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

fn default_issuer() -> String {
    "testkit".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensSettings {
    tokens: BTreeMap<String, TokenSpec>,
    #[serde(default)]
    revoked: Vec<String>,
    audience: Option<String>,
}

struct TokensFactory;

impl VerifierFactory for TokensFactory {
    fn type_name(&self) -> &str {
        "testkit_tokens"
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Verifier>, PluginError> {
        Ok(Arc::new(Tokens(config.parse()?)))
    }
}

struct Tokens(TokensSettings);

#[async_trait]
impl Verifier for Tokens {
    async fn verify(&self, _ctx: &Context, req: &VerifyRequest) -> Result<VerifiedToken, PluginError> {
        let token = req.token.expose();
        if self.0.revoked.iter().any(|t| t == token) {
            return Err(PluginError::invalid_token(
                TokenRejection::Revoked,
                "the token was revoked",
            ));
        }
        let Some(spec) = self.0.tokens.get(token) else {
            return Err(PluginError::invalid_token(
                TokenRejection::BadSignature,
                "unknown token",
            ));
        };
        if let Some(aud) = req.audience.as_ref().or(self.0.audience.as_ref())
            && !spec.audience.contains(aud)
        {
            return Err(PluginError::invalid_token(
                TokenRejection::WrongAudience,
                format!("the token is not for {aud:?}"),
            ));
        }
        if let Some(up) = &req.unit_primitive
            && !spec.scopes.contains(up)
        {
            return Err(PluginError::invalid_token(
                TokenRejection::MissingScope,
                format!("the token lacks the scope {up:?}"),
            ));
        }
        let mut t = VerifiedToken::new(spec.issuer.clone(), spec.subject.clone());
        t.audience = spec.audience.clone();
        t.scopes = spec.scopes.clone();
        Ok(t)
    }
}
