//! The `jwt` verifier: service access tokens checked against the keys of
//! the issuers that may sign them, with the cloud-connector rules — `aud`
//! must name the audience, the requested unit primitive must be in the
//! `scopes` claim.
//!
//! ```toml
//! [[verifiers]]
//! name = "cloud-connector"
//! type = "jwt"
//! [verifiers.settings]
//! audience = "gitlab-ai-gateway"
//! issuers = ["https://customers.example.com", "https://gitlab.example.com"]
//! jwks_cache_ttl = "24h"
//! leeway = "30s"
//! algorithms = ["RS256", "ES256", "EdDSA"]
//! ```
//!
//! A token verifies only against keys of its own `iss`. Algorithms come
//! from an allow-list that can never hold `none` or an HMAC algorithm, so an
//! attacker cannot make a public key serve as an HMAC secret. Keys named by
//! `jku`, `x5u` or an embedded `jwk` are never used.

//!
//! Keys, parsing and signatures are the SDK's shared JOSE
//! (`gatehouse_sdk::jose`); fetches go through the SDK's HTTP client with
//! the daemon's `[http]` settings, plus this verifier's own `ca_file` and
//! `fetch_timeout` when set.

mod cache;

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use gatehouse_sdk::http::HttpClient;
use gatehouse_sdk::jose::jws::{self, Refusal};
use gatehouse_sdk::jose::{Issuer, IssuerOptions, SignatureError};
use gatehouse_sdk::{
    Context, Plugin, PluginConfig, PluginError, TokenRejection, VerifiedToken, Verifier, VerifierFactory,
    VerifyRequest, async_trait, parse_duration,
};
use serde::Deserialize;
use serde_json::Value;

use cache::TokenCache;

/// The plugin: one verifier type, `jwt`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JwtPlugin;

impl Plugin for JwtPlugin {
    fn name(&self) -> &str {
        "jwt"
    }

    fn verifiers(&self) -> Vec<Box<dyn VerifierFactory>> {
        vec![Box::new(JwtFactory)]
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    audience: String,
    issuers: Vec<String>,
    #[serde(default = "default_ttl")]
    jwks_cache_ttl: String,
    #[serde(default = "default_leeway")]
    leeway: String,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default = "default_refetch")]
    unknown_kid_refetch_interval: String,
    /// Connect and request timeout of key fetches; `[http]`'s when unset.
    #[serde(default)]
    fetch_timeout: Option<String>,
    /// A PEM bundle of extra CA roots for reaching the issuers (an
    /// internal CA), trusted besides the system's.
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default = "yes")]
    persist_keys: bool,
    #[serde(default = "default_cache")]
    token_cache_size: usize,
    /// Allow `http://` issuers on other hosts than loopback.
    #[serde(default)]
    danger_allow_http_issuers: bool,
}

