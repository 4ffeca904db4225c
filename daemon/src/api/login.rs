//! Logins: `POST /v1/login` and `/v1/login/continue` (passwords and
//! challenges), `POST /v1/login/start` and `/v1/login/finish` (redirect
//! logins), `GET /v1/authenticators/{name}/metadata`. Lockout,
//! authenticators in order, maps, the user, the audit trail. Challenges
//! and redirect flow states are pending logins in the store: random,
//! single use, expiring.

use std::time::Duration;

use gatehouse_sdk::proto::{
    ContinueRequest, ErrorCode, FinishLoginRequest, LoginRequest, LoginResponse, LoginResult,
    StartLoginRequest, StartLoginResponse,
};
use gatehouse_sdk::{FinishRequest, Flow, Identity, LoginStep, PasswordLogin, PluginError, StartRequest};
use http::{Response, StatusCode};
use serde_json::json;

use super::{ApiError, Body, Call, JsonBody};
use crate::audit::Event;
use crate::identity;
use crate::lockout::Attempt;
use crate::maps;
use crate::runtime::AuthenticatorEntry;
use crate::store::{PendingKind, PendingLogin, Taken};

/// The longest a backend may take for one login step.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

fn audit(
    call: &Call,
    authenticator: Option<&str>,
    username: &str,
    outcome: &'static str,
    reason: Option<String>,
    maps: Vec<String>,
) {
    call.daemon.audit.record(&Event {
        authenticator,
        reason,
        maps,
        ..Event::new("login", &call.peer, username, outcome)
    });
}

