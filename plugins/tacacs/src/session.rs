//! One TACACS+ authentication session over its own TCP connection: the
//! client sends odd sequence numbers, reads the server's even ones, and
//! checks every reply header before it reveals the body.

use std::fmt;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::packet::{
    self, BadReply, FLAG_UNENCRYPTED, HEADER_LEN, Header, MAJOR, MAX_REPLY_BODY, Reply, TYPE_AUTHEN, TooLong,
};

/// Why a session failed. Each variant has a stable [`SessionError::code`];
/// none carries a secret or a body byte.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// No connection to the server (refused, unreachable, name unknown).
    Connect(String),
    /// The session did not finish within `session_timeout`.
    Timeout,
    /// Reading or writing failed mid-session.
    Io(String),
    /// The server closed the connection before it replied (some servers
    /// do this when a request does not decode with their key).
    Closed,
    /// The reply's header is not a TACACS+ authentication reply to this
    /// session: another version, type, session id or sequence number.
    Header(&'static str),
    /// The server sent its reply in the clear although a key is
    /// configured: refused, as RFC 8907 requires (a forged reply would
    /// need no key).
    Unencrypted,
    /// The reply announces a body longer than any REPLY can be.
    Oversized,
    /// The reply body does not parse once revealed with the configured
    /// key: the server almost certainly has another key.
    WrongKey(BadReply),
    /// The session ran out of sequence numbers (more than 127 rounds).
    SequenceExhausted,
    /// A field does not fit its length (a username over 255 bytes).
    TooLong(TooLong),
}

impl SessionError {
    /// A stable snake_case code for logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect_failed",
            Self::Timeout => "timeout",
            Self::Io(_) => "io_error",
            Self::Closed => "connection_closed",
            Self::Header(_) => "bad_header",
            Self::Unencrypted => "unencrypted_reply",
            Self::Oversized => "oversized_reply",
            Self::WrongKey(_) => "wrong_key",
            Self::SequenceExhausted => "sequence_exhausted",
            Self::TooLong(_) => "field_too_long",
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            Self::Connect(e) => write!(f, "{code}: cannot connect: {e}"),
            Self::Timeout => write!(f, "{code}: no answer within session_timeout"),
            Self::Io(e) => write!(f, "{code}: {e}"),
            Self::Closed => write!(
                f,
                "{code}: the server closed the connection without a reply (is the secret the server's key?)"
            ),
            Self::Header(what) => write!(f, "{code}: the reply has another {what}"),
            Self::Unencrypted => write!(
                f,
                "{code}: the server replied without obfuscation although a secret is configured; refused"
            ),
            Self::Oversized => write!(f, "{code}: the reply announces an impossible length"),
            Self::WrongKey(why) => write!(
                f,
                "{code}: the reply does not decode with the configured secret ({}): the server has another key",
                match why {
                    BadReply::Short => "body too short",
                    BadReply::Lengths => "field lengths do not match the body",
                    BadReply::Status(_) => "unknown status",
                }
            ),
            Self::SequenceExhausted => write!(f, "{code}: the session went on too long"),
            Self::TooLong(t) => write!(f, "{code}: {} is longer than {} bytes", t.field, t.max),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<TooLong> for SessionError {
    fn from(t: TooLong) -> Self {
        Self::TooLong(t)
    }
}

/// A random session id (RFC 8907 §4.1: cryptographically random).
pub fn random_session_id() -> Result<u32, SessionError> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| SessionError::Io(format!("no random numbers: {e}")))?;
    Ok(u32::from_be_bytes(b))
}

