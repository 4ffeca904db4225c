//! [`ResponseVerifier::verify`] on responses signed here with xmlsec, the
//! way an IdP signs them (RSA-SHA256, enveloped, exclusive c14n): every
//! check the verifier makes, one changed field at a time. The end-to-end
//! suite (`tests/tests/saml.rs`) does the same against SimpleSAMLphp's own
//! responses; these run in the plugin's unit tests, so mutation testing
//! of this file (`scripts/mutants.sh saml`) sees them.

#![allow(clippy::unwrap_used)]

use chrono::{Duration, SecondsFormat, Utc};
use gatehouse_sdk::{PluginConfig, serde_json};
use openssl::pkey::PKey;
use samael::crypto::{CryptoProvider as _, XmlSec};
use serde_json::json;

use super::*;

const SP: &str = "https://app.test/sp";
const ACS: &str = "https://app.test/acs";
const IDP: &str = "https://idp.test/metadata";
const SKEW_SECS: i64 = 90;

/// A self-signed certificate (PEM) and its private key (DER, as xmlsec
/// signs with it).
fn keypair() -> (String, Vec<u8>) {
    let (cert, key) = crate::tests::keypair();
    let key = PKey::private_key_from_pem(key.as_bytes()).unwrap();
    (cert, key.private_key_to_der().unwrap())
}

fn verifier(idp_cert: &str, messages: bool, assertions: bool) -> ResponseVerifier {
    let config = PluginConfig::new(
        "SAML",
        json!({
            "sp_entity_id": SP,
            "idp_url": "https://idp.test/sso",
            "idp_x509_cert": idp_cert,
            "idp_entity_id": IDP,
            "idp_attr_user_permanent_id": "uid",
            "callback_url": ACS,
            "allow_idp_initiated": true,
            "clock_skew": format!("{SKEW_SECS}s"),
            "security_config": {"wantMessagesSigned": messages, "wantAssertionsSigned": assertions},
        }),
    );
    ResponseVerifier::new(&Settings::parse(&config).unwrap()).unwrap()
}

/// What a response says; each test changes one field.
#[derive(Clone)]
struct Response {
    issuer: &'static str,
    audience: &'static str,
    recipient: &'static str,
    destination: Option<&'static str>,
    /// On the Response and on the SubjectConfirmationData.
    in_response_to: Option<&'static str>,
    /// On the SubjectConfirmationData only.
    confirmation_in_response_to: Option<&'static str>,
    status: &'static str,
    not_before: Duration,
    not_on_or_after: Duration,
    sign_response: bool,
    sign_assertion: bool,
    name_id: &'static str,
    confirmation_method: &'static str,
}

impl Default for Response {
    fn default() -> Self {
        Self {
            issuer: IDP,
            audience: SP,
            recipient: ACS,
            destination: Some(ACS),
            in_response_to: None,
            confirmation_in_response_to: None,
            status: "urn:oasis:names:tc:SAML:2.0:status:Success",
            not_before: Duration::seconds(-30),
            not_on_or_after: Duration::minutes(5),
            sign_response: true,
            sign_assertion: true,
            name_id: "alice",
            confirmation_method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
        }
    }
}

fn at(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn signature(id: &str) -> String {
    format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
         <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
         <ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\
         <ds:Reference URI=\"#{id}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue/>\
         </ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature>"
    )
}

const RESPONSE_ID: &str = "_r8a3f0c";
const ASSERTION_ID: &str = "_a51d2e9";

