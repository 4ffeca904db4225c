//! Parsing a compact JWS strictly: three base64url parts, a header whose
//! `alg` is on the allow-list (never `none`, never HMAC), no unknown
//! `crit`, JSON without duplicate keys. `jku`, `x5u`, `jwk` and `x5c`
//! headers are ignored: keys come only from the issuer's discovered JWKS.

use std::borrow::Cow;
use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::jose::Reason;

/// The largest token accepted (bytes).
pub const MAX_TOKEN: usize = 16 * 1024;

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The header's `alg`, one of the allowed ones.
    pub alg: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The payload (unique keys).
    pub claims: Map<String, Value>,
    /// `header.payload`, the signed bytes.
    pub signing_input: &'a str,
    /// The signature, base64url.
    pub signature: &'a str,
}

/// A refusal with its reason and a message for the caller (never the
/// token itself).
pub type Refusal = (Reason, String);

fn malformed(why: impl Into<String>) -> Refusal {
    (Reason::Malformed, why.into())
}

/// A JSON object whose keys are unique (RFC 7515 §5.2: a JWS with duplicate
/// header names must be rejected; the same holds here for claims, which
/// parsers disagree on otherwise).
struct Strict(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Strict, A::Error> {
                let mut out = Map::new();
                while let Some(k) = m.next_key::<String>()? {
                    if out.contains_key(&k) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    let v: Value = m.next_value()?;
                    out.insert(k, v);
                }
                Ok(Strict(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON object key, borrowed from the input when it has no escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The protected header: only the parameters this verifier reads are kept
/// (others are skipped unparsed), every name must be unique.
#[derive(Default)]
struct Header {
    alg: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

impl<'de> serde::Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Header, A::Error> {
                let mut h = Header::default();
                let mut seen: Vec<Name<'de>> = Vec::new();
                while let Some(k) = m.next_key::<Name<'de>>()? {
                    if seen.iter().any(|s| s.0 == k.0) {
                        return Err(de::Error::custom(format!("duplicate key {:?}", k.0)));
                    }
                    match &*k.0 {
                        "alg" => h.alg = Some(m.next_value()?),
                        "kid" => h.kid = Some(m.next_value()?),
                        "crit" => h.crit = Some(m.next_value()?),
                        _ => {
                            m.next_value::<de::IgnoredAny>()?;
                        }
                    }
                    seen.push(k);
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

fn json_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice::<T>(&bytes)
        .map_err(|e| malformed(format!("the {what} is not a JSON object: {e}")))
}

/// The header parameters this verifier understands (for `crit`).
const UNDERSTOOD: &[&str] = &["alg", "kid", "typ", "cty"];

/// Splits and checks a token: three parts, a header with an allowed `alg`
/// (`none` never is), understood `crit` entries only, a string `kid`, a
/// payload object without duplicate keys.
pub fn parse<'a>(token: &'a str, allowed: &BTreeSet<String>) -> Result<Parsed<'a>, Refusal> {
    if token.len() > MAX_TOKEN {
        return Err(malformed(format!("the token is longer than {MAX_TOKEN} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("a JWT has three dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() {
        return Err(malformed("empty header or payload"));
    }
    let header: Header = json_part(h, "header")?;
    let alg_name = header
        .alg
        .as_ref()
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("the header has no alg"))?;
    if alg_name.eq_ignore_ascii_case("none") || !allowed.contains(alg_name) {
        return Err((
            Reason::UnsupportedAlgorithm,
            format!("algorithm {alg_name:?} is not accepted"),
        ));
    }
    let alg: Algorithm = alg_name.parse().map_err(|_| {
        (
            Reason::UnsupportedAlgorithm,
            format!("algorithm {alg_name:?} is not accepted"),
        )
    })?;
    if let Some(crit) = &header.crit {
        let list = crit
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| malformed("crit must be a non-empty array"))?;
        for c in list {
            let name = c
                .as_str()
                .ok_or_else(|| malformed("crit entries must be strings"))?;
            if !UNDERSTOOD.contains(&name) {
                return Err(malformed(format!("critical header {name:?} is not understood")));
            }
        }
    }
    let kid = match header.kid {
        None => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => return Err(malformed("kid must be a string")),
    };
    if s.is_empty() {
        return Err((Reason::BadSignature, "the token is not signed".into()));
    }
    let claims = json_part::<Strict>(p, "payload")?.0;
    Ok(Parsed {
        alg,
        kid,
        claims,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: s,
    })
}

/// Checks a list of algorithm names against the allow-list: asymmetric
/// JWS algorithms only (RS*, PS*, ES256, ES384, EdDSA); `none` and the HMAC
/// algorithms are refused, so a public key can never act as a shared
/// secret. At least one is needed.
pub fn allowed_algorithms<S: AsRef<str>>(names: &[S]) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for a in names {
        match a.as_ref() {
            a @ ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "EdDSA") => {
                out.insert(a.to_owned());
            }
            a @ ("HS256" | "HS384" | "HS512") => {
                return Err(format!(
                    "{a} is refused: an HMAC algorithm would let a public key act as a shared secret"
                ));
            }
            other => return Err(format!("unknown or refused algorithm {other:?}")),
        }
    }
    if out.is_empty() {
        return Err("at least one algorithm is needed".into());
    }
    Ok(out)
}

/// Checks `exp` (required, numeric) and `nbf` (optional) against `now`
/// (Unix seconds) with `leeway` seconds either way; the `exp`.
pub fn check_times(claims: &Map<String, Value>, now: i64, leeway: i64) -> Result<i64, Refusal> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| malformed("the token has no numeric exp"))?;
    if exp.saturating_add(leeway) < now {
        return Err((Reason::Expired, "the token has expired".into()));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_i64().ok_or_else(|| malformed("nbf is not a number"))?;
        if nbf.saturating_sub(leeway) > now {
            return Err((Reason::NotYetValid, "the token is not valid yet".into()));
        }
    }
    Ok(exp)
}

