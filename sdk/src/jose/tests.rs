//! The issuer's key-keeping rules and ID-token checks, with documents served
//! from memory (the HTTP side is the SDK's, tested against real servers in
//! `tests/tests/jwt.rs` and `tests/tests/http.rs`).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::jose::publish::{PublicKey, jwks_document, public_jwk};
use crate::jose::*;

const ISS: &str = "https://idp.example.test";
const NOW: i64 = 2_000_000_000;

/// Serves documents by URL; counts requests per URL.
#[derive(Default)]
struct Docs {
    docs: Mutex<HashMap<String, Result<Vec<u8>, String>>>,
    hits: Mutex<HashMap<String, usize>>,
}

impl Docs {
    fn set(&self, url: &str, doc: Result<Value, &str>) {
        self.docs.lock().unwrap().insert(
            url.to_owned(),
            doc.map(|v| v.to_string().into_bytes()).map_err(str::to_owned),
        );
    }
    fn hits(&self, url: &str) -> usize {
        self.hits.lock().unwrap().get(url).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Fetcher for Docs {
    async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String> {
        *self.hits.lock().unwrap().entry(url.to_owned()).or_default() += 1;
        let doc = self.docs.lock().unwrap().get(url).cloned();
        let body = doc.unwrap_or_else(|| Err("connection refused".into()))?;
        if body.len() > limit {
            return Err("too large".into());
        }
        Ok(body)
    }
}

const JWKS: &str = "https://idp.example.test/keys";

fn discovery() -> Value {
    json!({"issuer": ISS, "jwks_uri": JWKS})
}

struct Signer(EcdsaKeyPair);

impl Signer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap())
    }
    fn jwks(&self, kid: &str) -> Value {
        jwks_document([public_jwk(PublicKey::of_ecdsa(&self.0).unwrap(), kid, None).unwrap()])
    }
    fn sign(&self, kid: &str, claims: &Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", enc(&json!({"alg": "ES256", "kid": kid})), enc(claims));
        let sig = self.0.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn served(signer: &Signer, kid: &str) -> Arc<Docs> {
    let docs = Arc::new(Docs::default());
    docs.set(
        &format!("{ISS}/.well-known/openid-configuration"),
        Ok(discovery()),
    );
    docs.set(JWKS, Ok(signer.jwks(kid)));
    docs
}

fn algs() -> BTreeSet<String> {
    jws::allowed_algorithms(&["ES256"]).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": ISS, "sub": "u1", "aud": "client-1", "exp": NOW + 60, "nonce": "n"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn a_failed_fetch_keeps_the_last_good_set_and_backs_off() {
    let rt = rt();
    let signer = Signer::new();
    let docs = served(&signer, "k1");
    let issuer = Issuer::new(format!("{ISS}/"), docs.clone(), IssuerOptions::default());
    assert_eq!(issuer.url(), ISS);
    assert!(issuer.due(Instant::now()), "no keys yet");
    rt.block_on(issuer.refresh()).unwrap();
    assert_eq!(issuer.keys().len(), 1);
    assert!(!issuer.due(Instant::now()), "fresh keys");

    docs.set(JWKS, Err("503 from the issuer"));
    let e = rt.block_on(issuer.refresh()).unwrap_err();
    assert_eq!(e.code(), "jwks_failed");
    assert!(e.to_string().contains("503 from the issuer"), "{e}");
    assert_eq!(issuer.keys().len(), 1, "the last good set stays");
    assert!(issuer.last_error().is_some());
    assert!(!issuer.due(Instant::now()), "backing off after a failure");

    // a set without a usable key never replaces a good one
    docs.set(JWKS, Ok(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})));
    assert!(rt.block_on(issuer.refresh()).is_err());
    assert_eq!(issuer.keys().len(), 1);

    // discovery must name the issuer itself
    docs.set(
        &format!("{ISS}/.well-known/openid-configuration"),
        Ok(json!({"issuer": "https://evil.example", "jwks_uri": JWKS})),
    );
    let e = rt.block_on(issuer.refresh()).unwrap_err();
    assert_eq!(e.code(), "discovery_failed");
    assert!(e.to_string().contains("another issuer"), "{e}");
}