fn default_ttl() -> String {
    "24h".into()
}
fn default_leeway() -> String {
    "30s".into()
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_refetch() -> String {
    "30s".into()
}
/// Verified tokens kept (about 2 KB each): far more live tokens than one
/// host's backends present, without a sidecar growing past ~20 MB for it.
fn default_cache() -> usize {
    10_000
}
fn yes() -> bool {
    true
}

/// Builds `jwt` verifiers.
#[derive(Clone, Copy, Debug, Default)]
pub struct JwtFactory;

fn bad(m: impl Into<String>) -> PluginError {
    PluginError::Misconfigured(m.into())
}

fn duration(v: &str, key: &str) -> Result<Duration, PluginError> {
    parse_duration(v).map_err(|e| bad(format!("{key}: {e}")))
}

/// True when a plain-http URL's host is a loopback address (the same rule
/// as the SDK client's): `localhost`, `127.0.0.0/8`, `[::1]`. A URL with
/// user info is not taken apart here: it is never loopback.
fn loopback(url: &str) -> bool {
    let authority = url
        .trim_start_matches("http://")
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Fetches keys with the SDK's client; logs nothing itself.
struct Fetch(HttpClient);

#[async_trait]
impl gatehouse_sdk::jose::Fetcher for Fetch {
    async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String> {
        gatehouse_sdk::jose::Fetcher::get(&self.0, url, limit).await
    }
}

impl VerifierFactory for JwtFactory {
    fn type_name(&self) -> &str {
        "jwt"
    }

    fn config_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "required": ["audience", "issuers"],
            "properties": {
                "audience": {"type": "string", "description": "the aud every token must carry (a request may name another)"},
                "issuers": {"type": "array", "items": {"type": "string"}, "description": "the trusted issuer URLs; keys come from each one's discovery document and JWKS"},
                "jwks_cache_ttl": {"type": "string", "description": "how long fetched keys are used before they are fetched again (a duration); default 24h"},
                "leeway": {"type": "string", "description": "clock skew allowed on exp, nbf and iat (a duration); default 30s"},
                "algorithms": {"type": "array", "items": {"type": "string"}, "description": "signature algorithms accepted (never none or HMAC); default RS256, ES256, EdDSA"},
                "unknown_kid_refetch_interval": {"type": "string", "description": "a token with an unknown key id refetches the issuer's keys at most this often (a duration); default 30s"},
                "fetch_timeout": {"type": "string", "description": "connect and request timeout of key fetches (a duration); default: [http]'s"},
                "ca_file": {"type": "string", "description": "a PEM bundle of extra CA roots for reaching the issuers, trusted besides the system's"},
                "persist_keys": {"type": "boolean", "description": "keep the last good keys in state_dir, so tokens verify after a restart while an issuer is down (default true)"},
                "token_cache_size": {"type": "integer", "description": "verified tokens kept in memory (about 2 KB each); default 10000"},
                "danger_allow_http_issuers": {"type": "boolean", "description": "allow http:// issuers that are not on loopback: their keys can be replaced in transit (tests only)"}
            }
        })
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Verifier>, PluginError> {
        let raw: RawSettings = config.parse()?;
        if raw.audience.trim().is_empty() {
            return Err(bad("audience: must not be empty"));
        }
        if raw.issuers.is_empty() {
            return Err(bad("issuers: at least one issuer is needed"));
        }
        let danger_http = raw.danger_allow_http_issuers || config.context.http().danger_allow_http;
        if raw.danger_allow_http_issuers {
            config.context.warn(
                "danger_allow_http_issuers is on: keys fetched over plain http can be replaced in transit",
            );
        }
        let mut seen = BTreeSet::new();
        for i in &raw.issuers {
            if !seen.insert(i.trim_end_matches('/').to_owned()) {
                return Err(bad(format!("issuers: {i:?} is listed twice")));
            }
            match i.split_once("://") {
                Some(("https", rest)) if !rest.is_empty() => {}
                Some(("http", _)) if loopback(i) || danger_http => {}
                Some(("http", _)) => {
                    return Err(bad(format!(
                        "issuers: {i:?} uses plain http: keys fetched that way can be replaced in transit \
                         (use https, or set danger_allow_http_issuers)"
                    )));
                }
                _ => return Err(bad(format!("issuers: {i:?} is not an http(s) URL"))),
            }
        }
        let algorithms =
            jws::allowed_algorithms(&raw.algorithms).map_err(|e| bad(format!("algorithms: {e}")))?;
        let ttl = duration(&raw.jwks_cache_ttl, "jwks_cache_ttl")?;
        if ttl < Duration::from_secs(60) {
            return Err(bad("jwks_cache_ttl: at least 60s"));
        }
        let leeway = duration(&raw.leeway, "leeway")?;
        if leeway > Duration::from_secs(600) {
            return Err(bad("leeway: at most 10m"));
        }
        let refetch = duration(&raw.unknown_kid_refetch_interval, "unknown_kid_refetch_interval")?;
        // The daemon's [http] client, with this verifier's additions: its
        // own CA file (added to [http]'s and the system's roots), its own
        // timeout, and plain http to loopback issuers (or anywhere with
        // danger_allow_http_issuers).
        let mut client = HttpClient::builder(config.context.http())
            .allow_loopback_http()
            .danger_allow_http(raw.danger_allow_http_issuers);
        if let Some(t) = &raw.fetch_timeout {
            let timeout = duration(t, "fetch_timeout")?;
            client = client.timeout(timeout).connect_timeout(timeout);
        }
        if let Some(file) = &raw.ca_file {
            client = client.add_ca_file(config.context.resolve_path(file));
        }
        let fetch: Arc<dyn gatehouse_sdk::jose::Fetcher> = Arc::new(Fetch(client.build()?));
        let state_dir = config.context.state_dir().map(std::path::Path::to_owned);
        if raw.persist_keys
            && let Some(d) = &state_dir
        {
            let _ = std::fs::create_dir_all(d);
        }
        let issuers: Vec<Arc<Issuer>> = raw
            .issuers
            .iter()
            .map(|url| {
                let persist = (raw.persist_keys)
                    .then(|| state_dir.as_ref().map(|d| d.join(persisted_keys_file(url))))
                    .flatten();
                Arc::new(Issuer::new(
                    url.trim_end_matches('/'),
                    Arc::clone(&fetch),
                    IssuerOptions::default()
                        .ttl(ttl)
                        .unknown_kid_refetch_interval(refetch)
                        .persist(persist),
                ))
            })
            .collect();
        let verifier = Arc::new(JwtVerifier {
            audience: raw.audience,
            issuers,
            algorithms,
            leeway: i64::try_from(leeway.as_secs()).unwrap_or(600),
            cache: TokenCache::new(raw.token_cache_size),
        });
        // Keys are fetched in the background: startup never waits for an
        // issuer.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(refresher(Arc::downgrade(&verifier), config.context.clone()));
        }
        Ok(verifier)
    }
}

/// The file (in the instance's state directory) holding an issuer's last
/// good keys.
pub fn persisted_keys_file(issuer: &str) -> String {
    gatehouse_sdk::jose::persisted_file_name(issuer)
}

