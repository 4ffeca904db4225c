//! The Unix socket: binding (or socket activation), the accept loop with
//! peer credentials, keep-alive HTTP/1.1, and graceful shutdown.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::UnixListener;

use crate::access::Peer;
use crate::api;
use crate::state::Daemon;

/// A listening socket.
pub struct Listener {
    inner: UnixListener,
    /// The path we created and must remove at exit (`None` when systemd
    /// passed the socket: it owns the file).
    owned_path: Option<PathBuf>,
    /// Where clients connect (for logs).
    pub display: String,
}

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another daemon answers on the path.
    #[error(
        "{0} is in use by a running process; refusing to take it over (stop the other gatehoused or choose another socket)"
    )]
    InUse(PathBuf),
    /// Something that is not a socket is at the path.
    #[error("{0} exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// The path does not fit in a sockaddr_un.
    #[error("socket path {0} is longer than 107 bytes")]
    TooLong(PathBuf),
    /// Any other I/O failure.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl Listener {
    /// Uses the socket systemd passed (`LISTEN_FDS`), else binds `path` with
    /// `mode`, replacing a stale socket file but never a live one.
    pub fn open(path: &Path, mode: u32) -> Result<Self, BindError> {
        let io_err = |source| BindError::Io {
            path: path.to_owned(),
            source,
        };
        let mut fds = listenfd::ListenFd::from_env();
        if fds.len() > 0
            && let Some(std_listener) = fds.take_unix_listener(0).map_err(io_err)?
        {
            std_listener.set_nonblocking(true).map_err(io_err)?;
            let inner = UnixListener::from_std(std_listener).map_err(io_err)?;
            return Ok(Self {
                inner,
                owned_path: None,
                display: "socket passed by systemd (LISTEN_FDS)".into(),
            });
        }
        if path.as_os_str().len() > 107 {
            return Err(BindError::TooLong(path.to_owned()));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => return Err(BindError::NotASocket(path.to_owned())),
            Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(BindError::InUse(path.to_owned())),
                Err(_) => {
                    tracing::info!("removing stale socket {}", path.display());
                    std::fs::remove_file(path).map_err(io_err)?;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        // Bind under a temporary name, set the mode, then rename into place:
        // the socket is never reachable with the umask's permissions.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let std_listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(io_err)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)?;
        std_listener.set_nonblocking(true).map_err(io_err)?;
        let inner = UnixListener::from_std(std_listener).map_err(io_err)?;
        Ok(Self {
            inner,
            owned_path: Some(path.to_owned()),
            display: path.display().to_string(),
        })
    }
}

/// Serves until `shutdown` resolves, then stops accepting, removes the
/// socket file and waits (at most the configured timeout) for in-flight
/// requests.
pub async fn serve(listener: Listener, daemon: Arc<Daemon>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(256 * 1024);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.inner.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let peer = match stream.peer_cred() {
                    Ok(c) => Peer { uid: c.uid(), gid: c.gid(), pid: c.pid() },
                    Err(e) => {
                        tracing::warn!("no peer credentials, closing the connection: {e}");
                        continue;
                    }
                };
                daemon.metrics.connection();
                let d = Arc::clone(&daemon);
                let service = service_fn(move |req| {
                    let d = Arc::clone(&d);
                    async move { Ok::<_, std::convert::Infallible>(api::serve(d, peer, req).await) }
                });
                let conn = http.serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(peer_uid = peer.uid, "connection ended with an error: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    let Listener {
        inner, owned_path, ..
    } = listener;
    drop(inner);
    if let Some(path) = &owned_path {
        let _ = std::fs::remove_file(path);
    }
    let timeout = daemon.shutdown_timeout();
    tracing::info!(
        "stopped accepting; waiting up to {}s for in-flight requests",
        timeout.as_secs_f32()
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(timeout) => tracing::warn!("shutdown timeout reached; dropping the remaining connections"),
    }
}
