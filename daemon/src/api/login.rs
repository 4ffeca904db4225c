//! `POST /v1/login` and `POST /v1/login/continue`: lockout, authenticators
//! in order, maps, the user, the audit trail.

use std::time::{Duration, Instant};

use gatehouse_sdk::proto::{ContinueRequest, ErrorCode, LoginRequest, LoginResponse, LoginResult};
use gatehouse_sdk::{Flow, Identity, LoginStep, PasswordLogin, PluginError};
use http::{Response, StatusCode};
use serde_json::json;

use super::{ApiError, Body, Call, JsonBody};
use crate::audit::Event;
use crate::identity;
use crate::maps;
use crate::runtime::AuthenticatorEntry;

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
        time: crate::state::rfc3339(std::time::SystemTime::now()),
        event: "login",
        peer_uid: call.peer.uid,
        peer_pid: call.peer.pid,
        authenticator,
        username,
        outcome,
        reason,
        maps,
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

    // Lockout before any backend is asked.
    let lockout = &rt.config.lockout;
    let scope = req.authenticator.as_deref();
    if let Err(locked) =
        call.daemon
            .lockout
            .check(lockout, scope, &req.username, call.peer.uid, Instant::now())
    {
        call.daemon.metrics.login(scope.unwrap_or("*"), "locked");
        audit(
            call,
            scope,
            &req.username,
            "locked",
            Some("too_many_attempts".into()),
            vec![],
        );
        let mut e = ApiError::new(
            ErrorCode::TooManyAttempts,
            "too many failed logins; try again later",
        );
        e.retry_after = Some(locked.retry_after());
        return Err(e);
    }

    let mut tried = Vec::new();
    let mut unavailable = Vec::new();
    let mut rejected = 0usize;
    for entry in candidates {
        let name = entry.spec.name.as_str();
        let mut attempt = PasswordLogin::new(req.username.clone(), req.password.clone());
        attempt.remote_addr = req.remote_addr.clone();
        match call_login(entry, attempt).await {
            Ok(LoginStep::Authenticated(identity)) => {
                tried.push(json!({"authenticator": name, "outcome": "accepted"}));
                return finish_login(call, entry, identity, req.explain, tried, scope, &req.username).await;
            }
            Ok(LoginStep::Challenge(c)) => {
                call.daemon.metrics.login(name, "challenge");
                return challenge(call, name, &req.username, c);
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
                tried.push(json!({"authenticator": name, "outcome": "invalid_credentials"}));
            }
            Err(PluginError::Denied(reason)) => {
                call.daemon.metrics.login(name, "denied");
                audit(
                    call,
                    Some(name),
                    &req.username,
                    "denied",
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
        audit(
            call,
            scope,
            &req.username,
            "unavailable",
            Some("backend_unavailable".into()),
            vec![],
        );
        Err(
            ApiError::new(ErrorCode::BackendUnavailable, "no authenticator could be reached")
                .with_details(details),
        )
    } else {
        call.daemon
            .lockout
            .failure(lockout, scope, &req.username, call.peer.uid, Instant::now());
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

/// Maps, user, memberships, audit: the part after a backend said yes.
async fn finish_login(
    call: &Call,
    entry: &AuthenticatorEntry,
    identity: Identity,
    explain: bool,
    tried: Vec<serde_json::Value>,
    scope: Option<&str>,
    username: &str,
) -> Result<Response<Body>, ApiError> {
    let name = entry.spec.name.as_str();
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
            "denied",
            Some("allow_map".into()),
            acted,
        );
        let mut e = ApiError::new(ErrorCode::LoginDenied, "an allow map denies this user");
        if explain {
            e = e.with_details(json!({ "explanation": { "authenticators": tried, "maps": eval.trace } }));
        }
        return Err(e);
    }
    let store = call.runtime.store.as_ref();
    let user = identity::resolve_user(store, &entry.spec, &identity).await?;
    let mut applied = identity::apply_maps(store, &entry.spec, &user, &eval).await?;
    let mut user = user;
    if let Some(su) = applied.superuser {
        user.is_superuser = su;
    }
    let grants = match applied.grants.take() {
        Some(g) => g,
        None => store.grants(user.id).await?,
    };
    let (organizations, teams, roles) = identity::memberships(&grants);
    call.daemon.lockout.success(scope, username);
    call.daemon.metrics.login(name, "ok");
    audit(call, Some(name), username, "success", None, acted);
    tracing::info!(
        authenticator = name,
        username = %user.username,
        peer_uid = call.peer.uid,
        peer_pid = call.peer.pid,
        "login accepted"
    );
    let mut attributes = identity.attributes;
    if !roles.is_empty() {
        attributes.insert("gatehouse_roles".into(), roles);
    }
    let result = LoginResult {
        user: user.to_wire(),
        authenticator: name.to_owned(),
        authenticator_uid: if identity.case_insensitive {
            identity.uid.to_lowercase()
        } else {
            identity.uid
        },
        groups: identity.groups,
        organizations,
        teams,
        attributes,
        token: None,
        explanation: explain.then(|| {
            json!({
                "authenticators": tried,
                "maps": eval.trace,
                "allowed": eval.allowed,
                "applied": applied,
            })
        }),
    };
    Ok(super::json(StatusCode::OK, &LoginResponse::Ok(Box::new(result))))
}

/// Runs one login step: panics become errors, time is bounded.
async fn call_login(entry: &AuthenticatorEntry, attempt: PasswordLogin) -> Result<LoginStep, PluginError> {
    crate::guard::plugin_call(
        "authenticator",
        LOGIN_TIMEOUT,
        entry.plugin.login(&entry.context, attempt),
    )
    .await
}

/// Keeps a challenge's state and tells the client what to ask.
fn challenge(
    call: &Call,
    authenticator: &str,
    username: &str,
    c: gatehouse_sdk::Challenge,
) -> Result<Response<Body>, ApiError> {
    let login_id = call
        .daemon
        .challenges
        .put(authenticator, username, call.peer.uid, c.state)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::TooManyAttempts,
                "too many logins are waiting for an answer",
            )
        })?;
    Ok(super::json(
        StatusCode::OK,
        &LoginResponse::Challenge(gatehouse_sdk::proto::ChallengeAnswer {
            login_id,
            prompt: c.prompt,
            echo: c.echo,
        }),
    ))
}

