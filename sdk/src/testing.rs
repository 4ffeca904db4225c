//! The conformance kit (feature `testing`): checks every plugin runs, in its
//! linked-in form and loaded through the C ABI.
//!
//! - [`AuthenticatorSuite`]: password authenticators.
//! - [`RedirectSuite`]: redirect authenticators (`start` / `finish`).
//! - [`VerifierSuite`]: token verifiers.
//!
//! Each runs on a factory (the linked-in form) or on a built library,
//! in any language ([`Loaded::open`], feature `host`):
//!
//! ```ignore
//! use gatehouse_sdk::testing::{AuthenticatorSuite, Loaded};
//! AuthenticatorSuite::new(&MyFactory, json!({...}))
//!     .good("alice", "alicepass")
//!     .secret("s3cret-setting-value")
//!     .run()
//!     .unwrap();
//! let built = Loaded::open("target/release/libmy_plugin.so", "my_type").unwrap();
//! AuthenticatorSuite::new(&built, json!({...})).good("alice", "alicepass").run().unwrap();
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Waker};

use crate::{
    Authenticator, AuthenticatorFactory, Context, FinishRequest, Flow, LoginStep, PasswordLogin,
    PluginConfig, PluginError, Redirect, StartRequest, VerifiedToken, Verifier, VerifierFactory,
    VerifyRequest,
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
    /// The `Debug` text of the configuration an instance is built from
    /// (the plugin's whole input: it holds the secrets).
    fn config_debug(&self, settings: &serde_json::Value) -> String {
        format!("{:?}", PluginConfig::new("conformance", settings.clone()))
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
                refuses_settings(self.subject.build(bad.clone()), bad, &self.secrets),
            );
        }
        let auth = match self.subject.build(self.settings.clone()) {
            Ok(a) => a,
            Err(e) => return Err(format!("cannot build with the suite's settings: {e}")),
        };
        let ctx = Context::new("conformance");
        check(
            "no secret in Debug output",
            self.no_secret_in(&self.subject.config_debug(&self.settings)),
        );
        if self.subject.flow() == Flow::Password {
            let _guard = rt.enter();
            let (user, pw) = self.good.clone().unwrap_or_default();
            let seen = Mutex::new(Vec::new());
            let login = |u: &str, p: &str| {
                let auth = Arc::clone(&auth);
                let ctx = ctx.clone();
                let req = PasswordLogin::new(u, p);
                let r = rt.block_on(async move { auth.login(&ctx, req).await });
                if let (Err(e), Ok(mut seen)) = (&r, seen.lock()) {
                    seen.push(format!("{e} {e:?}"));
                }
                r
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
            let mut secrets = self.secrets.clone();
            if !pw.is_empty() {
                secrets.push(pw.clone());
            }
            for text in seen.lock().map(|s| s.clone()).unwrap_or_default() {
                check("no secret in error messages", no_secret_in(&secrets, &text));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    }

    fn no_secret_in(&self, text: &str) -> Result<(), String> {
        no_secret_in(&self.secrets, text)
    }
}

/// Checks that building with `bad` settings is refused with
/// `Misconfigured`, in a message that shows none of `secrets`.
fn refuses_settings<T>(
    built: Result<T, PluginError>,
    bad: &serde_json::Value,
    secrets: &[String],
) -> Result<(), String> {
    match built {
        Err(PluginError::Misconfigured(m)) => no_secret_in(secrets, &m),
        Err(other) => Err(format!("{bad}: expected Misconfigured, got {other:?}")),
        Ok(_) => Err(format!("{bad}: accepted")),
    }
}

/// Fails when `text` contains one of `secrets` (without repeating it).
fn no_secret_in(secrets: &[String], text: &str) -> Result<(), String> {
    for s in secrets {
        if !s.is_empty() && text.contains(s.as_str()) {
            return Err(format!(
                "a secret ({} bytes) appears in a text of {} bytes",
                s.len(),
                text.len()
            ));
        }
    }
    Ok(())
}

/// A multi-threaded runtime for a suite.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Collects failures by check name.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, name: &str, r: Result<(), String>) {
        if let Err(e) = r {
            self.0.push(format!("{name}: {e}"));
        }
    }
    fn into_result(self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0.join("\n"))
        }
    }
}

