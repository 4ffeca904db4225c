//! Response verification: the structural scan ([`crate::structure`]),
//! then samael with xmlsec (every signature must verify with the IdP's
//! certificate, with an allowed algorithm; the assertion is read from the
//! signed content only), then the checks samael leaves out. The only
//! module that sees samael: replacing it means replacing this file.

use std::str::FromStr;

use base64::Engine as _;
use gatehouse_sdk::PluginError;
use samael::crypto::{AllowedSignatureAlgorithm, ReduceMode};
use samael::metadata::EntityDescriptor;
use samael::service_provider::{Error as SpError, ServiceProvider, ServiceProviderBuilder};

use crate::error::SamlError;
use crate::settings::{Algorithm, Settings};
use crate::structure;

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
pub struct ResponseVerifier {
    /// For SP-initiated logins: `InResponseTo` must name the request.
    solicited: ServiceProvider,
    /// For IdP-initiated logins: no `InResponseTo` at all.
    unsolicited: ServiceProvider,
    want_messages_signed: bool,
    want_assertions_signed: bool,
    skew_secs: i64,
}

fn allowed(a: Algorithm) -> AllowedSignatureAlgorithm {
    match a {
        Algorithm::RsaSha256 => AllowedSignatureAlgorithm::RsaSha256,
        Algorithm::RsaSha384 => AllowedSignatureAlgorithm::RsaSha384,
        Algorithm::RsaSha512 => AllowedSignatureAlgorithm::RsaSha512,
        Algorithm::EcdsaSha256 => AllowedSignatureAlgorithm::EcdsaSha256,
        Algorithm::EcdsaSha384 => AllowedSignatureAlgorithm::EcdsaSha384,
        Algorithm::EcdsaSha512 => AllowedSignatureAlgorithm::EcdsaSha512,
    }
}

