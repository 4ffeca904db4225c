//! Parsing a compact JWS strictly: three base64url parts, a header whose
//! `alg` is on the allow-list (never `none`, never HMAC), no unknown
//! `crit`, JSON without duplicate keys. `jku`, `x5u`, `jwk` and `x5c`
//! headers are ignored: keys come only from the issuer's discovered JWKS.

use std::borrow::Cow;
use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_sdk::TokenRejection;
use jsonwebtoken::Algorithm;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// The largest token accepted (bytes).
pub(crate) const MAX_TOKEN: usize = 16 * 1024;

/// A token split and decoded, not yet verified.
pub(crate) struct Parsed<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// `header.payload`, the signed bytes.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: &'a str,
}

/// A refusal with its reason.
pub(crate) type Refusal = (TokenRejection, String);

fn malformed(why: impl Into<String>) -> Refusal {
    (TokenRejection::Malformed, why.into())
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

/// Splits and checks a token.
pub(crate) fn parse<'a>(token: &'a str, allowed: &BTreeSet<String>) -> Result<Parsed<'a>, Refusal> {
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
            TokenRejection::UnsupportedAlgorithm,
            format!("algorithm {alg_name:?} is not accepted"),
        ));
    }
    let alg: Algorithm = alg_name.parse().map_err(|_| {
        (
            TokenRejection::UnsupportedAlgorithm,
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
        return Err((TokenRejection::BadSignature, "the token is not signed".into()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn allowed() -> BTreeSet<String> {
        ["RS256", "ES256"].iter().map(|s| (*s).to_owned()).collect()
    }

    fn reason(token: &str) -> TokenRejection {
        match parse(token, &allowed()) {
            Err((r, _)) => r,
            Ok(_) => panic!("accepted {token}"),
        }
    }

    #[test]
    fn refuses_bad_shapes_and_algorithms() {
        let p = b64(r#"{"sub":"x"}"#);
        assert_eq!(reason("abc"), TokenRejection::Malformed);
        assert_eq!(reason("a.b.c.d"), TokenRejection::Malformed);
        assert_eq!(
            reason(&format!("{}.{p}.sig", b64("not json"))),
            TokenRejection::Malformed
        );
        assert_eq!(
            reason(&format!("{}.{p}.", b64(r#"{"alg":"none"}"#))),
            TokenRejection::UnsupportedAlgorithm
        );
        assert_eq!(
            reason(&format!("{}.{p}.x", b64(r#"{"alg":"NONE"}"#))),
            TokenRejection::UnsupportedAlgorithm
        );
        assert_eq!(
            reason(&format!("{}.{p}.x", b64(r#"{"alg":"HS256"}"#))),
            TokenRejection::UnsupportedAlgorithm
        );
        assert_eq!(
            reason(&format!("{}.{p}.", b64(r#"{"alg":"RS256"}"#))),
            TokenRejection::BadSignature
        );
        assert_eq!(
            reason(&format!(
                "{}.{p}.x",
                b64(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#)
            )),
            TokenRejection::Malformed
        );
        assert_eq!(
            reason(&format!("{}.{p}.x", b64(r#"{"alg":"RS256","alg":"none"}"#))),
            TokenRejection::Malformed,
            "duplicate header keys"
        );
        let dup = b64(r#"{"sub":"a","sub":"b"}"#);
        assert_eq!(
            reason(&format!("{}.{dup}.x", b64(r#"{"alg":"RS256"}"#))),
            TokenRejection::Malformed
        );
        assert_eq!(reason(&"a".repeat(MAX_TOKEN + 1)), TokenRejection::Malformed);
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
