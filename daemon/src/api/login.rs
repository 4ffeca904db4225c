//! `POST /v1/login` and `POST /v1/login/continue`.

use std::time::Duration;

use gatehouse_sdk::proto::{ContinueRequest, ErrorCode, LoginRequest, LoginResponse, LoginResult};
use gatehouse_sdk::{Flow, Identity, LoginStep, PasswordLogin, PluginError};
use http::{Response, StatusCode};
use serde_json::json;

use super::{ApiError, Body, Call, JsonBody};
use crate::identity;
use crate::runtime::AuthenticatorEntry;

/// The longest a backend may take for one login step.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

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
            if entry.flow != Flow::Password {
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
            .filter(|a| a.spec.enabled && a.flow == Flow::Password)
            .collect(),
    };
    if candidates.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidCredentials,
            "no enabled password authenticator is configured",
        ));
    }

    let mut tried = Vec::new();
    let mut unavailable = Vec::new();
    let mut rejected = 0usize;
    for entry in candidates {
        let name = entry.spec.name.as_str();
        let attempt = PasswordLogin::new(req.username.clone(), req.password.clone());
        let mut attempt = attempt;
        attempt.remote_addr = req.remote_addr.clone();
        let outcome = call_login(entry, attempt).await;
        match outcome {
            Ok(LoginStep::Authenticated(identity)) => {
                call.daemon.metrics.login(name, "ok");
                tried.push(json!({"authenticator": name, "outcome": "accepted"}));
                let mut result = login_result(call, entry, identity).await?;
                tracing::info!(
                    authenticator = name,
                    username = %result.user.username,
                    peer_uid = call.peer.uid,
                    peer_pid = call.peer.pid,
                    "login accepted"
                );
                if req.explain {
                    result.explanation = Some(json!({ "authenticators": tried }));
                }
                return Ok(super::json(StatusCode::OK, &LoginResponse::Ok(Box::new(result))));
            }
            Ok(_) => {
                // No authenticator of this version asks challenges; the
                // continuation store arrives with the first one that does.
                call.daemon.metrics.login(name, "error");
                return Err(ApiError::internal(format!(
                    "authenticator {name:?} asked a challenge, which this version cannot relay"
                )));
            }
            Err(PluginError::InvalidCredentials) => {
                call.daemon.metrics.login(name, "invalid_credentials");
                rejected += 1;
                tried.push(json!({"authenticator": name, "outcome": "invalid_credentials"}));
            }
            Err(PluginError::Denied(reason)) => {
                call.daemon.metrics.login(name, "denied");
                tracing::info!(
                    authenticator = name,
                    peer_uid = call.peer.uid,
                    "login denied: {reason}"
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
                tried.push(json!({"authenticator": name, "outcome": e.kind(), "message": e.to_string()}));
            }
        }
    }
    tracing::info!(
        peer_uid = call.peer.uid,
        peer_pid = call.peer.pid,
        "login rejected"
    );
    let details = if req.explain {
        json!({ "unavailable": unavailable, "explanation": { "authenticators": tried } })
    } else {
        json!({ "unavailable": unavailable })
    };
    if rejected == 0 && !unavailable.is_empty() {
        Err(
            ApiError::new(ErrorCode::BackendUnavailable, "no authenticator could be reached")
                .with_details(details),
        )
    } else {
        Err(ApiError::new(ErrorCode::InvalidCredentials, "invalid credentials").with_details(details))
    }
}

/// Runs one login step on its own task, so a panicking plugin becomes an
/// error instead of taking the connection down, and bounds its time.
async fn call_login(entry: &AuthenticatorEntry, attempt: PasswordLogin) -> Result<LoginStep, PluginError> {
    let plugin = std::sync::Arc::clone(&entry.plugin);
    let ctx = entry.context.clone();
    let task = tokio::spawn(async move { plugin.login(&ctx, attempt).await });
    let abort = task.abort_handle();
    match tokio::time::timeout(LOGIN_TIMEOUT, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_panic() => Err(PluginError::Internal("the authenticator panicked".into())),
        Ok(Err(e)) => Err(PluginError::Internal(format!("login task failed: {e}"))),
        Err(_) => {
            abort.abort();
            Err(PluginError::Unavailable(format!(
                "no answer within {}s",
                LOGIN_TIMEOUT.as_secs()
            )))
        }
    }
}

async fn login_result(
    call: &Call,
    entry: &AuthenticatorEntry,
    identity: Identity,
) -> Result<LoginResult, ApiError> {
    let user = identity::resolve_user(call.runtime.store.as_ref(), &entry.spec, &identity).await?;
    Ok(LoginResult {
        user: user.to_wire(),
        authenticator: entry.spec.name.clone(),
        authenticator_uid: if identity.case_insensitive {
            identity.uid.to_lowercase()
        } else {
            identity.uid
        },
        groups: identity.groups,
        organizations: Vec::new(),
        teams: Vec::new(),
        attributes: identity.attributes,
        token: None,
        explanation: None,
    })
}

pub(super) async fn continue_login(_call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: ContinueRequest = body.parse()?;
    Err(ApiError::bad_request(format!(
        "unknown or expired login_id {:?}",
        req.login_id.chars().take(64).collect::<String>()
    )))
}
