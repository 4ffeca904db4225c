//! Settings: the names of CONFIG.md (snake_case of the platform's fields)
//! and the platform's own uppercase names (`OIDC_ENDPOINT`, `KEY`, …), so
//! an exported configuration pastes in. A preset type only changes the
//! defaults; every setting given explicitly wins. Everything is checked
//! when the instance is built; nothing is fetched then.

use std::collections::BTreeSet;
use std::time::Duration;

use gatehouse_sdk::jose::jws;
use gatehouse_sdk::{PluginError, Secret, parse_duration};
use serde::Deserialize;

/// The authenticator types of this plugin: the generic one and the presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `oidc`: any OpenID provider.
    Oidc,
    /// `keycloak`: a Keycloak realm, often with the realm's RS256 public key.
    Keycloak,
    /// `google_oauth2`: Google's endpoints, optional hosted-domain rule.
    Google,
    /// `azuread`: a Microsoft Entra ID (Azure AD) tenant.
    AzureAd,
}

impl Preset {
    /// The `type = "…"` name.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Keycloak => "keycloak",
            Self::Google => "google_oauth2",
            Self::AzureAd => "azuread",
        }
    }
}

/// One string, or a list of strings (`scope`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The settings as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    #[serde(default, alias = "OIDC_ENDPOINT")]
    oidc_endpoint: Option<String>,
    #[serde(default, alias = "KEY")]
    key: String,
    #[serde(default, alias = "SECRET")]
    secret: Secret,
    #[serde(default, alias = "ACCESS_TOKEN_METHOD")]
    access_token_method: Option<String>,
    #[serde(default, alias = "ACCESS_TOKEN_URL")]
    access_token_url: Option<String>,
    #[serde(default, alias = "AUTHORIZATION_URL")]
    authorization_url: Option<String>,
    #[serde(default, alias = "ID_KEY")]
    id_key: Option<String>,
    #[serde(default, alias = "ID_TOKEN_ISSUER")]
    id_token_issuer: Option<String>,
    #[serde(default, alias = "JWKS_URI")]
    jwks_uri: Option<String>,
    #[serde(default, alias = "PUBLIC_KEY")]
    public_key: Option<String>,
    #[serde(default, alias = "REVOKE_TOKEN_METHOD")]
    revoke_token_method: Option<String>,
    #[serde(default, alias = "REVOKE_TOKEN_URL")]
    revoke_token_url: Option<String>,
    #[serde(default, alias = "RESPONSE_TYPE")]
    response_type: Option<String>,
    #[serde(default, alias = "TOKEN_ENDPOINT_AUTH_METHOD")]
    token_endpoint_auth_method: Option<String>,
    #[serde(default, alias = "USERINFO_URL")]
    userinfo_url: Option<String>,
    #[serde(default, alias = "USERNAME_KEY")]
    username_key: Option<String>,
    #[serde(default, alias = "VERIFY_SSL")]
    verify_ssl: Option<bool>,
    #[serde(default, alias = "REDIRECT_STATE")]
    redirect_state: Option<bool>,
    #[serde(default, alias = "SCOPE")]
    scope: Option<OneOrMany>,
    #[serde(default, alias = "GROUPS_CLAIM")]
    groups_claim: Option<String>,
    /// Filled in by the daemon (the setting, or derived from `public_url`).
    #[serde(default, alias = "CALLBACK_URL")]
    callback_url: Option<String>,
    /// `azuread`: the tenant (a GUID or a verified domain).
    #[serde(default, alias = "TENANT_ID")]
    tenant_id: Option<String>,
    /// `google_oauth2`: only accounts of this Google Workspace domain (the
    /// ID token's `hd` claim).
    #[serde(default, alias = "hd", alias = "HOSTED_DOMAIN")]
    hosted_domain: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    #[serde(default)]
    leeway: Option<String>,
    /// How old (by `iat`) an ID token may be when it arrives.
    #[serde(default)]
    id_token_max_age: Option<String>,
    /// ID-token signature algorithms accepted (never `none` or HMAC).
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    /// A PEM bundle of extra CA roots for reaching the provider, trusted
    /// besides `[http]`'s and the system's.
    #[serde(default)]
    ca_file: Option<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
    /// A public client: `client_id` only (PKCE protects the code).
    None,
}

