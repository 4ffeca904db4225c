//! The verifier's rules with keys made here: two issuers whose key sets are
//! loaded from their persisted JWKS files (the issuers themselves are
//! unreachable), a fixed clock, and an attack per rule.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_sdk::{
    Clock, Context, PluginConfig, PluginError, TokenRejection, Verifier, VerifierFactory, VerifyRequest,
};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::{JwtFactory, persisted_keys_file};

const A: &str = "http://127.0.0.1:9/issuer-a";
const B: &str = "http://127.0.0.1:9/issuer-b";
const NOW: u64 = 2_000_000_000;

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }
}

fn pem(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .output()
        .expect("openssl");
    assert!(out.status.success());
    out.stdout
}

struct Keys {
    rsa: EncodingKey,
    rsa_pem: Vec<u8>,
    ec: EncodingKey,
}

fn keys() -> &'static (Keys, Keys) {
    static K: std::sync::OnceLock<(Keys, Keys)> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        let make = || {
            let rsa_pem = pem(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
            let ec_pem = pem(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
            Keys {
                rsa: EncodingKey::from_rsa_pem(&rsa_pem).unwrap(),
                rsa_pem,
                ec: EncodingKey::from_ec_pem(&ec_pem).unwrap(),
            }
        };
        (make(), make())
    })
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut j = Jwk::from_encoding_key(key, alg).unwrap();
    j.common.key_id = Some(kid.into());
    j
}

/// A verifier whose issuers' keys come from persisted files.
fn verifier(extra: serde_json::Value) -> (Arc<dyn Verifier>, Context, tempfile::TempDir) {
    let (a, b) = keys();
    let dir = tempfile::tempdir().unwrap();
    let write = |url: &str, set: JwkSet| {
        std::fs::write(
            dir.path().join(persisted_keys_file(url)),
            serde_json::to_vec(&set).unwrap(),
        )
        .unwrap();
    };
    write(
        A,
        JwkSet {
            keys: vec![
                jwk(&a.rsa, Algorithm::RS256, "a-rsa"),
                jwk(&a.ec, Algorithm::ES256, "a-ec"),
            ],
        },
    );
    write(
        B,
        JwkSet {
            keys: vec![jwk(&b.rsa, Algorithm::RS256, "b-rsa")],
        },
    );
    let ctx = Context::new("jwt-test")
        .with_clock(Arc::new(Fixed))
        .with_state_dir(dir.path());
    let mut settings = json!({
        "audience": "gitlab-ai-gateway",
        "issuers": [A, B],
        "leeway": "30s",
        "fetch_timeout": "1s",
        "unknown_kid_refetch_interval": "1h",
    });
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let v = JwtFactory
        .build(PluginConfig::new("jwt-test", settings).with_context(ctx.clone()))
        .unwrap();
    (v, ctx, dir)
}

fn claims(iss: &str) -> serde_json::Value {
    json!({
        "iss": iss, "sub": "user-1", "aud": ["gitlab-ai-gateway", "other"],
        "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW - 10,
        "scopes": ["duo_chat", "code_suggestions"]
    })
}

