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

#[cfg(test)]
mod tests {
    use super::*;

    fn token(exp: u64) -> VerifiedToken {
        let mut t = VerifiedToken::new("iss", "sub");
        t.expires_at = Some(exp);
        t
    }

    #[test]
    fn expired_tokens_are_not_served_and_a_full_cache_stays_bounded() {
        let c = TokenCache::new(4);
        c.put(key("a"), token(100), 0);
        assert!(c.get(&key("a"), 100).is_some());
        assert!(c.get(&key("a"), 101).is_none(), "expired");
        assert!(
            c.get(&key("a"), 0).is_none(),
            "an expired entry is dropped when seen"
        );
        // full of live tokens: inserting drops some, never grows past capacity
        for i in 0..20 {
            c.put(key(&format!("t{i}")), token(1_000), 10);
            assert!(c.map.lock().unwrap().len() <= 4);
            assert!(c.get(&key(&format!("t{i}")), 10).is_some(), "the newest is kept");
        }
        // expired entries go first when it is full
        let c = TokenCache::new(3);
        c.put(key("old1"), token(5), 0);
        c.put(key("old2"), token(5), 0);
        c.put(key("live"), token(1_000), 0);
        c.put(key("new"), token(1_000), 10);
        assert!(c.get(&key("live"), 10).is_some());
        assert!(c.get(&key("new"), 10).is_some());
        // no cache at all
        let off = TokenCache::new(0);
        off.put(key("x"), token(1_000), 0);
        assert!(off.get(&key("x"), 0).is_none());
    }

    #[test]
    fn a_cache_full_of_live_tokens_drops_just_over_half() {
        let len = |c: &TokenCache| c.map.lock().unwrap().len();
        let c = TokenCache::new(10);
        for i in 0..10 {
            c.put(key(&format!("t{i}")), token(1_000), 0);
        }
        assert_eq!(len(&c), 10);
        c.put(key("new"), token(1_000), 0);
        // 10 / 2 + 1 dropped, then the new one added: room for the next few
        // without another sweep, and not the whole cache thrown away
        assert_eq!(len(&c), 5);
        assert!(c.get(&key("new"), 0).is_some());
        // the smallest caches stay bounded too
        for cap in [1, 2] {
            let c = TokenCache::new(cap);
            for i in 0..5 {
                c.put(key(&format!("t{i}")), token(1_000), 0);
                assert!(len(&c) <= cap, "capacity {cap}");
                assert!(c.get(&key(&format!("t{i}")), 0).is_some());
            }
        }
    }
}
