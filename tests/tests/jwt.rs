//! The `jwt` verifier against real OpenID providers (`oidc-provider`,
//! tests/peers/oidc): discovery, two issuers, key rotation, issuer outages,
//! persisted keys, and the attack suite — through the socket.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_e2e::{Daemon, Setup, oidc_rotate, oidc_start, oidc_start_tls, oidc_stop, oidc_token};
use serde_json::{Value, json};

/// Stops the named provider instances when a test ends, however it ends.
struct Instances(Vec<&'static str>);
impl Drop for Instances {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::panic::catch_unwind(|| oidc_stop(n));
        }
    }
}

fn verifier(issuers: &[&str]) -> Setup {
    let list: Vec<String> = issuers.iter().map(|i| format!("{i:?}")).collect();
    Setup::with_body(&format!(
        r#"
[[verifiers]]
name = "cloud-connector"
type = "jwt"
[verifiers.settings]
audience = "gitlab-ai-gateway"
issuers = [{}]
leeway = "5s"
"#,
        list.join(", ")
    ))
}

async fn verify(d: &Daemon, token: &str, up: Option<&str>) -> (u16, Value) {
    let mut body = json!({"token": token});
    if let Some(up) = up {
        body["unit_primitive"] = up.into();
    }
    let a = d.client().await.post("/v1/tokens/verify", &body).await.unwrap();
    (a.status, a.value())
}

fn reason(v: &Value) -> String {
    v["error"]["details"]["reason"].as_str().unwrap_or("?").to_owned()
}

#[tokio::test]
async fn two_issuers_discovered_rs256_and_es256() {
    let _i = Instances(vec!["jwt-a", "jwt-b", "jwt-c"]);
    let a = oidc_start("jwt-a", 19101);
    let b = oidc_start("jwt-b", 19102);
    let _c = oidc_start("jwt-c", 19103);
    let d = Daemon::start(verifier(&[&a, &b]));
    for (inst, iss) in [("jwt-a", &a), ("jwt-b", &b)] {
        for alg in ["RS256", "ES256"] {
            let t = oidc_token(
                inst,
                &[
                    "--alg",
                    alg,
                    "--scopes",
                    "duo_chat code_suggestions",
                    "--sub",
                    "user-7",
                ],
            );
            let (s, v) = verify(&d, &t, Some("duo_chat")).await;
            assert_eq!(s, 200, "{inst} {alg}: {v}");
            assert_eq!(v["issuer"], iss.as_str());
            assert_eq!(v["subject"], "user-7");
            assert_eq!(v["scopes"], json!(["duo_chat", "code_suggestions"]));
            assert_eq!(v["audience"], json!(["gitlab-ai-gateway"]));
            assert!(v["expires_at"].as_u64().unwrap() > 0);
            // second time: a cache hit, still checked for the scope
            let (s, _) = verify(&d, &t, Some("code_suggestions")).await;
            assert_eq!(s, 200);
            let (s, v) = verify(&d, &t, Some("self_hosted_models")).await;
            assert_eq!((s, reason(&v).as_str()), (401, "missing_scope"));
        }
    }
    // an issuer the verifier does not trust
    let t = oidc_token("jwt-c", &["--scopes", "duo_chat"]);
    let (s, v) = verify(&d, &t, None).await;
    assert_eq!((s, reason(&v).as_str()), (401, "wrong_issuer"), "{v}");
    // a token for another audience
    let t = oidc_token("jwt-a", &["--aud", "someone-else", "--scopes", "duo_chat"]);
    let (s, v) = verify(&d, &t, Some("duo_chat")).await;
    assert_eq!((s, reason(&v).as_str()), (401, "wrong_audience"));
    // metrics count hits and misses
    let m = String::from_utf8(d.client().await.get("/v1/metrics").await.unwrap().body.to_vec()).unwrap();
    assert!(
        m.contains("gatehouse_token_cache_total{verifier=\"cloud-connector\",result=\"hit\"}"),
        "{m}"
    );
    assert!(
        m.contains("gatehouse_token_cache_total{verifier=\"cloud-connector\",result=\"miss\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn key_rotation_is_picked_up_without_restart() {
    let _i = Instances(vec!["jwt-rot"]);
    let iss = oidc_start("jwt-rot", 19104);
    let d = Daemon::start(verifier(&[&iss]));
    let before = oidc_token("jwt-rot", &["--scopes", "duo_chat"]);
    assert_eq!(verify(&d, &before, Some("duo_chat")).await.0, 200);
    oidc_rotate("jwt-rot");
    let after = oidc_token("jwt-rot", &["--scopes", "duo_chat"]);
    let (s, v) = verify(&d, &after, Some("duo_chat")).await;
    assert_eq!(s, 200, "the new kid triggers a refetch: {v}");
    // A token signed with a key the issuer no longer publishes, never seen
    // before: its kid is unknown (the refetch is rate-limited).
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(before.split('.').next().unwrap()).unwrap()).unwrap();
    let header_after: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(after.split('.').next().unwrap()).unwrap()).unwrap();
    assert_ne!(header["kid"], header_after["kid"]);
}

