//! Wire types of the socket API v1 (`API.md`): serde only, no I/O.
//!
//! The daemon, the `gatehouse` CLI, the tests and third-party clients share
//! these types. Fields may be added in later 1.x versions; none is renamed
//! or removed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// Every error code a client can see, with its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed JSON, a missing or wrongly typed field.
    BadRequest,
    /// Wrong username or password, rejected assertion or code.
    InvalidCredentials,
    /// A token check failed.
    InvalidToken,
    /// The peer may not use this endpoint.
    Forbidden,
    /// Credentials fine, but a rule denies the login.
    LoginDenied,
    /// Token issuance: the subject has no access to the service.
    NoAccess,
    /// No authenticator with that name (or it is disabled).
    UnknownAuthenticator,
    /// No verifier with that name.
    UnknownVerifier,
    /// No such route or object.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request does not fit the authenticator's flow.
    FlowMismatch,
    /// The object exists already.
    Conflict,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// A reload was refused.
    InvalidConfig,
    /// The request is well-formed but its values are not acceptable.
    Unprocessable,
    /// Lockout or rate limit.
    TooManyAttempts,
    /// Every server of the backend is unreachable.
    BackendUnavailable,
    /// A bug in the daemon or a plugin.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order (for exhaustive tests and docs).
    pub const ALL: [ErrorCode; 19] = [
        Self::BadRequest,
        Self::InvalidCredentials,
        Self::InvalidToken,
        Self::Forbidden,
        Self::LoginDenied,
        Self::NoAccess,
        Self::UnknownAuthenticator,
        Self::UnknownVerifier,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::FlowMismatch,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::InvalidConfig,
        Self::Unprocessable,
        Self::TooManyAttempts,
        Self::BackendUnavailable,
        Self::Internal,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::Forbidden => "forbidden",
            Self::LoginDenied => "login_denied",
            Self::NoAccess => "no_access",
            Self::UnknownAuthenticator => "unknown_authenticator",
            Self::UnknownVerifier => "unknown_verifier",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::FlowMismatch => "flow_mismatch",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidConfig => "invalid_config",
            Self::Unprocessable => "unprocessable",
            Self::TooManyAttempts => "too_many_attempts",
            Self::BackendUnavailable => "backend_unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::InvalidCredentials | Self::InvalidToken => 401,
            Self::Forbidden | Self::LoginDenied | Self::NoAccess => 403,
            Self::UnknownAuthenticator | Self::UnknownVerifier | Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::FlowMismatch | Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::InvalidConfig | Self::Unprocessable => 422,
            Self::TooManyAttempts => 429,
            Self::Internal => 500,
            Self::BackendUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` object.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ErrorDetail {
    /// Stable snake_case code (see [`ErrorCode`]). Kept as a string so a
    /// client understands codes added after it was built.
    pub code: String,
    /// Human-readable text.
    pub message: String,
    /// Structured extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// One configuration error, as listed in `details.errors` of
/// `invalid_config` and printed by `--check-config`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ConfigErrorEntry {
    /// The file the error is in.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// Dotted key path (`authenticators[1].settings.server_uri`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigErrorEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Formats a time as RFC 3339 in UTC, to the second
/// (`2026-12-03T14:47:01Z`), as every time in the socket API is written.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // days since 1970-01-01 to a civil date (proleptic Gregorian)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// `GET /v1/status` (admin): health plus each instance's backend state.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Status {
    /// What `GET /v1/health` answers.
    #[serde(flatten)]
    pub health: Health,
    /// When the last reload succeeded (RFC 3339); the start counts.
    pub last_reload_ok_at: String,
    /// Every authenticator, then every verifier.
    pub backends: Vec<BackendStatus>,
}

/// One instance's backend, as the daemon saw it on its last calls.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct BackendStatus {
    /// `authenticator` or `verifier`.
    pub family: String,
    /// The instance name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `online` (its last call reached the backend), `offline` (its last
    /// call found the backend unavailable) or `unknown` (not called since
    /// it was built).
    pub state: String,
    /// Since when it is offline (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<String>,
    /// When a call last reached the backend (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok_at: Option<String>,
    /// The last backend error, with its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last backend error happened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    /// A verifier's key sources (JWKS per issuer), when it has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<IssuerKeys>,
}

/// The keys of one issuer a verifier trusts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct IssuerKeys {
    /// The issuer (`iss`).
    pub issuer: String,
    /// When its keys were last fetched ([`rfc3339`]); `None`: never (or
    /// configured, not fetched).
    #[serde(default)]
    pub keys_fetched_at: Option<String>,
    /// How many keys are held.
    pub keys: usize,
    /// Why the last fetch failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `GET /v1/lockout` (admin): the live failure counters.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct LockoutList {
    /// Users first, then addresses, then peers.
    pub counters: Vec<LockoutCounter>,
}

/// One failure counter of the lockout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct LockoutCounter {
    /// `user`, `address` or `peer`.
    pub kind: String,
    /// The username or address as given (cut), or the peer uid.
    pub name: String,
    /// The peer uid (`address` and `peer` counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_uid: Option<u32>,
    /// Failures within `[lockout] window`.
    pub failures: usize,
    /// Whether logins are refused (users, addresses) or delayed (peers) now.
    pub locked: bool,
    /// Seconds until the oldest failure leaves the window.
    pub retry_after: u64,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Health {
    /// Always `"ok"` while the daemon serves.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// The configuration generation being served (1 after start).
    pub generation: u64,
    /// When the serving generation was loaded (RFC 3339).
    pub reloaded_at: String,
    /// Why the last reload was refused, if it was.
    pub last_reload_error: Option<String>,
    /// Number of configured authenticators.
    pub authenticators: usize,
    /// Number of configured verifiers.
    pub verifiers: usize,
}

/// One entry of `GET /v1/authenticators`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct AuthenticatorInfo {
    /// Unique name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it takes logins.
    pub enabled: bool,
    /// Position in the login order.
    pub order: i64,
    /// `password` or `redirect`.
    pub flow: String,
}

/// `GET /v1/authenticators`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct AuthenticatorList {
    /// In login order.
    pub authenticators: Vec<AuthenticatorInfo>,
}

/// `POST /v1/login`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LoginRequest {
    /// The username as typed.
    pub username: String,
    /// The password.
    pub password: Secret,
    /// Only this authenticator; otherwise every enabled password
    /// authenticator in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<String>,
    /// The end user's address, passed to backends that want it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// Admin peers only: add an explanation of the decision.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

/// `POST /v1/login/continue`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ContinueRequest {
    /// From the challenge answer.
    pub login_id: String,
    /// The user's answer.
    pub response: Secret,
}

/// `POST /v1/login/start`: begin a redirect login.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StartLoginRequest {
    /// The redirect authenticator.
    pub authenticator: String,
    /// Where the application wants the browser to end up afterwards;
    /// handed back in the [`LoginResult`] of the finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
}

/// The answer to [`StartLoginRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct StartLoginResponse {
    /// Send the browser here (the identity provider's URL with every
    /// parameter: `state`/`RelayState`, nonce, PKCE challenge, …).
    pub redirect_url: String,
    /// The random value that ties the callback to this start: single use,
    /// expiring.
    pub state: String,
}

/// `POST /v1/login/finish`: complete a redirect login from the callback.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FinishLoginRequest {
    /// The redirect authenticator.
    pub authenticator: String,
    /// The callback's query or form parameters, as received.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The start's `state`, when the application kept it itself; else it
    /// is read from `params` (`state`, or SAML's `RelayState`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Admin peers only: add an explanation of the decision.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

/// The user part of a [`LoginResult`] and of `GET /v1/users`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct User {
    /// Store id.
    pub id: String,
    /// Normalised username.
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Superuser status.
    pub is_superuser: bool,
}