/// Refreshes every issuer's keys before they expire; retries failures with
/// backoff; ends when the verifier is dropped (a reload replaced it).
async fn refresher(verifier: Weak<JwtVerifier>, ctx: Context) {
    loop {
        let Some(v) = verifier.upgrade() else {
            return;
        };
        let now = Instant::now();
        for issuer in &v.issuers {
            if issuer.due(now) {
                match issuer.refresh().await {
                    Ok(()) => ctx.debug(&format!("keys of {} refreshed", issuer.url())),
                    Err(e) => ctx.warn(&format!("keeping the last keys of {}: {e}", issuer.url())),
                }
            }
        }
        drop(v);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct JwtVerifier {
    audience: String,
    issuers: Vec<Arc<Issuer>>,
    algorithms: BTreeSet<String>,
    leeway: i64,
    cache: TokenCache,
}

fn refuse<T>(reason: TokenRejection, detail: impl Into<String>) -> Result<T, PluginError> {
    Err(PluginError::invalid_token(reason, detail))
}

fn from_refusal<T>((reason, detail): Refusal) -> Result<T, PluginError> {
    refuse(reason, detail)
}

use jws::strings;

impl JwtVerifier {
    fn issuer(&self, iss: &str) -> Option<&Arc<Issuer>> {
        self.issuers.iter().find(|i| i.is(iss))
    }

    /// Audience and unit primitive: per request, also on cache hits.
    fn check_request(&self, t: &VerifiedToken, req: &VerifyRequest) -> Result<(), PluginError> {
        let audience = req.audience.as_deref().unwrap_or(&self.audience);
        if !t.audience.iter().any(|a| a == audience) {
            return refuse(
                TokenRejection::WrongAudience,
                format!("the token is not for {audience:?}"),
            );
        }
        if let Some(up) = &req.unit_primitive
            && !t.scopes.iter().any(|s| s == up)
        {
            return refuse(
                TokenRejection::MissingScope,
                format!("the token's scopes lack {up:?}"),
            );
        }
        Ok(())
    }
}

#[async_trait]
impl Verifier for JwtVerifier {
    fn key_sources(&self) -> Vec<gatehouse_sdk::proto::IssuerKeys> {
        self.issuers
            .iter()
            .map(|i| gatehouse_sdk::proto::IssuerKeys {
                issuer: i.url().to_owned(),
                keys_fetched_at: i.fetched_at().map(gatehouse_sdk::proto::rfc3339),
                keys: i.keys().len(),
                last_error: i.last_error(),
            })
            .collect()
    }

    async fn verify(&self, ctx: &Context, req: &VerifyRequest) -> Result<VerifiedToken, PluginError> {
        let raw = req.token.expose();
        let now = gatehouse_sdk::jose::unix(ctx.now());
        let key = cache::key(raw);
        if let Some(mut hit) = self.cache.get(&key, now - self.leeway) {
            self.check_request(&hit, req)?;
            hit.cached = true;
            return Ok(hit);
        }
        let parsed = jws::parse(raw, &self.algorithms).or_else(from_refusal)?;
        let iss = parsed
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| PluginError::invalid_token(TokenRejection::Malformed, "the token has no iss"))?
            .to_owned();
        let Some(issuer) = self.issuer(&iss) else {
            return refuse(
                TokenRejection::WrongIssuer,
                format!("{iss:?} is not a trusted issuer"),
            );
        };
        match issuer.verify_signature(&parsed).await {
            Ok(()) => {}
            Err(SignatureError::Rejected(gatehouse_sdk::jose::Reason::UnknownKey, detail)) => {
                // Signed with another trusted issuer's key while naming this
                // one: a token must verify with keys of its own iss.
                let other = self
                    .issuers
                    .iter()
                    .filter(|o| !Arc::ptr_eq(o, issuer))
                    .any(|o| o.keys().check(&parsed) == Some(true));
                if other {
                    return refuse(
                        TokenRejection::WrongIssuer,
                        format!("signed by another issuer's key, not by {iss}"),
                    );
                }
                return refuse(TokenRejection::UnknownKey, detail);
            }
            Err(e) => return Err(e.into()),
        }
        let claims = parsed.claims;
        let exp = jws::check_times(&claims, now, self.leeway).or_else(from_refusal)?;
        let audience = strings(claims.get("aud")).ok_or_else(|| {
            PluginError::invalid_token(TokenRejection::WrongAudience, "the token has no aud")
        })?;
        let scopes = match claims.get("scopes") {
            None => Vec::new(),
            v => strings(v).ok_or_else(|| {
                PluginError::invalid_token(TokenRejection::Malformed, "scopes is not a list")
            })?,
        };
        let mut verified = VerifiedToken::new(iss, claims.get("sub").and_then(Value::as_str).unwrap_or(""));
        verified.audience = audience;
        verified.scopes = scopes;
        verified.expires_at = u64::try_from(exp).ok();
        verified.claims = claims;
        self.cache.put(key, verified.clone(), now);
        self.check_request(&verified, req)?;
        Ok(verified)
    }
}

#[cfg(test)]
mod tests;
