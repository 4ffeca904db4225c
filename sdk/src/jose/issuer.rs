//! Keys per issuer, from OIDC discovery: `GET <issuer>/.well-known/
//! openid-configuration`, then its `jwks_uri`. A key set stays tied to the
//! issuer that published it. A failed or empty fetch never replaces a good
//! set; fetches back off after failures; an unknown `kid` triggers at most
//! one refetch per interval; the last good set can be kept on disk so a
//! restart while the issuer is down still verifies.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::jose::jws::{self, Parsed, Refusal};
use crate::jose::keys::KeySet;
use crate::jose::{Error, Fetcher, Reason};

/// The largest discovery document or JWKS read (bytes).
pub const MAX_DOCUMENT: usize = 1024 * 1024;

/// The longest wait between retries after failed fetches.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct State {
    keys: Arc<KeySet>,
    fetched: Option<Instant>,
    last_attempt: Option<Instant>,
    failures: u32,
    last_unknown_kid_fetch: Option<Instant>,
    last_error: Option<String>,
}

/// How an [`Issuer`] keeps its keys.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IssuerOptions {
    /// How long a fetched set is good; a refresh is due after 80% of it.
    pub ttl: Duration,
    /// At most one refetch per this interval for tokens with an unknown
    /// `kid`.
    pub unknown_kid_refetch_interval: Duration,
    /// Where the last good set is kept (see [`persisted_file_name`]), if
    /// anywhere.
    pub persist: Option<PathBuf>,
}

impl Default for IssuerOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            unknown_kid_refetch_interval: Duration::from_secs(30),
            persist: None,
        }
    }
}

impl IssuerOptions {
    /// Sets [`IssuerOptions::ttl`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`IssuerOptions::unknown_kid_refetch_interval`].
    pub fn unknown_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_refetch_interval = interval;
        self
    }

    /// Sets [`IssuerOptions::persist`].
    pub fn persist(mut self, path: Option<PathBuf>) -> Self {
        self.persist = path;
        self
    }
}

/// Why a signature could not be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No keys at all (never fetched, or the issuer is down since start):
    /// the token cannot be checked, which is not the token's fault.
    Unavailable(String),
    /// The token is refused.
    Rejected(Reason, String),
}

impl From<Refusal> for SignatureError {
    fn from((reason, message): Refusal) -> Self {
        Self::Rejected(reason, message)
    }
}