fn schema_is_object(schema: &serde_json::Value) -> Result<(), String> {
    if schema.get("type").and_then(|t| t.as_str()) == Some("object") {
        Ok(())
    } else {
        Err(format!(
            "the settings schema must be a JSON Schema object, got {schema}"
        ))
    }
}

/// Produces the callback parameters an identity provider would send back
/// for a [`Redirect`] (by driving a test identity provider, or by signing
/// a response with a test key).
pub type CallbackParams<'a> = dyn Fn(&Redirect) -> Result<BTreeMap<String, String>, String> + 'a;

/// The conformance suite of redirect authenticators (`start`, `finish`).
pub struct RedirectSuite<'a> {
    subject: &'a dyn Subject,
    settings: serde_json::Value,
    callback_url: Option<String>,
    good: Option<Box<CallbackParams<'a>>>,
    secrets: Vec<String>,
    bad_settings: Vec<serde_json::Value>,
}

impl<'a> RedirectSuite<'a> {
    /// A suite for `subject` built with `settings`; starts are given
    /// `callback_url` (as the daemon derives it from `callback_url` or
    /// `public_url`).
    pub fn new(subject: &'a dyn Subject, settings: serde_json::Value, callback_url: Option<&str>) -> Self {
        Self {
            subject,
            settings,
            callback_url: callback_url.map(str::to_owned),
            good: None,
            secrets: Vec::new(),
            bad_settings: vec![serde_json::json!({"surely_not_a_setting": 1})],
        }
    }

    /// How to produce good callback parameters for a start: the suite
    /// then checks the whole login, and that tampering with any one
    /// parameter is refused.
    pub fn good_callback(
        mut self,
        params: impl Fn(&Redirect) -> Result<BTreeMap<String, String>, String> + 'a,
    ) -> Self {
        self.good = Some(Box::new(params));
        self
    }

    /// A secret value (a client secret, a signing key) that must never
    /// appear in `Debug` output, error messages, the redirect URL or the
    /// flow state.
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
        let rt = runtime()?;
        let mut f = Failures::default();
        f.check(
            "declares the redirect flow",
            match self.subject.flow() {
                Flow::Redirect => Ok(()),
                other => Err(format!("flow is {other:?}")),
            },
        );
        f.check("config schema", schema_is_object(&self.subject.schema()));
        for bad in &self.bad_settings {
            f.check(
                "bad settings are refused",
                refuses_settings(self.subject.build(bad.clone()), bad, &self.secrets),
            );
        }
        let auth = self
            .subject
            .build(self.settings.clone())
            .map_err(|e| format!("cannot build with the suite's settings: {e}"))?;
        f.check(
            "no secret in Debug output",
            no_secret_in(&self.secrets, &self.subject.config_debug(&self.settings)),
        );
        let ctx = Context::new("conformance");
        let _guard = rt.enter();
        let mut seen = Vec::new();
        let start = |state: &str| {
            let req = StartRequest::new(state, self.callback_url.clone());
            let (auth, ctx) = (Arc::clone(&auth), ctx.clone());
            rt.block_on(async move { auth.start(&ctx, req).await })
        };
        let finish = |params: BTreeMap<String, String>, flow_state: Option<serde_json::Value>| {
            let req = FinishRequest::new(params, flow_state, self.callback_url.clone());
            let (auth, ctx) = (Arc::clone(&auth), ctx.clone());
            rt.block_on(async move { auth.finish(&ctx, req).await })
        };
        let refused = |r: &Result<LoginStep, PluginError>| match r {
            Err(
                PluginError::InvalidCredentials
                | PluginError::InvalidAssertion { .. }
                | PluginError::BadRequest(_),
            ) => Ok(()),
            other => Err(format!(
                "expected InvalidCredentials, InvalidAssertion or BadRequest, got {other:?}"
            )),
        };

