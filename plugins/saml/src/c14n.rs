//! Exclusive XML canonicalization without comments (W3C "Exclusive XML
//! Canonicalization 1.0", `http://www.w3.org/2001/10/xml-exc-c14n#`) of
//! one element's subtree of an [`xml`](crate::xml) tree, optionally
//! leaving one descendant out (the enveloped-signature transform), with an
//! `InclusiveNamespaces` prefix list. This is the only canonicalization
//! SAML identity providers use; the tree holds no comments or processing
//! instructions ([`crate::front`] refuses them).
//!
//! What the output is made of:
//! - an element's name as written, then the namespace declarations it
//!   needs and its output ancestors have not already put in effect: the
//!   ones its name and attributes use, plus the listed prefixes in scope;
//!   sorted by prefix, the default namespace first;
//! - its attributes sorted by namespace URI, then local name (unqualified
//!   ones first), values in double quotes with `&`, `<`, `"`, tab, line
//!   feed and carriage return escaped;
//! - text with `&`, `<`, `>` and carriage return escaped;
//! - empty elements as a start and an end tag.

use crate::xml::{Element, Node};

/// The canonicalization and transform URI this module implements.
pub const EXCLUSIVE: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// Canonicalizes `element`'s subtree. `scope` holds the namespace
/// declarations in scope at its parent (outermost first), `omit` a
/// descendant left out with its subtree, `inclusive` the prefixes treated
/// as by inclusive canonicalization (`#default` for the default
/// namespace).
pub fn canonicalize<'a>(
    element: &'a Element,
    scope: &'a [(String, String)],
    omit: Option<&'a Element>,
    inclusive: &[&'a str],
) -> String {
    let mut c = Canonicalizer {
        out: String::with_capacity(4096),
        scope: scope.iter().map(|(p, u)| (p.as_str(), u.as_str())).collect(),
        rendered: Vec::new(),
        omit,
        inclusive: inclusive
            .iter()
            .map(|p| if *p == "#default" { "" } else { p })
            .collect(),
    };
    c.element(element);
    c.out
}

struct Canonicalizer<'a> {
    out: String,
    /// Declarations in scope in the document, innermost last.
    scope: Vec<(&'a str, &'a str)>,
    /// Declarations in effect in the output, innermost last.
    rendered: Vec<(&'a str, &'a str)>,
    omit: Option<&'a Element>,
    inclusive: Vec<&'a str>,
}

fn lookup<'a>(decls: &[(&'a str, &'a str)], prefix: &str) -> Option<&'a str> {
    decls
        .iter()
        .rev()
        .find(|(p, _)| *p == prefix)
        .map(|(_, uri)| *uri)
}

impl<'a> Canonicalizer<'a> {
    fn element(&mut self, e: &'a Element) {
        let (scope_mark, rendered_mark) = (self.scope.len(), self.rendered.len());
        self.scope
            .extend(e.decls.iter().map(|(p, u)| (p.as_str(), u.as_str())));

        // the prefixes this element needs declared: visibly used, or listed
        let mut needed: Vec<&'a str> = Vec::with_capacity(4);
        needed.push(&e.prefix);
        for a in &e.attrs {
            if !a.prefix.is_empty() {
                needed.push(&a.prefix);
            }
        }
        for &p in &self.inclusive {
            // a listed prefix counts only where it is in scope
            if p.is_empty() || lookup(&self.scope, p).is_some() {
                needed.push(p);
            }
        }
        needed.sort_unstable();
        needed.dedup();
        let mut decls: Vec<(&'a str, &'a str)> = Vec::new();
        for p in needed {
            if p == "xml" {
                continue;
            }
            // the default namespace is "" when undeclared, in the document
            // and in the output alike
            let uri = lookup(&self.scope, p).unwrap_or("");
            let in_effect = lookup(&self.rendered, p);
            let differs = match in_effect {
                Some(u) => u != uri,
                None => !(p.is_empty() && uri.is_empty()),
            };
            if differs {
                decls.push((p, uri));
            }
        }
        // (already in prefix order: `needed` was sorted)
        self.rendered.extend_from_slice(&decls);

        self.out.push('<');
        self.name(&e.prefix, &e.local);
        for (p, uri) in decls {
            self.out.push_str(" xmlns");
            if !p.is_empty() {
                self.out.push(':');
                self.out.push_str(p);
            }
            self.out.push_str("=\"");
            escape_attr(&mut self.out, uri);
            self.out.push('"');
        }
        let mut attrs: Vec<_> = e.attrs.iter().collect();
        attrs.sort_by(|a, b| (a.ns.as_str(), a.local.as_str()).cmp(&(b.ns.as_str(), b.local.as_str())));
        for a in attrs {
            self.out.push(' ');
            self.name(&a.prefix, &a.local);
            self.out.push_str("=\"");
            escape_attr(&mut self.out, &a.value);
            self.out.push('"');
        }
        self.out.push('>');
        for child in &e.children {
            match child {
                Node::Text(t) => escape_text(&mut self.out, t),
                Node::Element(c) if self.omit.is_some_and(|o| std::ptr::eq(o, c)) => {}
                Node::Element(c) => self.element(c),
            }
        }
        self.out.push_str("</");
        self.name(&e.prefix, &e.local);
        self.out.push('>');

        self.scope.truncate(scope_mark);
        self.rendered.truncate(rendered_mark);
    }