pub(super) async fn login(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: LoginRequest = body.parse()?;
    if req.explain {
        call.require_admin()?;
    }
    if req.username.trim().is_empty() {
        return Err(ApiError::bad_request("username must not be empty"));
    }
    if req.username.len() > 1024 {
        return Err(ApiError::bad_request("username is longer than 1024 bytes"));
    }
    if req.remote_addr.as_ref().is_some_and(|a| a.len() > 256) {
        return Err(ApiError::bad_request("remote_addr is longer than 256 bytes"));
    }
    let rt = &call.runtime;
    let candidates: Vec<&AuthenticatorEntry> = match &req.authenticator {
        Some(name) => {
            let entry = rt.authenticator(name).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownAuthenticator,
                    format!("no authenticator named {name:?}"),
                )
            })?;
            if !entry.spec.enabled {
                return Err(ApiError::new(
                    ErrorCode::UnknownAuthenticator,
                    format!("authenticator {name:?} is disabled"),
                ));
            }
            if entry.flow() != Flow::Password {
                return Err(ApiError::new(
                    ErrorCode::FlowMismatch,
                    format!("authenticator {name:?} uses the redirect flow: use /v1/login/start"),
                ));
            }
            vec![entry]
        }
        None => rt
            .authenticators
            .iter()
            .filter(|a| a.spec.enabled && a.flow() == Flow::Password)
            .collect(),
    };
    if candidates.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidCredentials,
            "no enabled password authenticator is configured",
        ));
    }

    // Lockout before any backend is asked: one counter per username
    // however the authenticator is named, one per end-user address, and
    // a delay (never a refusal) for a peer that fails too often.
    let lockout = &rt.config.lockout;
    let scope = req.authenticator.as_deref();
    let attempt = Attempt {
        username: &req.username,
        peer_uid: call.peer.uid,
        remote_addr: req.remote_addr.as_deref(),
    };
    match shared_lockout(call).check(lockout, &attempt).await? {
        Err(locked) => return Err(locked_out(call, scope, &req.username, locked)),
        Ok(delay) if !delay.is_zero() => {
            call.daemon.metrics.login(scope.unwrap_or("*"), "delayed");
            tokio::time::sleep(delay).await;
        }
        Ok(_) => {}
    }

    let mut tried = Vec::new();
    let mut unavailable = Vec::new();
    let mut unreachable: Vec<&AuthenticatorEntry> = Vec::new();
    let mut rejected = 0usize;
    for entry in candidates {
        let name = entry.spec.name.as_str();
        let mut attempt = PasswordLogin::new(req.username.clone(), req.password.clone());
        attempt.remote_addr = req.remote_addr.clone();
        match call_login(entry, attempt).await {
            Ok(LoginStep::Authenticated(identity)) => {
                tried.push(json!({"authenticator": name, "outcome": "accepted"}));
                let uid = identity::link_uid(&identity);
                let answer = finish_login(
                    call,
                    entry,
                    identity,
                    req.explain,
                    tried,
                    Some(&req.username),
                    None,
                )
                .await;
                if answer.is_ok() && entry.spec.offline_max_age.is_some() {
                    remember_offline(call, entry, &req.username, &uid, &req.password).await;
                }
                return answer;
            }
            Ok(LoginStep::Challenge(c)) => {
                call.daemon.metrics.login(name, "challenge");
                return challenge(call, name, Some(&req.username), c, None).await;
            }
            Ok(_) => {
                call.daemon.metrics.login(name, "error");
                return Err(ApiError::internal(format!(
                    "authenticator {name:?} answered an unknown step"
                )));
            }
            Err(PluginError::InvalidCredentials) => {
                call.daemon.metrics.login(name, "invalid_credentials");
                rejected += 1;
                match offline(call)
                    .forget_if_refused(entry, &req.username, &req.password)
                    .await
                {
                    Ok(true) => tracing::info!(
                        authenticator = name,
                        "offline login: the kept password was refused online and is forgotten"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(authenticator = name, "offline login: {e}"),
                }
                tried.push(json!({"authenticator": name, "outcome": "invalid_credentials"}));
            }
            Err(PluginError::Denied(reason)) => {
                call.daemon.metrics.login(name, "denied");
                audit(
                    call,
                    Some(name),
                    &req.username,
                    "login_denied",
                    Some(reason.clone()),
                    vec![],
                );
                return Err(ApiError::new(ErrorCode::LoginDenied, reason));
            }
            Err(e @ (PluginError::BadRequest(_) | PluginError::Unsupported(_))) => {
                call.daemon.metrics.login(name, "bad_request");
                return Err(e.into());
            }
            Err(e) => {
                // Unavailable, or a plugin bug: skip this backend.
                call.daemon.metrics.login(name, "unavailable");
                tracing::warn!(authenticator = name, "authenticator skipped: {e}");
                unavailable.push(name.to_owned());
                unreachable.push(entry);
                tried.push(json!({"authenticator": name, "outcome": e.kind(), "message": e.to_string()}));
            }
        }
    }
    let details = if req.explain {
        json!({ "unavailable": unavailable, "explanation": { "authenticators": tried } })
    } else {
        json!({ "unavailable": unavailable })
    };
    if rejected == 0 && !unavailable.is_empty() {
        // Every backend asked was unreachable: what earlier online logins
        // left may answer instead.
        let mut expired = false;
        for entry in unreachable {
            let name = entry.spec.name.as_str();
            let now = unix_now();
            match offline(call)
                .attempt(entry, &req.username, &req.password, now)
                .await?
            {
                crate::offline::Outcome::NotKept => {}
                crate::offline::Outcome::Expired => expired = true,
                crate::offline::Outcome::Accepted { user, uid } => {
                    return offline_login(call, entry, &req.username, user, uid).await;
                }
                crate::offline::Outcome::Rejected => {
                    call.daemon.metrics.login(name, "invalid_credentials");
                    count_failure(call, lockout, &attempt).await;
                    audit(
                        call,
                        Some(name),
                        &req.username,
                        "invalid_credentials",
                        Some("offline".into()),
                        vec![],
                    );
                    return Err(
                        ApiError::new(ErrorCode::InvalidCredentials, "invalid credentials")
                            .with_details(json!({ "unavailable": unavailable, "offline": true })),
                    );
                }
            }
        }
        audit(
            call,
            scope,
            &req.username,
            "backend_unavailable",
            Some(
                if expired {
                    "offline_expired"
                } else {
                    "backend_unavailable"
                }
                .into(),
            ),
            vec![],
        );
        let details = if expired {
            let mut d = details;
            d["offline"] = json!("expired");
            d
        } else {
            details
        };
        Err(
            ApiError::new(ErrorCode::BackendUnavailable, "no authenticator could be reached")
                .with_details(details),
        )
    } else {
        count_failure(call, lockout, &attempt).await;
        audit(
            call,
            scope,
            &req.username,
            "invalid_credentials",
            Some("invalid_credentials".into()),
            vec![],
        );
        Err(ApiError::new(ErrorCode::InvalidCredentials, "invalid credentials").with_details(details))
    }
}