        let state = "conformance-state-7Qx2";
        let redirect = match start(state) {
            Ok(r) => r,
            Err(e) => {
                f.check("start", Err(format!("{e:?}")));
                return f.into_result();
            }
        };
        f.check(
            "the redirect URL carries the state",
            if !(redirect.url.starts_with("https://") || redirect.url.starts_with("http://")) {
                Err(format!("not an absolute http(s) URL: {}", redirect.url))
            } else if redirect.url.contains(state) {
                Ok(())
            } else {
                Err(format!("{} does not contain {state:?}", redirect.url))
            },
        );
        f.check(
            "no secret in the redirect URL or flow state",
            no_secret_in(
                &self.secrets,
                &format!("{} {}", redirect.url, redirect.flow_state),
            ),
        );
        let other = start("conformance-state-other");
        f.check(
            "each start is its own",
            match &other {
                Ok(o) if o.url.contains("conformance-state-other") && !o.url.contains(state) => Ok(()),
                o => Err(format!("{o:?}")),
            },
        );

        let bogus: BTreeMap<String, String> = [
            ("state".to_owned(), state.to_owned()),
            ("code".to_owned(), "conformance-bogus-code".to_owned()),
        ]
        .into();
        let good = self.good.as_ref().map(|g| g(&redirect));
        if let Some(Err(e)) = &good {
            f.check("producing good callback parameters", Err(e.clone()));
        }
        let good = good.and_then(Result::ok);
        let sample = good.clone().unwrap_or_else(|| bogus.clone());

        let r = finish(sample.clone(), None);
        f.check("finish without flow state is refused", refused(&r));
        seen.push(r);
        let r = finish(BTreeMap::new(), Some(redirect.flow_state.clone()));
        f.check("finish without parameters is refused", refused(&r));
        seen.push(r);
        let r = finish(bogus.clone(), Some(redirect.flow_state.clone()));
        f.check("finish with made-up parameters is refused", refused(&r));
        seen.push(r);
        if let Ok(o) = &other {
            let r = finish(sample.clone(), Some(o.flow_state.clone()));
            f.check("finish with another start's flow state is refused", refused(&r));
            seen.push(r);
        }
        if let Some(good) = &good {
            // `state` / `RelayState` tie the callback to its start: the
            // daemon checks them (and finds the flow state by them), so
            // the plugin is not asked to.
            for key in good.keys().filter(|k| *k != "state" && *k != "RelayState") {
                let mut tampered = good.clone();
                if let Some(v) = tampered.get_mut(key) {
                    *v = tamper(v);
                }
                let r = finish(tampered, Some(redirect.flow_state.clone()));
                f.check(&format!("finish with a tampered {key:?} is refused"), refused(&r));
                seen.push(r);
            }
            let r = finish(good.clone(), Some(redirect.flow_state.clone()));
            f.check(
                "the good callback logs in",
                match &r {
                    Ok(LoginStep::Authenticated(id)) if !id.uid.is_empty() => Ok(()),
                    Ok(LoginStep::Challenge(_)) => Ok(()),
                    other => Err(format!("expected an identity, got {other:?}")),
                },
            );
            seen.push(r);
        }
        for r in &seen {
            if let Err(e) = r {
                f.check(
                    "no secret in error messages",
                    no_secret_in(&self.secrets, &format!("{e} {e:?}")),
                );
            }
        }
        f.into_result()
    }
}

