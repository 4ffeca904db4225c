//! Response verification: the structural scan ([`crate::structure`]),
//! every signature checked with the IdP's key ([`crate::dsig`]: exclusive
//! canonicalization, an allowed algorithm, the reference to the element it
//! sits in), then the SAML checks on what was signed only: the Response
//! and the Assertion are read from the canonical bytes whose digest
//! matched, never from the document ([`crate::schema`] reads them).

use chrono::{DateTime, Utc};
use gatehouse_sdk::PluginError;

use crate::dsig::{DSIG, SignatureKey};
use crate::error::SamlError;
use crate::schema::{Assertion, ConfirmationData, Response};
use crate::settings::Settings;
use crate::structure::{self, ASSERTION, PROTOCOL};
use crate::xml::{self, Element};

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// An assertion whose signature, issuer, audience, recipient, destination,
/// validity window and `InResponseTo` were checked. Only
/// [`ResponseVerifier::verify`] makes one.
#[derive(Clone, Debug)]
pub struct VerifiedAssertion {
    /// The assertion `ID` (the replay-cache key).
    pub id: String,
    /// The subject's NameID.
    pub name_id: Option<String>,
    /// Attributes in document order, each with its values.
    pub attributes: Vec<(String, Vec<String>)>,
    /// Unix seconds until which the assertion could be accepted (its
    /// latest `NotOnOrAfter` plus the skew).
    pub expires_at: i64,
}

/// Verifies responses for one configured SP/IdP pair.
#[derive(Debug)]
pub struct ResponseVerifier {
    key: SignatureKey,
    sp_entity_id: String,
    acs_url: String,
    idp_entity_id: String,
    want_messages_signed: bool,
    want_assertions_signed: bool,
    skew: chrono::Duration,
    /// How old `IssueInstant` may be: the IdPs' own windows are five
    /// minutes (SimpleSAMLphp, Keycloak, Entra ID), plus the skew.
    max_issue_delay: chrono::Duration,
}

impl ResponseVerifier {
    /// Builds the verifier; refuses an IdP certificate without a usable
    /// RSA or EC key (no response could ever verify).
    pub fn new(s: &Settings) -> Result<Self, PluginError> {
        let key = SignatureKey::from_certificate(&s.idp_cert_der, s.algorithms.clone()).ok_or_else(|| {
            PluginError::Misconfigured("idp_x509_cert: the certificate holds no RSA or EC public key".into())
        })?;
        let skew = chrono::Duration::seconds(i64::try_from(s.clock_skew.as_secs()).unwrap_or(600));
        Ok(Self {
            key,
            sp_entity_id: s.sp_entity_id.clone(),
            acs_url: s.acs_url.clone(),
            idp_entity_id: s.idp_entity_id.clone(),
            want_messages_signed: s.want_messages_signed,
            want_assertions_signed: s.want_assertions_signed,
            skew,
            max_issue_delay: chrono::Duration::minutes(5) + skew,
        })
    }

    /// Verifies a decoded response (see [`crate::front`]). `request_id`:
    /// the ID of this login's AuthnRequest; `None` for an IdP-initiated
    /// login, which must then answer no request.
    pub fn verify(&self, xml: &str, request_id: Option<&str>) -> Result<VerifiedAssertion, SamlError> {
        let shape = structure::scan(xml)?;
        if !shape.response_signed && !shape.assertion_signed {
            return Err(SamlError::Signature("the response is not signed".into()));
        }
        if self.want_messages_signed && !shape.response_signed {
            return Err(SamlError::Signature("the Response element is not signed".into()));
        }
        if self.want_assertions_signed && !shape.assertion_signed {
            return Err(SamlError::Signature("the Assertion element is not signed".into()));
        }
        if request_id.is_none() {
            answers(None, shape.in_response_to.as_deref())?;
        }
        // A signed message must name its destination (SAML bindings
        // 3.5.5.2).
        if shape.response_signed && !shape.response_has_destination {
            return Err(SamlError::Destination);
        }
        let root = xml::parse(xml)?;
        // (the scan found exactly one Assertion, a direct child, and each
        // signature directly in the element it signs)
        let assertion_element = root
            .child(ASSERTION, "Assertion")
            .ok_or_else(|| SamlError::Structure("no Assertion".into()))?;
        let signed_assertion = shape
            .assertion_signed
            .then(|| {
                self.key
                    .verify(assertion_element, signature_of(assertion_element)?, &root.decls)
            })
            .transpose()?;
        let now = Utc::now();
        let assertion = if shape.response_signed {
            let canonical = self.key.verify(&root, signature_of(&root)?, &[])?;
            let response = Response::read(&canonical)?;
            self.check_response(&response, request_id, now)?;
            if response.encrypted_assertion {
                return Err(SamlError::Encrypted);
            }
            response
                .assertion
                .ok_or_else(|| SamlError::Structure("no Assertion".into()))?
        } else {
            // Only the Assertion is signed: what the Response says is
            // unsigned, so it can only refuse, never grant.
            self.check_unsigned_response(&root)?;
            let canonical = signed_assertion.unwrap_or_default();
            Assertion::read(&canonical)?
        };
        // The assertion read must be the one the scan found (and whose
        // signature was checked): nothing else is in the signed content,
        // but say so explicitly.
        if assertion.id != shape.assertion_id {
            return Err(SamlError::Signature(
                "the verified assertion is not the response's assertion".into(),
            ));
        }
        self.check_assertion(assertion, request_id, now)
    }