/// The 429 of a locked-out login, audited (the audit folds repeats).
/// The failure counters, kept in the store so they count across every
/// daemon sharing it.
fn shared_lockout<'a>(call: &'a Call) -> crate::lockout::SharedLockout<'a> {
    crate::lockout::SharedLockout {
        store: call.runtime.store.as_ref(),
    }
}

/// Offline login's view of this request's generation.
fn offline(call: &Call) -> crate::offline::Offline<'_> {
    crate::offline::Offline {
        store: call.runtime.store.as_ref(),
        passwords: &call.runtime.passwords,
        hashing: &call.daemon.hashing,
    }
}

/// Keeps an offline-login verifier after an online success; a failure
/// is logged (the login stands).
async fn remember_offline(
    call: &Call,
    entry: &AuthenticatorEntry,
    username: &str,
    uid: &str,
    password: &gatehouse_sdk::Secret,
) {
    let name = entry.spec.name.as_str();
    let user = match call.runtime.store.linked_user(name, uid).await {
        Ok(Some(u)) => u,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(authenticator = name, "offline login: nothing kept: {e}");
            return;
        }
    };
    if let Err(e) = offline(call)
        .remember(entry, username, uid, user.id, password, unix_now())
        .await
    {
        tracing::warn!(authenticator = name, "offline login: nothing kept: {e}");
    }
}

/// The answer of a login accepted offline: the user's memberships as the
/// store has them (the maps cannot run without the backend), marked
/// offline in the answer and the audit line.
async fn offline_login(
    call: &Call,
    entry: &AuthenticatorEntry,
    username: &str,
    user: crate::store::UserRecord,
    uid: String,
) -> Result<Response<Body>, ApiError> {
    let name = entry.spec.name.as_str();
    let grants = call.runtime.store.grants(user.id).await?;
    let (organizations, teams, roles) = identity::memberships(&grants);
    if let Err(e) = shared_lockout(call).success(username).await {
        tracing::warn!("lockout: cannot clear the counter of a successful login: {e}");
    }
    call.daemon.metrics.login(name, "offline");
    audit(
        call,
        Some(name),
        username,
        "success",
        Some("offline".into()),
        vec![],
    );
    let mut attributes = std::collections::BTreeMap::new();
    if !roles.is_empty() {
        attributes.insert("gatehouse_roles".into(), roles);
    }
    let token = login_token(call, &user, name).await;
    let result = LoginResult {
        user: user.to_wire(),
        authenticator: name.to_owned(),
        authenticator_uid: uid,
        groups: Vec::new(),
        organizations,
        teams,
        attributes,
        token,
        return_to: None,
        offline: true,
        explanation: None,
    };
    Ok(super::json(StatusCode::OK, &LoginResponse::Ok(Box::new(result))))
}

/// Counts a failed login; a store that cannot take it is logged (the
/// login fails either way).
async fn count_failure(call: &Call, lockout: &crate::config::LockoutSettings, attempt: &Attempt<'_>) {
    if let Err(e) = shared_lockout(call).failure(lockout, attempt).await {
        tracing::warn!("lockout: cannot count a failed login: {e}");
    }
}