impl Response {
    /// The response's XML; signature templates where asked, unsigned.
    fn xml(&self, response_sig: bool) -> String {
        let now = at(Duration::zero());
        let irt = |v: Option<&str>| v.map(|v| format!(" InResponseTo=\"{v}\"")).unwrap_or_default();
        let confirmation_irt = irt(self.confirmation_in_response_to.or(self.in_response_to));
        let assertion = format!(
            "<saml:Assertion ID=\"{ASSERTION_ID}\" Version=\"2.0\" IssueInstant=\"{now}\">\
             <saml:Issuer>{issuer}</saml:Issuer>{sig}\
             <saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\">{name_id}</saml:NameID>\
             <saml:SubjectConfirmation Method=\"{method}\">\
             <saml:SubjectConfirmationData NotOnOrAfter=\"{noa}\" Recipient=\"{recipient}\"{confirmation_irt}/>\
             </saml:SubjectConfirmation></saml:Subject>\
             <saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{noa}\"><saml:AudienceRestriction>\
             <saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
             <saml:AuthnStatement AuthnInstant=\"{now}\" SessionIndex=\"_s1\"><saml:AuthnContext>\
             <saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef>\
             </saml:AuthnContext></saml:AuthnStatement>\
             <saml:AttributeStatement><saml:Attribute Name=\"uid\"><saml:AttributeValue>alice</saml:AttributeValue>\
             </saml:Attribute><saml:Attribute Name=\"groups\"><saml:AttributeValue>ops</saml:AttributeValue>\
             <saml:AttributeValue>dev</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>\
             </saml:Assertion>",
            issuer = self.issuer,
            sig = if self.sign_assertion {
                signature(ASSERTION_ID)
            } else {
                String::new()
            },
            name_id = self.name_id,
            method = self.confirmation_method,
            noa = at(self.not_on_or_after),
            nb = at(self.not_before),
            recipient = self.recipient,
            audience = self.audience,
        );
        format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{RESPONSE_ID}\" Version=\"2.0\" \
             IssueInstant=\"{now}\"{destination}{irt}><saml:Issuer>{issuer}</saml:Issuer>{sig}\
             <samlp:Status><samlp:StatusCode Value=\"{status}\"/></samlp:Status>{assertion}</samlp:Response>",
            destination = self
                .destination
                .map(|d| format!(" Destination=\"{d}\""))
                .unwrap_or_default(),
            irt = irt(self.in_response_to),
            issuer = self.issuer,
            sig = if response_sig {
                signature(RESPONSE_ID)
            } else {
                String::new()
            },
            status = self.status,
        )
    }

    /// Signed as an IdP signs: the Assertion first, then the Response
    /// around it (xmlsec signs the first template in document order, and
    /// the Response's sits before the Assertion).
    fn signed(&self, key_der: &[u8]) -> String {
        let mut xml = self.xml(false);
        if self.sign_assertion {
            xml = XmlSec::sign_xml(&xml, key_der).unwrap();
        }
        if self.sign_response {
            let template = signature(RESPONSE_ID);
            let at = xml.find("<samlp:Status>").unwrap();
            xml.insert_str(at, &template);
            xml = XmlSec::sign_xml(&xml, key_der).unwrap();
        }
        xml
    }
}

fn reason(r: Result<VerifiedAssertion, SamlError>) -> &'static str {
    match r {
        Ok(a) => panic!("accepted: {a:?}"),
        Err(e) => e.reason(),
    }
}

#[test]
fn a_signed_response_is_read_with_its_attributes_and_expiry() {
    let (cert, key) = keypair();
    let v = verifier(&cert, true, true);
    let xml = Response::default().signed(&key);
    let a = v.verify(&xml, None).unwrap();
    assert_eq!(a.id, ASSERTION_ID);
    assert_eq!(a.name_id.as_deref(), Some("alice"));
    assert_eq!(
        a.attributes,
        vec![
            ("uid".to_owned(), vec!["alice".to_owned()]),
            ("groups".to_owned(), vec!["ops".to_owned(), "dev".to_owned()]),
        ]
    );
    // the latest NotOnOrAfter (5 minutes from now, to the second) plus the skew
    let expected = (Utc::now() + Duration::minutes(5)).timestamp() + SKEW_SECS;
    assert!(
        (a.expires_at - expected).abs() <= 2,
        "{} vs {expected}",
        a.expires_at
    );
}

