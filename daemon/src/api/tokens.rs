//! `POST /v1/tokens/verify`.

use gatehouse_sdk::proto::{ErrorCode, ErrorDetail, TokenRejected, TokenVerified, VerifyTokenRequest};
use gatehouse_sdk::{PluginError, TokenRejection, VerifyRequest};
use http::{Response, StatusCode};

use super::{ApiError, Body, Call, JsonBody, json};
use crate::runtime::VerifierEntry;

/// The longest a verifier may take.
const VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) async fn verify(call: &Call, body: JsonBody) -> Result<Response<Body>, ApiError> {
    let req: VerifyTokenRequest = body.parse()?;
    let rt = &call.runtime;
    let candidates: Vec<&VerifierEntry> = match &req.verifier {
        Some(name) => vec![rt.verifier(name).ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownVerifier, format!("no verifier named {name:?}"))
        })?],
        None => rt.verifiers.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(ApiError::new(
            ErrorCode::UnknownVerifier,
            "no verifier is configured",
        ));
    }
    if req.token.is_empty() {
        return Ok(rejected(TokenRejection::Malformed, "the token is empty"));
    }
    let mut request = VerifyRequest::new(req.token);
    request.audience = req.audience;
    request.unit_primitive = req.unit_primitive;

    let mut first_rejection: Option<(TokenRejection, String, &str)> = None;
    let mut unavailable = Vec::new();
    let mut denied = None;
    for entry in candidates {
        let name = entry.spec.name.as_str();
        match call_verify(entry, &request).await {
            Ok(t) => {
                call.daemon.metrics.token_valid(name, t.cached);
                return Ok(json(
                    StatusCode::OK,
                    &TokenVerified {
                        valid: true,
                        verifier: name.to_owned(),
                        issuer: t.issuer,
                        subject: t.subject,
                        audience: t.audience,
                        scopes: t.scopes,
                        expires_at: t.expires_at,
                        claims: t.claims,
                    },
                ));
            }
            Err(PluginError::InvalidToken { reason, detail }) => {
                call.daemon.metrics.token(name, reason.as_str());
                first_rejection.get_or_insert((reason, detail, name));
            }
            Err(e @ (PluginError::BadRequest(_) | PluginError::Unsupported(_))) => return Err(e.into()),
            // the verifier does not take this request: not an outage
            Err(PluginError::Denied(why)) => {
                call.daemon.metrics.token(name, "denied");
                denied.get_or_insert(why);
            }
            Err(e) => {
                call.daemon.metrics.token(name, "unavailable");
                tracing::warn!(verifier = name, "verifier skipped: {e}");
                unavailable.push(name.to_owned());
            }
        }
    }
    let audit = |verifier: Option<&str>, outcome: &'static str, reason: &str| {
        call.daemon.audit.record(&crate::audit::Event {
            verifier,
            reason: Some(reason.to_owned()),
            ..crate::audit::Event::new("token_verify", &call.peer, "", outcome)
        });
    };
    match first_rejection {
        Some((reason, detail, name)) => {
            audit(Some(name), ErrorCode::InvalidToken.as_str(), reason.as_str());
            Ok(rejected(reason, &detail))
        }
        None if unavailable.is_empty()
            && let Some(why) = denied =>
        {
            audit(None, ErrorCode::Forbidden.as_str(), "denied");
            Err(ApiError::new(ErrorCode::Forbidden, why))
        }
        None => {
            audit(
                None,
                ErrorCode::BackendUnavailable.as_str(),
                "backend_unavailable",
            );
            Err(
                ApiError::new(ErrorCode::BackendUnavailable, "no verifier could check the token")
                    .with_details(serde_json::json!({ "unavailable": unavailable })),
            )
        }
    }
}

fn rejected(reason: TokenRejection, detail: &str) -> Response<Body> {
    json(
        StatusCode::UNAUTHORIZED,
        &TokenRejected {
            valid: false,
            error: ErrorDetail {
                code: ErrorCode::InvalidToken.as_str().to_owned(),
                message: detail.to_owned(),
                details: Some(serde_json::json!({ "reason": reason.as_str() })),
            },
        },
    )
}

async fn call_verify(
    entry: &VerifierEntry,
    request: &VerifyRequest,
) -> Result<gatehouse_sdk::VerifiedToken, PluginError> {
    entry
        .call(
            "verifier",
            VERIFY_TIMEOUT,
            entry.plugin.verify(&entry.context, request),
        )
        .await
}