/// One trusted issuer and its current keys.
pub struct Issuer {
    url: String,
    /// Where the keys are, when known without discovery.
    jwks_uri: Option<String>,
    /// Keys given once (a configured public key): never fetched.
    fixed: bool,
    fetcher: Arc<dyn Fetcher>,
    options: IssuerOptions,
    state: Mutex<State>,
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.url)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer (its URL without a trailing `/`), starting from the last
    /// good set on disk when there is one. Nothing is fetched yet.
    pub fn new(url: impl Into<String>, fetcher: Arc<dyn Fetcher>, options: IssuerOptions) -> Self {
        let keys = options
            .persist
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| KeySet::from_json(&b).ok())
            .unwrap_or_default();
        Self {
            url: url.into().trim_end_matches('/').to_owned(),
            jwks_uri: None,
            fixed: false,
            fetcher,
            options,
            state: Mutex::new(State {
                keys: Arc::new(keys),
                fetched: None,
                last_attempt: None,
                failures: 0,
                last_unknown_kid_fetch: None,
                last_error: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// An issuer whose keys are at `jwks_uri` (configured, or found by the
    /// caller's own discovery): no discovery document is read.
    pub fn with_jwks_uri(
        url: impl Into<String>,
        jwks_uri: impl Into<String>,
        fetcher: Arc<dyn Fetcher>,
        options: IssuerOptions,
    ) -> Self {
        let mut issuer = Self::new(url, fetcher, options);
        issuer.jwks_uri = Some(jwks_uri.into());
        issuer
    }

    /// An issuer with a fixed set of keys (a configured public key): never
    /// fetched, never refreshed.
    pub fn with_keys(url: impl Into<String>, keys: KeySet) -> Self {
        struct NoFetch;
        #[async_trait::async_trait]
        impl Fetcher for NoFetch {
            async fn get(&self, _url: &str, _limit: usize) -> Result<Vec<u8>, String> {
                Err("this issuer's keys are configured, not fetched".into())
            }
        }
        let issuer = Self::new(url, Arc::new(NoFetch), IssuerOptions::default());
        let mut issuer = Self {
            fixed: true,
            ..issuer
        };
        let s = issuer
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.keys = Arc::new(keys);
        s.fetched = Some(Instant::now());
        issuer
    }

    /// The issuer URL (no trailing `/`): what `iss` must equal.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True when `iss` names this issuer (a trailing `/` aside).
    pub fn is(&self, iss: &str) -> bool {
        self.url == iss.trim_end_matches('/')
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current keys (possibly none).
    pub fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.lock().keys)
    }

    /// When the keys were last fetched; `None`: never (or configured).
    pub fn fetched_at(&self) -> Option<std::time::SystemTime> {
        let fetched = self.lock().fetched?;
        if self.fixed {
            return None;
        }
        std::time::SystemTime::now().checked_sub(fetched.elapsed())
    }

    /// Why the last fetch failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    /// 0.5 s after the first failure (an issuer that starts a moment
    /// after its verifiers, such as the daemon's own), doubling up to
    /// `MAX_BACKOFF`.
    fn backoff(failures: u32) -> Duration {
        Duration::from_millis(250u64 << failures.min(12)).min(MAX_BACKOFF)
    }

    /// True when a background refresh is due: no keys yet, or 80% of the
    /// TTL has passed; never sooner than the failure backoff allows.
    pub fn due(&self, now: Instant) -> bool {
        if self.fixed {
            return false;
        }
        let s = self.lock();
        if let Some(at) = s.last_attempt
            && s.failures > 0
            && now.duration_since(at) < Self::backoff(s.failures)
        {
            return false;
        }
        match s.fetched {
            None => true,
            Some(t) => now.duration_since(t) >= self.options.ttl.mul_f32(0.8),
        }
    }

    /// Fetches discovery and the JWKS; keeps the old set on any failure,
    /// writes the new one to disk when persisting.
    pub async fn refresh(&self) -> Result<(), Error> {
        if self.fixed {
            return Ok(());
        }
        let _one = self.fetching.lock().await;
        let started = Instant::now();
        self.lock().last_attempt = Some(started);
        let result = self.fetch().await;
        let mut s = self.lock();
        match result {
            Ok((keys, raw)) => {
                s.keys = Arc::new(keys);
                s.fetched = Some(started);
                s.failures = 0;
                s.last_error = None;
                drop(s);
                if let Some(p) = &self.options.persist {
                    let tmp = p.with_extension("tmp");
                    if std::fs::write(&tmp, &raw)
                        .and_then(|()| std::fs::rename(&tmp, p))
                        .is_err()
                    {
                        let _ = std::fs::remove_file(&tmp);
                    }
                }
                Ok(())
            }
            Err(e) => {
                s.failures = s.failures.saturating_add(1);
                s.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The `jwks_uri` of the issuer's discovery document, which must name
    /// this issuer.
    pub async fn discover(&self) -> Result<String, Error> {
        let discovery = format!("{}/.well-known/openid-configuration", self.url);
        let fail = |reason: String| Error::Discovery {
            url: discovery.clone(),
            reason,
        };
        let raw = self.fetcher.get(&discovery, MAX_DOCUMENT).await.map_err(fail)?;
        let doc: Value = serde_json::from_slice(&raw).map_err(|e| fail(e.to_string()))?;
        if doc
            .get("issuer")
            .and_then(Value::as_str)
            .map(|i| i.trim_end_matches('/'))
            != Some(self.url.as_str())
        {
            return Err(fail("the document names another issuer".into()));
        }
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| fail("no jwks_uri".into()))
    }

    async fn fetch(&self) -> Result<(KeySet, Vec<u8>), Error> {
        let jwks_uri = match &self.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.discover().await?,
        };
        let fail = |reason: String| Error::Jwks {
            url: jwks_uri.clone(),
            reason,
        };
        let raw = self.fetcher.get(&jwks_uri, MAX_DOCUMENT).await.map_err(fail)?;
        let keys = KeySet::from_json(&raw).map_err(|e| fail(e.to_string()))?;
        if keys.is_empty() {
            return Err(fail("no usable signature key".into()));
        }
        Ok((keys, raw))
    }

    /// An unknown `kid` may mean the issuer rotated its keys: refetch, at
    /// most once per interval. True when a fetch happened and succeeded.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        if self.fixed {
            return false;
        }
        {
            let mut s = self.lock();
            let now = Instant::now();
            if s.last_unknown_kid_fetch
                .is_some_and(|t| now.duration_since(t) < self.options.unknown_kid_refetch_interval)
            {
                return false;
            }
            s.last_unknown_kid_fetch = Some(now);
        }
        self.refresh().await.is_ok()
    }

    /// The keys; when there are none at all (first use, issuer down at
    /// start), a fetch first, within the backoff. Possibly still none.
    pub async fn ensure_keys(&self) -> Arc<KeySet> {
        let keys = self.keys();
        if keys.is_empty() && self.due(Instant::now()) {
            let _ = self.refresh().await;
            return self.keys();
        }
        keys
    }

    /// Checks a parsed token's signature against this issuer's keys (the
    /// caller has checked that its `iss` names this issuer). A `kid` not in
    /// the set refetches once per interval (the issuer may have rotated).
    pub async fn verify_signature(&self, parsed: &Parsed<'_>) -> Result<(), SignatureError> {
        let keys = self.ensure_keys().await;
        if keys.is_empty() {
            return Err(SignatureError::Unavailable(format!(
                "no keys for {}: {}",
                self.url,
                self.last_error().unwrap_or_else(|| "not fetched yet".into())
            )));
        }
        let mut verdict = keys.check(parsed);
        if verdict.is_none() && self.refetch_for_unknown_kid().await {
            verdict = self.keys().check(parsed);
        }
        match verdict {
            Some(true) => Ok(()),
            Some(false) => Err(SignatureError::Rejected(
                Reason::BadSignature,
                "the signature does not verify".into(),
            )),
            None => Err(SignatureError::Rejected(
                Reason::UnknownKey,
                format!("{} has no matching key", self.url),
            )),
        }
    }
}

