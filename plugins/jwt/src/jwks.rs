//! Keys per issuer, from OIDC discovery: `GET <issuer>/.well-known/
//! openid-configuration`, then its `jwks_uri`. A key set stays tied to the
//! issuer that published it. A failed or empty fetch never replaces a good
//! set; fetches back off after failures; an unknown `kid` triggers at most
//! one refetch per interval; the last good set can be kept on disk so a
//! restart while the issuer is down still verifies.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A usable public key.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    /// The JWK's own `alg`, when it has one.
    pub(crate) alg: Option<Algorithm>,
    /// What algorithms the key type allows.
    pub(crate) accepts: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl Key {
    pub(crate) fn allows(&self, alg: Algorithm) -> bool {
        self.accepts.contains(&alg) && self.alg.is_none_or(|a| a == alg)
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

/// Turns a JWKS into usable keys: signature keys of asymmetric types only
/// (symmetric `oct` keys are never taken from a JWKS), each bound to the
/// algorithms its type and curve allow.
pub(crate) fn keys_of(set: &JwkSet) -> Vec<Key> {
    let mut out = Vec::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let accepts: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
            _ => continue,
        };
        let alg = match &jwk.common.key_algorithm {
            None => None,
            Some(a) => match key_alg(a) {
                Some(a) => Some(a),
                None => continue,
            },
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            out.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                accepts,
                key,
            });
        }
    }
    out
}

struct State {
    keys: Arc<Vec<Key>>,
    fetched: Option<Instant>,
    last_attempt: Option<Instant>,
    failures: u32,
    last_unknown_kid_fetch: Option<Instant>,
    last_error: Option<String>,
}

/// One configured issuer.
pub(crate) struct Issuer {
    pub(crate) url: String,
    client: reqwest::Client,
    ttl: Duration,
    refetch_interval: Duration,
    persist: Option<PathBuf>,
    state: Mutex<State>,
    fetching: tokio::sync::Mutex<()>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Issuer {
    pub(crate) fn new(
        url: String,
        client: reqwest::Client,
        ttl: Duration,
        refetch_interval: Duration,
        persist: Option<PathBuf>,
    ) -> Self {
        // Start from the last good set on disk, if any.
        let keys = persist
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<JwkSet>(&b).ok())
            .map(|s| keys_of(&s))
            .unwrap_or_default();
        Self {
            url,
            client,
            ttl,
            refetch_interval,
            persist,
            state: Mutex::new(State {
                keys: Arc::new(keys),
                fetched: None,
                last_attempt: None,
                failures: 0,
                last_unknown_kid_fetch: None,
                last_error: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current keys (possibly empty).
    pub(crate) fn keys(&self) -> Arc<Vec<Key>> {
        Arc::clone(&self.lock().keys)
    }

    /// Why the last fetch failed, if it did.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    fn backoff(failures: u32) -> Duration {
        Duration::from_secs(1u64 << failures.min(8)).min(MAX_BACKOFF)
    }

    /// True when a background refresh is due: no keys yet, or most of the
    /// TTL has passed; never sooner than the failure backoff allows.
    pub(crate) fn due(&self, now: Instant) -> bool {
        let s = self.lock();
        if let Some(at) = s.last_attempt
            && s.failures > 0
            && now.duration_since(at) < Self::backoff(s.failures)
        {
            return false;
        }
        match s.fetched {
            None => true,
            Some(t) => now.duration_since(t) >= self.ttl.mul_f32(0.8),
        }
    }

    /// Fetches discovery and the JWKS; keeps the old set on any failure.
    pub(crate) async fn refresh(&self) -> Result<(), String> {
        let _one = self.fetching.lock().await;
        let started = Instant::now();
        self.lock().last_attempt = Some(started);
        let result = self.fetch().await;
        let mut s = self.lock();
        match result {
            Ok((keys, raw)) => {
                s.keys = Arc::new(keys);
                s.fetched = Some(started);
                s.failures = 0;
                s.last_error = None;
                drop(s);
                if let Some(p) = &self.persist {
                    let tmp = p.with_extension("tmp");
                    if std::fs::write(&tmp, &raw)
                        .and_then(|()| std::fs::rename(&tmp, p))
                        .is_err()
                    {
                        let _ = std::fs::remove_file(&tmp);
                    }
                }
                Ok(())
            }
            Err(e) => {
                s.failures = s.failures.saturating_add(1);
                s.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<(Vec<Key>, Vec<u8>), String> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            self.url.trim_end_matches('/')
        );
        let doc: serde_json::Value = self
            .client
            .get(&discovery)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("discovery {discovery}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("discovery {discovery}: {e}"))?;
        if doc
            .get("issuer")
            .and_then(|v| v.as_str())
            .map(|i| i.trim_end_matches('/'))
            != Some(self.url.trim_end_matches('/'))
        {
            return Err(format!(
                "discovery {discovery}: the document names another issuer"
            ));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("discovery {discovery}: no jwks_uri"))?;
        let raw = self
            .client
            .get(jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("JWKS {jwks_uri}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("JWKS {jwks_uri}: {e}"))?;
        if raw.len() > 1024 * 1024 {
            return Err(format!("JWKS {jwks_uri}: larger than 1 MiB"));
        }
        let set: JwkSet = serde_json::from_slice(&raw).map_err(|e| format!("JWKS {jwks_uri}: {e}"))?;
        let keys = keys_of(&set);
        if keys.is_empty() {
            return Err(format!("JWKS {jwks_uri}: no usable signature key"));
        }
        Ok((keys, raw.to_vec()))
    }

    /// An unknown `kid` may mean the issuer rotated its keys: refetch, at
    /// most once per interval. True when a fetch happened and succeeded.
    pub(crate) async fn refetch_for_unknown_kid(&self) -> bool {
        {
            let mut s = self.lock();
            let now = Instant::now();
            if s.last_unknown_kid_fetch
                .is_some_and(|t| now.duration_since(t) < self.refetch_interval)
            {
                return false;
            }
            s.last_unknown_kid_fetch = Some(now);
        }
        self.refresh().await.is_ok()
    }

    /// When there are no keys at all (first use, issuer down at start),
    /// try a fetch now, within the backoff.
    /// Returns the keys (possibly still none).
    pub(crate) async fn ensure_keys(&self) -> Arc<Vec<Key>> {
        let keys = self.keys();
        if keys.is_empty() && self.due(Instant::now()) {
            let _ = self.refresh().await;
            return self.keys();
        }
        keys
    }
}

/// Seconds since the epoch, for claims.
pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
