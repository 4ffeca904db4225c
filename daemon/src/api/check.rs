//! `GET /v1/check`: forward auth for nginx `auth_request`, Traefik
//! `forwardAuth` and Envoy `ext_authz` (HTTP). The original request comes
//! from `X-Original-URI`/`X-Original-Method` (nginx),
//! `X-Forwarded-Uri`/`X-Forwarded-Method` (Traefik), or the path after
//! `/v1/check` and the method itself (Envoy). Routes match the path as the
//! proxy routes it (decoded, dot segments resolved: see `path.rs`). The
//! first `[[routes]]` entry that matches decides: `200` with identity headers, `401` (no or bad
//! credentials: the proxy should ask for them) or `403` (known, but not
//! allowed here).

mod path;
pub(crate) mod routes;

use std::collections::BTreeMap;

use bytes::Bytes;
use gatehouse_sdk::proto::ErrorCode;
use gatehouse_sdk::{OriginalRequest, PluginError, TokenRejection, VerifiedToken, VerifyRequest};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use super::{ApiError, Body, Call, error_response};
use crate::runtime::VerifierEntry;
use crate::store::UserRecord;
use crate::verifiers::static_object::{STORAGE_HEADER, USER_HEADER};
use routes::Route;

/// Headers of the original request a verifier may read.
const PASSED: &[&str] = &["authorization", STORAGE_HEADER, USER_HEADER];

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The original method and URI the proxy asks about.
fn original(method: &Method, path_rest: &str, query: Option<&str>, h: &HeaderMap) -> (String, String) {
    let uri = header(h, "x-original-uri")
        .or_else(|| header(h, "x-forwarded-uri"))
        .map(str::to_owned)
        .unwrap_or_else(|| match query {
            Some(q) => format!("/{path_rest}?{q}"),
            None => format!("/{path_rest}"),
        });
    let method = header(h, "x-original-method")
        .or_else(|| header(h, "x-forwarded-method"))
        .map(str::to_owned)
        .unwrap_or_else(|| method.to_string());
    (method, uri)
}

/// Who a denial is about, for the audit trail.
#[derive(Clone, Copy)]
struct Denial<'a> {
    call: &'a Call,
    route: Option<&'a str>,
    verifier: Option<&'a str>,
    /// The token's subject, when the token was valid.
    subject: &'a str,
}

impl Denial<'_> {
    /// Audits the denial (`reason`: a stable code, never the token) and
    /// builds the answer.
    fn deny(
        self,
        reason: &str,
        status: StatusCode,
        code: ErrorCode,
        message: &str,
        challenge: Option<&str>,
    ) -> Response<Body> {
        self.call.daemon.audit.record(&crate::audit::Event {
            verifier: self.verifier,
            route: self.route,
            reason: Some(reason.to_owned()),
            ..crate::audit::Event::new("token_check", &self.call.peer, self.subject, code.as_str())
        });
        deny(status, code, message, challenge)
    }
}

