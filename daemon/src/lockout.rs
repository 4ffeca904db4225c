//! Lockout: failed logins counted within a window, checked before any
//! backend is asked (a locked account cannot be probed). The daemon keeps
//! the counters in the store ([`SharedLockout`]), so neither a reload nor
//! a restart resets them and every host on one PostgreSQL store counts
//! into the same ones; [`Lockout`] is the same decision over counters in
//! memory.
//!
//! Three counters, so that one application's many users are not locked
//! out by one of them:
//! - per user identity: the username in its PRECIS form
//!   (`authn::username`), whichever way the login names the authenticator
//!   (none, or any name), password failures and challenge failures alike.
//!   `max_failures` of them lock that username (429).
//! - per (peer uid, `remote_addr`), when the application gives the end
//!   user's address: `max_failures_per_address` lock that address (429),
//!   like a per-IP limit in a web framework.
//! - per peer uid: past `max_failures_per_peer`, every login of that peer
//!   waits a delay that doubles with each further failure up to
//!   `max_delay`. It slows a guessing peer down; it never refuses a
//!   correct login of another user.
//!
//! Keys are digests (a 1 KiB username costs 16 bytes); at the key limit,
//! expired entries go first, then the oldest.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LockoutSettings;
use crate::store::{LockoutKey, Store, StoreError};

/// The most keys kept by default.
pub const MAX_KEYS: usize = 100_000;

/// The first delay past the peer limit; it doubles with every failure.
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// Failures kept per peer beyond its limit (enough for the delay to reach
/// any `max_delay`: 100 ms · 2^32 is far beyond it).
const PEER_EXTRA: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    User([u8; 16]),
    Address { peer: u32, addr: [u8; 16] },
    Peer(u32),
}

fn digest(kind: &[u8], text: &str) -> [u8; 16] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(kind);
    ctx.update(&[0]);
    ctx.update(text.as_bytes());
    let d = ctx.finish();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

/// One login attempt, as the lockout sees it.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// The username as given (mapped here the PRECIS way).
    pub username: &'a str,
    /// The calling process's uid.
    pub peer_uid: u32,
    /// The end user's address, when the application gave it.
    pub remote_addr: Option<&'a str>,
}

impl Attempt<'_> {
    fn user_key(&self) -> Key {
        user_key(self.username)
    }

    fn address_key(&self) -> Option<Key> {
        self.remote_addr
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| Key::Address {
                peer: self.peer_uid,
                addr: digest(b"addr", a),
            })
    }
}

fn user_key(username: &str) -> Key {
    Key::User(digest(
        b"user",
        &crate::authn::username::map_case_mapped(username),
    ))
}

/// The failure counters.
pub struct Lockout {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
    max_keys: usize,
}

/// One counter as `GET /v1/lockout` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// `user`, `address` or `peer`.
    pub kind: &'static str,
    /// The username, the address (with the peer uid that gave it), or the
    /// peer uid.
    pub name: String,
    /// The peer uid, for `address` and `peer` counters.
    pub peer_uid: Option<u32>,
    /// Failures within the window.
    pub failures: usize,
    /// Whether logins are refused now (users, addresses) or delayed (peers).
    pub locked: bool,
    /// Seconds until the oldest failure leaves the window.
    pub retry_after: u64,
}

impl Default for Lockout {
    fn default() -> Self {
        Self::with_max_keys(MAX_KEYS)
    }
}

/// Why a login is locked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locked {
    /// Too many failures for this username.
    User(Duration),
    /// Too many failures from this end-user address of this peer.
    Address(Duration),
}

impl Locked {
    /// Seconds until the next attempt may succeed (at least 1).
    pub fn retry_after(self) -> u64 {
        let d = match self {
            Self::User(d) | Self::Address(d) => d,
        };
        // whole seconds, rounded up: waiting that long always suffices
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// A stable name for logs and the audit trail.
    pub fn reason(self) -> &'static str {
        match self {
            Self::User(_) => "too_many_attempts",
            Self::Address(_) => "too_many_attempts_from_address",
        }
    }
}

/// Drops the failures of `q` older than the window.
fn expire(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        q.pop_front();
    }
}