fn sign(key: &EncodingKey, alg: Algorithm, kid: &str, claims: &serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn check(
    v: &Arc<dyn Verifier>,
    ctx: &Context,
    token: &str,
    up: Option<&str>,
) -> Result<gatehouse_sdk::VerifiedToken, TokenRejection> {
    let mut req = VerifyRequest::new(token);
    req.unit_primitive = up.map(str::to_owned);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(v.verify(ctx, &req)) {
        Ok(t) => Ok(t),
        Err(PluginError::InvalidToken { reason, .. }) => Err(reason),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn good_tokens_verify_and_are_cached() {
    let rt = rt();
    let _g = rt.enter();
    let (a, _) = keys();
    let (v, ctx, _dir) = verifier(json!({}));
    for (key, alg, kid) in [
        (&a.rsa, Algorithm::RS256, "a-rsa"),
        (&a.ec, Algorithm::ES256, "a-ec"),
    ] {
        let t = sign(key, alg, kid, &claims(A));
        let ok = check(&v, &ctx, &t, Some("duo_chat")).unwrap();
        assert_eq!(ok.issuer, A);
        assert_eq!(ok.subject, "user-1");
        assert_eq!(ok.scopes, ["duo_chat", "code_suggestions"]);
        assert!(!ok.cached);
        let again = check(&v, &ctx, &t, Some("code_suggestions")).unwrap();
        assert!(again.cached, "second check is a cache hit");
        // a cache hit still checks scope and audience
        assert_eq!(
            check(&v, &ctx, &t, Some("self_hosted_models")).unwrap_err(),
            TokenRejection::MissingScope
        );
        let mut req = VerifyRequest::new(t.as_str());
        req.audience = Some("elsewhere".into());
        assert!(matches!(
            rt.block_on(v.verify(&ctx, &req)),
            Err(PluginError::InvalidToken {
                reason: TokenRejection::WrongAudience,
                ..
            })
        ));
    }
}

#[test]
fn attacks_are_refused_with_their_reason() {
    let rt = rt();
    let _g = rt.enter();
    let (a, b) = keys();
    let (v, ctx, _dir) = verifier(json!({}));
    let good = sign(&a.rsa, Algorithm::RS256, "a-rsa", &claims(A));
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());

    let mut cases: Vec<(&str, String, TokenRejection)> = vec![
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none"})), parts[1]),
            TokenRejection::UnsupportedAlgorithm,
        ),
        (
            "HS256 keyed with the RSA public key",
            sign(
                &EncodingKey::from_secret(&a.rsa_pem),
                Algorithm::HS256,
                "a-rsa",
                &claims(A),
            ),
            TokenRejection::UnsupportedAlgorithm,
        ),
        (
            "iss A, signed with B's key",
            sign(&b.rsa, Algorithm::RS256, "b-rsa", &claims(A)),
            TokenRejection::WrongIssuer,
        ),
        (
            "kid of another issuer's key, signed with A's",
            sign(&a.rsa, Algorithm::RS256, "b-rsa", &claims(A)),
            TokenRejection::UnknownKey,
        ),
        (
            "untrusted issuer",
            sign(&a.rsa, Algorithm::RS256, "a-rsa", &claims("https://evil.example")),
            TokenRejection::WrongIssuer,
        ),
        (
            "expired",
            sign(
                &a.rsa,
                Algorithm::RS256,
                "a-rsa",
                &json!({"iss": A, "aud": "gitlab-ai-gateway", "exp": NOW - 31}),
            ),
            TokenRejection::Expired,
        ),
        (
            "not yet valid",
            sign(
                &a.rsa,
                Algorithm::RS256,
                "a-rsa",
                &json!({"iss": A, "aud": "gitlab-ai-gateway", "exp": NOW + 600, "nbf": NOW + 31}),
            ),
            TokenRejection::NotYetValid,
        ),
        (
            "wrong audience",
            sign(
                &a.rsa,
                Algorithm::RS256,
                "a-rsa",
                &json!({"iss": A, "aud": "someone-else", "exp": NOW + 600}),
            ),
            TokenRejection::WrongAudience,
        ),
        (
            "missing audience",
            sign(
                &a.rsa,
                Algorithm::RS256,
                "a-rsa",
                &json!({"iss": A, "exp": NOW + 600}),
            ),
            TokenRejection::WrongAudience,
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(
                    &json!({"iss": A, "aud": "gitlab-ai-gateway", "exp": NOW + 9999, "scopes": ["everything"]})
                ),
                parts[2]
            ),
            TokenRejection::BadSignature,
        ),
        ("truncated", parts[..2].join("."), TokenRejection::Malformed),
        ("garbage", "not.a.jwt!".into(), TokenRejection::Malformed),
        (
            "oversized",
            format!("{}.{}.{}", parts[0], "A".repeat(20_000), parts[2]),
            TokenRejection::Malformed,
        ),
        (
            "duplicate claim",
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(format!(
                    r#"{{"iss":"{A}","aud":"gitlab-ai-gateway","exp":{},"exp":{}}}"#,
                    NOW + 1,
                    NOW + 9
                )),
                parts[2]
            ),
            TokenRejection::Malformed,
        ),
        (
            "embedded jwk is ignored",
            {
                let mut h = Header::new(Algorithm::RS256);
                h.kid = Some("evil".into());
                h.jwk = Some(jwk(&b.rsa, Algorithm::RS256, "evil"));
                jsonwebtoken::encode(&h, &claims(A), &b.rsa).unwrap()
            },
            TokenRejection::UnknownKey,
        ),
    ];
    // missing scope on an otherwise good token
    cases.push(("missing scope", good.clone(), TokenRejection::MissingScope));
    for (name, token, want) in cases {
        let up = if name == "missing scope" {
            Some("self_hosted_models")
        } else {
            Some("duo_chat")
        };
        let got = check(&v, &ctx, &token, up);
        assert_eq!(got.err(), Some(want), "{name}");
    }
}

