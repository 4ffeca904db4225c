//! Settings: snake_case as in CONFIG.md (`server`, `port`, `secret`,
//! `timeout`, `retries`, `require_message_authenticator`, `nas_identifier`,
//! `nas_ip_address`), and the platform's own `RADIUS_SERVER`,
//! `RADIUS_PORT`, `RADIUS_SECRET` so an exported configuration pastes in.
//! Everything is checked when the instance is built; nothing touches the
//! network until the first login.

use std::net::IpAddr;
use std::time::Duration;

use gatehouse_sdk::{PluginError, Secret, parse_duration};
use serde::Deserialize;

/// One string or a list of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A duration as `"3s"`, or a number of seconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(f64),
    Text(String),
}

/// The settings as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    #[serde(alias = "RADIUS_SERVER")]
    server: OneOrMany,
    #[serde(default = "default_port", alias = "RADIUS_PORT")]
    port: u16,
    #[serde(default, alias = "RADIUS_SECRET")]
    secret: Secret,
    #[serde(default)]
    timeout: Option<RawDuration>,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_true")]
    require_message_authenticator: bool,
    #[serde(default)]
    nas_identifier: Option<String>,
    #[serde(default)]
    nas_ip_address: Option<String>,
}

fn default_port() -> u16 {
    1812
}
fn default_retries() -> u32 {
    1
}
fn default_true() -> bool {
    true
}

/// The daemon gives a login 30 s; all servers' attempts must fit well
/// inside, or a dead first server would eat the second one's chance.
pub(crate) const MAX_TOTAL_WAIT: Duration = Duration::from_secs(25);

/// One server: a host name or address, and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl ServerAddr {
    /// `host:port` for logs (IPv6 in brackets).
    pub(crate) fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Checked settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) servers: Vec<ServerAddr>,
    pub(crate) secret: Secret,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) require_message_authenticator: bool,
    pub(crate) nas_identifier: Option<String>,
    pub(crate) nas_ip_address: Option<IpAddr>,
}

fn bad(msg: impl Into<String>) -> PluginError {
    PluginError::Misconfigured(msg.into())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address too.
fn server(s: &str, default_port: u16) -> Result<ServerAddr, PluginError> {
    let s = s.trim();
    let invalid = || bad(format!("server: {s:?} is not a host, host:port or [IPv6]:port"));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(invalid)?;
        let port = match after {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(invalid)?,
        };
        (h.to_owned(), port)
    } else if s.parse::<IpAddr>().is_ok() {
        (s.to_owned(), default_port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse::<u16>().map_err(|_| invalid())?),
            None => (s.to_owned(), default_port),
        }
    };
    if host.is_empty()
        || port == 0
        || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '[' || c == ']')
    {
        return Err(invalid());
    }
    Ok(ServerAddr { host, port })
}