fn locked_out(call: &Call, scope: Option<&str>, username: &str, locked: crate::lockout::Locked) -> ApiError {
    call.daemon.metrics.login(scope.unwrap_or("*"), "locked");
    audit(
        call,
        scope,
        username,
        "too_many_attempts",
        Some(locked.reason().into()),
        vec![],
    );
    let mut e = ApiError::new(
        ErrorCode::TooManyAttempts,
        "too many failed logins; try again later",
    );
    e.retry_after = Some(locked.retry_after());
    e
}

/// The 401 of an identity provider's answer refused for a named reason
/// (`signature`, `audience`, `replay`, …): the reason is logged, audited
/// and, for an admin's `explain`, shown with the detail.
fn refused_assertion(call: &Call, name: &str, reason: &str, detail: &str, explain: bool) -> ApiError {
    call.daemon.metrics.login(name, "invalid_credentials");
    tracing::info!(
        authenticator = name,
        peer_uid = call.peer.uid,
        reason,
        "identity provider answer refused: {detail}"
    );
    audit(
        call,
        Some(name),
        "",
        "invalid_credentials",
        Some(reason.to_owned()),
        vec![],
    );
    let mut e = ApiError::new(
        ErrorCode::InvalidCredentials,
        "the identity provider's answer was refused",
    );
    if explain {
        e = e.with_details(json!({ "explanation": {
            "authenticators": [{"authenticator": name, "outcome": "invalid_credentials",
                                "reason": reason, "message": detail}],
            "reason": reason,
        } }));
    }
    e
}

/// Maps, user, memberships, audit: the part after a backend said yes.
/// `counted` is the username the login's failures were counted under
/// (password and challenge logins), whose counter a success clears.
async fn finish_login(
    call: &Call,
    entry: &AuthenticatorEntry,
    identity: Identity,
    explain: bool,
    tried: Vec<serde_json::Value>,
    counted: Option<&str>,
    return_to: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let name = entry.spec.name.as_str();
    // A single-use login (a SAML assertion ID): claimed in the store, which
    // every host of the store shares, before anything is written.
    if let Some(once) = &identity.once {
        if once.key.is_empty() || once.key.len() > 256 {
            return Err(ApiError::internal(format!(
                "authenticator {name:?} gave a single-use key of {} bytes",
                once.key.len()
            )));
        }
        let scope = format!("{}:{name}", entry.spec.kind);
        if !call
            .runtime
            .store
            .claim_once(&scope, &once.key, once.expires_at)
            .await?
        {
            return Err(refused_assertion(
                call,
                name,
                "replay",
                "this assertion was used before",
                explain,
            ));
        }
    }
    let username = identity.username.clone();
    let username = counted.unwrap_or(&username);
    // The name a plugin reports is mapped the way local names are, and
    // refused under the same rules (no invisible twin of another user).
    if let Err(e) = crate::authn::username::check(&identity::normalize(&identity)) {
        call.daemon.metrics.login(name, "denied");
        audit(
            call,
            Some(name),
            username,
            "login_denied",
            Some("invalid_username".into()),
            vec![],
        );
        return Err(ApiError::new(
            ErrorCode::LoginDenied,
            format!("authenticator {name:?} reported a username gatehouse does not accept: {e}"),
        ));
    }
    let eval = maps::evaluate(&entry.spec.maps, &identity);
    let acted: Vec<String> = eval
        .trace
        .iter()
        .filter(|t| t.action != "none")
        .map(|t| t.name.clone())
        .collect();
    if !eval.allowed {
        call.daemon.metrics.login(name, "denied");
        audit(
            call,
            Some(name),
            username,
            "login_denied",
            Some("allow_map".into()),
            acted,
        );
        let mut e = ApiError::new(ErrorCode::LoginDenied, "an allow map denies this user");
        if explain {
            e = e.with_details(json!({ "explanation": { "authenticators": tried, "maps": eval.trace } }));
        }
        return Err(e);
    }
    let trace = eval.trace.clone();
    let allowed = eval.allowed;
    let identity::LoggedIn {
        user,
        applied,
        grants,
    } = identity::record_login(
        call.runtime.store.as_ref(),
        identity::LoginPolicy::of(&entry.spec),
        identity.clone(),
        eval,
        counted.map(crate::lockout::SharedLockout::counter_key),
    )
    .await?;
    let (organizations, teams, roles) = identity::memberships(&grants);
    call.daemon.metrics.login(name, "ok");
    // The audit line is the login's one log line (target `audit`): one
    // write per login, not two.
    audit(call, Some(name), username, "success", None, acted);
    let authenticator_uid = identity::link_uid(&identity);
    let mut attributes = identity.attributes;
    if !roles.is_empty() {
        attributes.insert("gatehouse_roles".into(), roles);
    }
    let token = login_token(call, &user, name).await;
    let result = LoginResult {
        user: user.to_wire(),
        authenticator: name.to_owned(),
        authenticator_uid,
        groups: identity.groups,
        organizations,
        teams,
        attributes,
        token,
        return_to,
        offline: false,
        explanation: explain.then(|| {
            json!({
                "authenticators": tried,
                "maps": trace,
                "allowed": allowed,
                "applied": applied,
            })
        }),
    };
    Ok(super::json(StatusCode::OK, &LoginResponse::Ok(Box::new(result))))
}

