//! XML-DSig verification of enveloped signatures as SAML uses them (SAML
//! core 5.4): one `Reference` to the signing element's own `ID`, the
//! enveloped-signature transform then exclusive canonicalization, an
//! allowed signature and digest algorithm, and the IdP's key, loaded once
//! when the configuration is (the `KeyInfo` a response carries is never
//! used).
//!
//! Read only what was verified: the `SignedInfo` is canonicalized and its
//! signature checked, then the reference is read from those canonical bytes
//! parsed again, not from the document; what [`SignatureKey::verify`]
//! returns is the canonical form of the signed element, the exact bytes
//! whose digest matched. A reader of that output sees nothing the IdP did
//! not sign, whatever else the document holds.

use base64::Engine as _;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use openssl::x509::X509;

use crate::c14n::{self, EXCLUSIVE};
use crate::error::SamlError;
use crate::settings::Algorithm;
use crate::xml::{self, Element};

/// The XML-DSig namespace.
pub const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

fn refused(m: &str) -> SamlError {
    SamlError::Signature(m.to_owned())
}

impl Algorithm {
    fn digest(self) -> MessageDigest {
        match self {
            Self::RsaSha256 | Self::EcdsaSha256 => MessageDigest::sha256(),
            Self::RsaSha384 | Self::EcdsaSha384 => MessageDigest::sha384(),
            Self::RsaSha512 | Self::EcdsaSha512 => MessageDigest::sha512(),
        }
    }

    /// The `DigestMethod` URI of this algorithm's hash.
    fn digest_uri(self) -> &'static str {
        match self {
            Self::RsaSha256 | Self::EcdsaSha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
            Self::RsaSha384 | Self::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#sha384",
            Self::RsaSha512 | Self::EcdsaSha512 => "http://www.w3.org/2001/04/xmlenc#sha512",
        }
    }

    fn is_ecdsa(self) -> bool {
        matches!(self, Self::EcdsaSha256 | Self::EcdsaSha384 | Self::EcdsaSha512)
    }
}

/// The IdP's public key and the algorithms it may sign with.
#[derive(Debug)]
pub struct SignatureKey {
    key: PKey<Public>,
    allowed: Vec<Algorithm>,
}

impl SignatureKey {
    /// The key of an X.509 certificate (DER); `None` when the certificate
    /// does not parse or holds neither an RSA nor an EC key.
    pub fn from_certificate(der: &[u8], allowed: Vec<Algorithm>) -> Option<Self> {
        let key = X509::from_der(der).ok()?.public_key().ok()?;
        matches!(key.id(), Id::RSA | Id::EC).then_some(Self { key, allowed })
    }

