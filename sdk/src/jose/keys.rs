//! Public keys from a JWKS, parsed once per algorithm they may verify.

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};

use crate::jose::jws::Parsed;

/// A usable public key: parsed once, when its set is fetched or loaded, for
/// each algorithm it may verify (a miss then pays for the signature check
/// only, not for rebuilding the key).
pub struct Key {
    /// The key's `kid`, when the set names one.
    pub kid: Option<String>,
    /// A configured key (not from a JWKS): matches a token whatever its
    /// `kid`.
    pinned: bool,
    by_alg: Vec<(Algorithm, ParsedPublicKey)>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<Algorithm> = self.by_alg.iter().map(|(a, _)| *a).collect();
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &algs)
            .finish()
    }
}

impl Key {
    /// The parsed key for `alg`, if this key may verify it.
    fn for_alg(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.by_alg.iter().find(|(a, _)| *a == alg).map(|(_, k)| k)
    }

    /// True when this key may verify signatures of `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.for_alg(alg).is_some()
    }

    /// True when `signature` (raw bytes) signs `message` under `alg`.
    pub fn verifies(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.for_alg(alg)
            .is_some_and(|k| k.verify_sig(message, signature).is_ok())
    }
}

fn key_alg(a: &KeyAlgorithm) -> Option<Algorithm> {
    match a {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::RS384 => Some(Algorithm::RS384),
        KeyAlgorithm::RS512 => Some(Algorithm::RS512),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::PS384 => Some(Algorithm::PS384),
        KeyAlgorithm::PS512 => Some(Algorithm::PS512),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::ES384 => Some(Algorithm::ES384),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// aws-lc's parameters for an RSA algorithm: 2048-bit keys at least.
fn rsa_params(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// An unsigned big-endian integer without leading zero bytes (some JWKS
/// publishers pad `n`).
fn unpadded(mut b: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b
}

/// The parsed keys of one JWK, each bound to an algorithm its type and curve
/// allow (and its own `alg`, when it names one). `None`: not a usable
/// signature key.
fn parse_jwk(jwk: &Jwk, only: Option<Algorithm>) -> Option<Vec<(Algorithm, ParsedPublicKey)>> {
    let wanted = |a: &Algorithm| only.is_none_or(|o| o == *a);
    let out: Vec<(Algorithm, ParsedPublicKey)> = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let (n, e) = (b64(&p.n)?, b64(&p.e)?);
            let components = RsaPublicKeyComponents {
                n: unpadded(&n),
                e: unpadded(&e),
            };
            RSA_ALGORITHMS
                .iter()
                .filter(|a| wanted(a))
                .filter_map(|a| {
                    let key = components.to_parsed_public_key(rsa_params(*a)?).ok()?;
                    Some((*a, key))
                })
                .collect()
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (alg, verification, size): (_, &'static dyn sig::VerificationAlgorithm, _) = match p.curve {
                EllipticCurve::P256 => (Algorithm::ES256, &sig::ECDSA_P256_SHA256_FIXED, 32),
                EllipticCurve::P384 => (Algorithm::ES384, &sig::ECDSA_P384_SHA384_FIXED, 48),
                _ => return None,
            };
            let (x, y) = (b64(&p.x)?, b64(&p.y)?);
            if !wanted(&alg) || x.len() != size || y.len() != size {
                return None;
            }
            // SEC 1 uncompressed point: 0x04 ‖ x ‖ y
            let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
            vec![(alg, ParsedPublicKey::new(verification, point).ok()?)]
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            let x = b64(&p.x)?;
            if p.curve != EllipticCurve::Ed25519 || !wanted(&Algorithm::EdDSA) || x.len() != 32 {
                return None;
            }
            vec![(Algorithm::EdDSA, ParsedPublicKey::new(&sig::ED25519, x).ok()?)]
        }
        _ => return None,
    };
    (!out.is_empty()).then_some(out)
}

/// The usable keys of one JWKS.
#[derive(Debug, Default)]
pub struct KeySet(Vec<Key>);

impl std::ops::Deref for KeySet {
    type Target = [Key];
    fn deref(&self) -> &[Key] {
        &self.0
    }
}

impl KeySet {
    /// Parses a JWKS document (JSON) into its usable keys (see [`keys_of`]).
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<JwkSet>(json).map(|s| keys_of(&s))
    }

    /// One configured RSA public key for RS256: PEM (`-----BEGIN PUBLIC
    /// KEY-----`, SubjectPublicKeyInfo, or `RSA PUBLIC KEY`, PKCS#1), or the
    /// bare base64 body of either, as identity providers show it (the
    /// Keycloak realm's "Public key"). It matches tokens whatever their
    /// `kid`. Keys shorter than 2048 bits are refused.
    pub fn from_rsa_public_key(text: &str) -> Result<Self, String> {
        let body: String = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| "not a PEM or base64 public key".to_owned())?;
        let key = aws_lc_rs::rsa::PublicKey::from_der(&der)
            .map_err(|_| "not an RSA public key (SubjectPublicKeyInfo or PKCS#1)".to_owned())?;
        if key.as_ref().len() < 256 {
            return Err("the RSA key is shorter than 2048 bits".into());
        }
        let parsed = ParsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, key.as_ref())
            .map_err(|_| "the RSA key is shorter than 2048 bits or unusable".to_owned())?;
        Ok(Self(vec![Key {
            kid: None,
            pinned: true,
            by_alg: vec![(Algorithm::RS256, parsed)],
        }]))
    }

    /// Checks the signature of a parsed token against the keys that match
    /// its `kid` (when it has one) and its algorithm. `None`: no such key;
    /// `Some(valid)` otherwise.
    pub fn check(&self, parsed: &Parsed<'_>) -> Option<bool> {
        let mut candidates = self
            .iter()
            .filter(|k| k.allows(parsed.alg))
            .filter(|k| match (&parsed.kid, &k.kid) {
                _ if k.pinned => true,
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .peekable();
        candidates.peek()?;
        let Ok(signature) = URL_SAFE_NO_PAD.decode(parsed.signature) else {
            return Some(false);
        };
        let message = parsed.signing_input.as_bytes();
        Some(candidates.any(|k| k.verifies(parsed.alg, message, &signature)))
    }
}

/// Turns a JWKS into usable keys: signature keys of asymmetric types only
/// (symmetric `oct` keys are never taken from a JWKS), each bound to the
/// algorithms its type and curve allow.
pub fn keys_of(set: &JwkSet) -> KeySet {
    let mut out = Vec::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let only = match &jwk.common.key_algorithm {
            None => None,
            Some(a) => match key_alg(a) {
                Some(a) => Some(a),
                None => continue,
            },
        };
        if let Some(by_alg) = parse_jwk(jwk, only) {
            out.push(Key {
                kid: jwk.common.key_id.clone(),
                pinned: false,
                by_alg,
            });
        }
    }
    KeySet(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};

    fn set(json: serde_json::Value) -> KeySet {
        keys_of(&serde_json::from_value(json).unwrap())
    }

    fn enc(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    /// A new RSA private key of `bits`, PEM, made by openssl.
    fn rsa_pem(bits: u32) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
            .arg(format!("rsa_keygen_bits:{bits}"))
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn ec_and_ed25519_keys_verify_and_are_bound_to_their_algorithm() {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = ec.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        let ed = Ed25519KeyPair::generate().unwrap();
        let keys = set(serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": enc(x), "y": enc(y)},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": enc(ed.public_key().as_ref())},
            // wrong coordinate length, and an X25519 key: not usable
            {"kty": "EC", "crv": "P-256", "kid": "short", "x": enc(&x[1..]), "y": enc(y)},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": enc(ed.public_key().as_ref())},
        ]}));
        assert_eq!(keys.len(), 2);
        // points not on the curve (an invalid-curve attack) are refused
        let mut off = y.to_vec();
        off[31] ^= 1;
        let off_curve = set(serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": enc(x), "y": enc(&off)},
            {"kty": "EC", "crv": "P-256", "x": enc(&[0u8; 32]), "y": enc(&[0u8; 32])},
        ]}));
        assert!(off_curve.is_empty());
        let msg = b"header.payload";
        let ec_sig = ec.sign(&rng, msg).unwrap();
        assert!(keys[0].verifies(Algorithm::ES256, msg, ec_sig.as_ref()));
        assert!(!keys[0].verifies(Algorithm::ES256, b"header.tampered", ec_sig.as_ref()));
        assert!(!keys[0].allows(Algorithm::ES384) && !keys[0].allows(Algorithm::RS256));
        let ed_sig = ed.sign(msg);
        assert!(keys[1].verifies(Algorithm::EdDSA, msg, ed_sig.as_ref()));
        assert!(!keys[1].allows(Algorithm::ES256));
    }

    #[test]
    fn rsa_keys_follow_their_alg_and_padded_moduli_parse() {
        let pem = rsa_pem(2048);
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        let AlgorithmParameters::RSA(p) = &jwk.algorithm else {
            panic!("not RSA")
        };
        let padded = enc(&[&[0u8][..], &URL_SAFE_NO_PAD.decode(&p.n).unwrap()].concat());
        let keys = set(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "any", "n": p.n, "e": p.e},
            {"kty": "RSA", "kid": "rs256", "alg": "RS256", "n": padded, "e": p.e},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": p.n, "e": p.e},
            {"kty": "RSA", "kid": "bad", "n": "!!", "e": p.e},
        ]}));
        assert_eq!(keys.len(), 2, "the encryption key and the broken one are skipped");
        assert!(keys[0].allows(Algorithm::PS512) && keys[0].allows(Algorithm::RS256));
        assert!(keys[1].allows(Algorithm::RS256) && !keys[1].allows(Algorithm::PS256));
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::RS256),
            &serde_json::json!({"sub": "x"}),
            &key,
        )
        .unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert!(keys[0].verifies(Algorithm::RS256, input.as_bytes(), &sig));
        assert!(keys[1].verifies(Algorithm::RS256, input.as_bytes(), &sig));
        assert!(!keys[0].verifies(Algorithm::PS256, input.as_bytes(), &sig));
    }

    #[test]
    fn a_jwk_alg_binds_the_key_to_that_algorithm_alone() {
        let pem = rsa_pem(2048);
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        let AlgorithmParameters::RSA(p) = &jwk.algorithm else {
            panic!("not RSA")
        };
        for alg in RSA_ALGORITHMS {
            let name = format!("{alg:?}");
            let keys = set(serde_json::json!({"keys": [
                {"kty": "RSA", "alg": name, "n": p.n, "e": p.e},
            ]}));
            assert_eq!(keys.len(), 1, "{name}");
            for other in RSA_ALGORITHMS {
                assert_eq!(keys[0].allows(other), other == alg, "{name} key, {other:?}");
            }
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(alg),
                &serde_json::json!({"sub": "x"}),
                &key,
            )
            .unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            assert!(keys[0].verifies(alg, input.as_bytes(), &sig), "{name}");
        }
        // an RSA key named for HMAC or an EC algorithm is no signature key
        for alg in ["HS256", "ES256"] {
            let keys = set(serde_json::json!({"keys": [
                {"kty": "RSA", "alg": alg, "n": p.n, "e": p.e},
            ]}));
            assert!(keys.is_empty(), "{alg}");
        }
        // the EC and EdDSA names
        let rng = SystemRandom::new();
        for (curve, alg, size, signing) in [
            ("P-256", Algorithm::ES256, 32, &ECDSA_P256_SHA256_FIXED_SIGNING),
            (
                "P-384",
                Algorithm::ES384,
                48,
                &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            ),
        ] {
            let doc = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
            let ec = EcdsaKeyPair::from_pkcs8(signing, doc.as_ref()).unwrap();
            let point = ec.public_key().as_ref();
            let (x, y) = (&point[1..=size], &point[size + 1..]);
            let keys = set(serde_json::json!({"keys": [
                {"kty": "EC", "crv": curve, "alg": format!("{alg:?}"), "x": enc(x), "y": enc(y)},
            ]}));
            assert_eq!(keys.len(), 1, "{curve}");
            let sig = ec.sign(&rng, b"m").unwrap();
            assert!(keys[0].verifies(alg, b"m", sig.as_ref()), "{curve}");
        }
        let ed = Ed25519KeyPair::generate().unwrap();
        // a key whose alg its curve cannot do is no key at all
        let ec_doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_doc.as_ref()).unwrap();
        let point = ec.public_key().as_ref();
        let (x, y) = (enc(&point[1..33]), enc(&point[33..65]));
        let ed_x = enc(ed.public_key().as_ref());
        for (what, jwk) in [
            (
                "P-256 as ES384",
                serde_json::json!({"kty": "EC", "crv": "P-256", "alg": "ES384", "x": x, "y": y}),
            ),
            (
                "P-256 as EdDSA",
                serde_json::json!({"kty": "EC", "crv": "P-256", "alg": "EdDSA", "x": x, "y": y}),
            ),
            (
                "Ed25519 as ES256",
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "ES256", "x": ed_x}),
            ),
            (
                "X25519",
                serde_json::json!({"kty": "OKP", "crv": "X25519", "x": ed_x}),
            ),
            (
                "X25519 as EdDSA",
                serde_json::json!({"kty": "OKP", "crv": "X25519", "alg": "EdDSA", "x": ed_x}),
            ),
        ] {
            assert!(set(serde_json::json!({"keys": [jwk]})).is_empty(), "{what}");
        }
        let keys = set(serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": enc(ed.public_key().as_ref())},
        ]}));
        assert_eq!(keys.len(), 1);
        assert!(keys[0].verifies(Algorithm::EdDSA, b"m", ed.sign(b"m").as_ref()));
        assert_eq!(
            format!("{:?}", keys[0]),
            "Key { kid: None, algorithms: [EdDSA] }",
            "Debug shows the kid and algorithms"
        );
    }

    #[test]
    fn rsa_keys_shorter_than_2048_bits_never_verify() {
        let pem = rsa_pem(1024);
        // aws-lc will not even load such a key: openssl gives the modulus
        // and signs
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("k.pem");
        std::fs::write(&key_file, &pem).unwrap();
        let modulus = std::process::Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in"])
            .arg(&key_file)
            .output()
            .unwrap()
            .stdout;
        let hex = String::from_utf8(modulus).unwrap();
        let hex = hex.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(n.len(), 128);
        let keys = set(serde_json::json!({"keys": [{"kty": "RSA", "n": enc(&n), "e": "AQAB"}]}));
        assert_eq!(keys.len(), 1, "the key parses; verification refuses it");
        let input = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0";
        let mut child = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key_file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        drop(child.stdin.take());
        let sig = child.wait_with_output().unwrap().stdout;
        assert_eq!(sig.len(), 128);
        // a good signature: a verifier allowing 1024-bit keys takes it
        let legacy = RsaPublicKeyComponents {
            n: &n[..],
            e: &[1u8, 0, 1][..],
        }
        .to_parsed_public_key(&sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY)
        .unwrap();
        assert!(legacy.verify_sig(input.as_bytes(), &sig).is_ok());
        assert!(
            keys.iter()
                .all(|k| !k.verifies(Algorithm::RS256, input.as_bytes(), &sig))
        );
    }

    #[test]
    fn an_rsa_key_with_exponent_one_cannot_be_used_to_forge() {
        // With e = 1 a "signature" equal to the padded digest would verify:
        // such a key must never verify anything.
        let n = {
            let mut n = vec![0xC3u8; 256];
            n[255] |= 1;
            n
        };
        let message = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9";
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        // EMSA-PKCS1-v1_5: 00 01 FF.. 00 DigestInfo(SHA-256) hash
        let info: [u8; 19] = [
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
            0x00, 0x04, 0x20,
        ];
        let mut em = vec![0x00u8, 0x01];
        em.resize(256 - info.len() - 32 - 1, 0xFF);
        em.push(0x00);
        em.extend_from_slice(&info);
        em.extend_from_slice(digest.as_ref());
        assert_eq!(em.len(), 256);
        for e in ["AQ", "Aw"] {
            // e = 1 (the forgery) and e = 3 (a valid exponent, as a control
            // that the key itself is taken)
            let keys = set(serde_json::json!({"keys": [{"kty": "RSA", "n": enc(&n), "e": e}]}));
            let forged = keys.iter().any(|k| k.verifies(Algorithm::RS256, message, &em));
            assert!(!forged, "e = {e} accepted a forged signature");
            if e == "Aw" {
                assert_eq!(keys.len(), 1, "a key with e = 3 is usable");
            }
        }
    }
}
