//! The parts of a SAML Response and Assertion (SAML core 2.0, sections 2
//! and 3.3.3) that a login checks and reads, taken from an element tree
//! ([`crate::xml`]) of canonical bytes whose signature verified. Only the
//! fields [`crate::verify`] uses are read; what SAML makes mandatory
//! (`ID`, `Version="2.0"`, `IssueInstant`, the Assertion's `Issuer`) must
//! be there, and times must be `xs:dateTime` in UTC.

use chrono::{DateTime, Utc};

use crate::error::SamlError;
use crate::structure::{ASSERTION, PROTOCOL};
use crate::xml::{self, Element};

/// A `samlp:Response`.
#[derive(Debug)]
pub struct Response {
    /// `Destination`.
    pub destination: Option<String>,
    /// `InResponseTo`.
    pub in_response_to: Option<String>,
    /// `IssueInstant`.
    pub issue_instant: DateTime<Utc>,
    /// `saml:Issuer`, when present.
    pub issuer: Option<String>,
    /// The top-level `samlp:StatusCode` `Value`, when present.
    pub status: Option<String>,
    /// Whether an `EncryptedAssertion` is present.
    pub encrypted_assertion: bool,
    /// The first `saml:Assertion` child.
    pub assertion: Option<Assertion>,
}

/// A `saml:Assertion`.
#[derive(Debug)]
pub struct Assertion {
    /// `ID`.
    pub id: String,
    /// `IssueInstant`.
    pub issue_instant: DateTime<Utc>,
    /// `saml:Issuer` (mandatory in an assertion).
    pub issuer: String,
    /// `saml:Conditions`, when present.
    pub conditions: Option<Conditions>,
    /// The subject's `NameID`, when present.
    pub name_id: Option<String>,
    /// The subject's confirmations, in order.
    pub confirmations: Vec<Confirmation>,
    /// Every `saml:Attribute` with a `Name` in every attribute statement,
    /// in document order, each with its non-empty values.
    pub attributes: Vec<(String, Vec<String>)>,
}

/// `saml:Conditions`.
#[derive(Debug)]
pub struct Conditions {
    /// `NotBefore`.
    pub not_before: Option<DateTime<Utc>>,
    /// `NotOnOrAfter`.
    pub not_on_or_after: Option<DateTime<Utc>>,
    /// Each `AudienceRestriction`'s audiences.
    pub audience_restrictions: Vec<Vec<String>>,
}

/// A `saml:SubjectConfirmation`.
#[derive(Debug)]
pub struct Confirmation {
    /// `Method`.
    pub method: Option<String>,
    /// Its `SubjectConfirmationData`, when present.
    pub data: Option<ConfirmationData>,
}

/// `saml:SubjectConfirmationData`.
#[derive(Debug)]
pub struct ConfirmationData {
    /// `NotBefore`.
    pub not_before: Option<DateTime<Utc>>,
    /// `NotOnOrAfter`.
    pub not_on_or_after: Option<DateTime<Utc>>,
    /// `Recipient`.
    pub recipient: Option<String>,
    /// `InResponseTo`.
    pub in_response_to: Option<String>,
}

impl Response {
    /// Reads a Response from canonical text.
    pub fn read(canonical: &str) -> Result<Self, SamlError> {
        let root = xml::parse(canonical)?;
        if !root.is(PROTOCOL, "Response") {
            return Err(malformed("the root is not a samlp:Response"));
        }
        message_header(&root, "Response")?;
        Ok(Self {
            destination: root.attr("Destination").map(str::to_owned),
            in_response_to: root.attr("InResponseTo").map(str::to_owned),
            issue_instant: required_time(&root, "IssueInstant", "Response")?,
            issuer: root.child(ASSERTION, "Issuer").map(value),
            status: root
                .child(PROTOCOL, "Status")
                .and_then(|s| s.child(PROTOCOL, "StatusCode"))
                .and_then(|c| c.attr("Value"))
                .map(str::to_owned),
            encrypted_assertion: root.child(ASSERTION, "EncryptedAssertion").is_some(),
            assertion: root
                .child(ASSERTION, "Assertion")
                .map(Assertion::from_element)
                .transpose()?,
        })
    }
}

