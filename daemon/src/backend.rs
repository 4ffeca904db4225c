//! Each instance's backend state as its calls found it (`gatehouse
//! status`): online when its last call reached the backend, offline since
//! the first of a run of `Unavailable` answers, with the last error.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_sdk::PluginError;

/// What a run of calls said about one backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Since when every call found it unavailable.
    pub offline_since: Option<SystemTime>,
    /// When a call last reached it.
    pub last_ok: Option<SystemTime>,
    /// The last backend error (values redacted) and its time.
    pub last_error: Option<(SystemTime, String)>,
}

impl Observed {
    /// `online`, `offline` or `unknown` (never called).
    pub fn state(&self) -> &'static str {
        if self.offline_since.is_some() {
            "offline"
        } else if self.last_ok.is_some() {
            "online"
        } else {
            "unknown"
        }
    }
}

/// The backend state of one instance; kept across reloads that reuse it.
/// The hot path (a call that reached the backend) touches two atomics only.
#[derive(Debug, Default)]
pub struct BackendState {
    /// Unix seconds of the last call that reached the backend (0: none).
    last_ok: AtomicU64,
    /// Unix seconds since which it is offline (0: not offline).
    offline_since: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs().max(1))
}

fn time(secs: u64) -> Option<SystemTime> {
    (secs != 0).then(|| UNIX_EPOCH + Duration::from_secs(secs))
}

impl BackendState {
    /// Records one call's outcome. Answers that come from the backend
    /// (success, wrong password, denied, invalid token, bad request) mean
    /// it is online; `Unavailable` means offline; a plugin bug (`Internal`,
    /// `Misconfigured`) says nothing about the backend but is kept as the
    /// last error.
    pub fn observe<T>(&self, result: &Result<T, PluginError>) {
        let now = SystemTime::now();
        match result {
            Err(PluginError::Unavailable(m)) => {
                let _ =
                    self.offline_since
                        .compare_exchange(0, unix(now), Ordering::Relaxed, Ordering::Relaxed);
                self.set_error(now, gatehouse_sdk::redact_input_values(m));
            }
            Err(e @ (PluginError::Internal(_) | PluginError::Misconfigured(_))) => {
                self.set_error(now, gatehouse_sdk::redact_input_values(&e.to_string()));
            }
            _ => {
                self.last_ok.store(unix(now), Ordering::Relaxed);
                if self.offline_since.load(Ordering::Relaxed) != 0 {
                    self.offline_since.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    fn set_error(&self, now: SystemTime, message: String) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some((now, message));
        }
    }

    /// A copy of the state.
    pub fn get(&self) -> Observed {
        Observed {
            offline_since: time(self.offline_since.load(Ordering::Relaxed)),
            last_ok: time(self.last_ok.load(Ordering::Relaxed)),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_since_the_first_unavailable_answer_until_one_gets_through() {
        let b = BackendState::default();
        assert_eq!(b.get().state(), "unknown");
        b.observe::<()>(&Err(PluginError::InvalidCredentials));
        assert_eq!(b.get().state(), "online");
        b.observe::<()>(&Err(PluginError::Unavailable("ldap://h:389 refused".into())));
        let first = b.get();
        assert_eq!(first.state(), "offline");
        b.observe::<()>(&Err(PluginError::Unavailable("again".into())));
        let second = b.get();
        assert_eq!(
            second.offline_since, first.offline_since,
            "since the first failure"
        );
        assert_eq!(second.last_error.map(|(_, m)| m), Some("again".to_owned()));
        b.observe(&Ok(()));
        let back = b.get();
        assert_eq!(back.state(), "online");
        assert!(back.last_error.is_some(), "the last error stays visible");
        b.observe::<()>(&Err(PluginError::Internal("bug".into())));
        assert_eq!(b.get().state(), "online", "a plugin bug is not an outage");
    }
}
