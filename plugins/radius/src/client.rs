//! The UDP client: one connected socket per server, shared by every login
//! that goes to it, with a receive task that verifies each reply before it
//! is handed to the waiting request.
//!
//! Identifiers: at most 256 requests are outstanding per socket (a fair
//! semaphore queues the rest), and an identifier is held from the first
//! transmission until the request ends (answered, timed out or cancelled),
//! so two requests in flight never share one. Identifiers are handed out
//! round-robin, and every request has a fresh random Request
//! Authenticator, so a late reply to an earlier request with the same
//! identifier fails verification and is dropped.
//!
//! Replies: only from the server's address and port (the socket is
//! connected, and the sender is compared again), only for an identifier in
//! flight, and only when the Response Authenticator and the
//! Message-Authenticator verify. Anything else is dropped silently, as
//! RFC 2865 says, and counted so a timeout can say what was dropped.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_sdk::Secret;
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::packet::{HEADER_LEN, MAX_PACKET_LEN, Packet, PacketError};
use crate::settings::ServerAddr;

/// Why an exchange with one server failed. Each has a stable code
/// ([`ExchangeError::code`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ExchangeError {
    /// The host name did not resolve.
    Resolve(String),
    /// The socket could not be opened or used.
    Io(String),
    /// The server's port is closed (ICMP port unreachable).
    Refused,
    /// No valid reply after every transmission.
    Timeout {
        /// Transmissions made.
        attempts: u32,
        /// Replies to this request dropped by verification, and the last reason.
        dropped: u32,
        /// The last reason a reply was dropped.
        last_drop: Option<PacketError>,
    },
    /// The request could not be encoded.
    Encode(PacketError),
}

impl ExchangeError {
    /// The stable code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Resolve(_) => "resolve_failed",
            Self::Io(_) => "io_error",
            Self::Refused => "port_unreachable",
            Self::Timeout { .. } => "timeout",
            Self::Encode(_) => "encode_failed",
        }
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.code())?;
        match self {
            Self::Resolve(m) | Self::Io(m) => f.write_str(m),
            Self::Refused => f.write_str("nothing listens on the server's port"),
            Self::Timeout {
                attempts, dropped: 0, ..
            } => write!(
                f,
                "no reply to {attempts} transmission(s) (a wrong shared secret gets none)"
            ),
            Self::Timeout {
                attempts,
                dropped,
                last_drop,
            } => write!(
                f,
                "no valid reply to {attempts} transmission(s); {dropped} reply(ies) dropped (last: {})",
                last_drop.map_or("?", PacketError::code)
            ),
            Self::Encode(e) => write!(f, "{e}"),
        }
    }
}

/// A verified reply.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The datagram (up to its length field).
    pub(crate) bytes: Vec<u8>,
    /// Replies to this request that failed verification before this one.
    pub(crate) dropped: u32,
    /// The last reason one was dropped.
    pub(crate) last_drop: Option<PacketError>,
}

enum Event {
    Reply(Vec<u8>),
    Refused,
}

struct Pending {
    authenticator: [u8; 16],
    tx: Option<oneshot::Sender<Event>>,
    dropped: u32,
    last_drop: Option<PacketError>,
}

struct Slots {
    next: u8,
    entries: Vec<Option<Pending>>,
}

/// What the receive task shares with the requests.
struct Shared {
    peer: SocketAddr,
    secret: Secret,
    require_message_authenticator: bool,
    slots: Mutex<Slots>,
}

/// One server's socket and its receive task (aborted when dropped).
struct Conn {
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    task: tokio::task::AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The most requests outstanding on one socket (the identifier space).
pub(crate) const MAX_OUTSTANDING: usize = 256;

/// One configured server, connected on first use.
pub(crate) struct Server {
    addr: ServerAddr,
    secret: Secret,
    require_message_authenticator: bool,
    conn: Mutex<Option<Arc<Conn>>>,
}

/// Clears the request's slot (frees its identifier) however it ends.
struct SlotGuard {
    shared: Arc<Shared>,
    id: u8,
    _permit: OwnedSemaphorePermit,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.slots.lock() {
            s.entries[usize::from(self.id)] = None;
        }
    }
}