impl ResponseVerifier {
    /// Builds the verifier; refuses settings on which samael would verify
    /// nothing (no IdP signing certificate).
    pub fn new(s: &Settings) -> Result<Self, PluginError> {
        let cert = base64::engine::general_purpose::STANDARD.encode(&s.idp_cert_der);
        let idp = format!(
            "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
             xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{}\">\
             <md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
             <md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}\
             </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
             <md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" \
             Location=\"{}\"/></md:IDPSSODescriptor></md:EntityDescriptor>",
            crate::xml_escape(&s.idp_entity_id),
            crate::xml_escape(&s.idp_url),
        );
        let idp = EntityDescriptor::from_str(&idp).map_err(|e| {
            PluginError::Misconfigured(format!("idp_x509_cert: unusable IdP description: {e}"))
        })?;
        let skew = chrono::Duration::seconds(i64::try_from(s.clock_skew.as_secs()).unwrap_or(600));
        let build = |allow_idp_initiated: bool| {
            ServiceProviderBuilder::default()
                .entity_id(s.sp_entity_id.clone())
                .acs_url(s.acs_url.clone())
                .idp_metadata(idp.clone())
                .allow_idp_initiated(allow_idp_initiated)
                .max_clock_skew(skew)
                // how old IssueInstant may be: the IdP's own windows are
                // five minutes (SimpleSAMLphp, Keycloak, Entra ID)
                .max_issue_delay(chrono::Duration::minutes(5) + skew)
                .allowed_signature_algorithms(Some(
                    s.algorithms.iter().copied().map(allowed).collect::<Vec<_>>(),
                ))
                .build()
                .map_err(|e| PluginError::Misconfigured(format!("saml: {e}")))
        };
        let solicited = build(false)?;
        let unsolicited = build(true)?;
        // samael skips signature checks when it finds no signing key: never
        // run in that state.
        for sp in [&solicited, &unsolicited] {
            match sp.idp_signing_certs() {
                Ok(Some(certs)) if !certs.is_empty() => {}
                _ => {
                    return Err(PluginError::Misconfigured(
                        "idp_x509_cert: no IdP signing certificate; responses would not be verified".into(),
                    ));
                }
            }
        }
        Ok(Self {
            solicited,
            unsolicited,
            want_messages_signed: s.want_messages_signed,
            want_assertions_signed: s.want_assertions_signed,
            skew_secs: skew.num_seconds(),
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
        let (sp, ids) = match request_id {
            Some(id) => (&self.solicited, Some(vec![id])),
            None => {
                if shape.in_response_to.is_some() {
                    return Err(SamlError::InResponseTo(
                        "an answer to a request this login did not send".into(),
                    ));
                }
                (&self.unsolicited, None)
            }
        };
        // A signed message must name its destination (SAML bindings
        // 3.5.5.2). samael only compares a Destination that is present: the
        // signed content it reads (below) no longer holds the Response's own
        // signature, so it cannot tell that this one was signed.
        if shape.response_signed && !shape.response_has_destination {
            return Err(SamlError::Destination);
        }
        // What samael reads is xmlsec's pre-digest content: the exact bytes
        // the verified reference digested (the canonical Response when the
        // Response is signed, with the signed Assertion inside it; else the
        // canonical Assertion), not a copy of the document pruned to the
        // signed nodes. Same checks, without the DOM walk the pruning costs.
        let assertion = sp
            .parse_xml_response_with_mode(xml, ids.as_deref(), ReduceMode::PreDigest)
            .map_err(classify)?;
        // The assertion read must be the one the scan found (and whose
        // signature xmlsec checked): nothing else is in the signed content,
        // but say so explicitly.
        if assertion.id != shape.assertion_id {
            return Err(SamlError::Signature(
                "the verified assertion is not the response's assertion".into(),
            ));
        }
        let conditions = assertion.conditions.as_ref().ok_or(SamlError::Audience)?;
        if conditions
            .audience_restrictions
            .as_ref()
            .is_none_or(|r| r.is_empty())
        {
            return Err(SamlError::Audience);
        }
        let confirmations: Vec<_> = assertion
            .subject
            .as_ref()
            .and_then(|s| s.subject_confirmations.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|c| c.subject_confirmation_data.as_ref())
            .collect();
        if request_id.is_none() && confirmations.iter().any(|d| d.in_response_to.is_some()) {
            return Err(SamlError::InResponseTo(
                "an answer to a request this login did not send".into(),
            ));
        }
        let latest = confirmations
            .iter()
            .filter_map(|d| d.not_on_or_after)
            .chain(conditions.not_on_or_after)
            .max()
            .ok_or(SamlError::SubjectConfirmation)?;
        let name_id = assertion
            .subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .map(|n| n.value.clone());
        let attributes = assertion
            .attribute_statements
            .iter()
            .flatten()
            .flat_map(|s| s.attributes.iter())
            .filter_map(|a| {
                let name = a.name.clone()?;
                let values = a.values.iter().filter_map(|v| v.value.clone()).collect();
                Some((name, values))
            })
            .collect();
        Ok(VerifiedAssertion {
            id: assertion.id,
            name_id,
            attributes,
            expires_at: latest.timestamp() + self.skew_secs,
        })
    }
}

/// samael's errors as reasons.
fn classify(e: SpError) -> SamlError {
    match e {
        SpError::FailedToValidateSignature | SpError::CryptoXmlError(_) | SpError::CryptoProviderError(_) => {
            SamlError::Signature(
                "a signature does not verify with the IdP certificate and allowed algorithms".into(),
            )
        }
        SpError::DestinationValidationError { .. } => SamlError::Destination,
        SpError::AssertionRecipientMismatch { .. } => SamlError::Recipient,
        SpError::AssertionConditionAudienceRestrictionFailed { .. } => SamlError::Audience,
        SpError::AssertionExpired { .. }
        | SpError::ResponseExpired { .. }
        | SpError::AssertionConditionExpired { .. }
        | SpError::AssertionSubjectConfirmationExpired { .. } => SamlError::Expired,
        SpError::AssertionConditionExpiredBefore { .. }
        | SpError::AssertionSubjectConfirmationExpiredBefore { .. } => SamlError::NotYetValid,
        SpError::AssertionIssuerMismatch { .. } | SpError::ResponseIssuerMismatch { .. } => SamlError::Issuer,
        SpError::AssertionInResponseToInvalid { .. } | SpError::ResponseInResponseToInvalid { .. } => {
            SamlError::InResponseTo("InResponseTo does not name this login's request".into())
        }
        SpError::ResponseBadStatusCode { .. } => SamlError::Status,
        SpError::AssertionBearerSubjectConfirmationMissing | SpError::AssertionSubjectConfirmationMissing => {
            SamlError::SubjectConfirmation
        }
        SpError::EncryptedAssertionsNotYetSupported
        | SpError::MissingEncryptedKeyInfo
        | SpError::MissingEncryptedValueInfo
        | SpError::EncryptedAssertionInvalid
        | SpError::FailedToDecryptAssertion
        | SpError::EncryptedAssertionKeyMethodUnsupported { .. }
        | SpError::EncryptedAssertionValueMethodUnsupported { .. }
        | SpError::MissingPrivateKeySP => SamlError::Encrypted,
        _ => SamlError::Malformed("the response does not parse as SAML".into()),
    }
}

#[cfg(test)]
mod tests;
