//! The conformance kit (feature `testing`): checks every plugin runs, in its
//! linked-in form and loaded through the C ABI.
//!
//! ```ignore
//! use gatehouse_sdk::testing::AuthenticatorSuite;
//! AuthenticatorSuite::new(&MyFactory, json!({...}))
//!     .good("alice", "alicepass")
//!     .secret("s3cret-setting-value")
//!     .run()
//!     .unwrap();
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Waker};

use crate::{
    Authenticator, AuthenticatorFactory, Context, Flow, LoginStep, PasswordLogin, PluginConfig, PluginError,
};

/// Builds instances for the suite: a factory (linked-in form) or a loaded
/// library (dynamic form).
pub trait Subject {
    /// Builds an instance from settings.
    fn build(&self, settings: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError>;
    /// The settings' JSON Schema.
    fn schema(&self) -> serde_json::Value;
    /// The type's login shape (password unless said otherwise).
    fn flow(&self) -> Flow {
        Flow::Password
    }
}

impl<F: AuthenticatorFactory> Subject for F {
    fn build(&self, settings: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
        AuthenticatorFactory::build(self, PluginConfig::new("conformance", settings))
    }
    fn schema(&self) -> serde_json::Value {
        self.config_schema()
    }
    fn flow(&self) -> Flow {
        AuthenticatorFactory::flow(self)
    }
}

/// The authenticator conformance suite.
pub struct AuthenticatorSuite<'a> {
    subject: &'a dyn Subject,
    settings: serde_json::Value,
    good: Option<(String, String)>,
    secrets: Vec<String>,
    bad_settings: Vec<serde_json::Value>,
}

impl<'a> AuthenticatorSuite<'a> {
    /// A suite for `subject` built with `settings`.
    pub fn new(subject: &'a dyn Subject, settings: serde_json::Value) -> Self {
        Self {
            subject,
            settings,
            good: None,
            secrets: Vec::new(),
            bad_settings: vec![serde_json::json!({"surely_not_a_setting": 1})],
        }
    }

    /// A username and password the instance accepts.
    pub fn good(mut self, username: &str, password: &str) -> Self {
        self.good = Some((username.to_owned(), password.to_owned()));
        self
    }

    /// A secret value (from the settings) that must never appear in `Debug`
    /// output or error messages.
    pub fn secret(mut self, value: &str) -> Self {
        self.secrets.push(value.to_owned());
        self
    }

    /// Settings that must be refused with `Misconfigured`.
    pub fn bad_settings(mut self, settings: serde_json::Value) -> Self {
        self.bad_settings.push(settings);
        self
    }

    /// Runs every check; the error lists each failure.
    pub fn run(self) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let mut failures = Vec::new();
        let mut check = |name: &str, r: Result<(), String>| {
            if let Err(e) = r {
                failures.push(format!("{name}: {e}"));
            }
        };

