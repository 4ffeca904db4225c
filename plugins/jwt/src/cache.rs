//! Verified tokens, keyed by a SHA-256 of the token, kept until they
//! expire. A hit skips parsing and the signature check; the caller still
//! checks the audience and unit primitive the request asks for.

use std::collections::HashMap;
use std::sync::Mutex;

use gatehouse_sdk::VerifiedToken;

/// The cache.
pub(crate) struct TokenCache {
    map: Mutex<HashMap<[u8; 32], VerifiedToken>>,
    capacity: usize,
}

/// The cache key of a token.
pub(crate) fn key(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// A cached token still valid at `now` (Unix seconds, leeway applied by
    /// the caller through `now`).
    pub(crate) fn get(&self, key: &[u8; 32], now: i64) -> Option<VerifiedToken> {
        if self.capacity == 0 {
            return None;
        }
        let mut map = self.map.lock().ok()?;
        let t = map.get(key)?;
        if t.expires_at
            .is_some_and(|e| i64::try_from(e).unwrap_or(i64::MAX) < now)
        {
            map.remove(key);
            return None;
        }
        Some(t.clone())
    }

    pub(crate) fn put(&self, key: [u8; 32], token: VerifiedToken, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= self.capacity {
            map.retain(|_, t| {
                t.expires_at
                    .is_some_and(|e| i64::try_from(e).unwrap_or(i64::MAX) >= now)
            });
            if map.len() >= self.capacity {
                // Still full: drop an arbitrary half rather than grow.
                let drop: Vec<[u8; 32]> = map.keys().take(map.len() / 2 + 1).copied().collect();
                for k in drop {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, token);
    }
}