#[test]
fn what_must_be_signed_is_signed() {
    let (cert, key) = keypair();
    let unsigned = Response {
        sign_response: false,
        sign_assertion: false,
        ..Response::default()
    };
    // unsigned: refused whatever is wanted
    for (m, a) in [(false, false), (true, true)] {
        assert_eq!(
            reason(verifier(&cert, m, a).verify(&unsigned.xml(false), None)),
            "signature"
        );
    }
    let assertion_only = Response {
        sign_response: false,
        ..Response::default()
    }
    .signed(&key);
    let response_only = Response {
        sign_assertion: false,
        ..Response::default()
    }
    .signed(&key);
    // wanted and missing: refused
    assert_eq!(
        reason(verifier(&cert, true, false).verify(&assertion_only, None)),
        "signature"
    );
    assert_eq!(
        reason(verifier(&cert, false, true).verify(&response_only, None)),
        "signature"
    );
    // not wanted: either signature alone is enough
    for (messages, assertions, xml) in [
        (false, false, &assertion_only),
        (false, false, &response_only),
        (false, true, &assertion_only),
        (true, false, &response_only),
    ] {
        assert_eq!(
            verifier(&cert, messages, assertions)
                .verify(xml, None)
                .unwrap()
                .id,
            ASSERTION_ID
        );
    }
}

#[test]
fn another_key_or_a_change_after_signing_is_refused() {
    let (cert, key) = keypair();
    let (_, other_key) = keypair();
    let v = verifier(&cert, true, true);
    assert_eq!(
        reason(v.verify(&Response::default().signed(&other_key), None)),
        "signature"
    );
    let xml = Response::default().signed(&key);
    let tampered = xml.replace(">alice</saml:NameID>", ">admin</saml:NameID>");
    assert_ne!(tampered, xml);
    assert_eq!(reason(v.verify(&tampered, None)), "signature");
}

#[test]
fn each_field_the_sp_checks_is_refused_by_name() {
    let (cert, key) = keypair();
    let v = verifier(&cert, true, true);
    for (response, wanted) in [
        (
            Response {
                audience: "https://other.test/sp",
                ..Response::default()
            },
            "audience",
        ),
        (
            Response {
                recipient: "https://app.test/other-acs",
                ..Response::default()
            },
            "recipient",
        ),
        (
            Response {
                destination: Some("https://app.test/other-acs"),
                ..Response::default()
            },
            "destination",
        ),
        // a signed Response must say where it goes
        (
            Response {
                destination: None,
                ..Response::default()
            },
            "destination",
        ),
        (
            Response {
                issuer: "https://evil.test/metadata",
                ..Response::default()
            },
            "issuer",
        ),
        (
            Response {
                not_on_or_after: Duration::seconds(-SKEW_SECS - 60),
                ..Response::default()
            },
            "expired",
        ),
        (
            Response {
                not_before: Duration::seconds(SKEW_SECS + 120),
                ..Response::default()
            },
            "not_yet_valid",
        ),
        (
            Response {
                status: "urn:oasis:names:tc:SAML:2.0:status:Responder",
                ..Response::default()
            },
            "status",
        ),
        // a bearer assertion is what a browser may carry: holder-of-key
        // needs a proof this SP never asks for
        (
            Response {
                confirmation_method: "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key",
                ..Response::default()
            },
            "subject_confirmation",
        ),
    ] {
        assert_eq!(reason(v.verify(&response.signed(&key), None)), wanted, "{wanted}");
    }
    // inside the skew: still taken
    let late = Response {
        not_on_or_after: Duration::seconds(-SKEW_SECS / 2),
        ..Response::default()
    };
    assert!(v.verify(&late.signed(&key), None).is_ok());
}

#[test]
fn in_response_to_must_name_this_login_or_be_absent() {
    let (cert, key) = keypair();
    let v = verifier(&cert, true, true);
    let answer = Response {
        in_response_to: Some("_q1"),
        ..Response::default()
    }
    .signed(&key);
    assert_eq!(v.verify(&answer, Some("_q1")).unwrap().id, ASSERTION_ID);
    assert_eq!(reason(v.verify(&answer, Some("_q2"))), "in_response_to");
    // an answer to some request, offered as IdP-initiated
    assert_eq!(reason(v.verify(&answer, None)), "in_response_to");
    // the same when only the subject confirmation names a request
    let hidden = Response {
        confirmation_in_response_to: Some("_q1"),
        ..Response::default()
    }
    .signed(&key);
    assert_eq!(reason(v.verify(&hidden, None)), "in_response_to");
}
