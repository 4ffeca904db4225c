//! The issuer's signing keys: generated on first start, kept 0600 in the
//! state directory, rotated on demand. A rotated-out key stays published
//! until every token it signed has expired, then it is dropped.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_sdk::jose::publish::{PublicKey, jwks_document, public_jwk, rsa_components};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The algorithms the issuer signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys (what upstream
    /// backends accept).
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Parses a configuration value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

/// Why the keys cannot be loaded, made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("issuer key file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The cryptography library refused.
    #[error("issuer key: {0}")]
    Crypto(&'static str),
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One signing key.
struct Key {
    kid: String,
    alg: Algorithm,
    /// Shared so a signature is made outside the keyring's lock.
    pair: std::sync::Arc<Pair>,
    jwk: Value,
    stored: StoredKey,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    alg: Algorithm,
    /// PKCS#8 DER, base64.
    pkcs8: String,
    created: i64,
    /// When it stopped signing; `None`: the current key.
    #[serde(default)]
    retired: Option<i64>,
}

#[derive(Default, Serialize, Deserialize)]
struct StoredRing {
    keys: Vec<StoredKey>,
}

impl Key {
    fn generate(alg: Algorithm, now: i64) -> Result<Self, KeyError> {
        let crypto = |_| KeyError::Crypto("key generation failed");
        let pkcs8 = match alg {
            Algorithm::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(crypto)?
                .as_der()
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(crypto)?
                .to_pkcs8v1()
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .map_err(crypto)?
                .to_pkcs8v1()
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
        };
        Self::from_stored(StoredKey {
            alg,
            pkcs8: STANDARD.encode(pkcs8),
            created: now,
            retired: None,
        })
    }

    fn from_stored(stored: StoredKey) -> Result<Self, KeyError> {
        let der = STANDARD
            .decode(&stored.pkcs8)
            .map_err(|_| KeyError::Crypto("a stored key is not base64"))?;
        let rejected = |_| KeyError::Crypto("a stored key does not parse as PKCS#8");
        let pair = match stored.alg {
            Algorithm::RS256 => Pair::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(rejected)?),
            Algorithm::ES256 => {
                Pair::Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).map_err(rejected)?)
            }
            Algorithm::EdDSA => Pair::Ed(Ed25519KeyPair::from_pkcs8(&der).map_err(rejected)?),
        };
        let rsa;
        let public = match &pair {
            Pair::Rsa(p) => {
                rsa = rsa_components(p);
                PublicKey::Rsa { n: &rsa.0, e: &rsa.1 }
            }
            Pair::Ec(p) => PublicKey::of_ecdsa(p).map_err(|_| KeyError::Crypto("unsupported curve"))?,
            Pair::Ed(p) => PublicKey::of_ed25519(p),
        };
        let kid = thumbprint(public);
        let jwk = public_jwk(public, &kid, Some(stored.alg.name()))
            .map_err(|_| KeyError::Crypto("the public key cannot be published"))?;
        Ok(Self {
            kid,
            alg: stored.alg,
            pair: std::sync::Arc::new(pair),
            jwk,
            stored,
        })
    }
}

impl Pair {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| KeyError::Crypto("RSA signing failed"))?;
                Ok(sig)
            }
            Pair::Ec(p) => Ok(p
                .sign(&rng, message)
                .map_err(|_| KeyError::Crypto("ECDSA signing failed"))?
                .as_ref()
                .to_vec()),
            Pair::Ed(p) => Ok(p.sign(message).as_ref().to_vec()),
        }
    }
}