fn deny(status: StatusCode, code: ErrorCode, message: &str, challenge: Option<&str>) -> Response<Body> {
    let mut r = error_response(&ApiError::new(code, message));
    *r.status_mut() = status;
    if let Some(c) = challenge
        && let Ok(v) = HeaderValue::from_str(c)
    {
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Serves one forward-auth check.
pub(super) async fn check(
    call: &Call,
    method: &Method,
    path_rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let (orig_method, uri) = original(method, path_rest, query, headers);
    let rt = &call.runtime;
    let mut who = Denial {
        call,
        route: None,
        verifier: None,
        subject: "",
    };
    // Routes see the path the proxy will route, not the raw one.
    let path = match path::normalize(uri.split(['?', '#']).next().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => {
            return Ok(who.deny(
                "unsafe_path",
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                &e.to_string(),
                None,
            ));
        }
    };
    let Some(route) = rt.config.routes.iter().find(|r| r.matches(&orig_method, &path)) else {
        return Ok(who.deny(
            "no_route",
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "no route allows this request",
            None,
        ));
    };
    let Some(verifier) = rt.verifier(&route.verifier) else {
        return Err(ApiError::new(
            ErrorCode::UnknownVerifier,
            format!("no verifier {:?}", route.verifier),
        ));
    };
    who.route = Some(&route.name);
    who.verifier = Some(&verifier.spec.name);
    let bearer = header(headers, "authorization")
        .and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
        .map(str::trim)
        .unwrap_or("");
    if verifier.wants_bearer() && bearer.is_empty() {
        call.daemon.metrics.token(&verifier.spec.name, "missing");
        return Ok(who.deny(
            "missing_token",
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken,
            "a bearer token is required",
            Some("Bearer realm=\"gatehouse\""),
        ));
    }
    let mut passed = BTreeMap::new();
    for name in PASSED {
        if let Some(v) = header(headers, name) {
            passed.insert((*name).to_owned(), v.to_owned());
        }
    }
    let mut request = VerifyRequest::new(bearer);
    request.audience = route.audience.clone();
    request.unit_primitive = route.unit_primitive.clone();
    let mut original = OriginalRequest::default();
    original.method = orig_method;
    original.uri = uri;
    original.headers = passed;
    request.request = Some(original);

    let result = verifier
        .call(
            "verifier",
            std::time::Duration::from_secs(10),
            verifier.plugin.verify(&verifier.context, &request),
        )
        .await;
    let token = match result {
        Ok(t) => t,
        Err(PluginError::InvalidToken { reason, detail }) => {
            call.daemon.metrics.token(&verifier.spec.name, reason.as_str());
            return Ok(match reason {
                TokenRejection::MissingScope | TokenRejection::WrongAudience => who.deny(
                    reason.as_str(),
                    StatusCode::FORBIDDEN,
                    ErrorCode::InvalidToken,
                    &detail,
                    Some("Bearer realm=\"gatehouse\", error=\"insufficient_scope\""),
                ),
                // No token at all (a static-object request without one):
                // RFC 6750 §3.1 — a request without credentials gets a
                // challenge without an error code.
                TokenRejection::Malformed if bearer.is_empty() => who.deny(
                    "missing_token",
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::InvalidToken,
                    &detail,
                    Some("Bearer realm=\"gatehouse\""),
                ),
                _ => who.deny(
                    reason.as_str(),
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::InvalidToken,
                    &detail,
                    Some("Bearer realm=\"gatehouse\", error=\"invalid_token\""),
                ),
            });
        }
        Err(PluginError::Denied(why)) => {
            call.daemon.metrics.token(&verifier.spec.name, "denied");
            return Ok(who.deny("denied", StatusCode::FORBIDDEN, ErrorCode::Forbidden, &why, None));
        }
        Err(e) => return Err(e.into()),
    };
    call.daemon.metrics.token_valid(&verifier.spec.name, token.cached);
    if let Some(reason) = requirements(call, route, verifier, &token).await? {
        who.subject = &token.subject;
        return Ok(who.deny(
            "requirement",
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            &reason,
            None,
        ));
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&token.subject) {
        h.insert("x-gatehouse-user", v);
    }
    if let Ok(v) = HeaderValue::from_str(&token.scopes.join(" ")) {
        h.insert("x-gatehouse-scopes", v);
    }
    if let Ok(v) = HeaderValue::from_str(&route.name) {
        h.insert("x-gatehouse-route", v);
    }
    for (k, v) in &route.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    Ok(r)
}

/// Route requirements on the user behind the token; `Some(reason)` denies.
async fn requirements(
    call: &Call,
    route: &Route,
    verifier: &VerifierEntry,
    token: &VerifiedToken,
) -> Result<Option<String>, ApiError> {
    if !route.require_superuser && route.require_organization.is_none() && route.require_team.is_none() {
        return Ok(None);
    }
    let user = match subject_user(call, verifier, token).await? {
        Ok(user) => user,
        Err(reason) => return Ok(Some(reason)),
    };
    if route.require_superuser && !user.is_superuser {
        return Ok(Some("only superusers may do this".into()));
    }
    let grants = call.runtime.store.grants(user.id).await?;
    if let Some(org) = &route.require_organization
        && !grants
            .iter()
            .any(|g| g.organization.as_deref() == Some(org.as_str()) && g.team.is_none())
    {
        return Ok(Some(format!("not a member of organization {org:?}")));
    }
    if let Some(team) = &route.require_team
        && !grants.iter().any(|g| {
            g.organization.as_deref() == Some(team.organization.as_str())
                && g.team.as_deref() == Some(team.team.as_str())
        })
    {
        return Ok(Some(format!("not a member of team \"{team}\"")));
    }
    Ok(None)
}

/// The user a verified token speaks for, bound through the identity that
/// vouches for its subject, never through a same-named local account:
///
/// - a built-in verifier (`static_object`) resolved the token to a stored
///   user itself: its subject is that user's username;
/// - otherwise the verifier's `subjects` table names, for the token's
///   issuer, the authenticator whose identities the subjects are; the
///   subject is that authenticator's uid and names the user linked to
///   `(authenticator, uid)` by its logins (for a `local` authenticator,
///   whose uid is the username, also the local account of that name);
/// - an issuer the table does not list vouches for no user.
///
/// `Err(reason)` when no user is bound (the requirement is not met).
async fn subject_user(
    call: &Call,
    verifier: &VerifierEntry,
    token: &VerifiedToken,
) -> Result<Result<UserRecord, String>, ApiError> {
    let store = call.runtime.store.as_ref();
    let unknown = || Err("the token's subject is not linked to a known user".to_owned());
    if crate::registry::is_builtin::<crate::registry::Verifiers>(&verifier.spec.kind) {
        return Ok(store
            .user_by_username(&token.subject)
            .await?
            .map_or_else(unknown, Ok));
    }
    let issuer = token.issuer.trim_end_matches('/');
    let Some(auth) = verifier.spec.subjects.get(issuer).and_then(|name| {
        call.runtime
            .config
            .authenticators
            .iter()
            .find(|a| &a.name == name)
    }) else {
        return Ok(Err(format!(
            "verifier {:?} links no subject of issuer {issuer:?} to a user",
            verifier.spec.name
        )));
    };
    if let Some(user) = store.linked_user(&auth.name, &token.subject).await? {
        return Ok(Ok(user));
    }
    if auth.kind == "local" {
        // The local authenticator's uid is the (lowercased) username, and it
        // vouches for the store's own accounts, those with a local password
        // (`identity::resolve_user`), even before their first login.
        let username = token.subject.trim().to_lowercase();
        if let Some(user) = store.linked_user(&auth.name, &username).await? {
            return Ok(Ok(user));
        }
        if let Some(user) = store.user_by_username(&username).await?
            && user.password_hash.is_some()
        {
            return Ok(Ok(user));
        }
    }
    Ok(unknown())
}
