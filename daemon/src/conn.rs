//! What one connection may hold: the connection caps (global and per peer
//! uid), the read deadlines (a whole request, an idle keep-alive
//! connection) and the answers given to connections refused right after
//! `accept`, before anything is read from them.
//!
//! The deadlines live in the transport ([`Timed`]): hyper's own header
//! timeout does not cover a body that never comes, and a handler cannot
//! see a connection that has not sent its headers yet.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::api::ApiError;
use crate::config::ConnectionLimits;

/// Descriptors kept for everything but client connections (store, log,
/// watcher, plugin hosts) before the rest is shared out.
const RESERVED_FDS: u64 = 32;

/// How many client connections the descriptor limit allows: half of what
/// is left after [`RESERVED_FDS`], since a connection in a login may hold
/// a second descriptor (a plugin's connection to its server).
/// `usize::MAX` when the limit is infinite.
pub fn descriptor_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    match limit.current {
        None => usize::MAX,
        Some(n) => usize::try_from(n.saturating_sub(RESERVED_FDS) / 2)
            .unwrap_or(usize::MAX)
            .max(1),
    }
}

/// Raises the soft descriptor limit to the hard one (so the connection cap,
/// not the usual 1,024 of a service, bounds the connections). Returns
/// `(before, after)`; `None` stands for unlimited.
pub fn raise_descriptor_limit() -> io::Result<(Option<u64>, Option<u64>)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current == limit.maximum {
        return Ok((before, before));
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).map_err(io::Error::from)?;
    Ok((before, getrlimit(Resource::Nofile).current))
}

/// Why a connection was refused right after `accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `[access]` lets this peer use no endpoint.
    Forbidden {
        /// The peer's uid.
        uid: u32,
    },
    /// `max_connections` (or the descriptor budget) is reached.
    Total {
        /// The cap in force.
        cap: usize,
    },
    /// `max_connections_per_uid` is reached for this uid.
    PerUid {
        /// The peer's uid.
        uid: u32,
        /// The cap in force.
        cap: usize,
    },
}

impl Refusal {
    /// The label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Forbidden { .. } => "forbidden",
            Self::Total { .. } => "max_connections",
            Self::PerUid { .. } => "max_connections_per_uid",
        }
    }

    fn error(self) -> ApiError {
        match self {
            Self::Forbidden { uid } => ApiError::forbidden(format!(
                "uid {uid} may not use this socket (see [access] client_uids)"
            )),
            Self::Total { cap } => {
                let mut e = ApiError::new(
                    gatehouse_sdk::proto::ErrorCode::TooManyAttempts,
                    format!("the daemon holds {cap} connections, its maximum; try again"),
                );
                e.retry_after = Some(1);
                e
            }
            Self::PerUid { uid, cap } => {
                let mut e = ApiError::new(
                    gatehouse_sdk::proto::ErrorCode::TooManyAttempts,
                    format!(
                        "uid {uid} holds {cap} connections, the maximum per uid (see [daemon] max_connections_per_uid)"
                    ),
                );
                e.retry_after = Some(1);
                e
            }
        }
    }

    /// The whole HTTP answer sent (without waiting) before the connection
    /// is closed: the client learns why, nothing of its request is read.
    pub fn answer(self) -> Vec<u8> {
        let e = self.error();
        let status = e.code.http_status();
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let body = serde_json::to_vec(&e.body()).unwrap_or_else(|_| b"{}".to_vec());
        let retry = e
            .retry_after
            .map_or_else(String::new, |s| format!("retry-after: {s}\r\n"));
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

/// The open connections: a total over every listener and a count per
/// peer uid (socket peers only).
#[derive(Debug, Default)]
pub struct Connections {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

impl Connections {
    /// Takes a slot for a new connection, or says why there is none.
    /// `total_cap` is the global cap in force (the configured one, lowered
    /// to the descriptor budget).
    pub fn admit(
        self: &Arc<Self>,
        uid: Option<u32>,
        total_cap: usize,
        per_uid_cap: usize,
    ) -> Result<Slot, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= total_cap {
            return Err(Refusal::Total { cap: total_cap });
        }
        if let Some(uid) = uid {
            let n = c.per_uid.entry(uid).or_insert(0);
            if *n >= per_uid_cap {
                return Err(Refusal::PerUid {
                    uid,
                    cap: per_uid_cap,
                });
            }
            *n += 1;
        }
        c.total += 1;
        Ok(Slot {
            owner: Arc::clone(self),
            uid,
        })
    }

    /// Open connections now.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<Connections>,
    uid: Option<u32>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(uid) = self.uid
            && let Some(n) = c.per_uid.get_mut(&uid)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_uid.remove(&uid);
            }
        }
    }
}

/// Where a connection is in its request cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No request in progress since this instant.
    Idle(Instant),
    /// A request's first byte came at this instant; its body is not read yet.
    Reading(Instant),
    /// The request is read; the handler works (no read deadline).
    Handling,
}

