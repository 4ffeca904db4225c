//! Log output: human-readable with colours on a terminal; plain lines
//! without timestamps otherwise (journald stamps them). `RUST_LOG`
//! overrides the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let tty = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if tty {
        builder.try_init()
    } else {
        builder.with_ansi(false).without_time().try_init()
    };
    if let Err(e) = result {
        eprintln!("gatehoused: logging already initialised: {e}");
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