/// An open session. Dropping it closes the connection.
pub struct Session {
    stream: TcpStream,
    key: Vec<u8>,
    version: u8,
    session_id: u32,
    /// The sequence number of the last packet sent.
    seq_no: u8,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.session_id)
            .field("seq_no", &self.seq_no)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects to `host:port` (each resolved address in turn). The
    /// session's packets carry `minor` as their minor version.
    pub async fn connect(host: &str, port: u16, key: &[u8], minor: u8) -> Result<Self, SessionError> {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| SessionError::Connect(format!("{host}:{port}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            key: key.to_vec(),
            version: MAJOR << 4 | minor,
            session_id: random_session_id()?,
            seq_no: 0,
        })
    }

    /// Sends one body (START first, then CONTINUEs), obfuscated.
    pub async fn send(&mut self, mut body: Vec<u8>) -> Result<(), SessionError> {
        // The client's numbers are odd; the next one must leave room for
        // the server's even reply (255 is the last usable number).
        let seq_no = if self.seq_no == 0 {
            1
        } else {
            self.seq_no
                .checked_add(2)
                .ok_or(SessionError::SequenceExhausted)?
        };
        if seq_no == 255 {
            return Err(SessionError::SequenceExhausted);
        }
        let length = u32::try_from(body.len()).map_err(|_| {
            SessionError::TooLong(TooLong {
                field: "body",
                max: u32::MAX as usize,
            })
        })?;
        let header = Header {
            version: self.version,
            kind: TYPE_AUTHEN,
            seq_no,
            flags: 0,
            session_id: self.session_id,
            length,
        };
        packet::obfuscate(&mut body, self.session_id, &self.key, self.version, seq_no);
        let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
        frame.extend_from_slice(&header.encode());
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| SessionError::Io(format!("sending: {e}")))?;
        self.seq_no = seq_no;
        Ok(())
    }

    /// Reads the reply to the last packet sent, checks its header and
    /// reveals and parses its body.
    pub async fn receive(&mut self) -> Result<Reply, SessionError> {
        let mut hb = [0u8; HEADER_LEN];
        read_exact(&mut self.stream, &mut hb).await?;
        let h = Header::decode(&hb);
        check_header(&h, self.session_id, self.seq_no.wrapping_add(1))?;
        // The length was checked against MAX_REPLY_BODY: small enough.
        let mut body = vec![0u8; h.length as usize];
        read_exact(&mut self.stream, &mut body).await?;
        packet::obfuscate(&mut body, self.session_id, &self.key, h.version, h.seq_no);
        Reply::decode(&body).map_err(SessionError::WrongKey)
    }

    /// Tells the server the client gives up (a CONTINUE with the abort
    /// flag), without waiting for an answer; errors are ignored, the
    /// connection closes when the session is dropped.
    pub async fn abort(mut self) {
        if let Ok(body) = packet::encode_continue(b"", packet::CONTINUE_FLAG_ABORT) {
            let _ = self.send(body).await;
        }
        let _ = self.stream.shutdown().await;
    }
}

/// The checks of a reply header, before its body is read.
pub fn check_header(h: &Header, session_id: u32, seq_no: u8) -> Result<(), SessionError> {
    if h.major() != MAJOR {
        return Err(SessionError::Header("major version"));
    }
    if h.kind != TYPE_AUTHEN {
        return Err(SessionError::Header("packet type"));
    }
    if h.session_id != session_id {
        return Err(SessionError::Header("session id"));
    }
    if h.seq_no != seq_no {
        return Err(SessionError::Header("sequence number"));
    }
    if h.flags & FLAG_UNENCRYPTED != 0 {
        return Err(SessionError::Unencrypted);
    }
    if h.length as usize > MAX_REPLY_BODY {
        return Err(SessionError::Oversized);
    }
    Ok(())
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), SessionError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(SessionError::Closed),
        Err(e) => Err(SessionError::Io(format!("reading: {e}"))),
    }
}

