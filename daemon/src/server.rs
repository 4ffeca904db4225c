//! The Unix socket: binding (or socket activation) in a directory no other
//! user can write, the accept loop with peer credentials, connection caps
//! and deadlines ([`crate::conn`]), keep-alive HTTP/1.1, the optional
//! `[forward_auth]` TCP listener, and graceful shutdown.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::access::Peer;
use crate::api;
use crate::config::ConnectionLimits;
use crate::conn::{self, ConnClock, Connections, Refusal, RequestClock, Slot, Timed};
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
    /// Another user could move the socket away and put their own in its
    /// place (and be handed the passwords clients send).
    #[error(
        "daemon.socket: {dir} {why}: another user could replace the socket with their own; use a directory only root and the daemon's user can write (e.g. /run/gatehouse)"
    )]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        why: String,
    },
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
        Self::bind(path, mode)
    }

    /// Binds `path` with `mode` (never a socket systemd passed), replacing a
    /// stale socket file but never a live one.
    pub fn bind(path: &Path, mode: u32) -> Result<Self, BindError> {
        let io_err = |source| BindError::Io {
            path: path.to_owned(),
            source,
        };
        if path.as_os_str().len() > 107 {
            return Err(BindError::TooLong(path.to_owned()));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
            check_socket_dir(dir, crate::state::current_uid())?;
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

/// Refuses a socket directory that a user other than root and `own_uid`
/// could change: owned by another user, or writable by group or others
/// without the sticky bit. The same holds for every directory above it
/// (whoever can rename a parent can swap the whole path). A sticky,
/// world-writable directory right above the socket is accepted with a
/// warning: others cannot rename the socket, but can take its name while
/// the daemon is stopped.
pub fn check_socket_dir(dir: &Path, own_uid: u32) -> Result<(), BindError> {
    use std::os::unix::fs::MetadataExt;
    let unsafe_dir = |dir: &Path, why: String| BindError::UnsafeDirectory {
        dir: dir.to_owned(),
        why,
    };
    let real = std::fs::canonicalize(dir).map_err(|source| BindError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for (depth, d) in real.ancestors().enumerate() {
        let meta = std::fs::metadata(d).map_err(|source| BindError::Io {
            path: d.to_owned(),
            source,
        })?;
        if meta.uid() != 0 && meta.uid() != own_uid {
            return Err(unsafe_dir(d, format!("is owned by uid {}", meta.uid())));
        }
        let mode = meta.mode();
        if mode & 0o022 != 0 {
            let who = if mode & 0o002 != 0 {
                "other users"
            } else {
                "its group"
            };
            if mode & 0o1000 == 0 {
                return Err(unsafe_dir(
                    d,
                    format!("is writable by {who} (mode {:04o})", mode & 0o7777),
                ));
            }
            if depth == 0 {
                tracing::warn!(
                    "the socket's directory {} is writable by {who} (sticky, mode {:04o}): they cannot move the socket, \
                     but can take its name while gatehoused is stopped; prefer a directory only root and the daemon's user can write",
                    d.display(),
                    mode & 0o7777
                );
            }
        }
    }
    Ok(())
}

/// Serves until `shutdown` resolves, then stops accepting, removes the
/// socket file and waits (at most the configured timeout) for in-flight
/// requests. `forward_auth` is the `[forward_auth]` TCP listener, if any;
/// `nss` the `[host] nss_socket` listener (the name-service lookups only,
/// for any local peer, within the same connection caps), if any.
///
/// Right after `accept`, before anything is read: a socket peer that
/// `[access]` lets use no endpoint is answered 403 and closed; a
/// connection over `max_connections` (lowered to what the descriptor limit
/// allows) or `max_connections_per_uid` is answered 429 and closed. When
/// `accept` itself fails (out of descriptors), the loop backs off.
pub async fn serve(
    listener: Listener,
    forward_auth: Option<TcpListener>,
    nss: Option<Listener>,
    daemon: Arc<Daemon>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Connections::default());
    let budget = conn::descriptor_budget();
    let mut warned_cap = 0;
    let mut backoff = Backoff::default();
    let lingering = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.inner.accept() => a.map(|(s, _)| Accepted::Unix(s)),
            a = accept_tcp(forward_auth.as_ref()) => a.map(|(s, _)| Accepted::Tcp(s)),
            a = accept_nss(nss.as_ref()) => a.map(|(s, _)| Accepted::Nss(s)),
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok(s) => {
                backoff.succeeded();
                s
            }
            Err(e) => {
                // EMFILE and friends: the connection stays queued, so
                // retrying at once would spin. Back off, keep serving
                // the connections we have.
                backoff.failed(&e).await;
                continue;
            }
        };
        let runtime = daemon.runtime();
        let limits = runtime.config.daemon.connections;
        let total_cap = limits.max_connections.min(budget);
        if total_cap < limits.max_connections && warned_cap != limits.max_connections {
            warned_cap = limits.max_connections;
            tracing::warn!(
                "[daemon] max_connections = {} is more than the descriptor limit allows; holding at most {total_cap} \
                 (raise LimitNOFILE / ulimit -n)",
                limits.max_connections
            );
        }
        match stream {
            Accepted::Unix(stream) => {
                let peer = match stream.peer_cred() {
                    Ok(c) => Peer {
                        uid: c.uid(),
                        gid: c.gid(),
                        pid: c.pid(),
                    },
                    Err(e) => {
                        tracing::warn!("no peer credentials, closing the connection: {e}");
                        continue;
                    }
                };
                let rights = crate::access::rights(&runtime.config.access, peer, daemon.daemon_uid);
                drop(runtime);
                let admitted = if rights.client {
                    connections.admit(Some(peer.uid), total_cap, limits.max_connections_per_uid)
                } else {
                    Err(Refusal::Forbidden { uid: peer.uid })
                };
                let slot = match admitted {
                    Ok(slot) => slot,
                    Err(why) => {
                        refuse(&daemon, &lingering, why, Accepted::Unix(stream));
                        continue;
                    }
                };
                daemon.metrics.connection();
                let d = Arc::clone(&daemon);
                let clock = ConnClock::new(&limits);
                let c = Arc::clone(&clock);
                let service = service_fn(move |req| {
                    let d = Arc::clone(&d);
                    timed_request(Arc::clone(&c), req, move |req| api::serve(d, peer, req))
                });
                spawn_connection(&graceful, &limits, Timed::new(stream, clock), service, slot);
            }
            Accepted::Nss(stream) => {
                drop(runtime);
                let Ok(cred) = stream.peer_cred() else {
                    tracing::warn!("no peer credentials on the nss socket, closing the connection");
                    continue;
                };
                let slot =
                    match connections.admit(Some(cred.uid()), total_cap, limits.max_connections_per_uid) {
                        Ok(slot) => slot,
                        Err(why) => {
                            refuse(&daemon, &lingering, why, Accepted::Nss(stream));
                            continue;
                        }
                    };
                daemon.metrics.connection();
                let d = Arc::clone(&daemon);
                let clock = ConnClock::new(&limits);
                let c = Arc::clone(&clock);
                let service = service_fn(move |req| {
                    let d = Arc::clone(&d);
                    timed_request(Arc::clone(&c), req, move |req| api::serve_nss(d, req))
                });
                spawn_connection(&graceful, &limits, Timed::new(stream, clock), service, slot);
            }
            Accepted::Tcp(stream) => {
                drop(runtime);
                let slot = match connections.admit(None, total_cap, usize::MAX) {
                    Ok(slot) => slot,
                    Err(why) => {
                        refuse(&daemon, &lingering, why, Accepted::Tcp(stream));
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                daemon.metrics.connection();
                let d = Arc::clone(&daemon);
                let clock = ConnClock::new(&limits);
                let c = Arc::clone(&clock);
                let service = service_fn(move |req| {
                    let d = Arc::clone(&d);
                    timed_request(Arc::clone(&c), req, move |req| api::serve_forward_auth(d, req))
                });
                spawn_connection(&graceful, &limits, Timed::new(stream, clock), service, slot);
            }
        }
    }
    let Listener {
        inner, owned_path, ..
    } = listener;
    drop(inner);
    drop(forward_auth);
    if let Some(path) = &owned_path {
        let _ = std::fs::remove_file(path);
    }
    if let Some(Listener {
        inner, owned_path, ..
    }) = nss
    {
        drop(inner);
        if let Some(path) = &owned_path {
            let _ = std::fs::remove_file(path);
        }
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

enum Accepted {
    Unix(UnixStream),
    Tcp(TcpStream),
    Nss(UnixStream),
}

async fn accept_nss(listener: Option<&Listener>) -> io::Result<(UnixStream, tokio::net::unix::SocketAddr)> {
    match listener {
        Some(l) => l.inner.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_tcp(listener: Option<&TcpListener>) -> io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// How long a refused connection is left alone (nothing is read from it)
/// before the answer is written and the connection closed: an HTTP client
/// that gets its answer before it has written its request fails without
/// showing it, and clients write their request at once.
const LINGER: Duration = Duration::from_millis(50);
/// At most this many refused connections wait at once; further ones are
/// answered and closed at once.
const LINGER_MAX: usize = 32;

impl Accepted {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) | Self::Nss(s) => s.try_write(bytes),
            Self::Tcp(s) => s.try_write(bytes),
        }
    }
}

/// Answers a refused connection (whatever fits in the socket buffer,
/// without waiting to write) and closes it; nothing is read from it.
fn refuse(daemon: &Daemon, lingering: &Arc<std::sync::atomic::AtomicUsize>, why: Refusal, stream: Accepted) {
    use std::sync::atomic::Ordering;
    daemon.metrics.connection_refused(why.label());
    tracing::debug!(reason = why.label(), "connection refused: {why:?}");
    let answer = why.answer();
    if lingering.fetch_add(1, Ordering::Relaxed) >= LINGER_MAX {
        lingering.fetch_sub(1, Ordering::Relaxed);
        let _ = stream.try_write(&answer);
        return;
    }
    let lingering = Arc::clone(lingering);
    tokio::spawn(async move {
        tokio::time::sleep(LINGER).await;
        let _ = stream.try_write(&answer);
        drop(stream);
        lingering.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Runs one request of a connection, keeping its clock: the request is
/// read once a body-less request reaches the handler (a handler that
/// reads a body says so through [`RequestClock`]); the connection is idle
/// again once the answer is ready.
async fn timed_request<F, Fut>(
    clock: Arc<ConnClock>,
    mut req: Request<Incoming>,
    handler: F,
) -> Result<Response<api::Body>, std::convert::Infallible>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<api::Body>>,
{
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        clock.request_read();
    }
    req.extensions_mut().insert(RequestClock(Arc::clone(&clock)));
    let response = handler(req).await;
    clock.answered();
    Ok(response)
}

/// Serves one admitted connection on its own task; its slot is freed when
/// the connection ends.
fn spawn_connection<S, Svc>(
    graceful: &GracefulShutdown,
    limits: &ConnectionLimits,
    io: Timed<S>,
    service: Svc,
    slot: Slot,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<
            Request<Incoming>,
            Response = Response<api::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    // `Timed` enforces request_timeout and idle_timeout; hyper's header
    // timer (which runs from the end of one answer to the next request's
    // last header line) only backs it up.
    http.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout + limits.request_timeout)
        .max_buf_size(256 * 1024);
    let conn = http.serve_connection(TokioIo::new(io), service);
    let watched = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = watched.await {
            tracing::debug!("connection ended with an error: {e}");
        }
        drop(slot);
    });
}

/// The accept loop's back-off while `accept` fails: 10 ms doubling to
/// 200 ms, one warning per streak (then one every 10 s).
#[derive(Default)]
struct Backoff {
    failures: u64,
    delay: Duration,
    logged: Option<tokio::time::Instant>,
}

impl Backoff {
    const MAX: Duration = Duration::from_millis(200);

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                "accepting connections again after {} failed attempts",
                self.failures
            );
        }
        *self = Self::default();
    }

    async fn failed(&mut self, e: &io::Error) {
        self.failures += 1;
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), Self::MAX);
        if self.logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            self.logged = Some(tokio::time::Instant::now());
            tracing::warn!(
                "accept failed ({} times in a row): {e}; retrying every {} ms at most while serving the open connections",
                self.failures,
                Self::MAX.as_millis()
            );
        }
        tokio::time::sleep(self.delay).await;
    }
}
