//! `[issuer]`: raw TOML and its resolution (the catalog is read here, so a
//! bad catalog is a configuration error with its file and line and the
//! running generation stays).
//!
//! ```toml
//! [issuer]
//! url = "https://gatehouse.example.com"   # `iss`; required
//! mode = "gitlab_com"                      # gitlab_com | self_managed
//! algorithm = "RS256"                      # RS256 | ES256 | EdDSA
//! token_ttl = "1h"
//! reuse = 0.5                              # reuse a token for this share of its lifetime (0: never)
//! catalog = ["cloud_connector.yml", "unit_primitives/"]
//! catalog_environment = "production"
//! instance_id = "…"                        # X-Gitlab-Instance-Id, gitlab_instance_id claim
//! host_name = "gitlab.example.com"         # X-Gitlab-Host-Name
//! version = "17.5.0"                       # the caller's version when a request names none
//! license_type = "ultimate"                # checked against unit primitives' license_types
//! issue_uids = [1001]                      # peers (besides admins) that may issue tokens
//! issue_gids = []
//! login_audience = "…"                     # `aud` of login tokens (default: url)
//! listen = "127.0.0.1:9443"                # discovery and JWKS over TCP (restart to change)
//! tls_cert_file = "issuer.pem"             # with tls_key_file; required off loopback
//! tls_key_file = "issuer.key"
//! signing_key_file = "…"                   # a key file of an earlier gatehouse, imported into the store once
//!                                          # (default: state_dir/issuer-keys.json)
//! keyring_key_file = "keyring.key"         # seals the keyring in the store (AES-256-GCM); also
//!                                          # keyring_key / keyring_key_credential
//! keyring_previous_key_file = "old.key"    # opens a keyring sealed before the key changed
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::catalog::{Catalog, Version};
use super::entitlements::Mode;
use super::keys::Algorithm;
use super::seal::{SealKey, Sealing};
use crate::config::{Location, Resolver, parse_duration};

/// `[issuer]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIssuer {
    url: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    algorithm: Option<Spanned<String>>,
    token_ttl: Option<Spanned<String>>,
    reuse: Option<Spanned<f64>>,
    #[serde(default)]
    catalog: Option<Spanned<OneOrMany>>,
    catalog_environment: Option<String>,
    instance_id: Option<Spanned<String>>,
    host_name: Option<String>,
    version: Option<Spanned<String>>,
    license_type: Option<String>,
    #[serde(default)]
    issue_uids: Vec<u32>,
    #[serde(default)]
    issue_gids: Vec<u32>,
    signing_key_file: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    login_audience: Option<Spanned<String>>,
    tls_cert_file: Option<Spanned<String>>,
    tls_key_file: Option<Spanned<String>>,
    keyring_key: Option<Spanned<String>>,
    keyring_key_file: Option<Spanned<String>>,
    keyring_key_credential: Option<Spanned<String>>,
    keyring_previous_key: Option<Spanned<String>>,
    keyring_previous_key_file: Option<Spanned<String>>,
    keyring_previous_key_credential: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The resolved `[issuer]`.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    /// The `iss` claim and discovery issuer, without a trailing slash.
    pub url: String,
    /// gitlab_com or self_managed.
    pub mode: Mode,
    /// The signing algorithm of new keys.
    pub algorithm: Algorithm,
    /// How long an issued token lives.
    pub token_ttl: Duration,
    /// Share of a token's lifetime during which it is handed out again.
    pub reuse: f64,
    /// The unit-primitive catalog.
    pub catalog: Arc<Catalog>,
    /// The instance id (claim and header).
    pub instance_id: String,
    /// `X-Gitlab-Host-Name`.
    pub host_name: Option<String>,
    /// The caller's version when a request names none.
    pub version: Option<Version>,
    /// The instance's license type.
    pub license_type: Option<String>,
    /// Peer uids, besides admins, that may issue tokens.
    pub issue_uids: Vec<u32>,
    /// Peer gids, besides admins', that may issue tokens.
    pub issue_gids: Vec<u32>,
    /// A key file written by an earlier gatehouse (before the keyring
    /// moved into the store): imported once, then renamed `*.imported`.
    pub key_file: PathBuf,
    /// The `aud` of the tokens a successful login returns (default: the
    /// issuer's url).
    pub login_audience: String,
    /// The TCP listener for discovery and JWKS (restart to change).
    pub listen: Option<std::net::SocketAddr>,
    /// Its certificate chain and key (PEM); `None`: plain http, loopback only.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The keys that seal the keyring in the store (none: in the clear).
    pub sealing: Arc<Sealing>,
}

