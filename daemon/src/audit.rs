//! The audit trail: one JSON line per decision — logins, `/v1/check` and
//! `/v1/tokens/verify` denials, admin actions (user add/delete, password
//! set, static-token create/revoke, reloads) — appended to
//! `<state_dir>/audit.log` (mode 0600; reopened on SIGHUP, for logrotate)
//! unless `[log] audit = "log"`, and written to the log under the `audit`
//! target. Outcomes are the API's stable codes (`login_denied`,
//! `invalid_token` …; `success` when allowed). Never a secret: events carry
//! usernames, outcomes, reasons, and map, verifier and route names only.
//!
//! Bounded, so a client hammering the socket cannot fill the disk:
//! - usernames are cut to [`LOG_MAX_CHARS`](crate::authn::username::LOG_MAX_CHARS)
//!   characters (control characters escaped);
//! - a refusal identical to one already written within [`FOLD_WINDOW`]
//!   (same peer, authenticator, username, outcome and reason) is counted,
//!   not written; one `login_repeated` (`token_check_repeated` …) line with the count follows when
//!   the window has passed (at the next event, or when the daemon stops);
//! - the file rotates by size: past [`MAX_FILE_BYTES`] it becomes
//!   `audit.log.1` (`.1` → `.2` …, [`KEEP_FILES`] kept).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::authn::username::for_log;

/// How long repeats of one refusal are folded into one summary line.
pub const FOLD_WINDOW: Duration = Duration::from_secs(60);
/// The most distinct refusals folded at once (beyond: written as they come).
const MAX_FOLDS: usize = 4096;
/// The size at which `audit.log` rotates.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`audit.log.1` … `audit.log.N`).
pub const KEEP_FILES: u32 = 3;

/// One event.
#[derive(Clone, Debug, Serialize)]
pub struct Event<'a> {
    /// RFC 3339 time.
    pub time: String,
    /// `login`, `token_check` (`/v1/check`), `token_verify`
    /// (`/v1/tokens/verify`), `user_add`, `user_delete`, `password_set`,
    /// `static_token_create`, `static_token_revoke`, `reload`.
    pub event: &'static str,
    /// The calling process's uid.
    pub peer_uid: u32,
    /// The calling process's pid.
    pub peer_pid: Option<i32>,
    /// The authenticator that decided (or was asked for).
    pub authenticator: Option<&'a str>,
    /// The verifier that decided (token events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verifier: Option<&'a str>,
    /// The route that matched (`/v1/check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a str>,
    /// The object of an admin action (a static token's id, a reload's
    /// trigger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The username as given, or the user acted on (cut when written, see
    /// the module docs).
    pub username: &'a str,
    /// `success`, or the API's stable error code: `invalid_credentials`,
    /// `login_denied`, `too_many_attempts`, `backend_unavailable`,
    /// `invalid_token`, `forbidden`, `not_found`, `conflict`,
    /// `invalid_config` ….
    pub outcome: &'static str,
    /// A stable reason code, when there is one.
    pub reason: Option<String>,
    /// Maps that granted, revoked or denied.
    pub maps: Vec<String>,
}

impl<'a> Event<'a> {
    /// An event of kind `event` from `peer`, now, with nothing else set.
    pub fn new(
        event: &'static str,
        peer: &crate::access::Peer,
        username: &'a str,
        outcome: &'static str,
    ) -> Self {
        Self {
            time: crate::state::rfc3339(std::time::SystemTime::now()),
            event,
            peer_uid: peer.uid,
            peer_pid: peer.pid,
            authenticator: None,
            verifier: None,
            route: None,
            target: None,
            username,
            outcome,
            reason: None,
            maps: Vec::new(),
        }
    }
}

/// What makes two refusals identical.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FoldKey {
    event: &'static str,
    peer_uid: u32,
    authenticator: Option<String>,
    username: String,
    outcome: &'static str,
    reason: Option<String>,
}

struct Fold {
    since: Instant,
    repeats: u64,
}

/// The summary of folded repeats.
#[derive(Serialize)]
struct Repeated<'a> {
    time: String,
    /// `login_repeated`, `token_check_repeated` …
    event: String,
    peer_uid: u32,
    authenticator: Option<&'a str>,
    username: &'a str,
    outcome: &'static str,
    reason: Option<&'a str>,
    /// Identical events not written on their own.
    count: u64,
    /// Over how many seconds (at most).
    seconds: u64,
}

