//! `SAMLResponse` values as a browser (or an attacker) posts them, into the
//! `saml` plugin's own parsing front: size, base64, UTF-8 and the lexical
//! rules (no DTD, entity, comment, CDATA or processing instruction), then
//! the structural scan that refuses signature wrapping. Never a panic; a
//! decoded response obeys the lexical rules; a response the scan accepts
//! has one Response and one Assertion, both with IDs, and a signature
//! claimed for each only where one sits. What the element tree takes, the
//! canonicalizer turns into XML that parses again and canonicalizes to
//! the same bytes (exclusive c14n is idempotent).
#![no_main]

use base64::Engine as _;
use gatehouse_plugin_saml::front::{MAX_RESPONSE, check_lexical, decode_response};
use gatehouse_plugin_saml::structure::scan;
use gatehouse_plugin_saml::{c14n, schema, xml};
use libfuzzer_sys::fuzz_target;

fn check_canonical(text: &str) {
    if let Ok(root) = xml::parse(text) {
        let once = c14n::canonicalize(&root, &[], None, &["#default"]);
        let again = xml::parse(&once).expect("canonical XML parses");
        assert_eq!(c14n::canonicalize(&again, &[], None, &["#default"]), once);
        // what a login reads from canonical bytes: a clear refusal or the
        // fields, never a panic; an assertion has its mandatory parts
        if let Ok(r) = schema::Response::read(&once) {
            assert!(once.contains("Version=\"2.0\""));
            assert!(r.assertion.is_none() || once.contains("Assertion"));
        }
        if schema::Assertion::read(&once).is_ok() {
            assert!(once.contains("Version=\"2.0\"") && once.contains("Issuer"));
        }
    }
}

fn check_shape(xml: &str) {
    check_canonical(xml);
    if let Ok(shape) = scan(xml) {
        assert!(!shape.response_id.is_empty());
        assert!(!shape.assertion_id.is_empty());
        assert_ne!(shape.response_id, shape.assertion_id);
        if shape.response_signed || shape.assertion_signed {
            assert!(xml.contains("Signature"));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // as posted: base64 text
    if let Ok(text) = std::str::from_utf8(data) {
        match decode_response(text) {
            Ok(xml) => {
                assert!(text.len() <= MAX_RESPONSE);
                assert!(check_lexical(&xml).is_ok());
                assert!(!xml.contains("<!"));
                check_shape(&xml);
            }
            Err(e) => assert!(!e.reason().is_empty()),
        }
        // as decoded XML
        if check_lexical(text).is_ok() {
            check_shape(text);
        }
    }
    // arbitrary bytes, encoded as a browser would post them
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    if let Ok(xml) = decode_response(&encoded) {
        assert_eq!(xml.as_bytes(), data);
        check_shape(&xml);
    }
});
