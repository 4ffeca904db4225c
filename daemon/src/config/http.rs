//! `[http]`: the one HTTP client every plugin gets from its `Context`
//! (`gatehouse_sdk::HttpSettings`), the same in every plugin mode.
//!
//! ```toml
//! [http]
//! ca_file = "/etc/gatehouse/extra-roots.pem"   # ADDED to the system roots
//! proxy = "http://proxy:3128"
//! connect_timeout = "5s"
//! timeout = "10s"
//! user_agent = "gatehouse/0.1.0"
//! danger_allow_http = false                    # plain http:// URLs; warned at every load
//! ```

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use gatehouse_sdk::http::HttpClient;
use gatehouse_sdk::{HttpSettings, Secret};
use serde::Deserialize;
use toml::Spanned;

use super::{Location, Resolver, join, parse_duration};

/// `[http]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    ca_file: Option<Spanned<String>>,
    proxy: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    user_agent: Option<Spanned<String>>,
    danger_allow_http: Option<Spanned<bool>>,
}

/// The resolved `[http]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// What every plugin's `Context` carries (`ca_file` absolute).
    pub settings: HttpSettings,
    /// Where `[http]` is, when it is set.
    pub location: Option<Location>,
}

impl HttpConfig {
    /// Logs a warning when plain http is allowed (at every load: the
    /// setting must not be forgotten).
    pub fn warn_if_dangerous(&self) {
        if self.settings.danger_allow_http {
            let at = self.location.as_ref().map_or_else(String::new, |l| {
                format!(
                    " ({}{})",
                    l.file.display(),
                    l.line.map_or_else(String::new, |n| format!(":{n}"))
                )
            });
            tracing::warn!(
                "[http] danger_allow_http is on{at}: plugins may fetch keys and documents over plain http, \
                 where they can be read and replaced in transit"
            );
        }
    }
}

const MIN_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_TIMEOUT: Duration = Duration::from_secs(600);

fn timeout(r: &mut Resolver<'_>, v: &Option<Spanned<String>>, key: &str, slot: &mut Duration) {
    let Some(v) = v else { return };
    match parse_duration(v.get_ref()) {
        Ok(d) if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&d) => *slot = d,
        Ok(_) => {
            r.err::<()>(&v.span(), key, "must be between 100ms and 10m");
        }
        Err(e) => {
            r.err::<()>(&v.span(), key, e);
        }
    }
}