/// A claim that is one string or a list of strings (`aud`, `scopes`), as a
/// list; `None` when absent or of another shape.
pub fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn allowed() -> BTreeSet<String> {
        ["RS256", "ES256"].iter().map(|s| (*s).to_owned()).collect()
    }

    fn reason(token: &str) -> Reason {
        match parse(token, &allowed()) {
            Err((r, _)) => r,
            Ok(_) => panic!("accepted {token}"),
        }
    }

    #[test]
    fn refuses_bad_shapes_and_algorithms() {
        let p = b64(r#"{"sub":"x"}"#);
        assert_eq!(reason("abc"), Reason::Malformed);
        assert_eq!(reason("a.b.c.d"), Reason::Malformed);
        assert_eq!(reason(&format!("{}.{p}.sig", b64("not json"))), Reason::Malformed);
        assert_eq!(
            reason(&format!("{}.{p}.", b64(r#"{"alg":"none"}"#))),
            Reason::UnsupportedAlgorithm
        );
        assert_eq!(
            reason(&format!("{}.{p}.x", b64(r#"{"alg":"NONE"}"#))),
            Reason::UnsupportedAlgorithm
        );
        assert_eq!(
            reason(&format!("{}.{p}.x", b64(r#"{"alg":"HS256"}"#))),
            Reason::UnsupportedAlgorithm
        );
        assert_eq!(
            reason(&format!("{}.{p}.", b64(r#"{"alg":"RS256"}"#))),
            Reason::BadSignature
        );
        assert_eq!(
            reason(&format!(
                "{}.{p}.x",
                b64(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#)
            )),
            Reason::Malformed
        );
        assert_eq!(
            reason(&format!("{}.{p}.x", b64(r#"{"alg":"RS256","alg":"none"}"#))),
            Reason::Malformed,
            "duplicate header keys"
        );
        let dup = b64(r#"{"sub":"a","sub":"b"}"#);
        assert_eq!(
            reason(&format!("{}.{dup}.x", b64(r#"{"alg":"RS256"}"#))),
            Reason::Malformed
        );
        assert_eq!(reason(&"a".repeat(MAX_TOKEN + 1)), Reason::Malformed);
    }

    #[test]
    fn times_are_inclusive_at_the_leeway() {
        let at = |k: &str, v: i64| {
            let mut c = Map::new();
            c.insert("exp".into(), Value::from(1_000));
            c.insert(k.into(), Value::from(v));
            check_times(&c, 500, 30).map_err(|(r, _)| r)
        };
        // exp 470 + 30 leeway: still good at 500, a second earlier is not
        assert_eq!(at("exp", 470), Ok(470));
        assert_eq!(at("exp", 469), Err(Reason::Expired));
        // nbf 530 - 30 leeway: good from 500 on, a second later is not yet
        assert_eq!(at("nbf", 530), Ok(1_000));
        assert_eq!(at("nbf", 531), Err(Reason::NotYetValid));
        assert_eq!(at("nbf", i64::MIN), Ok(1_000), "no overflow");
        assert_eq!(at("exp", i64::MAX), Ok(i64::MAX), "no overflow");
        let mut c = Map::new();
        c.insert("exp".into(), Value::from("soon"));
        assert_eq!(
            check_times(&c, 500, 30).map_err(|(r, _)| r),
            Err(Reason::Malformed)
        );
        assert_eq!(
            check_times(&Map::new(), 500, 30).map_err(|(r, _)| r),
            Err(Reason::Malformed)
        );
    }

    #[test]
    fn an_empty_header_or_payload_is_named() {
        for t in [".e30.sig", "e30..sig", "..sig"] {
            match parse(t, &allowed()) {
                Err((Reason::Malformed, m)) => assert_eq!(m, "empty header or payload", "{t}"),
                other => panic!("{t}: {other:?}"),
            }
        }
    }

    #[test]
    fn json_errors_say_what_was_expected() {
        let message = |token: &str| match parse(token, &allowed()) {
            Err((Reason::Malformed, m)) => m,
            other => panic!("{token}: {other:?}"),
        };
        let h = b64(r#"{"alg":"RS256"}"#);
        let m = message(&format!("{h}.{}.x", b64("[1]")));
        assert!(
            m.contains("payload") && m.contains("expected a JSON object"),
            "{m}"
        );
        let m = message(&format!("{}.{}.x", b64("[1]"), b64("{}")));
        assert!(
            m.contains("header") && m.contains("expected a JSON object"),
            "{m}"
        );
    }

    /// A well-formed RS256 token of exactly `len` bytes (the signature
    /// part takes up the slack).
    fn token_of_len(len: usize) -> String {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64(&format!(
            r#"{{"sub":"x","pad":"{}"}}"#,
            "a".repeat(len * 3 / 4 - 200)
        ));
        let sig = "s".repeat(len - h.len() - p.len() - 2);
        let t = format!("{h}.{p}.{sig}");
        assert_eq!(t.len(), len);
        t
    }

    #[test]
    fn the_size_limit_is_exactly_max_token() {
        assert_eq!(MAX_TOKEN, 16 * 1024);
        for len in [1024, 8 * 1024, 16 * 1024] {
            assert!(parse(&token_of_len(len), &allowed()).is_ok(), "{len}");
        }
        for len in [16 * 1024 + 1, 16 * 1024 + 2, 64 * 1024] {
            match parse(&token_of_len(len), &allowed()) {
                Err((Reason::Malformed, m)) => assert!(m.contains("longer than"), "{m}"),
                Err(other) => panic!("{len}: {other:?}"),
                Ok(_) => panic!("{len} bytes accepted"),
            }
        }
    }

    #[test]
    fn crit_must_list_understood_parameters() {
        let p = b64(r#"{"sub":"x"}"#);
        let with = |header: &str| {
            parse(&format!("{}.{p}.c2ln", b64(header)), &allowed())
                .map(drop)
                .map_err(|(r, _)| r)
        };
        assert!(with(r#"{"alg":"RS256","kid":"k","crit":["kid"]}"#).is_ok());
        for bad in [
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","crit":"kid"}"#,
            r#"{"alg":"RS256","crit":[1]}"#,
            r#"{"alg":"RS256","crit":["kid","b64"]}"#,
        ] {
            assert_eq!(with(bad), Err(Reason::Malformed), "{bad}");
        }
    }

    #[test]
    fn parses_a_good_token() {
        let t = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"ES256","kid":"k1","jku":"http://evil"}"#),
            b64(r#"{"sub":"x"}"#)
        );
        let p = parse(&t, &allowed()).unwrap();
        assert_eq!(p.alg, Algorithm::ES256);
        assert_eq!(p.kid.as_deref(), Some("k1"));
        assert_eq!(p.claims["sub"], "x");
        assert_eq!(p.signature, "c2ln");
    }
}
