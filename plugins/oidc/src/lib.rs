//! The `oidc` authenticator and its presets `keycloak`, `google_oauth2`
//! and `azuread`: OpenID Connect logins with the authorization code flow.
//!
//! ```toml
//! [[authenticators]]
//! name = "Corporate SSO"
//! type = "oidc"
//! [authenticators.settings]
//! oidc_endpoint = "https://sso.example.com/realms/corp"   # discovery
//! key = "gatehouse"
//! secret_file = "/etc/gatehouse/oidc-secret"
//! groups_claim = "groups"
//! ```
//!
//! - `start` answers the authorization URL with `state` (the daemon's),
//!   `nonce` and a PKCE S256 challenge; the nonce, the verifier and the
//!   `redirect_uri` go into the flow state the daemon keeps in its pending
//!   logins (single use, expiring).
//! - `finish` refuses a provider error with its code, exchanges the code
//!   (with the verifier; client authentication `client_secret_basic`,
//!   `client_secret_post` or `none`), verifies the ID token with the SDK's
//!   shared JOSE (`gatehouse_sdk::jose`: the same JWKS handling as the `jwt`
//!   verifier; `none` and HMAC never accepted): signature, `iss`, `aud`,
//!   `azp`, `exp`, `iat` within the skew and max age, `nonce`, `at_hash`
//!   when present; fetches userinfo when there is an endpoint (its `sub`
//!   must equal the token's) and maps the claims into the `Identity`.
//! - Presets only change defaults and the claim mapping: `keycloak` (the
//!   realm from the authorization URL, the realm's RS256 `public_key`, an
//!   audience error that says how to fix it in Keycloak); `google_oauth2`
//!   (Google's endpoints; `hosted_domain` checked on the ID token's `hd`);
//!   `azuread` (a tenant's endpoints; uid ← `upn`, username ← `name`;
//!   group object ids from `groups_claim`, the groups overage refused with
//!   a clear message).
//!
//! Every request goes through the SDK's HTTP client (`[http]`: https
//! only, except loopback; `ca_file` added to the roots). `verify_ssl =
//! false` turns certificate checks off: a danger setting, warned at every
//! build.
//!
//! Not built on the `openidconnect` crate: even without default features
//! it brings its own JOSE and crypto stack (rsa 0.9 with the unfixed
//! RUSTSEC-2023-0071, p256, p384, ed25519-dalek, chrono, serde_with —
//! about 100 crates), verifies ID tokens with it rather than with the shared
//! JOSE code and the shared JWKS cache, and parses token responses into
//! typed JWTs before this plugin could apply its own strict parsing. The
//! protocol steps it would cover are the few in [`protocol`].

mod claims;
mod error;
pub mod protocol;
mod settings;

use std::sync::Arc;

use gatehouse_sdk::http::HttpClient;
use gatehouse_sdk::jose::{self, IdTokenCheck, Issuer, IssuerOptions, KeySet, SignatureError, jws};
use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Context, FinishRequest, Flow, LoginStep, Plugin, PluginConfig,
    PluginError, Redirect, Secret, StartRequest, TokenRejection, async_trait,
};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

pub use error::OidcError;
pub use settings::Preset;
use settings::{AuthMethod, HttpMethod, RawSettings, Settings};

/// The plugin: `oidc`, `keycloak`, `google_oauth2` and `azuread`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OidcPlugin;

impl Plugin for OidcPlugin {
    fn name(&self) -> &str {
        "oidc"
    }

    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        [Preset::Oidc, Preset::Keycloak, Preset::Google, Preset::AzureAd]
            .into_iter()
            .map(|p| Box::new(OidcFactory(p)) as Box<dyn AuthenticatorFactory>)
            .collect()
    }
}

/// Builds authenticators of one type (the generic one or a preset).
#[derive(Clone, Copy, Debug)]
pub struct OidcFactory(pub Preset);

const SETTINGS: &[&str] = &[
    "oidc_endpoint",
    "key",
    "secret",
    "access_token_method",
    "access_token_url",
    "authorization_url",
    "id_key",
    "id_token_issuer",
    "jwks_uri",
    "public_key",
    "revoke_token_method",
    "revoke_token_url",
    "response_type",
    "token_endpoint_auth_method",
    "userinfo_url",
    "username_key",
    "verify_ssl",
    "redirect_state",
    "groups_claim",
    "callback_url",
    "tenant_id",
    "hosted_domain",
    "leeway",
    "id_token_max_age",
    "ca_file",
];

