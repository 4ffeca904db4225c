//! # gatehouse-daemon
//!
//! `gatehoused`, the local authentication sidecar: a socket API
//! ([`api`]) over one configuration generation at a time ([`runtime`]),
//! rebuilt transactionally on reload ([`state`]), with users in a
//! [`store`]. The `gatehouse` CLI and the end-to-end tests talk to it
//! through [`client`], never through these internals.

pub mod access;
pub mod api;
pub mod audit;
pub mod authn;
pub mod client;
pub mod config;
pub mod guard;
pub mod identity;
pub mod isolation;
pub mod lockout;
pub mod logging;
pub mod maps;
pub mod metrics;
pub mod password;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod state;
pub mod store;
pub mod systemd;
pub mod verifiers;
pub mod watch;

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::server::Listener;
use crate::state::{Daemon, Trigger};

/// Runs the daemon on `listener` until SIGTERM or SIGINT: serves requests,
/// reloads on SIGHUP and on file change, then shuts down gracefully.
pub async fn run(daemon: Arc<Daemon>, listener: Listener) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let watcher = match watch::spawn(Arc::clone(&daemon)) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("file watching is off ({e}); reload with SIGHUP or `gatehouse reload`");
            None
        }
    };
    let reloader = {
        let daemon = Arc::clone(&daemon);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = daemon.reload(Trigger::Signal).await;
            }
        })
    };

    let rt = daemon.runtime();
    tracing::info!(
        socket = %listener.display,
        generation = rt.generation,
        authenticators = rt.authenticators.len(),
        workers = tokio::runtime::Handle::current().metrics().num_workers(),
        "gatehoused {} listening",
        env!("CARGO_PKG_VERSION")
    );
    systemd::ready(&format!("serving generation {}", rt.generation));
    drop(rt);

    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        systemd::stopping();
    };
    server::serve(listener, Arc::clone(&daemon), shutdown).await;
    reloader.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    Ok(())
}
