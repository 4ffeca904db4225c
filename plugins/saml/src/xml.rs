//! A small namespace-aware element tree for the XML the front lets
//! through ([`crate::front`]: elements, attributes, text and the five
//! predefined entities or character references; no DTD, comment, CDATA or
//! processing instruction). It keeps what canonicalization needs
//! ([`crate::c14n`]): each element's own namespace declarations apart from
//! its attributes, attribute values normalized as an XML parser must, and
//! text with its line ends normalized and references resolved.

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, Event};

use crate::error::SamlError;

/// The namespace the `xml` prefix is bound to, always.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// Deeper than any real response (SimpleSAMLphp's: 7).
const MAX_DEPTH: usize = 32;

/// An element: its name, resolved namespace, own declarations, attributes
/// and children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// The name's prefix; empty when it has none.
    pub prefix: String,
    /// The local name.
    pub local: String,
    /// The namespace the name is in; empty for none.
    pub ns: String,
    /// The namespace declarations on this element, in document order:
    /// (prefix, URI), the empty prefix for `xmlns="…"`.
    pub decls: Vec<(String, String)>,
    /// The other attributes, in document order.
    pub attrs: Vec<Attr>,
    /// Elements and text, in document order.
    pub children: Vec<Node>,
}

/// An attribute that is not a namespace declaration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attr {
    /// The name's prefix; empty when it has none.
    pub prefix: String,
    /// The local name.
    pub local: String,
    /// The namespace: empty for an unprefixed attribute.
    pub ns: String,
    /// The value, normalized (references resolved, literal white space
    /// turned into spaces).
    pub value: String,
}

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, references resolved and line ends normalized.
    Text(String),
}

fn malformed(what: &str) -> SamlError {
    SamlError::Malformed(what.to_owned())
}

impl Element {
    /// Is this the element `local` in namespace `ns`?
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    /// The value of the unprefixed attribute `local`.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.prefix.is_empty() && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// The child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element `local` in namespace `ns`.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, local))
    }

    /// The text directly inside this element.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|c| match c {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// Parses a document; its root element. Refuses what is not well-formed,
