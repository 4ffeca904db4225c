//! How the host modules (`pam_gatehouse.so`, `libnss_gatehouse.so.2`)
//! talk to the daemon: one HTTP/1.1 request per Unix stream connection,
//! every step under one deadline, and only to a socket whose file and whose
//! listening process belong to a trusted uid. Both modules run inside
//! other programs (sshd, sudo, every process that looks a user up): they
//! must never hang on the daemon, and never talk to an impostor.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a request got no usable answer.
#[derive(Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// The socket is missing or refuses, or the daemon accepts or answers
    /// nothing before the deadline.
    Unavailable(String),
    /// The socket file or its listener belongs to an untrusted uid.
    Untrusted(String),
    /// The answer is not one the modules understand (not HTTP/1, chunked,
    /// too large).
    Protocol(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "daemon unavailable: {m}"),
            Self::Untrusted(m) => write!(f, "untrusted socket: {m}"),
            Self::Protocol(m) => write!(f, "unexpected answer: {m}"),
        }
    }
}

impl std::error::Error for ExchangeError {}

/// One answer: the status and the body.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends `request` (a whole HTTP/1.1 request with `Connection: close`) to
/// `socket` when it is trusted, and reads the answer, at most `max` bytes,
/// all by `deadline`.
pub fn exchange(
    socket: &Path,
    trusted: &[u32],
    deadline: Instant,
    request: &[u8],
    max: usize,
) -> Result<Reply, ExchangeError> {
    let mut stream = connect_trusted(socket, trusted, deadline)?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ExchangeError::Unavailable("timed out".into()))
    };
    let io = |e: std::io::Error| ExchangeError::Unavailable(e.to_string());
    stream.set_write_timeout(Some(left()?)).map_err(io)?;
    stream.write_all(request).map_err(io)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        stream.set_read_timeout(Some(left()?)).map_err(io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if raw.len() + n <= max => raw.extend_from_slice(&buf[..n]),
            Ok(_) => return Err(ExchangeError::Protocol("answer too large".into())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    parse(&raw).map_err(|m| ExchangeError::Protocol(m.into()))
}

/// Splits a `Connection: close` answer into status and body (no chunked
/// bodies: the daemon sends a length).
pub fn parse(raw: &[u8]) -> Result<Reply, &'static str> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut status_line = head.split("\r\n").next().unwrap_or_default().split(' ');
    if !status_line.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err("not an HTTP/1 answer");
    }
    let status = status_line
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:"))
    {
        return Err("chunked answers are not expected");
    }
    Ok(Reply {
        status,
        body: raw[end + 4..].to_vec(),
    })
}

/// The uid of the `gatehouse` user in `passwd` (the text of
/// `/etc/passwd`), read directly: never through NSS, which may be the
/// very module asking.
pub fn gatehouse_uid(passwd: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next() == Some("gatehouse"))
            .then(|| f.nth(1).and_then(|u| u.parse::<u32>().ok()))
            .flatten()
    })
}

/// Connects to `socket` by `deadline` when the file and the process
/// listening on it belong to one of `trusted`. The connection is
/// blocking; callers bound each read and write by the same deadline.
fn connect_trusted(socket: &Path, trusted: &[u32], deadline: Instant) -> Result<UnixStream, ExchangeError> {
    let unavailable =
        |e: &dyn std::fmt::Display| ExchangeError::Unavailable(format!("{}: {e}", socket.display()));
    let owner = std::fs::metadata(socket).map_err(|e| unavailable(&e))?.uid();
    if !trusted.contains(&owner) {
        return Err(ExchangeError::Untrusted(format!(
            "{} belongs to uid {owner}",
            socket.display()
        )));
    }
    let stream = connect_by(socket, deadline).map_err(|e| unavailable(&e))?;
    // The file may be swapped between the check and the connect; the
    // listener's credentials cannot.
    let peer = rustix::net::sockopt::socket_peercred(&stream)
        .map_err(|e| unavailable(&e))?
        .uid
        .as_raw();
    if !trusted.contains(&peer) {
        return Err(ExchangeError::Untrusted(format!(
            "the process listening on {} runs as uid {peer}",
            socket.display()
        )));
    }
    Ok(stream)
}

