#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Read as _;

use base64::Engine as _;
use gatehouse_sdk::{
    Authenticator, Context, FinishRequest, PluginConfig, PluginError, StartRequest, serde_json,
};
use openssl::pkey::PKey;
use serde_json::json;

use super::*;

/// A self-signed certificate (PEM) for `key`, signed with `digest`
/// (`MessageDigest::null()` for Ed25519).
pub(crate) fn self_signed(
    key: &PKey<openssl::pkey::Private>,
    digest: openssl::hash::MessageDigest,
) -> String {
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "sp.test").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(key, digest).unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

/// A throwaway self-signed certificate and key (PEM).
pub(crate) fn keypair() -> (String, String) {
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    (
        self_signed(&key, openssl::hash::MessageDigest::sha256()),
        String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
    )
}

/// Signs `xml` as an IdP does, with the `xmlsec1` command (Debian's
/// xmlsec1, which `tests/peers/install.sh` installs): the first signature
/// template in document order is filled in with the private key `key_der`
/// (DER), every element that carries an `ID` attribute registered as an
/// ID. `Err` with xmlsec's message when it refuses.
pub(crate) fn xmlsec_sign(xml: &str, key_der: &[u8]) -> Result<String, String> {
    fn with_ids<'a>(e: &'a crate::xml::Element, out: &mut Vec<(&'a str, &'a str)>) {
        if e.attr("ID").is_some() && !out.contains(&(e.ns.as_str(), e.local.as_str())) {
            out.push((&e.ns, &e.local));
        }
        for c in e.elements() {
            with_ids(c, out);
        }
    }
    let tree = crate::xml::parse(xml).map_err(|e| format!("not signed, our parser refuses it: {e}"))?;
    let mut ids = Vec::new();
    with_ids(&tree, &mut ids);
    let dir = tempfile::tempdir().unwrap();
    let (key, input) = (dir.path().join("key.der"), dir.path().join("in.xml"));
    std::fs::write(&key, key_der).unwrap();
    std::fs::write(&input, xml).unwrap();
    let mut cmd = std::process::Command::new("xmlsec1");
    cmd.arg("--sign").arg("--privkey-der").arg(&key);
    for (ns, local) in ids {
        let node = if ns.is_empty() {
            local.to_owned()
        } else {
            format!("{ns}:{local}")
        };
        cmd.arg("--id-attr:ID").arg(node);
    }
    let out = cmd
        .arg(&input)
        .output()
        .expect("xmlsec1 (tests/peers/install.sh installs it)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout).unwrap())
}

fn settings(cert: &str, key: &str) -> serde_json::Value {
    json!({
        "sp_entity_id": "https://app.test/sp",
        "sp_public_cert": cert,
        "sp_private_key": key,
        "idp_url": "https://idp.test/sso",
        "idp_x509_cert": cert,
        "idp_entity_id": "https://idp.test/metadata",
        "idp_attr_user_permanent_id": "uid",
        "callback_url": "https://app.test/acs",
        "org_info": {"en-US": {"name": "example", "displayname": "Example & Co", "url": "https://example.test"}},
        "technical_contact": {"givenName": "Tech", "emailAddress": "tech@example.test"},
        "support_contact": {"givenName": "Help", "emailAddress": "help@example.test"},
        "security_config": {"authnRequestsSigned": true, "requestedAuthnContext": true},
    })
}

fn build(settings: serde_json::Value) -> Result<Saml, PluginError> {
    Saml::new(&PluginConfig::new("SAML", settings))
}

#[test]
fn a_configuration_without_an_idp_certificate_is_refused() {
    let (cert, key) = keypair();
    let mut s = settings(&cert, &key);
    s.as_object_mut().unwrap().remove("idp_x509_cert");
    let e = build(s).err().unwrap();
    assert!(
        matches!(&e, PluginError::Misconfigured(m) if m.starts_with("idp_x509_cert")),
        "{e}"
    );
    let mut s = settings(&cert, &key);
    s["idp_x509_cert"] = json!("not a certificate");
    let e = build(s).err().unwrap();
    assert!(
        matches!(&e, PluginError::Misconfigured(m) if m.starts_with("idp_x509_cert")),
        "{e}"
    );
}

