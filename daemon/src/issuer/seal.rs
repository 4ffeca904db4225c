//! The keyring sealed at rest: with `[issuer] keyring_key` set, the
//! keyring document in the store is AES-256-GCM ciphertext under that key,
//! so a copy of the database (a PostgreSQL replica, a backup, a DBA's
//! `SELECT`) does not hand out the private keys that sign tokens.
//!
//! A sealed document names the key that sealed it by a short id (a hash
//! of the key, never the key). Reading tries the configured key, then
//! `keyring_previous_key` (so the key can be changed host by host); every
//! write seals with the configured key. A sealed document that no
//! configured key opens is an error, never a reason to make new keys.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_sdk::Secret;
use serde::{Deserialize, Serialize};

/// The algorithm a sealed document names.
const ALGORITHM: &str = "A256GCM";

/// Authenticated with every sealed keyring: a ciphertext made for another
/// purpose does not open as a keyring.
const AAD: &[u8] = b"gatehouse issuer.keyring sealed v1";

/// Why a key-encryption key is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealKeyError {
    /// Not base64 of exactly 32 bytes.
    #[error("must be 32 random bytes in base64 (make one with `openssl rand -base64 32`)")]
    Format,
}

/// One key-encryption key.
pub struct SealKey {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SealKey {
    /// Reads a key written as base64 of 32 bytes (surrounding whitespace
    /// ignored).
    pub fn parse(text: &Secret) -> Result<Self, SealKeyError> {
        let raw = STANDARD
            .decode(text.expose().trim())
            .map_err(|_| SealKeyError::Format)?;
        if raw.len() != 32 {
            return Err(SealKeyError::Format);
        }
        let key = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| SealKeyError::Format)?;
        let mut tagged = b"gatehouse keyring key id\0".to_vec();
        tagged.extend_from_slice(&raw);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tagged);
        Ok(Self {
            id: URL_SAFE_NO_PAD.encode(&digest.as_ref()[..9]),
            key: LessSafeKey::new(key),
        })
    }

    /// The key's id: what a sealed document records and errors name.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The keys a host seals and opens the keyring with.
#[derive(Debug, Default)]
pub struct Sealing {
    /// Seals every write; `None`: the keyring is stored in the clear.
    pub current: Option<SealKey>,
    /// Opens documents sealed before the key changed.
    pub previous: Option<SealKey>,
}

/// A sealed keyring as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    sealed: String,
    key_id: String,
    nonce: String,
    ciphertext: String,
}

/// Why a stored keyring cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed, and no key is configured.
    #[error(
        "the keyring in the store is sealed (key id {0}): set [issuer] keyring_key (or keyring_key_file / \
         keyring_key_credential) to that key"
    )]
    NoKey(String),
    /// Sealed with a key that is not configured.
    #[error(
        "the keyring in the store is sealed with key id {found}; the configured keys are {configured}: \
         set keyring_key (or keyring_previous_key) to that key"
    )]
    WrongKey {
        /// The id the document names.
        found: String,
        /// The configured ids.
        configured: String,
    },
    /// The ciphertext does not open under the key it names: damaged, or
    /// changed by someone without the key.
    #[error("the sealed keyring in the store does not open under key id {0} (damaged or tampered with)")]
    Tampered(String),
    /// Not a sealed document gatehouse wrote.
    #[error("the sealed keyring in the store is malformed")]
    Malformed,
}

/// What [`Sealing::open`] found.
pub struct Opened {
    /// The keyring's JSON in the clear.
    pub text: Secret,
    /// True when a write would change how it is stored: sealed now but in
    /// the clear, or under the previous key.
    pub reseal: bool,
}

impl Sealing {
    /// True when a configured key seals writes.
    pub fn seals(&self) -> bool {
        self.current.is_some()
    }