#[test]
fn refused_settings() {
    let build = |s: serde_json::Value| JwtFactory.build(PluginConfig::new("t", s)).err();
    let base = json!({"audience": "x", "issuers": ["https://a.example"]});
    assert!(build(base.clone()).is_none());
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
    for (patch, needle) in [
        (json!({"algorithms": ["HS256"]}), "HMAC"),
        (json!({"algorithms": ["none"]}), "refused"),
        (json!({"issuers": ["http://a.example"]}), "plain http"),
        (json!({"issuers": []}), "at least one"),
        (json!({"audience": ""}), "audience"),
        (json!({"jwks_cache_ttl": "1s"}), "60s"),
        (json!({"leeway": "soon"}), "leeway"),
        (json!({"leeway": "601s"}), "at most 10m"),
        (json!({"issuers": ["https://"]}), "not an http(s) URL"),
        (json!({"issuers": ["ftp://a.example"]}), "not an http(s) URL"),
        (json!({"ca_file": "/nonexistent/ca.pem"}), "cannot read"),
        (json!({"ca_file": not_pem.path()}), "no certificate"),
    ] {
        let mut s = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            s[k] = v.clone();
        }
        match build(s) {
            Some(PluginError::Misconfigured(m)) => assert!(m.contains(needle), "{patch}: {m}"),
            other => panic!("{patch}: {other:?}"),
        }
    }
}

#[test]
fn no_keys_and_issuer_down_is_unavailable() {
    let rt = rt();
    let _g = rt.enter();
    let (a, _) = keys();
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::new("t")
        .with_clock(Arc::new(Fixed))
        .with_state_dir(dir.path());
    let v = JwtFactory
        .build(
            PluginConfig::new(
                "t",
                json!({"audience": "gitlab-ai-gateway", "issuers": [A], "fetch_timeout": "1s"}),
            )
            .with_context(ctx.clone()),
        )
        .unwrap();
    let t = sign(&a.rsa, Algorithm::RS256, "a-rsa", &claims(A));
    let r = rt.block_on(v.verify(&ctx, &VerifyRequest::new(t.as_str())));
    assert!(matches!(r, Err(PluginError::Unavailable(_))), "{r:?}");
}

/// A clock the test moves.
struct Stepped(std::sync::atomic::AtomicU64);