impl IssuerConfig {
    /// Whether two configurations can share one keyring and token cache.
    pub fn same_keys(&self, other: &Self) -> bool {
        self.key_file == other.key_file
            && self.sealing.current_id() == other.sealing.current_id()
            && self.sealing.previous.as_ref().map(SealKey::id)
                == other.sealing.previous.as_ref().map(SealKey::id)
            && self.algorithm == other.algorithm
            && self.url == other.url
            && self.token_ttl == other.token_ttl
    }
}

/// Resolves `[issuer]`, defined in a file in `dir`; relative paths are
/// taken from `dir`, the key file from `state_dir`.
pub(crate) fn resolve(
    r: &mut Resolver<'_>,
    raw: &Spanned<RawIssuer>,
    dir: &Path,
    state_dir: &Path,
) -> Option<IssuerConfig> {
    let issuer = raw.get_ref();
    let before = r.error_count();
    let url = match &issuer.url {
        None => r.err(
            &raw.span(),
            "issuer.url",
            "the issuer needs a url (its `iss` claim)",
        ),
        Some(u) => {
            let v = u.get_ref().trim().trim_end_matches('/');
            let host = v
                .strip_prefix("https://")
                .or_else(|| v.strip_prefix("http://"))
                .unwrap_or("");
            if host.is_empty()
                || host.starts_with('/')
                || v.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                r.err(
                    &u.span(),
                    "issuer.url",
                    "must be an absolute https:// (or http://) URL with a host",
                )
            } else {
                Some(v.to_owned())
            }
        }
    };
    let mode = match issuer.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("gitlab_com", _)) => Mode::GitlabCom,
        Some(("self_managed", _)) => Mode::SelfManaged,
        Some((_, span)) => {
            r.err::<()>(&span, "issuer.mode", "must be \"gitlab_com\" or \"self_managed\"");
            Mode::GitlabCom
        }
    };
    let algorithm = match &issuer.algorithm {
        None => Algorithm::RS256,
        Some(a) => Algorithm::parse(a.get_ref()).unwrap_or_else(|| {
            r.err::<()>(&a.span(), "issuer.algorithm", "must be RS256, ES256 or EdDSA");
            Algorithm::RS256
        }),
    };
    let token_ttl = match &issuer.token_ttl {
        None => Duration::from_secs(3600),
        Some(t) => match parse_duration(t.get_ref()) {
            Ok(d) if d >= Duration::from_secs(60) && d <= Duration::from_secs(7 * 86_400) => d,
            _ => {
                r.err::<()>(&t.span(), "issuer.token_ttl", "must be a duration from 1m to 7d");
                Duration::from_secs(3600)
            }
        },
    };
    let reuse = match &issuer.reuse {
        None => 0.5,
        Some(f) if (0.0..=0.9).contains(f.get_ref()) => *f.get_ref(),
        Some(f) => {
            r.err::<()>(&f.span(), "issuer.reuse", "must be between 0 (never) and 0.9");
            0.5
        }
    };
    let environment = issuer.catalog_environment.as_deref().unwrap_or("production");
    let catalog = match &issuer.catalog {
        None => r.err(
            &raw.span(),
            "issuer.catalog",
            "the issuer needs a catalog of services",
        ),
        Some(c) => {
            let paths: Vec<PathBuf> = match c.get_ref() {
                OneOrMany::One(p) => vec![dir.join(p)],
                OneOrMany::Many(ps) => ps.iter().map(|p| dir.join(p)).collect(),
            };
            match Catalog::load(&paths, environment) {
                Ok(c) => Some(Arc::new(c)),
                Err(errors) => {
                    for e in errors {
                        let at = Location {
                            file: e.file.clone(),
                            line: e.line,
                        };
                        r.push(at.error("issuer.catalog", e.message));
                    }
                    None
                }
            }
        }
    };
    let instance_id = match &issuer.instance_id {
        None => "gatehouse".to_owned(),
        Some(i) if !i.get_ref().trim().is_empty() && i.get_ref().len() <= 256 => {
            i.get_ref().trim().to_owned()
        }
        Some(i) => r
            .err(&i.span(), "issuer.instance_id", "must be 1 to 256 characters")
            .unwrap_or_default(),
    };
    let version = issuer.version.as_ref().and_then(|v| {
        Version::parse(v.get_ref())
            .or_else(|| r.err(&v.span(), "issuer.version", "not a version such as 17.5.0"))
    });
    let key_file = match &issuer.signing_key_file {
        None => state_dir.join("issuer-keys.json"),
        Some(k) => dir.join(k.get_ref()),
    };
    let login_audience = match &issuer.login_audience {
        Some(a) if a.get_ref().trim().is_empty() || a.get_ref().len() > 256 => {
            r.err::<()>(&a.span(), "issuer.login_audience", "must be 1 to 256 characters");
            None
        }
        Some(a) => Some(a.get_ref().trim().to_owned()),
        None => None,
    };
    let listen = issuer.listen.as_ref().and_then(|l| {
        l.get_ref().parse::<std::net::SocketAddr>().ok().or_else(|| {
            r.err(
                &l.span(),
                "issuer.listen",
                "must be an address and port such as 127.0.0.1:9443",
            )
        })
    });
    let tls = match (&issuer.tls_cert_file, &issuer.tls_key_file) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let (cert, key) = (dir.join(c.get_ref()), dir.join(k.get_ref()));
            match super::listener::tls_acceptor(&cert, &key) {
                Ok(_) => Some((cert, key)),
                Err(e) => r.err(&c.span(), "issuer.tls_cert_file", e),
            }
        }
        (Some(x), None) | (None, Some(x)) => r.err(
            &x.span(),
            "issuer.tls_cert_file",
            "tls_cert_file and tls_key_file go together",
        ),
    };
    if let (Some(addr), None) = (listen, &tls)
        && !addr.ip().is_loopback()
        && let Some(l) = &issuer.listen
    {
        r.err::<()>(
            &l.span(),
            "issuer.listen",
            "a listener on a non-loopback address needs tls_cert_file and tls_key_file",
        );
    }
    if listen.is_none()
        && tls.is_some()
        && let Some(c) = &issuer.tls_cert_file
    {
        r.err::<()>(
            &c.span(),
            "issuer.tls_cert_file",
            "TLS files without issuer.listen do nothing",
        );
    }
    let sealing = resolve_sealing(r, raw);
    if r.error_count() != before {
        return None;
    }
    let url = url?;
    Some(IssuerConfig {
        login_audience: login_audience.unwrap_or_else(|| url.clone()),
        url,
        mode,
        algorithm,
        token_ttl,
        reuse,
        catalog: catalog?,
        instance_id,
        host_name: issuer.host_name.clone(),
        version,
        license_type: issuer.license_type.clone(),
        issue_uids: issuer.issue_uids.clone(),
        issue_gids: issuer.issue_gids.clone(),
        key_file,
        listen,
        tls,
        sealing: Arc::new(sealing),
    })
}