    /// The id of the key that seals writes, if any.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(SealKey::id)
    }

    /// Reads a stored document: a sealed one is opened with the key it
    /// names, a clear one is passed on as it is.
    pub fn open(&self, stored: &Secret) -> Result<Opened, OpenError> {
        let text = stored.expose();
        if !text.trim_start().starts_with('{') || !text.contains("\"sealed\"") {
            return Ok(Opened {
                text: Secret::new(text.to_owned()),
                reseal: self.seals(),
            });
        }
        let sealed: Sealed = match serde_json::from_str(text) {
            Ok(s) => s,
            // a clear keyring that happens to contain the word
            Err(_) if !looks_sealed(text) => {
                return Ok(Opened {
                    text: Secret::new(text.to_owned()),
                    reseal: self.seals(),
                });
            }
            Err(_) => return Err(OpenError::Malformed),
        };
        if sealed.sealed != ALGORITHM {
            return Err(OpenError::Malformed);
        }
        let keys = [&self.current, &self.previous];
        let Some(key) = keys.iter().copied().flatten().find(|k| k.id == sealed.key_id) else {
            let configured: Vec<&str> = keys.iter().copied().flatten().map(SealKey::id).collect();
            return Err(if configured.is_empty() {
                OpenError::NoKey(sealed.key_id)
            } else {
                OpenError::WrongKey {
                    found: sealed.key_id,
                    configured: configured.join(", "),
                }
            });
        };
        let nonce: [u8; NONCE_LEN] = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(OpenError::Malformed)?;
        let mut data = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| OpenError::Malformed)?;
        let clear = key
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut data)
            .map_err(|_| OpenError::Tampered(sealed.key_id.clone()))?;
        let clear = String::from_utf8(clear.to_vec()).map_err(|_| OpenError::Malformed)?;
        data.fill(0);
        Ok(Opened {
            text: Secret::new(clear),
            reseal: self.current_id() != Some(sealed.key_id.as_str()),
        })
    }

    /// What to store for the keyring `text`: sealed under the configured
    /// key (a fresh random nonce each time), or `text` itself when none is
    /// configured.
    pub fn seal(&self, text: Secret) -> Result<Secret, &'static str> {
        let Some(key) = &self.current else {
            return Ok(text);
        };
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no random nonce")?;
        let mut data = text.expose().as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut data)
            .map_err(|_| "sealing failed")?;
        let sealed = Sealed {
            sealed: ALGORITHM.to_owned(),
            key_id: key.id.clone(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(&data),
        };
        serde_json::to_string(&sealed)
            .map(Secret::new)
            .map_err(|_| "sealing failed")
    }
}

