//! [`ResponseVerifier::verify`] on responses signed here with xmlsec, the
//! way an IdP signs them (RSA-SHA256, enveloped, exclusive c14n): every
//! check the verifier makes, one changed field at a time. The end-to-end
//! suite (`tests/tests/saml.rs`) does the same against SimpleSAMLphp's own
//! responses; these run in the plugin's unit tests, so mutation testing
//! of this file (`scripts/mutants.sh saml`) sees them.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use chrono::{Duration, SecondsFormat, Utc};
use gatehouse_sdk::{PluginConfig, serde_json};
use openssl::pkey::PKey;
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

/// The test SP's configuration with `idp_cert`, `extra` merged over it.
fn config(idp_cert: &str, extra: serde_json::Value) -> PluginConfig {
    let mut settings = json!({
        "sp_entity_id": SP,
        "idp_url": "https://idp.test/sso",
        "idp_x509_cert": idp_cert,
        "idp_entity_id": IDP,
        "idp_attr_user_permanent_id": "uid",
        "callback_url": ACS,
        "allow_idp_initiated": true,
        "clock_skew": format!("{SKEW_SECS}s"),
    });
    if let (Some(base), serde_json::Value::Object(extra)) = (settings.as_object_mut(), extra) {
        base.extend(extra);
    }
    PluginConfig::new("SAML", settings)
}

fn verifier(idp_cert: &str, messages: bool, assertions: bool) -> ResponseVerifier {
    let config = config(
        idp_cert,
        json!({"security_config": {"wantMessagesSigned": messages, "wantAssertionsSigned": assertions}}),
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
        self.sign(self.xml(false), key_der)
    }

    /// `xml` (this response's, edited) signed as [`Response::signed`] does.
    fn sign(&self, mut xml: String, key_der: &[u8]) -> String {
        if self.sign_assertion {
            xml = crate::tests::xmlsec_sign(&xml, key_der).unwrap();
        }
        if self.sign_response {
            let template = signature(RESPONSE_ID);
            let at = xml.find("<samlp:Status>").unwrap();
            xml.insert_str(at, &template);
            xml = crate::tests::xmlsec_sign(&xml, key_der).unwrap();
        }
        xml
    }
}

/// A response whose Assertion alone is signed (with `key`).
fn assertion_only(key: &[u8]) -> String {
    Response {
        sign_response: false,
        ..Response::default()
    }
    .signed(key)
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
    let assertion_only = assertion_only(&key);
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

// Signature processing ([`crate::dsig`] and [`crate::c14n`]): responses
// signed here by xmlsec, the library IdPs sign with, and verified by the
// plugin's own canonicalization. Each template or content below is one an
// IdP really produces, or one an attacker would try.

/// A signature template for `id` with the given methods; `c14n` is the
/// whole `CanonicalizationMethod` element, `transforms` the `Transform`s.
fn template(id: &str, signature_method: &str, digest_method: &str, c14n: &str, transforms: &str) -> String {
    format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>{c14n}\
         <ds:SignatureMethod Algorithm=\"{signature_method}\"/>\
         <ds:Reference URI=\"#{id}\"><ds:Transforms>{transforms}</ds:Transforms>\
         <ds:DigestMethod Algorithm=\"{digest_method}\"/><ds:DigestValue/>\
         </ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature>"
    )
}

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const EXC_C14N: &str = "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>";
const ENVELOPED_EXC: &str = "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
                             <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>";

/// The unsigned assertion-only response, after `edit`, with `template`
/// inside its Assertion (before the Subject).
fn with_assertion_template(template: &str, edit: impl FnOnce(String) -> String) -> String {
    let mut xml = edit(
        Response {
            sign_response: false,
            sign_assertion: false,
            ..Response::default()
        }
        .xml(false),
    );
    let at = xml
        .find("<saml:Subject>")
        .or_else(|| xml.find("<Subject>"))
        .unwrap();
    xml.insert_str(at, template);
    xml
}

/// An assertion-only response (unsigned Response) whose Assertion carries
/// `template`, signed by xmlsec with `key`.
fn assertion_signed_with(template: &str, key: &[u8]) -> String {
    let xml = with_assertion_template(template, |x| x);
    crate::tests::xmlsec_sign(&xml, key).unwrap()
}