/// The settings reference's text for a key of [`SETTINGS`].
fn describe(key: &str) -> &'static str {
    match key {
        "oidc_endpoint" => {
            "the provider URL whose discovery document (`/.well-known/openid-configuration`) fills in the endpoints not given; for keycloak the realm URL"
        }
        "key" => "the client id registered at the provider",
        "secret" => "the client secret (not needed with token_endpoint_auth_method = \"none\")",
        "access_token_method" => "HTTP method of the token request: POST (default) or GET",
        "access_token_url" => "the token endpoint (default: from discovery or the preset)",
        "authorization_url" => {
            "the authorization endpoint the browser is sent to (default: from discovery or the preset)"
        }
        "id_key" => {
            "the ID-token claim that identifies the user permanently; default `sub` (`upn` for azuread)"
        }
        "id_token_issuer" => {
            "the `iss` every ID token must carry (default: from discovery or the preset; required when the endpoints are given without oidc_endpoint)"
        }
        "jwks_uri" => "where the provider's signing keys are fetched (default: from discovery or the preset)",
        "public_key" => "a fixed RS256 public key (PEM or bare base64) instead of fetching jwks_uri",
        "revoke_token_method" => "HTTP method of the token revocation request: GET (default) or POST",
        "revoke_token_url" => "the token revocation endpoint, if any",
        "response_type" => "only \"code\" (the authorization code flow with PKCE, the default)",
        "token_endpoint_auth_method" => {
            "how the client authenticates at the token endpoint: client_secret_basic (default), client_secret_post, or none (a public client)"
        }
        "userinfo_url" => {
            "the userinfo endpoint, fetched after the ID token is checked (its `sub` must match); default: from discovery"
        }
        "username_key" => {
            "the claim the username is taken from; default: the preset's rule, then preferred_username, email, the id"
        }
        "verify_ssl" => {
            "check the provider's TLS certificate (default true; false is a danger setting for tests only)"
        }
        "redirect_state" => {
            "repeat the state in the callback URL as `redirect_state` (for providers that need it); default false"
        }
        "groups_claim" => "the claim that lists the user's groups (for maps); default `groups`",
        "callback_url" => {
            "the redirect URI registered at the provider (derived from [daemon] public_url when empty)"
        }
        "tenant_id" => {
            "azuread only: the tenant, a GUID or a verified domain (not common/organizations/consumers)"
        }
        "hosted_domain" => {
            "google_oauth2 only: accept only accounts of this Google Workspace domain (the ID token's `hd` claim)"
        }
        "leeway" => "clock skew allowed on exp, nbf and iat (a duration, at most 10m); default 30s",
        "id_token_max_age" => {
            "how old (by iat) an ID token may be when it arrives (a duration, at most 24h); default 10m"
        }
        "ca_file" => {
            "a PEM bundle of extra CA roots for reaching the provider, trusted besides [http]'s and the system's"
        }
        _ => "",
    }
}

impl AuthenticatorFactory for OidcFactory {
    fn type_name(&self) -> &str {
        self.0.type_name()
    }

    fn flow(&self) -> Flow {
        Flow::Redirect
    }

    fn config_schema(&self) -> Value {
        let mut props = Map::new();
        for k in SETTINGS {
            let t = match *k {
                "verify_ssl" | "redirect_state" => "boolean",
                _ => "string",
            };
            props.insert((*k).to_owned(), json!({"type": t, "description": describe(k)}));
        }
        props.insert(
            "scope".into(),
            json!({"type": ["string", "array"], "description": "scopes requested (a space-separated string or a list); `openid` is always added; default \"openid email profile\""}),
        );
        props.insert(
            "hd".into(),
            json!({"type": "string", "description": "alias of hosted_domain"}),
        );
        props.insert(
            "algorithms".into(),
            json!({"type": "array", "items": {"type": "string"}, "description": "ID-token signature algorithms accepted (never `none` or HMAC); default RS256 with `public_key`, else RS256, RS384, RS512, PS256, ES256, ES384, EdDSA"}),
        );
        json!({"type": "object", "required": ["key"], "properties": props})
    }