impl RawSettings {
    /// Checks everything.
    pub(crate) fn resolve(self) -> Result<Settings, PluginError> {
        if self.port == 0 {
            return Err(bad("port: must be between 1 and 65535"));
        }
        let list = match self.server {
            OneOrMany::One(s) => s
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            OneOrMany::Many(v) => v,
        };
        if list.is_empty() {
            return Err(bad("server: at least one server is needed"));
        }
        let servers = list
            .iter()
            .map(|s| server(s, self.port))
            .collect::<Result<Vec<_>, _>>()?;
        if self.secret.is_empty() {
            return Err(bad(
                "secret: required (or secret_file / secret_credential): the shared secret of this client",
            ));
        }
        if self.secret.len() > 1024 {
            return Err(bad("secret: longer than 1024 bytes"));
        }
        let timeout = match self.timeout {
            None => Duration::from_secs(2),
            Some(RawDuration::Seconds(s)) if s.is_finite() && s > 0.0 && s <= 60.0 => {
                Duration::from_secs_f64(s)
            }
            Some(RawDuration::Seconds(_)) => {
                return Err(bad("timeout: between 0 and 60 seconds"));
            }
            Some(RawDuration::Text(t)) => parse_duration(&t).map_err(|e| bad(format!("timeout: {e}")))?,
        };
        if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(60) {
            return Err(bad("timeout: between 10ms and 60s"));
        }
        if self.retries > 10 {
            return Err(bad("retries: at most 10"));
        }
        let total = timeout
            .saturating_mul(self.retries + 1)
            .saturating_mul(u32::try_from(servers.len()).unwrap_or(u32::MAX));
        if total > MAX_TOTAL_WAIT {
            return Err(bad(format!(
                "timeout: {} server(s) × (1 + {} retries) × {:?} = {:?} exceeds the {:?} a login may wait; lower timeout or retries",
                servers.len(),
                self.retries,
                timeout,
                total,
                MAX_TOTAL_WAIT
            )));
        }
        let nas_ip_address = match &self.nas_ip_address {
            None => None,
            Some(a) => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| bad("nas_ip_address: not an IPv4 or IPv6 address"))?,
            ),
        };
        if let Some(n) = &self.nas_identifier
            && (n.is_empty() || n.len() > 253)
        {
            return Err(bad("nas_identifier: between 1 and 253 bytes"));
        }
        // RFC 2865 §4.1: an Access-Request carries NAS-IP-Address or
        // NAS-Identifier; without either we send NAS-Identifier "gatehouse".
        let nas_identifier = match (self.nas_identifier, nas_ip_address) {
            (Some(n), _) => Some(n),
            (None, None) => Some("gatehouse".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Settings {
            servers,
            secret: self.secret,
            timeout,
            retries: self.retries,
            require_message_authenticator: self.require_message_authenticator,
            nas_identifier,
            nas_ip_address,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn resolve(v: serde_json::Value) -> Result<Settings, PluginError> {
        RawSettings::deserialize(&v)
            .map_err(|e| bad(e.to_string()))
            .and_then(RawSettings::resolve)
    }

    #[test]
    fn servers_ports_and_defaults() {
        let s = resolve(serde_json::json!({"server": ["a.example", "10.0.0.2:1645", "[::1]:11812", "::1"], "secret": "x"}))
            .unwrap();
        let got: Vec<String> = s.servers.iter().map(ServerAddr::label).collect();
        assert_eq!(
            got,
            ["a.example:1812", "10.0.0.2:1645", "[::1]:11812", "[::1]:1812"]
        );
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.retries, 1);
        assert!(s.require_message_authenticator);
        assert_eq!(s.nas_identifier.as_deref(), Some("gatehouse"));
        let s = resolve(serde_json::json!({"RADIUS_SERVER": "r1, r2", "RADIUS_PORT": 1645, "RADIUS_SECRET": "x",
            "timeout": "500ms", "retries": 0, "require_message_authenticator": false, "nas_ip_address": "192.0.2.1"}))
            .unwrap();
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.servers[1].port, 1645);
        assert_eq!(s.timeout, Duration::from_millis(500));
        assert!(!s.require_message_authenticator);
        assert_eq!(s.nas_identifier, None);
        assert_eq!(
            resolve(serde_json::json!({"server": "h", "secret": "x", "timeout": 1.5}))
                .unwrap()
                .timeout,
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn bad_settings_name_the_key_and_never_echo_the_secret() {
        for (v, key) in [
            (serde_json::json!({"server": "h"}), "secret"),
            (serde_json::json!({"server": [], "secret": "hunter2"}), "server"),
            (
                serde_json::json!({"server": "h:99999", "secret": "hunter2"}),
                "server",
            ),
            (
                serde_json::json!({"server": "h", "secret": "hunter2", "timeout": "3"}),
                "timeout",
            ),
            (
                serde_json::json!({"server": "h", "secret": "hunter2", "timeout": 0}),
                "timeout",
            ),
            (
                serde_json::json!({"server": "h", "secret": "hunter2", "retries": 11}),
                "retries",
            ),
            (
                serde_json::json!({"server": ["a", "b", "c"], "secret": "hunter2", "timeout": "5s"}),
                "timeout",
            ),
            (
                serde_json::json!({"server": "h", "secret": "hunter2", "nas_ip_address": "x"}),
                "nas_ip_address",
            ),
            (
                serde_json::json!({"server": "h", "secret": "hunter2", "port": 0}),
                "port",
            ),
        ] {
            let e = resolve(v.clone()).unwrap_err().to_string();
            assert!(e.contains(key), "{v}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
