//! Host logins (`pam_gatehouse.so`): `POST /v1/host/account`, the PAM
//! `account` step. It answers whether a known user may log in to the host
//! now (not locked out), for any peer `[access]` lets log users in: the PAM
//! stack of a screen locker runs as the user, not as root.

use gatehouse_sdk::proto::ErrorCode;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::{ApiError, Body, Call, JsonBody, json};
use crate::authn::local::normalize_username;
use crate::lockout::Attempt;

/// `POST /v1/host/account`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountRequest {
    username: String,
}

/// Its `200` answer.
#[derive(Debug, Serialize)]
struct AccountAnswer {
    username: String,
    allowed: bool,
}

pub(super) async fn account(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: AccountRequest = body.parse()?;
    let username = normalize_username(&req.username);
    if call.runtime.store.user_by_username(&username).await?.is_none() {
        return Err(ApiError::not_found(format!("no user {username:?}")));
    }
    let attempt = Attempt {
        username: &req.username,
        peer_uid: call.peer.uid,
        remote_addr: None,
    };
    let lockout = crate::lockout::SharedLockout {
        store: call.runtime.store.as_ref(),
    };
    if let Err(locked) = lockout.check(&call.runtime.config.lockout, &attempt).await? {
        let mut e = ApiError::new(
            ErrorCode::TooManyAttempts,
            "too many failed logins; try again later",
        );
        e.retry_after = Some(locked.retry_after());
        return Err(e);
    }
    Ok(json(
        StatusCode::OK,
        &AccountAnswer {
            username,
            allowed: true,
        },
    ))
}