    fn secret_settings(&self) -> &[&str] {
        &["secret"]
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        let raw: RawSettings = config.parse()?;
        let settings = raw.resolve(self.0)?;
        let ctx = &config.context;
        if !settings.verify_ssl {
            ctx.warn(&format!(
                "{}: verify_ssl = false: the provider's TLS certificate is NOT checked; anyone on the path \
                 can read the client secret and forge logins (danger setting, for tests only)",
                ctx.instance()
            ));
        }
        let mut client = HttpClient::builder(ctx.http())
            .allow_loopback_http()
            .danger_accept_invalid_certs(!settings.verify_ssl);
        if let Some(file) = &settings.ca_file {
            client = client.add_ca_file(ctx.resolve_path(file));
        }
        let client = client.build()?;
        let fixed_keys = match &settings.public_key {
            Some(k) => Some(
                KeySet::from_rsa_public_key(k)
                    .map_err(|e| PluginError::Misconfigured(format!("public_key: {e}")))?,
            ),
            None => None,
        };
        let persist_dir = ctx.state_dir().map(std::path::Path::to_owned);
        Ok(Arc::new(OidcAuthenticator {
            settings,
            client,
            fixed_keys: std::sync::Mutex::new(fixed_keys),
            persist_dir,
            provider: OnceCell::new(),
        }))
    }
}

/// The provider's endpoints and keys, once known (configured, or after
/// discovery).
struct Provider {
    authorization: String,
    token: String,
    userinfo: Option<String>,
    revoke: Option<String>,
    issuer: Issuer,
}

struct OidcAuthenticator {
    settings: Settings,
    client: HttpClient,
    /// The configured public key, until the provider is set up.
    fixed_keys: std::sync::Mutex<Option<KeySet>>,
    persist_dir: Option<std::path::PathBuf>,
    provider: OnceCell<Provider>,
}

/// The SDK client fetches the JWKS.
struct Fetch(HttpClient);

#[async_trait]
impl jose::Fetcher for Fetch {
    async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String> {
        jose::Fetcher::get(&self.0, url, limit).await
    }
}

fn discovery_url(endpoint: &str) -> String {
    const WELL_KNOWN: &str = "/.well-known/openid-configuration";
    if endpoint.ends_with(WELL_KNOWN) {
        endpoint.to_owned()
    } else {
        format!("{}{WELL_KNOWN}", endpoint.trim_end_matches('/'))
    }
}

impl OidcAuthenticator {
    /// The endpoints and keys: the configured ones, the rest from discovery
    /// (read once, on first use; a failure is retried on the next login).
    async fn provider(&self) -> Result<&Provider, OidcError> {
        self.provider.get_or_try_init(|| self.setup()).await
    }

    async fn setup(&self) -> Result<Provider, OidcError> {
        let e = &self.settings.endpoints;
        let mut doc = Map::new();
        if let Some(endpoint) = &e.discovery {
            let url = discovery_url(endpoint);
            let body = self
                .client
                .get_bytes(&url, jose::MAX_DOCUMENT)
                .await
                .map_err(|err| OidcError::Unavailable(format!("discovery: {err}")))?;
            doc = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .ok_or_else(|| OidcError::Unavailable(format!("discovery: {url} is not a JSON object")))?;
            // The document must be the provider's own (OIDC Discovery §4.3):
            // its issuer is the configured one, or the endpoint itself.
            let want = e.issuer.clone().unwrap_or_else(|| {
                endpoint
                    .trim_end_matches("/.well-known/openid-configuration")
                    .trim_end_matches('/')
                    .to_owned()
            });
            let seen = doc
                .get("issuer")
                .and_then(Value::as_str)
                .map(|i| i.trim_end_matches('/'));
            if seen != Some(want.as_str()) {
                return Err(OidcError::Unavailable(format!(
                    "discovery: {url} names issuer {:?}, expected {want:?}",
                    seen.map(|s| error::clean(s, 200)).unwrap_or_default()
                )));
            }
        }
        let from_doc = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        let missing = |what: &str| OidcError::Unavailable(format!("no {what}: set it or use oidc_endpoint"));
        let authorization = e
            .authorization
            .clone()
            .or_else(|| from_doc("authorization_endpoint"))
            .ok_or_else(|| missing("authorization endpoint"))?;
        let token = e
            .token
            .clone()
            .or_else(|| from_doc("token_endpoint"))
            .ok_or_else(|| missing("token endpoint"))?;
        let issuer_url = e
            .issuer
            .clone()
            .or_else(|| from_doc("issuer"))
            .ok_or_else(|| missing("issuer"))?;
        let fixed = self
            .fixed_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let issuer = match fixed {
            Some(keys) => Issuer::with_keys(&issuer_url, keys),
            None => {
                let jwks = e
                    .jwks
                    .clone()
                    .or_else(|| from_doc("jwks_uri"))
                    .ok_or_else(|| missing("jwks_uri"))?;
                let persist = self
                    .persist_dir
                    .as_ref()
                    .filter(|d| std::fs::create_dir_all(d).is_ok())
                    .map(|d| d.join(jose::persisted_file_name(&issuer_url)));
                Issuer::with_jwks_uri(
                    &issuer_url,
                    jwks,
                    Arc::new(Fetch(self.client.clone())),
                    IssuerOptions::default().persist(persist),
                )
            }
        };
        Ok(Provider {
            authorization,
            token,
            userinfo: e.userinfo.clone().or_else(|| from_doc("userinfo_endpoint")),
            // only when configured: the platform's default method (GET) is
            // not what a discovered RFC 7009 endpoint takes
            revoke: e.revoke.clone(),
            issuer,
        })
    }