/// `keyring_key` and `keyring_previous_key` (each inline, `*_file` or
/// `*_credential`): base64 of 32 bytes. The values never reach an error
/// message.
fn resolve_sealing(r: &mut Resolver<'_>, raw: &Spanned<RawIssuer>) -> Sealing {
    let issuer = raw.get_ref();
    let Some(settings) = r.daemon_secrets(
        "issuer",
        &["keyring_key", "keyring_previous_key"],
        &[
            ("keyring_key", issuer.keyring_key.as_ref()),
            ("keyring_key_file", issuer.keyring_key_file.as_ref()),
            ("keyring_key_credential", issuer.keyring_key_credential.as_ref()),
            ("keyring_previous_key", issuer.keyring_previous_key.as_ref()),
            (
                "keyring_previous_key_file",
                issuer.keyring_previous_key_file.as_ref(),
            ),
            (
                "keyring_previous_key_credential",
                issuer.keyring_previous_key_credential.as_ref(),
            ),
        ],
        &raw.span(),
    ) else {
        // a check outside the unit: the key's form is not known, and the
        // check's scratch store holds no keyring to open
        return Sealing::default();
    };
    let span_of = |forms: [Option<&Spanned<String>>; 3]| {
        forms
            .into_iter()
            .flatten()
            .next()
            .map_or(raw.span(), Spanned::span)
    };
    let current_span = span_of([
        issuer.keyring_key.as_ref(),
        issuer.keyring_key_file.as_ref(),
        issuer.keyring_key_credential.as_ref(),
    ]);
    let previous_span = span_of([
        issuer.keyring_previous_key.as_ref(),
        issuer.keyring_previous_key_file.as_ref(),
        issuer.keyring_previous_key_credential.as_ref(),
    ]);
    let before = r.error_count();
    let mut key = |name: &str, span: &std::ops::Range<usize>| {
        let text = settings.get(name)?.as_str()?;
        SealKey::parse(&gatehouse_sdk::Secret::new(text.to_owned()))
            .map_err(|e| r.err::<()>(span, format!("issuer.{name}"), e.to_string()))
            .ok()
    };
    let current = key("keyring_key", &current_span);
    let previous = key("keyring_previous_key", &previous_span);
    if previous.is_some() && current.is_none() && r.error_count() == before {
        r.err::<()>(
            &previous_span,
            "issuer.keyring_previous_key",
            "a previous key opens the keyring only beside a current keyring_key",
        );
    }
    if let (Some(c), Some(p)) = (&current, &previous)
        && c.id() == p.id()
    {
        r.err::<()>(
            &previous_span,
            "issuer.keyring_previous_key",
            "is the same key as keyring_key",
        );
    }
    Sealing { current, previous }
}