/// Parses a whole reply packet as it arrives (header then body) for the
/// given session and sequence number: the fuzz target's entry point, the
/// same checks [`Session::receive`] makes.
pub fn parse_reply_packet(
    packet: &[u8],
    key: &[u8],
    session_id: u32,
    seq_no: u8,
) -> Result<Reply, SessionError> {
    let (head, body) = packet.split_at_checked(HEADER_LEN).ok_or(SessionError::Closed)?;
    let mut hb = [0u8; HEADER_LEN];
    hb.copy_from_slice(head);
    let h = Header::decode(&hb);
    check_header(&h, session_id, seq_no)?;
    let mut body = body
        .get(..h.length as usize)
        .ok_or(SessionError::Closed)?
        .to_vec();
    packet::obfuscate(&mut body, session_id, key, h.version, h.seq_no);
    Reply::decode(&body).map_err(SessionError::WrongKey)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::packet::Status;

    fn reply_packet(key: &[u8], sid: u32, seq: u8, flags: u8, body: &[u8]) -> Vec<u8> {
        let h = Header {
            version: 0xc0,
            kind: TYPE_AUTHEN,
            seq_no: seq,
            flags,
            session_id: sid,
            length: body.len() as u32,
        };
        let mut b = body.to_vec();
        if flags & FLAG_UNENCRYPTED == 0 {
            packet::obfuscate(&mut b, sid, key, 0xc0, seq);
        }
        let mut out = h.encode().to_vec();
        out.extend_from_slice(&b);
        out
    }

    #[test]
    fn a_good_reply_parses() {
        let p = reply_packet(b"k", 9, 2, 0, &[1, 0, 0, 2, 0, 0, b'o', b'k']);
        let r = parse_reply_packet(&p, b"k", 9, 2).unwrap();
        assert_eq!(r.status, Status::Pass);
        assert_eq!(r.server_msg, b"ok");
    }

    #[test]
    fn replies_for_another_session_or_step_are_refused() {
        let p = reply_packet(b"k", 9, 2, 0, &[1, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_reply_packet(&p, b"k", 10, 2),
            Err(SessionError::Header("session id"))
        );
        assert_eq!(
            parse_reply_packet(&p, b"k", 9, 4),
            Err(SessionError::Header("sequence number"))
        );
        let mut q = p.clone();
        q[0] = 0xd0;
        assert_eq!(
            parse_reply_packet(&q, b"k", 9, 2),
            Err(SessionError::Header("major version"))
        );
        q = p.clone();
        q[1] = 2;
        assert_eq!(
            parse_reply_packet(&q, b"k", 9, 2),
            Err(SessionError::Header("packet type"))
        );
    }

    /// A forged PASS in the clear (no key needed to make one) is refused.
    #[test]
    fn an_unobfuscated_pass_is_refused() {
        let p = reply_packet(b"k", 9, 2, FLAG_UNENCRYPTED, &[1, 0, 0, 0, 0, 0]);
        assert_eq!(parse_reply_packet(&p, b"k", 9, 2), Err(SessionError::Unencrypted));
    }

    #[test]
    fn a_wrong_key_is_told_apart() {
        let p = reply_packet(
            b"server-key",
            9,
            2,
            0,
            &[2, 0, 0, 4, 0, 0, b'n', b'o', b'p', b'e'],
        );
        let e = parse_reply_packet(&p, b"client-key", 9, 2).unwrap_err();
        assert_eq!(e.code(), "wrong_key", "{e}");
    }

    #[test]
    fn oversized_lengths_are_refused_before_reading() {
        let mut p = reply_packet(b"k", 9, 2, 0, &[1, 0, 0, 0, 0, 0]);
        p[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse_reply_packet(&p, b"k", 9, 2), Err(SessionError::Oversized));
        p[8..12].copy_from_slice(&(MAX_REPLY_BODY as u32 + 1).to_be_bytes());
        assert_eq!(parse_reply_packet(&p, b"k", 9, 2), Err(SessionError::Oversized));
    }

    /// The longest REPLY there can be (both fields 65535 bytes) is read;
    /// a header announcing one byte more is refused.
    #[test]
    fn the_longest_possible_reply_is_accepted_and_no_longer() {
        let mut body = vec![7, 0, 0xff, 0xff, 0xff, 0xff];
        body.extend(std::iter::repeat_n(b'm', 0xffff));
        body.extend(std::iter::repeat_n(b'd', 0xffff));
        let p = reply_packet(b"k", 9, 2, 0, &body);
        let r = parse_reply_packet(&p, b"k", 9, 2).unwrap();
        assert_eq!(r.status, Status::Error);
        assert_eq!((r.server_msg.len(), r.data.len()), (0xffff, 0xffff));
        let mut h = Header::decode(p[..HEADER_LEN].try_into().unwrap());
        assert_eq!(check_header(&h, 9, 2), Ok(()));
        h.length += 1;
        assert_eq!(check_header(&h, 9, 2), Err(SessionError::Oversized));
    }

    #[test]
    fn session_ids_are_random() {
        let ids: Vec<u32> = (0..4).map(|_| random_session_id().unwrap()).collect();
        assert!(ids.windows(2).any(|w| w[0] != w[1]), "{ids:?}");
    }

    /// Each session draws its own random id (RFC 8907 §4.1), and a
    /// session's debug output names it but not its key.
    #[tokio::test]
    async fn each_session_has_its_own_id_and_hides_its_key() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let a = Session::connect("127.0.0.1", port, b"key-not-for-logs", 0)
            .await
            .unwrap();
        let b = Session::connect("127.0.0.1", port, b"key-not-for-logs", 1)
            .await
            .unwrap();
        assert_ne!(a.session_id, b.session_id);
        assert_eq!((a.version, b.version), (0xc0, 0xc1));
        let shown = format!("{a:?}");
        assert!(shown.starts_with("Session"), "{shown}");
        assert!(shown.contains(&a.session_id.to_string()), "{shown}");
        assert!(!shown.contains("key-not-for-logs"), "{shown}");
        assert!(!shown.contains(&format!("{:?}", b"key-not-for-logs")), "{shown}");
    }

    /// A connection the server resets is an I/O error; only a clean close
    /// before the reply is `connection_closed`.
    #[tokio::test]
    async fn a_reset_connection_is_an_io_error_and_a_close_is_closed() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for reset in [true, false] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut hb = [0u8; HEADER_LEN];
                s.read_exact(&mut hb).await.unwrap();
                let mut body = vec![0u8; Header::decode(&hb).length as usize];
                s.read_exact(&mut body).await.unwrap();
                if reset {
                    s.set_zero_linger().unwrap();
                }
                drop(s);
            }
        });
        for expected in ["io_error", "connection_closed"] {
            let mut session = Session::connect("127.0.0.1", port, b"k", 0).await.unwrap();
            session
                .send(packet::encode_continue(b"x", 0).unwrap())
                .await
                .unwrap();
            let e = session.receive().await.unwrap_err();
            assert_eq!(e.code(), expected, "{e}");
        }
        server.await.unwrap();
    }
}
