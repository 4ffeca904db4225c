//! The structural scan: a SAML response must be one `samlp:Response`
//! holding exactly one `saml:Assertion` as a direct child, and every XML
//! signature must sit directly in the element it signs and reference that
//! element's own `ID`. This refuses the signature-wrapping family before
//! any signature is checked: a wrapped or second assertion, a signature
//! moved onto another element, duplicate IDs (a reference that could
//! resolve to the wrong element), assertions hidden in extensions.
//! Namespaces are resolved, so prefixes do not matter.

use std::collections::HashSet;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use crate::error::SamlError;

/// The SAML 2.0 protocol namespace (`samlp:`).
pub const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// The SAML 2.0 assertion namespace (`saml:`).
pub const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
// (as bytes, for the resolved names the scan compares)
const PROTOCOL_NS: &[u8] = PROTOCOL.as_bytes();
const ASSERTION_NS: &[u8] = ASSERTION.as_bytes();
const DSIG_NS: &[u8] = crate::dsig::DSIG.as_bytes();
/// The longest `ID` accepted (the assertion ID is the replay-cache key;
/// real ones are 20 to 45 characters).
const MAX_ID: usize = 256;
/// Deeper than any real response (SimpleSAMLphp's: 7).
const MAX_DEPTH: usize = 32;

/// What the scan learned about a well-shaped response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// The Response's `ID`.
    pub response_id: String,
    /// The Response's `InResponseTo`, if any.
    pub in_response_to: Option<String>,
    /// The Response has a `Destination` attribute (its value is compared
    /// with the ACS URL on the signed content).
    pub response_has_destination: bool,
    /// A signature sits in the Response and references it.
    pub response_signed: bool,
    /// The one Assertion's `ID`.
    pub assertion_id: String,
    /// A signature sits in the Assertion and references it.
    pub assertion_signed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Response,
    Assertion,
    Signature,
    Other,
}

struct Frame {
    kind: Kind,
    /// For a Signature: the references seen so far.
    references: usize,
}

fn structure(m: &str) -> SamlError {
    SamlError::Structure(m.to_owned())
}

/// Scans `xml` (already through [`crate::front`]).
pub fn scan(xml: &str) -> Result<Shape, SamlError> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Frame> = Vec::new();
    let mut shape = Shape::default();
    let mut ids: HashSet<String> = HashSet::new();
    let mut assertions = 0usize;
    let mut root_done = false;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|_| SamlError::Malformed("the response is not well-formed XML".into()))?;
        let ns: Option<Vec<u8>> = match ns {
            ResolveResult::Bound(n) => Some(n.as_ref().to_vec()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => {
                return Err(SamlError::Malformed("an undeclared namespace prefix".into()));
            }
        };
        match event {
            Event::Start(e) | Event::Empty(e) if root_done => {
                let _ = e;
                return Err(structure("content after the Response"));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let kind = element(
                    e,
                    ns.as_deref(),
                    &mut stack,
                    &mut shape,
                    &mut ids,
                    &mut assertions,
                )?;
                if stack.is_empty() && empty {
                    return Err(structure("an empty Response"));
                }
                if !empty {
                    if stack.len() >= MAX_DEPTH {
                        return Err(structure("nested too deeply"));
                    }
                    stack.push(Frame { kind, references: 0 });
                }
            }
            Event::End(_) => {
                if let Some(frame) = stack.pop()
                    && frame.kind == Kind::Signature
                    && frame.references != 1
                {
                    return Err(SamlError::Signature(
                        "a signature must hold exactly one reference".into(),
                    ));
                }
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Eof => break,
            Event::Text(_) | Event::GeneralRef(_) | Event::Decl(_) => {}
            Event::Comment(_) => return Err(SamlError::Comment),
            Event::DocType(_) => return Err(SamlError::Dtd),
            Event::CData(_) | Event::PI(_) => {
                return Err(SamlError::Malformed("CDATA or a processing instruction".into()));
            }
        }
    }
    if !root_done {
        return Err(SamlError::Malformed("the response is not well-formed XML".into()));
    }
    if assertions != 1 {
        return Err(structure(if assertions == 0 {
            "no Assertion"
        } else {
            "more than one Assertion"
        }));
    }
    Ok(shape)
}

