//! The protocol's pure parts: random values, PKCE, the callback
//! parameters, the token response, `at_hash`. No I/O here, so each part is
//! unit-tested and fuzzed on its own.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_sdk::jose::Algorithm;
use serde_json::Value;

use crate::error::{OidcError, clean};

/// The largest token endpoint or userinfo answer read (bytes).
pub const MAX_RESPONSE: usize = 64 * 1024;
/// The longest authorization code taken from a callback.
pub const MAX_CODE: usize = 4096;

/// `bytes` random bytes, base64url (no padding).
pub fn random_token(bytes: usize) -> Result<String, OidcError> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| OidcError::Unavailable("no system randomness".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// A form body (or query) of `pairs`, `application/x-www-form-urlencoded`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Form-encodes one value (client id and secret before HTTP Basic, RFC 6749
/// §2.3.1).
pub fn form_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// `base` with `pairs` appended to its query (kept as it was otherwise).
pub fn with_query(base: &str, pairs: &[(&str, &str)]) -> Result<String, OidcError> {
    let mut url =
        url::Url::parse(base).map_err(|e| OidcError::Unavailable(format!("bad endpoint URL: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}

/// What the browser brought back.
#[derive(Debug, PartialEq, Eq)]
pub enum Callback<'a> {
    /// A code (and the issuer, when the provider names it, RFC 9207).
    Code {
        /// The authorization code.
        code: &'a str,
        /// `iss`, when present.
        iss: Option<&'a str>,
    },
    /// The provider's error answer.
    Error(OidcError),
}

/// Reads the callback parameters: an `error` wins (the provider refused);
/// otherwise a `code` is required.
pub fn callback(params: &BTreeMap<String, String>) -> Result<Callback<'_>, OidcError> {
    if let Some(error) = params.get("error") {
        let error = clean(error, 64);
        let description = params
            .get("error_description")
            .map(|d| clean(d, 200))
            .filter(|d| !d.is_empty());
        return Ok(Callback::Error(OidcError::Provider {
            error: if error.is_empty() {
                "unknown_error".into()
            } else {
                error
            },
            description,
        }));
    }
    let code = params
        .get("code")
        .map(String::as_str)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OidcError::BadCallback("the callback has no code".into()))?;
    if code.len() > MAX_CODE {
        return Err(OidcError::BadCallback("the code is too long".into()));
    }
    Ok(Callback::Code {
        code,
        iss: params.get("iss").map(String::as_str),
    })
}

/// The parts of a token response this client uses.
#[derive(Debug)]
pub struct TokenResponse {
    /// The access token (for userinfo and `at_hash`).
    pub access_token: String,
    /// The ID token.
    pub id_token: String,
}

/// Reads a token endpoint answer: a 2xx JSON object with a bearer
/// `access_token` and an `id_token`; an OAuth error object otherwise.
pub fn token_response(status: u16, body: &[u8]) -> Result<TokenResponse, OidcError> {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let obj = value.as_ref().and_then(Value::as_object);
    if !(200..300).contains(&status) {
        if let Some(error) = obj.and_then(|o| o.get("error")).and_then(Value::as_str) {
            let error = clean(error, 64);
            return Err(OidcError::TokenEndpoint {
                error: if error.is_empty() {
                    "unknown_error".into()
                } else {
                    error
                },
                description: obj
                    .and_then(|o| o.get("error_description"))
                    .and_then(Value::as_str)
                    .map(|d| clean(d, 200))
                    .filter(|d| !d.is_empty()),
            });
        }
        return Err(OidcError::Unavailable(format!(
            "the token endpoint answered HTTP status {status}"
        )));
    }
    let obj = obj.ok_or_else(|| OidcError::Unavailable("the token response is not a JSON object".into()))?;
    let string = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let access_token = string("access_token")
        .ok_or_else(|| OidcError::Unavailable("the token response has no access_token".into()))?;
    match string("token_type") {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        _ => {
            return Err(OidcError::Unavailable(
                "the token response's token_type is not Bearer".into(),
            ));
        }
    }
    let id_token = string("id_token").ok_or_else(|| {
        OidcError::Unavailable("the token response has no id_token (is \"openid\" in the scope?)".into())
    })?;
    Ok(TokenResponse {
        access_token: access_token.to_owned(),
        id_token: id_token.to_owned(),
    })
}

/// The `at_hash` of an access token for an ID token signed with `alg`
/// (OIDC Core §3.1.3.6): the left half of the hash the algorithm uses,
/// base64url. `None` for an algorithm without one.
pub fn at_hash(alg: Algorithm, access_token: &str) -> Option<String> {
    let hash = match alg {
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => &digest::SHA256,
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => &digest::SHA384,
        // Ed25519 signs with SHA-512
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => &digest::SHA512,
        _ => return None,
    };
    let d = digest::digest(hash, access_token.as_bytes());
    let d = d.as_ref();
    Some(URL_SAFE_NO_PAD.encode(&d[..d.len() / 2]))
}