/// `value` with one character changed (the middle one, to an ASCII
/// letter it was not).
fn tamper(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.is_empty() {
        return "x".into();
    }
    let at = chars.len() / 2;
    let mut out = chars.clone();
    out[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    out.into_iter().collect()
}

/// Builds verifier instances for [`VerifierSuite`]: a factory or a loaded
/// library.
pub trait VerifierSubject {
    /// Builds an instance from settings.
    fn build(&self, settings: serde_json::Value) -> Result<Arc<dyn Verifier>, PluginError>;
    /// The settings' JSON Schema.
    fn schema(&self) -> serde_json::Value;
    /// The `Debug` text of the configuration an instance is built from.
    fn config_debug(&self, settings: &serde_json::Value) -> String {
        format!("{:?}", PluginConfig::new("conformance", settings.clone()))
    }
}

impl<F: VerifierFactory> VerifierSubject for F {
    fn build(&self, settings: serde_json::Value) -> Result<Arc<dyn Verifier>, PluginError> {
        VerifierFactory::build(self, PluginConfig::new("conformance", settings))
    }
    fn schema(&self) -> serde_json::Value {
        self.config_schema()
    }
}

/// The conformance suite of token verifiers.
pub struct VerifierSuite<'a> {
    subject: &'a dyn VerifierSubject,
    settings: serde_json::Value,
    good: Vec<String>,
    refused: Vec<String>,
    secrets: Vec<String>,
    bad_settings: Vec<serde_json::Value>,
}

impl<'a> VerifierSuite<'a> {
    /// A suite for `subject` built with `settings`.
    pub fn new(subject: &'a dyn VerifierSubject, settings: serde_json::Value) -> Self {
        Self {
            subject,
            settings,
            good: Vec::new(),
            refused: Vec::new(),
            secrets: Vec::new(),
            bad_settings: vec![serde_json::json!({"surely_not_a_setting": 1})],
        }
    }

    /// A token the instance accepts. The suite also checks that tampered
    /// copies of it are refused, and that it never shows up in errors.
    pub fn good(mut self, token: &str) -> Self {
        self.good.push(token.to_owned());
        self
    }

    /// A token the instance must refuse with `InvalidToken` (expired,
    /// wrong issuer, …).
    pub fn refused(mut self, token: &str) -> Self {
        self.refused.push(token.to_owned());
        self
    }