/// Classifies and checks one element; `stack` holds its ancestors.
fn element(
    e: &BytesStart<'_>,
    ns: Option<&[u8]>,
    stack: &mut [Frame],
    shape: &mut Shape,
    ids: &mut HashSet<String>,
    assertions: &mut usize,
) -> Result<Kind, SamlError> {
    let local = e.local_name();
    let local = local.as_ref();
    let mut id = None;
    let mut in_response_to = None;
    let mut uri = None;
    let mut destination = false;
    for attr in e.attributes() {
        let attr = attr.map_err(|_| SamlError::Malformed("a malformed attribute".into()))?;
        let value = || {
            attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .map_err(|_| SamlError::Malformed("a malformed attribute value".into()))
        };
        match attr.key.as_ref() {
            b"ID" => {
                let v = value()?;
                if v.is_empty() || v.len() > MAX_ID {
                    return Err(structure("an ID that is empty or longer than 256 bytes"));
                }
                if !ids.insert(v.clone()) {
                    return Err(structure("two elements with the same ID"));
                }
                id = Some(v);
            }
            b"InResponseTo" => in_response_to = Some(value()?),
            b"URI" => uri = Some(value()?),
            b"Destination" => destination = true,
            _ => {}
        }
    }
    let depth = stack.len();
    let kind = match (ns, local) {
        (Some(PROTOCOL_NS), b"Response") if depth == 0 => {
            shape.response_id = id.ok_or_else(|| structure("a Response without an ID"))?;
            shape.in_response_to = in_response_to;
            shape.response_has_destination = destination;
            Kind::Response
        }
        _ if depth == 0 => return Err(structure("the document is not a SAML Response")),
        (Some(PROTOCOL_NS), b"Response") => return Err(structure("a Response inside the Response")),
        (Some(ASSERTION_NS), b"Assertion") => {
            *assertions += 1;
            if depth != 1 {
                return Err(structure("an Assertion outside the Response's top level"));
            }
            shape.assertion_id = id.ok_or_else(|| structure("an Assertion without an ID"))?;
            Kind::Assertion
        }
        (Some(ASSERTION_NS), b"EncryptedAssertion") => return Err(SamlError::Encrypted),
        (Some(DSIG_NS), b"Signature") => {
            let parent = stack.last().map(|f| f.kind);
            match (depth, parent) {
                (1, Some(Kind::Response)) if !shape.response_signed => shape.response_signed = true,
                (2, Some(Kind::Assertion)) if !shape.assertion_signed => shape.assertion_signed = true,
                _ => return Err(SamlError::Signature("a signature in an unexpected place".into())),
            }
            Kind::Signature
        }
        (Some(DSIG_NS), b"Reference") => {
            // The signature this reference belongs to, and what it signs.
            let sig_at = stack
                .iter()
                .rposition(|f| f.kind == Kind::Signature)
                .ok_or_else(|| structure("a reference outside a signature"))?;
            let signed = match stack[sig_at - 1].kind {
                Kind::Response => &shape.response_id,
                Kind::Assertion => &shape.assertion_id,
                _ => return Err(structure("a signature in an unexpected place")),
            };
            if uri.as_deref() != Some(format!("#{signed}").as_str()) {
                return Err(SamlError::Signature(
                    "a signature references another element than the one it sits in".into(),
                ));
            }
            stack[sig_at].references += 1;
            Kind::Other
        }
        _ => Kind::Other,
    };
    Ok(kind)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sig(id: &str) -> String {
        format!(
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
             <ds:Reference URI=\"#{id}\"/></ds:SignedInfo><ds:SignatureValue>x</ds:SignatureValue></ds:Signature>"
        )
    }

    fn response(inner: &str) -> String {
        format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"r1\" InResponseTo=\"q1\">\
             <saml:Issuer>idp</saml:Issuer>{inner}</samlp:Response>"
        )
    }

    fn assertion(id: &str, signed: bool) -> String {
        let s = if signed { sig(id) } else { String::new() };
        format!(
            "<saml:Assertion ID=\"{id}\"><saml:Issuer>idp</saml:Issuer>{s}<saml:Subject/></saml:Assertion>"
        )
    }

    #[test]
    fn a_doubly_signed_response_is_well_shaped() {
        let xml = response(&format!("{}{}", sig("r1"), assertion("a1", true)));
        let shape = scan(&xml).unwrap();
        assert_eq!(
            shape,
            Shape {
                response_id: "r1".into(),
                in_response_to: Some("q1".into()),
                response_has_destination: false,
                response_signed: true,
                assertion_id: "a1".into(),
                assertion_signed: true,
            }
        );
        // other prefixes, same namespaces
        let xml = "<p:Response xmlns:p=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"r\">\
                   <Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\"/></p:Response>";
        let shape = scan(xml).unwrap();
        assert!(!shape.response_signed && !shape.assertion_signed);
        // the Response's Destination is noticed, an Assertion's is not
        let xml = "<p:Response xmlns:p=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"r\" Destination=\"\">\
                   <Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\"/></p:Response>";
        assert!(scan(xml).unwrap().response_has_destination);
        let xml = "<p:Response xmlns:p=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"r\">\
                   <Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\" Destination=\"x\"/></p:Response>";
        assert!(!scan(xml).unwrap().response_has_destination);
    }

    #[test]
    fn wrapping_shapes_are_refused() {
        for (xml, reason) in [
            // a second, unsigned assertion
            (
                response(&format!("{}{}", assertion("evil", false), assertion("a1", true))),
                "structure",
            ),
            // the signed assertion wrapped inside another element
            (
                response(&format!(
                    "<samlp:Extensions>{}</samlp:Extensions>{}",
                    assertion("a1", true),
                    assertion("evil", false)
                )),
                "structure",
            ),
            // the signed assertion wrapped inside the evil one
            (
                response(&format!(
                    "<saml:Assertion ID=\"evil\"><saml:Subject/>{}</saml:Assertion>",
                    assertion("a1", true)
                )),
                "structure",
            ),
            // a signature moved to reference another element
            (
                response(&format!("{}{}", sig("a1"), assertion("a1", false))),
                "signature",
            ),
            // a signature deeper in the assertion
            (
                response(&format!(
                    "<saml:Assertion ID=\"a1\"><saml:Subject>{}</saml:Subject></saml:Assertion>",
                    sig("a1")
                )),
                "signature",
            ),
            // two signatures on the Response
            (
                response(&format!("{}{}{}", sig("r1"), sig("r1"), assertion("a1", false))),
                "signature",
            ),
            // duplicate IDs
            (response(&assertion("r1", false)), "structure"),
            // an overlong or empty ID
            (response(&assertion(&"a".repeat(257), false)), "structure"),
            (response(&assertion("", false)), "structure"),
            // no assertion
            (response(""), "structure"),
            // not a Response
            (
                "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\"/>".to_owned(),
                "structure",
            ),
            // a Response in the wrong namespace
            (
                "<Response ID=\"r\"><Assertion ID=\"a\"/></Response>".to_owned(),
                "structure",
            ),
            // content after the root
            (format!("{}<x/>", response(&assertion("a1", false))), "structure"),
            // not well-formed
            (
                response(&assertion("a1", false)).replace("</samlp:Response>", ""),
                "malformed",
            ),
            ("<p:Response ID=\"r\"/>".to_owned(), "malformed"),
        ] {
            assert_eq!(scan(&xml).unwrap_err().reason(), reason, "{xml}");
        }
    }

    fn structure_message(xml: &str) -> String {
        match scan(xml).unwrap_err() {
            SamlError::Structure(m) => m,
            other => panic!("{other:?} for {xml}"),
        }
    }

    #[test]
    fn a_second_response_after_the_first_is_refused_not_read() {
        // without the check, the second Response (no assertion of its
        // own) would replace the first one's ID and InResponseTo
        let xml = format!(
            "{}<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"r2\" InResponseTo=\"q2\"></samlp:Response>",
            response(&assertion("a1", true))
        );
        assert_eq!(structure_message(&xml), "content after the Response");
    }

    #[test]
    fn roots_nested_responses_and_doubled_assertion_signatures_are_refused_by_name() {
        // a Response inside the Response must not become the one read
        let nested = response(&format!(
            "<samlp:Response ID=\"inner\" InResponseTo=\"q2\"><saml:Issuer>x</saml:Issuer></samlp:Response>{}",
            assertion("a1", true)
        ));
        assert_eq!(structure_message(&nested), "a Response inside the Response");
        // a root that is not a Response
        let root = "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"l\">\
                    <samlp:Response ID=\"r\"><saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\"/>\
                    </samlp:Response></samlp:LogoutResponse>";
        assert_eq!(structure_message(root), "the document is not a SAML Response");
        // two signatures in the Assertion
        let doubled = response(&format!(
            "<saml:Assertion ID=\"a1\">{}{}<saml:Subject/></saml:Assertion>",
            sig("a1"),
            sig("a1")
        ));
        match scan(&doubled).unwrap_err() {
            SamlError::Signature(m) => assert_eq!(m, "a signature in an unexpected place"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_assertion_count_and_id_length_are_exact() {
        assert_eq!(structure_message(&response("")), "no Assertion");
        assert_eq!(
            structure_message(&response(&format!(
                "{}{}",
                assertion("a1", false),
                assertion("a2", false)
            ))),
            "more than one Assertion"
        );
        // 256 bytes: the longest ID taken; 257 is refused
        let longest = "a".repeat(MAX_ID);
        assert_eq!(
            scan(&response(&assertion(&longest, false))).unwrap().assertion_id,
            longest
        );
        assert_eq!(
            structure_message(&response(&assertion(&"a".repeat(MAX_ID + 1), false))),
            "an ID that is empty or longer than 256 bytes"
        );
    }

    #[test]
    fn encrypted_assertions_are_refused() {
        let xml = response("<saml:EncryptedAssertion/>");
        assert_eq!(scan(&xml).unwrap_err().reason(), "encrypted");
    }
}