    /// Verifies the enveloped signature `signature` of `signed` (its child),
    /// `scope` the namespace declarations in scope at `signed`'s parent.
    /// On success, the canonical form of `signed` (without the signature).
    pub fn verify(
        &self,
        signed: &Element,
        signature: &Element,
        scope: &[(String, String)],
    ) -> Result<String, SamlError> {
        let mut elements = signature.elements();
        let (Some(info), Some(value)) = (elements.next(), elements.next()) else {
            return Err(refused("a signature without SignedInfo and SignatureValue"));
        };
        if !info.is(DSIG, "SignedInfo") || !value.is(DSIG, "SignatureValue") {
            return Err(refused("a signature without SignedInfo and SignatureValue"));
        }
        // 1. the SignedInfo's own signature, over its canonical form
        let method = info
            .child(DSIG, "CanonicalizationMethod")
            .ok_or_else(|| refused("no CanonicalizationMethod"))?;
        let prefixes = exclusive_prefixes(method)?;
        let mut info_scope = scope.to_vec();
        info_scope.extend(signed.decls.iter().cloned());
        info_scope.extend(signature.decls.iter().cloned());
        let canonical_info = c14n::canonicalize(info, &info_scope, None, &prefixes);
        let algorithm = info
            .child(DSIG, "SignatureMethod")
            .and_then(|m| m.attr("Algorithm"))
            .and_then(|uri| self.allowed.iter().copied().find(|a| a.uri() == uri))
            .ok_or_else(|| refused("a signature algorithm that is not allowed"))?;
        let signature_value = base64_text(value)?;
        if !self.check(algorithm, canonical_info.as_bytes(), &signature_value) {
            return Err(refused(
                "a signature does not verify with the IdP certificate and allowed algorithms",
            ));
        }
        // 2. the reference, read from the bytes just verified
        let info = xml::parse(&canonical_info)?;
        if info
            .child(DSIG, "SignatureMethod")
            .and_then(|m| m.attr("Algorithm"))
            != Some(algorithm.uri())
        {
            return Err(refused("a signature algorithm that is not allowed"));
        }
        let mut references = info.elements().filter(|e| e.is(DSIG, "Reference"));
        let (Some(reference), None) = (references.next(), references.next()) else {
            return Err(refused("a signature must hold exactly one reference"));
        };
        let id = signed
            .attr("ID")
            .ok_or_else(|| refused("the signed element has no ID"))?;
        if reference.attr("URI").and_then(|u| u.strip_prefix('#')) != Some(id) {
            return Err(refused(
                "a signature references another element than the one it sits in",
            ));
        }
        let prefixes = reference_transforms(reference)?;
        let digest_method = reference
            .child(DSIG, "DigestMethod")
            .and_then(|m| m.attr("Algorithm"))
            .and_then(|uri| {
                self.allowed
                    .iter()
                    .find(|a| a.digest_uri() == uri)
                    .map(|a| a.digest())
            })
            .ok_or_else(|| refused("a digest algorithm that is not allowed"))?;
        let expected = reference
            .child(DSIG, "DigestValue")
            .ok_or_else(|| refused("no DigestValue"))
            .and_then(base64_text)?;
        // 3. the signed element's digest
        let canonical = c14n::canonicalize(signed, scope, Some(signature), &prefixes);
        let digest = hash(digest_method, canonical.as_bytes())
            .map_err(|_| refused("the digest could not be computed"))?;
        if digest.len() != expected.len() || !openssl::memcmp::eq(&digest, &expected) {
            return Err(refused("the signed element changed after signing"));
        }
        Ok(canonical)
    }

    fn check(&self, algorithm: Algorithm, data: &[u8], signature: &[u8]) -> bool {
        let der;
        let signature = if algorithm.is_ecdsa() {
            if self.key.id() != Id::EC {
                return false;
            }
            // XML-DSig's ECDSA value is r then s, each half of it
            let half = signature.len() / 2;
            if half == 0 || !signature.len().is_multiple_of(2) {
                return false;
            }
            let (Ok(r), Ok(s)) = (
                BigNum::from_slice(&signature[..half]),
                BigNum::from_slice(&signature[half..]),
            ) else {
                return false;
            };
            der = match EcdsaSig::from_private_components(r, s).and_then(|s| s.to_der()) {
                Ok(der) => der,
                Err(_) => return false,
            };
            der.as_slice()
        } else {
            if self.key.id() != Id::RSA {
                return false;
            }
            signature
        };
        Verifier::new(algorithm.digest(), &self.key)
            .and_then(|mut v| v.verify_oneshot(signature, data))
            .unwrap_or(false)
    }
}

/// A `CanonicalizationMethod` or `Transform` for exclusive c14n: its
/// `InclusiveNamespaces` prefix list.
fn exclusive_prefixes(method: &Element) -> Result<Vec<&str>, SamlError> {
    if method.attr("Algorithm") != Some(EXCLUSIVE) {
        return Err(refused(
            "a canonicalization other than exclusive XML canonicalization",
        ));
    }
    Ok(method
        .child(EXCLUSIVE, "InclusiveNamespaces")
        .and_then(|n| n.attr("PrefixList"))
        .unwrap_or("")
        .split_ascii_whitespace()
        .collect())
}

/// The reference's transforms must be exactly enveloped-signature then
/// exclusive c14n; the latter's prefix list.
fn reference_transforms(reference: &Element) -> Result<Vec<&str>, SamlError> {
    let transforms: Vec<&Element> = reference
        .child(DSIG, "Transforms")
        .map(|t| t.elements().collect())
        .unwrap_or_default();
    match transforms.as_slice() {
        [first, second]
            if first.is(DSIG, "Transform")
                && first.attr("Algorithm") == Some(ENVELOPED)
                && second.is(DSIG, "Transform") =>
        {
            exclusive_prefixes(second)
        }
        _ => Err(refused(
            "a reference whose transforms are not enveloped-signature then exclusive c14n",
        )),
    }
}

fn base64_text(e: &Element) -> Result<Vec<u8>, SamlError> {
    let text: String = e.text().chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| refused("a signature or digest value that is not base64"))
}

#[cfg(test)]
mod tests;
