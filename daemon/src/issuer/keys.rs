//! The issuer's signing keys: generated on first start, kept in the store
//! (sealed under `[issuer] keyring_key` when one is set, see `seal.rs`),
//! rotated on demand. A rotated-out key stays published until every token
//! it signed has expired, then it is dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_sdk::Secret;
use gatehouse_sdk::jose::publish::{PublicKey, jwks_document, public_jwk, rsa_components};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::seal::{OpenError, Sealing};
use crate::store::{Store, StoreError};

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
    /// The stored keyring cannot be read back.
    #[error("issuer keyring in the store: {0}")]
    Damaged(String),
    /// The store failed.
    #[error("issuer keyring: {0}")]
    Store(#[from] StoreError),
    /// The stored keyring is sealed and cannot be opened here.
    #[error("issuer keyring: {0}")]
    Sealed(#[from] OpenError),
    /// Other hosts changed the keyring every time this one tried.
    #[error("issuer keyring: other hosts kept changing it; try again")]
    Contended,
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
    pair: Arc<Pair>,
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
            pair: Arc::new(pair),
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

/// The store document that holds the keyring: one for every host sharing
/// the store, so they sign with the same key and publish the same JWKS.
pub const DOCUMENT: &str = "issuer.keyring";

/// How long a host signs with the keys it last read before it looks in
/// the store for a rotation made by another host. JWKS answers always read
/// the store, so a key is published everywhere before any host could have
/// read it for signing elsewhere.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a change is retried when other hosts keep changing the
/// keyring at the same moment.
const ATTEMPTS: usize = 8;

/// The issuer's keys: one current (signing) key and the retired ones still
/// published. Kept in the store as one versioned document, replaced whole
/// only when nobody changed it since it was read.
pub struct Keyring {
    store: Arc<dyn Store>,
    sealing: Arc<Sealing>,
    state: Mutex<Loaded>,
}

struct Loaded {
    keys: Vec<Key>,
    /// The document version the keys came from.
    version: Option<i64>,
    read_at: Instant,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Keyring")
            .field("keys", &state.keys.len())
            .field("version", &state.version)
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
    /// Loads the keyring from `store`, or makes it with one new `alg` key.
    /// A key file written by an earlier gatehouse at `legacy` is imported
    /// the first time (then renamed `*.imported`). When the current key has
    /// another algorithm (the configuration changed), a new key of `alg`
    /// becomes current and the old one is retired. Keys retired longer than
    /// `keep` seconds ago are dropped. With a sealing key, a keyring stored
    /// in the clear or under the previous key is sealed again under the
    /// current one.
    pub async fn open(
        store: Arc<dyn Store>,
        sealing: Arc<Sealing>,
        legacy: &Path,
        alg: Algorithm,
        keep: i64,
        now: i64,
    ) -> Result<Self, KeyError> {
        let ring = Self {
            store,
            sealing,
            state: Mutex::new(Loaded {
                keys: Vec::new(),
                version: None,
                read_at: Instant::now(),
            }),
        };
        let imported = ring.import(legacy).await?;
        ring.update(true, |keys| {
            let dropped = drop_expired(keys, keep, now);
            let current_ok = keys.iter().any(|k| k.stored.retired.is_none() && k.alg == alg);
            if !current_ok {
                make_current(keys, Key::generate(alg, now)?, now);
            }
            Ok(dropped || !current_ok)
        })
        .await?;
        if imported {
            let done = legacy.with_extension("json.imported");
            match std::fs::rename(legacy, &done) {
                Ok(()) => tracing::info!(
                    "issuer: the key file {} is now in the store (left as {})",
                    legacy.display(),
                    done.display()
                ),
                Err(e) => tracing::warn!("issuer: cannot rename {}: {e}", legacy.display()),
            }
        }
        Ok(ring)
    }

    /// Puts the keys of a key file from before the store held them into
    /// the store, when it holds none yet. True when this call did.
    async fn import(&self, legacy: &Path) -> Result<bool, KeyError> {
        let file_err = |m: String| KeyError::File {
            path: legacy.to_owned(),
            message: m,
        };
        let bytes = match std::fs::read(legacy) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(file_err(e.to_string())),
        };
        let text =
            String::from_utf8(bytes).map_err(|_| file_err("not a key file written by gatehouse".into()))?;
        parse(&text).map_err(|_| file_err("not a key file written by gatehouse".into()))?;
        if self.store.document(DOCUMENT).await?.is_some() {
            return Ok(false);
        }
        let stored = self.sealing.seal(Secret::new(text)).map_err(KeyError::Crypto)?;
        Ok(self.store.put_document(DOCUMENT, None, &stored).await?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the keyring from the store (when it changed since the last
    /// read).
    async fn read(&self) -> Result<(), KeyError> {
        let doc = self.store.document(DOCUMENT).await?;
        let version = doc.as_ref().map(|d| d.version);
        if version == self.lock().version {
            self.lock().read_at = Instant::now();
            return Ok(());
        }
        let keys = match &doc {
            Some(d) => parse(self.sealing.open(&d.value)?.text.expose())?,
            None => Vec::new(),
        };
        *self.lock() = Loaded {
            keys,
            version,
            read_at: Instant::now(),
        };
        Ok(())
    }

    /// Applies `change` to the stored keyring and writes it back when
    /// `change` says it changed something (or, with `reseal`, when it is
    /// not sealed under the current key), again from a fresh read when
    /// another host wrote first. Only opening reseals: while hosts change
    /// keys one by one, their routine reads must not seal the keyring back
    /// and forth between the old key and the new.
    async fn update(
        &self,
        reseal: bool,
        mut change: impl FnMut(&mut Vec<Key>) -> Result<bool, KeyError>,
    ) -> Result<(), KeyError> {
        for _ in 0..ATTEMPTS {
            let doc = self.store.document(DOCUMENT).await?;
            let version = doc.as_ref().map(|d| d.version);
            let (mut keys, stale) = match &doc {
                Some(d) => {
                    let opened = self.sealing.open(&d.value)?;
                    (parse(opened.text.expose())?, opened.reseal)
                }
                None => (Vec::new(), false),
            };
            let stale = reseal && stale;
            let version = if change(&mut keys)? || stale {
                let text = self.sealing.seal(serialize(&keys)?).map_err(KeyError::Crypto)?;
                if !self.store.put_document(DOCUMENT, version, &text).await? {
                    continue;
                }
                if stale && let Some(id) = self.sealing.current_id() {
                    tracing::info!("issuer: the keyring in the store is now sealed under key id {id}");
                }
                Some(version.map_or(1, |v| v + 1))
            } else {
                version
            };
            *self.lock() = Loaded {
                keys,
                version,
                read_at: Instant::now(),
            };
            return Ok(());
        }
        Err(KeyError::Contended)
    }

    /// Looks in the store for another host's rotation when the keys were
    /// read more than a few seconds ago. A store that cannot be read
    /// leaves the keys as they were (they still sign and verify).
    pub async fn refresh(&self) {
        if self.lock().read_at.elapsed() < REFRESH {
            return;
        }
        if let Err(e) = self.read().await {
            tracing::warn!("issuer: keeping the keys read before: {e}");
            self.lock().read_at = Instant::now();
        }
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Value) -> Result<Signed, KeyError> {
        // the lock only picks the key: signatures run in parallel
        let (pair, alg, kid) = {
            let state = self.lock();
            let key = state
                .keys
                .iter()
                .find(|k| k.stored.retired.is_none())
                .ok_or(KeyError::Crypto("no current signing key"))?;
            (Arc::clone(&key.pair), key.alg, key.kid.clone())
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

    /// The JWKS document, from a fresh read of the store: the current key
    /// and the retired ones still kept (keys retired more than `keep`
    /// seconds before `now` are dropped first).
    pub async fn jwks(&self, keep: i64, now: i64) -> Result<Value, KeyError> {
        self.update(false, |keys| Ok(drop_expired(keys, keep, now)))
            .await?;
        Ok(jwks_document(self.lock().keys.iter().map(|k| k.jwk.clone())))
    }

    /// The current key's id (as last read).
    pub fn current_kid(&self) -> Option<String> {
        self.lock()
            .keys
            .iter()
            .find(|k| k.stored.retired.is_none())
            .map(|k| k.kid.clone())
    }

    /// Makes a new current key of `alg` for every host; the previous one
    /// keeps being published for `keep` seconds (the longest a token it
    /// signed lives), and keys retired longer ago are dropped. Returns the
    /// new key's id.
    pub async fn rotate(&self, alg: Algorithm, keep: i64, now: i64) -> Result<String, KeyError> {
        let mut kid = String::new();
        self.update(false, |keys| {
            let fresh = Key::generate(alg, now)?;
            kid.clone_from(&fresh.kid);
            drop_expired(keys, keep, now);
            make_current(keys, fresh, now);
            Ok(true)
        })
        .await?;
        Ok(kid)
    }
}

/// Reads a stored keyring (a store document or a legacy key file).
fn parse(text: &str) -> Result<Vec<Key>, KeyError> {
    let stored: StoredRing = serde_json::from_str(text)
        .map_err(|e| KeyError::Damaged(format!("not a keyring written by gatehouse (line {})", e.line())))?;
    stored.keys.into_iter().map(Key::from_stored).collect()
}

fn serialize(keys: &[Key]) -> Result<Secret, KeyError> {
    let ring = StoredRing {
        keys: keys.iter().map(|k| k.stored.clone()).collect(),
    };
    serde_json::to_string(&ring)
        .map(Secret::new)
        .map_err(|e| KeyError::Damaged(e.to_string()))
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
    use crate::store::SqliteStore;
    use std::collections::BTreeSet;

    fn kids(jwks: &Value) -> BTreeSet<String> {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    fn clear() -> Arc<Sealing> {
        Arc::new(Sealing::default())
    }

    fn store(dir: &Path) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&dir.join("g.db")).expect("store"))
    }

    #[tokio::test]
    async fn keys_live_in_the_store_and_rotate_out_after_their_tokens_expire() {
        let dir = tempfile::tempdir().expect("dir");
        let legacy = dir.path().join("issuer-keys.json");
        let s = store(dir.path());
        let ring = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 3600, 1000)
            .await
            .expect("open");
        let first = ring.current_kid().expect("kid");
        assert!(!legacy.exists(), "no key file is written any more");
        // another host (or a restart) on the same store: the same key
        let again = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 3600, 1001)
            .await
            .expect("reopen");
        assert_eq!(again.current_kid().as_deref(), Some(first.as_str()));

        let second = again.rotate(Algorithm::ES256, 3600, 2000).await.expect("rotate");
        assert_ne!(first, second);
        assert_eq!(again.current_kid().as_deref(), Some(second.as_str()));
        // the first host publishes the rotation at once, and signs with it
        // once it looks again
        let jwks = ring.jwks(3600, 2000).await.expect("jwks");
        assert_eq!(kids(&jwks), [first.clone(), second.clone()].into());
        assert_eq!(ring.current_kid().as_deref(), Some(second.as_str()));
        // still published while its tokens may live, gone afterwards
        assert_eq!(kids(&again.jwks(3600, 5600).await.expect("jwks")).len(), 2);
        assert_eq!(
            kids(&again.jwks(3600, 5601).await.expect("jwks")),
            [second.clone()].into()
        );
        let reopened = Keyring::open(s, clear(), &legacy, Algorithm::ES256, 3600, 9000)
            .await
            .expect("reopen");
        assert_eq!(
            kids(&reopened.jwks(3600, 9000).await.expect("jwks")),
            [second].into()
        );
    }

    #[tokio::test]
    async fn two_hosts_starting_at_once_make_one_key() {
        let dir = tempfile::tempdir().expect("dir");
        let s = store(dir.path());
        let legacy = dir.path().join("none.json");
        let opens = (0..6).map(|i| {
            let s = Arc::clone(&s);
            let legacy = legacy.clone();
            tokio::spawn(async move { Keyring::open(s, clear(), &legacy, Algorithm::EdDSA, 60, i).await })
        });
        let mut current = BTreeSet::new();
        for o in opens {
            let ring = o.await.expect("task").expect("open");
            current.insert(ring.current_kid().expect("kid"));
        }
        assert_eq!(current.len(), 1, "{current:?}");
        let ring = Keyring::open(s, clear(), &legacy, Algorithm::EdDSA, 60, 10)
            .await
            .expect("open");
        assert_eq!(kids(&ring.jwks(60, 10).await.expect("jwks")), current);
    }

    #[tokio::test]
    async fn a_key_file_from_before_is_imported_once() {
        let dir = tempfile::tempdir().expect("dir");
        let legacy = dir.path().join("issuer-keys.json");
        // a keyring as gatehouse wrote it to a file
        let old = Key::generate(Algorithm::ES256, 100).expect("key");
        let text = serialize(std::slice::from_ref(&old)).expect("serialize");
        std::fs::write(&legacy, text.expose()).expect("write");
        let s = store(dir.path());
        let ring = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 60, 200)
            .await
            .expect("open");
        assert_eq!(ring.current_kid(), Some(old.kid.clone()));
        assert!(!legacy.exists());
        assert!(dir.path().join("issuer-keys.json.imported").exists());
        // a stale file put back later does not replace the store's keys
        let other = Key::generate(Algorithm::ES256, 300).expect("key");
        let text = serialize(std::slice::from_ref(&other)).expect("serialize");
        std::fs::write(&legacy, text.expose()).expect("write");
        let ring = Keyring::open(s, clear(), &legacy, Algorithm::ES256, 60, 400)
            .await
            .expect("open");
        assert_eq!(ring.current_kid(), Some(old.kid));
    }

    #[tokio::test]
    async fn a_new_algorithm_makes_a_new_current_key() {
        let dir = tempfile::tempdir().expect("dir");
        let s = store(dir.path());
        let legacy = dir.path().join("k.json");
        let rsa = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::RS256, 60, 0)
            .await
            .expect("rsa");
        let old = rsa.current_kid().expect("kid");
        let ed = Keyring::open(s, clear(), &legacy, Algorithm::EdDSA, 60, 10)
            .await
            .expect("ed");
        let jwks = ed.jwks(60, 10).await.expect("jwks");
        let algs: BTreeSet<&str> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["alg"].as_str().expect("alg"))
            .collect();
        assert_eq!(algs, ["RS256", "EdDSA"].into());
        assert_ne!(ed.current_kid(), Some(old));
    }

    #[tokio::test]
    async fn a_damaged_keyring_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("dir");
        let legacy = dir.path().join("k.json");
        std::fs::write(&legacy, "{not json").expect("write");
        let s = store(dir.path());
        let e = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 60, 0)
            .await
            .expect_err("damaged file");
        assert!(e.to_string().contains("not a key file"), "{e}");
        assert_eq!(std::fs::read_to_string(&legacy).expect("read"), "{not json");
        std::fs::remove_file(&legacy).expect("rm");
        // damaged in the store: refused, and left as it is
        assert!(
            s.put_document(DOCUMENT, None, &Secret::new("[1]"))
                .await
                .expect("put")
        );
        let e = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 60, 0)
            .await
            .expect_err("damaged document");
        assert!(e.to_string().contains("not a keyring"), "{e}");
        assert_eq!(
            s.document(DOCUMENT)
                .await
                .expect("doc")
                .expect("doc")
                .value
                .expose(),
            "[1]"
        );
    }

    #[test]
    fn algorithms_parse_by_their_jws_names_only() {
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert_eq!(Algorithm::parse(alg.name()), Some(alg));
        }
        for other in ["none", "HS256", "rs256", "ES384", "Ed25519", ""] {
            assert_eq!(Algorithm::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn key_ids_are_rfc_7638_thumbprints() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s).expect("base64url");
        // RFC 7638 section 3.1
        let n = b64(concat!(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3",
            "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA",
            "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-",
            "kEgU8awapJzKnqDKgw"
        ));
        let e = b64("AQAB");
        assert_eq!(
            thumbprint(PublicKey::Rsa { n: &n, e: &e }),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // RFC 8037 appendix A.3
        let x = b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(
            thumbprint(PublicKey::Ed25519(&x)),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        // the P-256 key of RFC 7517 appendix A.1; its thumbprint computed
        // apart from gatehouse (SHA-256 of the RFC 7638 member string)
        let mut point = vec![4];
        point.extend(b64("MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"));
        point.extend(b64("4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"));
        assert_eq!(
            thumbprint(PublicKey::P256(&point)),
            "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s"
        );
    }

    #[tokio::test]
    async fn debug_output_counts_the_keys_and_shows_none() {
        let dir = tempfile::tempdir().expect("dir");
        let s = store(dir.path());
        let ring = Keyring::open(
            Arc::clone(&s),
            clear(),
            &dir.path().join("k.json"),
            Algorithm::ES256,
            60,
            0,
        )
        .await
        .expect("open");
        let shown = format!("{ring:?}");
        assert!(shown.starts_with("Keyring"), "{shown}");
        assert!(shown.contains("keys: 1"), "{shown}");
        let doc = s.document(DOCUMENT).await.expect("doc").expect("doc");
        let stored: StoredRing = serde_json::from_str(doc.value.expose()).expect("ring");
        assert!(!shown.contains(&stored.keys[0].pkcs8), "{shown}");
    }

    #[tokio::test]
    async fn a_key_file_that_cannot_be_read_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("dir");
        // there, but not a file that reads
        let legacy = dir.path().join("issuer-keys.json");
        std::fs::create_dir(&legacy).expect("mkdir");
        let s = store(dir.path());
        let e = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 60, 0)
            .await
            .expect_err("unreadable key file");
        assert!(matches!(e, KeyError::File { .. }), "{e}");
        assert!(s.document(DOCUMENT).await.expect("doc").is_none());
    }

    #[tokio::test]
    async fn a_host_looks_for_another_hosts_rotation_only_after_a_while() {
        let dir = tempfile::tempdir().expect("dir");
        let s = store(dir.path());
        let legacy = dir.path().join("k.json");
        let a = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 60, 0)
            .await
            .expect("a");
        let b = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 60, 0)
            .await
            .expect("b");
        let first = b.current_kid().expect("kid");
        let second = a.rotate(Algorithm::ES256, 60, 10).await.expect("rotate");
        // the version kept is the one written: the writer need not read
        // its own change back
        let stored = s.document(DOCUMENT).await.expect("doc").expect("doc").version;
        assert_eq!(a.lock().version, Some(stored));
        // read a moment ago: the store is not asked again yet
        b.refresh().await;
        assert_eq!(b.current_kid(), Some(first));
        // read longer ago than REFRESH: the rotation is seen
        let long_ago = Instant::now()
            .checked_sub(REFRESH + std::time::Duration::from_secs(1))
            .expect("an instant in the past");
        b.lock().read_at = long_ago;
        b.refresh().await;
        assert_eq!(b.current_kid(), Some(second.clone()));
        assert_eq!(b.lock().version, Some(stored));
        assert!(b.lock().read_at > long_ago);
        // nothing changed since: a later look keeps the same keys
        b.lock().read_at = long_ago;
        b.refresh().await;
        assert_eq!(b.current_kid(), Some(second));
        assert!(b.lock().read_at > long_ago);
    }

    fn sealed_with(current: Option<u8>, previous: Option<u8>) -> Arc<Sealing> {
        let key =
            |b: u8| super::super::seal::SealKey::parse(&Secret::new(STANDARD.encode([b; 32]))).expect("key");
        Arc::new(Sealing {
            current: current.map(key),
            previous: previous.map(key),
        })
    }

    #[tokio::test]
    async fn a_sealing_key_seals_the_stored_keyring_and_a_missing_one_changes_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let s = store(dir.path());
        let legacy = dir.path().join("none.json");
        let stored = || async {
            let d = s.document(DOCUMENT).await.expect("doc").expect("doc");
            (d.version, d.value.expose().to_owned())
        };
        let first = Keyring::open(Arc::clone(&s), clear(), &legacy, Algorithm::ES256, 60, 0)
            .await
            .expect("clear");
        let kid = first.current_kid().expect("kid");
        assert!(
            stored().await.1.contains("pkcs8"),
            "stored in the clear without a key"
        );

        // a key configured: the same keys, sealed in the store
        let ring = Keyring::open(
            Arc::clone(&s),
            sealed_with(Some(1), None),
            &legacy,
            Algorithm::ES256,
            60,
            1,
        )
        .await
        .expect("seal");
        assert_eq!(ring.current_kid().as_deref(), Some(kid.as_str()));
        let (version, text) = stored().await;
        assert!(!text.contains("pkcs8") && text.contains("A256GCM"), "{text}");
        // a host without the key, or with another key, refuses and leaves it
        for sealing in [clear(), sealed_with(Some(2), None)] {
            let e = Keyring::open(Arc::clone(&s), sealing, &legacy, Algorithm::ES256, 60, 2)
                .await
                .expect_err("sealed");
            assert!(matches!(e, KeyError::Sealed(_)), "{e}");
            assert!(e.to_string().contains("keyring_key"), "{e}");
            assert_eq!(stored().await, (version, text.clone()));
        }
        // the host that read it before keeps signing, and sees no change
        ring.refresh().await;
        assert_eq!(ring.current_kid().as_deref(), Some(kid.as_str()));

        // step 1 of a key change: the new key beside the current one
        let mixed = Keyring::open(
            Arc::clone(&s),
            sealed_with(Some(1), Some(2)),
            &legacy,
            Algorithm::ES256,
            60,
            3,
        )
        .await
        .expect("mixed");
        assert_eq!(stored().await, (version, text.clone()), "nothing to reseal");
        // step 2: the new key with the old one as previous: sealed again
        // under the new one
        let moved = Keyring::open(
            Arc::clone(&s),
            sealed_with(Some(2), Some(1)),
            &legacy,
            Algorithm::ES256,
            60,
            3,
        )
        .await
        .expect("reseal");
        assert_eq!(moved.current_kid().as_deref(), Some(kid.as_str()));
        let (v2, t2) = stored().await;
        assert!(v2 > version && t2 != text);
        // a host still at step 1 reads it and does not seal it back
        assert_eq!(
            kids(&mixed.jwks(60, 3).await.expect("jwks")),
            [kid.clone()].into()
        );
        assert_eq!(stored().await, (v2, t2.clone()));
        let e = Keyring::open(
            Arc::clone(&s),
            sealed_with(Some(1), None),
            &legacy,
            Algorithm::ES256,
            60,
            4,
        )
        .await
        .expect_err("old key only");
        assert!(e.to_string().contains("sealed with key id"), "{e}");
        // a rotation under the new key is read by a host with that key
        let rotated = moved.rotate(Algorithm::ES256, 60, 5).await.expect("rotate");
        let other = Keyring::open(s, sealed_with(Some(2), None), &legacy, Algorithm::ES256, 60, 6)
            .await
            .expect("open");
        assert_eq!(other.current_kid(), Some(rotated));
    }

    #[tokio::test]
    async fn signatures_verify_with_the_published_key() {
        use gatehouse_sdk::jose::KeySet;
        use gatehouse_sdk::jose::jws;
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let dir = tempfile::tempdir().expect("dir");
            let ring = Keyring::open(store(dir.path()), clear(), &dir.path().join("k"), alg, 60, 0)
                .await
                .expect("open");
            let signed = ring.sign(&serde_json::json!({"sub": "alice"})).expect("sign");
            let jwks = ring.jwks(60, 0).await.expect("jwks");
            let set = KeySet::from_json(jwks.to_string().as_bytes()).expect("jwks");
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
