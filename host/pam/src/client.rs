//! A small blocking client for the daemon's socket: one HTTP/1.1 request
//! per connection, every step under one deadline, and the socket's owner
//! and listener checked before anything is sent (whoever could replace the
//! socket file would otherwise collect the passwords).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What went wrong talking to the daemon.
pub use gatehouse_host_socket::ExchangeError as ClientError;

/// The most bytes read of one answer.
const MAX_ANSWER: usize = 1 << 20;

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

    /// Sends `body` as JSON with `method` to `path`.
    pub fn send<B: Serialize>(&self, method: &str, path: &str, body: &B) -> Result<Answer, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let reply =
            gatehouse_host_socket::exchange(self.socket, &self.trusted, self.deadline, &request, MAX_ANSWER)?;
        Ok(Answer {
            status: reply.status,
            body: reply.body,
        })
    }
}

/// The uids trusted to own the socket: root, the calling process's own
/// uid, the `gatehouse` user (from `/etc/passwd`, never through NSS, which
/// may be this very daemon) and `extra`.
pub fn trusted_uids(extra: Option<u32>) -> Vec<u32> {
    let mut uids = vec![0, rustix::process::geteuid().as_raw()];
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    uids.extend(gatehouse_host_socket::gatehouse_uid(&passwd));
    uids.extend(extra);
    uids.sort_unstable();
    uids.dedup();
    uids
}

#[cfg(test)]
mod tests {
    use super::*;

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