/// What an ID token must match besides its signature.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IdTokenCheck<'a> {
    /// The client id: `aud` must contain it, and `azp`, when present, must
    /// equal it.
    pub audience: &'a str,
    /// The allowed algorithms ([`jws::allowed_algorithms`]).
    pub algorithms: &'a std::collections::BTreeSet<String>,
    /// Now, in Unix seconds.
    pub now: i64,
    /// Clock skew allowed for `exp` and `nbf`, in seconds.
    pub leeway: i64,
}

impl<'a> IdTokenCheck<'a> {
    /// A check for `audience` with `algorithms` at `now`, 30 s leeway.
    pub fn new(audience: &'a str, algorithms: &'a std::collections::BTreeSet<String>, now: i64) -> Self {
        Self {
            audience,
            algorithms,
            now,
            leeway: 30,
        }
    }

    /// Sets [`IdTokenCheck::leeway`].
    pub fn leeway(mut self, seconds: i64) -> Self {
        self.leeway = seconds;
        self
    }
}

/// Verifies an OpenID Connect ID token (or any JWT of this issuer): strict
/// parsing, `iss` equal to the issuer, the signature with the issuer's
/// discovered keys, `exp`/`nbf`, `aud` containing the audience, `azp`. The
/// claims on success. The `nonce` is left to the caller, who knows the one
/// it sent.
pub async fn verify_id_token(
    issuer: &Issuer,
    token: &str,
    check: &IdTokenCheck<'_>,
) -> Result<Map<String, Value>, SignatureError> {
    let parsed = jws::parse(token, check.algorithms)?;
    let iss = parsed
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or((Reason::Malformed, "the token has no iss".to_owned()))?;
    if !issuer.is(iss) {
        return Err(SignatureError::Rejected(
            Reason::WrongIssuer,
            format!("{iss:?} is not {}", issuer.url()),
        ));
    }
    issuer.verify_signature(&parsed).await?;
    let claims = parsed.claims;
    jws::check_times(&claims, check.now, check.leeway)?;
    let audience =
        jws::strings(claims.get("aud")).ok_or((Reason::WrongAudience, "the token has no aud".to_owned()))?;
    if !audience.iter().any(|a| a == check.audience) {
        return Err(SignatureError::Rejected(
            Reason::WrongAudience,
            format!("the token is not for {:?}", check.audience),
        ));
    }
    if let Some(azp) = claims.get("azp")
        && azp.as_str() != Some(check.audience)
    {
        return Err(SignatureError::Rejected(
            Reason::WrongAudience,
            "azp names another client".into(),
        ));
    }
    Ok(claims)
}

/// The file name (in a state directory) holding an issuer's last good
/// keys.
pub fn persisted_file_name(issuer: &str) -> String {
    let key: String = issuer
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(100)
        .collect();
    format!("jwks-{key}.json")
}
