//! Lockout: failed logins counted per (authenticator, username) and per
//! peer uid within a window. It lives beside the generations, so a reload
//! does not reset it, and it is checked before any backend is asked, so a
//! locked account cannot be probed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LockoutSettings;

/// The most keys kept; beyond it, expired entries are dropped first and
/// then the oldest.
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User { authenticator: String, username: String },
    Peer(u32),
}

/// The failure counters.
#[derive(Default)]
pub struct Lockout {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

/// Why a login is locked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locked {
    /// Too many failures for this username.
    User(Duration),
    /// Too many failures from this peer.
    Peer(Duration),
}

impl Locked {
    /// Seconds until the next attempt may succeed (at least 1).
    pub fn retry_after(self) -> u64 {
        let d = match self {
            Self::User(d) | Self::Peer(d) => d,
        };
        d.as_secs().max(1) + u64::from(d.subsec_nanos() > 0)
    }
}

fn user_key(authenticator: Option<&str>, username: &str) -> Key {
    Key::User {
        authenticator: authenticator.unwrap_or("*").to_owned(),
        username: username.trim().to_lowercase(),
    }
}

impl Lockout {
    /// Fails when the username or the peer is over its limit.
    pub fn check(
        &self,
        s: &LockoutSettings,
        authenticator: Option<&str>,
        username: &str,
        peer_uid: u32,
        now: Instant,
    ) -> Result<(), Locked> {
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        let mut over = |key: Key, max: u32| -> Option<Duration> {
            let q = map.get_mut(&key)?;
            while q.front().is_some_and(|t| now.duration_since(*t) >= s.window) {
                q.pop_front();
            }
            if q.len() >= max as usize {
                q.front()
                    .map(|oldest| s.window.saturating_sub(now.duration_since(*oldest)))
            } else {
                None
            }
        };
        if let Some(d) = over(user_key(authenticator, username), s.max_failures) {
            return Err(Locked::User(d));
        }
        if let Some(d) = over(Key::Peer(peer_uid), s.max_failures_per_peer) {
            return Err(Locked::Peer(d));
        }
        Ok(())
    }

    /// Records a failed login.
    pub fn failure(
        &self,
        s: &LockoutSettings,
        authenticator: Option<&str>,
        username: &str,
        peer_uid: u32,
        now: Instant,
    ) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < s.window));
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        for key in [user_key(authenticator, username), Key::Peer(peer_uid)] {
            let q = map.entry(key).or_default();
            q.push_back(now);
            // never keep more than the largest limit needs
            let cap = s.max_failures.max(s.max_failures_per_peer) as usize;
            while q.len() > cap {
                q.pop_front();
            }
        }
    }

    /// A successful login clears the username's failures (the peer's stay:
    /// one good account must not reset a peer that is guessing others).
    pub fn success(&self, authenticator: Option<&str>, username: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&user_key(authenticator, username));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LockoutSettings {
        LockoutSettings {
            max_failures: 3,
            max_failures_per_peer: 5,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn locks_after_max_and_expires_with_the_window() {
        let l = Lockout::default();
        let s = settings();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.check(&s, None, "Ann", 1, t0).is_ok(), "attempt {i}");
            l.failure(&s, None, "ann", 1, t0);
        }
        let locked = l
            .check(&s, None, "ANN", 1, t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(locked, Locked::User(Duration::from_secs(50)));
        assert_eq!(locked.retry_after(), 50);
        assert!(
            l.check(&s, None, "bob", 2, t0).is_ok(),
            "other users and peers unaffected"
        );
        assert!(l.check(&s, None, "ann", 1, t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn success_resets_the_user_not_the_peer() {
        let l = Lockout::default();
        let s = settings();
        let t = Instant::now();
        for u in ["a", "b", "c", "d", "e"] {
            l.failure(&s, None, u, 7, t);
        }
        l.success(None, "a");
        assert!(matches!(l.check(&s, None, "zed", 7, t), Err(Locked::Peer(_))));
        assert!(l.check(&s, None, "zed", 8, t).is_ok());
    }
}