    /// The `redirect_uri` of a login: the callback URL, with the state
    /// repeated in it when `redirect_state` is on (the platform's legacy
    /// form).
    fn redirect_uri(&self, callback: &str, state: &str) -> Result<String, OidcError> {
        if self.settings.redirect_state {
            protocol::with_query(callback, &[("redirect_state", state)])
        } else {
            Ok(callback.to_owned())
        }
    }

    /// Exchanges the code at the token endpoint.
    async fn exchange(
        &self,
        p: &Provider,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<protocol::TokenResponse, OidcError> {
        let s = &self.settings;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        match s.auth_method {
            AuthMethod::Basic => {}
            AuthMethod::Post => {
                pairs.push(("client_id", &s.client_id));
                pairs.push(("client_secret", s.secret.expose()));
            }
            AuthMethod::None => pairs.push(("client_id", &s.client_id)),
        }
        let unavailable =
            |e: gatehouse_sdk::http::HttpError| OidcError::Unavailable(format!("token endpoint: {e}"));
        let request = match s.token_method {
            HttpMethod::Post => self
                .client
                .post(&p.token)
                .map_err(unavailable)?
                .header("content-type", "application/x-www-form-urlencoded")
                .body(protocol::form(&pairs)),
            HttpMethod::Get => self
                .client
                .get(&protocol::with_query(&p.token, &pairs)?)
                .map_err(unavailable)?,
        };
        let request = request.header("accept", "application/json");
        let request = match s.auth_method {
            AuthMethod::Basic => request.basic_auth(
                protocol::form_value(&s.client_id),
                Some(protocol::form_value(s.secret.expose())),
            ),
            _ => request,
        };
        let (status, body) = self
            .client
            .send_any_status(request, protocol::MAX_RESPONSE)
            .await
            .map_err(unavailable)?;
        protocol::token_response(status, &body)
    }

    /// Verifies the ID token: JOSE checks (shared code), then `iat`,
    /// `nonce`, `at_hash`.
    async fn verify(
        &self,
        ctx: &Context,
        p: &Provider,
        tokens: &protocol::TokenResponse,
        nonce: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let s = &self.settings;
        if p.issuer.due(std::time::Instant::now()) {
            // keys refreshed before they age out; a failure keeps the old ones
            if let Err(e) = p.issuer.refresh().await {
                ctx.warn(&format!("keeping the last keys of {}: {e}", p.issuer.url()));
            }
        }
        let now = jose::unix(ctx.now());
        let check = IdTokenCheck::new(&s.client_id, &s.algorithms, now).leeway(s.leeway);
        let claims = match jose::verify_id_token(&p.issuer, &tokens.id_token, &check).await {
            Ok(c) => c,
            Err(SignatureError::Unavailable(m)) => return Err(OidcError::Unavailable(m)),
            Err(SignatureError::Rejected(TokenRejection::WrongAudience, detail)) => {
                return Err(self.audience_error(&tokens.id_token, detail));
            }
            Err(SignatureError::Rejected(reason, detail)) => {
                return Err(OidcError::IdToken { reason, detail });
            }
        };
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| OidcError::IdToken {
                reason: TokenRejection::Malformed,
                detail: "the ID token has no numeric iat".into(),
            })?;
        if iat > now.saturating_add(s.leeway) {
            return Err(OidcError::IdToken {
                reason: TokenRejection::NotYetValid,
                detail: "the ID token was issued in the future (iat)".into(),
            });
        }
        if iat < now.saturating_sub(s.max_age).saturating_sub(s.leeway) {
            return Err(OidcError::IdToken {
                reason: TokenRejection::Expired,
                detail: "the ID token was issued too long ago (iat)".into(),
            });
        }
        let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if nonce.is_empty() || !Secret::new(nonce).constant_time_eq(got.as_bytes()) {
            return Err(OidcError::NonceMismatch);
        }
        if let Some(want) = claims.get("at_hash") {
            // the header parsed again for its alg (verified above)
            let alg = jws::parse(&tokens.id_token, &s.algorithms)
                .map(|p| p.alg)
                .map_err(|(reason, detail)| OidcError::IdToken { reason, detail })?;
            let ok = match (want.as_str(), protocol::at_hash(alg, &tokens.access_token)) {
                (Some(w), Some(h)) => gatehouse_sdk::constant_time_eq(w.as_bytes(), h.as_bytes()),
                _ => false,
            };
            if !ok {
                return Err(OidcError::AtHashMismatch);
            }
        }
        Ok(claims)
    }