fn random16() -> Result<[u8; 16], ExchangeError> {
    let mut a = [0u8; 16];
    getrandom::fill(&mut a).map_err(|e| ExchangeError::Io(format!("no randomness: {e}")))?;
    Ok(a)
}

impl Server {
    pub(crate) fn new(addr: ServerAddr, secret: Secret, require_message_authenticator: bool) -> Self {
        Self {
            addr,
            secret,
            require_message_authenticator,
            conn: Mutex::new(None),
        }
    }

    /// `host:port` for logs.
    pub(crate) fn label(&self) -> String {
        self.addr.label()
    }

    async fn conn(&self) -> Result<Arc<Conn>, ExchangeError> {
        if let Some(c) = self.conn.lock().ok().and_then(|g| g.clone()) {
            return Ok(c);
        }
        let peer = match self.addr.host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, self.addr.port),
            Err(_) => tokio::net::lookup_host((self.addr.host.as_str(), self.addr.port))
                .await
                .map_err(|e| ExchangeError::Resolve(format!("{}: {e}", self.addr.host)))?
                .next()
                .ok_or_else(|| ExchangeError::Resolve(format!("{}: no address", self.addr.host)))?,
        };
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| ExchangeError::Io("poisoned lock".into()))?;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let local: SocketAddr = if peer.is_ipv4() {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| ExchangeError::Io("address".into()))?
        } else {
            "[::]:0"
                .parse()
                .map_err(|_| ExchangeError::Io("address".into()))?
        };
        let std_socket = std::net::UdpSocket::bind(local).map_err(|e| ExchangeError::Io(e.to_string()))?;
        std_socket
            .connect(peer)
            .map_err(|e| ExchangeError::Io(e.to_string()))?;
        std_socket
            .set_nonblocking(true)
            .map_err(|e| ExchangeError::Io(e.to_string()))?;
        let socket = Arc::new(UdpSocket::from_std(std_socket).map_err(|e| ExchangeError::Io(e.to_string()))?);
        let shared = Arc::new(Shared {
            peer,
            secret: self.secret.clone(),
            require_message_authenticator: self.require_message_authenticator,
            slots: Mutex::new(Slots {
                next: 0,
                entries: (0..MAX_OUTSTANDING).map(|_| None).collect(),
            }),
        });
        let task = tokio::spawn(receive(socket.clone(), shared.clone())).abort_handle();
        let conn = Arc::new(Conn {
            socket,
            shared,
            permits: Arc::new(Semaphore::new(MAX_OUTSTANDING)),
            task,
        });
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Sends one request and waits for its verified reply: `build` encodes
    /// the datagram for the identifier and Request Authenticator it is
    /// given; it is sent `1 + retries` times at most, `timeout` apart.
    pub(crate) async fn exchange(
        &self,
        build: impl FnOnce(u8, &[u8; 16]) -> Result<Vec<u8>, PacketError>,
        timeout: Duration,
        retries: u32,
    ) -> Result<Reply, ExchangeError> {
        let conn = self.conn().await?;
        let permit = conn
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ExchangeError::Io("closed".into()))?;
        let authenticator = random16()?;
        let (tx, mut rx) = oneshot::channel();
        let id = {
            let mut s = conn
                .shared
                .slots
                .lock()
                .map_err(|_| ExchangeError::Io("poisoned lock".into()))?;
            // The permit guarantees a free slot; start after the last one handed out.
            let start = s.next;
            let mut id = start;
            while s.entries[usize::from(id)].is_some() {
                id = id.wrapping_add(1);
                if id == start {
                    return Err(ExchangeError::Io("no free identifier".into()));
                }
            }
            s.entries[usize::from(id)] = Some(Pending {
                authenticator,
                tx: Some(tx),
                dropped: 0,
                last_drop: None,
            });
            s.next = id.wrapping_add(1);
            id
        };
        let _guard = SlotGuard {
            shared: conn.shared.clone(),
            id,
            _permit: permit,
        };
        let datagram = build(id, &authenticator).map_err(ExchangeError::Encode)?;
        let mut attempts = 0;
        for _ in 0..=retries {
            attempts += 1;
            match conn.socket.send(&datagram).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(ExchangeError::Refused);
                }
                Err(e) => return Err(ExchangeError::Io(e.to_string())),
            }
            match tokio::time::timeout(timeout, &mut rx).await {
                Ok(Ok(Event::Reply(bytes))) => {
                    let (dropped, last_drop) = drops(&conn.shared, id);
                    return Ok(Reply {
                        bytes,
                        dropped,
                        last_drop,
                    });
                }
                Ok(Ok(Event::Refused)) => return Err(ExchangeError::Refused),
                Ok(Err(_)) => return Err(ExchangeError::Io("the receive task ended".into())),
                Err(_) => {} // retransmit: same identifier, same bytes
            }
        }
        let (dropped, last_drop) = drops(&conn.shared, id);
        Err(ExchangeError::Timeout {
            attempts,
            dropped,
            last_drop,
        })
    }
}

