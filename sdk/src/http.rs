//! The shared HTTP client (feature `http`): what a plugin uses to reach an
//! identity provider, built from the daemon's `[http]` settings
//! ([`HttpSettings`]), reachable as [`Context::http_client`](crate::Context::http_client).
//!
//! The rules are the same for every plugin and every plugin mode:
//! - **https only.** A plain `http://` URL is refused before anything is
//!   sent, unless the operator set `danger_allow_http` (or a plugin
//!   explicitly allows loopback addresses, see
//!   [`HttpClientBuilder::allow_loopback_http`]).
//! - **`ca_file` adds roots.** Its certificates are trusted in addition to
//!   the system's, never instead of them.
//! - **No redirects are followed**: a 3xx is returned as it is, so a
//!   server cannot send a request elsewhere (or to plain http).
//! - Errors never show a URL's user info or query (they may hold secrets),
//!   nor the proxy.
//!
//! ```no_run
//! # async fn demo(ctx: &gatehouse_sdk::Context) -> Result<(), gatehouse_sdk::PluginError> {
//! let client = ctx.http_client()?;
//! let doc: serde_json::Value = client
//!     .get_json("https://idp.example.com/.well-known/openid-configuration", 64 * 1024)
//!     .await?;
//! # let _ = doc;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

pub use reqwest;
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;

use crate::{HttpSettings, PluginError};

/// Which plain `http://` URLs a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlainHttp {
    /// None: https only (the default).
    Refused,
    /// Only loopback hosts (`127.0.0.0/8`, `::1`, `localhost`): traffic that
    /// never leaves the machine.
    Loopback,
    /// Any host (`danger_allow_http`).
    Allowed,
}

/// Why an HTTP operation failed. [`HttpError::code`] is stable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// A plain `http://` URL without `danger_allow_http`.
    PlainHttpRefused {
        /// The URL (without user info or query).
        url: String,
    },
    /// Not an `https://` (or `http://`) URL.
    InvalidUrl {
        /// The URL as far as it is safe to show.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The extra CA file cannot be used.
    CaFile {
        /// Its path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The proxy setting cannot be used (the value itself is not shown).
    Proxy {
        /// What is wrong.
        reason: String,
    },
    /// The client could not be built.
    Client {
        /// What is wrong.
        reason: String,
    },
    /// The request failed: connection, TLS, timeout, reading the body.
    Request {
        /// The URL (without user info or query).
        url: String,
        /// The error and its causes.
        reason: String,
    },
    /// The server answered with a status other than 2xx.
    Status {
        /// The URL (without user info or query).
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body is larger than the caller's limit.
    TooLarge {
        /// The URL (without user info or query).
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not the JSON the caller expected.
    Json {
        /// The URL (without user info or query).
        url: String,
        /// The parser's message.
        reason: String,
    },
}

impl HttpError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PlainHttpRefused { .. } => "plain_http_refused",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::CaFile { .. } => "ca_file",
            Self::Proxy { .. } => "proxy",
            Self::Client { .. } => "client",
            Self::Request { .. } => "request_failed",
            Self::Status { .. } => "bad_status",
            Self::TooLarge { .. } => "too_large",
            Self::Json { .. } => "invalid_json",
        }
    }

    /// True for errors of configuration (the settings or the URL), false
    /// for errors of the remote side.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::PlainHttpRefused { .. }
                | Self::InvalidUrl { .. }
                | Self::CaFile { .. }
                | Self::Proxy { .. }
                | Self::Client { .. }
        )
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PlainHttpRefused { url } => write!(
                f,
                "{url} uses plain http: what is fetched that way can be replaced in transit \
                 (use https, or set [http] danger_allow_http)"
            ),
            Self::InvalidUrl { url, reason } => write!(f, "{url}: {reason}"),
            Self::CaFile { reason, .. } => write!(f, "ca_file: {reason}"),
            Self::Proxy { reason } => write!(f, "proxy: {reason}"),
            Self::Client { reason } => write!(f, "HTTP client: {reason}"),
            Self::Request { url, reason } => write!(f, "{url}: {reason}"),
            Self::Status { url, status } => write!(f, "{url}: HTTP status {status}"),
            Self::TooLarge { url, limit } => write!(f, "{url}: larger than {limit} bytes"),
            Self::Json { url, reason } => write!(f, "{url}: {reason}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for PluginError {
    /// Configuration errors refuse the configuration; the rest make the
    /// backend unavailable.
    fn from(e: HttpError) -> Self {
        if e.is_configuration() {
            PluginError::Misconfigured(e.to_string())
        } else {
            PluginError::Unavailable(e.to_string())
        }
    }
}

