//! [`SamlError`]: why a SAML login failed, with a stable reason, and what
//! the daemon makes of it ([`PluginError`]).

use std::fmt;

use gatehouse_sdk::PluginError;

/// Why a SAML response was refused. [`SamlError::reason`] is stable (it is
/// what the log, the audit trail and `explain` show); messages never hold
/// the response, an assertion's content or a key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SamlError {
    /// No `SAMLResponse`, not base64, not UTF-8, or XML the plugin does not
    /// accept (a processing instruction, CDATA, another encoding).
    Malformed(String),
    /// Larger than the plugin reads.
    TooLarge {
        /// The limit in bytes (of the base64 form).
        limit: usize,
    },
    /// A document type declaration or entity (XXE, entity expansion).
    Dtd,
    /// An XML comment (the NameID comment-injection attack).
    Comment,
    /// The document is not shaped as one Response holding one Assertion
    /// with signatures where they belong (signature wrapping).
    Structure(String),
    /// A signature is missing where it is required, does not verify with
    /// the IdP's certificate, uses an algorithm that is not allowed, or
    /// does not cover the assertion that would be used.
    Signature(String),
    /// The Response or Assertion issuer is not the configured IdP.
    Issuer,
    /// The audience is not this SP's entity ID.
    Audience,
    /// The Response's `Destination` is not this SP's ACS URL.
    Destination,
    /// The bearer confirmation's `Recipient` is not this SP's ACS URL.
    Recipient,
    /// Past `NotOnOrAfter`, or issued too long ago (beyond the skew).
    Expired,
    /// Before `NotBefore` (beyond the skew).
    NotYetValid,
    /// `InResponseTo` names no request of this login.
    InResponseTo(String),
    /// An unsolicited (IdP-initiated) response while those are off.
    Unsolicited,
    /// The IdP answered a non-success status (the user cancelled…).
    Status,
    /// The assertion has no bearer subject confirmation.
    SubjectConfirmation,
    /// Encrypted assertions are not supported.
    Encrypted,
    /// The attribute holding the permanent ID (or the username) is missing.
    MissingAttribute(String),
}

impl SamlError {
    /// The stable snake_case reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::Dtd => "dtd",
            Self::Comment => "comment",
            Self::Structure(_) => "structure",
            Self::Signature(_) => "signature",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Destination => "destination",
            Self::Recipient => "recipient",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::InResponseTo(_) => "in_response_to",
            Self::Unsolicited => "unsolicited",
            Self::Status => "status",
            Self::SubjectConfirmation => "subject_confirmation",
            Self::Encrypted => "encrypted",
            Self::MissingAttribute(_) => "missing_attribute",
        }
    }
}

impl fmt::Display for SamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = self.reason();
        match self {
            Self::Malformed(m) | Self::Structure(m) | Self::Signature(m) | Self::InResponseTo(m) => {
                write!(f, "{reason}: {m}")
            }
            Self::TooLarge { limit } => write!(f, "{reason}: the response is longer than {limit} bytes"),
            Self::Dtd => write!(
                f,
                "{reason}: the response has a document type declaration or entity"
            ),
            Self::Comment => write!(f, "{reason}: the response has an XML comment"),
            Self::Issuer => write!(f, "{reason}: the issuer is not the configured identity provider"),
            Self::Audience => write!(f, "{reason}: the assertion is not for this service provider"),
            Self::Destination => write!(f, "{reason}: the response's Destination is not this ACS URL"),
            Self::Recipient => write!(f, "{reason}: the assertion's Recipient is not this ACS URL"),
            Self::Expired => write!(f, "{reason}: the assertion has expired"),
            Self::NotYetValid => write!(f, "{reason}: the assertion is not valid yet"),
            Self::Unsolicited => write!(
                f,
                "{reason}: an IdP-initiated response, and allow_idp_initiated is off"
            ),
            Self::Status => write!(f, "{reason}: the identity provider did not answer success"),
            Self::SubjectConfirmation => {
                write!(f, "{reason}: the assertion has no usable bearer confirmation")
            }
            Self::Encrypted => write!(f, "{reason}: encrypted assertions are not supported"),
            Self::MissingAttribute(a) => write!(f, "{reason}: the assertion has no {a:?} attribute"),
        }
    }
}

impl std::error::Error for SamlError {}

impl From<SamlError> for PluginError {
    /// Every refusal is an `InvalidAssertion` with the reason: the client
    /// sees 401 `invalid_credentials`, the log and `explain` the reason.
    fn from(e: SamlError) -> Self {
        PluginError::invalid_assertion(e.reason(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_invalid_assertions_with_the_reason() {
        let e = PluginError::from(SamlError::Audience);
        match e {
            PluginError::InvalidAssertion { reason, detail } => {
                assert_eq!(reason, "audience");
                assert!(detail.starts_with("audience: "), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