fn drops(shared: &Shared, id: u8) -> (u32, Option<PacketError>) {
    shared
        .slots
        .lock()
        .ok()
        .and_then(|s| {
            s.entries[usize::from(id)]
                .as_ref()
                .map(|p| (p.dropped, p.last_drop))
        })
        .unwrap_or((0, None))
}

/// Reads replies until aborted; delivers those that verify.
async fn receive(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                // ICMP port unreachable: every request in flight was sent
                // to a closed port.
                if let Ok(mut s) = shared.slots.lock() {
                    for p in s.entries.iter_mut().flatten() {
                        if let Some(tx) = p.tx.take() {
                            let _ = tx.send(Event::Refused);
                        }
                    }
                }
                continue;
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if from != shared.peer || n < HEADER_LEN {
            continue;
        }
        let datagram = &buf[..n];
        let Ok(mut s) = shared.slots.lock() else {
            return;
        };
        let Some(p) = s.entries[usize::from(datagram[1])].as_mut() else {
            continue; // no request in flight with this identifier
        };
        if p.tx.is_none() {
            continue; // already answered (a duplicate)
        }
        let verdict = Packet::parse(datagram).and_then(|packet| {
            packet.verify_reply(
                &p.authenticator,
                shared.secret.expose().as_bytes(),
                shared.require_message_authenticator,
            )?;
            Ok(packet.bytes.len())
        });
        match verdict {
            Ok(len) => {
                if let Some(tx) = p.tx.take() {
                    let _ = tx.send(Event::Reply(datagram[..len].to_vec()));
                }
            }
            Err(e) => {
                p.dropped = p.dropped.saturating_add(1);
                p.last_drop = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use super::*;
    use crate::packet::{AccessRequest, attr, code, encode_reply};

    const SECRET: &[u8] = b"testing123";

    fn server(port: u16, require_ma: bool) -> Server {
        Server::new(
            ServerAddr {
                host: "127.0.0.1".into(),
                port,
            },
            Secret::new("testing123"),
            require_ma,
        )
    }

    fn request(id: u8, auth: &[u8; 16]) -> Result<Vec<u8>, PacketError> {
        let mut r = AccessRequest::new(id, auth);
        r.add(attr::USER_NAME, b"u")?;
        r.add_password(b"p", SECRET)?;
        Ok(r.finish(SECRET))
    }

    fn accept_for(req: &[u8]) -> Vec<u8> {
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&req[4..20]);
        encode_reply(code::ACCESS_ACCEPT, req[1], &auth, &[], SECRET, true).unwrap()
    }

    /// 300 concurrent requests: the server sees at most 256 before it
    /// answers, all with distinct identifiers; the rest wait and then go
    /// through; every request gets its own answer.
    #[tokio::test]
    async fn identifiers_are_unique_and_outstanding_requests_are_capped() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = srv.local_addr().unwrap().port();
        let client = Arc::new(server(port, true));
        let mut tasks = Vec::new();
        for _ in 0..300 {
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                c.exchange(request, Duration::from_secs(5), 0).await
            }));
        }
        let mut buf = [0u8; 4096];
        let mut first = Vec::new();
        while first.len() < MAX_OUTSTANDING {
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            first.push((buf[..n].to_vec(), from));
        }
        let ids: HashSet<u8> = first.iter().map(|(r, _)| r[1]).collect();
        assert_eq!(ids.len(), MAX_OUTSTANDING, "identifiers in flight are distinct");
        // nothing more arrives while 256 are outstanding
        let more = tokio::time::timeout(Duration::from_millis(300), srv.recv_from(&mut buf)).await;
        assert!(more.is_err(), "a 257th request was sent while 256 were in flight");
        for (r, from) in &first {
            srv.send_to(&accept_for(r), from).await.unwrap();
        }
        for _ in 0..44 {
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            srv.send_to(&accept_for(&buf[..n]), from).await.unwrap();
        }
        for t in tasks {
            let reply = t.await.unwrap().unwrap();
            assert_eq!(reply.bytes[0], code::ACCESS_ACCEPT);
        }
    }

    /// Forged replies (bad authenticator, wrong identifier, no
    /// Message-Authenticator, another source port) are dropped; the genuine
    /// reply that follows is the one delivered.
    #[tokio::test]
    async fn forged_replies_are_dropped_and_the_genuine_one_wins() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = srv.local_addr().unwrap().port();
        let client = Arc::new(server(port, true));
        let c = client.clone();
        let call = tokio::spawn(async move { c.exchange(request, Duration::from_secs(5), 0).await });
        let mut buf = [0u8; 4096];
        let (n, from) = srv.recv_from(&mut buf).await.unwrap();
        let req = buf[..n].to_vec();
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&req[4..20]);
        let genuine_reject = encode_reply(code::ACCESS_REJECT, req[1], &auth, &[], SECRET, true).unwrap();
        // from another port: valid in every other way
        other.send_to(&accept_for(&req), from).await.unwrap();
        // signed with another secret
        let wrong_secret = encode_reply(code::ACCESS_ACCEPT, req[1], &auth, &[], b"guess", true).unwrap();
        srv.send_to(&wrong_secret, from).await.unwrap();
        // no Message-Authenticator
        let bare = encode_reply(code::ACCESS_ACCEPT, req[1], &auth, &[], SECRET, false).unwrap();
        srv.send_to(&bare, from).await.unwrap();
        // another identifier
        let other_id = encode_reply(
            code::ACCESS_ACCEPT,
            req[1].wrapping_add(1),
            &auth,
            &[],
            SECRET,
            true,
        )
        .unwrap();
        srv.send_to(&other_id, from).await.unwrap();
        // garbage
        srv.send_to(&[req[1]; 3], from).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        srv.send_to(&genuine_reject, from).await.unwrap();
        let reply = call.await.unwrap().unwrap();
        assert_eq!(
            reply.bytes[0],
            code::ACCESS_REJECT,
            "the forged accepts were ignored"
        );
        assert_eq!(reply.dropped, 2, "wrong secret and missing Message-Authenticator");
        assert_eq!(reply.last_drop, Some(PacketError::MissingMessageAuthenticator));
    }

    #[tokio::test]
    async fn silence_is_a_timeout_after_every_retransmission() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = srv.local_addr().unwrap().port();
        let client = server(port, true);
        let t = std::time::Instant::now();
        let r = client.exchange(request, Duration::from_millis(100), 2).await;
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            r.unwrap_err(),
            ExchangeError::Timeout {
                attempts: 3,
                dropped: 0,
                last_drop: None
            }
        );
        // the three transmissions were the same datagram (same id, same authenticator)
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (n, _) = srv.recv_from(&mut buf).await.unwrap();
            seen.push(buf[..n].to_vec());
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]));
    }

    #[tokio::test]
    async fn a_closed_port_fails_fast() {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let client = server(port, true);
        let t = std::time::Instant::now();
        let r = client.exchange(request, Duration::from_secs(2), 3).await;
        assert_eq!(r.unwrap_err(), ExchangeError::Refused);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    /// Two requests in flight to a closed port: the first one's ICMP
    /// error is reported to whichever socket call comes next, here the
    /// second request's send. Both are refused, neither is an I/O error.
    #[tokio::test]
    async fn a_closed_port_refuses_requests_already_queued() {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let client = Arc::new(server(port, true));
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.exchange(request, Duration::from_millis(200), 3).await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap_err(), ExchangeError::Refused);
        }
    }

    /// A send that fails for another reason (a datagram too large for
    /// UDP) is an I/O error, not a closed port.
    #[tokio::test]
    async fn other_send_errors_are_io_errors() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = server(srv.local_addr().unwrap().port(), true);
        let r = client
            .exchange(|_, _| Ok(vec![0u8; 70_000]), Duration::from_secs(2), 0)
            .await;
        assert!(matches!(r, Err(ExchangeError::Io(_))), "{r:?}");
    }

    /// Every request gets a fresh random Request Authenticator (a late
    /// reply to an earlier request must not verify).
    #[tokio::test]
    async fn each_request_has_its_own_random_authenticator() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = Arc::new(server(srv.local_addr().unwrap().port(), true));
        let mut buf = [0u8; 4096];
        let mut authenticators = HashSet::new();
        for _ in 0..3 {
            let c = client.clone();
            let call = tokio::spawn(async move { c.exchange(request, Duration::from_secs(5), 0).await });
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            authenticators.insert(buf[4..20].to_vec());
            srv.send_to(&accept_for(&buf[..n]), from).await.unwrap();
            assert_eq!(call.await.unwrap().unwrap().bytes[0], code::ACCESS_ACCEPT);
        }
        assert_eq!(authenticators.len(), 3, "{authenticators:?}");
        assert!(!authenticators.contains(&vec![0u8; 16]));
    }

    /// Dropping the server stops its receive task and closes its socket.
    #[tokio::test]
    async fn a_dropped_server_closes_its_socket() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = server(srv.local_addr().unwrap().port(), true);
        let conn = client.conn().await.unwrap();
        let (socket, shared) = (Arc::downgrade(&conn.socket), Arc::downgrade(&conn.shared));
        drop(conn);
        assert!(socket.upgrade().is_some(), "open while the server lives");
        drop(client);
        for _ in 0..100 {
            if socket.upgrade().is_none() && shared.upgrade().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the receive task still holds the socket");
    }

    #[test]
    fn servers_are_labelled_host_and_port() {
        assert_eq!(server(1812, true).label(), "127.0.0.1:1812");
        let v6 = Server::new(
            ServerAddr {
                host: "::1".into(),
                port: 1645,
            },
            Secret::new("s"),
            true,
        );
        assert_eq!(v6.label(), "[::1]:1645");
    }

    #[test]
    fn exchange_errors_have_stable_codes_and_say_what_happened() {
        let cases = [
            (
                ExchangeError::Resolve("radius.invalid: no address".into()),
                "resolve_failed",
                "resolve_failed: radius.invalid: no address",
            ),
            (
                ExchangeError::Io("no randomness".into()),
                "io_error",
                "io_error: no randomness",
            ),
            (
                ExchangeError::Refused,
                "port_unreachable",
                "port_unreachable: nothing listens on the server's port",
            ),
            (
                ExchangeError::Timeout {
                    attempts: 3,
                    dropped: 0,
                    last_drop: None,
                },
                "timeout",
                "timeout: no reply to 3 transmission(s) (a wrong shared secret gets none)",
            ),
            (
                ExchangeError::Timeout {
                    attempts: 2,
                    dropped: 5,
                    last_drop: Some(PacketError::BadResponseAuthenticator),
                },
                "timeout",
                "timeout: no valid reply to 2 transmission(s); 5 reply(ies) dropped (last: bad_response_authenticator)",
            ),
            (
                ExchangeError::Encode(PacketError::PasswordTooLong),
                "encode_failed",
                "encode_failed: password_too_long",
            ),
        ];
        for (e, code, text) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(e.to_string(), text);
        }
    }
}