impl Assertion {
    /// Reads an Assertion from canonical text.
    pub fn read(canonical: &str) -> Result<Self, SamlError> {
        let root = xml::parse(canonical)?;
        if !root.is(ASSERTION, "Assertion") {
            return Err(malformed("the root is not a saml:Assertion"));
        }
        Self::from_element(&root)
    }

    fn from_element(e: &Element) -> Result<Self, SamlError> {
        let id = message_header(e, "Assertion")?;
        let issuer = e
            .child(ASSERTION, "Issuer")
            .map(value)
            .ok_or_else(|| malformed("the Assertion has no Issuer"))?;
        let conditions = e
            .child(ASSERTION, "Conditions")
            .map(|c| -> Result<Conditions, SamlError> {
                Ok(Conditions {
                    not_before: time(c, "NotBefore")?,
                    not_on_or_after: time(c, "NotOnOrAfter")?,
                    audience_restrictions: children(c, "AudienceRestriction")
                        .map(|r| children(r, "Audience").map(value).collect())
                        .collect(),
                })
            })
            .transpose()?;
        let subject = e.child(ASSERTION, "Subject");
        let confirmations = subject
            .into_iter()
            .flat_map(|s| children(s, "SubjectConfirmation"))
            .map(|c| -> Result<Confirmation, SamlError> {
                Ok(Confirmation {
                    method: c.attr("Method").map(str::to_owned),
                    data: c
                        .child(ASSERTION, "SubjectConfirmationData")
                        .map(|d| -> Result<ConfirmationData, SamlError> {
                            Ok(ConfirmationData {
                                not_before: time(d, "NotBefore")?,
                                not_on_or_after: time(d, "NotOnOrAfter")?,
                                recipient: d.attr("Recipient").map(str::to_owned),
                                in_response_to: d.attr("InResponseTo").map(str::to_owned),
                            })
                        })
                        .transpose()?,
                })
            })
            .collect::<Result<_, _>>()?;
        let attributes = children(e, "AttributeStatement")
            .flat_map(|s| children(s, "Attribute"))
            .filter_map(|a| {
                let name = a.attr("Name")?.to_owned();
                let values = children(a, "AttributeValue")
                    .map(value)
                    .filter(|v| !v.is_empty())
                    .collect();
                Some((name, values))
            })
            .collect();
        Ok(Self {
            id,
            issue_instant: required_time(e, "IssueInstant", "Assertion")?,
            issuer,
            conditions,
            name_id: subject.and_then(|s| s.child(ASSERTION, "NameID")).map(value),
            confirmations,
            attributes,
        })
    }
}

fn malformed(what: &str) -> SamlError {
    SamlError::Malformed(what.to_owned())
}

/// The `ID` and `Version` every SAML message and assertion carries; the ID.
fn message_header(e: &Element, what: &str) -> Result<String, SamlError> {
    if e.attr("Version") != Some("2.0") {
        return Err(malformed(&format!("the {what} is not SAML 2.0 (Version)")));
    }
    e.attr("ID")
        .map(str::to_owned)
        .ok_or_else(|| malformed(&format!("the {what} has no ID")))
}

/// The child elements `local` of the SAML assertion namespace.
fn children<'a>(e: &'a Element, local: &'a str) -> impl Iterator<Item = &'a Element> {
    e.elements().filter(move |c| c.is(ASSERTION, local))
}

/// An element's text without surrounding white space.
fn value(e: &Element) -> String {
    e.text().trim().to_owned()
}

fn required_time(e: &Element, attr: &str, what: &str) -> Result<DateTime<Utc>, SamlError> {
    time(e, attr)?.ok_or_else(|| malformed(&format!("the {what} has no {attr}")))
}

