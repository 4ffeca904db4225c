//! Log output (`[log] format`): human-readable text (colours on a
//! terminal; timestamps unless stderr is the journal, which stamps them),
//! JSON lines, or native journald records with structured fields.
//! `RUST_LOG` overrides the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::log::LogFormat;

/// Installs the global subscriber. Safe to call once.
pub fn init(default_level: &str, format: LogFormat) {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(default_level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let tty = std::io::stderr().is_terminal();
    // systemd sets JOURNAL_STREAM when stderr is connected to the journal
    let journal_stderr = std::env::var_os("JOURNAL_STREAM").is_some();
    let text = || {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_target(false);
        if tty {
            builder.try_init()
        } else if journal_stderr {
            builder.with_ansi(false).without_time().try_init()
        } else {
            builder.with_ansi(false).try_init()
        }
    };
    let result = match format {
        LogFormat::Text => text(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => tracing_subscriber::registry()
                .with(filter())
                .with(
                    layer
                        .with_syslog_identifier("gatehoused".into())
                        .with_priority_mappings(syslog_priorities()),
                )
                .try_init()
                .map_err(Into::into),
            Err(e) => {
                let r = text();
                tracing::warn!(
                    "[log] format = \"journald\": journald is not reachable ({e}); logging text to stderr"
                );
                r
            }
        },
    };
    if let Err(e) = result {
        eprintln!("gatehoused: logging already initialised: {e}");
    }
}

/// journald priorities as syslog(3) reads the levels: `info` is
/// informational (6), not notice (5, tracing-journald's default), so
/// `journalctl -p notice` shows warnings and errors only; `debug` and
/// `trace` are both debug (7).
fn syslog_priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// Sends log lines of dynamically loaded plugins to `tracing`.
pub fn forward_plugin_logs() {
    gatehouse_sdk::abi::host::set_log_sink(|level, instance, message| {
        use gatehouse_sdk::Level;
        match level {
            Level::Trace => tracing::trace!(plugin = instance, "{message}"),
            Level::Debug => tracing::debug!(plugin = instance, "{message}"),
            Level::Info => tracing::info!(plugin = instance, "{message}"),
            Level::Warn => tracing::warn!(plugin = instance, "{message}"),
            Level::Error => tracing::error!(plugin = instance, "{message}"),
        }
    });
}
