//! [`PluginError`]: how a plugin tells the daemon what to do next.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a token was refused. Each reason has a stable wire name
/// ([`TokenRejection::as_str`]) that clients see in `details.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenRejection {
    /// Not a well-formed token.
    Malformed,
    /// The algorithm is not on the allow-list (including `none`).
    UnsupportedAlgorithm,
    /// No key of the token's issuer has the token's `kid`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not one of the configured issuers.
    WrongIssuer,
    /// `aud` does not name the required audience.
    WrongAudience,
    /// The required unit primitive is not in `scopes`.
    MissingScope,
    /// The token (or the user behind it) was revoked.
    Revoked,
    /// An opaque token (a static-object token) that is not known: there
    /// is no signature to be bad.
    UnknownToken,
}

impl TokenRejection {
    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingScope => "missing_scope",
            Self::Revoked => "revoked",
            Self::UnknownToken => "unknown_token",
        }
    }
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error a plugin returns. Each variant says what the daemon does next.
///
/// Messages are shown to operators and sometimes to clients: they must never
/// contain a password, token, key or other secret.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PluginError {
    /// The user is unknown or the password, assertion or code is wrong.
    /// The daemon denies this authenticator and tries the next one in
    /// `order` (when the caller did not name one); the client sees 401
    /// `invalid_credentials`.
    InvalidCredentials,
    /// The credentials are right but a plugin rule refuses the user (a
    /// `require_group` or `deny_group`, a disabled account at the backend).
    /// The daemon stops and answers 403 `login_denied`.
    Denied(String),
    /// Every server of the backend is unreachable or misbehaving (down,
    /// timed out, wrong service credentials). In a password login or a
    /// token check the daemon skips this authenticator (verifier) and tries
    /// the next; when no other one accepted or refused, it answers 503
    /// `backend_unavailable`. Elsewhere (a redirect finish, a challenge
    /// answer) the client sees 503 `backend_unavailable` at once. The
    /// message goes to the log.
    Unavailable(String),
    /// The plugin's settings are wrong. Returned at load time, it makes the
    /// daemon reject the whole configuration (a reload keeps the running
    /// one). The message should name the setting. (Returned from a call,
    /// it is treated like [`PluginError::Internal`].)
    Misconfigured(String),
    /// The caller's request is malformed for this plugin (a missing callback
    /// parameter, an unknown login id). The client sees 400 `bad_request`.
    BadRequest(String),
    /// The plugin does not implement this operation (a password login
    /// against a redirect authenticator). The client sees 409 `flow_mismatch`.
    Unsupported(String),
    /// A verifier refused a token. The client sees 401 `invalid_token` with
    /// the reason.
    InvalidToken {
        /// The stable reason.
        reason: TokenRejection,
        /// Human text (no token content).
        detail: String,
    },
    /// An identity provider's answer (a SAML response) was refused for a
    /// named reason (`signature`, `audience`, `expired`, `replay`, …). The
    /// daemon treats it like [`PluginError::InvalidCredentials`] (the
    /// client sees 401 `invalid_credentials`) and puts the reason and the
    /// detail in its log, the audit trail and an admin's `explain`.
    InvalidAssertion {
        /// A stable snake_case reason.
        reason: String,
        /// Human text (never an assertion's content or a secret).
        detail: String,
    },
    /// A bug or an unexpected state inside the plugin, including a panic
    /// caught at the plugin boundary. The daemon logs it and, in a password
    /// login or a token check, routes around it like
    /// [`PluginError::Unavailable`]: it tries the next authenticator
    /// (verifier), and when no other one accepted or refused the client
    /// sees 503 `backend_unavailable`. From a redirect `start`/`finish`, a
    /// challenge answer or `metadata`, the client sees 500 `internal`.
    Internal(String),
}

impl PluginError {
    /// A token rejection with a message.
    pub fn invalid_token(reason: TokenRejection, detail: impl Into<String>) -> Self {
        Self::InvalidToken {
            reason,
            detail: detail.into(),
        }
    }

    /// An assertion refusal with a reason and a message.
    pub fn invalid_assertion(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidAssertion {
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    /// A short stable name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::Denied(_) => "denied",
            Self::Unavailable(_) => "unavailable",
            Self::Misconfigured(_) => "misconfigured",
            Self::BadRequest(_) => "bad_request",
            Self::Unsupported(_) => "unsupported",
            Self::InvalidToken { .. } => "invalid_token",
            Self::InvalidAssertion { .. } => "invalid_assertion",
            Self::Internal(_) => "internal",
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCredentials => f.write_str("invalid credentials"),
            Self::Denied(m) => write!(f, "login denied: {m}"),
            Self::Unavailable(m) => write!(f, "backend unavailable: {m}"),
            Self::Misconfigured(m) => write!(f, "misconfigured: {m}"),
            Self::BadRequest(m) => write!(f, "bad request: {m}"),
            Self::Unsupported(m) => write!(f, "unsupported: {m}"),
            Self::InvalidToken { reason, detail } => write!(f, "invalid token ({reason}): {detail}"),
            Self::InvalidAssertion { reason, detail } => write!(f, "invalid assertion ({reason}): {detail}"),
            Self::Internal(m) => write!(f, "internal plugin error: {m}"),
        }
    }
}

impl std::error::Error for PluginError {}

#[cfg(feature = "jose")]
impl From<crate::jose::SignatureError> for PluginError {
    /// No keys: the backend is unavailable; a refusal: an invalid token.
    fn from(e: crate::jose::SignatureError) -> Self {
        match e {
            crate::jose::SignatureError::Unavailable(m) => PluginError::Unavailable(m),
            crate::jose::SignatureError::Rejected(r, m) => PluginError::invalid_token(r, m),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The error documents as `sdk/README.md` and `gatehouse_plugin.h`
    /// show them to C authors.
    #[test]
    fn the_wire_shapes_are_the_documented_ones() {
        let readme = include_str!("../README.md");
        for (e, json) in [
            (
                PluginError::InvalidCredentials,
                r#"{"kind":"invalid_credentials"}"#,
            ),
            (
                PluginError::Denied("not in group ops".into()),
                r#"{"kind":"denied","message":"not in group ops"}"#,
            ),
            (
                PluginError::Unavailable("ldap://a: connection refused".into()),
                r#"{"kind":"unavailable","message":"ldap://a: connection refused"}"#,
            ),
            (
                PluginError::Misconfigured("users: missing".into()),
                r#"{"kind":"misconfigured","message":"users: missing"}"#,
            ),
            (
                PluginError::BadRequest("no code parameter".into()),
                r#"{"kind":"bad_request","message":"no code parameter"}"#,
            ),
            (
                PluginError::Unsupported("no redirect login".into()),
                r#"{"kind":"unsupported","message":"no redirect login"}"#,
            ),
            (
                PluginError::Internal("out of memory".into()),
                r#"{"kind":"internal","message":"out of memory"}"#,
            ),
            (
                PluginError::invalid_token(TokenRejection::Expired, "expired 5 minutes ago"),
                r#"{"kind":"invalid_token","message":{"reason":"expired","detail":"expired 5 minutes ago"}}"#,
            ),
            (
                PluginError::invalid_assertion("audience", "the assertion is for another service provider"),
                r#"{"kind":"invalid_assertion","message":{"reason":"audience","detail":"the assertion is for another service provider"}}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&e).unwrap(), json);
            assert_eq!(serde_json::from_str::<PluginError>(json).unwrap(), e);
            assert!(readme.contains(json), "README lacks {json}");
        }
    }
}
