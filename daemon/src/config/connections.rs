//! Connection limits of `[daemon]` and the `[forward_auth]` TCP listener.
//!
//! ```toml
//! [daemon]
//! max_connections = 4096          # socket connections at once, all peers
//! max_connections_per_uid = 256   # socket connections at once, per peer uid
//! request_timeout = "30s"         # reading one whole request (headers + body)
//! idle_timeout = "75s"            # a keep-alive connection waiting for its next request
//!
//! [forward_auth]
//! listen = "127.0.0.1:9180"       # off when absent; GET /v1/check only
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Location, Resolver, parse_duration};

/// How many connections the daemon holds and how long it waits for their
/// bytes. All of these apply on reload to connections accepted afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections at once over every listener (the socket and
    /// `[forward_auth]`). Further ones are answered 503 and closed.
    pub max_connections: usize,
    /// Socket connections at once from one peer uid.
    pub max_connections_per_uid: usize,
    /// Reading one request, from its first byte to the end of its body.
    pub request_timeout: Duration,
    /// A connection without a request in progress: before the first
    /// request, and between keep-alive requests (also bounds writing an
    /// answer to a peer that does not read it).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_uid: 256,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
        }
    }
}

/// The upper bound of both connection caps.
const MAX_CAP: i64 = 1 << 20;

/// Reads the `[daemon]` connection keys into `out`.
pub(crate) fn resolve_limits(
    r: &mut Resolver<'_>,
    max_connections: Option<&Spanned<i64>>,
    per_uid: Option<&Spanned<i64>>,
    request_timeout: Option<&Spanned<String>>,
    idle_timeout: Option<&Spanned<String>>,
    out: &mut ConnectionLimits,
) {
    let mut cap = |v: Option<&Spanned<i64>>, key: &str, slot: &mut usize| {
        if let Some(v) = v {
            match usize::try_from(*v.get_ref()) {
                Ok(n) if (1..=MAX_CAP as usize).contains(&n) => *slot = n,
                _ => {
                    r.err::<()>(&v.span(), key, format!("must be between 1 and {MAX_CAP}"));
                }
            }
        }
    };
    cap(
        max_connections,
        "daemon.max_connections",
        &mut out.max_connections,
    );
    cap(
        per_uid,
        "daemon.max_connections_per_uid",
        &mut out.max_connections_per_uid,
    );
    let mut timeout = |v: Option<&Spanned<String>>, key: &str, slot: &mut Duration| {
        if let Some(v) = v {
            match parse_duration(v.get_ref()) {
                Ok(d) if (Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&d) => *slot = d,
                Ok(_) => {
                    r.err::<()>(&v.span(), key, "must be between 100ms and 1h");
                }
                Err(e) => {
                    r.err::<()>(&v.span(), key, e);
                }
            }
        }
    };
    timeout(
        request_timeout,
        "daemon.request_timeout",
        &mut out.request_timeout,
    );
    timeout(idle_timeout, "daemon.idle_timeout", &mut out.idle_timeout);
}

/// `[forward_auth]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwardAuth {
    listen: Option<Spanned<String>>,
}

/// `[forward_auth]`: a TCP listener that serves `/v1/check` only, for
/// proxies that cannot reach a Unix socket (Traefik). Only a restart
/// changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardAuthConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Where `[forward_auth]` is.
    pub location: Location,
}

impl ForwardAuthConfig {
    /// Logs a warning when the listener is reachable from other hosts:
    /// anyone who reaches it may ask whether a token is valid.
    pub fn warn_if_exposed(&self) {
        if !self.listen.ip().is_loopback() {
            tracing::warn!(
                "[forward_auth] listen = \"{}\" is not a loopback address: other hosts can use it to test tokens; \
                 prefer 127.0.0.1 or ::1 with the proxy on this host",
                self.listen
            );
        }
    }
}

/// Resolves `[forward_auth]`; `None` when it is off or invalid (the error
/// is recorded).
pub(crate) fn resolve_forward_auth(
    r: &mut Resolver<'_>,
    raw: &Spanned<RawForwardAuth>,
) -> Option<ForwardAuthConfig> {
    let listen = raw.get_ref().listen.as_ref()?;
    match listen.get_ref().parse::<SocketAddr>() {
        Ok(addr) if addr.port() != 0 => Some(ForwardAuthConfig {
            listen: addr,
            location: r.src.at(&raw.span()),
        }),
        _ => r.err(
            &listen.span(),
            "forward_auth.listen",
            format!(
                "{:?} is not an address with a port, like \"127.0.0.1:9180\" or \"[::1]:9180\"",
                listen.get_ref()
            ),
        ),
    }
}