/// A connection's request clock, shared by its transport ([`Timed`]) and
/// its requests ([`RequestClock`]).
#[derive(Debug)]
pub struct ConnClock {
    phase: Mutex<Phase>,
    request_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnClock {
    /// A clock for a connection accepted now.
    pub fn new(limits: &ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            request_timeout: limits.request_timeout,
            idle_timeout: limits.idle_timeout,
        })
    }

    fn set(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = p;
    }

    fn bytes_arrived(&self) {
        let mut p = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*p, Phase::Idle(_)) {
            *p = Phase::Reading(Instant::now());
        }
    }

    /// The request (headers and body) is read: no deadline while the
    /// handler works.
    pub fn request_read(&self) {
        self.set(Phase::Handling);
    }

    /// The answer is ready: the connection is idle again (writing the
    /// answer and waiting for the next request count as idle time).
    pub fn answered(&self) {
        self.set(Phase::Idle(Instant::now()));
    }

    fn deadline(&self) -> Option<Instant> {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Idle(since) => Some(since + self.idle_timeout),
            Phase::Reading(since) => Some(since + self.request_timeout),
            Phase::Handling => None,
        }
    }
}

/// Put in each request's extensions: a handler that reads the body calls
/// [`RequestClock::body_read`] when it has it, so its own work is not
/// counted against `request_timeout`.
#[derive(Clone, Debug)]
pub struct RequestClock(pub Arc<ConnClock>);

impl RequestClock {
    /// The body is read.
    pub fn body_read(&self) {
        self.0.request_read();
    }
}

/// A transport that fails with `TimedOut` when its connection's deadline
/// passes while it waits for the peer (to send, or to take what we write).
pub struct Timed<S> {
    io: S,
    clock: Arc<ConnClock>,
    sleep: Pin<Box<Sleep>>,
}

impl<S> Timed<S> {
    /// Wraps `io`, timed by `clock`.
    pub fn new(io: S, clock: Arc<ConnClock>) -> Self {
        let first = clock.deadline().unwrap_or_else(Instant::now);
        Self {
            io,
            clock,
            sleep: Box::pin(tokio::time::sleep_until(first)),
        }
    }

    /// Called when the peer made us wait: `Pending` until the deadline of
    /// the connection's phase, then the timeout error.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(deadline) = self.clock.deadline() else {
            return Poll::Pending;
        };
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer was too slow (request_timeout or idle_timeout)",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.clock.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_deadline(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Pending => self.poll_deadline(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending => self.poll_deadline(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.poll_deadline(cx).map(Err),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn caps_count_per_uid_and_in_total() {
        let c = Arc::new(Connections::default());
        let a1 = c.admit(Some(1), 3, 2).unwrap();
        let _a2 = c.admit(Some(1), 3, 2).unwrap();
        assert_eq!(
            c.admit(Some(1), 3, 2).unwrap_err(),
            Refusal::PerUid { uid: 1, cap: 2 }
        );
        let _b = c.admit(Some(2), 3, 2).unwrap();
        assert_eq!(c.admit(None, 3, 2).unwrap_err(), Refusal::Total { cap: 3 });
        drop(a1);
        assert_eq!(c.total(), 2);
        let _a3 = c.admit(Some(1), 3, 2).unwrap();
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn refusals_are_complete_http_answers() {
        let a = String::from_utf8(Refusal::PerUid { uid: 7, cap: 2 }.answer()).unwrap();
        assert!(a.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{a}");
        assert!(a.contains("retry-after: 1\r\n") && a.contains("connection: close\r\n"));
        let (head, body) = a.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_attempts");
        let f = String::from_utf8(Refusal::Forbidden { uid: 65534 }.answer()).unwrap();
        assert!(f.starts_with("HTTP/1.1 403 Forbidden\r\n") && f.contains("uid 65534"));
    }

    fn about(elapsed: Duration, expected: Duration) {
        assert!(
            elapsed >= expected && elapsed < expected + Duration::from_millis(250),
            "{elapsed:?} instead of {expected:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_but_a_busy_handler_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = Duration::from_millis(200);
        let idle = Duration::from_millis(400);
        let limits = ConnectionLimits {
            request_timeout: request,
            idle_timeout: idle,
            ..ConnectionLimits::default()
        };
        // idle: nothing sent for idle_timeout
        let (ours, _theirs) = tokio::io::duplex(64);
        let clock = ConnClock::new(&limits);
        let mut t = Timed::new(ours, Arc::clone(&clock));
        let start = Instant::now();
        let e = t.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        about(start.elapsed(), idle);

        // a request begun and never finished: request_timeout after its first byte
        let (ours, mut theirs) = tokio::io::duplex(64);
        let clock = ConnClock::new(&limits);
        let mut t = Timed::new(ours, Arc::clone(&clock));
        theirs.write_all(b"POST").await.unwrap();
        assert_eq!(t.read(&mut [0; 8]).await.unwrap(), 4);
        let start = Instant::now();
        let e = t.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        about(start.elapsed(), request);

        // read, then handled for longer than both timeouts: no deadline
        let (ours, mut theirs) = tokio::io::duplex(64);
        let clock = ConnClock::new(&limits);
        let mut t = Timed::new(ours, Arc::clone(&clock));
        theirs.write_all(b"GET").await.unwrap();
        assert_eq!(t.read(&mut [0; 8]).await.unwrap(), 3);
        clock.request_read();
        let slow = tokio::time::timeout(Duration::from_secs(1), t.read(&mut [0; 8])).await;
        assert!(slow.is_err(), "no deadline while the handler works");
        clock.answered();
        let start = Instant::now();
        let e = t.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        about(start.elapsed(), idle);
    }
}
