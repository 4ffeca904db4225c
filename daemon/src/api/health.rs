//! `GET /v1/health`, `GET /v1/status` and `GET /v1/authenticators`.

use http::{Response, StatusCode};

use gatehouse_sdk::proto::{AuthenticatorInfo, AuthenticatorList, BackendStatus, Health, Status};

use super::{ApiError, Body, Call, json};

/// What a peer that is not an admin reads in `last_reload_error`.
pub(super) const RELOAD_FAILED: &str = "the last reload failed; admin peers can read why";

pub(super) fn health(call: &Call) -> Result<Response<Body>, ApiError> {
    Ok(json(StatusCode::OK, &health_of(call)))
}

fn health_of(call: &Call) -> Health {
    let rt = &call.runtime;
    Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        generation: rt.generation,
        reloaded_at: crate::state::rfc3339(rt.loaded_at),
        // Configuration errors name files, lines and keys: admins
        // read them; other peers learn only that a reload failed.
        last_reload_error: call.daemon.last_reload_error().map(|e| {
            if call.rights.admin {
                e
            } else {
                RELOAD_FAILED.to_owned()
            }
        }),
        authenticators: rt.authenticators.len(),
        verifiers: rt.verifiers.len(),
    }
}

/// `GET /v1/status` (admin: backend errors name hosts): health, the last
/// successful reload, and each instance's backend state.
pub(super) fn status(call: &Call) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let rt = &call.runtime;
    let time = |t: std::time::SystemTime| crate::state::rfc3339(t);
    let entry = |family: &str, name: &str, kind: &str, observed: crate::backend::Observed| BackendStatus {
        family: family.to_owned(),
        name: name.to_owned(),
        kind: kind.to_owned(),
        state: observed.state().to_owned(),
        offline_since: observed.offline_since.map(time),
        last_ok_at: observed.last_ok.map(time),
        last_error_at: observed.last_error.as_ref().map(|(t, _)| time(*t)),
        last_error: observed.last_error.map(|(_, m)| m),
        issuers: Vec::new(),
    };
    let mut backends: Vec<BackendStatus> = rt
        .authenticators
        .iter()
        .map(|a| entry("authenticator", &a.spec.name, &a.spec.kind, a.backend.get()))
        .collect();
    for v in &rt.verifiers {
        let mut b = entry("verifier", &v.spec.name, &v.spec.kind, v.backend.get());
        b.issuers = v.plugin.key_sources();
        // a verifier whose every key source failed is offline too
        if b.state != "offline"
            && !b.issuers.is_empty()
            && b.issuers.iter().all(|i| i.keys == 0 && i.last_error.is_some())
        {
            b.state = "offline".into();
            b.last_error = b.issuers.iter().find_map(|i| i.last_error.clone());
        }
        backends.push(b);
    }
    Ok(json(
        StatusCode::OK,
        &Status {
            health: health_of(call),
            last_reload_ok_at: time(rt.loaded_at),
            backends,
        },
    ))
}

pub(super) fn authenticators(call: &Call) -> Result<Response<Body>, ApiError> {
    let list = call
        .runtime
        .authenticators
        .iter()
        .map(|a| AuthenticatorInfo {
            name: a.spec.name.clone(),
            kind: a.spec.kind.clone(),
            enabled: a.spec.enabled,
            order: a.spec.order,
            flow: a.flow().as_str().into(),
        })
        .collect();
    Ok(json(StatusCode::OK, &AuthenticatorList { authenticators: list }))
}