/// The decision of [`Lockout::check`] over a set of counters.
fn decide(
    map: &mut HashMap<Key, VecDeque<Instant>>,
    s: &LockoutSettings,
    a: &Attempt<'_>,
    now: Instant,
) -> Result<Duration, Locked> {
    let mut over = |key: Key, max: u32| -> Option<Duration> {
        let q = map.get_mut(&key)?;
        expire(q, now, s.window);
        if q.len() >= max as usize {
            q.front()
                .map(|oldest| s.window.saturating_sub(now.saturating_duration_since(*oldest)))
        } else {
            None
        }
    };
    if let Some(d) = over(a.user_key(), s.max_failures) {
        return Err(Locked::User(d));
    }
    if let Some(key) = a.address_key()
        && let Some(d) = over(key, s.max_failures_per_address)
    {
        return Err(Locked::Address(d));
    }
    let Some(q) = map.get_mut(&Key::Peer(a.peer_uid)) else {
        return Ok(Duration::ZERO);
    };
    expire(q, now, s.window);
    let Some(excess) = q.len().checked_sub(s.max_failures_per_peer as usize) else {
        return Ok(Duration::ZERO);
    };
    let factor = 1u32
        .checked_shl(u32::try_from(excess).unwrap_or(u32::MAX))
        .unwrap_or(u32::MAX);
    Ok(FIRST_DELAY.saturating_mul(factor).min(s.max_delay))
}

impl Key {
    /// The key [`Key::bytes`] made, back.
    fn from_bytes(b: &[u8]) -> Option<Self> {
        let uid = |b: &[u8]| b.get(..4).and_then(|u| u.try_into().ok()).map(u32::from_be_bytes);
        match b.split_first()? {
            (b'u', d) => Some(Self::User(d.try_into().ok()?)),
            (b'a', rest) => Some(Self::Address {
                peer: uid(rest)?,
                addr: rest.get(4..)?.try_into().ok()?,
            }),
            (b'p', rest) if rest.len() == 4 => Some(Self::Peer(uid(rest)?)),
            _ => None,
        }
    }

    /// The key as the store keeps it (a kind byte, then the digest or ids).
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::User(d) => [&[b'u'][..], d].concat(),
            Self::Address { peer, addr } => [&[b'a'][..], &peer.to_be_bytes(), addr].concat(),
            Self::Peer(p) => [&[b'p'][..], &p.to_be_bytes()].concat(),
        }
    }

    /// The most failures kept for the key.
    fn cap(&self, s: &LockoutSettings) -> usize {
        match self {
            Self::User(_) => s.max_failures as usize,
            Self::Address { .. } => s.max_failures_per_address as usize,
            Self::Peer(_) => s.max_failures_per_peer as usize + PEER_EXTRA,
        }
    }
}

fn attempt_keys(a: &Attempt<'_>) -> Vec<Key> {
    [Some(a.user_key()), a.address_key(), Some(Key::Peer(a.peer_uid))]
        .into_iter()
        .flatten()
        .collect()
}

fn store_keys(keys: &[Key], s: &LockoutSettings, a: &Attempt<'_>) -> Vec<LockoutKey> {
    keys.iter()
        .map(|k| LockoutKey {
            key: k.bytes(),
            cap: u32::try_from(k.cap(s)).unwrap_or(u32::MAX),
            label: match k {
                Key::User(_) => crate::authn::username::for_log(a.username).into_owned(),
                Key::Address { .. } => {
                    crate::authn::username::for_log(a.remote_addr.unwrap_or_default().trim()).into_owned()
                }
                Key::Peer(uid) => uid.to_string(),
            },
        })
        .collect()
}

/// Wall-clock milliseconds (the store's counters are shared between
/// hosts, whose monotonic clocks have nothing in common).
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn window_ms(s: &LockoutSettings) -> i64 {
    i64::try_from(s.window.as_millis()).unwrap_or(i64::MAX)
}

/// The counters kept in the store, shared by every daemon on it: the same
/// decision as [`Lockout::check`] over the failures the store holds, so a
/// lockout counts across hosts.
pub struct SharedLockout<'a> {
    /// The store holding the counters.
    pub store: &'a dyn Store,
}