impl Clock for Stepped {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[test]
fn a_cached_token_expires_with_its_leeway() {
    let rt = rt();
    let _g = rt.enter();
    let (a, _) = keys();
    let (v, _, dir) = verifier(json!({}));
    let clock = Arc::new(Stepped(std::sync::atomic::AtomicU64::new(NOW)));
    let ctx = Context::new("jwt-test")
        .with_clock(clock.clone())
        .with_state_dir(dir.path());
    let at = |t: u64| clock.0.store(t, std::sync::atomic::Ordering::SeqCst);
    let mut c = claims(A);
    c["exp"] = json!(NOW + 100);
    let t = sign(&a.rsa, Algorithm::RS256, "a-rsa", &c);
    assert!(!check(&v, &ctx, &t, None).unwrap().cached);
    at(NOW + 50);
    assert!(check(&v, &ctx, &t, None).unwrap().cached);
    // past exp, inside the 30 s leeway: still served from the cache
    at(NOW + 120);
    assert!(check(&v, &ctx, &t, None).unwrap().cached);
    // past exp + leeway: refused, cache or not
    at(NOW + 131);
    assert_eq!(check(&v, &ctx, &t, None).unwrap_err(), TokenRejection::Expired);
    at(NOW + 10_000);
    assert_eq!(check(&v, &ctx, &t, None).unwrap_err(), TokenRejection::Expired);
}

#[test]
fn a_fresh_token_is_judged_with_the_leeway() {
    let rt = rt();
    let _g = rt.enter();
    let (a, _) = keys();
    let (v, ctx, _dir) = verifier(json!({}));
    let with = |k: &str, at: u64| {
        let mut c = claims(A);
        c[k] = json!(at);
        sign(&a.rsa, Algorithm::RS256, "a-rsa", &c)
    };
    // expired 20 s ago, leeway 30 s: accepted; 40 s ago: refused
    assert!(check(&v, &ctx, &with("exp", NOW - 20), None).is_ok());
    assert_eq!(
        check(&v, &ctx, &with("exp", NOW - 40), None).unwrap_err(),
        TokenRejection::Expired
    );
    // valid from 20 s on: accepted; from 40 s on: not yet
    assert!(check(&v, &ctx, &with("nbf", NOW + 20), None).is_ok());
    assert_eq!(
        check(&v, &ctx, &with("nbf", NOW + 40), None).unwrap_err(),
        TokenRejection::NotYetValid
    );
}

#[test]
fn the_plugin_offers_the_jwt_verifier_type() {
    use gatehouse_sdk::Plugin as _;
    assert_eq!(super::JwtPlugin.name(), "jwt");
    let factories = super::JwtPlugin.verifiers();
    assert_eq!(factories.len(), 1);
    assert_eq!(factories[0].type_name(), "jwt");
    let schema = factories[0].config_schema();
    assert_eq!(schema["required"], json!(["audience", "issuers"]));
    assert_eq!(schema["properties"]["leeway"]["type"], "string");
}

#[test]
fn plain_http_issuers_only_on_loopback_or_with_a_danger_setting() {
    let build = |issuer: &str, extra: serde_json::Value, ctx: Context| {
        let mut s = json!({"audience": "x", "issuers": [issuer]});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        JwtFactory
            .build(PluginConfig::new("t", s).with_context(ctx))
            .err()
    };
    let plain = Context::new("t");
    for ok in [
        "http://127.0.0.1:9/a",
        "http://localhost:9/a",
        "http://[::1]:9/a",
        "http://localhost/a",
        "http://LOCALHOST/a",
        "http://127.0.0.2/a",
        "http://[::1]/a",
    ] {
        assert!(build(ok, json!({}), plain.clone()).is_none(), "{ok}");
    }
    // hosts that only start like a loopback name are elsewhere
    for far in [
        "http://a.example/",
        "http://localhost.evil.example/a",
        "http://127.0.0.1.evil.example/a",
        "http://127.0.0.1@evil.example/a",
        "http://localhost:9@evil.example/a",
        "http://[::1]@evil.example/a",
        "http://[::2]/a",
        "http://evil.example/127.0.0.1",
    ] {
        match build(far, json!({}), plain.clone()) {
            Some(PluginError::Misconfigured(m)) => assert!(m.contains("plain http"), "{far}: {m}"),
            other => panic!("{far}: {other:?}"),
        }
    }
    // either danger switch lets them through: the verifier's own, or [http]'s
    assert!(
        build(
            "http://a.example/",
            json!({"danger_allow_http_issuers": true}),
            plain
        )
        .is_none()
    );
    let danger =
        Context::new("t").with_http(gatehouse_sdk::HttpSettings::default().with_danger_allow_http(true));
    assert!(build("http://a.example/", json!({}), danger).is_none());
}

#[test]
fn settings_limits_are_inclusive() {
    let build = |patch: serde_json::Value| {
        let mut s = json!({"audience": "x", "issuers": ["https://a.example"]});
        for (k, v) in patch.as_object().unwrap() {
            s[k] = v.clone();
        }
        JwtFactory.build(PluginConfig::new("t", s)).err()
    };
    for ok in [
        json!({"jwks_cache_ttl": "60s"}),
        json!({"jwks_cache_ttl": "1m"}),
        json!({"leeway": "600s"}),
        json!({"leeway": "10m"}),
        json!({"leeway": "0s"}),
    ] {
        assert!(build(ok.clone()).is_none(), "{ok}");
    }
    for (bad, needle) in [
        (json!({"jwks_cache_ttl": "59s"}), "60s"),
        (json!({"leeway": "10m1s"}), "at most 10m"),
        (json!({"leeway": "1h"}), "at most 10m"),
    ] {
        match build(bad.clone()) {
            Some(PluginError::Misconfigured(m)) => assert!(m.contains(needle), "{bad}: {m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn the_default_cache_keeps_many_tokens() {
    let rt = rt();
    let _g = rt.enter();
    let (a, _) = keys();
    let (v, ctx, _dir) = verifier(json!({}));
    let tokens: Vec<String> = (0..5)
        .map(|i| {
            let mut c = claims(A);
            c["sub"] = json!(format!("user-{i}"));
            sign(&a.rsa, Algorithm::RS256, "a-rsa", &c)
        })
        .collect();
    for t in &tokens {
        assert!(!check(&v, &ctx, t, None).unwrap().cached);
    }
    for t in &tokens {
        assert!(
            check(&v, &ctx, t, None).unwrap().cached,
            "every one is still cached"
        );
    }
}

/// A plain-http issuer on loopback serving discovery and `jwks`; counts
/// the JWKS requests.
fn serve_issuer(jwks: Vec<u8>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let iss = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (url, count) = (iss.clone(), Arc::clone(&hits));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let (status, body) = match head.split_whitespace().nth(1) {
                Some("/.well-known/openid-configuration") => (
                    "200 OK",
                    json!({"issuer": url, "jwks_uri": format!("{url}/jwks")})
                        .to_string()
                        .into_bytes(),
                ),
                Some("/jwks") => {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    ("200 OK", jwks.clone())
                }
                _ => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    (iss, hits)
}

#[test]
fn keys_are_fetched_in_the_background_before_any_token() {
    let (a, _) = keys();
    let jwks = serde_json::to_vec(&JwkSet {
        keys: vec![jwk(&a.rsa, Algorithm::RS256, "a-rsa")],
    })
    .unwrap();
    let (iss, hits) = serve_issuer(jwks);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::new("t")
        .with_clock(Arc::new(Fixed))
        .with_state_dir(dir.path());
    let v = JwtFactory
        .build(
            PluginConfig::new(
                "t",
                json!({"audience": "gitlab-ai-gateway", "issuers": [iss], "fetch_timeout": "2s"}),
            )
            .with_context(ctx.clone()),
        )
        .unwrap();
    // nothing is verified yet: the refresher fetches on its own, through
    // the SDK's client
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while hits.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "no background key fetch");
        std::thread::sleep(Duration::from_millis(20));
    }
    let persisted = dir.path().join(persisted_keys_file(&iss));
    while !persisted.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fetched keys were not persisted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = sign(&a.rsa, Algorithm::RS256, "a-rsa", &claims(&iss));
    let ok = check(&v, &ctx, &t, Some("duo_chat")).unwrap();
    assert_eq!(ok.issuer, iss);
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "verified with the fetched keys"
    );
}