    /// A secret value (an HMAC key, a client secret) that must never
    /// appear in `Debug` output or error messages.
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
        let rt = runtime()?;
        let mut f = Failures::default();
        f.check("config schema", schema_is_object(&self.subject.schema()));
        for bad in &self.bad_settings {
            f.check(
                "bad settings are refused",
                refuses_settings(self.subject.build(bad.clone()), bad, &self.secrets),
            );
        }
        let verifier = self
            .subject
            .build(self.settings.clone())
            .map_err(|e| format!("cannot build with the suite's settings: {e}"))?;
        f.check(
            "no secret in Debug output",
            no_secret_in(&self.secrets, &self.subject.config_debug(&self.settings)),
        );
        let ctx = Context::new("conformance");
        let _guard = rt.enter();
        let verify = |token: &str| {
            let (v, ctx, req) = (Arc::clone(&verifier), ctx.clone(), VerifyRequest::new(token));
            rt.block_on(async move { v.verify(&ctx, &req).await })
        };
        let mut secrets = self.secrets.clone();
        secrets.extend(self.good.iter().cloned());
        let mut errors = Vec::new();
        let rejected = |what: &str, r: Result<VerifiedToken, PluginError>, errors: &mut Vec<String>| match r {
            Err(PluginError::InvalidToken { reason, detail }) => {
                errors.push(format!("{reason} {detail}"));
                Ok(())
            }
            Err(other) => {
                errors.push(format!("{other} {other:?}"));
                Err(format!("{what}: expected InvalidToken, got {other:?}"))
            }
            Ok(t) => Err(format!("{what}: accepted (subject {:?})", t.subject)),
        };
        for (i, token) in self.good.iter().enumerate() {
            f.check(
                "a good token verifies",
                match verify(token) {
                    Ok(t) if !t.subject.is_empty() => Ok(()),
                    Ok(_) => Err(format!("good token #{i}: empty subject")),
                    Err(e) => Err(format!("good token #{i}: {e:?}")),
                },
            );
            let len = token.chars().count();
            let tail: String = token.chars().skip(len * 2 / 3).collect();
            let head: String = token.chars().take(len * 2 / 3).collect();
            let variants = [
                ("tampered in the middle", tamper(token)),
                ("tampered near the end", format!("{head}{}", tamper(&tail))),
                ("cut in half", token.chars().take(len / 2).collect()),
                ("with a suffix", format!("{token}x")),
            ];
            for (what, bad) in variants {
                let r = verify(&bad);
                f.check(
                    "tampered tokens are refused",
                    rejected(&format!("good token #{i} {what}"), r, &mut errors),
                );
            }
        }
        for (i, token) in self.refused.iter().enumerate() {
            let r = verify(token);
            f.check(
                "refused tokens are refused",
                rejected(&format!("refused token #{i}"), r, &mut errors),
            );
        }
        for garbage in ["", "not-a-token", "a.b.c", "\0", "eyJ.eyJ.", "%%%"] {
            let r = verify(garbage);
            f.check(
                "garbage is refused",
                rejected(&format!("{garbage:?}"), r, &mut errors),
            );
        }
        for text in &errors {
            f.check("no secret in error messages", no_secret_in(&secrets, text));
        }
        // Concurrency: many checks at once all get the answer one check gets.
        if let Some(token) = self.good.first() {
            let bad = tamper(token);
            let results = rt.block_on(async {
                let mut tasks = Vec::new();
                for i in 0..16 {
                    let (v, ctx) = (Arc::clone(&verifier), ctx.clone());
                    let req = VerifyRequest::new(if i % 2 == 0 { token.clone() } else { bad.clone() });
                    tasks.push(tokio::spawn(async move { (i, v.verify(&ctx, &req).await) }));
                }
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await);
                }
                out
            });
            for r in results {
                f.check(
                    "concurrent verifies",
                    match r {
                        Ok((i, Ok(_))) if i % 2 == 0 => Ok(()),
                        Ok((i, Err(PluginError::InvalidToken { .. }))) if i % 2 == 1 => Ok(()),
                        Ok((i, other)) => Err(format!("#{i}: {:?}", other.map(|t| t.subject))),
                        Err(e) => Err(e.to_string()),
                    },
                );
            }
        }
        f.into_result()
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

/// A plugin type inside a loaded library, as a suite [`Subject`] or
/// [`VerifierSubject`] (the dynamic form of a plugin, in any language).
#[cfg(feature = "host")]
pub struct Loaded {
    /// The library.
    pub library: &'static crate::abi::host::Library,
    /// The authenticator or verifier type.
    pub type_name: String,
}

#[cfg(feature = "host")]
impl Loaded {
    /// Opens a built plugin library as the daemon does: reads its
    /// manifest (it must have one), loads it, checks the types the
    /// manifest lists against the descriptor, and finds `type_name` in
    /// it. This is how a third party runs the kit on their `.so`.
    pub fn open(path: impl AsRef<std::path::Path>, type_name: &str) -> Result<Self, String> {
        let path = path.as_ref();
        let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let manifest = crate::abi::manifest::read(path).map_err(|e| at(&e))?;
        let library = crate::abi::host::load(path).map_err(|e| at(&e))?;
        manifest.check_types(&library.descriptor).map_err(|e| at(&e))?;
        let d = &library.descriptor;
        if d.authenticator(type_name).is_none() && d.verifier(type_name).is_none() {
            return Err(at(&format!("the library provides no type {type_name:?}")));
        }
        Ok(Self {
            library,
            type_name: type_name.to_owned(),
        })
    }

    fn create_config(settings: serde_json::Value) -> crate::abi::CreateConfig {
        crate::abi::CreateConfig {
            name: "conformance".into(),
            settings,
            state_dir: None,
            config_dir: None,
            http: crate::HttpSettings::default(),
        }
    }
}

