//! [`Context`]: what the daemon hands every plugin instance.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A source of wall-clock time. Tests substitute a fixed or steppable clock so
/// expiry and cache behaviour is deterministic.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Severity of a plugin log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine-grained tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something is off but the request was served.
    Warn,
    /// A failure an operator should look at.
    Error,
}

/// Where plugin log records go. The daemon forwards them to its own
/// `tracing` output, tagged with the plugin instance's name. Never pass a
/// secret to it.
pub trait Logger: Send + Sync + 'static {
    /// Records one message.
    fn log(&self, level: Level, message: &str);
}

/// A logger that drops everything (the default in tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullLogger;

impl Logger for NullLogger {
    fn log(&self, _level: Level, _message: &str) {}
}

/// How a plugin should make outbound HTTP or TLS connections: the daemon's
/// `[http]` table, the same in every plugin mode (linked, library, isolated
/// child). With the `http` feature, [`Context::http_client`] builds the
/// client these settings describe.
///
/// On the wire (the ABI `create` document) durations are whole
/// milliseconds (`timeout_ms`, `connect_timeout_ms`); a missing field takes
/// its default.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HttpSettings {
    /// The whole of one request: connect, send, response.
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// Establishing the connection (TCP and TLS).
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// The `User-Agent` to send.
    pub user_agent: String,
    /// A PEM bundle of extra CA certificates, trusted in addition to the
    /// system's roots (never instead of them). An absolute path.
    pub ca_file: Option<String>,
    /// A proxy for every request (`http://host:port`); it may carry
    /// credentials, so it is a [`Secret`](crate::Secret).
    pub proxy: Option<crate::Secret>,
    /// Allow plain `http://` URLs. Anything fetched that way can be read
    /// and replaced in transit; the daemon warns at every load while it is
    /// on.
    pub danger_allow_http: bool,
}

impl HttpSettings {
    /// Sets [`HttpSettings::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`HttpSettings::connect_timeout`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`HttpSettings::user_agent`].
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Sets [`HttpSettings::ca_file`].
    pub fn with_ca_file(mut self, ca_file: Option<String>) -> Self {
        self.ca_file = ca_file;
        self
    }

    /// Sets [`HttpSettings::proxy`].
    pub fn with_proxy(mut self, proxy: Option<crate::Secret>) -> Self {
        self.proxy = proxy;
        self
    }

    /// Sets [`HttpSettings::danger_allow_http`].
    pub fn with_danger_allow_http(mut self, allow: bool) -> Self {
        self.danger_allow_http = allow;
        self
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            user_agent: concat!("gatehouse/", env!("CARGO_PKG_VERSION")).to_owned(),
            ca_file: None,
            proxy: None,
            danger_allow_http: false,
        }
    }
}

impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_agent", &self.user_agent)
            .field("ca_file", &self.ca_file)
            .field("proxy", &self.proxy.as_ref().map(|_| "<redacted>"))
            .field("danger_allow_http", &self.danger_allow_http)
            .finish()
    }
}

/// Durations as whole milliseconds on the wire.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// The services the daemon offers a plugin instance: a clock, a logger, HTTP
/// client settings, the instance name and a private state directory.
///
/// Cloning is cheap.
#[derive(Clone)]
pub struct Context {
    instance: Arc<str>,
    clock: Arc<dyn Clock>,
    logger: Arc<dyn Logger>,
    http: Arc<HttpSettings>,
    state_dir: Option<Arc<std::path::Path>>,
    config_dir: Option<Arc<std::path::Path>>,
}

impl Context {
    /// A context with the system clock, no logging, default HTTP settings
    /// and no state directory: a good start for tests.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: Arc::from(instance.into()),
            clock: Arc::new(SystemClock),
            logger: Arc::new(NullLogger),
            http: Arc::new(HttpSettings::default()),
            state_dir: None,
            config_dir: None,
        }
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the logger.
    pub fn with_logger(mut self, logger: Arc<dyn Logger>) -> Self {
        self.logger = logger;
        self
    }

    /// Replaces the HTTP settings.
    pub fn with_http(mut self, http: HttpSettings) -> Self {
        self.http = Arc::new(http);
        self
    }

    /// Sets the directory where the instance may keep state (caches).
    pub fn with_state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = Some(Arc::from(dir.into()));
        self
    }

    /// Sets the directory of the configuration file the instance was
    /// configured in.
    pub fn with_config_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config_dir = Some(Arc::from(dir.into()));
        self
    }

    /// Resolves a path from the settings: relative paths are relative to
    /// the directory of the configuration file that set them.
    pub fn resolve_path(&self, path: impl AsRef<std::path::Path>) -> std::path::PathBuf {
        let path = path.as_ref();
        match &self.config_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// The configured name of this plugin instance.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The current time according to the context's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Seconds since the Unix epoch according to the context's clock.
    pub fn unix_now(&self) -> u64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// The HTTP client settings.
    pub fn http(&self) -> &HttpSettings {
        &self.http
    }

    /// The HTTP client of these settings, shared by every instance (of this
    /// plugin library) that has equal settings: https only (plain http
    /// only with [`HttpSettings::danger_allow_http`]), `ca_file` added to
    /// the system roots, the proxy and timeouts applied. Built on first use.
    #[cfg(feature = "http")]
    pub fn http_client(&self) -> Result<crate::http::HttpClient, crate::http::HttpError> {
        crate::http::HttpClient::shared(&self.http)
    }

    /// A directory private to this instance, when the daemon has one.
    pub fn state_dir(&self) -> Option<&std::path::Path> {
        self.state_dir.as_deref()
    }

    /// Logs at `level`.
    pub fn log(&self, level: Level, message: &str) {
        self.logger.log(level, message);
    }

    /// Logs at debug level.
    pub fn debug(&self, message: &str) {
        self.log(Level::Debug, message);
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("instance", &self.instance)
            .field("http", &self.http)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}
