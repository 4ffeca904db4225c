//! The lookups: one `GET` per connection to the daemon's read-only
//! `[host] nss_socket`, under one short deadline, after checking that the
//! socket file and the process listening on it belong to root or the
//! `gatehouse` user. Never blocks longer than the deadline; every failure
//! is [`Answer::Unavailable`].

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_sdk::proto::{NssGroup, NssGroupIds, NssGroupList, NssPasswd, NssPasswdList};
use serde::de::DeserializeOwned;

/// Where the daemon's lookup socket is unless `GATEHOUSE_NSS_SOCKET` says
/// otherwise (ignored in setuid and setgid programs).
pub const DEFAULT_SOCKET: &str = "/run/gatehouse/nss.sock";

/// How long one lookup may take, connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The most bytes read of one answer (an enumeration of many users).
const MAX_ANSWER: usize = 16 << 20;

/// What a lookup asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query<'a> {
    /// `getpwnam`.
    PasswdByName(&'a str),
    /// `getpwuid`.
    PasswdByUid(u32),
    /// `getpwent`.
    AllPasswd,
    /// `getgrnam`.
    GroupByName(&'a str),
    /// `getgrgid`.
    GroupByGid(u32),
    /// `getgrent`.
    AllGroups,
    /// `initgroups`.
    GroupsOf(&'a str),
}

impl Query<'_> {
    /// The request target.
    pub fn target(&self) -> String {
        match self {
            Self::PasswdByName(n) => format!("/v1/nss/passwd?name={}", encode(n)),
            Self::PasswdByUid(u) => format!("/v1/nss/passwd?uid={u}"),
            Self::AllPasswd => "/v1/nss/passwd".into(),
            Self::GroupByName(n) => format!("/v1/nss/group?name={}", encode(n)),
            Self::GroupByGid(g) => format!("/v1/nss/group?gid={g}"),
            Self::AllGroups => "/v1/nss/group".into(),
            Self::GroupsOf(n) => format!("/v1/nss/initgroups?name={}", encode(n)),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The outcome of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// The daemon answered with an entry.
    Found(T),
    /// The daemon knows no such entry.
    NotFound,
    /// No trusted daemon answered in time, or it answered nonsense.
    Unavailable(String),
}

impl<T> Answer<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Self::Found(t) => Answer::Found(f(t)),
            Self::NotFound => Answer::NotFound,
            Self::Unavailable(m) => Answer::Unavailable(m),
        }
    }
}

/// The socket to ask and the uids that may own it.
#[derive(Clone, Debug)]
pub struct Client<'a> {
    socket: &'a Path,
    trusted: Vec<u32>,
    timeout: Duration,
}

impl<'a> Client<'a> {
    /// A client of `socket` that trusts only `trusted` owners.
    pub fn new(socket: &'a Path, trusted: Vec<u32>, timeout: Duration) -> Self {
        Self {
            socket,
            trusted,
            timeout,
        }
    }

    fn connect(&self) -> Result<UnixStream, String> {
        gatehouse_host_socket::connect_trusted(self.socket, &self.trusted, Instant::now() + self.timeout)
            .map_err(|e| e.to_string())
    }

    /// `GET target`: the status and body.
    fn get(&self, target: &str) -> Result<(u16, Vec<u8>), String> {
        let deadline = Instant::now() + self.timeout;
        let left = || {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| "timed out".to_owned())
        };
        let mut stream = self.connect()?;
        let io = |e: std::io::Error| e.to_string();
        stream.set_write_timeout(Some(left()?)).map_err(io)?;
        let head = format!("GET {target} HTTP/1.1\r\nHost: gatehouse\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            stream.set_read_timeout(Some(left()?)).map_err(io)?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if raw.len() + n <= MAX_ANSWER => raw.extend_from_slice(&buf[..n]),
                Ok(_) => return Err("answer too large".into()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        parse(&raw)
    }

    fn ask<T: DeserializeOwned>(&self, q: &Query<'_>) -> Answer<T> {
        match self.get(&q.target()) {
            Ok((200, body)) => match serde_json::from_slice(&body) {
                Ok(v) => Answer::Found(v),
                Err(e) => Answer::Unavailable(format!("unexpected answer: {e}")),
            },
            Ok((404, _)) => Answer::NotFound,
            Ok((status, _)) => Answer::Unavailable(format!("status {status}")),
            Err(e) => Answer::Unavailable(e),
        }
    }

    /// One passwd entry.
    pub fn passwd(&self, q: &Query<'_>) -> Answer<NssPasswd> {
        self.ask(q)
    }

    /// Every passwd entry.
    pub fn all_passwd(&self) -> Answer<Vec<NssPasswd>> {
        self.ask::<NssPasswdList>(&Query::AllPasswd).map(|l| l.entries)
    }

    /// One group entry.
    pub fn group(&self, q: &Query<'_>) -> Answer<NssGroup> {
        self.ask(q)
    }

    /// Every group entry.
    pub fn all_groups(&self) -> Answer<Vec<NssGroup>> {
        self.ask::<NssGroupList>(&Query::AllGroups).map(|l| l.entries)
    }

    /// The gids of a user's groups.
    pub fn groups_of(&self, name: &str) -> Answer<Vec<u32>> {
        self.ask::<NssGroupIds>(&Query::GroupsOf(name)).map(|g| g.gids)
    }
}

/// Splits a `Connection: close` answer into status and body (no chunked
/// bodies: the daemon sends a length).
fn parse(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut status_line = head.split("\r\n").next().unwrap_or_default().split(' ');
    if !status_line.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err("not an HTTP/1 answer".into());
    }
    let status = status_line
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:"))
    {
        return Err("chunked answers are not expected".into());
    }
    Ok((status, raw[end + 4..].to_vec()))
}