    /// A wrong audience, with the audience seen (the signature verified
    /// before `aud` was checked) and, for Keycloak, how to fix it.
    fn audience_error(&self, id_token: &str, detail: String) -> OidcError {
        let seen = jws::parse(id_token, &self.settings.algorithms)
            .ok()
            .and_then(|p| jws::strings(p.claims.get("aud")))
            .map(|a| a.iter().map(|x| error::clean(x, 100)).collect::<Vec<_>>());
        let mut detail = match seen {
            Some(aud) => format!(
                "the ID token's audience is {aud:?}, not the client {:?} ({detail})",
                self.settings.client_id
            ),
            None => detail,
        };
        if self.settings.preset == Preset::Keycloak {
            detail.push_str(&format!(
                "; in Keycloak, add {:?} as an audience of the token: Client scopes → the client's \
                 dedicated scope → Add mapper \"Audience\" → Included Client Audience = {:?}",
                self.settings.client_id, self.settings.client_id
            ));
        }
        OidcError::IdToken {
            reason: TokenRejection::WrongAudience,
            detail,
        }
    }

    /// The userinfo claims; their `sub` must be the ID token's.
    async fn userinfo(
        &self,
        url: &str,
        access_token: &str,
        sub: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let unavailable =
            |e: gatehouse_sdk::http::HttpError| OidcError::Unavailable(format!("userinfo: {e}"));
        let request = self
            .client
            .get(url)
            .map_err(unavailable)?
            .bearer_auth(access_token)
            .header("accept", "application/json");
        let body = self
            .client
            .send(request, protocol::MAX_RESPONSE)
            .await
            .map_err(unavailable)?;
        let claims = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .ok_or_else(|| {
                OidcError::Unavailable(
                    "userinfo: not a JSON object (signed userinfo is not supported)".into(),
                )
            })?;
        let same = claims
            .get("sub")
            .and_then(Value::as_str)
            .is_some_and(|s| gatehouse_sdk::constant_time_eq(s.as_bytes(), sub.as_bytes()));
        if !same {
            return Err(OidcError::UserinfoSubject);
        }
        Ok(claims)
    }

