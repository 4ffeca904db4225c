//! Operator routes (admin): `GET /v1/lockout` and `DELETE
//! /v1/lockout/{username}` — the lockout's counters, through
//! [`crate::lockout::SharedLockout`] (the counters live in the store,
//! shared by every host on it) — and `GET /v1/store/backup`.

use http::{Response, StatusCode};

use gatehouse_sdk::proto::{ErrorCode, LockoutCounter, LockoutList};

use super::{ApiError, Body, Call, json, no_content};

fn shared(call: &Call) -> crate::lockout::SharedLockout<'_> {
    crate::lockout::SharedLockout {
        store: call.runtime.store.as_ref(),
    }
}

pub(super) async fn list(call: &Call) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let counters = shared(call)
        .list(&call.runtime.config.lockout)
        .await?
        .into_iter()
        .map(|c| LockoutCounter {
            kind: c.kind.to_owned(),
            name: c.name,
            peer_uid: c.peer_uid,
            failures: c.failures,
            locked: c.locked,
            retry_after: c.retry_after,
        })
        .collect();
    Ok(json(StatusCode::OK, &LockoutList { counters }))
}

pub(super) async fn reset(call: &Call, username: &str) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let reset = shared(call).reset_user(username).await?;
    call.daemon.audit.record(&crate::audit::Event {
        ..crate::audit::Event::new(
            "lockout_reset",
            &call.peer,
            username,
            if reset {
                "success"
            } else {
                ErrorCode::NotFound.as_str()
            },
        )
    });
    if reset {
        tracing::info!(username = %crate::authn::username::for_log(username), peer_uid = call.peer.uid, "lockout reset");
        Ok(no_content())
    } else {
        Err(ApiError::not_found(format!(
            "no failures counted for {:?}",
            crate::authn::username::for_log(username)
        )))
    }
}

/// `GET /v1/store/backup`: a consistent copy of the store (SQLite: the
/// database file), made while serving, as `application/vnd.sqlite3`. The
/// copy is written in the state directory (private) and removed once read.
pub(super) async fn backup(call: &Call) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let scratch = tempfile::Builder::new()
        .prefix("backup-")
        .tempdir_in(&call.runtime.config.daemon.state_dir)
        .map_err(|e| ApiError::internal(format!("cannot make a scratch directory: {e}")))?;
    let file = scratch.path().join("gatehouse.db");
    let result = call.runtime.store.backup(&file).await;
    call.daemon.audit.record(&crate::audit::Event::new(
        "store_backup",
        &call.peer,
        "",
        if result.is_ok() {
            "success"
        } else {
            ErrorCode::BackendUnavailable.as_str()
        },
    ));
    result?;
    let bytes = tokio::fs::read(&file)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the backup: {e}")))?;
    drop(scratch);
    let mut r = Response::new(http_body_util::Full::new(bytes::Bytes::from(bytes)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/vnd.sqlite3"),
    );
    Ok(r)
}