/// The issuer's token for a login, when `[issuer]` is configured.
async fn login_token(call: &Call, user: &crate::store::UserRecord, authenticator: &str) -> Option<String> {
    let (Some(config), Some(issuer)) = (&call.runtime.config.issuer, &call.runtime.issuer) else {
        return None;
    };
    let now = gatehouse_sdk::jose::unix(std::time::SystemTime::now());
    match issuer
        .login_token(config, call.runtime.store.as_ref(), user, authenticator, now)
        .await
    {
        Ok(t) => Some(t),
        Err(e) => {
            // the login stands; only its token is missing
            tracing::error!(authenticator, "issuer: no login token: {e}");
            None
        }
    }
}

/// Runs one login step: panics become errors, time is bounded.
async fn call_login(entry: &AuthenticatorEntry, attempt: PasswordLogin) -> Result<LoginStep, PluginError> {
    entry
        .call(
            "authenticator",
            LOGIN_TIMEOUT,
            entry.plugin.login(&entry.context, attempt),
        )
        .await
}

/// Keeps a challenge's state (in the store of pending logins, bound to
/// the peer) and tells the client what to ask.
async fn challenge(
    call: &Call,
    authenticator: &str,
    username: Option<&str>,
    c: gatehouse_sdk::Challenge,
    return_to: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let login_id = random_id()?;
    let pending = PendingLogin {
        kind: PendingKind::Challenge,
        id: login_id.clone(),
        authenticator: authenticator.to_owned(),
        username: username.map(str::to_owned),
        peer_uid: Some(call.peer.uid),
        state: c.state,
        callback_url: None,
        return_to,
        expires_at: unix_now() + CHALLENGE_TTL.as_secs() as i64,
    };
    if !call.runtime.store.put_pending(pending).await? {
        return Err(ApiError::new(
            ErrorCode::TooManyAttempts,
            "too many logins are waiting for an answer",
        ));
    }
    Ok(super::json(
        StatusCode::OK,
        &LoginResponse::Challenge(gatehouse_sdk::proto::ChallengeAnswer {
            login_id,
            prompt: c.prompt,
            echo: c.echo,
        }),
    ))
}

/// How long a challenge may be answered.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// How long a redirect login may take at the identity provider.
const REDIRECT_TTL: Duration = Duration::from_secs(600);

