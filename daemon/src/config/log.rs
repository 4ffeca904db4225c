//! `[log]`: the format of the daemon's log and where the audit trail goes.
//!
//! ```toml
//! [log]
//! format = "text"   # "text" | "json" | "journald"
//! audit = "file"    # "file": <state_dir>/audit.log and the log; "log": the log only
//! ```
//! Both take effect at start-up only (a reload that changes them is refused).

use serde::Deserialize;
use toml::Spanned;

use super::Resolver;

/// How log records are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines on stderr: colours on a terminal; timestamps
    /// unless stderr is the journal (`$JOURNAL_STREAM`), which stamps them.
    #[default]
    Text,
    /// One JSON object per line on stderr, with a timestamp.
    Json,
    /// Native journald records with structured fields (`tracing-journald`);
    /// text on stderr when journald is not reachable.
    Journald,
}

/// Where audit events go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditSink {
    /// `<state_dir>/audit.log` (reopened on SIGHUP, for logrotate) and the log.
    #[default]
    File,
    /// The log only (target `audit`): with `format = "journald"`, the journal.
    Log,
}

/// `[log]`, resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// The log format.
    pub format: LogFormat,
    /// Where audit events go.
    pub audit: AuditSink,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    format: Option<Spanned<String>>,
    audit: Option<Spanned<String>>,
}

pub(crate) fn resolve(r: &mut Resolver<'_>, raw: &RawLog) -> LogSettings {
    let mut out = LogSettings::default();
    if let Some(f) = &raw.format {
        match f.get_ref().as_str() {
            "text" => out.format = LogFormat::Text,
            "json" => out.format = LogFormat::Json,
            "journald" => out.format = LogFormat::Journald,
            other => {
                r.err::<()>(
                    &f.span(),
                    "log.format",
                    format!("unknown format {other:?}: expected \"text\", \"json\" or \"journald\""),
                );
            }
        }
    }
    if let Some(a) = &raw.audit {
        match a.get_ref().as_str() {
            "file" => out.audit = AuditSink::File,
            "log" => out.audit = AuditSink::Log,
            other => {
                r.err::<()>(
                    &a.span(),
                    "log.audit",
                    format!("unknown audit sink {other:?}: expected \"file\" or \"log\""),
                );
            }
        }
    }
    out
}
