//! The lookups: one `GET` per connection to the daemon's read-only
//! `[host] nss_socket`, under one short deadline, after checking that the
//! socket file and the process listening on it belong to root or the
//! `gatehouse` user. Never blocks longer than the deadline; every failure
//! is [`Answer::Unavailable`].

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

    /// `GET target`: the status and body.
    fn get(&self, target: &str) -> Result<(u16, Vec<u8>), String> {
        let request = format!("GET {target} HTTP/1.1\r\nHost: gatehouse\r\nConnection: close\r\n\r\n");
        gatehouse_host_socket::exchange(
            self.socket,
            &self.trusted,
            Instant::now() + self.timeout,
            request.as_bytes(),
            MAX_ANSWER,
        )
        .map(|r| (r.status, r.body))
        .map_err(|e| e.to_string())
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

/// The uids trusted to own the socket: root and the `gatehouse` user,
/// read from `passwd` (the text of `/etc/passwd`) — never through NSS,
/// which may be this very module.
pub fn trusted_uids(passwd: &str) -> Vec<u32> {
    let mut uids = vec![0];
    uids.extend(gatehouse_host_socket::gatehouse_uid(passwd));
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
