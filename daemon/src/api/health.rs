//! `GET /v1/health` and `GET /v1/authenticators`.

use http::{Response, StatusCode};

use gatehouse_sdk::proto::{AuthenticatorInfo, AuthenticatorList, Health};

use super::{ApiError, Body, Call, json};

/// What a peer that is not an admin reads in `last_reload_error`.
pub(super) const RELOAD_FAILED: &str = "the last reload failed; admin peers can read why";

pub(super) fn health(call: &Call) -> Result<Response<Body>, ApiError> {
    let rt = &call.runtime;
    Ok(json(
        StatusCode::OK,
        &Health {
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