#[tokio::test]
async fn issuer_down_then_restart_with_persisted_keys() {
    let _i = Instances(vec!["jwt-down"]);
    let iss = oidc_start("jwt-down", 19105);
    let mut d = Daemon::start(verifier(&[&iss]));
    let first = oidc_token("jwt-down", &["--scopes", "duo_chat"]);
    let second = oidc_token("jwt-down", &["--alg", "ES256", "--scopes", "duo_chat"]);
    let third = oidc_token("jwt-down", &["--scopes", "duo_chat", "--sub", "third"]);
    assert_eq!(verify(&d, &first, Some("duo_chat")).await.0, 200);
    oidc_script_stop("jwt-down");
    // keys in memory keep verifying
    let (s, v) = verify(&d, &second, Some("duo_chat")).await;
    assert_eq!(s, 200, "issuer down, cached keys: {v}");
    // a restart while the issuer is down: keys from state_dir
    d.restart();
    let (s, v) = verify(&d, &third, Some("duo_chat")).await;
    assert_eq!(s, 200, "persisted keys: {v}");
    // (the refresh fails in the background: the answer can come first)
    assert!(
        d.wait_log("keeping the last keys").await,
        "the failed refresh is logged"
    );
}

#[tokio::test]
async fn https_issuer_is_trusted_only_through_its_ca_file() {
    let _i = Instances(vec!["jwt-tls"]);
    let (iss, ca) = oidc_start_tls("jwt-tls", 19107);
    assert!(iss.starts_with("https://"), "{iss}");
    let d = Daemon::start(Setup::with_body(&format!(
        r#"
[[verifiers]]
name = "with-ca"
type = "jwt"
[verifiers.settings]
audience = "gitlab-ai-gateway"
issuers = ["{iss}"]
ca_file = "{ca}"
fetch_timeout = "3s"

[[verifiers]]
name = "system-roots"
type = "jwt"
[verifiers.settings]
audience = "gitlab-ai-gateway"
issuers = ["{iss}"]
fetch_timeout = "3s"
"#,
        ca = ca.display()
    )));
    let token = oidc_token("jwt-tls", &["--scopes", "duo_chat"]);
    let mut client = d.client().await;
    let ask = |verifier: &str| json!({"token": token, "unit_primitive": "duo_chat", "verifier": verifier});
    let a = client.post("/v1/tokens/verify", &ask("with-ca")).await.unwrap();
    assert_eq!(
        a.status,
        200,
        "keys fetched over TLS with the issuer's CA: {:?}",
        a.value()
    );
    assert_eq!(a.value()["issuer"], iss.as_str());
    // the same issuer without its CA: the certificate is not trusted, so no
    // keys, so the token cannot be checked (never accepted)
    let a = client
        .post("/v1/tokens/verify", &ask("system-roots"))
        .await
        .unwrap();
    assert_eq!(a.status, 503, "{:?}", a.value());
    assert_eq!(a.code().as_deref(), Some("backend_unavailable"));
    // logged by the background refresher, maybe after the answer
    assert!(
        d.wait_log("invalid peer certificate: UnknownIssuer").await,
        "the TLS failure is logged with its cause: {}",
        d.logs()
    );
}