impl SharedLockout<'_> {
    /// As [`Lockout::check`], over the store's counters.
    pub async fn check(
        &self,
        s: &LockoutSettings,
        a: &Attempt<'_>,
    ) -> Result<Result<Duration, Locked>, StoreError> {
        let keys = attempt_keys(a);
        let now_ms = wall_ms();
        let rows = self
            .store
            .lockout_failures(&store_keys(&keys, s, a), now_ms.saturating_sub(window_ms(s)))
            .await?;
        let now = Instant::now();
        let mut map = HashMap::new();
        for (key, times) in keys.into_iter().zip(rows) {
            let q: VecDeque<Instant> = times
                .into_iter()
                .map(|t| {
                    let ago = Duration::from_millis(u64::try_from(now_ms.saturating_sub(t)).unwrap_or(0));
                    now.checked_sub(ago).unwrap_or(now)
                })
                .collect();
            if !q.is_empty() {
                map.insert(key, q);
            }
        }
        Ok(decide(&mut map, s, a, now))
    }

    /// As [`Lockout::failure`], in the store.
    pub async fn failure(&self, s: &LockoutSettings, a: &Attempt<'_>) -> Result<(), StoreError> {
        let now_ms = wall_ms();
        self.store
            .lockout_record(
                &store_keys(&attempt_keys(a), s, a),
                now_ms,
                now_ms.saturating_sub(window_ms(s)),
            )
            .await
    }

    /// As [`Lockout::success`], in the store.
    pub async fn success(&self, username: &str) -> Result<(), StoreError> {
        self.store.lockout_clear(&Self::counter_key(username)).await
    }

    /// The store key of a username's counter: what [`Self::success`]
    /// clears, for a login that resets it inside its own transaction
    /// ([`crate::store::Transaction::lockout_clear`]).
    pub fn counter_key(username: &str) -> Vec<u8> {
        user_key(username).bytes()
    }

    /// Every live counter in the store, users first (`GET /v1/lockout`).
    pub async fn list(&self, s: &LockoutSettings) -> Result<Vec<Counter>, StoreError> {
        let now_ms = wall_ms();
        let rows = self
            .store
            .lockout_list(now_ms.saturating_sub(window_ms(s)))
            .await?;
        let mut out: Vec<Counter> = rows
            .into_iter()
            .filter_map(|row| {
                let key = Key::from_bytes(&row.key)?;
                let oldest = *row.times.first()?;
                let age = Duration::from_millis(u64::try_from(now_ms.saturating_sub(oldest)).unwrap_or(0));
                Some(counter(&key, row.label, row.times.len(), age, s))
            })
            .collect();
        sort_counters(&mut out);
        Ok(out)
    }

    /// Clears a username's failures (`DELETE /v1/lockout/{user}`): true
    /// when there were any.
    pub async fn reset_user(&self, username: &str) -> Result<bool, StoreError> {
        let key = user_key(username).bytes();
        let had = self
            .store
            .lockout_failures(
                &[LockoutKey {
                    key: key.clone(),
                    cap: u32::MAX,
                    label: String::new(),
                }],
                0,
            )
            .await?
            .first()
            .is_some_and(|t| !t.is_empty());
        self.store.lockout_clear(&key).await?;
        Ok(had)
    }
}

/// One counter as listed: `failures` within the window, the oldest of
/// them `age` ago.
fn counter(key: &Key, label: String, failures: usize, age: Duration, s: &LockoutSettings) -> Counter {
    let retry_after = s.window.saturating_sub(age).as_secs().max(1);
    let (kind, name, peer_uid, max) = match key {
        Key::User(_) => ("user", label, None, s.max_failures as usize),
        Key::Address { peer, .. } => ("address", label, Some(*peer), s.max_failures_per_address as usize),
        Key::Peer(uid) => (
            "peer",
            uid.to_string(),
            Some(*uid),
            s.max_failures_per_peer as usize,
        ),
    };
    Counter {
        kind,
        name,
        peer_uid,
        failures,
        locked: failures >= max,
        retry_after,
    }
}

/// Users first, then by kind and name.
fn sort_counters(out: &mut [Counter]) {
    out.sort_by(|a, b| (a.kind != "user", a.kind, &a.name).cmp(&(b.kind != "user", b.kind, &b.name)));
}