/// A URL for messages: scheme, host, port and path; no user info, query or
/// fragment.
pub fn display_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
    }
}

/// An error with its causes ("error sending request" alone does not say
/// that the certificate was not trusted).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The HTTP client. Cloning is cheap and shares the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    plain_http: PlainHttp,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("plain_http", &self.plain_http)
            .finish_non_exhaustive()
    }
}

/// Clients built by [`HttpClient::shared`], by settings (a few: one per
/// distinct `[http]` seen by this library; the oldest goes first).
static SHARED: Mutex<Vec<(HttpSettings, HttpClient)>> = Mutex::new(Vec::new());
const SHARED_MAX: usize = 8;

impl HttpClient {
    /// A new client of `settings`.
    pub fn new(settings: &HttpSettings) -> Result<Self, HttpError> {
        Self::builder(settings).build()
    }

    /// The client of `settings`, built once and then shared by every
    /// caller with equal settings.
    pub fn shared(settings: &HttpSettings) -> Result<Self, HttpError> {
        let mut cache = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = cache.iter().find(|(s, _)| s == settings) {
            return Ok(c.clone());
        }
        let client = Self::new(settings)?;
        if cache.len() >= SHARED_MAX {
            cache.remove(0);
        }
        cache.push((settings.clone(), client.clone()));
        Ok(client)
    }

    /// A builder starting from `settings`, for a client with per-instance
    /// additions (another CA file, other timeouts).
    pub fn builder(settings: &HttpSettings) -> HttpClientBuilder {
        HttpClientBuilder {
            settings: settings.clone(),
            extra_ca_files: Vec::new(),
            loopback: false,
            accept_invalid_certs: false,
        }
    }

    /// Which plain-http URLs this client takes.
    pub fn plain_http(&self) -> PlainHttp {
        self.plain_http
    }