/// Connects by `deadline`. A plain blocking `connect` waits for as long as
/// a hung daemon's listen backlog stays full; a non-blocking one answers
/// `EAGAIN` at once, and is tried again until the deadline.
fn connect_by(path: &Path, deadline: Instant) -> std::io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => break,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(rustix::io::Errno::AGAIN) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the daemon accepts no connection",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::net::UnixListener;

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn a_trusted_listener_is_reached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _l = UnixListener::bind(&path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        assert!(connect_trusted(&path, &[me()], deadline).is_ok());
        // a file of another owner is not even connected to
        let e = connect_trusted(&path, &[me().wrapping_add(1)], deadline).unwrap_err();
        assert!(matches!(e, ExchangeError::Untrusted(_)), "{e}");
        // and no socket at all is unavailable
        let e = connect_trusted(&dir.path().join("none"), &[me()], deadline).unwrap_err();
        assert!(matches!(e, ExchangeError::Unavailable(_)), "{e}");
    }

    /// A daemon stand-in on `path` that reads one request and answers
    /// `answer` in two writes, then closes.
    fn answering(path: &Path, answer: &'static [u8]) -> std::thread::JoinHandle<Vec<u8>> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 256];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed before its request ended");
                request.extend_from_slice(&buf[..n]);
            }
            let (first, rest) = answer.split_at(answer.len() / 2);
            conn.write_all(first).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            conn.write_all(rest).unwrap();
            request
        })
    }

    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 17\r\n\r\n{\"user\":\"alice\"}";

    #[test]
    fn an_answer_is_read_whole_up_to_the_limit_and_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let request = b"GET /v1/nss/passwd?name=alice HTTP/1.1\r\nconnection: close\r\n\r\n";
        // exactly the limit: read across both writes
        let path = dir.path().join("a.sock");
        let server = answering(&path, ANSWER);
        let deadline = Instant::now() + Duration::from_secs(2);
        let reply = exchange(&path, &[me()], deadline, request, ANSWER.len()).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"{\"user\":\"alice\"}");
        assert_eq!(server.join().unwrap(), request);
        // one byte over: refused, not cut short
        let path = dir.path().join("b.sock");
        let server = answering(&path, ANSWER);
        let e = exchange(&path, &[me()], deadline, request, ANSWER.len() - 1).unwrap_err();
        assert_eq!(e, ExchangeError::Protocol("answer too large".into()));
        assert_eq!(e.to_string(), "unexpected answer: answer too large");
        let _ = server.join();
        // a deadline already past: nothing is sent
        let path = dir.path().join("c.sock");
        let _listener = UnixListener::bind(&path).unwrap();
        let e = exchange(&path, &[me()], Instant::now(), request, 1024).unwrap_err();
        assert!(matches!(e, ExchangeError::Unavailable(_)), "{e}");
    }

    #[test]
    fn errors_say_what_failed() {
        assert_eq!(
            ExchangeError::Unavailable("no socket".into()).to_string(),
            "daemon unavailable: no socket"
        );
        assert_eq!(
            ExchangeError::Untrusted("uid 1000".into()).to_string(),
            "untrusted socket: uid 1000"
        );
    }

    #[test]
    fn answers_parse_and_garbage_is_refused() {
        let a = parse(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (401, b"{}".as_slice()));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"\r\n\r\n").is_err());
        assert!(parse(b"SSH-2.0-x 200\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n").is_err());
    }

    #[test]
    fn the_gatehouse_user_is_read_from_passwd_text() {
        let passwd = "root:x:0:0::/root:/bin/sh\nmallory:x:1000:1000::/h:/bin/sh\ngatehouse:x:998:998::/var/lib/gatehouse:/usr/sbin/nologin\n";
        assert_eq!(gatehouse_uid(passwd), Some(998));
        assert_eq!(gatehouse_uid("gatehouse:x:oops:1::/:/bin/sh\n"), None);
        assert_eq!(gatehouse_uid("gatehousex:x:5:5::/:/bin/sh\n"), None);
        assert_eq!(gatehouse_uid(""), None);
    }

    #[test]
    fn a_silent_daemon_is_unavailable_by_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _l = UnixListener::bind(&path).unwrap();
        let started = Instant::now();
        let e = exchange(
            &path,
            &[me()],
            started + Duration::from_millis(300),
            b"GET / HTTP/1.1\r\n\r\n",
            1024,
        )
        .unwrap_err();
        assert!(matches!(e, ExchangeError::Unavailable(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_daemon_whose_backlog_is_full_is_given_up_by_the_deadline() {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let addr = SocketAddrUnix::new(&path).unwrap();
        // a listener that never accepts, its backlog filled until the
        // kernel refuses one more
        let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
        rustix::net::bind(&listener, &addr).unwrap();
        rustix::net::listen(&listener, 0).unwrap();
        let mut held = Vec::new();
        loop {
            let fd = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::NONBLOCK,
                None,
            )
            .unwrap();
            match rustix::net::connect(&fd, &addr) {
                Ok(()) => held.push(fd),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => panic!("connect: {e}"),
            }
            assert!(held.len() < 64, "the backlog never filled");
        }
        let started = Instant::now();
        let e = exchange(
            &path,
            &[me()],
            started + Duration::from_millis(300),
            b"GET / HTTP/1.1\r\n\r\n",
            1024,
        )
        .unwrap_err();
        assert!(
            matches!(&e, ExchangeError::Unavailable(m) if m.contains("accepts no connection")),
            "{e}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
