//! # gatehouse-sdk
//!
//! The one crate a gatehouse plugin depends on. A plugin provides
//! [`Authenticator`]s (login backends) or [`Verifier`]s (token checkers),
//! built from configuration by a factory. The daemon turns the
//! [`Identity`] an authenticator returns into a user; the plugin never sees
//! the daemon's store or another plugin's configuration.
//!
//! A complete plugin: a password authenticator that accepts the users listed
//! in its settings. The SDK is its only dependency: `serde` and
//! `serde_json` come re-exported ([`serde`], [`serde_json`]), and the
//! settings type derives through the re-export with
//! `#[serde(crate = "gatehouse_sdk::serde")]`.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//!
//! use gatehouse_sdk::{
//!     async_trait, Authenticator, AuthenticatorFactory, Context, Flow, Identity, LoginStep,
//!     PasswordLogin, PluginConfig, PluginError, Secret,
//! };
//! use gatehouse_sdk::serde::Deserialize;
//!
//! /// `[authenticators.settings]` of a `type = "static"` authenticator.
//! #[derive(Deserialize)]
//! #[serde(crate = "gatehouse_sdk::serde", deny_unknown_fields)]
//! struct Settings {
//!     /// username → password
//!     users: BTreeMap<String, Secret>,
//! }
//!
//! struct StaticUsers(Settings);
//!
//! #[async_trait]
//! impl Authenticator for StaticUsers {
//!     async fn login(&self, ctx: &Context, req: PasswordLogin) -> Result<LoginStep, PluginError> {
//!         // Never accept an empty password, and compare in constant time.
//!         if req.password.is_empty() {
//!             return Err(PluginError::InvalidCredentials);
//!         }
//!         match self.0.users.get(&req.username) {
//!             Some(pw) if pw.constant_time_eq(req.password.expose().as_bytes()) => {
//!                 ctx.info(&format!("accepted {}", req.username));
//!                 Ok(LoginStep::Authenticated(Identity::new(&req.username, &req.username)))
//!             }
//!             _ => Err(PluginError::InvalidCredentials),
//!         }
//!     }
//! }
//!
//! struct StaticUsersFactory;
//!
//! impl AuthenticatorFactory for StaticUsersFactory {
//!     fn type_name(&self) -> &str {
//!         "static"
//!     }
//!     fn flow(&self) -> Flow {
//!         Flow::Password
//!     }
//!     fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
//!         Ok(Arc::new(StaticUsers(config.parse()?)))
//!     }
//! }
//!
//! # tokio_test_block_on(async {
//! let config = PluginConfig::new("demo", gatehouse_sdk::serde_json::json!({"users": {"ann": "s3cret"}}));
//! let ctx = config.context.clone();
//! let auth = StaticUsersFactory.build(config).unwrap();
//! let ok = auth.login(&ctx, PasswordLogin::new("ann", "s3cret")).await;
//! assert!(matches!(ok, Ok(LoginStep::Authenticated(id)) if id.username == "ann"));
//! let bad = auth.login(&ctx, PasswordLogin::new("ann", "nope")).await;
//! assert!(matches!(bad, Err(PluginError::InvalidCredentials)));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     gatehouse_sdk::block_on(f)
//! # }
//! ```
//!
//! ## Errors decide what happens next
//! A plugin answers with a [`PluginError`] variant, and the daemon acts on
//! it: [`PluginError::InvalidCredentials`] denies (and lets the next
//! authenticator try), [`PluginError::Unavailable`] skips the backend,
//! [`PluginError::Misconfigured`] rejects the configuration at load time.
//!
//! ## Secrets
//! Put every secret in a [`Secret`]: its `Debug` output is redacted, and
//! [`Secret::constant_time_eq`] compares without a timing side channel.

#![deny(missing_docs)]

pub mod abi;
mod authenticator;
mod context;
mod duration;
mod error;
mod identity;
mod plugin;
pub mod proto;
mod redact;
mod secret;
mod verifier;

pub use async_trait::async_trait;
/// The `serde` a plugin's settings types derive from: a plugin needs no
/// `serde` dependency of its own. Derive through it with
/// `#[serde(crate = "gatehouse_sdk::serde")]`.
pub use serde;
/// The `serde_json` of [`PluginConfig::settings`], schemas and the ABI
/// documents: a plugin needs no `serde_json` dependency of its own.
pub use serde_json;

pub use authenticator::{
    Authenticator, Challenge, FinishRequest, Flow, LoginStep, Metadata, PasswordLogin, Redirect, StartRequest,
};
pub use context::{Clock, Context, HttpSettings, Level, Logger, NullLogger, SystemClock};
pub use duration::parse_duration;
pub use error::{PluginError, TokenRejection};
pub use identity::{Identity, OnceKey};
pub use plugin::{AuthenticatorFactory, Plugin, PluginConfig, VerifierFactory};
pub use redact::{SettingNames, redact_input_values};
pub use secret::{Secret, constant_time_eq};
pub use verifier::{OriginalRequest, VerifiedToken, Verifier, VerifyRequest};

/// The SDK version a plugin was built with (semver).
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs a future to completion on the current thread, polling it in a
/// loop. Meant for examples and simple tests of futures that do not need
/// an I/O reactor; real plugins run on the daemon's runtime.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Wake, Waker};

    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "http")]
pub mod http;

#[cfg(feature = "jose")]
pub mod jose;

/// Runs CPU-heavy or blocking work (password hashing, file reads) off the
/// async workers, on the runtime the plugin runs on.
#[cfg(any(feature = "export", feature = "testing", feature = "host"))]
pub async fn blocking<F, R>(f: F) -> Result<R, PluginError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h
            .spawn_blocking(f)
            .await
            .map_err(|e| PluginError::Internal(format!("blocking task failed: {e}"))),
        Err(_) => Ok(f()),
    }
}
