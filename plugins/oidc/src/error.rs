//! [`OidcError`]: why a login failed, with a stable code, and what the
//! daemon makes of it ([`PluginError`]).

use std::fmt;

use gatehouse_sdk::{PluginError, TokenRejection};

/// Why an OIDC login failed. [`OidcError::code`] is stable; messages never
/// hold a code, token, secret or verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OidcError {
    /// The provider sent the browser back with `error=…` (the user
    /// declined, `access_denied`; a misconfigured client).
    Provider {
        /// The OAuth error code, as the provider sent it (cleaned).
        error: String,
        /// `error_description`, when given (cleaned, cut).
        description: Option<String>,
    },
    /// The token endpoint refused the code with an OAuth error
    /// (`invalid_grant`: a used, expired or foreign code).
    TokenEndpoint {
        /// The OAuth error code (cleaned).
        error: String,
        /// `error_description`, when given (cleaned, cut).
        description: Option<String>,
    },
    /// The provider could not be reached, or answered something unusable
    /// (HTTP status without an OAuth error, a response without an ID token,
    /// a bad discovery document).
    Unavailable(String),
    /// The callback lacks something it must have, or has something it must
    /// not (no `code`, no flow state).
    BadCallback(String),
    /// The callback names another issuer (`iss`, RFC 9207): a mix-up.
    CallbackIssuer {
        /// The `iss` seen (cleaned).
        seen: String,
    },
    /// The ID token was refused (signature, `alg`, `iss`, `aud`, `azp`,
    /// `exp`, `iat`).
    IdToken {
        /// The JOSE reason.
        reason: TokenRejection,
        /// What exactly.
        detail: String,
    },
    /// The ID token's `nonce` is not the one this login sent.
    NonceMismatch,
    /// The ID token's `at_hash` does not match the access token.
    AtHashMismatch,
    /// The userinfo answer is about another subject than the ID token.
    UserinfoSubject,
    /// A claim the identity needs is missing.
    MissingClaim(String),
    /// A Google account outside the configured hosted domain.
    HostedDomain {
        /// The `hd` seen (`None`: a consumer account).
        seen: Option<String>,
    },
    /// Azure AD left the groups out of the token (too many: the
    /// groups-overage claim `_claim_names` points elsewhere).
    GroupsOverage {
        /// The groups claim that overflowed.
        claim: String,
    },
}

/// An OAuth error code or description, safe for logs and messages:
/// printable ASCII only, at most `max` characters.
pub(crate) fn clean(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

impl OidcError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Provider { .. } => "provider_error",
            Self::TokenEndpoint { .. } => "token_endpoint_error",
            Self::Unavailable(_) => "provider_unavailable",
            Self::BadCallback(_) => "bad_callback",
            Self::CallbackIssuer { .. } => "callback_issuer_mismatch",
            Self::IdToken { .. } => "id_token_rejected",
            Self::NonceMismatch => "nonce_mismatch",
            Self::AtHashMismatch => "at_hash_mismatch",
            Self::UserinfoSubject => "userinfo_sub_mismatch",
            Self::MissingClaim(_) => "missing_claim",
            Self::HostedDomain { .. } => "hosted_domain_mismatch",
            Self::GroupsOverage { .. } => "groups_overage",
        }
    }
}

impl fmt::Display for OidcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            Self::Provider { error, description } => {
                write!(f, "{code}: the identity provider answered {error}")?;
                if let Some(d) = description {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            Self::TokenEndpoint { error, description } => {
                write!(f, "{code}: the token endpoint refused the code: {error}")?;
                if let Some(d) = description {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            Self::Unavailable(m) | Self::BadCallback(m) => write!(f, "{code}: {m}"),
            Self::CallbackIssuer { seen } => write!(
                f,
                "{code}: the callback comes from issuer {seen:?}, not this authenticator's provider"
            ),
            Self::IdToken { reason, detail } => write!(f, "{code} ({reason}): {detail}"),
            Self::NonceMismatch => write!(f, "{code}: the ID token was not issued for this login"),
            Self::AtHashMismatch => write!(
                f,
                "{code}: the ID token's at_hash does not match the access token"
            ),
            Self::UserinfoSubject => write!(f, "{code}: the userinfo answer is about another user"),
            Self::MissingClaim(c) => write!(f, "{code}: the provider sent no {c:?} claim"),
            Self::HostedDomain { seen: Some(d) } => {
                write!(f, "{code}: the account belongs to {d:?}, not the allowed domain")
            }
            Self::HostedDomain { seen: None } => {
                write!(
                    f,
                    "{code}: the account belongs to no hosted domain (a consumer account)"
                )
            }
            Self::GroupsOverage { claim } => write!(
                f,
                "{code}: the user is in more groups than Azure AD puts in a token, so {claim:?} was left out \
                 (_claim_names points to Microsoft Graph); assign the groups to the application in Azure AD \
                 (\"Groups assigned to the application\") so that the token carries them"
            ),
        }
    }
}

impl std::error::Error for OidcError {}

impl From<OidcError> for PluginError {
    /// Provider refusals and answers that do not belong to this login:
    /// `Denied` (403 `login_denied`, the message with the code); ID-token
    /// refusals: `InvalidToken` with the JOSE reason; a broken callback:
    /// `BadRequest`; the provider down or misbehaving: `Unavailable`.
    fn from(e: OidcError) -> Self {
        match &e {
            OidcError::IdToken { reason, .. } => PluginError::invalid_token(*reason, e.to_string()),
            OidcError::Unavailable(_) => PluginError::Unavailable(e.to_string()),
            OidcError::BadCallback(_) => PluginError::BadRequest(e.to_string()),
            _ => PluginError::Denied(e.to_string()),
        }
    }
}