/// GET or POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HttpMethod {
    /// Parameters in the query string.
    Get,
    /// Parameters in a form body.
    Post,
}

/// Endpoints as configured or implied by the preset; the rest comes from
/// discovery.
#[derive(Clone, Debug, Default)]
pub(crate) struct Endpoints {
    /// The provider URL whose discovery document fills the gaps.
    pub(crate) discovery: Option<String>,
    pub(crate) authorization: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) userinfo: Option<String>,
    pub(crate) jwks: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) revoke: Option<String>,
}

/// Checked settings.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) preset: Preset,
    pub(crate) client_id: String,
    pub(crate) secret: Secret,
    pub(crate) auth_method: AuthMethod,
    pub(crate) token_method: HttpMethod,
    pub(crate) revoke_method: HttpMethod,
    pub(crate) endpoints: Endpoints,
    /// The configured RS256 public key (PEM or bare base64), if any.
    pub(crate) public_key: Option<String>,
    pub(crate) scope: String,
    pub(crate) id_key: String,
    /// `None`: the preset's rule (Google: the e-mail's local part), then
    /// `preferred_username`, `email`, the uid.
    pub(crate) username_key: Option<String>,
    pub(crate) groups_claim: String,
    pub(crate) redirect_state: bool,
    pub(crate) verify_ssl: bool,
    pub(crate) hosted_domain: Option<String>,
    pub(crate) leeway: i64,
    pub(crate) max_age: i64,
    pub(crate) algorithms: BTreeSet<String>,
    pub(crate) ca_file: Option<String>,
    pub(crate) callback_url: Option<String>,
}

fn bad(msg: impl Into<String>) -> PluginError {
    PluginError::Misconfigured(msg.into())
}

