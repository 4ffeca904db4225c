//! Logins waiting for the answer to a challenge (RADIUS Access-Challenge,
//! TACACS+ GETDATA, one-time codes). The plugin's state stays in the
//! daemon's memory, bound to a random, single-use login id, the peer uid
//! that started the login, and a deadline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// How long a challenge may be answered.
pub const TTL: Duration = Duration::from_secs(300);
/// The most pending logins kept.
const MAX: usize = 10_000;

/// A login in progress.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The authenticator that asked.
    pub authenticator: String,
    /// The username as given.
    pub username: String,
    /// The peer uid that started the login.
    pub peer_uid: u32,
    /// The plugin's state.
    pub state: serde_json::Value,
    expires: Instant,
}

/// The pending logins.
#[derive(Default)]
pub struct Challenges {
    map: Mutex<HashMap<String, Pending>>,
}

impl Challenges {
    /// Stores a pending login; returns its id.
    pub fn put(
        &self,
        authenticator: &str,
        username: &str,
        peer_uid: u32,
        state: serde_json::Value,
    ) -> Option<String> {
        let mut raw = [0u8; 24];
        aws_lc_rs::rand::fill(&mut raw).ok()?;
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut map = self.map.lock().ok()?;
        let now = Instant::now();
        if map.len() >= MAX {
            map.retain(|_, p| p.expires > now);
            if map.len() >= MAX {
                return None;
            }
        }
        map.insert(
            id.clone(),
            Pending {
                authenticator: authenticator.to_owned(),
                username: username.to_owned(),
                peer_uid,
                state,
                expires: now + TTL,
            },
        );
        Some(id)
    }

    /// Takes a pending login (single use). Unknown, expired, or started by
    /// another peer: `None` (and an attempt by another peer does not
    /// consume it).
    pub fn take(&self, id: &str, peer_uid: u32) -> Option<Pending> {
        let mut map = self.map.lock().ok()?;
        match map.get(id) {
            Some(p) if p.peer_uid != peer_uid => None,
            Some(_) => map.remove(id).filter(|p| p.expires > Instant::now()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_and_bound_to_the_peer() {
        let c = Challenges::default();
        let id = c.put("R", "ann", 7, serde_json::json!({"s": 1})).unwrap();
        assert!(c.take(&id, 8).is_none(), "another peer");
        let p = c.take(&id, 7).unwrap();
        assert_eq!(p.state["s"], 1);
        assert!(c.take(&id, 7).is_none(), "single use");
        assert!(c.take("nope", 7).is_none());
    }
}