/// The RFC 7638 thumbprint of a public key, base64url: a `kid` that
/// names the key and nothing else.
fn thumbprint(key: PublicKey<'_>) -> String {
    let jwk = public_jwk(key, "", None).unwrap_or(Value::Null);
    let member = |k: &str| jwk.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    // required members only, in lexicographic order, no whitespace
    let canonical = match member("kty").as_str() {
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, member("e"), member("n")),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member("crv"),
            member("x"),
            member("y")
        ),
        _ => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            member("crv"),
            member("x")
        ),
    };
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// The issuer's keys: one current (signing) key and the retired ones still
/// published. Persisted as JSON, mode 0600, replaced atomically.
pub struct Keyring {
    path: PathBuf,
    keys: Mutex<Vec<Key>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A signed token's header parts.
pub struct Signed {
    /// The compact JWS.
    pub token: String,
    /// The key that signed it.
    pub kid: String,
}

impl Keyring {
    /// Loads the keys at `path`, or makes the file with one new `alg` key.
    /// When the current key has another algorithm (the configuration
    /// changed), a new key of `alg` becomes current and the old one is
    /// retired. Keys retired longer than `keep` seconds ago are dropped.
    pub fn open(path: &Path, alg: Algorithm, keep: i64, now: i64) -> Result<Self, KeyError> {
        let file_err = |m: String| KeyError::File {
            path: path.to_owned(),
            message: m,
        };
        let stored: StoredRing = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| file_err(format!("not a key file written by gatehouse (line {})", e.line())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoredRing::default(),
            Err(e) => return Err(file_err(e.to_string())),
        };
        let keys = stored
            .keys
            .into_iter()
            .map(Key::from_stored)
            .collect::<Result<Vec<_>, _>>()?;
        let ring = Self {
            path: path.to_owned(),
            keys: Mutex::new(keys),
        };
        let changed = {
            let mut keys = ring.lock();
            let dropped = drop_expired(&mut keys, keep, now);
            let current_ok = keys.iter().any(|k| k.stored.retired.is_none() && k.alg == alg);
            if !current_ok {
                make_current(&mut keys, Key::generate(alg, now)?, now);
            }
            dropped || !current_ok
        };
        if changed {
            ring.save()?;
        }
        Ok(ring)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Key>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn save(&self) -> Result<(), KeyError> {
        let file_err = |m: String| KeyError::File {
            path: self.path.clone(),
            message: m,
        };
        let ring = StoredRing {
            keys: self.lock().iter().map(|k| k.stored.clone()).collect(),
        };
        let json = serde_json::to_vec_pretty(&ring).map_err(|e| file_err(e.to_string()))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| file_err(e.to_string()))?;
        {
            use std::io::Write as _;
            use std::os::unix::fs::PermissionsExt as _;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| file_err(e.to_string()))?;
            tmp.write_all(&json).map_err(|e| file_err(e.to_string()))?;
            tmp.as_file().sync_all().map_err(|e| file_err(e.to_string()))?;
        }
        tmp.persist(&self.path)
            .map_err(|e| file_err(e.error.to_string()))?;
        Ok(())
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Value) -> Result<Signed, KeyError> {
        // the lock only picks the key: signatures run in parallel
        let (pair, alg, kid) = {
            let keys = self.lock();
            let key = keys
                .iter()
                .find(|k| k.stored.retired.is_none())
                .ok_or(KeyError::Crypto("no current signing key"))?;
            (std::sync::Arc::clone(&key.pair), key.alg, key.kid.clone())
        };
        let header = serde_json::json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = pair.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(Signed { token, kid })
    }

    /// The JWKS document: the current key and the retired ones still kept.
    pub fn jwks(&self) -> Value {
        jwks_document(self.lock().iter().map(|k| k.jwk.clone()))
    }

    /// The current key's id.
    pub fn current_kid(&self) -> Option<String> {
        self.lock()
            .iter()
            .find(|k| k.stored.retired.is_none())
            .map(|k| k.kid.clone())
    }

    /// Makes a new current key of `alg`; the previous one keeps being
    /// published for `keep` seconds (the longest a token it signed lives),
    /// and keys retired longer ago are dropped. Returns the new key's id.
    pub fn rotate(&self, alg: Algorithm, keep: i64, now: i64) -> Result<String, KeyError> {
        let fresh = Key::generate(alg, now)?;
        let kid = fresh.kid.clone();
        {
            let mut keys = self.lock();
            drop_expired(&mut keys, keep, now);
            make_current(&mut keys, fresh, now);
        }
        self.save()?;
        Ok(kid)
    }