/// An organization membership.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct OrganizationMembership {
    /// Organization name.
    pub name: String,
    /// Whether the user administers it.
    pub admin: bool,
}

/// A team membership.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct TeamMembership {
    /// Team name.
    pub name: String,
    /// Organization the team belongs to.
    pub organization: String,
    /// Whether the user administers it.
    pub admin: bool,
}

/// A successful login.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct LoginResult {
    /// The user.
    pub user: User,
    /// The authenticator that accepted.
    pub authenticator: String,
    /// The user's uid at that authenticator.
    pub authenticator_uid: String,
    /// Groups reported by the authenticator.
    pub groups: Vec<String>,
    /// Organizations after the maps ran.
    pub organizations: Vec<OrganizationMembership>,
    /// Teams after the maps ran.
    pub teams: Vec<TeamMembership>,
    /// Attributes reported by the authenticator.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// A service access token, when the daemon's issuer is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A redirect login's `return_to`, as given to its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
    /// True when every backend was unreachable and the password was
    /// checked against what an earlier online login left (offline login):
    /// the groups and attributes are then not fresh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Admin `explain` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<serde_json::Value>,
}

/// A challenge: answer it with `POST /v1/login/continue`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChallengeAnswer {
    /// Pass back with the response.
    pub login_id: String,
    /// Text to show.
    pub prompt: String,
    /// Whether the answer may be echoed.
    pub echo: bool,
}

