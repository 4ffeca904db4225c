//! User administration (admin peers only): `/v1/users…`.

use gatehouse_sdk::proto::{CreateUser, ErrorCode, SetPassword, UserList};
use http::{Response, StatusCode};

use super::{ApiError, Body, Call, JsonBody, json, no_content};
use crate::authn::local::{check_username, normalize_username};
use crate::store::{NewUser, UserRecord};

pub(super) async fn list(call: &Call) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let users = call.runtime.store.list_users().await?;
    Ok(json(
        StatusCode::OK,
        &UserList {
            users: users.iter().map(|u| u.to_wire()).collect(),
        },
    ))
}

pub(super) async fn create(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: CreateUser = body.parse()?;
    let username = normalize_username(&req.username);
    check_username(&username).map_err(ApiError::bad_request)?;
    let policy = &call.runtime.passwords;
    policy
        .check_new(&req.password)
        .map_err(|m| ApiError::new(ErrorCode::Unprocessable, m))?;
    let hash = policy
        .hash(req.password, &call.daemon.hashing)
        .await
        .map_err(ApiError::internal)?;
    let user = call
        .runtime
        .store
        .create_user(NewUser {
            username,
            email: req.email,
            first_name: req.first_name,
            last_name: req.last_name,
            is_superuser: req.is_superuser,
            password_hash: Some(hash),
        })
        .await?;
    tracing::info!(username = %user.username, peer_uid = call.peer.uid, "user created");
    admin_audit(call, "user_add", &user.username, "success", None);
    Ok(json(StatusCode::CREATED, &user.to_wire()))
}

pub(super) async fn set_password(
    call: &Call,
    username: &str,
    body: JsonBody,
) -> Result<Response<Body>, ApiError> {
    let req: SetPassword = body.parse()?;
    let username = normalize_username(username);
    let policy = &call.runtime.passwords;
    policy
        .check_new(&req.password)
        .map_err(|m| ApiError::new(ErrorCode::Unprocessable, m))?;
    existing_user(call, &username).await?;
    let hash = policy
        .hash(req.password, &call.daemon.hashing)
        .await
        .map_err(ApiError::internal)?;
    if !call.runtime.store.set_password_hash(&username, hash).await? {
        return Err(no_user(&username));
    }
    tracing::info!(username = %username, peer_uid = call.peer.uid, "password changed");
    admin_audit(call, "password_set", &username, "success", None);
    Ok(no_content())
}

pub(super) async fn delete(call: &Call, username: &str) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let username = normalize_username(username);
    if call.runtime.store.delete_user(&username).await? {
        tracing::info!(username = %username, peer_uid = call.peer.uid, "user deleted");
        admin_audit(call, "user_delete", &username, "success", None);
        Ok(no_content())
    } else {
        admin_audit(call, "user_delete", &username, ErrorCode::NotFound.as_str(), None);
        Err(no_user(&username))
    }
}

/// `POST /v1/users/{username}/static-tokens`: a new static-object token,
/// shown once.
pub(super) async fn create_static_token(
    call: &Call,
    username: &str,
    body: JsonBody,
) -> Result<Response<Body>, ApiError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Req {
        #[serde(default)]
        name: Option<String>,
    }
    let req: Req = if body.is_empty() {
        Req::default()
    } else {
        body.parse()?
    };
    let username = normalize_username(username);
    let user = existing_user(call, &username).await?;
    let store = call.runtime.store.as_ref();
    let token = format!("ghso_{}", super::random_url_token::<32>()?);
    let name = req.name.unwrap_or_else(|| "static objects".into());
    let t = store
        .create_static_token(user.id, &name, crate::verifiers::static_object::digest(&token))
        .await?;
    tracing::info!(username = %username, token_id = t.id, peer_uid = call.peer.uid, "static-object token created");
    admin_audit(
        call,
        "static_token_create",
        &username,
        "success",
        Some(t.id.to_string()),
    );
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({"id": t.id, "name": t.name, "token": token, "username": username}),
    ))
}

/// `GET /v1/users/{username}/static-tokens`.
pub(super) async fn list_static_tokens(call: &Call, username: &str) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let username = normalize_username(username);
    let user = existing_user(call, &username).await?;
    let tokens = call.runtime.store.static_tokens(user.id).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "tokens": tokens })))
}

/// `DELETE /v1/static-tokens/{id}`: revokes a token.
pub(super) async fn revoke_static_token(call: &Call, id: &str) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("the token id is a number"))?;
    if call.runtime.store.revoke_static_token(id).await? {
        tracing::info!(
            token_id = id,
            peer_uid = call.peer.uid,
            "static-object token revoked"
        );
        admin_audit(call, "static_token_revoke", "", "success", Some(id.to_string()));
        Ok(no_content())
    } else {
        admin_audit(
            call,
            "static_token_revoke",
            "",
            ErrorCode::NotFound.as_str(),
            Some(id.to_string()),
        );
        Err(ApiError::not_found(format!("no active static-object token {id}")))
    }
}

fn no_user(username: &str) -> ApiError {
    ApiError::not_found(format!("no user {username:?}"))
}

/// The user called `username` (normalized), or 404.
async fn existing_user(call: &Call, username: &str) -> Result<UserRecord, ApiError> {
    call.runtime
        .store
        .user_by_username(username)
        .await?
        .ok_or_else(|| no_user(username))
}

/// Audits an admin action on `username` (or on `target`).
fn admin_audit(
    call: &Call,
    event: &'static str,
    username: &str,
    outcome: &'static str,
    target: Option<String>,
) {
    call.daemon.audit.record(&crate::audit::Event {
        target,
        ..crate::audit::Event::new(event, &call.peer, username, outcome)
    });
}
