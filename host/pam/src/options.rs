//! The module's arguments, as written after `pam_gatehouse.so` in a
//! `/etc/pam.d/` file.

use std::path::PathBuf;
use std::time::Duration;

/// Where the daemon listens by default (the systemd unit's socket).
pub const DEFAULT_SOCKET: &str = "/run/gatehouse/gatehouse.sock";

/// How long a module call may wait for the daemon, all requests together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the password comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstPass {
    /// Ask the user (the default).
    Ask,
    /// Take the password an earlier module got; ask when there is none.
    Try,
    /// Take the password an earlier module got; fail when there is none.
    Use,
}

/// Parsed module arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `authenticator=NAME`: only this authenticator (default: the daemon's
    /// order).
    pub authenticator: Option<String>,
    /// `socket=PATH`.
    pub socket: PathBuf,
    /// `timeout=SECONDS` (1–300).
    pub timeout: Duration,
    /// `use_first_pass` / `try_first_pass`.
    pub first_pass: FirstPass,
    /// `daemon_uid=N`: a uid the daemon may run as, besides root and the
    /// `gatehouse` user.
    pub daemon_uid: Option<u32>,
    /// `debug`: log each step (never a secret) to syslog.
    pub debug: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            authenticator: None,
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: DEFAULT_TIMEOUT,
            first_pass: FirstPass::Ask,
            daemon_uid: None,
            debug: false,
        }
    }
}

impl Options {
    /// Parses the arguments; an unknown or malformed one is an error (a
    /// typo in a PAM file must not silently weaken it).
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, String> {
        let mut o = Self::default();
        for arg in args {
            let arg = arg.as_ref();
            match arg.split_once('=') {
                Some(("authenticator", v)) if !v.is_empty() => o.authenticator = Some(v.to_owned()),
                Some(("socket", v)) if v.starts_with('/') => o.socket = PathBuf::from(v),
                Some(("timeout", v)) => {
                    let secs: u64 = v
                        .parse()
                        .ok()
                        .filter(|s| (1..=300).contains(s))
                        .ok_or_else(|| format!("timeout={v}: expected whole seconds from 1 to 300"))?;
                    o.timeout = Duration::from_secs(secs);
                }
                Some(("daemon_uid", v)) => {
                    o.daemon_uid = Some(
                        v.parse()
                            .map_err(|_| format!("daemon_uid={v}: expected a number"))?,
                    );
                }
                None if arg == "use_first_pass" => o.first_pass = FirstPass::Use,
                None if arg == "try_first_pass" => o.first_pass = FirstPass::Try,
                None if arg == "debug" => o.debug = true,
                _ => return Err(format!("unknown or malformed option {arg:?}")),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_every_option() {
        let none: [&str; 0] = [];
        assert_eq!(Options::parse(&none), Ok(Options::default()));
        let o = Options::parse(&[
            "authenticator=Corp LDAP",
            "socket=/tmp/x.sock",
            "timeout=3",
            "try_first_pass",
            "daemon_uid=990",
            "debug",
        ])
        .expect("valid");
        assert_eq!(o.authenticator.as_deref(), Some("Corp LDAP"));
        assert_eq!(o.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(o.first_pass, FirstPass::Try);
        assert_eq!(o.daemon_uid, Some(990));
        assert!(o.debug);
        assert_eq!(
            Options::parse(&["use_first_pass"]).expect("valid").first_pass,
            FirstPass::Use
        );
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        for bad in [
            "use_first_pas",
            "timeout=0",
            "timeout=301",
            "timeout=ten",
            "socket=relative.sock",
            "authenticator=",
            "daemon_uid=gatehouse",
        ] {
            assert!(Options::parse(&[bad]).is_err(), "{bad} accepted");
        }
    }
}
