//! The issuer: gatehouse signs service access tokens whose `scopes` claim
//! lists the unit primitives a user, a namespace or the instance may use.
//!
//! - `catalog.rs` — services, add-ons and unit primitives from YAML;
//! - `entitlements.rs` — the pure rules (free access, purchases, seats,
//!   minimum versions);
//! - `keys.rs` — the signing keyring (generated, persisted, rotated);
//! - `seal.rs` — the keyring sealed at rest under `keyring_key`;
//! - `config.rs` — `[issuer]`;
//! - this file — [`Issuer`]: the keyring and the reuse cache, which live
//!   across reloads while the keys' settings stay, and [`Issuer::issue`].

pub mod catalog;
pub mod config;
pub mod entitlements;
pub mod keys;
pub mod listener;
pub mod seal;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use gatehouse_sdk::Secret;
use gatehouse_sdk::proto::{IssueTokenRequest, IssuedToken};
use serde_json::{Map, Value, json};

pub use config::IssuerConfig;
use entitlements::{Context, Denial, Mode, Subject};
use keys::{KeyError, Keyring};

use crate::store::{Store, StoreError};

/// Claims the issuer sets and `extra_claims` may not.
pub const RESERVED_CLAIMS: [&str; 11] = [
    "iss",
    "aud",
    "sub",
    "scopes",
    "iat",
    "nbf",
    "exp",
    "jti",
    "gitlab_realm",
    "gitlab_instance_id",
    "gatehouse_authenticator",
];

/// The most tokens kept for reuse; the cache is emptied when it is full.
const MAX_CACHED: usize = 10_000;