/// A fresh random id: 192 bits, URL-safe.
fn random_id() -> Result<String, ApiError> {
    super::random_url_token::<24>()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(super) async fn continue_login(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: ContinueRequest = body.parse()?;
    let taken = call
        .runtime
        .store
        .take_pending(PendingKind::Challenge, &req.login_id, call.peer.uid, unix_now())
        .await?;
    let Taken::Found(pending) = taken else {
        tracing::info!(
            peer_uid = call.peer.uid,
            reason = taken.reason(),
            "challenge answer refused"
        );
        return Err(ApiError::bad_request(format!(
            "unknown or expired login_id {:?}",
            req.login_id.chars().take(64).collect::<String>()
        )));
    };
    let name = pending.authenticator.as_str();
    let username = pending.username.as_deref().unwrap_or("");
    let entry = enabled_authenticator(call, name)?;
    let lockout = &call.runtime.config.lockout;
    // A challenge answer counts under the same username as the password
    // step, and a locked username cannot keep answering.
    let attempt = Attempt {
        username,
        peer_uid: call.peer.uid,
        remote_addr: None,
    };
    if pending.username.is_some() {
        match shared_lockout(call).check(lockout, &attempt).await? {
            Err(locked) => return Err(locked_out(call, Some(name), username, locked)),
            Ok(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Ok(_) => {}
        }
    }
    let step = entry
        .call(
            "authenticator",
            LOGIN_TIMEOUT,
            entry
                .plugin
                .continue_login(&entry.context, pending.state, req.response),
        )
        .await;
    match step {
        Ok(LoginStep::Authenticated(identity)) => {
            let tried = vec![json!({"authenticator": name, "outcome": "accepted"})];
            finish_login(
                call,
                entry,
                identity,
                false,
                tried,
                pending.username.as_deref(),
                pending.return_to,
            )
            .await
        }
        Ok(LoginStep::Challenge(c)) => {
            challenge(call, name, pending.username.as_deref(), c, pending.return_to).await
        }
        Ok(_) => Err(ApiError::internal(format!(
            "authenticator {name:?} answered an unknown step"
        ))),
        Err(PluginError::InvalidCredentials) => {
            call.daemon.metrics.login(name, "invalid_credentials");
            if pending.username.is_some() {
                count_failure(call, lockout, &attempt).await;
            }
            audit(
                call,
                Some(name),
                username,
                "invalid_credentials",
                Some("challenge".into()),
                vec![],
            );
            Err(ApiError::new(
                ErrorCode::InvalidCredentials,
                "invalid credentials",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// The enabled authenticator called `name`.
fn enabled_authenticator<'a>(call: &'a Call, name: &str) -> Result<&'a AuthenticatorEntry, ApiError> {
    call.runtime
        .authenticator(name)
        .filter(|e| e.spec.enabled)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownAuthenticator,
                format!("no enabled authenticator named {name:?}"),
            )
        })
}

/// The enabled redirect authenticator called `name`.
fn redirect_authenticator<'a>(call: &'a Call, name: &str) -> Result<&'a AuthenticatorEntry, ApiError> {
    let entry = enabled_authenticator(call, name)?;
    if entry.flow() != Flow::Redirect {
        return Err(ApiError::new(
            ErrorCode::FlowMismatch,
            format!("authenticator {name:?} uses the password flow: use /v1/login"),
        ));
    }
    Ok(entry)
}

/// `POST /v1/login/start`: asks a redirect authenticator where to send the
/// browser, and keeps its flow state under a fresh random `state`.
pub(super) async fn start(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: StartLoginRequest = body.parse()?;
    if req.return_to.as_ref().is_some_and(|r| r.len() > 2048) {
        return Err(ApiError::bad_request("return_to is longer than 2048 bytes"));
    }
    let entry = redirect_authenticator(call, &req.authenticator)?;
    let name = entry.spec.name.as_str();
    let state = random_id()?;
    let callback_url = entry.callback_url().map(str::to_owned);
    let mut start = StartRequest::new(state.clone(), callback_url.clone());
    start.return_to = req.return_to.clone();
    let redirect = entry
        .call(
            "authenticator",
            LOGIN_TIMEOUT,
            entry.plugin.start(&entry.context, start),
        )
        .await
        .map_err(|e| {
            call.daemon.metrics.login(name, "start_failed");
            ApiError::from(e)
        })?;
    let pending = PendingLogin {
        kind: PendingKind::Redirect,
        id: state.clone(),
        authenticator: name.to_owned(),
        username: None,
        peer_uid: None,
        state: redirect.flow_state,
        callback_url,
        return_to: req.return_to,
        expires_at: unix_now() + REDIRECT_TTL.as_secs() as i64,
    };
    if !call.runtime.store.put_pending(pending).await? {
        return Err(ApiError::new(
            ErrorCode::TooManyAttempts,
            "too many logins are waiting for an identity provider",
        ));
    }
    call.daemon.metrics.login(name, "started");
    Ok(super::json(
        StatusCode::OK,
        &StartLoginResponse {
            redirect_url: redirect.url,
            state,
        },
    ))
}

