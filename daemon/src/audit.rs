//! The audit trail: one JSON line per login decision, appended to
//! `<state_dir>/audit.log` (mode 0600) and written to the log under the
//! `audit` target. Never a secret: events carry usernames, outcomes and map
//! names only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// One event.
#[derive(Clone, Debug, Serialize)]
pub struct Event<'a> {
    /// RFC 3339 time.
    pub time: String,
    /// `login`.
    pub event: &'static str,
    /// The calling process's uid.
    pub peer_uid: u32,
    /// The calling process's pid.
    pub peer_pid: Option<i32>,
    /// The authenticator that decided (or was asked for).
    pub authenticator: Option<&'a str>,
    /// The username as given.
    pub username: &'a str,
    /// `success`, `invalid_credentials`, `denied`, `locked`, `unavailable`.
    pub outcome: &'static str,
    /// A stable reason code, when there is one.
    pub reason: Option<String>,
    /// Maps that granted, revoked or denied.
    pub maps: Vec<String>,
}

/// The audit writer.
pub struct Audit {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl Audit {
    /// Audit into `state_dir/audit.log` (opened on first use).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("audit.log"),
            file: Mutex::new(None),
        }
    }

    /// Records an event.
    pub fn record(&self, event: &Event<'_>) {
        let Ok(mut line) = serde_json::to_string(event) else {
            return;
        };
        tracing::info!(target: "audit", "{line}");
        line.push('\n');
        let Ok(mut slot) = self.file.lock() else {
            return;
        };
        if slot.is_none() {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
            {
                Ok(f) => *slot = Some(f),
                Err(e) => {
                    tracing::error!("cannot open the audit log {}: {e}", self.path.display());
                    return;
                }
            }
        }
        if let Some(f) = slot.as_mut()
            && let Err(e) = f.write_all(line.as_bytes())
        {
            tracing::error!("cannot write the audit log: {e}");
            *slot = None;
        }
    }
}
