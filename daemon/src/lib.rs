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
pub mod backend;
pub mod client;
pub mod config;
pub mod conn;
pub mod guard;
pub mod identity;
pub mod isolation;
pub mod issuer;
pub mod lockout;
pub mod logging;
pub mod maps;
pub mod metrics;
pub mod nss;
pub mod offline;
pub mod password;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod state;
pub mod statedir;
pub mod store;
pub mod systemd;
pub mod verifiers;
pub mod watch;

use std::future::Future;
use std::sync::Arc;

use crate::server::Listener;
use crate::state::Daemon;

/// Serves `daemon` on `listener` (and on the `[forward_auth]` TCP address,
/// when configured) until `shutdown` resolves: answers requests, reloads when a configuration file changes (and on
/// `POST /v1/reload`), then stops accepting and waits for in-flight
/// requests (at most `[daemon] shutdown_timeout`).
///
/// Signals are the caller's business: `gatehoused` turns SIGTERM/SIGINT
/// into `shutdown` and SIGHUP into [`Daemon::reload`]; a test passes a
/// channel and runs the daemon in its own process.
pub async fn run(
    daemon: Arc<Daemon>,
    listener: Listener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let rt = daemon.runtime();
    // Bound first: a busy port fails the start before anything is announced.
    let forward_auth = match &rt.config.forward_auth {
        Some(f) => {
            f.warn_if_exposed();
            let l = tokio::net::TcpListener::bind(f.listen).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("[forward_auth] cannot listen on {}: {e}", f.listen),
                )
            })?;
            tracing::info!("forward auth (/v1/check only) listening on {}", f.listen);
            Some(l)
        }
        None => None,
    };
    // `[host] nss_socket`: the name-service lookups, for any local process.
    let nss = match rt.config.host.as_ref().and_then(|h| h.nss_socket.as_deref()) {
        Some(path) => {
            let l = server::Listener::bind(path, 0o666)
                .map_err(|e| std::io::Error::other(format!("[host] nss_socket: {e}")))?;
            tracing::info!("name-service lookups (/v1/nss/*) on {}", l.display);
            Some(l)
        }
        None => None,
    };
    let issuer_listener = match rt
        .config
        .issuer
        .as_ref()
        .and_then(|i| Some((i.listen?, i.tls.clone())))
    {
        Some((addr, tls)) => {
            let acceptor = match &tls {
                Some((cert, key)) => Some(
                    issuer::listener::tls_acceptor(cert, key)
                        .map_err(|e| std::io::Error::other(format!("[issuer] TLS: {e}")))?,
                ),
                None => None,
            };
            let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("[issuer] cannot listen on {addr}: {e}"))
            })?;
            tracing::info!(
                "issuer discovery and JWKS listening on {}://{addr}",
                if acceptor.is_some() { "https" } else { "http" }
            );
            Some(tokio::spawn(issuer::listener::serve(
                l,
                acceptor,
                Arc::clone(&daemon),
            )))
        }
        None => None,
    };
    let watcher = match watch::spawn(Arc::clone(&daemon)) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("file watching is off ({e}); reload with SIGHUP or `gatehouse reload`");
            None
        }
    };

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

    server::serve(listener, forward_auth, nss, Arc::clone(&daemon), shutdown).await;
    if let Some(w) = watcher {
        w.abort();
    }
    if let Some(l) = issuer_listener {
        l.abort();
    }
    Ok(())
}