/// Why a token was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The request is wrong (unknown service, reserved claim, both or
    /// neither of user and namespace, …).
    #[error("{0}")]
    BadRequest(String),
    /// The user or namespace does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The subject may not have the service.
    #[error("{0}")]
    NoAccess(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

#[derive(Clone)]
struct Cached {
    token: String,
    expires_at: i64,
    reuse_until: i64,
    scopes: Vec<String>,
}

/// The issuer of one configuration (reused across reloads while
/// [`IssuerConfig::same_keys`] holds; the catalog comes from each
/// generation's configuration).
pub struct Issuer {
    keys: Keyring,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Seconds a retired key stays published: a token lives `token_ttl`, plus
/// a minute for clocks that disagree.
pub fn keep_retired(config: &IssuerConfig) -> i64 {
    i64::try_from(config.token_ttl.as_secs()).unwrap_or(i64::MAX / 2) + 60
}

impl Issuer {
    /// Opens (or makes) the keyring of `config` in `store`, shared by every
    /// host on that store.
    pub async fn open(config: &IssuerConfig, store: Arc<dyn Store>, now: i64) -> Result<Self, KeyError> {
        Ok(Self {
            keys: Keyring::open(
                store,
                Arc::clone(&config.sealing),
                &config.key_file,
                config.algorithm,
                keep_retired(config),
                now,
            )
            .await?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The JWKS document: the current key and retired ones still valid,
    /// as the store has them now (another host may have rotated).
    pub async fn jwks(&self, config: &IssuerConfig, now: i64) -> Result<Value, KeyError> {
        self.keys.jwks(keep_retired(config), now).await
    }

    /// The OpenID discovery document (`/.well-known/openid-configuration`).
    pub fn discovery(config: &IssuerConfig) -> Value {
        json!({
            "issuer": config.url,
            "jwks_uri": format!("{}/v1/jwks", config.url),
            "id_token_signing_alg_values_supported": [config.algorithm.name()],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "claims_supported": ["iss", "aud", "sub", "scopes", "iat", "nbf", "exp", "jti"],
        })
    }

    /// Makes a new signing key for every host on the store; the old one
    /// stays published until its tokens expire. Tokens cached for reuse are
    /// dropped.
    pub async fn rotate(&self, config: &IssuerConfig, now: i64) -> Result<String, KeyError> {
        let kid = self
            .keys
            .rotate(config.algorithm, keep_retired(config), now)
            .await?;
        self.forget();
        Ok(kid)
    }

    /// Drops every token kept for reuse (a seat or purchase changed).
    pub fn forget(&self) {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Issues (or hands out again) a token for `req`.
    pub async fn issue(
        &self,
        config: &IssuerConfig,
        store: &dyn Store,
        req: &IssueTokenRequest,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let service = config.catalog.service(&req.service).ok_or_else(|| {
            IssueError::NotFound(format!("no service named {:?} in the catalog", req.service))
        })?;
        let extra = req.extra_claims.clone().unwrap_or_default();
        if let Some(k) = extra.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
            return Err(IssueError::BadRequest(format!(
                "extra_claims may not set the reserved claim {k:?}"
            )));
        }
        let version = match &req.version {
            Some(v) => Some(catalog::Version::parse(v).ok_or_else(|| {
                IssueError::BadRequest(format!("version {v:?} is not a version such as 17.5.0"))
            })?),
            None => config.version.clone(),
        };
        // who: self-managed instances issue one instance token
        let (subject, user_id) = match (config.mode, &req.user, &req.namespace) {
            (Mode::SelfManaged, _, _) => (Subject::Instance, None),
            (Mode::GitlabCom, Some(_), Some(_)) | (Mode::GitlabCom, None, None) => {
                return Err(IssueError::BadRequest(
                    "name exactly one of user and namespace".into(),
                ));
            }
            (Mode::GitlabCom, Some(u), None) => {
                let user = store
                    .user_by_username(u)
                    .await?
                    .ok_or_else(|| IssueError::NotFound(format!("no user named {u:?}")))?;
                (Subject::User(user.username.clone()), Some(user.id))
            }
            (Mode::GitlabCom, None, Some(n)) => (Subject::Namespace(n.clone()), None),
        };
        let namespace = match &subject {
            Subject::Namespace(n) => Some(n.as_str()),
            _ => None,
        };
        let facts = store
            .entitlement_facts(user_id, namespace)
            .await?
            .ok_or_else(|| {
                IssueError::NotFound(format!("no namespace named {:?}", namespace.unwrap_or("")))
            })?;
        let cx = Context {
            mode: config.mode,
            version: version.as_ref(),
            license_type: config.license_type.as_deref(),
            now,
        };
        let scopes: Vec<String> = entitlements::decide(service, &subject, &facts, cx)
            .map_err(|d: Denial| IssueError::NoAccess(format!("{}: {d}", service.name)))?
            .into_iter()
            .collect();
        let sub = match &subject {
            Subject::User(u) => u.clone(),
            Subject::Namespace(n) => format!("namespace:{n}"),
            Subject::Instance => config.instance_id.clone(),
        };
        let headers = headers(config, service, &subject, &facts, user_id, version.as_ref());

        let key = cache_key(&sub, &service.name, &scopes, &service.backends, &extra);
        let (token, expires_at, scopes, reused) = match self.cached(&key, now) {
            Some(hit) => (hit.token, hit.expires_at, hit.scopes, true),
            None => {
                self.keys.refresh().await;
                let aud = match service.backends.as_slice() {
                    [one] => json!(one),
                    many => json!(many),
                };
                let (token, expires_at) = self.sign(config, extra, aud, &sub, &scopes, now)?;
                let ttl = expires_at - now;
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let reuse_for = (ttl as f64 * config.reuse) as i64;
                if reuse_for > 0 {
                    let mut cache = self
                        .cache
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if cache.len() >= MAX_CACHED {
                        cache.clear();
                    }
                    cache.insert(
                        key,
                        Cached {
                            token: token.clone(),
                            expires_at,
                            reuse_until: now + reuse_for,
                            scopes: scopes.clone(),
                        },
                    );
                }
                (token, expires_at, scopes, false)
            }
        };
        let mut headers = headers;
        headers.insert("Authorization".into(), Secret::new(format!("Bearer {token}")));
        Ok(IssuedToken {
            token: Secret::new(token),
            expires_at,
            scopes,
            headers,
            reused,
        })
    }

    /// Signs `claims` with the issuer's reserved claims added (`iss`,
    /// `aud`, `sub`, `scopes`, the times, `jti`, realm, instance id).
    /// Returns the token and its `exp`.
    fn sign(
        &self,
        config: &IssuerConfig,
        mut claims: Map<String, Value>,
        aud: Value,
        sub: &str,
        scopes: &[String],
        now: i64,
    ) -> Result<(String, i64), IssueError> {
        let exp = now + i64::try_from(config.token_ttl.as_secs()).unwrap_or(3600);
        for (k, v) in [
            ("iss", json!(config.url)),
            ("aud", aud),
            ("sub", json!(sub)),
            ("scopes", json!(scopes)),
            ("iat", json!(now)),
            ("nbf", json!(now)),
            ("exp", json!(exp)),
            ("jti", json!(jti()?)),
            ("gitlab_realm", json!(config.mode.realm())),
            ("gitlab_instance_id", json!(config.instance_id)),
        ] {
            claims.insert(k.to_owned(), v);
        }
        Ok((self.keys.sign(&Value::Object(claims))?.token, exp))
    }

    /// The token a successful login returns: `sub` the username, `aud`
    /// the configured login audience, `scopes` every unit primitive the
    /// user may use in any service of the catalog (possibly none).
    pub async fn login_token(
        &self,
        config: &IssuerConfig,
        store: &dyn Store,
        user: &crate::store::UserRecord,
        authenticator: &str,
        now: i64,
    ) -> Result<String, IssueError> {
        let (subject, user_id) = match config.mode {
            Mode::GitlabCom => (Subject::User(user.username.clone()), Some(user.id)),
            Mode::SelfManaged => (Subject::Instance, None),
        };
        let facts = store.entitlement_facts(user_id, None).await?.unwrap_or_default();
        let cx = Context {
            mode: config.mode,
            version: config.version.as_ref(),
            license_type: config.license_type.as_deref(),
            now,
        };
        let scopes: std::collections::BTreeSet<String> = config
            .catalog
            .services()
            .filter_map(|s| entitlements::decide(s, &subject, &facts, cx).ok())
            .flatten()
            .collect();
        let scopes: Vec<String> = scopes.into_iter().collect();
        let mut claims = Map::new();
        claims.insert("gatehouse_authenticator".into(), json!(authenticator));
        let aud = json!(config.login_audience);
        self.keys.refresh().await;
        Ok(self.sign(config, claims, aud, &user.username, &scopes, now)?.0)
    }

    fn cached(&self, key: &str, now: i64) -> Option<Cached> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(key).filter(|c| now < c.reuse_until).cloned()
    }
}

/// A random token id (128 bits, base64url).
fn jti() -> Result<String, KeyError> {
    use base64::Engine as _;
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| KeyError::Crypto("no randomness"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

fn cache_key(
    sub: &str,
    service: &str,
    scopes: &[String],
    aud: &[String],
    extra: &Map<String, Value>,
) -> String {
    // JSON keeps the parts apart whatever characters they hold
    json!([sub, service, scopes, aud, extra]).to_string()
}

/// The headers a caller sends to the backend besides `Authorization`.
fn headers(
    config: &IssuerConfig,
    service: &catalog::Service,
    subject: &Subject,
    facts: &entitlements::Facts,
    user_id: Option<i64>,
    version: Option<&catalog::Version>,
) -> BTreeMap<String, Secret> {
    let mut h = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        h.insert(k.to_owned(), Secret::new(v));
    };
    put("X-Gitlab-Instance-Id", config.instance_id.clone());
    put("X-Gitlab-Realm", config.mode.realm().to_owned());
    if let (Subject::User(_), Some(id)) = (subject, user_id) {
        // anonymised: the same user gives the same id on this instance
        // only, and the id does not reveal the username
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{}:{id}", config.instance_id).as_bytes(),
        );
        put(
            "X-Gitlab-Global-User-Id",
            d.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect(),
        );
    }
    if let Some(v) = version {
        put("X-Gitlab-Version", v.to_string());
    }
    if let Some(host) = &config.host_name {
        put("X-Gitlab-Host-Name", host.clone());
    }
    put(
        "X-Gitlab-Duo-Seat-Count",
        entitlements::seat_count(service, facts).to_string(),
    );
    h
}