/// An `xs:dateTime` attribute (SAML core 1.3.3: UTC, `Z`; an explicit
/// offset is converted).
fn time(e: &Element, attr: &str) -> Result<Option<DateTime<Utc>>, SamlError> {
    e.attr(attr)
        .map(|t| {
            DateTime::parse_from_rfc3339(t.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| malformed(&format!("{attr} is not a date and time with a zone")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
                      xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"";

    #[test]
    fn a_response_and_its_assertion_are_read() {
        let r = Response::read(&format!(
            "<samlp:Response {NS} ID=\"r\" Version=\"2.0\" IssueInstant=\"2026-12-04T10:00:00Z\" \
             Destination=\"https://sp/acs\" InResponseTo=\"req\"><saml:Issuer> idp </saml:Issuer>\
             <samlp:Status><samlp:StatusCode Value=\"s\"/></samlp:Status>\
             <saml:Assertion ID=\"a\" Version=\"2.0\" IssueInstant=\"2026-12-04T10:00:01.5+01:00\">\
             <saml:Issuer>idp</saml:Issuer><saml:Subject><saml:NameID>alice</saml:NameID>\
             <saml:SubjectConfirmation Method=\"m\"><saml:SubjectConfirmationData \
             NotOnOrAfter=\"2026-12-04T10:05:00Z\" Recipient=\"https://sp/acs\" InResponseTo=\"req\"/>\
             </saml:SubjectConfirmation><saml:SubjectConfirmation/></saml:Subject>\
             <saml:Conditions NotBefore=\"2026-12-04T09:59:00Z\"><saml:AudienceRestriction>\
             <saml:Audience>sp</saml:Audience><saml:Audience>other</saml:Audience>\
             </saml:AudienceRestriction><saml:AudienceRestriction/></saml:Conditions>\
             <saml:AttributeStatement><saml:Attribute Name=\"g\"><saml:AttributeValue>a</saml:AttributeValue>\
             <saml:AttributeValue/><saml:AttributeValue> b </saml:AttributeValue></saml:Attribute>\
             <saml:Attribute FriendlyName=\"no name\"/></saml:AttributeStatement>\
             <saml:AttributeStatement><saml:Attribute Name=\"h\"/></saml:AttributeStatement>\
             </saml:Assertion></samlp:Response>"
        ))
        .unwrap();
        assert_eq!(r.destination.as_deref(), Some("https://sp/acs"));
        assert_eq!(r.in_response_to.as_deref(), Some("req"));
        assert_eq!(r.issuer.as_deref(), Some("idp"));
        assert_eq!(r.status.as_deref(), Some("s"));
        assert_eq!(r.issue_instant.timestamp(), 1_796_378_400);
        assert!(!r.encrypted_assertion);
        let a = r.assertion.unwrap();
        assert_eq!((a.id.as_str(), a.issuer.as_str()), ("a", "idp"));
        // the offset is converted to UTC, the fraction kept
        assert_eq!(a.issue_instant.timestamp(), 1_796_378_400 - 3600 + 1);
        assert_eq!(a.issue_instant.timestamp_subsec_millis(), 500);
        assert_eq!(a.name_id.as_deref(), Some("alice"));
        assert_eq!(a.confirmations.len(), 2);
        let d = a.confirmations[0].data.as_ref().unwrap();
        assert_eq!(a.confirmations[0].method.as_deref(), Some("m"));
        assert_eq!(d.recipient.as_deref(), Some("https://sp/acs"));
        assert_eq!(d.in_response_to.as_deref(), Some("req"));
        assert_eq!(d.not_on_or_after.unwrap().timestamp(), 1_796_378_700);
        assert!(d.not_before.is_none());
        assert!(a.confirmations[1].method.is_none() && a.confirmations[1].data.is_none());
        let c = a.conditions.unwrap();
        assert_eq!(c.not_before.unwrap().timestamp(), 1_796_378_340);
        assert!(c.not_on_or_after.is_none());
        assert_eq!(
            c.audience_restrictions,
            vec![vec!["sp".to_owned(), "other".into()], vec![]]
        );
        assert_eq!(
            a.attributes,
            vec![
                ("g".to_owned(), vec!["a".to_owned(), "b".into()]),
                ("h".into(), vec![])
            ]
        );
    }

    #[test]
    fn what_saml_makes_mandatory_must_be_there() {
        let assertion = |attrs: &str, body: &str| {
            Assertion::read(&format!(
                "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" {attrs}>{body}</saml:Assertion>"
            ))
        };
        let issuer = "<saml:Issuer>idp</saml:Issuer>";
        let full = "ID=\"a\" Version=\"2.0\" IssueInstant=\"2026-12-04T10:00:00Z\"";
        assert!(assertion(full, issuer).is_ok());
        for (attrs, body, why) in [
            (full, "", "no Issuer"),
            (
                "Version=\"2.0\" IssueInstant=\"2026-12-04T10:00:00Z\"",
                issuer,
                "no ID",
            ),
            (
                "ID=\"a\" IssueInstant=\"2026-12-04T10:00:00Z\"",
                issuer,
                "SAML 2.0",
            ),
            (
                "ID=\"a\" Version=\"1.1\" IssueInstant=\"2026-12-04T10:00:00Z\"",
                issuer,
                "SAML 2.0",
            ),
            ("ID=\"a\" Version=\"2.0\"", issuer, "no IssueInstant"),
            (
                "ID=\"a\" Version=\"2.0\" IssueInstant=\"2026-12-04 10:00\"",
                issuer,
                "not a date",
            ),
            (
                "ID=\"a\" Version=\"2.0\" IssueInstant=\"2026-12-04T10:00:00\"",
                issuer,
                "not a date",
            ),
        ] {
            let e = assertion(attrs, body).unwrap_err();
            assert!(e.to_string().contains(why), "{attrs} {body}: {e}");
        }
        // a time in Conditions must parse too
        let e = assertion(
            full,
            &format!("{issuer}<saml:Conditions NotOnOrAfter=\"tomorrow\"/>"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("NotOnOrAfter"), "{e}");
        // the root must be what is asked for
        assert!(
            Response::read(&format!(
                "<saml:Assertion xmlns:saml=\"{ASSERTION}\" {full}>{issuer}</saml:Assertion>"
            ))
            .is_err()
        );
        assert!(Assertion::read(&format!("<samlp:Response {NS} {full}/>")).is_err());
    }

    #[test]
    fn elements_of_other_namespaces_are_not_read() {
        // same local names, another namespace: not SAML's
        let a = Assertion::read(
            "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" xmlns:x=\"urn:x\" \
             ID=\"a\" Version=\"2.0\" IssueInstant=\"2026-12-04T10:00:00Z\"><saml:Issuer>idp</saml:Issuer>\
             <x:Conditions/><x:Subject><saml:NameID>mallory</saml:NameID></x:Subject>\
             <saml:AttributeStatement><x:Attribute Name=\"g\"/></saml:AttributeStatement></saml:Assertion>",
        )
        .unwrap();
        assert!(a.conditions.is_none() && a.name_id.is_none() && a.attributes.is_empty());
        // an unprefixed (default-namespace) assertion, as ADFS writes it
        let a = Assertion::read(
            "<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\" Version=\"2.0\" \
             IssueInstant=\"2026-12-04T10:00:00Z\"><Issuer>idp</Issuer><AttributeStatement>\
             <Attribute Name=\"g\"><AttributeValue>x</AttributeValue>\
             <saml:AttributeValue xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">y</saml:AttributeValue>\
             </Attribute></AttributeStatement></Assertion>",
        )
        .unwrap();
        assert_eq!(
            a.attributes,
            vec![("g".to_owned(), vec!["x".to_owned(), "y".into()])]
        );
    }
}