    /// The signed Response's own fields.
    fn check_response(
        &self,
        r: &Response,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), SamlError> {
        if r.destination.as_deref() != Some(self.acs_url.as_str()) {
            return Err(SamlError::Destination);
        }
        answers(request_id, r.in_response_to.as_deref())?;
        if r.issue_instant + self.max_issue_delay < now {
            return Err(SamlError::Expired);
        }
        if r.issuer.as_ref().is_some_and(|i| *i != self.idp_entity_id) {
            return Err(SamlError::Issuer);
        }
        if r.status.as_ref().is_some_and(|v| v != SUCCESS) {
            return Err(SamlError::Status);
        }
        Ok(())
    }

    /// An unsigned Response around a signed Assertion: a status, issuer or
    /// destination it states must still be right.
    fn check_unsigned_response(&self, root: &Element) -> Result<(), SamlError> {
        if root.attr("Destination").is_some_and(|d| d != self.acs_url) {
            return Err(SamlError::Destination);
        }
        if root
            .child(ASSERTION, "Issuer")
            .is_some_and(|i| i.text().trim() != self.idp_entity_id)
        {
            return Err(SamlError::Issuer);
        }
        let status = root
            .child(PROTOCOL, "Status")
            .and_then(|s| s.child(PROTOCOL, "StatusCode"))
            .and_then(|c| c.attr("Value"));
        if status.is_some_and(|v| v != SUCCESS) {
            return Err(SamlError::Status);
        }
        Ok(())
    }

    /// The assertion's issuer, windows, audience and bearer confirmation;
    /// what the login takes from it.
    fn check_assertion(
        &self,
        assertion: Assertion,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedAssertion, SamlError> {
        if assertion.issue_instant + self.max_issue_delay < now {
            return Err(SamlError::Expired);
        }
        if assertion.issuer != self.idp_entity_id {
            return Err(SamlError::Issuer);
        }
        let conditions = assertion.conditions.as_ref().ok_or(SamlError::Audience)?;
        if conditions.not_before.is_some_and(|t| now < t - self.skew) {
            return Err(SamlError::NotYetValid);
        }
        if conditions.not_on_or_after.is_some_and(|t| t + self.skew < now) {
            return Err(SamlError::Expired);
        }
        // every AudienceRestriction must hold (SAML core 2.5.1.4), and
        // there must be one
        let restrictions = &conditions.audience_restrictions;
        if restrictions.is_empty() || !restrictions.iter().all(|r| r.contains(&self.sp_entity_id)) {
            return Err(SamlError::Audience);
        }
        let confirmations = &assertion.confirmations;
        // IdP-initiated: no confirmation, bearer or not, may answer a request
        if request_id.is_none() {
            for d in confirmations.iter().filter_map(|c| c.data.as_ref()) {
                answers(None, d.in_response_to.as_deref())?;
            }
        }
        // one bearer confirmation must hold entirely; else the first
        // reason found
        let mut first_error = None;
        let mut confirmed = false;
        for c in confirmations
            .iter()
            .filter(|c| c.method.as_deref() == Some(BEARER))
        {
            match self.check_confirmation(c.data.as_ref(), request_id, now) {
                Ok(()) => {
                    confirmed = true;
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !confirmed {
            return Err(first_error.unwrap_or(SamlError::SubjectConfirmation));
        }
        let latest = confirmations
            .iter()
            .filter_map(|c| c.data.as_ref())
            .filter_map(|d| d.not_on_or_after)
            .chain(conditions.not_on_or_after)
            .max()
            .ok_or(SamlError::SubjectConfirmation)?;
        Ok(VerifiedAssertion {
            id: assertion.id,
            name_id: assertion.name_id,
            attributes: assertion.attributes,
            expires_at: latest.timestamp() + self.skew.num_seconds(),
        })
    }

    fn check_confirmation(
        &self,
        data: Option<&ConfirmationData>,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), SamlError> {
        let data = data.ok_or(SamlError::SubjectConfirmation)?;
        if data.not_before.is_some_and(|t| now < t - self.skew) {
            return Err(SamlError::NotYetValid);
        }
        let not_on_or_after = data.not_on_or_after.ok_or(SamlError::SubjectConfirmation)?;
        if not_on_or_after + self.skew < now {
            return Err(SamlError::Expired);
        }
        if data.recipient.as_deref() != Some(self.acs_url.as_str()) {
            return Err(SamlError::Recipient);
        }
        answers(request_id, data.in_response_to.as_deref())
    }
}

/// An `InResponseTo` must name this login's request (`request_id`), and
/// an IdP-initiated login (`None`) must answer none.
fn answers(request_id: Option<&str>, in_response_to: Option<&str>) -> Result<(), SamlError> {
    match (request_id, in_response_to) {
        (None, Some(_)) => Err(SamlError::InResponseTo(
            "an answer to a request this login did not send".into(),
        )),
        (Some(id), irt) if irt != Some(id) => Err(SamlError::InResponseTo(
            "InResponseTo does not name this login's request".into(),
        )),
        _ => Ok(()),
    }
}

fn signature_of(e: &Element) -> Result<&Element, SamlError> {
    e.child(DSIG, "Signature")
        .ok_or_else(|| SamlError::Signature("no signature".into()))
}

#[cfg(test)]
mod tests;
