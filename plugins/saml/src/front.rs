//! The parsing front: what a `SAMLResponse` must be before any XML parser
//! sees it. Pure and cheap; the fuzz target `saml_response` drives it.
//!
//! Refused here: more than [`MAX_RESPONSE`] bytes, anything but base64
//! (ASCII whitespace, which form encoders insert, is skipped), anything but
//! UTF-8, a document type declaration or entity (XXE, "billion laughs"),
//! comments (the NameID comment-injection attack: canonical XML drops them,
//! so a signature still verifies while a naive reader sees a cut value),
//! CDATA sections, processing instructions, and an XML declaration naming
//! another encoding. A real identity provider sends none of these.

use base64::Engine as _;

use crate::error::SamlError;

/// The longest `SAMLResponse` read (base64 bytes). A signed response with
/// a few dozen attributes is 10 to 20 KiB; the daemon refuses request
/// bodies over 64 KiB before any plugin sees them.
pub const MAX_RESPONSE: usize = 48 * 1024;

/// Decodes a POST-binding `SAMLResponse` and checks the XML's lexical
/// shape; the XML text on success.
pub fn decode_response(encoded: &str) -> Result<String, SamlError> {
    if encoded.len() > MAX_RESPONSE {
        return Err(SamlError::TooLarge { limit: MAX_RESPONSE });
    }
    // (a copy without the whitespace only when there is some: the copy
    // byte by byte was most of this function's time)
    let compact: std::borrow::Cow<'_, [u8]> = if encoded.bytes().any(|b| b.is_ascii_whitespace()) {
        encoded.bytes().filter(|b| !b.is_ascii_whitespace()).collect()
    } else {
        encoded.as_bytes().into()
    };
    if compact.is_empty() {
        return Err(SamlError::Malformed("SAMLResponse is empty".into()));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| SamlError::Malformed("SAMLResponse is not base64".into()))?;
    let xml =
        String::from_utf8(bytes).map_err(|_| SamlError::Malformed("the response is not UTF-8".into()))?;
    check_lexical(&xml)?;
    Ok(xml)
}

/// The lexical rules of the module docs, on decoded XML.
pub fn check_lexical(xml: &str) -> Result<(), SamlError> {
    let body = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let body = match body.strip_prefix("<?xml") {
        Some(rest) => {
            let end = rest
                .find("?>")
                .ok_or_else(|| SamlError::Malformed("an unterminated XML declaration".into()))?;
            let decl = &rest[..end];
            if let Some(i) = decl.find("encoding") {
                let value = decl[i + "encoding".len()..]
                    .trim_start()
                    .trim_start_matches('=')
                    .trim_start()
                    .trim_start_matches(['"', '\''])
                    .get(..5)
                    .unwrap_or("");
                if !value.eq_ignore_ascii_case("utf-8") {
                    return Err(SamlError::Malformed("an XML encoding other than UTF-8".into()));
                }
            }
            &rest[end + 2..]
        }
        None => body,
    };
    if body.contains('\0') {
        return Err(SamlError::Malformed("a NUL character".into()));
    }
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        if after.starts_with("!--") {
            return Err(SamlError::Comment);
        }
        if after.starts_with("![CDATA[") {
            return Err(SamlError::Malformed("a CDATA section".into()));
        }
        if after.starts_with('!') {
            // <!DOCTYPE, <!ENTITY, <!ELEMENT, …
            return Err(SamlError::Dtd);
        }
        if after.starts_with('?') {
            return Err(SamlError::Malformed("a processing instruction".into()));
        }
        rest = after;
    }
    // An entity reference other than the five predefined ones and
    // character references cannot resolve without a DTD; refuse it here
    // rather than leave it to the parser.
    let mut rest = body;
    while let Some(i) = rest.find('&') {
        let after = &rest[i + 1..];
        let known = ["amp;", "lt;", "gt;", "quot;", "apos;", "#"]
            .iter()
            .any(|p| after.starts_with(p));
        if !known {
            return Err(SamlError::Dtd);
        }
        rest = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn a_plain_response_passes_with_line_breaks_in_the_base64() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><samlp:Response ID=\"a\">x &amp; y &#233;</samlp:Response>";
        let mut enc = b64(xml);
        enc.insert(10, '\n');
        enc.insert(20, ' ');
        assert_eq!(decode_response(&enc).unwrap(), xml);
    }

    #[test]
    fn the_size_limit_is_exact_and_fits_real_responses() {
        // base64 of exactly MAX_RESPONSE bytes (a multiple of 4): taken
        let xml_len = MAX_RESPONSE / 4 * 3;
        let xml = format!("<r>{}</r>", "a".repeat(xml_len - "<r></r>".len()));
        let enc = b64(&xml);
        assert_eq!(enc.len(), MAX_RESPONSE);
        assert_eq!(decode_response(&enc).unwrap(), xml);
        // one byte more (whitespace counts: it is what the client sent)
        let over = format!("{enc}\n");
        assert_eq!(
            decode_response(&over).unwrap_err().reason(),
            "too_large",
            "{} bytes",
            over.len()
        );
        // a response with many attributes (20 KB of XML) fits
        let big = format!("<r>{}</r>", "<a>v</a>".repeat(2_500));
        assert_eq!(decode_response(&b64(&big)).unwrap(), big);
    }

    #[test]
    fn a_bare_xml_declaration_is_read_past() {
        assert!(check_lexical("<?xml?><r/>").is_ok());
        assert!(check_lexical("<?xml version=\"1.0\"?><r>&amp;</r>").is_ok());
        assert_eq!(
            check_lexical("<?xml?><!DOCTYPE r><r/>").unwrap_err().reason(),
            "dtd"
        );
    }

    #[test]
    fn hostile_shapes_are_refused_with_their_reason() {
        for (xml, reason) in [
            (
                "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>",
                "dtd",
            ),
            ("<?xml version=\"1.0\"?>\n<!DOCTYPE r><r/>", "dtd"),
            ("<r>&x;</r>", "dtd"),
            ("<r><n>alice<!---->.evil</n></r>", "comment"),
            ("<r><![CDATA[x]]></r>", "malformed"),
            ("<r><?pi x?></r>", "malformed"),
            ("<?xml version=\"1.0\" encoding=\"UTF-16\"?><r/>", "malformed"),
            ("<?xml version=\"1.0\"", "malformed"),
            ("<r>\0</r>", "malformed"),
        ] {
            assert_eq!(decode_response(&b64(xml)).unwrap_err().reason(), reason, "{xml}");
        }
        assert_eq!(decode_response("not base64!").unwrap_err().reason(), "malformed");
        assert_eq!(decode_response("  ").unwrap_err().reason(), "malformed");
        assert_eq!(
            decode_response(&b64("\u{0}\u{fffe}")).unwrap_err().reason(),
            "malformed"
        );
        let big = "A".repeat(MAX_RESPONSE + 1);
        assert_eq!(decode_response(&big).unwrap_err().reason(), "too_large");
        let latin1 = base64::engine::general_purpose::STANDARD
            .encode([b'<', b'r', b'>', 0xe9, b'<', b'/', b'r', b'>']);
        assert_eq!(decode_response(&latin1).unwrap_err().reason(), "malformed");
    }
}
