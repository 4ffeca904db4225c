//! [`ApiError`]: every failure a client can see, mapped to a stable code and
//! HTTP status in one place.

use gatehouse_sdk::PluginError;
use gatehouse_sdk::proto::{ConfigErrorEntry, ErrorBody, ErrorCode, ErrorDetail};

use crate::config::ConfigErrors;
use crate::store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// Human text (never a secret).
    pub message: String,
    /// Structured details.
    pub details: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// Methods for an `Allow` header (405).
    pub allow: Option<&'static str>,
    /// Close the connection after answering (an unread body is left).
    pub close: bool,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            allow: None,
            close: false,
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// 405 with the allowed methods.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            ErrorCode::MethodNotAllowed,
            format!("method not allowed; use {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    /// 422 `invalid_config` with every error.
    pub fn invalid_config(errors: &ConfigErrors) -> Self {
        let list: &[ConfigErrorEntry] = &errors.0;
        Self::new(
            ErrorCode::InvalidConfig,
            format!("configuration refused: {}", errors.summary()),
        )
        .with_details(serde_json::json!({ "errors": list }))
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::new(ErrorCode::Conflict, m),
            StoreError::NotFound(m) => Self::new(ErrorCode::NotFound, m),
            StoreError::Backend(m) => {
                tracing::error!("store: {m}");
                Self::new(ErrorCode::BackendUnavailable, "the store is unavailable")
            }
        }
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::InvalidCredentials | PluginError::InvalidAssertion { .. } => {
                Self::new(ErrorCode::InvalidCredentials, "invalid credentials")
            }
            PluginError::Denied(m) => Self::new(ErrorCode::LoginDenied, m),
            PluginError::Unavailable(m) => Self::new(ErrorCode::BackendUnavailable, m),
            PluginError::BadRequest(m) => Self::new(ErrorCode::BadRequest, m),
            PluginError::Unsupported(m) => Self::new(ErrorCode::FlowMismatch, m),
            PluginError::InvalidToken { reason, detail } => Self::new(ErrorCode::InvalidToken, detail)
                .with_details(serde_json::json!({ "reason": reason.as_str() })),
            PluginError::Misconfigured(m) | PluginError::Internal(m) => Self::internal(m),
            other => Self::internal(other.to_string()),
        }
    }
}