fn signature_message(r: Result<VerifiedAssertion, SamlError>) -> String {
    match r {
        Err(SamlError::Signature(m)) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn content_that_canonicalization_rewrites_still_verifies() {
    let (cert, key) = keypair();
    let v = verifier(&cert, false, true);
    // escapes and references in text and attributes, line ends, a
    // namespace used only by an attribute (xsi:type), an unused one, a
    // default namespace redeclared inside, non-ASCII
    let xml = with_assertion_template(&signature(ASSERTION_ID), |x| {
        x.replace(
        "<saml:Attribute Name=\"groups\">",
        "<saml:Attribute xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:unused=\"urn:unused\" \
         FriendlyName='g&apos;s &quot;&lt;&gt;&amp;&#x9;&#xA;&#xD; tab\there' Name=\"groups\">\
         <saml:AttributeValue xsi:type=\"xs:string\">ops &amp; &lt;&gt; \u{e9}&#x20AC;&#xD;\r\nnext</saml:AttributeValue>\
         <saml:AttributeValue xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\">q</saml:AttributeValue>",
    )
    });
    let signed = crate::tests::xmlsec_sign(&xml, &key).unwrap();
    let a = v.verify(&signed, None).unwrap();
    let groups = &a.attributes.iter().find(|(n, _)| n == "groups").unwrap().1;
    assert_eq!(groups[0], "ops & <> \u{e9}\u{20ac}\r\nnext");
    assert_eq!(groups[1], "q");
    // what canonicalization ignores may change: quotes, attribute order,
    // white space inside tags
    let reordered = signed.replacen(
        "<saml:AuthnStatement AuthnInstant=",
        "<saml:AuthnStatement  SessionIndex='_s1' AuthnInstant=",
        1,
    );
    let reordered = reordered.replacen(" SessionIndex=\"_s1\">", ">", 1);
    assert_ne!(reordered, signed);
    assert_eq!(v.verify(&reordered, None).unwrap().id, ASSERTION_ID);
}

#[test]
fn an_inclusive_namespace_prefix_list_is_honoured() {
    let (cert, key) = keypair();
    let v = verifier(&cert, false, true);
    // as ADFS and Okta sign: `xs` listed, declared on the Response, used
    // only inside an attribute value (where c14n cannot see it)
    let transforms = "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">\
         <ec:InclusiveNamespaces xmlns:ec=\"http://www.w3.org/2001/10/xml-exc-c14n#\" PrefixList=\"xs\"/></ds:Transform>";
    let xml = with_assertion_template(
        &template(ASSERTION_ID, RSA_SHA256, SHA256, EXC_C14N, transforms),
        |x| {
            x.replacen(
                "<samlp:Response ",
                "<samlp:Response xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" ",
                1,
            )
        },
    );
    let signed = crate::tests::xmlsec_sign(&xml, &key).unwrap();
    assert_eq!(v.verify(&signed, None).unwrap().id, ASSERTION_ID);
    // the listed namespace is covered: changing its URI breaks the digest
    let moved = signed.replacen(
        "xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"",
        "xmlns:xs=\"urn:evil\"",
        1,
    );
    assert_eq!(
        signature_message(v.verify(&moved, None)),
        "the signed element changed after signing"
    );
}

#[test]
fn algorithms_and_transforms_outside_the_profile_are_refused() {
    let (cert, key) = keypair();
    let v = verifier(&cert, false, true);
    let inclusive =
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>";
    let xpath = "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
                 <ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\">\
                 <ds:XPath>not(ancestor-or-self::saml:Subject)</ds:XPath></ds:Transform>\
                 <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>";
    let enveloped_only =
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>";
    for (signature_method, digest_method, c14n, transforms, message) in [
        // RSA-SHA1 signatures and SHA-1 digests: not allowed
        (
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            SHA256,
            EXC_C14N,
            ENVELOPED_EXC,
            "a signature algorithm that is not allowed",
        ),
        (
            RSA_SHA256,
            "http://www.w3.org/2000/09/xmldsig#sha1",
            EXC_C14N,
            ENVELOPED_EXC,
            "a digest algorithm that is not allowed",
        ),
        // inclusive canonicalization of SignedInfo
        (
            RSA_SHA256,
            SHA256,
            inclusive,
            ENVELOPED_EXC,
            "a canonicalization other than exclusive XML canonicalization",
        ),
        // an XPath filter that would leave the Subject unsigned
        (
            RSA_SHA256,
            SHA256,
            EXC_C14N,
            xpath,
            "a reference whose transforms are not enveloped-signature then exclusive c14n",
        ),
        // no exclusive c14n after the enveloped transform
        (
            RSA_SHA256,
            SHA256,
            EXC_C14N,
            enveloped_only,
            "a reference whose transforms are not enveloped-signature then exclusive c14n",
        ),
    ] {
        let t = template(ASSERTION_ID, signature_method, digest_method, c14n, transforms);
        let signed = assertion_signed_with(&t, &key);
        assert_eq!(signature_message(v.verify(&signed, None)), message, "{t}");
    }
    // an HMAC "signature" keyed with the certificate (algorithm
    // confusion): refused before any check, whatever its value
    let hmac = template(
        ASSERTION_ID,
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        SHA256,
        EXC_C14N,
        ENVELOPED_EXC,
    );
    let xml = with_assertion_template(
        &hmac.replace(
            "<ds:SignatureValue/>",
            "<ds:SignatureValue>AAAA</ds:SignatureValue>",
        ),
        |x| x,
    );
    assert_eq!(
        signature_message(v.verify(&xml, None)),
        "a signature algorithm that is not allowed"
    );
}

#[test]
fn a_signature_value_or_signed_info_changed_after_signing_is_refused() {
    let (cert, key) = keypair();
    let v = verifier(&cert, false, true);
    let signed = assertion_only(&key);
    // the reference pointed elsewhere inside the signed SignedInfo
    let retargeted = signed.replacen(
        &format!("URI=\"#{ASSERTION_ID}\""),
        &format!("URI=\"#{RESPONSE_ID}\""),
        1,
    );
    assert_eq!(reason(v.verify(&retargeted, None)), "signature");
    // a digest value replaced (the attacker's own digest of a changed
    // assertion): the SignedInfo no longer verifies
    let start = signed.find("<ds:DigestValue>").unwrap() + "<ds:DigestValue>".len();
    let mut changed = signed.clone();
    changed.replace_range(start..start + 4, "AAAA");
    assert_eq!(
        signature_message(v.verify(&changed, None)),
        "a signature does not verify with the IdP certificate and allowed algorithms"
    );
    // a SignatureValue that is not base64
    let start = signed.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
    let mut garbage = signed.clone();
    garbage.insert(start, '*');
    assert_eq!(
        signature_message(v.verify(&garbage, None)),
        "a signature or digest value that is not base64"
    );
}

/// A self-signed P-256 certificate (PEM) and its key (DER).
fn ec_keypair() -> (String, Vec<u8>) {
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
    (
        crate::tests::self_signed(&key, openssl::hash::MessageDigest::sha256()),
        key.private_key_to_der().unwrap(),
    )
}

#[test]
fn ecdsa_signatures_verify_when_allowed_and_keys_cannot_be_confused() {
    let (cert, key) = ec_keypair();
    let t = template(
        ASSERTION_ID,
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        SHA256,
        EXC_C14N,
        ENVELOPED_EXC,
    );
    let signed = assertion_signed_with(&t, &key);
    let with = |cert: &str, algorithms: serde_json::Value| {
        let c = config(
            cert,
            json!({
                "signature_algorithms": algorithms,
                "security_config": {"wantMessagesSigned": false, "wantAssertionsSigned": true},
            }),
        );
        ResponseVerifier::new(&Settings::parse(&c).unwrap()).unwrap()
    };
    let ecdsa = with(&cert, json!(["ecdsa-sha256"]));
    assert_eq!(ecdsa.verify(&signed, None).unwrap().id, ASSERTION_ID);
    // the default allows RSA-SHA256 only
    let rsa_only = with(&cert, json!(["rsa-sha256"]));
    assert_eq!(
        signature_message(rsa_only.verify(&signed, None)),
        "a signature algorithm that is not allowed"
    );
    // an RSA-signed response claiming ECDSA against an RSA certificate
    // (and the reverse) never verifies
    let (rsa_cert, rsa_key) = keypair();
    let claims_rsa = assertion_signed_with(
        &template(ASSERTION_ID, RSA_SHA256, SHA256, EXC_C14N, ENVELOPED_EXC),
        &rsa_key,
    )
    .replace(RSA_SHA256, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256");
    let both = with(&rsa_cert, json!(["rsa-sha256", "ecdsa-sha256"]));
    assert_eq!(
        signature_message(both.verify(&claims_rsa, None)),
        "a signature does not verify with the IdP certificate and allowed algorithms"
    );
}

#[test]
fn an_unsigned_response_around_a_signed_assertion_can_only_refuse() {
    let (cert, key) = keypair();
    let v = verifier(&cert, false, true);
    for (response, wanted) in [
        (
            Response {
                sign_response: false,
                status: "urn:oasis:names:tc:SAML:2.0:status:Requester",
                ..Response::default()
            },
            "status",
        ),
        (
            Response {
                sign_response: false,
                destination: Some("https://app.test/other-acs"),
                ..Response::default()
            },
            "destination",
        ),
    ] {
        assert_eq!(reason(v.verify(&response.signed(&key), None)), wanted);
    }
    // the Response's issuer, changed outside the signed assertion
    let xml = assertion_only(&key).replacen(
        &format!("<saml:Issuer>{IDP}</saml:Issuer>"),
        "<saml:Issuer>https://evil.test/metadata</saml:Issuer>",
        1,
    );
    assert_eq!(reason(v.verify(&xml, None)), "issuer");
}

#[test]
fn every_audience_restriction_must_name_this_sp() {
    let (cert, key) = keypair();
    let v = verifier(&cert, true, true);
    // SAML core 2.5.1.4: restrictions are ANDed
    let xml = Response::default().xml(false).replace(
        "</saml:AudienceRestriction>",
        "</saml:AudienceRestriction><saml:AudienceRestriction>\
         <saml:Audience>https://other.test/sp</saml:Audience></saml:AudienceRestriction>",
    );
    let mut xml = crate::tests::xmlsec_sign(&xml, &key).unwrap();
    let at = xml.find("<samlp:Status>").unwrap();
    xml.insert_str(at, &signature(RESPONSE_ID));
    let xml = crate::tests::xmlsec_sign(&xml, &key).unwrap();
    assert_eq!(reason(v.verify(&xml, None)), "audience");
}

/// The `n`th (0-based) `name="…"` attribute value in `xml` set to `value`.
fn set_attr(xml: &str, name: &str, n: usize, value: &str) -> String {
    let needle = format!(" {name}=\"");
    let start = xml.match_indices(&needle).nth(n).unwrap().0 + needle.len();
    let end = start + xml[start..].find('"').unwrap();
    format!("{}{value}{}", &xml[..start], &xml[end..])
}

#[test]
fn each_time_window_is_checked_on_its_own() {
    let (cert, key) = keypair();
    let v = verifier(&cert, true, true);
    let r = Response::default();
    let long_ago = at(Duration::minutes(-5) - Duration::seconds(SKEW_SECS + 60));
    let later = at(Duration::seconds(SKEW_SECS + 120));
    let earlier = at(Duration::seconds(-30));
    let past = at(Duration::seconds(-SKEW_SECS - 60));
    for (name, n, value, wanted) in [
        // IssueInstant older than five minutes and the skew: the
        // Response's, then the Assertion's
        ("IssueInstant", 0, &long_ago, "expired"),
        ("IssueInstant", 1, &long_ago, "expired"),
        // the Conditions' NotOnOrAfter past, the confirmation's not
        ("NotOnOrAfter", 1, &past, "expired"),
        // the confirmation's NotOnOrAfter past, the Conditions' not
        ("NotOnOrAfter", 0, &past, "expired"),
    ] {
        let xml = set_attr(&r.xml(false), name, n, value);
        assert_eq!(reason(v.verify(&r.sign(xml, &key), None)), wanted, "{name} {n}");
    }
    // a NotBefore on the confirmation: in the future, refused; past, taken
    let with_not_before = |t: &str| {
        r.xml(false).replacen(
            "<saml:SubjectConfirmationData ",
            &format!("<saml:SubjectConfirmationData NotBefore=\"{t}\" "),
            1,
        )
    };
    assert_eq!(
        reason(v.verify(&r.sign(with_not_before(&later), &key), None)),
        "not_yet_valid"
    );
    assert!(v.verify(&r.sign(with_not_before(&earlier), &key), None).is_ok());
    // a confirmation without NotOnOrAfter
    let xml = r.xml(false);
    let start = xml.find("<saml:SubjectConfirmationData ").unwrap() + "<saml:SubjectConfirmationData ".len();
    assert!(xml[start..].starts_with("NotOnOrAfter=\""));
    let end = start + xml[start..].find("\" ").unwrap() + 2;
    let open_ended = format!("{}{}", &xml[..start], &xml[end..]);
    assert_eq!(
        reason(v.verify(&r.sign(open_ended, &key), None)),
        "subject_confirmation"
    );
}

#[test]
fn the_signature_elements_must_be_where_the_schema_puts_them() {
    let (cert, key) = keypair();
    let v = verifier(&cert, false, true);
    let signed = assertion_only(&key);
    // something between SignedInfo and SignatureValue
    let keyinfo_first = signed.replacen("<ds:SignatureValue>", "<ds:KeyInfo/><ds:SignatureValue>", 1);
    assert_eq!(
        signature_message(v.verify(&keyinfo_first, None)),
        "a signature without SignedInfo and SignatureValue"
    );
    // the transforms in the other order, or the first not a Transform
    let exc = "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>";
    let env = "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>";
    let not_a_transform =
        "<ds:DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>";
    let exc_as_other = "<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>";
    for transforms in [
        format!("{exc}{env}"),
        format!("{not_a_transform}{exc}"),
        format!("{env}{exc_as_other}"),
    ] {
        let t = template(ASSERTION_ID, RSA_SHA256, SHA256, EXC_C14N, &transforms);
        assert_eq!(
            signature_message(v.verify(&signed_info_signed_with(&t, &key), None)),
            "a reference whose transforms are not enveloped-signature then exclusive c14n",
            "{transforms}"
        );
    }
}

/// An assertion-only response carrying `template`, whose SignedInfo is
/// signed (RSA-SHA256 over its exclusive c14n) with no digest computed:
/// for templates xmlsec refuses to sign, to reach the checks made after
/// the SignedInfo verifies.
fn signed_info_signed_with(template: &str, key: &[u8]) -> String {
    let xml = with_assertion_template(template, |x| x);
    let root = crate::xml::parse(&xml).unwrap();
    let assertion = root.child(ASSERTION, "Assertion").unwrap();
    let signature = assertion.child(DSIG, "Signature").unwrap();
    let info = signature.child(DSIG, "SignedInfo").unwrap();
    let mut scope = root.decls.clone();
    scope.extend(assertion.decls.iter().cloned());
    scope.extend(signature.decls.iter().cloned());
    let canonical = crate::c14n::canonicalize(info, &scope, None, &[]);
    let key = PKey::private_key_from_der(key).unwrap();
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    let value = base64::engine::general_purpose::STANDARD
        .encode(signer.sign_oneshot_to_vec(canonical.as_bytes()).unwrap());
    xml.replacen(
        "<ds:SignatureValue/>",
        &format!("<ds:SignatureValue>{value}</ds:SignatureValue>"),
        1,
    )
}

#[test]
fn a_certificate_without_an_rsa_or_ec_key_is_refused_at_configuration() {
    // an Ed25519 certificate: XML-DSig for SAML has no algorithm for it
    // here, so no response could ever verify
    let key = PKey::generate_ed25519().unwrap();
    let cert = crate::tests::self_signed(&key, openssl::hash::MessageDigest::null());
    match ResponseVerifier::new(&Settings::parse(&config(&cert, json!({}))).unwrap()) {
        Err(PluginError::Misconfigured(m)) => assert!(m.contains("no RSA or EC public key"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_assertion_in_a_default_namespace_is_read() {
    // as ADFS sends it: `<Assertion xmlns="…assertion">`, no prefixes
    let a = read_edited_assertion(|x| {
        x.replace("saml:", "")
            .replace(
                "<Assertion ",
                "<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ",
            )
            .replace(
                "<Issuer>",
                "<Issuer xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\">",
            )
    });
    assert_eq!(a.name_id.as_deref(), Some("alice"));
    assert_eq!(
        a.attributes[1],
        ("groups".to_owned(), vec!["ops".to_owned(), "dev".to_owned()])
    );
}

#[test]
fn prefixed_and_unprefixed_saml_elements_mix() {
    // one value in the default namespace beside prefixed ones, and a
    // NameID written unprefixed: the names resolve to SAML's namespace
    // either way (samael, used before, could not read such siblings)
    let a = read_edited_assertion(|x| {
        let x = x
            .replace(
                "<saml:AttributeValue>dev</saml:AttributeValue>",
                "<AttributeValue xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\">dev</AttributeValue>\
             <saml:AttributeValue>qa</saml:AttributeValue>",
            )
            .replace(
                "<saml:NameID",
                "<NameID xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
            )
            .replace("</saml:NameID>", "</NameID>");
        assert!(x.contains("<NameID xmlns="), "the template changed: {x}");
        x
    });
    assert_eq!(a.name_id.as_deref(), Some("alice"));
    assert_eq!(
        a.attributes[1],
        (
            "groups".to_owned(),
            vec!["ops".to_owned(), "dev".into(), "qa".into()]
        )
    );
}

/// The test response's assertion, edited by `edit` before it is signed
/// (Assertion only, as [`with_assertion_template`] makes it), verified.
fn read_edited_assertion(edit: impl FnOnce(String) -> String) -> VerifiedAssertion {
    let (cert, key) = keypair();
    let xml = with_assertion_template(&signature(ASSERTION_ID), edit);
    verifier(&cert, false, true)
        .verify(&crate::tests::xmlsec_sign(&xml, &key).unwrap(), None)
        .unwrap()
}
