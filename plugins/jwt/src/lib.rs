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

mod cache;
mod jwks;
mod token;

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_sdk::{
    Context, Plugin, PluginConfig, PluginError, TokenRejection, VerifiedToken, Verifier, VerifierFactory,
    VerifyRequest, async_trait, parse_duration,
};
use serde::Deserialize;
use serde_json::Value;

use cache::TokenCache;
use jwks::Issuer;
use token::Refusal;

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
    #[serde(default = "default_timeout")]
    fetch_timeout: String,
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
fn default_timeout() -> String {
    "5s".into()
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

fn loopback(url: &str) -> bool {
    let host = url
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "127.0.0.1" || host == "localhost" || host == "[::1]"
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
                "audience": {"type": "string"},
                "issuers": {"type": "array", "items": {"type": "string"}},
                "jwks_cache_ttl": {"type": "string"},
                "leeway": {"type": "string"},
                "algorithms": {"type": "array", "items": {"type": "string"}},
                "unknown_kid_refetch_interval": {"type": "string"},
                "fetch_timeout": {"type": "string"},
                "ca_file": {"type": "string"},
                "persist_keys": {"type": "boolean"},
                "token_cache_size": {"type": "integer"}
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
        let mut seen = BTreeSet::new();
        for i in &raw.issuers {
            if !seen.insert(i.trim_end_matches('/').to_owned()) {
                return Err(bad(format!("issuers: {i:?} is listed twice")));
            }
            match i.split_once("://") {
                Some(("https", rest)) if !rest.is_empty() => {}
                Some(("http", _)) if loopback(i) || raw.danger_allow_http_issuers => {}
                Some(("http", _)) => {
                    return Err(bad(format!(
                        "issuers: {i:?} uses plain http: keys fetched that way can be replaced in transit \
                         (use https, or set danger_allow_http_issuers)"
                    )));
                }
                _ => return Err(bad(format!("issuers: {i:?} is not an http(s) URL"))),
            }
        }
        let mut algorithms = BTreeSet::new();
        for a in &raw.algorithms {
            match a.as_str() {
                "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "EdDSA" => {
                    algorithms.insert(a.clone());
                }
                "HS256" | "HS384" | "HS512" => {
                    return Err(bad(format!(
                        "algorithms: {a} is refused: an HMAC algorithm would let a public key act as a shared secret"
                    )));
                }
                other => return Err(bad(format!("algorithms: unknown or refused algorithm {other:?}"))),
            }
        }
        if algorithms.is_empty() {
            return Err(bad("algorithms: at least one algorithm is needed"));
        }
        let ttl = duration(&raw.jwks_cache_ttl, "jwks_cache_ttl")?;
        if ttl < Duration::from_secs(60) {
            return Err(bad("jwks_cache_ttl: at least 60s"));
        }
        let leeway = duration(&raw.leeway, "leeway")?;
        if leeway > Duration::from_secs(600) {
            return Err(bad("leeway: at most 10m"));
        }
        let refetch = duration(&raw.unknown_kid_refetch_interval, "unknown_kid_refetch_interval")?;
        let timeout = duration(&raw.fetch_timeout, "fetch_timeout")?;
        let mut client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.context.http().user_agent.clone());
        if let Some(file) = &raw.ca_file {
            client = client.tls_certs_merge(ca_roots(&config.context.resolve_path(file))?);
        }
        let client = client.build().map_err(|e| bad(format!("HTTP client: {e}")))?;
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
                    url.trim_end_matches('/').to_owned(),
                    client.clone(),
                    ttl,
                    refetch,
                    persist,
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

/// The certificates of a PEM bundle: at least one, every one well formed.
fn ca_roots(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, PluginError> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| bad(format!("ca_file: cannot read {shown}: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| bad(format!("ca_file: {shown} is not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(bad(format!("ca_file: {shown} holds no certificate")));
    }
    Ok(certs)
}

/// The file (in the instance's state directory) holding an issuer's last
/// good keys.
pub fn persisted_keys_file(issuer: &str) -> String {
    let key: String = issuer
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(100)
        .collect();
    format!("jwks-{key}.json")
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
                    Ok(()) => ctx.debug(&format!("keys of {} refreshed", issuer.url)),
                    Err(e) => ctx.warn(&format!("keeping the last keys of {}: {e}", issuer.url)),
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

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

impl JwtVerifier {
    fn issuer(&self, iss: &str) -> Option<&Arc<Issuer>> {
        self.issuers.iter().find(|i| i.url == iss.trim_end_matches('/'))
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

    /// Signature check against the keys of `issuer` that match `kid` and
    /// the algorithm. `None`: no such key.
    fn check_signature(keys: &[jwks::Key], parsed: &token::Parsed<'_>) -> Option<bool> {
        let mut candidates = keys
            .iter()
            .filter(|k| k.allows(parsed.alg))
            .filter(|k| match (&parsed.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .peekable();
        candidates.peek()?;
        let Ok(signature) = URL_SAFE_NO_PAD.decode(parsed.signature) else {
            return Some(false);
        };
        let message = parsed.signing_input.as_bytes();
        Some(candidates.any(|k| k.verifies(parsed.alg, message, &signature)))
    }
}

#[async_trait]
impl Verifier for JwtVerifier {
    async fn verify(&self, ctx: &Context, req: &VerifyRequest) -> Result<VerifiedToken, PluginError> {
        let raw = req.token.expose();
        let now = jwks::unix(ctx.now());
        let key = cache::key(raw);
        if let Some(mut hit) = self.cache.get(&key, now - self.leeway) {
            self.check_request(&hit, req)?;
            hit.cached = true;
            return Ok(hit);
        }
        let parsed = token::parse(raw, &self.algorithms).or_else(from_refusal)?;
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
        let keys = issuer.ensure_keys().await;
        if keys.is_empty() {
            return Err(PluginError::Unavailable(format!(
                "no keys for {iss}: {}",
                issuer.last_error().unwrap_or_else(|| "not fetched yet".into())
            )));
        }
        let mut verdict = Self::check_signature(&keys, &parsed);
        if verdict.is_none() && issuer.refetch_for_unknown_kid().await {
            // The issuer may have rotated its keys.
            verdict = Self::check_signature(&issuer.keys(), &parsed);
        }
        match verdict {
            Some(true) => {}
            Some(false) => return refuse(TokenRejection::BadSignature, "the signature does not verify"),
            None => {
                // Signed with another trusted issuer's key while naming this
                // one: a token must verify with keys of its own iss.
                let other = self
                    .issuers
                    .iter()
                    .filter(|o| !Arc::ptr_eq(o, issuer))
                    .any(|o| Self::check_signature(&o.keys(), &parsed) == Some(true));
                if other {
                    return refuse(
                        TokenRejection::WrongIssuer,
                        format!("signed by another issuer's key, not by {iss}"),
                    );
                }
                return refuse(TokenRejection::UnknownKey, format!("{iss} has no matching key"));
            }
        }
        let claims = parsed.claims;
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| {
            PluginError::invalid_token(TokenRejection::Malformed, "the token has no numeric exp")
        })?;
        if exp + self.leeway < now {
            return refuse(TokenRejection::Expired, "the token has expired");
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_i64().ok_or_else(|| {
                PluginError::invalid_token(TokenRejection::Malformed, "nbf is not a number")
            })?;
            if nbf - self.leeway > now {
                return refuse(TokenRejection::NotYetValid, "the token is not valid yet");
            }
        }
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