/// The `state` a callback carries: given explicitly, else OIDC's `state`,
/// else SAML's `RelayState` (`"IdP"` or absent: an unsolicited login).
fn callback_state(req: &FinishLoginRequest) -> Option<&str> {
    req.state
        .as_deref()
        .or_else(|| req.params.get("state").map(String::as_str))
        .or_else(|| req.params.get("RelayState").map(String::as_str))
        .filter(|s| !s.is_empty() && *s != "IdP")
}

/// `POST /v1/login/finish`: completes a redirect login from the callback
/// parameters. The `state` must be one a start issued, unused and not
/// expired; without one the plugin decides (SAML IdP-initiated logins).
pub(super) async fn finish(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: FinishLoginRequest = body.parse()?;
    if req.explain {
        call.require_admin()?;
    }
    let entry = redirect_authenticator(call, &req.authenticator)?;
    let name = entry.spec.name.as_str();
    let refuse = |reason: &'static str| {
        call.daemon.metrics.login(name, "invalid_state");
        tracing::info!(
            authenticator = name,
            peer_uid = call.peer.uid,
            reason,
            "redirect login refused"
        );
        audit(
            call,
            Some(name),
            "",
            "invalid_credentials",
            Some(reason.into()),
            vec![],
        );
        let mut e = ApiError::new(ErrorCode::InvalidCredentials, "the login's state is not valid");
        if req.explain {
            e = e.with_details(json!({ "explanation": { "reason": reason } }));
        }
        e
    };
    let (flow_state, callback_url, return_to) = match callback_state(&req) {
        Some(state) => {
            let taken = call
                .runtime
                .store
                .take_pending(PendingKind::Redirect, state, call.peer.uid, unix_now())
                .await?;
            match taken {
                Taken::Found(p) if p.authenticator == name => (Some(p.state), p.callback_url, p.return_to),
                Taken::Found(_) => return Err(refuse("state_of_another_authenticator")),
                other => return Err(refuse(other.reason())),
            }
        }
        None => (None, entry.callback_url().map(str::to_owned), None),
    };
    let request = FinishRequest::new(req.params, flow_state, callback_url);
    let tried = |outcome: &str| vec![json!({"authenticator": name, "outcome": outcome})];
    match entry
        .call(
            "authenticator",
            LOGIN_TIMEOUT,
            entry.plugin.finish(&entry.context, request),
        )
        .await
    {
        Ok(LoginStep::Authenticated(identity)) => {
            finish_login(
                call,
                entry,
                identity,
                req.explain,
                tried("accepted"),
                None,
                return_to,
            )
            .await
        }
        Ok(LoginStep::Challenge(c)) => {
            call.daemon.metrics.login(name, "challenge");
            challenge(call, name, None, c, return_to).await
        }
        Ok(_) => Err(ApiError::internal(format!(
            "authenticator {name:?} answered an unknown step"
        ))),
        Err(PluginError::InvalidCredentials) => {
            call.daemon.metrics.login(name, "invalid_credentials");
            audit(
                call,
                Some(name),
                "",
                "invalid_credentials",
                Some("identity_provider".into()),
                vec![],
            );
            let mut e = ApiError::new(
                ErrorCode::InvalidCredentials,
                "the identity provider's answer was refused",
            );
            if req.explain {
                e = e.with_details(
                    json!({ "explanation": { "authenticators": tried("invalid_credentials") } }),
                );
            }
            Err(e)
        }
        Err(PluginError::InvalidAssertion { reason, detail }) => {
            Err(refused_assertion(call, name, &reason, &detail, req.explain))
        }
        Err(PluginError::Denied(reason)) => {
            call.daemon.metrics.login(name, "denied");
            audit(call, Some(name), "", "login_denied", Some(reason.clone()), vec![]);
            Err(ApiError::new(ErrorCode::LoginDenied, reason))
        }
        Err(e) => {
            call.daemon.metrics.login(name, "unavailable");
            Err(e.into())
        }
    }
}

