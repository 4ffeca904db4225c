//! The [`Verifier`] trait and the types of a token check.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Context, PluginError, Secret};

/// The request a token came with, for verifiers that look at more than the
/// token (static-object tokens, forward-auth).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[non_exhaustive]
pub struct OriginalRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query of the original request.
    pub uri: String,
    /// Headers, lowercased names. Secret-bearing headers are passed as-is:
    /// never log them.
    pub headers: BTreeMap<String, String>,
}

/// One token check.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[non_exhaustive]
pub struct VerifyRequest {
    /// The token.
    pub token: Secret,
    /// The audience the caller requires, overriding the configured one.
    pub audience: Option<String>,
    /// A scope (unit primitive) that must be present in the token.
    pub unit_primitive: Option<String>,
    /// The original request, for forward-auth.
    pub request: Option<OriginalRequest>,
}

impl VerifyRequest {
    /// A check of `token` with no further requirements.
    pub fn new(token: impl Into<Secret>) -> Self {
        Self {
            token: token.into(),
            ..Self::default()
        }
    }

    /// Requires a unit primitive.
    pub fn with_unit_primitive(mut self, unit_primitive: impl Into<String>) -> Self {
        self.unit_primitive = Some(unit_primitive.into());
        self
    }

    /// Requires an audience.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
}

/// What a verifier established about a good token.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// `iss`.
    pub issuer: String,
    /// `sub`, or the user the token resolved to.
    pub subject: String,
    /// `aud`, always as a list.
    pub audience: Vec<String>,
    /// The `scopes` claim.
    pub scopes: Vec<String>,
    /// `exp` as Unix seconds, if the token expires.
    pub expires_at: Option<u64>,
    /// Every claim.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// True when the answer came from the verifier's cache of verified
    /// tokens (the request's audience and scope were still checked).
    #[serde(default)]
    pub cached: bool,
}

impl VerifiedToken {
    /// A result for `subject` issued by `issuer`.
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            ..Self::default()
        }
    }
}

/// A configured token checker.
#[async_trait]
pub trait Verifier: Send + Sync + 'static {
    /// Checks a token. Refusals are [`PluginError::InvalidToken`] with a
    /// reason; an unreachable key source is [`PluginError::Unavailable`].
    async fn verify(&self, ctx: &Context, request: &VerifyRequest) -> Result<VerifiedToken, PluginError>;

    /// The state of its key sources (one entry per issuer whose keys it
    /// fetches), for `gatehouse status`. Default: none.
    fn key_sources(&self) -> Vec<crate::proto::IssuerKeys> {
        Vec::new()
    }
}