fn oidc_script_stop(name: &str) {
    let out = std::process::Command::new("bash")
        .arg(gatehouse_e2e::repo_root().join("tests/peers/oidc/stop.sh"))
        .arg(name)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[tokio::test]
async fn attack_suite() {
    let _i = Instances(vec!["jwt-atk"]);
    let iss = oidc_start("jwt-atk", 19106);
    let d = Daemon::start(verifier(&[&iss]));
    let good = oidc_token("jwt-atk", &["--scopes", "duo_chat"]);
    assert_eq!(verify(&d, &good, Some("duo_chat")).await.0, 200);
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());

    // HS256 keyed with the issuer's RSA public key as published in the JWKS
    let jwks: Value = serde_json::from_slice(
        &std::process::Command::new("curl")
            .arg("-s")
            .arg(format!("{iss}/jwks"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap_or(json!({}));
    let rsa = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kty"] == "RSA"))
        .cloned()
        .unwrap_or(json!({}));
    let hs_header = json!({"alg": "HS256", "kid": rsa["kid"], "typ": "JWT"});
    let hs_input = format!("{}.{}", enc(&hs_header), parts[1]);
    let hs_sig = {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, rsa.to_string().as_bytes());
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, hs_input.as_bytes()).as_ref())
    };

    payload["scopes"] = json!(["duo_chat", "everything"]);
    let tampered = format!("{}.{}.{}", parts[0], enc(&payload), parts[2]);
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let dup_payload = {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        URL_SAFE_NO_PAD.encode(text.replacen('{', "{\"aud\":\"gitlab-ai-gateway\",", 1))
    };
    let expired = oidc_token("jwt-atk", &["--ttl", "-60", "--scopes", "duo_chat"]);
    let no_aud = format!(
        "{}.{}.{}",
        parts[0],
        enc(&json!({"iss": iss, "exp": 4_000_000_000u64})),
        parts[2]
    );

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!("{}.{}.", enc(&none_header), parts[1]),
            "unsupported_algorithm",
        ),
        (
            "alg none with the old signature",
            format!("{}.{}.{}", enc(&none_header), parts[1], parts[2]),
            "unsupported_algorithm",
        ),
        (
            "HS256 with the RSA public key",
            format!("{hs_input}.{hs_sig}"),
            "unsupported_algorithm",
        ),
        ("tampered payload", tampered, "bad_signature"),
        ("expired", expired, "expired"),
        (
            "wrong audience",
            oidc_token("jwt-atk", &["--aud", "elsewhere", "--scopes", "duo_chat"]),
            "wrong_audience",
        ),
        ("missing audience (forged)", no_aud, "bad_signature"),
        (
            "missing scope",
            oidc_token("jwt-atk", &["--scopes", "code_suggestions"]),
            "missing_scope",
        ),
        ("truncated", format!("{}.{}", parts[0], parts[1]), "malformed"),
        ("garbage", "garbage".into(), "malformed"),
        (
            "not base64",
            format!("{}.@@@.{}", parts[0], parts[2]),
            "malformed",
        ),
        (
            "oversized",
            format!("{}.{}.{}", parts[0], "A".repeat(40_000), parts[2]),
            "malformed",
        ),
        (
            "duplicate JSON keys",
            format!("{}.{}.{}", parts[0], dup_payload, parts[2]),
            "malformed",
        ),
        (
            "unknown critical header",
            format!(
                "{}.{}.{}",
                enc(&json!({"alg": "RS256", "kid": header["kid"], "crit": ["b64"], "b64": false})),
                parts[1],
                parts[2]
            ),
            "malformed",
        ),
        (
            "jku pointing elsewhere",
            format!(
                "{}.{}.{}",
                enc(&json!({"alg": "RS256", "kid": "attacker", "jku": "http://127.0.0.1:1/jwks"})),
                parts[1],
                parts[2]
            ),
            "unknown_key",
        ),
    ];
    for (name, token, want) in cases {
        let (s, v) = verify(&d, &token, Some("duo_chat")).await;
        assert_eq!(s, 401, "{name}: {v}");
        assert_eq!(reason(&v), want, "{name}: {v}");
        assert_eq!(v["valid"], false);
    }
    assert!(!d.logs().contains(&good), "a token reached the log");
}
