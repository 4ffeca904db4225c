//! Claims → [`Identity`], with each preset's mapping and rules.

use gatehouse_sdk::Identity;
use serde_json::{Map, Value};

use crate::error::OidcError;
use crate::settings::{Preset, Settings};

/// Protocol claims that say nothing about the user: not copied into the
/// identity's attributes.
const PROTOCOL: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "at_hash",
    "c_hash",
    "azp",
    "auth_time",
    "jti",
    "sid",
    "typ",
    "acr",
    "amr",
    "session_state",
    "s_hash",
    "uti",
    "rh",
    "ver",
    "_claim_names",
    "_claim_sources",
];

/// A claim as text: strings as they are, numbers and booleans printed.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The ID token's claims with userinfo's merged in: userinfo adds and
/// replaces user claims, never the protocol ones (`sub` is checked equal
/// before).
pub(crate) fn merge(mut id: Map<String, Value>, userinfo: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in userinfo {
        if k != "sub" && !PROTOCOL.contains(&k.as_str()) {
            id.insert(k, v);
        }
    }
    id
}

/// The groups in `claim`: a list of strings (or one string); other entries
/// are skipped.
fn groups(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    match claims.get(claim) {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|g| match g {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// True when `_claim_names` says `claim` lives elsewhere (distributed
/// claims; Azure AD's groups overage).
fn overflowed(claims: &Map<String, Value>, claim: &str) -> bool {
    claims
        .get("_claim_names")
        .and_then(Value::as_object)
        .is_some_and(|names| names.contains_key(claim))
        || (claim == "groups" && claims.get("hasgroups").and_then(Value::as_bool) == Some(true))
}

/// The identity of verified, merged claims, by the settings' keys and the
/// preset's mapping.
pub(crate) fn identity(s: &Settings, claims: &Map<String, Value>) -> Result<Identity, OidcError> {
    if s.preset == Preset::Google
        && let Some(want) = &s.hosted_domain
    {
        // `hd` is only a hint in the request; the ID token's claim decides.
        let seen = claims.get("hd").and_then(Value::as_str);
        if seen.map(str::to_ascii_lowercase).as_deref() != Some(want.as_str()) {
            return Err(OidcError::HostedDomain {
                seen: seen.map(|d| crate::error::clean(d, 100)),
            });
        }
    }
    if !claims.contains_key(&s.groups_claim) && overflowed(claims, &s.groups_claim) {
        return Err(OidcError::GroupsOverage {
            claim: s.groups_claim.clone(),
        });
    }
    // An address the provider has not verified is no address to map on.
    // Not said: verified (many providers send only verified addresses);
    // said in any form but `true` or "true" (0, null, "yes"): unverified.
    let email_verified = match claims.get("email_verified") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(t)) => t == "true",
        Some(_) => false,
    };
    let email = text(claims.get("email")).filter(|_| email_verified);
    let uid = match text(claims.get(&s.id_key)) {
        Some(u) => u,
        // Azure AD v2.0 tokens carry the UPN as preferred_username when the
        // optional `upn` claim is not configured.
        None if s.preset == Preset::AzureAd && s.id_key == "upn" => {
            text(claims.get("preferred_username")).ok_or_else(|| OidcError::MissingClaim("upn".into()))?
        }
        None => return Err(OidcError::MissingClaim(s.id_key.clone())),
    };
    let username = match &s.username_key {
        Some(k) => text(claims.get(k)),
        None => None,
    }
    .or_else(|| match s.preset {
        // Google: the address's local part, as the platform names Google
        // users.
        Preset::Google => email
            .as_deref()
            .and_then(|e| e.split_once('@'))
            .map(|(local, _)| local.to_owned()),
        _ => None,
    })
    .or_else(|| text(claims.get("preferred_username")))
    .or_else(|| email.clone())
    .unwrap_or_else(|| uid.clone());
    let mut id = Identity::new(uid, username);
    id.email = email;
    id.first_name = text(claims.get("given_name"));
    id.last_name = text(claims.get("family_name"));
    id.groups = groups(claims, &s.groups_claim);
    for (k, v) in claims {
        if PROTOCOL.contains(&k.as_str()) || *k == s.groups_claim || (k == "email" && !email_verified) {
            continue;
        }
        let values: Vec<String> = match v {
            Value::Array(a) => a.iter().filter_map(|x| text(Some(x))).collect(),
            other => text(Some(other)).into_iter().collect(),
        };
        if !values.is_empty() {
            id.attributes.insert(k.clone(), values);
        }
    }
    Ok(id)
}