/// Checks `[http]` (defined in a file in `dir`) and resolves it.
pub(crate) fn resolve(r: &mut Resolver<'_>, raw: &Spanned<RawHttp>, dir: &Path) -> HttpConfig {
    let h = raw.get_ref();
    let mut s = HttpSettings::default();
    timeout(r, &h.timeout, "http.timeout", &mut s.timeout);
    timeout(
        r,
        &h.connect_timeout,
        "http.connect_timeout",
        &mut s.connect_timeout,
    );
    if let Some(ua) = &h.user_agent {
        let v = ua.get_ref();
        if v.trim().is_empty() || v.chars().any(char::is_control) || v.len() > 256 {
            r.err::<()>(
                &ua.span(),
                "http.user_agent",
                "must be 1 to 256 characters without control characters",
            );
        } else {
            s.user_agent = v.clone();
        }
    }
    let check = |r: &mut Resolver<'_>, span: &Range<usize>, key: &str, settings: &HttpSettings| {
        // Building the client reads the CA file and parses the proxy: the
        // same checks every plugin's client will make.
        if let Err(e) = HttpClient::new(settings) {
            r.err::<()>(span, key, e.to_string());
            false
        } else {
            true
        }
    };
    if let Some(ca) = &h.ca_file {
        let path = join(dir, ca.get_ref()).display().to_string();
        let probe = HttpSettings::default().with_ca_file(Some(path.clone()));
        if check(r, &ca.span(), "http.ca_file", &probe) {
            s.ca_file = Some(path);
        }
    }
    if let Some(p) = &h.proxy {
        // The value may hold credentials: never repeat it in a message.
        let value = p.get_ref();
        let scheme_ok = ["http://", "https://", "socks5://", "socks5h://"]
            .iter()
            .any(|pre| value.starts_with(pre));
        let probe = HttpSettings::default().with_proxy(Some(Secret::new(value.clone())));
        if !scheme_ok {
            r.err::<()>(
                &p.span(),
                "http.proxy",
                "must be a URL starting with http://, https:// or socks5://",
            );
        } else if check(r, &p.span(), "http.proxy", &probe) {
            s.proxy = Some(Secret::new(value.clone()));
        }
    }
    if let Some(d) = &h.danger_allow_http {
        s.danger_allow_http = *d.get_ref();
    }
    HttpConfig {
        settings: s,
        location: Some(r.src.at(&raw.span())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::super::load;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    use super::*;

    /// A self-signed CA certificate made by openssl.
    fn ca_pem(dir: &Path) -> PathBuf {
        let out = dir.join("ca.pem");
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=gatehouse config test CA", "-days", "2", "-keyout"])
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(&out)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "openssl req failed");
        out
    }

    #[test]
    fn defaults_without_http_and_values_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(dir.path(), "g.toml", "[daemon]\nsocket = \"s\"\n");
        let c = load(&main).unwrap();
        assert_eq!(c.http.settings, HttpSettings::default());
        assert_eq!(c.http.location, None);

        ca_pem(dir.path());
        let main = write(
            dir.path(),
            "g.toml",
            "[http]\nca_file = \"ca.pem\"\nproxy = \"http://user:pw@proxy.example:3128\"\n\
             connect_timeout = \"2s\"\ntimeout = \"15s\"\nuser_agent = \"acme-sidecar/1\"\ndanger_allow_http = true\n",
        );
        let c = load(&main).unwrap();
        let s = &c.http.settings;
        assert_eq!(
            s.ca_file.as_deref(),
            Some(dir.path().join("ca.pem").to_str().unwrap())
        );
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.timeout, Duration::from_secs(15));
        assert_eq!(s.user_agent, "acme-sidecar/1");
        assert_eq!(
            s.proxy.as_ref().map(Secret::expose),
            Some("http://user:pw@proxy.example:3128")
        );
        assert!(s.danger_allow_http);
        assert_eq!(c.http.location.as_ref().and_then(|l| l.line), Some(1));
        assert!(
            !format!("{c:?}").contains("user:pw"),
            "the proxy is redacted in Debug"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").unwrap();
        let main = write(
            dir.path(),
            "g.toml",
            "[daemon]\nsocket = \"s\"\n[http]\nca_file = \"missing.pem\"\ntimeout = \"10\"\n\
             connect_timeout = \"20m\"\nproxy = \"proxy:3128 with-secret\"\nuser_agent = \"\"\n",
        );
        let e = load(&main).unwrap_err();
        let by_key = |k: &str| {
            e.0.iter()
                .find(|x| x.key.as_deref() == Some(k))
                .unwrap_or_else(|| panic!("no error for {k}: {e}"))
        };
        let ca = by_key("http.ca_file");
        assert_eq!(ca.line, Some(4));
        assert!(ca.message.contains("cannot read"), "{}", ca.message);
        assert!(ca.file.ends_with("g.toml"));
        assert_eq!(by_key("http.timeout").line, Some(5));
        assert!(by_key("http.timeout").message.contains("missing unit"));
        assert_eq!(by_key("http.connect_timeout").line, Some(6));
        let proxy = by_key("http.proxy");
        assert_eq!(proxy.line, Some(7));
        assert!(!proxy.message.contains("with-secret"), "{}", proxy.message);
        assert_eq!(by_key("http.user_agent").line, Some(8));

        let main = write(dir.path(), "g.toml", "[http]\nca_file = \"junk.pem\"\n");
        let e = load(&main).unwrap_err();
        assert_eq!(e.0[0].key.as_deref(), Some("http.ca_file"));
        assert!(e.0[0].message.contains("no certificate"), "{e}");

        let main = write(dir.path(), "g.toml", "[http]\nbogus = 1\n");
        let e = load(&main).unwrap_err();
        assert_eq!(e.0[0].key.as_deref(), Some("http.bogus"));
        assert_eq!(e.0[0].line, Some(2));
    }

    #[test]
    fn http_is_set_in_one_file_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
        let main = write(
            dir.path(),
            "g.toml",
            "[daemon]\ninclude = [\"conf.d/*.toml\"]\n[http]\ntimeout = \"5s\"\n",
        );
        write(&dir.path().join("conf.d"), "a.toml", "[http]\ntimeout = \"6s\"\n");
        let e = load(&main).unwrap_err();
        assert!(e.0[0].message.contains("already set"), "{e}");
        assert!(e.0[0].file.ends_with("a.toml"));
    }
}