    fn name(&mut self, prefix: &str, local: &str) {
        if !prefix.is_empty() {
            self.out.push_str(prefix);
            self.out.push(':');
        }
        self.out.push_str(local);
    }
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::xml::parse;

    fn c14n_of_child(xml: &str, path: &[usize], inclusive: &[&str]) -> String {
        let root = parse(xml).unwrap();
        let mut scope = Vec::new();
        let mut e = &root;
        for &i in path {
            scope.extend(e.decls.iter().cloned());
            e = e.elements().nth(i).unwrap();
        }
        canonicalize(e, &scope, None, inclusive)
    }

    #[test]
    fn the_specifications_rules_on_a_whole_document() {
        // attribute order, quoting, escaping, empty elements, declarations
        // sorted with the default first, superfluous ones dropped
        let xml = "<doc xmlns:b=\"urn:b\" xmlns=\"urn:d\" xmlns:a=\"urn:a\" z='1' b:y=\"&quot;\" a:x=\"&lt;\" \
                   t=\"&#x9;&#xD;&#xA;>\"><e xmlns=\"urn:d\" xmlns:a=\"urn:a\">x &gt; &amp; &#xD; &lt;</e><f/></doc>";
        assert_eq!(
            canonicalize(&parse(xml).unwrap(), &[], None, &[]),
            "<doc xmlns=\"urn:d\" xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" t=\"&#x9;&#xD;&#xA;>\" z=\"1\" \
             a:x=\"&lt;\" b:y=\"&quot;\"><e>x &gt; &amp; &#xD; &lt;</e><f></f></doc>"
        );
    }

    #[test]
    fn only_visibly_used_namespaces_are_declared_where_first_used() {
        let xml =
            "<r xmlns:u=\"urn:u\" xmlns:v=\"urn:v\" xmlns=\"urn:d\"><u:a><b v:k=\"1\"/><u:c/></u:a></r>";
        // the subtree of u:a: u declared on it, the default and v on b
        assert_eq!(
            c14n_of_child(xml, &[0], &[]),
            "<u:a xmlns:u=\"urn:u\"><b xmlns=\"urn:d\" xmlns:v=\"urn:v\" v:k=\"1\"></b><u:c></u:c></u:a>"
        );
        // listed prefixes are declared at the top of the subtree when in
        // scope, unused or not; unknown ones are ignored
        assert_eq!(
            c14n_of_child(xml, &[0], &["v", "#default", "w"]),
            "<u:a xmlns=\"urn:d\" xmlns:u=\"urn:u\" xmlns:v=\"urn:v\"><b v:k=\"1\"></b><u:c></u:c></u:a>"
        );
    }

    #[test]
    fn the_default_namespace_is_undeclared_only_when_the_output_declared_one() {
        let xml = "<a xmlns=\"urn:d\"><b xmlns=\"\"><c/></b></a>";
        assert_eq!(
            canonicalize(&parse(xml).unwrap(), &[], None, &[]),
            "<a xmlns=\"urn:d\"><b xmlns=\"\"><c></c></b></a>"
        );
        // the subtree of b alone: no default was ever in effect there
        assert_eq!(c14n_of_child(xml, &[0], &[]), "<b><c></c></b>");
        // a redeclaration to another value is rendered, the same value not
        let xml = "<p:a xmlns:p=\"urn:1\"><p:b xmlns:p=\"urn:2\"><p:c xmlns:p=\"urn:2\"/></p:b></p:a>";
        assert_eq!(
            canonicalize(&parse(xml).unwrap(), &[], None, &[]),
            "<p:a xmlns:p=\"urn:1\"><p:b xmlns:p=\"urn:2\"><p:c></p:c></p:b></p:a>"
        );
    }

    #[test]
    fn xml_attributes_are_not_inherited_and_the_omitted_element_is_left_out() {
        let xml = "<a xml:lang=\"en\" xmlns:s=\"urn:s\"><b xml:space=\"preserve\"> x </b><s:sig><s:v/></s:sig>\n</a>";
        assert_eq!(c14n_of_child(xml, &[0], &[]), "<b xml:space=\"preserve\"> x </b>");
        let root = parse(xml).unwrap();
        let sig = root.elements().nth(1).unwrap();
        assert_eq!(
            canonicalize(&root, &[], Some(sig), &[]),
            "<a xml:lang=\"en\"><b xml:space=\"preserve\"> x </b>\n</a>"
        );
    }
}