#[cfg(feature = "host")]
impl VerifierSubject for Loaded {
    fn build(&self, settings: serde_json::Value) -> Result<Arc<dyn Verifier>, PluginError> {
        self.library
            .create_verifier(&self.type_name, &Self::create_config(settings))
    }
    fn schema(&self) -> serde_json::Value {
        self.library
            .descriptor
            .verifier(&self.type_name)
            .map(|v| v.config_schema.clone())
            .unwrap_or_default()
    }
    fn config_debug(&self, settings: &serde_json::Value) -> String {
        format!("{:?}", Self::create_config(settings.clone()))
    }
}

#[cfg(feature = "host")]
impl Subject for Loaded {
    fn build(&self, settings: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
        self.library
            .create_authenticator(&self.type_name, &Self::create_config(settings))
    }
    fn config_debug(&self, settings: &serde_json::Value) -> String {
        format!("{:?}", Self::create_config(settings.clone()))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Identity, Secret, TokenRejection, async_trait};

    /// A redirect authenticator that signs the callback's `code` with its
    /// client secret and binds it to the start's nonce. `careless` skips
    /// the flow-state check (a broken plugin the kit must catch).
    struct Idp {
        secret: Secret,
        careless: bool,
    }

    fn sign(secret: &Secret, nonce: &str) -> String {
        // A toy MAC, good enough to tell tampered codes apart in a test.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in secret.expose().bytes().chain(nonce.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    #[async_trait]
    impl Authenticator for Idp {
        async fn start(&self, _ctx: &Context, req: StartRequest) -> Result<Redirect, PluginError> {
            let nonce = format!(
                "n-{}",
                req.state.len() * 7 + req.state.bytes().map(usize::from).sum::<usize>()
            );
            Ok(Redirect::new(
                format!("https://idp.example/authorize?state={}&nonce={nonce}", req.state),
                serde_json::json!({ "nonce": nonce }),
            ))
        }
        async fn finish(&self, _ctx: &Context, req: FinishRequest) -> Result<LoginStep, PluginError> {
            let nonce = match (&req.flow_state, self.careless) {
                (Some(s), _) => s["nonce"].as_str().unwrap_or_default().to_owned(),
                (None, true) => req.params.get("nonce").cloned().unwrap_or_default(),
                (None, false) => return Err(PluginError::BadRequest("no login was started".into())),
            };
            let code = req
                .params
                .get("code")
                .ok_or_else(|| PluginError::BadRequest("no code".into()))?;
            if self.careless || *code == sign(&self.secret, &nonce) {
                Ok(LoginStep::Authenticated(Identity::new("idp-user-1", "ida")))
            } else {
                Err(PluginError::InvalidCredentials)
            }
        }
    }

    struct IdpFactory {
        careless: bool,
    }

    impl AuthenticatorFactory for IdpFactory {
        fn type_name(&self) -> &str {
            "idp"
        }
        fn flow(&self) -> Flow {
            Flow::Redirect
        }
        fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
            let secret = config.settings["client_secret"]
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| PluginError::Misconfigured("client_secret: required".into()))?;
            Ok(Arc::new(Idp {
                secret: Secret::new(secret.to_owned()),
                careless: self.careless,
            }))
        }
    }

    fn idp_suite(factory: &IdpFactory) -> Result<(), String> {
        let secret = Secret::new("idp-client-secret".to_owned());
        RedirectSuite::new(
            factory,
            serde_json::json!({"client_secret": "idp-client-secret"}),
            Some("https://app.example/callback"),
        )
        .secret("idp-client-secret")
        .bad_settings(serde_json::json!({"client_secret": ""}))
        .good_callback(move |r: &Redirect| {
            let nonce = r.flow_state["nonce"].as_str().ok_or("no nonce")?;
            Ok([
                ("code".to_owned(), sign(&secret, nonce)),
                ("state".to_owned(), "conformance-state-7Qx2".to_owned()),
            ]
            .into())
        })
        .run()
    }

    #[test]
    fn a_correct_redirect_authenticator_passes() {
        idp_suite(&IdpFactory { careless: false }).unwrap();
    }

    #[test]
    fn the_redirect_suite_catches_a_careless_finish() {
        let err = idp_suite(&IdpFactory { careless: true }).unwrap_err();
        assert!(err.contains("finish without flow state is refused"), "{err}");
        assert!(err.contains("tampered \"code\""), "{err}");
    }

    /// Tokens are `sub.mac`; `lenient` accepts any token that starts with
    /// a known subject (a broken verifier).
    struct Tokens {
        key: Secret,
        lenient: bool,
    }

    #[async_trait]
    impl Verifier for Tokens {
        async fn verify(&self, _ctx: &Context, req: &VerifyRequest) -> Result<VerifiedToken, PluginError> {
            let token = req.token.expose();
            let Some((sub, mac)) = token.split_once('.') else {
                return Err(PluginError::invalid_token(TokenRejection::Malformed, "no dot"));
            };
            if self.lenient && sub == "alice" && !mac.is_empty() {
                return Ok(VerifiedToken::new("test", sub));
            }
            if mac == sign(&self.key, sub) {
                Ok(VerifiedToken::new("test", sub))
            } else {
                Err(PluginError::invalid_token(
                    TokenRejection::BadSignature,
                    "bad mac",
                ))
            }
        }
    }

    struct TokensFactory {
        lenient: bool,
    }

    impl VerifierFactory for TokensFactory {
        fn type_name(&self) -> &str {
            "tokens"
        }
        fn build(&self, config: PluginConfig) -> Result<Arc<dyn Verifier>, PluginError> {
            let key = config.settings["key"]
                .as_str()
                .ok_or_else(|| PluginError::Misconfigured("key: required".into()))?;
            Ok(Arc::new(Tokens {
                key: Secret::new(key.to_owned()),
                lenient: self.lenient,
            }))
        }
    }

    fn tokens_suite(factory: &TokensFactory) -> Result<(), String> {
        let key = Secret::new("hmac-key-1".to_owned());
        VerifierSuite::new(factory, serde_json::json!({"key": "hmac-key-1"}))
            .good(&format!("alice.{}", sign(&key, "alice")))
            .refused(&format!("bob.{}", sign(&Secret::new("other".to_owned()), "bob")))
            .secret("hmac-key-1")
            .run()
    }

    #[test]
    fn a_correct_verifier_passes() {
        tokens_suite(&TokensFactory { lenient: false }).unwrap();
    }

    #[test]
    fn the_verifier_suite_catches_a_lenient_verifier() {
        let err = tokens_suite(&TokensFactory { lenient: true }).unwrap_err();
        assert!(err.contains("tampered tokens are refused"), "{err}");
    }

    /// A subject whose configuration leaks its secret in `Debug`.
    struct Leaky;

    impl Subject for Leaky {
        fn build(&self, settings: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
            AuthenticatorFactory::build(&IdpFactory { careless: false }, PluginConfig::new("x", settings))
        }
        fn schema(&self) -> serde_json::Value {
            serde_json::json!({"type": "object"})
        }
        fn config_debug(&self, settings: &serde_json::Value) -> String {
            format!("{settings:?}")
        }
    }

    #[test]
    fn the_debug_check_formats_the_plugins_configuration() {
        let err = AuthenticatorSuite::new(&Leaky, serde_json::json!({"client_secret": "leaky-secret"}))
            .secret("leaky-secret")
            .run()
            .unwrap_err();
        assert!(err.contains("no secret in Debug output"), "{err}");
        assert!(
            !err.contains("leaky-secret"),
            "the report repeats the secret: {err}"
        );
        // The real PluginConfig redacts: the same settings pass that check.
        let ok = AuthenticatorSuite::new(
            &IdpFactory { careless: false },
            serde_json::json!({"client_secret": "leaky-secret"}),
        )
        .secret("leaky-secret")
        .run();
        assert!(ok.as_ref().err().is_none_or(|e| !e.contains("Debug")), "{ok:?}");
    }
}