        let schema = self.subject.schema();
        check(
            "config schema",
            if schema.get("type").and_then(|t| t.as_str()) == Some("object") {
                Ok(())
            } else {
                Err(format!(
                    "the settings schema must be a JSON Schema object, got {schema}"
                ))
            },
        );
        for bad in &self.bad_settings {
            check(
                "bad settings are refused",
                match self.subject.build(bad.clone()) {
                    Err(PluginError::Misconfigured(m)) => self.no_secret_in(&m),
                    Err(other) => Err(format!("{bad}: expected Misconfigured, got {other:?}")),
                    Ok(_) => Err(format!("{bad}: accepted")),
                },
            );
        }
        let auth = match self.subject.build(self.settings.clone()) {
            Ok(a) => a,
            Err(e) => return Err(format!("cannot build with the suite's settings: {e}")),
        };
        let ctx = Context::new("conformance");
        check(
            "no secret in Debug output",
            self.no_secret_in(&format!("{ctx:?}")),
        );
        if self.subject.flow() == Flow::Password {
            let _guard = rt.enter();
            let (user, pw) = self.good.clone().unwrap_or_default();
            let login = |u: &str, p: &str| {
                let auth = Arc::clone(&auth);
                let ctx = ctx.clone();
                let req = PasswordLogin::new(u, p);
                rt.block_on(async move { auth.login(&ctx, req).await })
            };
            if self.good.is_some() {
                check(
                    "right password is accepted",
                    match login(&user, &pw) {
                        Ok(LoginStep::Authenticated(id)) if !id.uid.is_empty() => Ok(()),
                        other => Err(format!("expected an identity, got {other:?}")),
                    },
                );
                check(
                    "wrong password",
                    expect_invalid(login(&user, &format!("{pw}-wrong"))),
                );
                check("empty password", expect_invalid(login(&user, "")));
                let debug = format!("{:?}", PasswordLogin::new(user.clone(), pw.clone()));
                check(
                    "password not in Debug output",
                    if debug.contains(&pw) { Err(debug) } else { Ok(()) },
                );
                // Cancellation safety: start logins and drop them half-way, then
                // a full login must still work.
                for _ in 0..8 {
                    let mut fut = auth.login(&ctx, PasswordLogin::new(user.clone(), pw.clone()));
                    let _ = Pin::new(&mut fut).poll(&mut TaskContext::from_waker(Waker::noop()));
                    drop(fut);
                }
                check(
                    "usable after cancelled logins",
                    match login(&user, &pw) {
                        Ok(LoginStep::Authenticated(_)) => Ok(()),
                        other => Err(format!("{other:?}")),
                    },
                );
                // Concurrency: many logins at once all get the right answer.
                let results = rt.block_on(async {
                    let mut tasks = Vec::new();
                    for i in 0..16 {
                        let auth = Arc::clone(&auth);
                        let ctx = ctx.clone();
                        let p = if i % 2 == 0 { pw.clone() } else { format!("{pw}x") };
                        let u = user.clone();
                        tasks.push(tokio::spawn(async move {
                            (i, auth.login(&ctx, PasswordLogin::new(u, p)).await)
                        }));
                    }
                    let mut out = Vec::new();
                    for t in tasks {
                        out.push(t.await);
                    }
                    out
                });
                for r in results {
                    check(
                        "concurrent logins",
                        match r {
                            Ok((i, Ok(LoginStep::Authenticated(_)))) if i % 2 == 0 => Ok(()),
                            Ok((i, Err(PluginError::InvalidCredentials))) if i % 2 == 1 => Ok(()),
                            other => Err(format!("{other:?}")),
                        },
                    );
                }
            }
            check(
                "unknown user",
                expect_invalid(login("no-such-user-conformance", "whatever")),
            );
            for injection in ["*", ")(uid=*", "\0", "admin\0", "a:b", "../../etc/passwd"] {
                check(
                    "odd usernames are just wrong",
                    match login(injection, &pw) {
                        Err(PluginError::InvalidCredentials) => Ok(()),
                        other => Err(format!("{injection:?}: {other:?}")),
                    },
                );
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    }

    fn no_secret_in(&self, text: &str) -> Result<(), String> {
        for s in &self.secrets {
            if !s.is_empty() && text.contains(s.as_str()) {
                return Err(format!("a secret appears in {text:?}"));
            }
        }
        Ok(())
    }
}

fn expect_invalid(r: Result<LoginStep, PluginError>) -> Result<(), String> {
    match r {
        Err(PluginError::InvalidCredentials) => Ok(()),
        other => Err(format!("expected InvalidCredentials, got {other:?}")),
    }
}

/// Asserts `value`'s `Debug` output contains none of `secrets`.
pub fn assert_debug_redacts(value: &impl Debug, secrets: &[&str]) {
    let text = format!("{value:?}");
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} appears in Debug output {text:?}");
    }
}

/// A plugin type inside a loaded library, as a suite [`Subject`] (the
/// dynamic form of a plugin).
#[cfg(feature = "host")]
pub struct Loaded {
    /// The library.
    pub library: &'static crate::abi::host::Library,
    /// The authenticator type.
    pub type_name: String,
}

#[cfg(feature = "host")]
impl Subject for Loaded {
    fn build(&self, settings: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
        self.library.create_authenticator(
            &self.type_name,
            &crate::abi::CreateConfig {
                name: "conformance".into(),
                settings,
                state_dir: None,
                config_dir: None,
                http: crate::HttpSettings::default(),
            },
        )
    }
    fn schema(&self) -> serde_json::Value {
        self.library
            .descriptor
            .authenticator(&self.type_name)
            .map(|a| a.config_schema.clone())
            .unwrap_or_default()
    }
    fn flow(&self) -> Flow {
        self.library
            .descriptor
            .authenticator(&self.type_name)
            .map_or(Flow::Password, |a| a.flow)
    }
}
