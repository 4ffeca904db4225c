//! The socket API v1: routing, body handling and one file per route group.

pub(crate) mod check;
mod error;
mod health;
mod host;
mod issuer;
mod lockout;
mod login;
mod nss;
mod plugins;
mod tokens;
mod users;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::ApiError;

use crate::access::{self, Peer, Rights};
use crate::client::decode_segment;
use crate::runtime::Runtime;
use crate::state::{Daemon, Trigger};

/// The response body type.
pub type Body = Full<Bytes>;

/// What a handler gets.
pub struct Call {
    /// The daemon.
    pub daemon: Arc<Daemon>,
    /// The generation this request sees, start to end.
    pub runtime: Arc<Runtime>,
    /// The caller.
    pub peer: Peer,
    /// The caller's rights.
    pub rights: Rights,
}

impl Call {
    /// Fails unless the peer is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.rights.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "uid {} may not use admin endpoints (see [access] admin_uids)",
                self.peer.uid
            )))
        }
    }
}

/// Serves one request.
pub async fn serve(daemon: Arc<Daemon>, peer: Peer, req: Request<Incoming>) -> Response<Body> {
    serve_with(daemon, peer, None, req).await
}

async fn serve_with(
    daemon: Arc<Daemon>,
    peer: Peer,
    rights: Option<Rights>,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let runtime = daemon.runtime();
    let rights = rights.unwrap_or_else(|| access::rights(&runtime.config.access, peer, daemon.daemon_uid));
    let max_body = runtime.config.daemon.max_body_bytes;
    let call = Call {
        daemon: Arc::clone(&daemon),
        runtime,
        peer,
        rights,
    };
    let (route, result) = route(call, req, max_body).await;
    let response = match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    daemon
        .metrics
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

/// Serves one request of the `[forward_auth]` TCP listener: `/v1/check`
/// (and `/v1/check/<original path>`, Envoy's form) and nothing else. The
/// peer has no credentials: it gets client rights, never admin ones.
pub async fn serve_forward_auth(daemon: Arc<Daemon>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path != "/v1/check" && !path.starts_with("/v1/check/") {
        let e = ApiError::not_found("this listener ([forward_auth]) serves /v1/check only");
        daemon
            .metrics
            .request("forward_auth_other", 404, std::time::Duration::ZERO);
        return error_response(&e);
    }
    let rights = Rights {
        client: true,
        admin: false,
    };
    serve_with(daemon, Peer::NETWORK, Some(rights), req).await
}

/// Serves one request of the `[host] nss_socket` listener: the read-only
/// name-service lookups (`/v1/nss/*`) and nothing else. Any local process
/// may connect; nothing it can ask is a secret or an admin action.
pub async fn serve_nss(daemon: Arc<Daemon>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let runtime = daemon.runtime();
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_owned);
    let query = query.as_deref();

    macro_rules! on {
        ($label:expr, $allow:expr, { $($m:pat => $body:expr),+ $(,)? }) => {
            ($label, match method {
                $($m => $body,)+
                _ => Err(ApiError::method_not_allowed($allow)),
            })
        };
    }

    let (route, result) = match req.uri().path() {
        "/v1/nss/passwd" => {
            on!("/v1/nss/passwd", "GET", { Method::GET => nss::passwd(&runtime, query).await })
        }
        "/v1/nss/group" => on!("/v1/nss/group", "GET", { Method::GET => nss::group(&runtime, query).await }),
        "/v1/nss/initgroups" => {
            on!("/v1/nss/initgroups", "GET", { Method::GET => nss::initgroups(&runtime, query).await })
        }
        _ => (
            "nss_other",
            Err(ApiError::not_found(
                "this socket ([host] nss_socket) serves the /v1/nss/ lookups only",
            )),
        ),
    };
    let response = match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    daemon
        .metrics
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

/// Dispatches on method and path; returns the route label for metrics.
async fn route(
    call: Call,
    req: Request<Incoming>,
    max_body: usize,
) -> (&'static str, Result<Response<Body>, ApiError>) {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    if !call.rights.client {
        return (
            "forbidden",
            Err(ApiError::forbidden(format!(
                "uid {} may not use this socket (see [access] client_uids)",
                call.peer.uid
            ))),
        );
    }

    macro_rules! on {
        ($label:expr, $allow:expr, { $($m:pat => $body:expr),+ $(,)? }) => {
            ($label, match method {
                $($m => $body,)+
                _ => Err(ApiError::method_not_allowed($allow)),
            })
        };
    }

    match segments.as_slice() {
        ["v1", "health"] => on!("/v1/health", "GET", { Method::GET => health::health(&call) }),
        ["v1", "status"] => on!("/v1/status", "GET", { Method::GET => health::status(&call) }),
        ["v1", "metrics"] => on!("/v1/metrics", "GET", { Method::GET => Ok(metrics(&call)) }),
        ["v1", "authenticators"] => {
            on!("/v1/authenticators", "GET", { Method::GET => health::authenticators(&call) })
        }
        ["v1", "plugins"] => on!("/v1/plugins", "GET", { Method::GET => plugins::list(&call) }),
        ["v1", "login"] => on!("/v1/login", "POST", {
            Method::POST => match json_body(req, max_body).await {
                Ok(body) => login::login(&call, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "login", "continue"] => on!("/v1/login/continue", "POST", {
            Method::POST => match json_body(req, max_body).await {
                Ok(body) => login::continue_login(&call, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "login", "start"] => on!("/v1/login/start", "POST", {
            Method::POST => match json_body(req, max_body).await {
                Ok(body) => login::start(&call, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "login", "finish"] => on!("/v1/login/finish", "POST", {
            Method::POST => match json_body(req, max_body).await {
                Ok(body) => login::finish(&call, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "authenticators", name, "metadata"] => {
            let name = decode_segment(name);
            on!("/v1/authenticators/{name}/metadata", "GET", {
                Method::GET => match name {
                    Some(n) => login::metadata(&call, &n).await,
                    None => Err(ApiError::bad_request("invalid percent-encoding in the authenticator name")),
                }
            })
        }
        ["v1", "check", rest @ ..] => {
            let rest = rest.join("/");
            let query = req.uri().query().map(str::to_owned);
            let headers = req.headers().clone();
            (
                "/v1/check",
                check::check(&call, &method, &rest, query.as_deref(), &headers).await,
            )
        }
        ["v1", "tokens", "verify"] => on!("/v1/tokens/verify", "POST", {
            Method::POST => match json_body(req, max_body).await {
                Ok(body) => tokens::verify(&call, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "tokens", "issue"] => on!("/v1/tokens/issue", "POST", {
            Method::POST => match json_body(req, max_body).await {
                Ok(body) => issuer::issue(&call, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "jwks"] => on!("/v1/jwks", "GET", { Method::GET => issuer::jwks(&call).await }),
        [".well-known", "openid-configuration"] => {
            on!("/.well-known/openid-configuration", "GET", { Method::GET => issuer::discovery(&call) })
        }
        ["v1", "issuer", "rotate"] => {
            on!("/v1/issuer/rotate", "POST", { Method::POST => issuer::rotate(&call).await })
        }
        ["v1", "entitlements"] => {
            on!("/v1/entitlements", "GET", { Method::GET => issuer::list(&call).await })
        }
        ["v1", "entitlements", "namespaces", name @ ..] if !name.is_empty() => {
            // a namespace is a group path: its segments are joined back
            let name: Option<Vec<String>> = name.iter().map(|s| decode_segment(s)).collect();
            let name = name.map(|n| n.join("/"));
            on!("/v1/entitlements/namespaces/{name}", "PUT, DELETE", {
                Method::PUT => match (name, json_body(req, max_body).await) {
                    (None, _) => Err(ApiError::bad_request("invalid percent-encoding in the namespace")),
                    (_, Err(e)) => Err(e),
                    (Some(n), Ok(body)) => issuer::namespace(&call, &n, false, Some(body)).await,
                },
                Method::DELETE => match name {
                    None => Err(ApiError::bad_request("invalid percent-encoding in the namespace")),
                    Some(n) => issuer::namespace(&call, &n, true, None).await,
                }
            })
        }
        ["v1", "entitlements", "purchases"] => on!("/v1/entitlements/purchases", "PUT, DELETE", {
            m @ (Method::PUT | Method::DELETE) => match json_body(req, max_body).await {
                Ok(body) => issuer::purchase(&call, m == Method::DELETE, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "entitlements", "seats"] => on!("/v1/entitlements/seats", "PUT, DELETE", {
            m @ (Method::PUT | Method::DELETE) => match json_body(req, max_body).await {
                Ok(body) => issuer::seat(&call, m == Method::DELETE, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "maps", "simulate"] => on!("/v1/maps/simulate", "POST", {
            Method::POST => match call.require_admin() {
                Ok(()) => match json_body(req, max_body).await {
                    Ok(body) => login::simulate(&call, body).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }),
        ["v1", "host", "account"] => on!("/v1/host/account", "POST", {
            Method::POST => match json_body(req, max_body).await {
                Ok(body) => host::account(&call, body).await,
                Err(e) => Err(e),
            }
        }),
        ["v1", "lockout"] => on!("/v1/lockout", "GET", { Method::GET => lockout::list(&call).await }),
        ["v1", "lockout", name] => {
            let name = decode_segment(name);
            on!("/v1/lockout/{username}", "DELETE", {
                Method::DELETE => match name {
                    Some(n) => lockout::reset(&call, &n).await,
                    None => Err(ApiError::bad_request("invalid percent-encoding in the username")),
                }
            })
        }
        ["v1", "store", "backup"] => {
            on!("/v1/store/backup", "GET", { Method::GET => lockout::backup(&call).await })
        }
        ["v1", "reload"] => on!("/v1/reload", "POST", {
            Method::POST => reload(&call).await
        }),
        ["v1", "users"] => on!("/v1/users", "GET, POST", {
            Method::GET => users::list(&call).await,
            Method::POST => match call.require_admin() {
                Ok(()) => match json_body(req, max_body).await {
                    Ok(body) => users::create(&call, body).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }),
        ["v1", "users", name] => {
            let name = decode_segment(name);
            on!("/v1/users/{username}", "DELETE", {
                Method::DELETE => match name {
                    Some(n) => users::delete(&call, &n).await,
                    None => Err(ApiError::bad_request("invalid percent-encoding in the username")),
                }
            })
        }
        ["v1", "users", name, "static-tokens"] => {
            let name = decode_segment(name);
            on!("/v1/users/{username}/static-tokens", "GET, POST", {
                Method::GET => match name {
                    Some(n) => users::list_static_tokens(&call, &n).await,
                    None => Err(ApiError::bad_request("invalid percent-encoding in the username")),
                },
                Method::POST => match (call.require_admin(), name) {
                    (Err(e), _) => Err(e),
                    (Ok(()), None) => Err(ApiError::bad_request("invalid percent-encoding in the username")),
                    (Ok(()), Some(n)) => match json_body(req, max_body).await {
                        Ok(body) => users::create_static_token(&call, &n, body).await,
                        Err(e) => Err(e),
                    },
                }
            })
        }
        ["v1", "static-tokens", id] => {
            let id = (*id).to_owned();
            on!("/v1/static-tokens/{id}", "DELETE", { Method::DELETE => users::revoke_static_token(&call, &id).await })
        }
        ["v1", "users", name, "password"] => {
            let name = decode_segment(name);
            on!("/v1/users/{username}/password", "PUT", {
                Method::PUT => match (call.require_admin(), name) {
                    (Err(e), _) => Err(e),
                    (Ok(()), None) => Err(ApiError::bad_request("invalid percent-encoding in the username")),
                    (Ok(()), Some(n)) => match json_body(req, max_body).await {
                        Ok(body) => users::set_password(&call, &n, body).await,
                        Err(e) => Err(e),
                    },
                }
            })
        }
        _ => (
            "other",
            Err(ApiError::not_found(format!("no route for {method} {path}"))),
        ),
    }
}

async fn reload(call: &Call) -> Result<Response<Body>, ApiError> {
    call.require_admin()?;
    match call.daemon.reload(Trigger::Api).await {
        Ok(generation) => Ok(json(
            StatusCode::OK,
            &gatehouse_sdk::proto::ReloadAnswer { generation },
        )),
        Err(errors) => Err(ApiError::invalid_config(&errors)),
    }
}

fn metrics(call: &Call) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(call.daemon.metrics.render())));
    r.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// A raw request body, read within the size limit.
pub struct JsonBody(Bytes);

impl JsonBody {
    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(u8::is_ascii_whitespace)
    }

    /// Deserializes it; a syntax or type error is 400 `bad_request`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.0).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
                _ => "invalid request",
            };
            ApiError::bad_request(format!("{what}: {}", redact_serde(&e)))
        })
    }
}

/// serde_json messages can quote input values (`invalid type: string
/// "hunter2"`, ``invalid type: integer `31415926535` ``): keep the
/// structure, drop every value.
fn redact_serde(e: &serde_json::Error) -> String {
    gatehouse_sdk::redact_input_values(&e.to_string())
}

/// `N` random bytes, base64url without padding: login ids, redirect
/// states, static-object tokens.
pub(super) fn random_url_token<const N: usize>() -> Result<String, ApiError> {
    use base64::Engine as _;
    let mut raw = [0u8; N];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| ApiError::internal("no randomness"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// Bodies up to this size are read and discarded after a 413, so the
/// keep-alive connection stays usable; larger ones close the connection.
const DRAIN_LIMIT: usize = 1024 * 1024;

async fn json_body(req: Request<Incoming>, max: usize) -> Result<JsonBody, ApiError> {
    let too_large = |close: bool| {
        let mut e = ApiError::new(
            gatehouse_sdk::proto::ErrorCode::PayloadTooLarge,
            format!("request body is larger than {max} bytes"),
        );
        e.close = close;
        e
    };
    let declared = match req
        .headers()
        .get(CONTENT_LENGTH)
        .map(|v| v.to_str().map(str::parse::<u64>))
    {
        Some(Ok(Ok(n))) => Some(n),
        Some(_) => return Err(ApiError::bad_request("invalid Content-Length")),
        None => None,
    };
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(too_large(true));
    }
    // Once the body is in, the handler's own work is not request_timeout's business.
    let clock = req.extensions().get::<crate::conn::RequestClock>().cloned();
    let read = || clock.iter().for_each(crate::conn::RequestClock::body_read);
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(ct) = content_type
        && !ct.starts_with("application/json")
    {
        let drained = drain(req.into_body()).await;
        read();
        let mut e = ApiError::new(
            gatehouse_sdk::proto::ErrorCode::UnsupportedMediaType,
            format!("expected Content-Type application/json, got {ct:?}"),
        );
        e.close = !drained;
        return Err(e);
    }
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > max {
                let drained = buf.len() + data.len() <= DRAIN_LIMIT && drain(body).await;
                read();
                return Err(too_large(!drained));
            }
            buf.extend_from_slice(data);
        }
    }
    read();
    Ok(JsonBody(buf.freeze()))
}

/// Reads and discards the rest of a body, up to [`DRAIN_LIMIT`]; false when
/// it was longer or broken (the connection must then close).
async fn drain(mut body: Incoming) -> bool {
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                seen += f.data_ref().map_or(0, Bytes::len);
                if seen > DRAIN_LIMIT {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// An empty `204 No Content`.
pub fn no_content() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// The JSON error response of an [`ApiError`].
pub fn error_response(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json(status, &e.body());
    if let Some(secs) = e.retry_after
        && let Ok(v) = http::HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    if let Some(allow) = e.allow {
        r.headers_mut()
            .insert(ALLOW, http::HeaderValue::from_static(allow));
    }
    r
}

#[cfg(test)]
mod tests {
    /// docs/openapi.json and the router agree: every route the router
    /// serves is in the document with exactly its methods, and the
    /// document has no route the router lacks.
    #[test]
    fn the_openapi_document_matches_the_router() {
        let source = include_str!("mod.rs");
        let mut routes: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            std::collections::BTreeMap::new();
        let mut rest = source;
        while let Some(at) = rest.find("on!(") {
            rest = &rest[at + 4..];
            let mut quoted = rest.split('"').skip(1).step_by(2);
            let (Some(path), Some(methods)) = (quoted.next(), quoted.next()) else {
                continue;
            };
            if !path.starts_with('/') {
                continue; // the macro's own definition
            }
            routes
                .entry(path.to_owned())
                .or_default()
                .extend(methods.split(',').map(|m| m.trim().to_ascii_lowercase()));
        }
        // forward auth takes any method, on two paths
        let any: std::collections::BTreeSet<String> =
            ["get", "post", "put", "patch", "delete", "head", "options"]
                .iter()
                .map(|m| (*m).to_owned())
                .collect();
        assert!(source.contains(r#"["v1", "check", rest @ ..]"#));
        routes.insert("/v1/check".into(), any.clone());
        routes.insert("/v1/check/{path}".into(), any);

        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/openapi.json")).expect("docs/openapi.json");
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .map(|(path, item)| {
                let methods = item
                    .as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| *k != "parameters")
                    .cloned()
                    .collect();
                (path.clone(), methods)
            })
            .collect();
        assert!(routes.len() > 25, "the router's routes were found: {routes:?}");
        assert_eq!(routes, documented);
        // every path parameter is declared
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                assert!(
                    item["parameters"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path")),
                    "{path}: parameter {name} undeclared"
                );
            }
        }
    }

    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(decode_segment("j%C3%BCrgen").as_deref(), Some("jürgen"));
        assert_eq!(decode_segment("a%2"), None);
        assert_eq!(decode_segment("%ff"), None);
    }

    #[test]
    fn serde_messages_lose_quoted_values() {
        let e = serde_json::from_str::<u32>("\"hunter2\"").unwrap_err();
        let m = redact_serde(&e);
        assert!(!m.contains("hunter2"), "{m}");
        for body in [r#"31415926535"#, "3.14159", "true"] {
            let e = serde_json::from_str::<String>(body).unwrap_err();
            let m = redact_serde(&e);
            assert!(m.contains("invalid type") && !m.contains(body), "{m}");
        }
    }
}