#[test]
fn unknown_kids_refetch_at_most_once_per_interval() {
    let rt = rt();
    let old = Signer::new();
    let docs = served(&old, "old");
    let issuer = Issuer::new(
        ISS,
        docs.clone(),
        IssuerOptions::default().unknown_kid_refetch_interval(Duration::from_secs(3600)),
    );
    rt.block_on(issuer.refresh()).unwrap();
    assert_eq!(docs.hits(JWKS), 1);
    // the issuer rotates: a token with the new kid triggers one refetch
    let new = Signer::new();
    docs.set(JWKS, Ok(new.jwks("new")));
    let token = new.sign("new", &claims(json!({})));
    let parsed = jws::parse(&token, &algs()).unwrap();
    rt.block_on(issuer.verify_signature(&parsed)).unwrap();
    assert_eq!(docs.hits(JWKS), 2);
    // an unknown kid again within the interval: refused without a fetch
    let stranger = Signer::new();
    let token = stranger.sign("stranger", &claims(json!({})));
    let parsed = jws::parse(&token, &algs()).unwrap();
    let e = rt.block_on(issuer.verify_signature(&parsed)).unwrap_err();
    assert_eq!(
        e,
        SignatureError::Rejected(Reason::UnknownKey, format!("{ISS} has no matching key"))
    );
    assert_eq!(docs.hits(JWKS), 2, "rate limited");
    // a known kid with a bad signature is not an unknown key
    let forged = stranger.sign("new", &claims(json!({})));
    let parsed = jws::parse(&forged, &algs()).unwrap();
    let e = rt.block_on(issuer.verify_signature(&parsed)).unwrap_err();
    assert!(
        matches!(e, SignatureError::Rejected(Reason::BadSignature, _)),
        "{e:?}"
    );
}

#[test]
fn the_persisted_set_serves_a_restart_while_the_issuer_is_down() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(persisted_file_name(ISS));
    assert!(persisted_file_name(ISS).starts_with("jwks-https___idp"));
    let signer = Signer::new();
    let options = IssuerOptions::default().persist(Some(path.clone()));
    let first = Issuer::new(ISS, served(&signer, "k1"), options.clone());
    rt.block_on(first.refresh()).unwrap();
    assert!(path.exists());

    let down: Arc<Docs> = Arc::new(Docs::default());
    let second = Issuer::new(ISS, down.clone(), options);
    assert_eq!(second.keys().len(), 1, "loaded from disk, nothing fetched");
    let token = signer.sign("k1", &claims(json!({})));
    let parsed = jws::parse(&token, &algs()).unwrap();
    rt.block_on(second.verify_signature(&parsed)).unwrap();

    // nothing on disk and the issuer down: unavailable, not a refusal
    let third = Issuer::new(ISS, down, IssuerOptions::default());
    let e = rt.block_on(third.verify_signature(&parsed)).unwrap_err();
    assert!(
        matches!(&e, SignatureError::Unavailable(m) if m.contains("connection refused")),
        "{e:?}"
    );
}