/// A URL setting: http(s), no fragment. (Plain http is checked by the HTTP
/// client when used: loopback only, unless `[http] danger_allow_http`.)
fn url_setting(key: &str, v: Option<String>) -> Result<Option<String>, PluginError> {
    let Some(v) = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let parsed = url::Url::parse(&v).map_err(|e| bad(format!("{key}: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(bad(format!("{key}: must be an https:// URL")));
    }
    if parsed.fragment().is_some() {
        return Err(bad(format!("{key}: must not have a #fragment")));
    }
    Ok(Some(v))
}

fn method(key: &str, v: Option<&str>, default: HttpMethod) -> Result<HttpMethod, PluginError> {
    match v.map(|s| s.trim().to_ascii_uppercase()) {
        None => Ok(default),
        Some(m) if m.is_empty() => Ok(default),
        Some(m) if m == "GET" => Ok(HttpMethod::Get),
        Some(m) if m == "POST" => Ok(HttpMethod::Post),
        Some(_) => Err(bad(format!("{key}: GET or POST"))),
    }
}

fn seconds(key: &str, v: Option<&str>, default: &str, max: Duration) -> Result<i64, PluginError> {
    let d = parse_duration(v.unwrap_or(default)).map_err(|e| bad(format!("{key}: {e}")))?;
    if d > max {
        return Err(bad(format!("{key}: at most {}s", max.as_secs())));
    }
    Ok(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Google's endpoints (its discovery document, fixed here so a login does
/// not depend on one more fetch).
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const GOOGLE_AUTHORIZATION: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_TOKEN: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_USERINFO: &str = "https://openidconnect.googleapis.com/v1/userinfo";
const GOOGLE_JWKS: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The Microsoft identity platform (v2.0 endpoints).
const MICROSOFT_LOGIN: &str = "https://login.microsoftonline.com";
/// Keycloak's authorization endpoint below a realm URL.
const KEYCLOAK_AUTH_SUFFIX: &str = "/protocol/openid-connect/auth";

impl RawSettings {
    /// Checks everything and fills in the preset's defaults.
    pub(crate) fn resolve(self, preset: Preset) -> Result<Settings, PluginError> {
        let client_id = self.key.trim().to_owned();
        if client_id.is_empty() {
            return Err(bad("key: the client id is required"));
        }
        let auth_method = match self
            .token_endpoint_auth_method
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None | Some("client_secret_basic") => AuthMethod::Basic,
            Some("client_secret_post") => AuthMethod::Post,
            Some("none") => AuthMethod::None,
            Some(_) => {
                return Err(bad(
                    "token_endpoint_auth_method: client_secret_basic, client_secret_post or none",
                ));
            }
        };
        if auth_method != AuthMethod::None && self.secret.is_empty() {
            return Err(bad(
                "secret: a confidential client needs its secret (or token_endpoint_auth_method = \"none\" \
                 for a public client)",
            ));
        }
        match self.response_type.as_deref().map(str::trim) {
            None | Some("" | "code") => {}
            Some(_) => {
                return Err(bad(
                    "response_type: only \"code\" (the authorization code flow with PKCE) is supported",
                ));
            }
        }
        let token_method = method(
            "access_token_method",
            self.access_token_method.as_deref(),
            HttpMethod::Post,
        )?;
        let revoke_method = method(
            "revoke_token_method",
            self.revoke_token_method.as_deref(),
            HttpMethod::Get,
        )?;

        let mut e = Endpoints {
            discovery: url_setting("oidc_endpoint", self.oidc_endpoint)?,
            authorization: url_setting("authorization_url", self.authorization_url)?,
            token: url_setting("access_token_url", self.access_token_url)?,
            userinfo: url_setting("userinfo_url", self.userinfo_url)?,
            jwks: url_setting("jwks_uri", self.jwks_uri)?,
            issuer: self
                .id_token_issuer
                .map(|s| s.trim().trim_end_matches('/').to_owned())
                .filter(|s| !s.is_empty()),
            revoke: url_setting("revoke_token_url", self.revoke_token_url)?,
        };
        let public_key = self.public_key.filter(|k| !k.trim().is_empty());
        let tenant = self
            .tenant_id
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        if tenant.is_some() && preset != Preset::AzureAd {
            return Err(bad("tenant_id: only for type azuread"));
        }
        let hosted_domain = self
            .hosted_domain
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        if hosted_domain.is_some() && preset != Preset::Google {
            return Err(bad("hosted_domain: only for type google_oauth2"));
        }
        let (default_scope, default_id_key, default_username_key) = match preset {
            Preset::Oidc => ("openid email profile", "sub", None),
            Preset::Keycloak => ("openid email profile", "sub", Some("preferred_username")),
            Preset::Google => ("openid email profile", "sub", None),
            Preset::AzureAd => ("openid profile email", "upn", Some("name")),
        };
        match preset {
            Preset::Oidc => {
                if e.discovery.is_none() && (e.authorization.is_none() || e.token.is_none()) {
                    return Err(bad(
                        "oidc_endpoint: the provider URL is required (or authorization_url, access_token_url, \
                         id_token_issuer and jwks_uri or public_key)",
                    ));
                }
            }
            Preset::Keycloak => {
                // The platform's Keycloak form: authorization and token URLs,
                // the realm's public key; the realm (the issuer) is the
                // authorization URL without its suffix.
                if e.issuer.is_none() && e.discovery.is_none() {
                    e.issuer = e
                        .authorization
                        .as_deref()
                        .and_then(|a| a.strip_suffix(KEYCLOAK_AUTH_SUFFIX))
                        .map(str::to_owned);
                }
                if e.discovery.is_none() && (e.authorization.is_none() || e.token.is_none()) {
                    return Err(bad(
                        "authorization_url, access_token_url: the realm's endpoints are required \
                         (or oidc_endpoint, the realm URL)",
                    ));
                }
            }
            Preset::Google => {
                e.authorization.get_or_insert_with(|| GOOGLE_AUTHORIZATION.into());
                e.token.get_or_insert_with(|| GOOGLE_TOKEN.into());
                e.userinfo.get_or_insert_with(|| GOOGLE_USERINFO.into());
                if e.discovery.is_none() {
                    e.jwks.get_or_insert_with(|| GOOGLE_JWKS.into());
                    e.issuer.get_or_insert_with(|| GOOGLE_ISSUER.into());
                }
            }
            Preset::AzureAd => {
                let explicit = e.authorization.is_some() && e.token.is_some() && e.issuer.is_some();
                match &tenant {
                    Some(t)
                        if matches!(t.as_str(), "common" | "organizations" | "consumers")
                            && e.issuer.is_none() =>
                    {
                        return Err(bad(format!(
                            "tenant_id: {t:?} names no single issuer, so ID tokens could not be tied to your \
                             tenant; use the tenant's id (a GUID) or set id_token_issuer"
                        )));
                    }
                    Some(t) => {
                        if !t
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
                        {
                            return Err(bad("tenant_id: a GUID or a domain name"));
                        }
                        let base = format!("{MICROSOFT_LOGIN}/{t}");
                        e.authorization
                            .get_or_insert_with(|| format!("{base}/oauth2/v2.0/authorize"));
                        e.token.get_or_insert_with(|| format!("{base}/oauth2/v2.0/token"));
                        if e.discovery.is_none() {
                            e.jwks
                                .get_or_insert_with(|| format!("{base}/discovery/v2.0/keys"));
                            e.issuer.get_or_insert_with(|| format!("{base}/v2.0"));
                        }
                    }
                    None if explicit || e.discovery.is_some() => {}
                    None => return Err(bad("tenant_id: the Azure AD tenant is required")),
                }
            }
        }
        if e.discovery.is_none() {
            if e.issuer.is_none() {
                return Err(bad(
                    "id_token_issuer: needed when the endpoints are given without oidc_endpoint \
                     (ID tokens are checked against it)",
                ));
            }
            if e.jwks.is_none() && public_key.is_none() {
                return Err(bad(
                    "jwks_uri: needed when the endpoints are given without oidc_endpoint (or public_key)",
                ));
            }
        }
        if let Some(k) = &public_key {
            gatehouse_sdk::jose::KeySet::from_rsa_public_key(k)
                .map_err(|e| bad(format!("public_key: {e}")))?;
        }
        let scope = match self.scope {
            None => default_scope.to_owned(),
            Some(OneOrMany::One(s)) => s
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            Some(OneOrMany::Many(v)) => v
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let scope = if scope.split(' ').any(|s| s == "openid") {
            scope
        } else {
            // Without `openid` no ID token comes back: the login could not be
            // verified. Adding it is what the platform's backends do too.
            format!("openid {scope}").trim().to_owned()
        };
        let nonempty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let algorithms = match self.algorithms {
            Some(a) => jws::allowed_algorithms(&a).map_err(|e| bad(format!("algorithms: {e}")))?,
            None if public_key.is_some() => jws::allowed_algorithms(&["RS256"]).map_err(bad)?,
            None => jws::allowed_algorithms(&["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"])
                .map_err(bad)?,
        };
        Ok(Settings {
            preset,
            client_id,
            secret: self.secret,
            auth_method,
            token_method,
            revoke_method,
            endpoints: e,
            public_key,
            scope,
            id_key: nonempty(self.id_key).unwrap_or_else(|| default_id_key.to_owned()),
            username_key: nonempty(self.username_key).or(default_username_key.map(str::to_owned)),
            groups_claim: nonempty(self.groups_claim).unwrap_or_else(|| "groups".to_owned()),
            redirect_state: self.redirect_state.unwrap_or(false),
            verify_ssl: self.verify_ssl.unwrap_or(true),
            hosted_domain,
            leeway: seconds("leeway", self.leeway.as_deref(), "30s", Duration::from_secs(600))?,
            max_age: seconds(
                "id_token_max_age",
                self.id_token_max_age.as_deref(),
                "10m",
                Duration::from_secs(24 * 3600),
            )?,
            algorithms,
            ca_file: nonempty(self.ca_file),
            callback_url: nonempty(self.callback_url),
        })
    }
}