    /// Revokes the access token: gatehouse keeps no provider token after a
    /// login (best effort; a failure is logged).
    async fn revoke(&self, ctx: &Context, url: &str, access_token: &str) {
        let s = &self.settings;
        let mut pairs = vec![("token", access_token), ("token_type_hint", "access_token")];
        if s.auth_method != AuthMethod::Basic {
            pairs.push(("client_id", &s.client_id));
        }
        if s.auth_method == AuthMethod::Post {
            pairs.push(("client_secret", s.secret.expose()));
        }
        let request = match s.revoke_method {
            HttpMethod::Get => protocol::with_query(url, &pairs)
                .ok()
                .and_then(|u| self.client.get(&u).ok()),
            HttpMethod::Post => self.client.post(url).ok().map(|r| {
                r.header("content-type", "application/x-www-form-urlencoded")
                    .body(protocol::form(&pairs))
            }),
        };
        let Some(request) = request else {
            ctx.warn("revoke_token_url cannot be used");
            return;
        };
        let request = match s.auth_method {
            AuthMethod::Basic => request.basic_auth(
                protocol::form_value(&s.client_id),
                Some(protocol::form_value(s.secret.expose())),
            ),
            _ => request,
        };
        if let Err(e) = self.client.send(request, protocol::MAX_RESPONSE).await {
            ctx.warn(&format!("revoking the access token failed: {e}"));
        }
    }

    async fn finish_inner(&self, ctx: &Context, req: FinishRequest) -> Result<LoginStep, OidcError> {
        let code = match protocol::callback(&req.params)? {
            protocol::Callback::Error(e) => return Err(e),
            protocol::Callback::Code { code, iss } => {
                let Some(flow) = &req.flow_state else {
                    return Err(OidcError::BadCallback(
                        "no login was started for this callback (an OIDC login begins with start)".into(),
                    ));
                };
                let p = self.provider().await?;
                if let Some(iss) = iss
                    && !p.issuer.is(iss)
                {
                    return Err(OidcError::CallbackIssuer {
                        seen: error::clean(iss, 200),
                    });
                }
                (code.to_owned(), flow.clone())
            }
        };
        let (code, flow) = code;
        let field = |k: &str| flow.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let (nonce, verifier, redirect_uri) = (field("nonce"), field("verifier"), field("redirect_uri"));
        if nonce.is_empty() || verifier.is_empty() || redirect_uri.is_empty() {
            return Err(OidcError::BadCallback(
                "the login's flow state is incomplete".into(),
            ));
        }
        let p = self.provider().await?;
        let tokens = self.exchange(p, &code, &redirect_uri, &verifier).await?;
        let mut claims = self.verify(ctx, p, &tokens, &nonce).await?;
        if let Some(url) = &p.userinfo {
            let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("").to_owned();
            if sub.is_empty() {
                return Err(OidcError::MissingClaim("sub".into()));
            }
            let info = self.userinfo(url, &tokens.access_token, &sub).await?;
            claims = claims::merge(claims, info);
        }
        let identity = claims::identity(&self.settings, &claims)?;
        if let Some(url) = &p.revoke {
            self.revoke(ctx, url, &tokens.access_token).await;
        }
        Ok(LoginStep::Authenticated(identity))
    }
}

#[async_trait]
impl Authenticator for OidcAuthenticator {
    async fn start(&self, _ctx: &Context, req: StartRequest) -> Result<Redirect, PluginError> {
        if req.state.is_empty() {
            return Err(PluginError::BadRequest("a start needs the daemon's state".into()));
        }
        let s = &self.settings;
        let callback = req
            .callback_url
            .as_deref()
            .or(s.callback_url.as_deref())
            .ok_or_else(|| {
                PluginError::Misconfigured(
                    "callback_url: set it, or [daemon] public_url so that it can be derived".into(),
                )
            })?;
        let p = self.provider().await?;
        let nonce = protocol::random_token(24)?;
        let verifier = protocol::random_token(48)?;
        let challenge = protocol::pkce_challenge(&verifier);
        let redirect_uri = self.redirect_uri(callback, &req.state)?;
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", s.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", s.scope.as_str()),
            ("state", req.state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(hd) = &s.hosted_domain {
            pairs.push(("hd", hd));
        }
        let url = protocol::with_query(&p.authorization, &pairs)?;
        Ok(Redirect::new(
            url,
            json!({"nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri}),
        ))
    }

    async fn finish(&self, ctx: &Context, req: FinishRequest) -> Result<LoginStep, PluginError> {
        self.finish_inner(ctx, req).await.map_err(|e| {
            ctx.info(&format!("{}: login refused: {e}", ctx.instance()));
            e.into()
        })
    }
}

#[cfg(test)]
mod tests;