#[test]
fn required_settings_and_bad_values_are_named() {
    let (cert, key) = keypair();
    for (k, v, named) in [
        (
            "idp_attr_user_permanent_id",
            json!(""),
            "idp_attr_user_permanent_id",
        ),
        ("callback_url", json!(null), "callback_url"),
        (
            "signature_algorithms",
            json!(["rsa-sha1"]),
            "signature_algorithms",
        ),
        ("clock_skew", json!("2h"), "clock_skew"),
        ("sp_private_key", json!("nope"), "sp_private_key"),
        (
            "sp_extra",
            json!({"sign_request": "yes"}),
            "sp_extra.sign_request",
        ),
        ("nonsense", json!(1), "nonsense"),
    ] {
        let mut s = settings(&cert, &key);
        s[k] = v;
        let e = build(s).err().unwrap();
        assert!(
            matches!(&e, PluginError::Misconfigured(m) if m.contains(named)),
            "{k}: {e}"
        );
        // no value is repeated in the message
        assert!(!e.to_string().contains("BEGIN"), "{e}");
    }
}

#[test]
fn the_platform_uppercase_names_are_accepted() {
    let (cert, key) = keypair();
    let s = json!({
        "SP_ENTITY_ID": "https://app.test/sp",
        "SP_PUBLIC_CERT": cert,
        "SP_PRIVATE_KEY": key,
        "IDP_URL": "https://idp.test/sso",
        "IDP_X509_CERT": cert,
        "IDP_ENTITY_ID": "https://idp.test/metadata",
        "IDP_ATTR_USER_PERMANENT_ID": "uid",
        "CALLBACK_URL": "https://app.test/acs",
        "EXTRA_DATA": ["mail"],
        "SP_EXTRA": {"sign_request": true},
    });
    let saml = build(s).unwrap();
    assert!(saml.settings.sign_requests);
    assert_eq!(saml.settings.extra_data, vec!["mail".to_owned()]);
}

#[tokio::test]
async fn metadata_names_the_entity_acs_certificate_organization_and_contacts() {
    let (cert, key) = keypair();
    let saml = build(settings(&cert, &key)).unwrap();
    let doc = saml.metadata(&Context::new("SAML")).await.unwrap();
    assert_eq!(doc.content_type, "application/samlmetadata+xml");
    let body = doc.body;
    assert!(body.contains("entityID=\"https://app.test/sp\""), "{body}");
    assert!(body.contains("Location=\"https://app.test/acs\""), "{body}");
    assert!(body.contains("AuthnRequestsSigned=\"true\""), "{body}");
    let der = settings::certificate_der("c", &cert).unwrap();
    assert!(body.contains(&base64::engine::general_purpose::STANDARD.encode(der)));
    assert!(body.contains("Example &amp; Co"), "{body}");
    assert!(
        body.contains("contactType=\"technical\"><md:GivenName>Tech"),
        "{body}"
    );
    assert!(
        body.contains("contactType=\"support\"><md:GivenName>Help"),
        "{body}"
    );
    // it is well-formed, namespace-correct XML of one EntityDescriptor
    let parsed = crate::xml::parse(&body).unwrap();
    assert!(parsed.is("urn:oasis:names:tc:SAML:2.0:metadata", "EntityDescriptor"));
    assert_eq!(parsed.attr("entityID"), Some("https://app.test/sp"));
    assert!(
        parsed
            .child("urn:oasis:names:tc:SAML:2.0:metadata", "SPSSODescriptor")
            .is_some()
    );
}