/// `GET /v1/authenticators/{name}/metadata`: a document the authenticator
/// publishes (SAML SP metadata).
pub(super) async fn metadata(call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let entry = enabled_authenticator(call, name)?;
    let doc = entry
        .call(
            "authenticator",
            LOGIN_TIMEOUT,
            entry.plugin.metadata(&entry.context),
        )
        .await
        .map_err(|e| match e {
            PluginError::Unsupported(_) => ApiError::new(
                ErrorCode::NotFound,
                format!("authenticator {name:?} publishes no metadata"),
            ),
            other => other.into(),
        })?;
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, doc.content_type)
        .body(super::Body::new(bytes::Bytes::from(doc.body)))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `POST /v1/maps/simulate` (admin): the maps of an authenticator over a
/// given identity, without writing anything.
pub(super) async fn simulate(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Simulate {
        authenticator: String,
        identity: Identity,
    }
    let req: Simulate = body.parse()?;
    let entry = call.runtime.authenticator(&req.authenticator).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownAuthenticator,
            format!("no authenticator named {:?}", req.authenticator),
        )
    })?;
    let eval = maps::evaluate(&entry.spec.maps, &req.identity);
    let create_objects = entry.spec.create_objects;
    let decisions = eval.decisions.clone();
    // Read-only lookups (would the object have to be created?), in one
    // transaction so they see one state of the store.
    let exists: Vec<bool> = call
        .runtime
        .store
        .atomically(move |tx| {
            let mut out = Vec::with_capacity(decisions.len());
            for target in decisions.keys() {
                let exists = match target {
                    maps::Target::Role {
                        organization: Some(o),
                        team,
                        ..
                    } => match (tx.organization(o, false)?, team) {
                        (None, _) => false,
                        (Some(_), None) => true,
                        (Some((org_id, _)), Some(t)) => tx.team(org_id, t, false)?.is_some(),
                    },
                    _ => true,
                };
                out.push(exists);
            }
            Ok(out)
        })
        .await?;
    let mut organizations = Vec::new();
    let mut teams = Vec::new();
    let mut roles = Vec::new();
    let mut revoked = Vec::new();
    let mut skipped = Vec::new();
    for ((target, grant), exists) in eval.decisions.iter().zip(exists) {
        let maps::Target::Role {
            organization,
            team,
            role,
        } = target
        else {
            continue;
        };
        let applies = *grant && (exists || create_objects);
        let item = json!({
            "organization": organization, "team": team, "role": role,
            "exists": exists, "would_create": *grant && !exists && create_objects,
            "skipped": *grant && !exists && !create_objects,
        });
        if !*grant {
            revoked.push(item);
        } else if !applies {
            skipped.push(item);
        } else {
            match (organization, team) {
                (Some(_), None) => organizations.push(item),
                (Some(_), Some(_)) => teams.push(item),
                _ => roles.push(item),
            }
        }
    }
    Ok(super::json(
        StatusCode::OK,
        &json!({
            "authenticator": entry.spec.name,
            "allowed": eval.allowed,
            "is_superuser": eval.superuser(),
            "organizations": organizations,
            "teams": teams,
            "roles": roles,
            "revoked": revoked,
            "skipped": skipped,
            "remove_users": entry.spec.remove_users,
            "maps": eval.trace,
        }),
    ))
}