impl Lockout {
    /// Counters that keep at most `max_keys` keys.
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(3),
        }
    }

    /// Fails when the username or the end user's address is over its
    /// limit; otherwise the delay the peer must wait first (zero unless
    /// the peer is over `max_failures_per_peer`).
    pub fn check(&self, s: &LockoutSettings, a: &Attempt<'_>, now: Instant) -> Result<Duration, Locked> {
        let Ok(mut map) = self.failures.lock() else {
            return Ok(Duration::ZERO);
        };
        decide(&mut map, s, a, now)
    }

    /// Records a failed login (a wrong password or a wrong challenge
    /// answer) under every counter of the attempt.
    pub fn failure(&self, s: &LockoutSettings, a: &Attempt<'_>, now: Instant) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        for key in attempt_keys(a) {
            if !map.contains_key(&key) && map.len() >= self.max_keys {
                self.evict(&mut map, s, now);
            }
            let cap = key.cap(s);
            let q = map.entry(key).or_default();
            expire(q, now, s.window);
            q.push_back(now);
            while q.len() > cap {
                q.pop_front();
            }
        }
    }

    /// Makes room: expired entries first, then the oldest eighth (by last
    /// failure). Never every counter at once.
    fn evict(&self, map: &mut HashMap<Key, VecDeque<Instant>>, s: &LockoutSettings, now: Instant) {
        map.retain(|_, q| {
            q.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < s.window)
        });
        if map.len() < self.max_keys {
            return;
        }
        let mut by_age: Vec<(Instant, Key)> = map
            .iter()
            .filter_map(|(k, q)| q.back().map(|t| (*t, *k)))
            .collect();
        let n = (self.max_keys / 8).max(1).min(by_age.len());
        if n < by_age.len() {
            by_age.select_nth_unstable_by_key(n, |(t, _)| *t);
        }
        for (_, key) in by_age.iter().take(n) {
            map.remove(key);
        }
        tracing::warn!(evicted = n, "lockout: too many counters; the oldest were dropped");
    }

    /// A successful login clears the username's failures (the peer's and
    /// the address's stay: one good account must not reset a client that
    /// is guessing others).
    pub fn success(&self, username: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&user_key(username));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let secs = |d: Duration| Locked::User(d).retry_after();
        assert_eq!(secs(Duration::ZERO), 1);
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_millis(999)), 1);
        assert_eq!(secs(Duration::from_millis(1_001)), 2);
        assert_eq!(secs(Duration::from_secs(1)), 1);
        assert_eq!(secs(Duration::from_millis(49_200)), 50);
        assert_eq!(Locked::Address(Duration::from_millis(300)).retry_after(), 1);
    }

    fn settings() -> LockoutSettings {
        LockoutSettings {
            max_failures: 3,
            max_failures_per_peer: 5,
            max_failures_per_address: 4,
            max_delay: Duration::from_secs(2),
            window: Duration::from_secs(60),
        }
    }

    fn at(username: &str, peer_uid: u32) -> Attempt<'_> {
        Attempt {
            username,
            peer_uid,
            remote_addr: None,
        }
    }

    fn from<'a>(username: &'a str, addr: &'a str) -> Attempt<'a> {
        Attempt {
            username,
            peer_uid: 1,
            remote_addr: Some(addr),
        }
    }

    #[test]
    fn locks_after_max_and_expires_with_the_window() {
        let l = Lockout::default();
        let s = settings();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.check(&s, &at("Ann", 1), t0).is_ok(), "attempt {i}");
            l.failure(&s, &at("ann", 1), t0);
        }
        let locked = l
            .check(&s, &at("ＡＮＮ", 1), t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(locked, Locked::User(Duration::from_secs(50)));
        assert_eq!(locked.retry_after(), 50);
        assert!(
            l.check(&s, &at("bob", 2), t0).is_ok(),
            "other users and peers unaffected"
        );
        assert!(l.check(&s, &at("ann", 1), t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn a_guessing_peer_is_slowed_never_locked() {
        let l = Lockout::default();
        let s = settings();
        let t = Instant::now();
        for (i, u) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            assert_eq!(l.check(&s, &at("zed", 7), t), Ok(Duration::ZERO), "failure {i}");
            l.failure(&s, &at(u, 7), t);
        }
        assert_eq!(l.check(&s, &at("zed", 7), t), Ok(Duration::from_millis(100)));
        l.failure(&s, &at("f", 7), t);
        assert_eq!(l.check(&s, &at("zed", 7), t), Ok(Duration::from_millis(200)));
        for u in ["g", "h", "i", "j", "k", "l"] {
            l.failure(&s, &at(u, 7), t);
        }
        assert_eq!(
            l.check(&s, &at("zed", 7), t),
            Ok(Duration::from_secs(2)),
            "capped at max_delay"
        );
        assert_eq!(l.check(&s, &at("zed", 8), t), Ok(Duration::ZERO), "other peers");
        l.success("a");
        assert_eq!(
            l.check(&s, &at("zed", 7), t),
            Ok(Duration::from_secs(2)),
            "a success does not reset the peer"
        );
    }

    #[test]
    fn addresses_lock_alone() {
        let l = Lockout::default();
        let s = settings();
        let t = Instant::now();
        for u in ["a", "b", "c", "d"] {
            l.failure(&s, &from(u, "192.0.2.1"), t);
        }
        assert!(matches!(
            l.check(&s, &from("alice", "192.0.2.1"), t),
            Err(Locked::Address(_))
        ));
        assert!(l.check(&s, &from("alice", "192.0.2.2"), t).is_ok());
        assert!(
            l.check(&s, &at("alice", 1), t).is_ok(),
            "no address: not this counter"
        );
    }

    #[test]
    fn the_key_limit_evicts_the_oldest_never_all() {
        let l = Lockout::with_max_keys(16);
        let s = LockoutSettings {
            max_failures: 1,
            max_failures_per_peer: 10_000,
            ..settings()
        };
        let t0 = Instant::now();
        for i in 0..14 {
            l.failure(&s, &at(&format!("junk{i}"), 1), t0 + Duration::from_millis(i));
        }
        for i in 0..40 {
            let t = t0 + Duration::from_secs(2) + Duration::from_millis(i);
            l.failure(&s, &at(&format!("more{i}"), 1), t);
            assert!(l.failures.lock().map(|m| m.len()).unwrap_or(0) <= 16, "bounded");
        }
        let t = t0 + Duration::from_secs(3);
        assert!(
            l.check(&s, &at("more39", 1), t).is_err(),
            "recent counters survive eviction"
        );
        assert!(l.check(&s, &at("junk0", 1), t).is_ok(), "the oldest went");
    }

    /// The number of failures counted for `username` (its user key).
    fn counted(l: &Lockout, username: &str) -> usize {
        let key = at(username, 1).user_key();
        l.failures
            .lock()
            .map_or(0, |m| m.get(&key).map_or(0, VecDeque::len))
    }

    #[test]
    fn eviction_drops_expired_counters_before_any_live_one() {
        let l = Lockout::with_max_keys(16);
        let s = LockoutSettings {
            max_failures_per_peer: 10_000,
            ..settings()
        };
        let t0 = Instant::now();
        // 7 counters that will have expired (one exactly a window old), 8
        // live ones (+ the peer's key)
        let later = t0 + s.window + Duration::from_secs(1);
        for i in 0..6 {
            l.failure(&s, &at(&format!("old{i}"), 1), t0);
        }
        l.failure(&s, &at("old6", 1), later - s.window);
        for i in 0..8 {
            l.failure(&s, &at(&format!("live{i}"), 1), later);
        }
        // a failure of a counter that exists evicts nothing
        l.failure(&s, &at("live0", 1), later);
        assert_eq!(counted(&l, "old0"), 1, "no room was needed");
        // a new key at the limit: the expired go, every live one stays
        l.failure(&s, &at("newcomer", 1), later);
        for i in 0..7 {
            assert_eq!(counted(&l, &format!("old{i}")), 0, "expired old{i} dropped");
        }
        assert_eq!(counted(&l, "live0"), 2);
        for i in 1..8 {
            assert_eq!(counted(&l, &format!("live{i}")), 1, "live{i} kept");
        }
        assert_eq!(counted(&l, "newcomer"), 1);
    }

    #[test]
    fn eviction_of_live_counters_takes_the_oldest_eighth_only() {
        let l = Lockout::with_max_keys(16);
        let s = LockoutSettings {
            max_failures_per_peer: 10_000,
            ..settings()
        };
        let t0 = Instant::now();
        for i in 0..15u64 {
            l.failure(&s, &at(&format!("u{i}"), 1), t0 + Duration::from_millis(i));
        }
        l.failure(&s, &at("newcomer", 1), t0 + Duration::from_millis(100));
        // 16 keys (15 users + the peer) were live: 2 (an eighth) went, the oldest
        assert_eq!(counted(&l, "u0"), 0);
        assert_eq!(counted(&l, "u1"), 0);
        for i in 2..15 {
            assert_eq!(counted(&l, &format!("u{i}")), 1, "u{i} kept");
        }
        assert_eq!(counted(&l, "newcomer"), 1);
    }

    #[test]
    fn the_reasons_are_stable_names() {
        assert_eq!(Locked::User(Duration::ZERO).reason(), "too_many_attempts");
        assert_eq!(
            Locked::Address(Duration::ZERO).reason(),
            "too_many_attempts_from_address"
        );
    }

    #[test]
    fn success_clears_the_user_but_not_the_guessing_address() {
        let l = Lockout::default();
        let s = settings();
        let t0 = Instant::now();
        for _ in 0..2 {
            l.failure(&s, &from("ann", "10.0.0.9"), t0);
        }
        assert_eq!(counted(&l, "ann"), 2);
        l.success("ANN");
        assert_eq!(counted(&l, "ann"), 0, "a good login clears the user's counter");
        // the address keeps its two failures: two more lock it
        for _ in 0..2 {
            l.failure(&s, &from("bob", "10.0.0.9"), t0);
        }
        assert!(matches!(
            l.check(&s, &from("carl", "10.0.0.9"), t0),
            Err(Locked::Address(_))
        ));
    }
}