struct Writer {
    file: Option<std::fs::File>,
    size: u64,
    folds: HashMap<FoldKey, Fold>,
    last_sweep: Option<Instant>,
}

/// The audit writer.
pub struct Audit {
    /// The file, or `None` with `[log] audit = "log"`.
    path: Option<PathBuf>,
    max_bytes: u64,
    keep: u32,
    inner: Mutex<Writer>,
}

impl Audit {
    /// Audit into `state_dir/audit.log` (opened on first use).
    pub fn new(state_dir: &Path) -> Self {
        Self::with_limits(state_dir, MAX_FILE_BYTES, KEEP_FILES)
    }

    /// As [`Audit::new`], rotating at `max_bytes` and keeping `keep` old files.
    pub fn with_limits(state_dir: &Path, max_bytes: u64, keep: u32) -> Self {
        Self {
            path: Some(state_dir.join("audit.log")),
            max_bytes,
            keep,
            inner: Mutex::new(Writer {
                file: None,
                size: 0,
                folds: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Audit into the log only (`[log] audit = "log"`).
    pub fn log_only() -> Self {
        let mut a = Self::with_limits(Path::new("/"), MAX_FILE_BYTES, KEEP_FILES);
        a.path = None;
        a
    }

    /// Closes the file; the next event opens it again (SIGHUP, after
    /// logrotate moved it away).
    pub fn reopen(&self) {
        if let Ok(mut w) = self.inner.lock() {
            w.file = None;
        }
    }

    /// Records an event.
    pub fn record(&self, event: &Event<'_>) {
        self.record_at(event, Instant::now());
    }

    fn record_at(&self, event: &Event<'_>, now: Instant) {
        let username = for_log(event.username);
        let Ok(mut w) = self.inner.lock() else {
            return;
        };
        self.sweep(&mut w, now, false);
        if event.outcome != "success" {
            let key = FoldKey {
                event: event.event,
                peer_uid: event.peer_uid,
                authenticator: event.authenticator.map(str::to_owned),
                username: username.clone().into_owned(),
                outcome: event.outcome,
                reason: event.reason.clone(),
            };
            if let Some(fold) = w.folds.get_mut(&key) {
                fold.repeats += 1;
                return;
            }
            if w.folds.len() < MAX_FOLDS {
                w.folds.insert(
                    key,
                    Fold {
                        since: now,
                        repeats: 0,
                    },
                );
            }
        }
        let shown = Event {
            username: &username,
            ..event.clone()
        };
        if let Ok(line) = serde_json::to_string(&shown) {
            self.write(&mut w, line);
        }
    }

    /// Writes the summaries of folds whose window has passed (all of them
    /// with `all`); at most once a second unless `all`.
    fn sweep(&self, w: &mut Writer, now: Instant, all: bool) {
        if !all
            && w.last_sweep
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        w.last_sweep = Some(now);
        let due: Vec<FoldKey> = w
            .folds
            .iter()
            .filter(|(_, f)| all || now.saturating_duration_since(f.since) >= FOLD_WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(fold) = w.folds.remove(&key) else {
                continue;
            };
            if fold.repeats == 0 {
                continue;
            }
            let summary = Repeated {
                time: crate::state::rfc3339(std::time::SystemTime::now()),
                event: format!("{}_repeated", key.event),
                peer_uid: key.peer_uid,
                authenticator: key.authenticator.as_deref(),
                username: &key.username,
                outcome: key.outcome,
                reason: key.reason.as_deref(),
                count: fold.repeats,
                seconds: now
                    .saturating_duration_since(fold.since)
                    .as_secs()
                    .min(FOLD_WINDOW.as_secs()),
            };
            if let Ok(line) = serde_json::to_string(&summary) {
                self.write(w, line);
            }
        }
    }

    fn write(&self, w: &mut Writer, mut line: String) {
        tracing::info!(target: "audit", "{line}");
        let Some(path) = &self.path else {
            return;
        };
        line.push('\n');
        if w.file.is_some() && w.size + line.len() as u64 > self.max_bytes {
            w.file = None;
            self.rotate();
        }
        if w.file.is_none() {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
            {
                Ok(f) => {
                    w.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                    w.file = Some(f);
                }
                Err(e) => {
                    tracing::error!("cannot open the audit log {}: {e}", path.display());
                    return;
                }
            }
        }
        if let Some(f) = w.file.as_mut() {
            match f.write_all(line.as_bytes()) {
                Ok(()) => w.size += line.len() as u64,
                Err(e) => {
                    tracing::error!("cannot write the audit log: {e}");
                    w.file = None;
                }
            }
        }
    }

    /// `audit.log.N-1` → `.N` … `audit.log` → `.1`; the oldest goes.
    fn rotate(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let numbered = |n: u32| {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.keep == 0 {
            let _ = std::fs::remove_file(path);
            return;
        }
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists()
                && let Err(e) = std::fs::rename(&from, numbered(n + 1))
            {
                tracing::error!("cannot rotate {}: {e}", from.display());
            }
        }
        if let Err(e) = std::fs::rename(path, numbered(1)) {
            tracing::error!("cannot rotate the audit log {}: {e}", path.display());
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        if let Ok(mut w) = self.inner.lock() {
            self.sweep(&mut w, Instant::now(), true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(username: &'a str, outcome: &'static str) -> Event<'a> {
        Event {
            time: "t".into(),
            event: "login",
            peer_uid: 7,
            peer_pid: None,
            authenticator: None,
            verifier: None,
            route: None,
            target: None,
            username,
            outcome,
            reason: Some("too_many_attempts".into()),
            maps: vec![],
        }
    }

    fn lines(dir: &Path, name: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    #[test]
    fn repeats_fold_into_one_summary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Audit::new(dir.path());
        let t0 = Instant::now();
        for i in 0..500 {
            a.record_at(&event("mallory", "locked"), t0 + Duration::from_millis(i));
        }
        a.record_at(&event("ann", "success"), t0 + Duration::from_secs(1));
        a.record_at(&event("ann", "success"), t0 + Duration::from_secs(1));
        let l = lines(dir.path(), "audit.log");
        assert_eq!(l.len(), 3, "{l:?}");
        // the window passes: the next event brings the summary
        a.record_at(&event("bob", "locked"), t0 + Duration::from_secs(61));
        let l = lines(dir.path(), "audit.log");
        assert_eq!(l.len(), 5, "{l:?}");
        let summary = &l[3];
        assert_eq!(summary["event"], "login_repeated");
        assert_eq!(summary["username"], "mallory");
        assert_eq!(summary["count"], 499);
        assert_eq!(l[4]["username"], "bob");
        // a new window writes the first again
        a.record_at(&event("mallory", "locked"), t0 + Duration::from_secs(62));
        assert_eq!(lines(dir.path(), "audit.log").len(), 6);
    }

    #[test]
    fn pending_summaries_are_written_at_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Audit::new(dir.path());
        for _ in 0..3 {
            a.record(&event("mallory", "invalid_credentials"));
        }
        drop(a);
        let l = lines(dir.path(), "audit.log");
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[1]["count"], 2);
    }

    #[test]
    fn usernames_are_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Audit::new(dir.path());
        let long = "x".repeat(1024);
        a.record(&event(&long, "success"));
        let l = lines(dir.path(), "audit.log");
        let shown = l[0]["username"].as_str().unwrap_or_default();
        assert!(shown.chars().count() <= 65 && shown.ends_with('…'), "{shown}");
    }

    #[test]
    fn the_file_rotates_by_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Audit::with_limits(dir.path(), 2000, 2);
        for i in 0..100 {
            a.record(&event(&format!("user{i}"), "success"));
        }
        for f in ["audit.log", "audit.log.1", "audit.log.2"] {
            let len = std::fs::metadata(dir.path().join(f))
                .map(|m| m.len())
                .unwrap_or(0);
            assert!(len > 0 && len <= 2000, "{f}: {len}");
        }
        assert!(!dir.path().join("audit.log.3").exists());
        let newest = lines(dir.path(), "audit.log");
        assert_eq!(newest.last().and_then(|v| v["username"].as_str()), Some("user99"));
    }
}