    /// Checks a URL against the client's rules without sending anything.
    pub fn check_url(&self, url: &str) -> Result<Url, HttpError> {
        let parsed = Url::parse(url).map_err(|e| HttpError::InvalidUrl {
            url: display_url(url),
            reason: e.to_string(),
        })?;
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" => {
                let ok = match self.plain_http {
                    PlainHttp::Allowed => true,
                    PlainHttp::Loopback => is_loopback(&parsed),
                    PlainHttp::Refused => false,
                };
                if ok {
                    Ok(parsed)
                } else {
                    Err(HttpError::PlainHttpRefused {
                        url: display_url(url),
                    })
                }
            }
            other => Err(HttpError::InvalidUrl {
                url: display_url(url),
                reason: format!("unsupported scheme {other:?}: expected https"),
            }),
        }
    }

    /// A request, after the URL passed [`HttpClient::check_url`].
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, HttpError> {
        let url = self.check_url(url)?;
        Ok(self.inner.request(method, url))
    }

    /// A GET request (see [`HttpClient::request`]).
    pub fn get(&self, url: &str) -> Result<RequestBuilder, HttpError> {
        self.request(Method::GET, url)
    }

    /// A POST request (see [`HttpClient::request`]).
    pub fn post(&self, url: &str) -> Result<RequestBuilder, HttpError> {
        self.request(Method::POST, url)
    }

    /// Sends a request built by this client and reads the whole body, at
    /// most `limit` bytes; a status other than 2xx is an error.
    pub async fn send(&self, request: RequestBuilder, limit: usize) -> Result<Vec<u8>, HttpError> {
        self.exchange(request, limit, true).await.map(|(_, body)| body)
    }

    /// Sends a request built by this client and reads the whole body, at
    /// most `limit` bytes, whatever the status: (status, body). For
    /// protocols whose error answers carry a body (an OAuth token
    /// endpoint's `{"error": …}`).
    pub async fn send_any_status(
        &self,
        request: RequestBuilder,
        limit: usize,
    ) -> Result<(u16, Vec<u8>), HttpError> {
        self.exchange(request, limit, false).await
    }

    /// (status, body); with `only_2xx` another status is an error (the
    /// body unread).
    async fn exchange(
        &self,
        request: RequestBuilder,
        limit: usize,
        only_2xx: bool,
    ) -> Result<(u16, Vec<u8>), HttpError> {
        let request = request.build().map_err(|e| HttpError::Client {
            reason: error_chain(&e),
        })?;
        let shown = display_url(request.url().as_str());
        // A request built elsewhere passes the same rules.
        self.check_url(request.url().as_str())?;
        let failed = |e: reqwest::Error| HttpError::Request {
            url: shown.clone(),
            reason: error_chain(&e),
        };
        let mut response = self.inner.execute(request).await.map_err(failed)?;
        let status = response.status().as_u16();
        if only_2xx && !response.status().is_success() {
            return Err(HttpError::Status { url: shown, status });
        }
        let too_large = || HttpError::TooLarge {
            url: shown.clone(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// GETs `url` and returns its body (at most `limit` bytes).
    pub async fn get_bytes(&self, url: &str, limit: usize) -> Result<Vec<u8>, HttpError> {
        self.send(self.get(url)?, limit).await
    }

    /// GETs `url` and parses its body (at most `limit` bytes) as JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, limit: usize) -> Result<T, HttpError> {
        let body = self.get_bytes(url, limit).await?;
        serde_json::from_slice(&body).map_err(|e| HttpError::Json {
            url: display_url(url),
            reason: e.to_string(),
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Builds an [`HttpClient`] from [`HttpSettings`] plus per-instance
/// additions.
#[derive(Debug)]
#[must_use]
pub struct HttpClientBuilder {
    settings: HttpSettings,
    extra_ca_files: Vec<PathBuf>,
    loopback: bool,
    accept_invalid_certs: bool,
}

impl HttpClientBuilder {
    /// Accepts any server certificate: expired, self-signed, for another
    /// name (a plugin's own `danger_*` setting, such as OIDC's
    /// `verify_ssl = false`). Anyone on the path can then read and change
    /// the traffic; the plugin must warn at every load.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs |= accept;
        self
    }

    /// Trusts the certificates of another PEM bundle as well (added to the
    /// system roots and to the settings' `ca_file`).
    pub fn add_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_ca_files.push(path.into());
        self
    }

    /// Replaces the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Replaces the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Also takes plain `http://` URLs whose host is a loopback address:
    /// the traffic does not leave the machine. Other plain-http URLs still
    /// need `danger_allow_http`.
    pub fn allow_loopback_http(mut self) -> Self {
        self.loopback = true;
        self
    }

    /// Takes every plain `http://` URL (a plugin's own `danger_*` setting).
    pub fn danger_allow_http(mut self, allow: bool) -> Self {
        self.settings.danger_allow_http |= allow;
        self
    }

    /// Builds the client: reads and checks the CA files.
    pub fn build(self) -> Result<HttpClient, HttpError> {
        let s = &self.settings;
        let mut builder = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(s.user_agent.clone())
            .tls_danger_accept_invalid_certs(self.accept_invalid_certs);
        let files = s
            .ca_file
            .iter()
            .map(PathBuf::from)
            .chain(self.extra_ca_files.iter().cloned());
        for file in files {
            builder = builder.tls_certs_merge(ca_certificates(&file)?);
        }
        if let Some(proxy) = &s.proxy {
            let proxy = reqwest::Proxy::all(proxy.expose()).map_err(|_| HttpError::Proxy {
                reason: "not a valid proxy URL (expected http://host:port)".into(),
            })?;
            builder = builder.proxy(proxy);
        }
        let inner = builder.build().map_err(|e| HttpError::Client {
            reason: error_chain(&e),
        })?;
        let plain_http = if s.danger_allow_http {
            PlainHttp::Allowed
        } else if self.loopback {
            PlainHttp::Loopback
        } else {
            PlainHttp::Refused
        };
        Ok(HttpClient { inner, plain_http })
    }
}

/// The certificates of a PEM bundle: at least one, every one well formed.
pub fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let shown = path.display().to_string();
    let fail = |reason: String| HttpError::CaFile {
        path: shown.clone(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read {shown}: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        fail(format!(
            "{shown} is not a PEM certificate bundle: {}",
            error_chain(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(fail(format!("{shown} holds no certificate")));
    }
    Ok(certs)
}

/// The SDK's client fetches JWKS and discovery documents for
/// [`jose::Issuer`](crate::jose::Issuer): the same https-only rules, CA
/// roots and proxy as every other request.
#[cfg(feature = "jose")]
#[async_trait::async_trait]
impl crate::jose::Fetcher for HttpClient {
    async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String> {
        self.get_bytes(url, limit).await.map_err(|e| match e {
            HttpError::Request { reason, .. } | HttpError::Json { reason, .. } => reason,
            HttpError::Status { status, .. } => format!("HTTP status {status}"),
            HttpError::TooLarge { limit, .. } => format!("larger than {limit} bytes"),
            other => other.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Secret;

    fn settings() -> HttpSettings {
        HttpSettings::default()
    }

    #[test]
    fn plain_http_needs_the_danger_flag_or_a_loopback_opt_in() {
        let strict = HttpClient::new(&settings()).unwrap();
        assert_eq!(strict.plain_http(), PlainHttp::Refused);
        let e = strict.check_url("http://idp.example.com/x").unwrap_err();
        assert_eq!(e.code(), "plain_http_refused");
        assert!(e.to_string().contains("danger_allow_http"), "{e}");
        assert!(strict.check_url("http://127.0.0.1:8080/").is_err());
        assert!(strict.check_url("https://idp.example.com/x").is_ok());
        assert_eq!(
            strict.check_url("ftp://idp.example.com/").unwrap_err().code(),
            "invalid_url"
        );

        let lo = HttpClient::builder(&settings())
            .allow_loopback_http()
            .build()
            .unwrap();
        for ok in [
            "http://127.0.0.1:9/a",
            "http://[::1]:9/",
            "http://localhost/",
            "http://127.3.2.1/",
        ] {
            assert!(lo.check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "http://128.0.0.1/",
        ] {
            assert!(lo.check_url(bad).is_err(), "{bad}");
        }

        let danger = HttpClient::new(&settings().with_danger_allow_http(true)).unwrap();
        assert_eq!(danger.plain_http(), PlainHttp::Allowed);
        assert!(danger.check_url("http://idp.example.com/x").is_ok());
    }

    #[test]
    fn errors_hide_credentials_and_queries() {
        let c = HttpClient::new(&settings()).unwrap();
        let e = c
            .check_url("http://user:pw@idp.example.com/p?token=abc")
            .unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("pw") && !text.contains("abc"), "{text}");
        assert!(text.contains("idp.example.com/p"), "{text}");
        let e = HttpClient::new(&settings().with_proxy(Some(Secret::new("::nope:secret"))));
        let e = e.unwrap_err();
        assert_eq!(e.code(), "proxy");
        assert!(!e.to_string().contains("secret"), "{e}");
        let dbg = format!(
            "{:?}",
            settings().with_proxy(Some(Secret::new("http://u:hunter2@p:3128")))
        );
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("gh-sdk-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let with = |p: &Path| HttpClient::new(&settings().with_ca_file(Some(p.display().to_string())));
        let e = with(&dir.join("missing.pem")).unwrap_err();
        assert_eq!(e.code(), "ca_file");
        assert!(e.to_string().contains("cannot read"), "{e}");
        let e = with(&junk).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e = HttpClient::builder(&settings())
            .add_ca_file(&junk)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        assert!(matches!(PluginError::from(e), PluginError::Misconfigured(_)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shared_clients_are_reused_per_settings() {
        let a = settings().with_user_agent("shared-test-a");
        let b = settings().with_user_agent("shared-test-b");
        HttpClient::shared(&a).unwrap();
        HttpClient::shared(&b).unwrap();
        let count = |s: &HttpSettings| SHARED.lock().unwrap().iter().filter(|(k, _)| k == s).count();
        HttpClient::shared(&a).unwrap();
        assert_eq!(count(&a), 1);
        assert_eq!(count(&b), 1);
    }

    /// A one-thread HTTP/1.1 server on 127.0.0.1 answering `ok` to every
    /// request; the number of requests it saw.
    fn plain_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/doc", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::clone(&hits);
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                seen.fetch_add(1, Ordering::SeqCst);
                let _ =
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        (url, hits)
    }

    #[test]
    fn a_plain_http_server_is_reached_only_when_allowed() {
        use std::sync::atomic::Ordering;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (url, hits) = plain_server();
        let strict = HttpClient::new(&settings()).unwrap();
        let e = rt.block_on(strict.get_bytes(&url, 1024)).unwrap_err();
        assert_eq!(e.code(), "plain_http_refused");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent");
        let danger = HttpClient::new(&settings().with_danger_allow_http(true)).unwrap();
        assert_eq!(rt.block_on(danger.get_bytes(&url, 1024)).unwrap(), b"ok");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let e = rt.block_on(danger.get_bytes(&url, 1)).unwrap_err();
        assert_eq!(e.code(), "too_large");
        assert!(matches!(PluginError::from(e), PluginError::Unavailable(_)));
    }

    #[test]
    fn settings_cross_the_wire_in_milliseconds_and_default_when_missing() {
        let s = settings()
            .with_timeout(Duration::from_millis(1500))
            .with_ca_file(Some("/x.pem".into()))
            .with_danger_allow_http(true);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["timeout_ms"], 1500);
        assert_eq!(v["connect_timeout_ms"], 5000);
        let back: HttpSettings = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        let partial: HttpSettings = serde_json::from_value(serde_json::json!({"timeout_ms": 20})).unwrap();
        assert_eq!(partial.timeout, Duration::from_millis(20));
        assert_eq!(partial.connect_timeout, HttpSettings::default().connect_timeout);
    }
}
