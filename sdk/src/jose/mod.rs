//! Shared JOSE (feature `jose`): the code every gatehouse component that
//! handles JSON Web Tokens uses (the `jwt` verifier, OIDC ID tokens, the
//! issuer's published keys):
//!
//! - [`Issuer`]: one trusted issuer's keys, found by OIDC discovery
//!   (`<issuer>/.well-known/openid-configuration`, then `jwks_uri`), parsed
//!   once per algorithm when a set is fetched or loaded, refreshed at 80% of
//!   the TTL, refetched for an unknown `kid` at most once per interval,
//!   kept on failure (with backoff), and optionally persisted so a restart
//!   while the issuer is down still verifies.
//! - [`jws`]: strict compact-JWS parsing (allow-list without `none` or
//!   HMAC, unique JSON keys, `crit` understood or refused; `jku`, `x5u`,
//!   `jwk`, `x5c` ignored) and the time checks.
//! - [`verify_id_token`]: everything an OIDC client checks on an ID token
//!   but the nonce.
//! - [`publish`]: public JWKs and the JWKS document of an issuer's own keys.
//!
//! Fetching goes through a [`Fetcher`], so this module does not pick an
//! HTTP client: the SDK implements it for its shared `HttpClient` (feature
//! `http`: https only, `[http]` settings).

mod issuer;
pub mod jws;
mod keys;
pub mod publish;

use std::fmt;

pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::{Jwk, JwkSet};

pub use issuer::{
    IdTokenCheck, Issuer, IssuerOptions, MAX_DOCUMENT, SignatureError, persisted_file_name, verify_id_token,
};
pub use keys::{Key, KeySet, keys_of};

/// Why a token was refused: the SDK's [`TokenRejection`](crate::TokenRejection)
/// (JOSE checks answer the JWS reasons; `MissingScope` and `Revoked` are
/// for the verifiers' own rules).
pub use crate::TokenRejection as Reason;

/// Why an issuer's keys could not be fetched. [`Error::code`] is stable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The discovery document could not be fetched or used.
    Discovery {
        /// Its URL.
        url: String,
        /// What went wrong, with causes.
        reason: String,
    },
    /// The JWKS could not be fetched or used.
    Jwks {
        /// Its URL.
        url: String,
        /// What went wrong, with causes.
        reason: String,
    },
}

impl Error {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Discovery { .. } => "discovery_failed",
            Self::Jwks { .. } => "jwks_failed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discovery { url, reason } => write!(f, "discovery {url}: {reason}"),
            Self::Jwks { url, reason } => write!(f, "JWKS {url}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// How an [`Issuer`] fetches documents.
#[async_trait::async_trait]
pub trait Fetcher: Send + Sync + 'static {
    /// GETs `url` and returns the body of a 2xx answer, at most `limit`
    /// bytes; otherwise why not (with causes; never a secret).
    async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String>;
}

/// Seconds since the epoch, for claims.
pub fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
