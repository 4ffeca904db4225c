//! A small client for the socket API: one keep-alive HTTP/1.1 connection
//! over the Unix socket. Used by the `gatehouse` CLI, the end-to-end tests
//! and the benchmarks; it depends only on the wire types.

use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use gatehouse_sdk::proto::ErrorBody;

/// Client failures (transport, not API errors: those are responses).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("request failed: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built.
    #[error("invalid request: {0}")]
    Request(#[from] http::Error),
    /// A body was not the expected JSON.
    #[error("unexpected answer: {0}")]
    Decode(#[from] serde_json::Error),
    /// The socket file, or the process listening on it, belongs to a user
    /// the daemon is not expected to run as: nothing was sent.
    #[error(
        "refusing to talk to {path}: {what} uid {uid}, not root or a daemon user ({trusted}); if gatehoused runs as another user, name it with --daemon-user or GATEHOUSE_DAEMON_USER"
    )]
    Untrusted {
        /// Socket path.
        path: String,
        /// "the socket file belongs to" or "the listening process runs as".
        what: &'static str,
        /// The uid found.
        uid: u32,
        /// The uids accepted, for the message.
        trusted: String,
    },
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Answer {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The body as untyped JSON (`Null` when empty or not JSON).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The error body, for non-2xx answers.
    pub fn error(&self) -> Option<ErrorBody> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The error code, for non-2xx answers.
    pub fn code(&self) -> Option<String> {
        self.error().map(|e| e.error.code)
    }

    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One connection to the daemon.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        Self::handshake(stream).await
    }

    /// Connects to the socket at `path` only if both the socket file and
    /// the process listening on it (its `SO_PEERCRED`) belong to one of
    /// `trusted` (root, and the users gatehoused may run as). Anyone who
    /// can replace the socket file in its directory could otherwise
    /// collect the passwords and tokens sent to it.
    pub async fn connect_trusted(path: &Path, trusted: &[u32]) -> Result<Self, ClientError> {
        use std::os::unix::fs::MetadataExt;
        let list = || trusted.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let connect_err = |source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        };
        let owner = std::fs::metadata(path).map_err(connect_err)?.uid();
        if !trusted.contains(&owner) {
            return Err(ClientError::Untrusted {
                path: path.display().to_string(),
                what: "the socket file belongs to",
                uid: owner,
                trusted: list(),
            });
        }
        let stream = UnixStream::connect(path).await.map_err(connect_err)?;
        // The file can be swapped between the check and the connect; the
        // peer's credentials cannot.
        let peer = stream.peer_cred().map_err(connect_err)?.uid();
        if !trusted.contains(&peer) {
            return Err(ClientError::Untrusted {
                path: path.display().to_string(),
                what: "the listening process runs as",
                uid: peer,
                trusted: list(),
            });
        }
        Self::handshake(stream).await
    }

    async fn handshake(stream: UnixStream) -> Result<Self, ClientError> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Sends a request with an optional raw body.
    pub async fn send_raw(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let headers: Vec<(&str, &str)> = content_type.map(|ct| ("content-type", ct)).into_iter().collect();
        self.request(method, path, &headers, body).await
    }

    /// Sends a request with headers and a body.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "gatehouse");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder.body(Full::new(body))?;
        self.sender.ready().await?;
        let res = self.sender.send_request(req).await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// A request with extra headers and no body.
    pub async fn send_raw_with(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, ClientError> {
        self.request(method, path, headers, Bytes::new()).await
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<Answer, ClientError> {
        self.send_raw(Method::GET, path, None, Bytes::new()).await
    }

    /// `DELETE path`.
    pub async fn delete(&mut self, path: &str) -> Result<Answer, ClientError> {
        self.send_raw(Method::DELETE, path, None, Bytes::new()).await
    }

    /// A JSON request.
    pub async fn send_json<T: Serialize>(
        &mut self,
        method: Method,
        path: &str,
        body: &T,
    ) -> Result<Answer, ClientError> {
        let bytes = serde_json::to_vec(body)?;
        self.send_raw(method, path, Some("application/json"), Bytes::from(bytes))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: Serialize>(&mut self, path: &str, body: &T) -> Result<Answer, ClientError> {
        self.send_json(Method::POST, path, body).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put<T: Serialize>(&mut self, path: &str, body: &T) -> Result<Answer, ClientError> {
        self.send_json(Method::PUT, path, body).await
    }
}

/// Percent-encodes a path segment (for usernames in URLs).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes [`encode_segment`] (any `%XX` escape): `None` for a broken
/// escape or bytes that are not UTF-8. `+` stays a plus (as in paths).
pub fn decode_segment(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The uid of `user`: a number, or a name looked up in `/etc/passwd`.
/// `None` when there is no such user.
pub fn lookup_uid(user: &str) -> Option<u32> {
    if let Ok(n) = user.parse::<u32>() {
        return Some(n);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next() == Some(user))
            .then(|| f.nth(1).and_then(|uid| uid.parse().ok()))
            .flatten()
    })
}