/// undeclared prefixes, unknown entities and what the front refuses.
pub fn parse(xml: &str) -> Result<Element, SamlError> {
    let mut reader = Reader::from_str(xml);
    // `Reader` checks end names and duplicate attributes by default.
    // the open elements, innermost last: their declarations are the scope
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|_| malformed("the response is not well-formed XML"))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(SamlError::Structure("nested too deeply".into()));
                }
                let element = start(e, &stack)?;
                if matches!(event, Event::Empty(_)) {
                    close(element, &mut stack, &mut root);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| malformed("an unmatched end tag"))?;
                close(element, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let text = t
                    .xml_content(XmlVersion::Implicit1_0)
                    .map_err(|_| malformed("text that is not UTF-8"))?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(r) => {
                let c = reference(&r)?;
                push_text(&mut stack, c.encode_utf8(&mut [0; 4]))?;
            }
            Event::Decl(_) => {}
            Event::Eof => break,
            Event::DocType(_) => return Err(SamlError::Dtd),
            Event::Comment(_) => return Err(SamlError::Comment),
            Event::CData(_) | Event::PI(_) => {
                return Err(malformed("CDATA or a processing instruction"));
            }
        }
    }
    if !stack.is_empty() {
        return Err(malformed("the response is not well-formed XML"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn close(element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), SamlError> {
    let Some(parent) = stack.last_mut() else {
        // outside the root only white space may stand
        return if text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
            Ok(())
        } else {
            Err(malformed("text outside the root element"))
        };
    };
    match parent.children.last_mut() {
        Some(Node::Text(t)) => t.push_str(text),
        _ => parent.children.push(Node::Text(text.to_owned())),
    }
    Ok(())
}

/// A predefined entity or a character reference; no other entity exists
/// without a DTD.
fn reference(r: &BytesRef<'_>) -> Result<char, SamlError> {
    if r.is_char_ref() {
        let c = r
            .resolve_char_ref()
            .ok()
            .flatten()
            .ok_or_else(|| malformed("a bad character reference"))?;
        if !is_xml_char(c) {
            return Err(malformed("a character reference to a character XML forbids"));
        }
        return Ok(c);
    }
    match r.as_ref() {
        b"amp" => Ok('&'),
        b"lt" => Ok('<'),
        b"gt" => Ok('>'),
        b"apos" => Ok('\''),
        b"quot" => Ok('"'),
        _ => Err(SamlError::Dtd),
    }
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn split(name: &[u8]) -> Result<(String, String), SamlError> {
    let name = std::str::from_utf8(name).map_err(|_| malformed("a name that is not UTF-8"))?;
    let (prefix, local) = match name.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", name),
    };
    if !is_ncname(local) || (name.contains(':') && !is_ncname(prefix)) {
        return Err(malformed("a malformed name"));
    }
    Ok((prefix.to_owned(), local.to_owned()))
}

/// XML 1.0's `NCName`: a `Name` without a colon (quick-xml alone would
/// take `<a?b/>`, whose canonical form would not parse again).
fn is_ncname(name: &str) -> bool {
    fn start(c: char) -> bool {
        matches!(c, 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
            | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
            | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
            | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
            | '\u{10000}'..='\u{EFFFF}')
    }
    let mut chars = name.chars();
    chars.next().is_some_and(start) && chars.all(|c| {
        start(c)
            || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
    })
}

/// The namespace `prefix` is bound to: by the element's own declarations
/// `own`, else by the nearest open element's.
fn resolve(open: &[Element], own: &[(String, String)], prefix: &str) -> Option<String> {
    if prefix == "xml" {
        return Some(XML_NS.to_owned());
    }
    own.iter()
        .rev()
        .chain(open.iter().rev().flat_map(|e| e.decls.iter().rev()))
        .find(|(p, _)| p == prefix)
        .map(|(_, uri)| uri.clone())
}

/// An element's start tag, its names resolved against its own declarations
/// and those of the `open` elements around it.
fn start(e: &BytesStart<'_>, open: &[Element]) -> Result<Element, SamlError> {
    let (prefix, local) = split(e.name().as_ref())?;
    let mut element = Element {
        prefix,
        local,
        ..Element::default()
    };
    let mut raw = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|_| malformed("a malformed or repeated attribute"))?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|_| malformed("a malformed attribute value"))?;
        if value.chars().any(|c| !is_xml_char(c)) {
            return Err(malformed("an attribute value with a character XML forbids"));
        }
        let (prefix, local) = split(attr.key.as_ref())?;
        match (prefix.as_str(), local.as_str()) {
            ("", "xmlns") => element.decls.push((String::new(), value.into_owned())),
            ("xmlns", p) => {
                // XML 1.0 cannot undeclare a prefix; `xml` and `xmlns`
                // cannot be rebound
                if value.is_empty() || p == "xmlns" || (p == "xml") != (value == XML_NS) {
                    return Err(malformed("a namespace declaration XML forbids"));
                }
                element.decls.push((p.to_owned(), value.into_owned()));
            }
            _ => raw.push((prefix, local, value.into_owned())),
        }
    }
    element.ns = if element.prefix.is_empty() {
        resolve(open, &element.decls, "").unwrap_or_default()
    } else {
        resolve(open, &element.decls, &element.prefix)
            .ok_or_else(|| malformed("an undeclared namespace prefix"))?
    };
    for (prefix, local, value) in raw {
        let ns = if prefix.is_empty() {
            String::new()
        } else {
            resolve(open, &element.decls, &prefix)
                .ok_or_else(|| malformed("an undeclared namespace prefix"))?
        };
        if element
            .attrs
            .iter()
            .any(|a| a.ns == ns && a.local == local && !ns.is_empty())
        {
            return Err(malformed("a repeated attribute"));
        }
        element.attrs.push(Attr {
            prefix,
            local,
            ns,
            value,
        });
    }
    Ok(element)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_resolve_and_values_normalize() {
        let root = parse(
            "<?xml version=\"1.0\"?>\n<p:a xmlns:p=\"urn:p\" xmlns=\"urn:d\" x=\"1&#xA;2\r\n3\t4\" p:y=\"&lt;&amp;\">\
             <b>t&amp;u&#x20AC;\r\nv</b><p:c xmlns=\"\"/></p:a>\n",
        )
        .unwrap();
        assert!(root.is("urn:p", "a"));
        assert_eq!(
            root.decls,
            vec![("p".into(), "urn:p".into()), (String::new(), "urn:d".into())]
        );
        // a reference keeps its newline; literal white space becomes spaces
        assert_eq!(root.attr("x"), Some("1\n2 3 4"));
        assert_eq!(root.attrs[1].ns, "urn:p");
        let b = root.child("urn:d", "b").unwrap();
        assert_eq!(b.text(), "t&u\u{20ac}\nv");
        // text around references is one text node
        assert_eq!(b.children.len(), 1);
        assert_eq!(parse("<a>&apos;&quot;&lt;&gt;</a>").unwrap().text(), "'\"<>");
        // xmlns="" undeclares the default namespace
        assert_eq!(root.elements().nth(1).unwrap().ns, "urn:p");
        let c = parse("<a xmlns=\"urn:d\"><c xmlns=\"\"/></a>").unwrap();
        // names beyond ASCII are names
        // `xml` may be declared to its own namespace
        assert!(parse("<a xmlns:xml=\"http://www.w3.org/XML/1998/namespace\" xml:lang=\"en\"/>").is_ok());
        assert_eq!(
            parse("<\u{e9}l\u{e8}ve-1.x/>").unwrap().local,
            "\u{e9}l\u{e8}ve-1.x"
        );
        assert_eq!(c.elements().next().unwrap().ns, "");
    }

    #[test]
    fn what_is_not_plain_well_formed_xml_is_refused() {
        for (xml, reason) in [
            ("<a><b></a>", "malformed"),
            ("<a/><b/>", "malformed"),
            ("<a>x</a>y", "malformed"),
            ("<p:a/>", "malformed"),
            ("<a p:x=\"1\"/>", "malformed"),
            ("<a x=\"1\" x=\"2\"/>", "malformed"),
            // names XML does not allow (the first found by fuzzing)
            ("<mxx-?lml//>", "malformed"),
            ("<1a/>", "malformed"),
            ("<a b?=\"1\"/>", "malformed"),
            ("<:a/>", "malformed"),
            (
                "<a xmlns:p=\"u\" xmlns:q=\"u\" p:x=\"1\" q:x=\"2\"/>",
                "malformed",
            ),
            ("<a xmlns:p=\"\"/>", "malformed"),
            // the reserved prefixes and namespace
            ("<a xmlns:xmlns=\"urn:x\"/>", "malformed"),
            ("<a xmlns:xml=\"urn:x\"/>", "malformed"),
            (
                "<a xmlns:p=\"http://www.w3.org/XML/1998/namespace\"/>",
                "malformed",
            ),
            ("<a>&#0;</a>", "malformed"),
            ("<a>&#x1;</a>", "malformed"),
            ("<a>&ent;</a>", "dtd"),
            ("<!DOCTYPE a><a/>", "dtd"),
            ("<a><!-- c --></a>", "comment"),
            ("<a><![CDATA[x]]></a>", "malformed"),
            ("<a><?pi x?></a>", "malformed"),
            ("", "malformed"),
        ] {
            assert_eq!(parse(xml).unwrap_err().reason(), reason, "{xml}");
        }
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(&deep).unwrap_err().reason(), "structure");
    }
}