/// The `200` answer of `/v1/login` and `/v1/login/continue`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginResponse {
    /// Logged in.
    Ok(Box<LoginResult>),
    /// One more step.
    Challenge(ChallengeAnswer),
}

/// `POST /v1/reload` success.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ReloadAnswer {
    /// The generation now serving.
    pub generation: u64,
}

/// `POST /v1/users`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CreateUser {
    /// Username (stored lowercased).
    pub username: String,
    /// Initial password.
    pub password: Secret,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Superuser status.
    #[serde(default)]
    pub is_superuser: bool,
}

/// `PUT /v1/users/{username}/password`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SetPassword {
    /// The new password.
    pub password: Secret,
}

/// `GET /v1/users`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserList {
    /// Every user, by username.
    pub users: Vec<User>,
}

/// `POST /v1/tokens/issue`: a service access token for a user, a
/// namespace, or (in `self_managed` mode) the instance.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssueTokenRequest {
    /// The service, as the issuer's catalog names it.
    pub service: String,
    /// The user (a username in the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Claims added to the token; reserved claims cannot be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// The caller's version, for the catalog's minimum versions (else
    /// the issuer's configured `version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The `200` answer of `POST /v1/tokens/issue`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: Secret,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
    /// Its `scopes` claim: the unit primitives granted.
    pub scopes: Vec<String>,
    /// Headers the caller sends to the backend along with the token
    /// (`Authorization`, `X-Gitlab-Instance-Id`, `X-Gitlab-Realm`, …).
    pub headers: BTreeMap<String, Secret>,
    /// True when an earlier token was handed out again.
    pub reused: bool,
}

/// `POST /v1/tokens/verify`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct VerifyTokenRequest {
    /// The token.
    pub token: Secret,
    /// Only this verifier; otherwise each in order until one accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
    /// Required audience (overrides the verifier's configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// A unit primitive that must be in the token's `scopes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_primitive: Option<String>,
}

