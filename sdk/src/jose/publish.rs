//! Publishing public keys: a JWK per signing key, and the JWKS document an
//! issuer serves at its `jwks_uri`. Only public parameters are written.

use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The public half of a signing key, in the form a JWK needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKey<'a> {
    /// RSA: big-endian modulus and exponent.
    Rsa {
        /// The modulus.
        n: &'a [u8],
        /// The public exponent.
        e: &'a [u8],
    },
    /// P-256: an uncompressed SEC 1 point (`04 ‖ x ‖ y`, 65 bytes).
    P256(&'a [u8]),
    /// P-384: an uncompressed SEC 1 point (97 bytes).
    P384(&'a [u8]),
    /// Ed25519: the 32-byte public key.
    Ed25519(&'a [u8]),
}

/// Why a key cannot be published.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The key bytes do not have the size of their type.
    BadKey(&'static str),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadKey(what) => write!(f, "cannot publish the key: {what}"),
        }
    }
}

impl std::error::Error for PublishError {}

impl<'a> PublicKey<'a> {
    /// The public key of an ECDSA key pair (P-256 or P-384, by its size).
    pub fn of_ecdsa(pair: &'a EcdsaKeyPair) -> Result<Self, PublishError> {
        let point = pair.public_key().as_ref();
        match point.len() {
            65 => Ok(Self::P256(point)),
            97 => Ok(Self::P384(point)),
            _ => Err(PublishError::BadKey("an ECDSA key of an unsupported curve")),
        }
    }

    /// The public key of an Ed25519 key pair.
    pub fn of_ed25519(pair: &'a Ed25519KeyPair) -> Self {
        Self::Ed25519(pair.public_key().as_ref())
    }

    /// The algorithm a JWK of this key names (`RS256` for RSA).
    pub fn default_algorithm(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RS256",
            Self::P256(_) => "ES256",
            Self::P384(_) => "ES384",
            Self::Ed25519(_) => "EdDSA",
        }
    }
}

/// The modulus and exponent of an RSA key pair (big-endian, no leading
/// zeros), for [`PublicKey::Rsa`].
pub fn rsa_components(pair: &RsaKeyPair) -> (Vec<u8>, Vec<u8>) {
    let public = pair.public_key();
    (
        public.modulus().big_endian_without_leading_zero().to_vec(),
        public.exponent().big_endian_without_leading_zero().to_vec(),
    )
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A public JWK (`use: sig`, with `kid` and `alg`) for `key`. `alg`
/// defaults to [`PublicKey::default_algorithm`]; give `PS256` and the like
/// for RSA keys used with other algorithms.
pub fn public_jwk(key: PublicKey<'_>, kid: &str, alg: Option<&str>) -> Result<Value, PublishError> {
    let alg = alg.unwrap_or(key.default_algorithm());
    let point = |p: &[u8], size: usize| -> Result<(String, String), PublishError> {
        if p.len() != 1 + 2 * size || p[0] != 4 {
            return Err(PublishError::BadKey("not an uncompressed EC point"));
        }
        Ok((b64(&p[1..=size]), b64(&p[1 + size..])))
    };
    let unpad = |mut b: &'_ [u8]| {
        while let [0, rest @ ..] = b {
            b = rest;
        }
        b64(b)
    };
    Ok(match key {
        PublicKey::Rsa { n, e } => {
            if n.iter().all(|b| *b == 0) || e.iter().all(|b| *b == 0) {
                return Err(PublishError::BadKey("an empty RSA modulus or exponent"));
            }
            json!({"kty": "RSA", "use": "sig", "kid": kid, "alg": alg, "n": unpad(n), "e": unpad(e)})
        }
        PublicKey::P256(p) => {
            let (x, y) = point(p, 32)?;
            json!({"kty": "EC", "use": "sig", "kid": kid, "alg": alg, "crv": "P-256", "x": x, "y": y})
        }
        PublicKey::P384(p) => {
            let (x, y) = point(p, 48)?;
            json!({"kty": "EC", "use": "sig", "kid": kid, "alg": alg, "crv": "P-384", "x": x, "y": y})
        }
        PublicKey::Ed25519(x) => {
            if x.len() != 32 {
                return Err(PublishError::BadKey("an Ed25519 key is 32 bytes"));
            }
            json!({"kty": "OKP", "use": "sig", "kid": kid, "alg": alg, "crv": "Ed25519", "x": b64(x)})
        }
    })
}

/// The JWKS document of some public JWKs: `{"keys": [...]}`.
pub fn jwks_document(keys: impl IntoIterator<Item = Value>) -> Value {
    json!({"keys": keys.into_iter().collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING};
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::jose::keys::KeySet;

    #[test]
    fn published_keys_verify_what_their_private_halves_sign() {
        let rng = SystemRandom::new();
        let p256 = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap()
                .as_ref(),
        )
        .unwrap();
        let p384 = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                .unwrap()
                .as_ref(),
        )
        .unwrap();
        let ed = Ed25519KeyPair::generate().unwrap();
        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let (n, e) = rsa_components(&rsa);
        let doc = jwks_document([
            public_jwk(PublicKey::of_ecdsa(&p256).unwrap(), "p256", None).unwrap(),
            public_jwk(PublicKey::of_ecdsa(&p384).unwrap(), "p384", None).unwrap(),
            public_jwk(PublicKey::of_ed25519(&ed), "ed", None).unwrap(),
            public_jwk(PublicKey::Rsa { n: &n, e: &e }, "rsa", None).unwrap(),
        ]);
        let text = doc.to_string();
        for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\""] {
            assert!(
                !text.contains(private),
                "a private parameter was published: {text}"
            );
        }
        let keys = KeySet::from_json(text.as_bytes()).unwrap();
        assert_eq!(keys.len(), 4, "{text}");
        let msg = b"header.payload";
        let by_kid = |kid: &str| keys.iter().find(|k| k.kid.as_deref() == Some(kid)).unwrap();
        assert!(by_kid("p256").verifies(Algorithm::ES256, msg, p256.sign(&rng, msg).unwrap().as_ref()));
        assert!(by_kid("p384").verifies(Algorithm::ES384, msg, p384.sign(&rng, msg).unwrap().as_ref()));
        assert!(by_kid("ed").verifies(Algorithm::EdDSA, msg, ed.sign(msg).as_ref()));
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .unwrap();
        assert!(by_kid("rsa").verifies(Algorithm::RS256, msg, &sig));
        // the published alg binds the key: an RS256 key does not verify PS256
        assert!(!by_kid("rsa").allows(Algorithm::PS256));
        assert!(!by_kid("p256").verifies(Algorithm::ES256, b"other", p256.sign(&rng, msg).unwrap().as_ref()));
    }

    #[test]
    fn malformed_public_keys_are_refused() {
        assert!(public_jwk(PublicKey::P256(&[4u8; 10]), "k", None).is_err());
        assert!(public_jwk(PublicKey::P256(&[3u8; 65]), "k", None).is_err());
        assert!(public_jwk(PublicKey::Ed25519(&[1u8; 31]), "k", None).is_err());
        assert!(
            public_jwk(
                PublicKey::Rsa {
                    n: &[0],
                    e: &[1, 0, 1]
                },
                "k",
                None
            )
            .is_err()
        );
    }
}