    /// Drops keys retired more than `keep` seconds ago; true when one went.
    pub fn expire(&self, keep: i64, now: i64) -> Result<bool, KeyError> {
        let dropped = drop_expired(&mut self.lock(), keep, now);
        if dropped {
            self.save()?;
        }
        Ok(dropped)
    }
}

/// Drops keys retired more than `keep` seconds before `now`; true when
/// one went.
fn drop_expired(keys: &mut Vec<Key>, keep: i64, now: i64) -> bool {
    let before = keys.len();
    keys.retain(|k| k.stored.retired.is_none_or(|r| r + keep >= now));
    keys.len() != before
}

/// Retires the current key (if any) at `now` and makes `fresh` current.
fn make_current(keys: &mut Vec<Key>, fresh: Key, now: i64) {
    for k in keys.iter_mut().filter(|k| k.stored.retired.is_none()) {
        k.stored.retired = Some(now);
    }
    keys.push(fresh);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn kids(ring: &Keyring) -> BTreeSet<String> {
        ring.jwks()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    #[test]
    fn keys_persist_0600_and_rotate_out_after_their_tokens_expire() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("issuer-keys.json");
        let ring = Keyring::open(&path, Algorithm::ES256, 3600, 1000).expect("open");
        let first = ring.current_kid().expect("kid");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // reopened: the same key
        let again = Keyring::open(&path, Algorithm::ES256, 3600, 1001).expect("reopen");
        assert_eq!(again.current_kid().as_deref(), Some(first.as_str()));

        let second = again.rotate(Algorithm::ES256, 3600, 2000).expect("rotate");
        assert_ne!(first, second);
        assert_eq!(again.current_kid().as_deref(), Some(second.as_str()));
        assert_eq!(kids(&again), [first.clone(), second.clone()].into());
        // still published while its tokens may live, gone afterwards
        assert!(!again.expire(3600, 2000 + 3600).expect("expire"));
        assert!(again.expire(3600, 2000 + 3601).expect("expire"));
        assert_eq!(kids(&again), [second.clone()].into());
        let reopened = Keyring::open(&path, Algorithm::ES256, 3600, 9000).expect("reopen");
        assert_eq!(kids(&reopened), [second].into());
    }

    #[test]
    fn a_new_algorithm_makes_a_new_current_key() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k.json");
        let rsa = Keyring::open(&path, Algorithm::RS256, 60, 0).expect("rsa");
        let old = rsa.current_kid().expect("kid");
        let ed = Keyring::open(&path, Algorithm::EdDSA, 60, 10).expect("ed");
        let jwks = ed.jwks();
        let algs: BTreeSet<&str> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["alg"].as_str().expect("alg"))
            .collect();
        assert_eq!(algs, ["RS256", "EdDSA"].into());
        assert_ne!(ed.current_kid(), Some(old));
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k.json");
        std::fs::write(&path, "{not json").expect("write");
        let e = Keyring::open(&path, Algorithm::ES256, 60, 0).expect_err("damaged");
        assert!(e.to_string().contains("not a key file"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{not json");
    }

    #[test]
    fn signatures_verify_with_the_published_key() {
        use gatehouse_sdk::jose::KeySet;
        use gatehouse_sdk::jose::jws;
        let dir = tempfile::tempdir().expect("dir");
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let path = dir.path().join(alg.name());
            let ring = Keyring::open(&path, alg, 60, 0).expect("open");
            let signed = ring.sign(&serde_json::json!({"sub": "alice"})).expect("sign");
            let set = KeySet::from_json(ring.jwks().to_string().as_bytes()).expect("jwks");
            let allowed = jws::allowed_algorithms(&[alg.name()]).expect("algs");
            let parsed = jws::parse(&signed.token, &allowed).expect("parse");
            assert_eq!(set.check(&parsed), Some(true), "{alg:?}");
            // one flipped signature byte fails
            let mut bad = signed.token.clone();
            let last = bad.pop().expect("char");
            bad.push(if last == 'A' { 'B' } else { 'A' });
            let parsed = jws::parse(&bad, &allowed);
            assert!(parsed.map_or(true, |p| set.check(&p) != Some(true)), "{alg:?}");
        }
    }
}