#[test]
fn id_tokens_are_checked_for_issuer_audience_azp_and_time() {
    let rt = rt();
    let signer = Signer::new();
    let issuer = Issuer::new(ISS, served(&signer, "k1"), IssuerOptions::default());
    let algs = algs();
    let check = IdTokenCheck::new("client-1", &algs, NOW).leeway(5);
    let verify = |c: Value| rt.block_on(verify_id_token(&issuer, &signer.sign("k1", &c), &check));

    let ok = verify(claims(json!({}))).unwrap();
    assert_eq!(ok["sub"], "u1");
    assert_eq!(ok["nonce"], "n", "the nonce is the caller's to check");
    assert!(verify(claims(json!({"aud": ["other", "client-1"], "azp": "client-1"}))).is_ok());

    let reason = |c: Value| match verify(c) {
        Err(SignatureError::Rejected(r, _)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(claims(json!({"aud": "other"}))), Reason::WrongAudience);
    assert_eq!(reason(claims(json!({"azp": "other"}))), Reason::WrongAudience);
    assert_eq!(
        reason(claims(json!({"iss": "https://evil.example"}))),
        Reason::WrongIssuer
    );
    assert_eq!(reason(claims(json!({"exp": NOW - 6}))), Reason::Expired);
    assert!(
        verify(claims(json!({"exp": NOW - 4}))).is_ok(),
        "within the leeway"
    );
    assert_eq!(reason(claims(json!({"nbf": NOW + 6}))), Reason::NotYetValid);
    assert_eq!(reason(claims(json!({"exp": "soon"}))), Reason::Malformed);
    // another key under the issuer's kid
    let other = Signer::new();
    let forged = other.sign("k1", &claims(json!({})));
    assert!(matches!(
        rt.block_on(verify_id_token(&issuer, &forged, &check)),
        Err(SignatureError::Rejected(Reason::BadSignature, _))
    ));
}

#[test]
fn the_allow_list_never_holds_none_or_hmac() {
    assert!(jws::allowed_algorithms(&["HS256"]).unwrap_err().contains("HMAC"));
    assert!(
        jws::allowed_algorithms(&["none"])
            .unwrap_err()
            .contains("refused")
    );
    assert!(jws::allowed_algorithms::<&str>(&[]).is_err());
    assert_eq!(jws::allowed_algorithms(&["RS256", "EdDSA"]).unwrap().len(), 2);
    for r in [Reason::Malformed, Reason::UnknownKey, Reason::WrongAudience] {
        assert!(!r.as_str().is_empty() && r.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    }
}

#[test]
fn failures_back_off_exponentially_and_keys_refresh_at_80_percent_of_the_ttl() {
    let rt = rt();
    let down = Arc::new(Docs::default());
    let issuer = Issuer::new(ISS, down, IssuerOptions::default());
    assert!(issuer.due(Instant::now()), "never fetched");
    // 1 failure: 0.5 s; 2 failures: 1 s; 3: 2 s; doubling up to 300 s
    for (failures, wait_ms) in [(1, 500), (2, 1000), (3, 2000)] {
        assert!(rt.block_on(issuer.refresh()).is_err());
        let at = Instant::now();
        assert!(!issuer.due(at), "{failures} failures: backing off");
        assert!(
            !issuer.due(at + Duration::from_millis(wait_ms - 200)),
            "{failures} failures: still backing off"
        );
        assert!(
            issuer.due(at + Duration::from_millis(wait_ms + 100)),
            "{failures} failures: due after {wait_ms} ms"
        );
    }
    for _ in 3..12 {
        assert!(rt.block_on(issuer.refresh()).is_err());
    }
    let at = Instant::now();
    assert!(!issuer.due(at + Duration::from_secs(299)));
    assert!(issuer.due(at + Duration::from_secs(301)));

    // good keys: due at 80% of the TTL, and a success ends the backoff
    let signer = Signer::new();
    let docs = served(&signer, "k1");
    let issuer = Issuer::new(
        ISS,
        docs.clone(),
        IssuerOptions::default().ttl(Duration::from_secs(100)),
    );
    docs.set(JWKS, Err("503"));
    assert!(rt.block_on(issuer.refresh()).is_err());
    docs.set(JWKS, Ok(signer.jwks("k1")));
    rt.block_on(issuer.refresh()).unwrap();
    let at = Instant::now();
    assert!(!issuer.due(at + Duration::from_secs(79)));
    assert!(issuer.due(at + Duration::from_secs(81)));
    // a zero TTL is due at once: no backoff after a success
    let issuer = Issuer::new(
        ISS,
        served(&signer, "k1"),
        IssuerOptions::default().ttl(Duration::ZERO),
    );
    rt.block_on(issuer.refresh()).unwrap();
    assert!(issuer.due(Instant::now()));
    // due keys are still used as they are: verifying never waits for a
    // fetch while there are keys (the background refresh does it)
    let docs = served(&signer, "k1");
    let issuer = Issuer::new(ISS, docs.clone(), IssuerOptions::default().ttl(Duration::ZERO));
    rt.block_on(issuer.refresh()).unwrap();
    let token = signer.sign("k1", &claims(json!({})));
    let parsed = jws::parse(&token, &algs()).unwrap();
    rt.block_on(issuer.verify_signature(&parsed)).unwrap();
    assert_eq!(docs.hits(JWKS), 1, "no fetch in the request path");
}

#[test]
fn a_zero_refetch_interval_refetches_for_every_unknown_kid() {
    let rt = rt();
    let signer = Signer::new();
    let docs = served(&signer, "k1");
    let issuer = Issuer::new(
        ISS,
        docs.clone(),
        IssuerOptions::default().unknown_kid_refetch_interval(Duration::ZERO),
    );
    rt.block_on(issuer.refresh()).unwrap();
    for (i, kid) in ["x1", "x2", "x3"].into_iter().enumerate() {
        let token = Signer::new().sign(kid, &claims(json!({})));
        let parsed = jws::parse(&token, &algs()).unwrap();
        assert!(matches!(
            rt.block_on(issuer.verify_signature(&parsed)),
            Err(SignatureError::Rejected(Reason::UnknownKey, _))
        ));
        assert_eq!(docs.hits(JWKS), i + 2, "{kid}");
    }
}

#[test]
fn documents_up_to_a_mebibyte_are_read() {
    let rt = rt();
    let signer = Signer::new();
    let docs = served(&signer, "k1");
    let url = format!("{ISS}/.well-known/openid-configuration");
    let issuer = Issuer::new(ISS, docs.clone(), IssuerOptions::default());
    let mut big = discovery();
    big["padding"] = json!("x".repeat(512 * 1024));
    docs.set(&url, Ok(big.clone()));
    rt.block_on(issuer.refresh()).unwrap();
    big["padding"] = json!("x".repeat(MAX_DOCUMENT));
    docs.set(&url, Ok(big));
    let e = rt.block_on(issuer.refresh()).unwrap_err();
    assert_eq!(e.code(), "discovery_failed");
    assert!(e.to_string().contains("too large"), "{e}");
    // Debug names the issuer, never its keys
    let shown = format!("{issuer:?}");
    assert!(shown.contains(ISS) && shown.contains("ttl"), "{shown}");
}