/// The `200` answer of `POST /v1/tokens/verify`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct TokenVerified {
    /// Always true.
    pub valid: bool,
    /// The verifier that accepted.
    pub verifier: String,
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`.
    pub audience: Vec<String>,
    /// `scopes`.
    pub scopes: Vec<String>,
    /// `exp`.
    pub expires_at: Option<u64>,
    /// Every claim.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// The `401` answer of `POST /v1/tokens/verify`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct TokenRejected {
    /// Always false.
    pub valid: bool,
    /// `invalid_token` with `details.reason`.
    pub error: ErrorDetail,
}

/// `GET /v1/plugins` (admin): every type the daemon can build, the plugin
/// libraries it loaded, and the files of `plugin_dirs` it skipped.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct PluginList {
    /// Every authenticator and verifier type, built-in ones first.
    pub types: Vec<PluginType>,
    /// The plugin libraries: those of `plugin_dirs` and those named by
    /// `library = "…"` in the serving configuration.
    pub libraries: Vec<PluginLibrary>,
    /// Files of `plugin_dirs` that are not gatehouse plugins.
    pub skipped: Vec<SkippedFile>,
}

/// One type of [`PluginList`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct PluginType {
    /// `authenticator` or `verifier`.
    pub family: String,
    /// `type = "…"`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// `built-in`, `linked` (a first-party crate compiled in), or the path
    /// of the library that provides it.
    pub origin: String,
}

/// One library of [`PluginList`], as its manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct PluginLibrary {
    /// The file it was loaded from.
    pub path: String,
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The SDK version it was built with.
    pub sdk_version: String,
    /// The authenticator types it provides.
    pub authenticators: Vec<String>,
    /// The verifier types it provides.
    pub verifiers: Vec<String>,
    /// What it needs from its environment (`network`, `files`, …).
    pub capabilities: Vec<String>,
}

/// A file of `plugin_dirs` that was not loaded.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct SkippedFile {
    /// The file.
    pub path: String,
    /// A stable code: `no_manifest`, `not_elf`, `unsupported_elf` or
    /// `malformed_elf`.
    pub code: String,
    /// Human text.
    pub reason: String,
}

/// A passwd entry of the host's name service (`GET /v1/nss/passwd` on
/// `[host] nss_socket`). It holds no secret: the password field is always
/// `x`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct NssPasswd {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id (the user's private group: the uid).
    pub gid: u32,
    /// Full name.
    pub gecos: String,
    /// Home directory.
    pub dir: String,
    /// Login shell.
    pub shell: String,
}

/// A group entry of the host's name service (`GET /v1/nss/group`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct NssGroup {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Member login names.
    pub members: Vec<String>,
}

/// Every passwd entry (`GET /v1/nss/passwd` without a query).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct NssPasswdList {
    /// The entries, by uid.
    pub entries: Vec<NssPasswd>,
}

/// Every group entry (`GET /v1/nss/group` without a query).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct NssGroupList {
    /// The entries, by gid.
    pub entries: Vec<NssGroup>,
}

/// The groups a user is a member of (`GET /v1/nss/initgroups?name=…`),
/// private group included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct NssGroupIds {
    /// Group ids.
    pub gids: Vec<u32>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_utc_seconds() {
        let at = |secs: u64| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_309_221), "2026-12-03T14:47:01Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    use super::*;

    #[test]
    fn login_response_is_tagged_by_status() {
        let c = LoginResponse::Challenge(ChallengeAnswer {
            login_id: "x".into(),
            prompt: "Code".into(),
            echo: false,
        });
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["status"], "challenge");
        assert_eq!(v["login_id"], "x");
    }

    /// The position of a code in [`ErrorCode::ALL`]. The `match` has no
    /// wildcard: a new variant does not compile until it is listed here,
    /// and the test below then fails until it is in `ALL` too.
    fn position(code: ErrorCode) -> usize {
        match code {
            ErrorCode::BadRequest => 0,
            ErrorCode::InvalidCredentials => 1,
            ErrorCode::InvalidToken => 2,
            ErrorCode::Forbidden => 3,
            ErrorCode::LoginDenied => 4,
            ErrorCode::NoAccess => 5,
            ErrorCode::UnknownAuthenticator => 6,
            ErrorCode::UnknownVerifier => 7,
            ErrorCode::NotFound => 8,
            ErrorCode::MethodNotAllowed => 9,
            ErrorCode::FlowMismatch => 10,
            ErrorCode::Conflict => 11,
            ErrorCode::PayloadTooLarge => 12,
            ErrorCode::UnsupportedMediaType => 13,
            ErrorCode::InvalidConfig => 14,
            ErrorCode::Unprocessable => 15,
            ErrorCode::TooManyAttempts => 16,
            ErrorCode::BackendUnavailable => 17,
            ErrorCode::Internal => 18,
        }
    }

    #[test]
    fn all_lists_every_code_once() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), i, "{code} is out of place in ErrorCode::ALL");
        }
        let names: std::collections::BTreeSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "two codes share a name");
    }

    #[test]
    fn every_code_has_a_client_or_server_error_status() {
        for code in ErrorCode::ALL {
            let s = code.http_status();
            assert!((400..600).contains(&s), "{code}");
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            let back: ErrorCode = serde_json::from_value(code.as_str().into()).unwrap();
            assert_eq!(back, code);
        }
    }
}
