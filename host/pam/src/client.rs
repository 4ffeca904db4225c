//! A small blocking client for the daemon's socket: one HTTP/1.1 request
//! per connection, every step under one deadline, and the socket's owner
//! and listener checked before anything is sent (whoever could replace the
//! socket file would otherwise collect the passwords).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use gatehouse_host_socket::ConnectError;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most bytes read of one answer.
const MAX_ANSWER: usize = 1 << 20;

/// What went wrong talking to the daemon.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon answered in time, or the socket is missing or refused.
    Unavailable(String),
    /// The socket file or its listener belongs to an untrusted uid.
    Untrusted(String),
    /// The daemon answered something this module does not understand.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "daemon unavailable: {m}"),
            Self::Untrusted(m) => write!(f, "untrusted socket: {m}"),
            Self::Protocol(m) => write!(f, "unexpected answer: {m}"),
        }
    }
}

/// One answer: the status and the JSON body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body (JSON for every route this module uses).
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Protocol(format!("status {}: {e}", self.status)))
    }

    /// The stable error code of a non-2xx answer (`""` when there is none).
    pub fn error_code(&self) -> String {
        self.json::<gatehouse_sdk::proto::ErrorBody>()
            .map(|b| b.error.code)
            .unwrap_or_default()
    }
}

/// The daemon's socket, the uids trusted to own it, and a deadline shared
/// by every request of one PAM call.
pub struct Client<'a> {
    socket: &'a Path,
    trusted: Vec<u32>,
    deadline: Instant,
}

impl<'a> Client<'a> {
    /// A client whose requests all end by `now + timeout`.
    pub fn new(socket: &'a Path, trusted: Vec<u32>, timeout: Duration) -> Self {
        Self {
            socket,
            trusted,
            deadline: Instant::now() + timeout,
        }
    }

    fn left(&self) -> Result<Duration, ClientError> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ClientError::Unavailable("timed out".into()))
    }

    fn connect(&self) -> Result<UnixStream, ClientError> {
        gatehouse_host_socket::connect_trusted(self.socket, &self.trusted, self.deadline).map_err(|e| match e
        {
            ConnectError::Unavailable(m) => ClientError::Unavailable(m),
            ConnectError::Untrusted(m) => ClientError::Untrusted(m),
        })
    }

    /// Sends `body` as JSON with `method` to `path`.
    pub fn send<B: Serialize>(&self, method: &str, path: &str, body: &B) -> Result<Answer, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut stream = self.connect()?;
        let io = |e: std::io::Error| ClientError::Unavailable(e.to_string());
        stream.set_write_timeout(Some(self.left()?)).map_err(io)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(io)?;
        stream.write_all(&body).map_err(io)?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            stream.set_read_timeout(Some(self.left()?)).map_err(io)?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if raw.len() + n <= MAX_ANSWER => raw.extend_from_slice(&buf[..n]),
                Ok(_) => return Err(ClientError::Protocol("answer too large".into())),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        parse(&raw)
    }
}

/// Splits a `Connection: close` answer into status and body.
fn parse(raw: &[u8]) -> Result<Answer, ClientError> {
    let bad = |m: &str| ClientError::Protocol(m.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:"))
    {
        return Err(bad("chunked answers are not expected"));
    }
    Ok(Answer {
        status,
        body: raw[end + 4..].to_vec(),
    })
}

/// The uids trusted to own the socket: root, the calling process's own
/// uid, the `gatehouse` user (from `/etc/passwd`, never through NSS, which
/// may be this very daemon) and `extra`.
pub fn trusted_uids(extra: Option<u32>) -> Vec<u32> {
    let mut uids = vec![0, rustix::process::geteuid().as_raw()];
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    uids.extend(passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next() == Some("gatehouse"))
            .then(|| f.nth(1).and_then(|u| u.parse::<u32>().ok()))
            .flatten()
    }));
    uids.extend(extra);
    uids.sort_unstable();
    uids.dedup();
    uids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_and_garbage_is_refused() {
        let a = parse(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}").expect("answer");
        assert_eq!((a.status, a.body.as_slice()), (401, b"{}".as_slice()));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n").is_err());
    }

    /// A listener that accepts and never answers, in a fresh directory.
    fn silent_socket(name: &str) -> (std::path::PathBuf, std::os::unix::net::UnixListener) {
        let dir = std::env::temp_dir().join(format!("pam-gh-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        (path, listener)
    }

    #[test]
    fn a_socket_of_another_user_gets_nothing() {
        let (path, _listener) = silent_socket("other");
        let me = rustix::process::geteuid().as_raw();
        let other = me.wrapping_add(12345);
        let c = Client::new(&path, vec![other], Duration::from_secs(1));
        match c.send("POST", "/v1/login", &serde_json::json!({})) {
            Err(ClientError::Untrusted(m)) => assert!(m.contains(&me.to_string()), "{m}"),
            other => panic!("sent to an untrusted socket: {other:?}"),
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn a_silent_daemon_is_unavailable_within_the_timeout() {
        let (path, _listener) = silent_socket("silent");
        let me = rustix::process::geteuid().as_raw();
        let c = Client::new(&path, vec![me], Duration::from_millis(300));
        let t = Instant::now();
        assert!(matches!(
            c.send("POST", "/v1/login", &serde_json::json!({})),
            Err(ClientError::Unavailable(_))
        ));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