/// True for a JSON object whose top level has a `sealed` member (a clear
/// keyring's top level has only `keys`).
fn looks_sealed(text: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .is_ok_and(|m| m.contains_key("sealed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealKey {
        SealKey::parse(&Secret::new(STANDARD.encode([byte; 32]))).expect("key")
    }

    fn sealing(current: Option<u8>, previous: Option<u8>) -> Sealing {
        Sealing {
            current: current.map(key),
            previous: previous.map(key),
        }
    }

    const RING: &str = r#"{"keys":[{"alg":"ES256","pkcs8":"c2VjcmV0","created":1}]}"#;

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([1u8; 16]),
            &STANDARD.encode([1u8; 33]),
        ] {
            assert_eq!(
                SealKey::parse(&Secret::new(bad.to_owned())).map(|_| ()),
                Err(SealKeyError::Format),
                "{bad:?}"
            );
        }
        let k = SealKey::parse(&Secret::new(format!(" {}\n", STANDARD.encode([7u8; 32])))).expect("trimmed");
        // the id names the key without revealing it, and differs per key
        assert_eq!(k.id(), key(7).id());
        assert_ne!(k.id(), key(8).id());
        let shown = format!("{k:?}");
        assert!(!shown.contains(&STANDARD.encode([7u8; 32])), "{shown}");
        assert!(shown.contains(k.id()), "{shown}");
    }

    #[test]
    fn only_a_top_level_sealed_member_makes_a_document_sealed() {
        let s = sealing(Some(1), None);
        // a clear keyring that merely contains the word
        let mentions = r#"{"keys":[],"note":"sealed"}"#;
        let opened = s.open(&Secret::new(mentions.to_owned())).expect("clear");
        assert_eq!(opened.text.expose(), mentions);
        assert!(opened.reseal);
        // a sealed document with members missing is damaged, not clear
        assert_eq!(
            s.open(&Secret::new(r#"{"sealed":"A256GCM","key_id":"x"}"#.to_owned()))
                .err(),
            Some(OpenError::Malformed)
        );
    }

    #[test]
    fn a_sealed_keyring_hides_the_keys_and_opens_with_its_key() {
        let s = sealing(Some(1), None);
        let stored = s.seal(Secret::new(RING.to_owned())).expect("seal");
        assert!(!stored.expose().contains("c2VjcmV0"), "{}", stored.expose());
        assert!(!stored.expose().contains("pkcs8"));
        let opened = s.open(&stored).expect("open");
        assert_eq!(opened.text.expose(), RING);
        assert!(!opened.reseal);
        // a fresh nonce every time
        assert_ne!(
            s.seal(Secret::new(RING.to_owned())).expect("seal").expose(),
            stored.expose()
        );
    }

    #[test]
    fn the_clear_and_the_previous_key_are_read_and_marked_for_resealing() {
        let clear = Secret::new(RING.to_owned());
        let opened = sealing(None, None).open(&clear).expect("clear");
        assert_eq!(opened.text.expose(), RING);
        assert!(!opened.reseal);
        assert!(sealing(Some(1), None).open(&clear).expect("clear").reseal);

        let old = sealing(Some(2), None).seal(clear).expect("seal");
        let opened = sealing(Some(1), Some(2)).open(&old).expect("previous key");
        assert_eq!(opened.text.expose(), RING);
        assert!(opened.reseal);
    }

    #[test]
    fn a_sealed_keyring_without_its_key_is_an_error() {
        let stored = sealing(Some(1), None)
            .seal(Secret::new(RING.to_owned()))
            .expect("seal");
        let id = key(1).id().to_owned();
        assert_eq!(
            sealing(None, None).open(&stored).err(),
            Some(OpenError::NoKey(id.clone()))
        );
        match sealing(Some(3), Some(4)).open(&stored).err() {
            Some(OpenError::WrongKey { found, configured }) => {
                assert_eq!(found, id);
                assert_eq!(configured, format!("{}, {}", key(3).id(), key(4).id()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_changed_ciphertext_or_a_swapped_key_id_is_refused() {
        let s = sealing(Some(1), Some(2));
        let stored = s.seal(Secret::new(RING.to_owned())).expect("seal");
        let mut doc: serde_json::Value = serde_json::from_str(stored.expose()).expect("json");
        // one bit of the ciphertext
        let mut data = STANDARD
            .decode(doc["ciphertext"].as_str().expect("ct"))
            .expect("b64");
        data[3] ^= 1;
        let mut flipped = doc.clone();
        flipped["ciphertext"] = STANDARD.encode(&data).into();
        assert_eq!(
            s.open(&Secret::new(flipped.to_string())).err(),
            Some(OpenError::Tampered(key(1).id().to_owned()))
        );
        // the other configured key's id: does not open either
        doc["key_id"] = key(2).id().into();
        assert_eq!(
            s.open(&Secret::new(doc.to_string())).err(),
            Some(OpenError::Tampered(key(2).id().to_owned()))
        );
        // another algorithm, a short nonce, extra members
        for (k, v) in [
            ("sealed", serde_json::json!("none")),
            ("nonce", serde_json::json!("AAAA")),
            ("extra", serde_json::json!(1)),
        ] {
            let mut d: serde_json::Value = serde_json::from_str(stored.expose()).expect("json");
            d[k] = v;
            assert_eq!(
                s.open(&Secret::new(d.to_string())).err(),
                Some(OpenError::Malformed),
                "{k}"
            );
        }
    }
}