/// The uids trusted to own the socket: root and the `gatehouse` user,
/// read from `passwd` (the text of `/etc/passwd`) — never through NSS,
/// which may be this very module.
pub fn trusted_uids(passwd: &str) -> Vec<u32> {
    let mut uids = vec![0];
    uids.extend(passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next() == Some("gatehouse"))
            .then(|| f.nth(1).and_then(|u| u.parse::<u32>().ok()))
            .flatten()
    }));
    uids.dedup();
    uids
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn targets_encode_names() {
        assert_eq!(Query::PasswdByName("alice").target(), "/v1/nss/passwd?name=alice");
        assert_eq!(
            Query::GroupByName("a b&uid=0").target(),
            "/v1/nss/group?name=a%20b%26uid%3D0"
        );
        assert_eq!(
            Query::GroupsOf("j\u{fc}rgen").target(),
            "/v1/nss/initgroups?name=j%C3%BCrgen"
        );
        assert_eq!(Query::PasswdByUid(70001).target(), "/v1/nss/passwd?uid=70001");
        assert_eq!(Query::GroupByGid(5).target(), "/v1/nss/group?gid=5");
        assert_eq!(Query::AllGroups.target(), "/v1/nss/group");
    }

    #[test]
    fn answers_parse_and_garbage_is_refused() {
        let (s, b) = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}").expect("answer");
        assert_eq!((s, b.as_slice()), (404, b"{}".as_slice()));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"\r\n\r\n").is_err());
        assert!(parse(b"SSH-2.0-x 200\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n").is_err());
    }

    #[test]
    fn only_root_and_the_gatehouse_user_are_trusted() {
        let passwd = "root:x:0:0::/root:/bin/sh\nmallory:x:1000:1000::/h:/bin/sh\ngatehouse:x:998:998::/var/lib/gatehouse:/usr/sbin/nologin\n";
        assert_eq!(trusted_uids(passwd), vec![0, 998]);
        assert_eq!(trusted_uids("gatehouse:x:oops:1::/:/bin/sh\n"), vec![0]);
        assert_eq!(trusted_uids(""), vec![0]);
    }

    /// A listener that accepts and never answers, in a fresh directory.
    fn silent_socket(name: &str) -> (std::path::PathBuf, std::os::unix::net::UnixListener) {
        let dir = std::env::temp_dir().join(format!("nss-gh-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        (path, listener)
    }

    #[test]
    fn a_socket_of_another_user_is_not_asked() {
        let (path, listener) = silent_socket("other");
        listener.set_nonblocking(true).expect("nonblocking");
        let owner = std::fs::metadata(&path).expect("meta").uid();
        let c = Client::new(&path, vec![owner.wrapping_add(1)], TIMEOUT);
        match c.passwd(&Query::PasswdByName("alice")) {
            Answer::Unavailable(m) => assert!(m.contains("belongs to uid"), "{m}"),
            other => panic!("asked an untrusted socket: {other:?}"),
        }
        // nothing even connected
        assert!(listener.accept().is_err());
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn a_daemon_whose_backlog_is_full_is_unavailable_within_the_timeout() {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let dir = std::env::temp_dir().join(format!("nss-gh-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let addr = SocketAddrUnix::new(&path).expect("addr");
        let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).expect("socket");
        rustix::net::bind(&listener, &addr).expect("bind");
        rustix::net::listen(&listener, 0).expect("listen");
        // fill the backlog: connect until the kernel refuses one more
        let mut held = Vec::new();
        loop {
            let fd = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::NONBLOCK,
                None,
            )
            .expect("socket");
            match rustix::net::connect(&fd, &addr) {
                Ok(()) => held.push(fd),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => panic!("connect: {e}"),
            }
            assert!(held.len() < 64, "the backlog never filled");
        }
        let owner = std::fs::metadata(&path).expect("meta").uid();
        let c = Client::new(&path, vec![owner], Duration::from_millis(300));
        let t = Instant::now();
        match c.passwd(&Query::PasswdByName("alice")) {
            Answer::Unavailable(m) => assert!(m.contains("accepts no connection"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_silent_daemon_is_unavailable_within_the_timeout() {
        let (path, _listener) = silent_socket("silent");
        let owner = std::fs::metadata(&path).expect("meta").uid();
        let c = Client::new(&path, vec![owner], Duration::from_millis(300));
        let t = Instant::now();
        assert!(matches!(c.all_passwd(), Answer::Unavailable(_)));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let missing = path.with_file_name("missing.sock");
        let c = Client::new(&missing, vec![owner], Duration::from_millis(300));
        assert!(matches!(c.groups_of("alice"), Answer::Unavailable(_)));
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
