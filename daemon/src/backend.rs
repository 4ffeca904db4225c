//! Each instance's backend state as its calls found it (`gatehouse
//! status`): online when its last call reached the backend, offline since
//! the first of a run of `Unavailable` answers, with the last error.

use std::sync::Mutex;
use std::time::SystemTime;

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
#[derive(Debug, Default)]
pub struct BackendState(Mutex<Observed>);

impl BackendState {
    /// Records one call's outcome. Answers that come from the backend
    /// (success, wrong password, denied, invalid token, bad request) mean
    /// it is online; `Unavailable` means offline; a plugin bug (`Internal`,
    /// `Misconfigured`) says nothing about the backend but is kept as the
    /// last error.
    pub fn observe<T>(&self, result: &Result<T, PluginError>) {
        let now = SystemTime::now();
        let Ok(mut o) = self.0.lock() else {
            return;
        };
        match result {
            Err(PluginError::Unavailable(m)) => {
                o.offline_since.get_or_insert(now);
                o.last_error = Some((now, gatehouse_sdk::redact_input_values(m)));
            }
            Err(e @ (PluginError::Internal(_) | PluginError::Misconfigured(_))) => {
                o.last_error = Some((now, gatehouse_sdk::redact_input_values(&e.to_string())));
            }
            _ => {
                o.offline_since = None;
                o.last_ok = Some(now);
            }
        }
    }

    /// A copy of the state.
    pub fn get(&self) -> Observed {
        self.0.lock().map(|o| o.clone()).unwrap_or_default()
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