#[tokio::test]
async fn start_sends_a_signed_deflated_authn_request_with_the_relay_state() {
    let (cert, key) = keypair();
    let saml = build(settings(&cert, &key)).unwrap();
    let r = saml
        .start(&Context::new("SAML"), StartRequest::new("st4te", None))
        .await
        .unwrap();
    let id = r.flow_state["request_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with('_') && id.len() == 41, "{id}");
    let url = url::Url::parse(&r.url).unwrap();
    assert_eq!(url.host_str(), Some("idp.test"));
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["RelayState"], "st4te");
    assert_eq!(q["SigAlg"], "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&q["SAMLRequest"])
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .unwrap();
    assert!(xml.contains(&format!("ID=\"{id}\"")), "{xml}");
    assert!(
        xml.contains("AssertionConsumerServiceURL=\"https://app.test/acs\""),
        "{xml}"
    );
    assert!(
        xml.contains("<saml:Issuer>https://app.test/sp</saml:Issuer>"),
        "{xml}"
    );
    assert!(xml.contains("PasswordProtectedTransport"), "{xml}");
    // the signature covers the query as sent, and verifies with the SP cert
    let query = url.query().unwrap();
    let signed = &query[..query.find("&Signature=").unwrap()];
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&q["Signature"])
        .unwrap();
    let pubkey = openssl::x509::X509::from_pem(cert.as_bytes())
        .unwrap()
        .public_key()
        .unwrap();
    let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &pubkey).unwrap();
    v.update(signed.as_bytes()).unwrap();
    assert!(v.verify(&sig).unwrap());
    // two starts: two request IDs
    let again = saml
        .start(&Context::new("SAML"), StartRequest::new("s2", None))
        .await
        .unwrap();
    assert_ne!(again.flow_state["request_id"], r.flow_state["request_id"]);
}

fn reason(e: PluginError) -> String {
    match e {
        PluginError::InvalidAssertion { reason, .. } => reason,
        other => panic!("not an assertion refusal: {other:?}"),
    }
}

#[tokio::test]
async fn finish_refuses_bad_input_with_reasons() {
    let (cert, key) = keypair();
    let mut s = settings(&cert, &key);
    s["allow_idp_initiated"] = json!(false);
    let saml = build(s).unwrap();
    let ctx = Context::new("SAML");
    let finish = |params: &[(&str, &str)], state: Option<serde_json::Value>| {
        let params = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        FinishRequest::new(params, state, None)
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let solicited = Some(json!({"request_id": "_abc"}));
    // unsolicited while off
    let e = saml
        .finish(&ctx, finish(&[("SAMLResponse", &b64("<x/>"))], None))
        .await
        .unwrap_err();
    assert_eq!(reason(e), "unsolicited");
    for (resp, want) in [
        (b64("<x/>"), "structure"),
        ("%%%".to_owned(), "malformed"),
        (b64("<!DOCTYPE x><x/>"), "dtd"),
        (b64("<r>a<!---->b</r>"), "comment"),
    ] {
        let e = saml
            .finish(&ctx, finish(&[("SAMLResponse", &resp)], solicited.clone()))
            .await
            .unwrap_err();
        assert_eq!(reason(e), want, "{resp}");
    }
    let e = saml.finish(&ctx, finish(&[], solicited)).await.unwrap_err();
    assert_eq!(reason(e), "malformed");
}

#[test]
fn xml_escape_covers_markup() {
    assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
}

#[test]
fn the_redirect_conformance_suite_passes() {
    let (cert, key) = keypair();
    let mut missing_cert = settings(&cert, &key);
    missing_cert.as_object_mut().unwrap().remove("idp_x509_cert");
    gatehouse_sdk::testing::RedirectSuite::new(
        &SamlFactory,
        settings(&cert, &key),
        Some("https://app.test/acs"),
    )
    .secret(key.trim())
    .bad_settings(missing_cert)
    .bad_settings(json!({"sp_entity_id": "x"}))
    .run()
    .unwrap();
}