pub(super) async fn continue_login(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: ContinueRequest = body.parse()?;
    let Some(pending) = call.daemon.challenges.take(&req.login_id, call.peer.uid) else {
        return Err(ApiError::bad_request(format!(
            "unknown or expired login_id {:?}",
            req.login_id.chars().take(64).collect::<String>()
        )));
    };
    let name = pending.authenticator.as_str();
    let entry = call
        .runtime
        .authenticator(name)
        .filter(|e| e.spec.enabled)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownAuthenticator,
                format!("authenticator {name:?} is gone"),
            )
        })?;
    let lockout = &call.runtime.config.lockout;
    let step = crate::guard::plugin_call(
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
            finish_login(call, entry, identity, false, tried, Some(name), &pending.username).await
        }
        Ok(LoginStep::Challenge(c)) => challenge(call, name, &pending.username, c),
        Ok(_) => Err(ApiError::internal(format!(
            "authenticator {name:?} answered an unknown step"
        ))),
        Err(PluginError::InvalidCredentials) => {
            call.daemon.metrics.login(name, "invalid_credentials");
            call.daemon.lockout.failure(
                lockout,
                Some(name),
                &pending.username,
                call.peer.uid,
                Instant::now(),
            );
            audit(
                call,
                Some(name),
                &pending.username,
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
    let store = call.runtime.store.as_ref();
    let mut organizations = Vec::new();
    let mut teams = Vec::new();
    let mut roles = Vec::new();
    let mut revoked = Vec::new();
    let mut skipped = Vec::new();
    for (target, grant) in &eval.decisions {
        let maps::Target::Role {
            organization,
            team,
            role,
        } = target
        else {
            continue;
        };
        // read-only lookups: would the object have to be created?
        let org_exists = match organization {
            Some(o) => store.organization(o, false).await?,
            None => None,
        };
        let exists = match (organization, team, org_exists) {
            (None, _, _) => true,
            (Some(_), None, found) => found.is_some(),
            (Some(_), Some(t), Some((org_id, _))) => store.team(org_id, t, false).await?.is_some(),
            (Some(_), Some(_), None) => false,
        };
        let applies = *grant && (exists || entry.spec.create_objects);
        let item = json!({
            "organization": organization, "team": team, "role": role,
            "exists": exists, "would_create": *grant && !exists && entry.spec.create_objects,
            "skipped": *grant && !exists && !entry.spec.create_objects,
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
