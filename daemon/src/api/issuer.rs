//! The issuer's routes: `POST /v1/tokens/issue`, `GET /v1/jwks`,
//! `GET /.well-known/openid-configuration`, the entitlement admin
//! endpoints (`/v1/entitlements…`) and `POST /v1/issuer/rotate`.

use std::sync::Arc;

use gatehouse_sdk::proto::{ErrorCode, IssueTokenRequest};
use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Body, Call, JsonBody, json};
use crate::issuer::keys::KeyError;
use crate::issuer::{IssueError, Issuer, IssuerConfig};

fn now() -> i64 {
    gatehouse_sdk::jose::unix(std::time::SystemTime::now())
}

fn configured(call: &Call) -> Result<(&IssuerConfig, &Arc<Issuer>), ApiError> {
    match (&call.runtime.config.issuer, &call.runtime.issuer) {
        (Some(c), Some(i)) => Ok((c, i)),
        _ => Err(ApiError::not_found("no issuer is configured ([issuer])")),
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::BadRequest(m) => ApiError::bad_request(m),
            IssueError::NotFound(m) => ApiError::not_found(m),
            IssueError::NoAccess(m) => ApiError::new(ErrorCode::NoAccess, m),
            IssueError::Store(s) => s.into(),
            IssueError::Keys(k) => k.into(),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Store(s) => s.into(),
            // another host sealed the keyring under a key this one lacks
            KeyError::Sealed(_) => ApiError::new(ErrorCode::BackendUnavailable, e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// `POST /v1/tokens/issue`: admins and the peers `[issuer] issue_uids` /
/// `issue_gids` name.
pub(super) async fn issue(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let (config, issuer) = configured(call)?;
    let allowed = call.rights.admin
        || config.issue_uids.contains(&call.peer.uid)
        || config.issue_gids.contains(&call.peer.gid);
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "uid {} may not issue tokens (see [issuer] issue_uids)",
            call.peer.uid
        )));
    }
    let req: IssueTokenRequest = body.parse()?;
    let issued = issuer
        .issue(config, call.runtime.store.as_ref(), &req, now())
        .await?;
    Ok(json(StatusCode::OK, &issued))
}

/// `GET /v1/jwks`.
pub(super) async fn jwks(call: &Call) -> Result<Response<Body>, ApiError> {
    let (config, issuer) = configured(call)?;
    Ok(json(StatusCode::OK, &issuer.jwks(config, now()).await?))
}

/// `GET /.well-known/openid-configuration`.
pub(super) fn discovery(call: &Call) -> Result<Response<Body>, ApiError> {
    let (config, _) = configured(call)?;
    Ok(json(StatusCode::OK, &Issuer::discovery(config)))
}

/// `POST /v1/issuer/rotate` (admin): a new signing key.
pub(super) async fn rotate(call: &Call) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let (config, issuer) = configured(call)?;
    let kid = issuer.rotate(config, now()).await?;
    tracing::info!(kid, "issuer: signing key rotated");
    Ok(json(StatusCode::OK, &json!({ "kid": kid })))
}

/// `GET /v1/entitlements` (admin).
pub(super) async fn list(call: &Call) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let e = call.runtime.store.list_entitlements().await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "namespaces": e.namespaces.iter().map(|(n, p)| json!({"name": n, "parent": p})).collect::<Vec<_>>(),
            "purchases": e.purchases.iter().map(|(n, a, s)| json!({"namespace": n, "add_on": a, "seats": s})).collect::<Vec<_>>(),
            "seats": e.seats.iter().map(|(u, a)| json!({"user": u, "add_on": a})).collect::<Vec<_>>(),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceBody {
    #[serde(default)]
    parent: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseBody {
    #[serde(default)]
    namespace: Option<String>,
    add_on: String,
    #[serde(default)]
    seats: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeatBody {
    user: String,
    add_on: String,
}

/// Names of namespaces and add-ons: what the catalog accepts, plus `/`
/// in namespaces (group paths).
fn check_name(what: &str, v: &str, slash: bool) -> Result<(), ApiError> {
    let ok = !v.is_empty()
        && v.len() <= 255
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') || (slash && b == b'/'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} must be 1 to 255 letters, digits, `_`, `-`, `.`{}",
            if slash { " or `/`" } else { "" }
        )))
    }
}

fn changed(call: &Call) {
    if let Some(i) = &call.runtime.issuer {
        i.forget();
    }
}

/// `PUT` / `DELETE /v1/entitlements/namespaces/{name}` (admin).
pub(super) async fn namespace(
    call: &Call,
    name: &str,
    delete: bool,
    body: Option<JsonBody>,
) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    check_name("a namespace", name, true)?;
    let store = &call.runtime.store;
    if delete {
        if !store.delete_namespace(name).await? {
            return Err(ApiError::not_found(format!("no namespace named {name:?}")));
        }
    } else {
        let b: NamespaceBody = match body {
            Some(b) if !b.is_empty() => b.parse()?,
            _ => NamespaceBody { parent: None },
        };
        if let Some(p) = &b.parent {
            check_name("a parent namespace", p, true)?;
            if p == name {
                return Err(ApiError::bad_request("a namespace cannot be its own parent"));
            }
        }
        store.put_namespace(name, b.parent.as_deref()).await?;
    }
    changed(call);
    Ok(json(
        StatusCode::OK,
        &json!({"namespace": name, "deleted": delete}),
    ))
}

/// `PUT` / `DELETE /v1/entitlements/purchases` (admin).
pub(super) async fn purchase(call: &Call, delete: bool, body: JsonBody) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let b: PurchaseBody = body.parse()?;
    check_name("add_on", &b.add_on, false)?;
    if let Some(n) = &b.namespace {
        check_name("namespace", n, true)?;
    }
    let store = &call.runtime.store;
    if delete {
        if !store.delete_purchase(b.namespace.as_deref(), &b.add_on).await? {
            return Err(ApiError::not_found("no such purchase"));
        }
    } else {
        store
            .put_purchase(b.namespace.as_deref(), &b.add_on, b.seats)
            .await?;
    }
    changed(call);
    Ok(json(
        StatusCode::OK,
        &json!({"namespace": b.namespace, "add_on": b.add_on, "seats": b.seats, "deleted": delete}),
    ))
}

/// `PUT` / `DELETE /v1/entitlements/seats` (admin).
pub(super) async fn seat(call: &Call, delete: bool, body: JsonBody) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    let b: SeatBody = body.parse()?;
    check_name("add_on", &b.add_on, false)?;
    let store = &call.runtime.store;
    let user = store
        .user_by_username(&b.user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {:?}", b.user)))?;
    let did = store.set_seat(user.id, &b.add_on, !delete).await?;
    if delete && !did {
        return Err(ApiError::not_found("the user holds no seat of that add-on"));
    }
    changed(call);
    Ok(json(
        StatusCode::OK,
        &json!({"user": user.username, "add_on": b.add_on, "assigned": !delete}),
    ))
}
