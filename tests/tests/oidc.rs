//! The `oidc` authenticator and its presets through the socket, against a
//! real OpenID provider (`oidc-provider`, tests/peers/oidc): the code flow
//! driven from `start`'s URL through the provider's login and consent pages
//! to `finish` (tests/src/browser.rs), the refusals the real provider can
//! produce (state, code replay, the user declining), and — through a token
//! endpoint the test controls — the forged ID tokens it cannot (alg none,
//! HS256 with the client secret, another issuer, another audience, expired,
//! another nonce, a userinfo answer about someone else).
//!
//! Ports 19311–19349 (19301 is the nginx test's).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_e2e::browser::Choice;
use gatehouse_e2e::{
    Answer, Browser, Client, Daemon, Setup, oidc_public_key, oidc_start, oidc_stop, openssl,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CALLBACK: &str = "https://app.example.test/cb";

/// Stops the named provider instances when a test ends, however it ends.
struct Instances(Vec<&'static str>);
impl Drop for Instances {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::panic::catch_unwind(|| oidc_stop(n));
        }
    }
}

/// One `[[authenticators]]` entry named `name` of `kind` with `settings`
/// (TOML lines), the callback URL fixed, `maps` after it.
fn entry(name: &str, kind: &str, settings: &str, maps: &str) -> String {
    format!(
        r#"
[[authenticators]]
name = "{name}"
type = "{kind}"
[authenticators.settings]
callback_url = "{CALLBACK}"
{settings}
{maps}
"#
    )
}

fn daemon(entries: &[String]) -> Daemon {
    Daemon::start(Setup::with_body(&format!(
        "[lockout]\nmax_failures = 1000\n{}",
        entries.concat()
    )))
}

/// `/v1/login/start`: (authorization URL, state).
async fn start(c: &mut Client, authenticator: &str) -> (String, String) {
    let a = c
        .post("/v1/login/start", &json!({"authenticator": authenticator}))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    (
        v["redirect_url"].as_str().unwrap().to_owned(),
        v["state"].as_str().unwrap().to_owned(),
    )
}

async fn finish(c: &mut Client, authenticator: &str, params: &BTreeMap<String, String>) -> Answer {
    c.post(
        "/v1/login/finish",
        &json!({"authenticator": authenticator, "params": params, "explain": true}),
    )
    .await
    .unwrap()
}

/// A query parameter of a URL.
fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// start → the provider's pages as `user` → finish.
async fn browse(c: &mut Client, authenticator: &str, user: &str, password: &str) -> Answer {
    let (url, state) = start(c, authenticator).await;
    let params = Browser::new()
        .login(&url, user, password, Choice::Allow, CALLBACK)
        .await;
    assert_eq!(
        params.get("state"),
        Some(&state),
        "the provider repeats the state"
    );
    finish(c, authenticator, &params).await
}

fn message(a: &Answer) -> String {
    a.value()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

const MAPS: &str = r#"
[[authenticators.maps]]
name = "admins are superusers"
map_type = "is_superuser"
revoke = true
triggers.groups = { has_or = ["admins"] }

[[authenticators.maps]]
name = "developers team"
map_type = "team"
organization = "Default"
team = "Developers"
triggers.groups = { has_or = ["developers"] }
"#;

#[tokio::test]
async fn code_flow_confidential_post_and_public_clients_through_the_login_and_consent_pages() {
    let _i = Instances(vec!["oidc-flow"]);
    let issuer = oidc_start("oidc-flow", 19311);
    let web = entry(
        "Corp SSO",
        "oidc",
        &format!(
            "oidc_endpoint = \"{issuer}\"\nkey = \"gh-web\"\nsecret = \"gh-web-secret\"\nscope = \"openid email profile groups\""
        ),
        MAPS,
    );
    // the platform's uppercase names, client_secret_post
    let post = entry(
        "Post SSO",
        "oidc",
        &format!(
            "OIDC_ENDPOINT = \"{issuer}\"\nKEY = \"gh-post\"\nSECRET = \"gh-post-secret\"\n\
             TOKEN_ENDPOINT_AUTH_METHOD = \"client_secret_post\"\nSCOPE = \"openid email profile groups\""
        ),
        "",
    );
    let public = entry(
        "Public SSO",
        "oidc",
        &format!(
            "oidc_endpoint = \"{issuer}\"\nkey = \"gh-public\"\ntoken_endpoint_auth_method = \"none\"\n\
             scope = [\"openid\", \"email\", \"profile\", \"groups\"]"
        ),
        "",
    );
    let d = daemon(&[web, post, public]);
    let mut c = d.client().await;

    // the authorization URL carries state, nonce and a PKCE S256 challenge
    let (url, state) = start(&mut c, "Corp SSO").await;
    assert!(url.starts_with(&format!("{issuer}/auth?")), "{url}");
    assert_eq!(param(&url, "state"), Some(state.clone()));
    assert_eq!(param(&url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param(&url, "code_challenge").map(|c| c.len()), Some(43));
    assert!(param(&url, "nonce").is_some_and(|n| n.len() >= 32));
    assert_eq!(param(&url, "redirect_uri").as_deref(), Some(CALLBACK));
    assert_eq!(param(&url, "client_id").as_deref(), Some("gh-web"));

    // confidential client (client_secret_basic): groups → maps, userinfo merged
    let params = Browser::new()
        .login(&url, "alice", "alicepass", Choice::Allow, CALLBACK)
        .await;
    assert_eq!(
        params.get("iss"),
        Some(&issuer),
        "the provider names itself (RFC 9207)"
    );
    let a = finish(&mut c, "Corp SSO", &params).await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["user"]["email"], "alice@example.test");
    assert_eq!(v["user"]["first_name"], "Alice");
    assert_eq!(v["user"]["last_name"], "Anderson");
    assert_eq!(v["user"]["is_superuser"], true, "admins → is_superuser: {v}");
    assert_eq!(v["groups"], json!(["admins", "developers"]));
    let teams: Vec<&str> = v["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(teams, ["Developers"]);
    assert_eq!(
        v["attributes"]["locale"],
        json!(["en-GB"]),
        "a claim only userinfo answers: userinfo was merged: {v}"
    );

    // client_secret_post, a non-ASCII password at the provider
    let a = browse(&mut c, "Post SSO", "juergen", "jürgenpass").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert_eq!(a.value()["user"]["username"], "juergen");
    assert_eq!(a.value()["groups"], json!(["all-staff"]));

    // public client: no secret, PKCE only; Bob's address is unverified, so
    // it is not taken
    let a = browse(&mut c, "Public SSO", "Bob.Smith", "bobpass").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    assert_eq!(v["user"]["username"], "Bob.Smith");
    assert_eq!(
        v["user"]["email"],
        Value::Null,
        "an unverified e-mail address is not mapped: {v}"
    );
    assert_eq!(
        v["attributes"]["email"],
        Value::Null,
        "nor offered to attribute maps: {v}"
    );
    assert_eq!(v["groups"], json!(["developers", "operators"]));
}

#[tokio::test]
async fn refusals_by_the_real_provider_state_code_replay_and_declined_consent() {
    let _i = Instances(vec!["oidc-refuse"]);
    let issuer = oidc_start("oidc-refuse", 19312);
    let web = entry(
        "SSO",
        "oidc",
        &format!("oidc_endpoint = \"{issuer}\"\nkey = \"gh-web\"\nsecret = \"gh-web-secret\""),
        "",
    );
    let d = daemon(&[web]);
    let mut c = d.client().await;

    // a good login, then its callback again: the state is used up
    let (url, _) = start(&mut c, "SSO").await;
    let first = Browser::new()
        .login(&url, "alice", "alicepass", Choice::Allow, CALLBACK)
        .await;
    assert_eq!(finish(&mut c, "SSO", &first).await.status, 200);
    let again = finish(&mut c, "SSO", &first).await;
    assert_eq!(again.status, 401, "{:?}", again.value());
    assert_eq!(
        again.value()["error"]["details"]["explanation"]["reason"],
        "replayed_state"
    );

    // the code of that login replayed under a fresh start's state: the
    // provider refuses the code, and the error says so with its code
    let (_, fresh) = start(&mut c, "SSO").await;
    let mut replay = first.clone();
    replay.insert("state".into(), fresh);
    let a = finish(&mut c, "SSO", &replay).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some("login_denied")),
        "{:?}",
        a.value()
    );
    assert!(
        message(&a).contains("token_endpoint_error") && message(&a).contains("invalid_grant"),
        "{}",
        message(&a)
    );

    // a callback whose state no start issued (a forged or mixed-up one)
    let (url, _) = start(&mut c, "SSO").await;
    let mut params = Browser::new()
        .login(&url, "alice", "alicepass", Choice::Allow, CALLBACK)
        .await;
    params.insert("state".into(), "x".repeat(43));
    let a = finish(&mut c, "SSO", &params).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.value()["error"]["details"]["explanation"]["reason"],
        "unknown_state"
    );

    // the user declines: the provider's error comes back with its code
    let (url, _) = start(&mut c, "SSO").await;
    let params = Browser::new()
        .login(&url, "alice", "alicepass", Choice::Decline, CALLBACK)
        .await;
    assert_eq!(params.get("error").map(String::as_str), Some("access_denied"));
    let a = finish(&mut c, "SSO", &params).await;
    assert_eq!((a.status, a.code().as_deref()), (403, Some("login_denied")));
    assert!(
        message(&a).contains("provider_error") && message(&a).contains("access_denied"),
        "{}",
        message(&a)
    );

    // a callback claiming another issuer (a mix-up): refused before the code
    // is sent anywhere
    let (url, _) = start(&mut c, "SSO").await;
    let mut params = Browser::new()
        .login(&url, "alice", "alicepass", Choice::Allow, CALLBACK)
        .await;
    params.insert("iss".into(), "https://evil.example.test".into());
    let a = finish(&mut c, "SSO", &params).await;
    assert_eq!(a.status, 403);
    assert!(
        message(&a).contains("callback_issuer_mismatch"),
        "{}",
        message(&a)
    );
}

#[tokio::test]
async fn presets_keycloak_google_azuread_map_real_format_tokens() {
    let _i = Instances(vec!["oidc-presets"]);
    let issuer = oidc_start("oidc-presets", 19313);
    let pem = oidc_public_key("oidc-presets");
    // Keycloak's form: endpoints and the realm's RS256 public key (no JWKS)
    let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let keycloak = entry(
        "Keycloak",
        "keycloak",
        &format!(
            "authorization_url = \"{issuer}/auth\"\naccess_token_url = \"{issuer}/token\"\n\
             id_token_issuer = \"{issuer}\"\nkey = \"gh-keycloak\"\nsecret = \"gh-keycloak-secret\"\n\
             public_key = \"{bare}\"\nscope = \"openid email profile groups\""
        ),
        "",
    );
    let google = entry(
        "Google",
        "google_oauth2",
        &format!(
            "authorization_url = \"{issuer}/auth\"\naccess_token_url = \"{issuer}/token\"\n\
             userinfo_url = \"{issuer}/me\"\njwks_uri = \"{issuer}/jwks\"\nid_token_issuer = \"{issuer}\"\n\
             key = \"gh-google\"\nsecret = \"gh-google-secret\"\nhosted_domain = \"example.test\""
        ),
        "",
    );
    let azure = entry(
        "Azure AD",
        "azuread",
        &format!(
            "tenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\nauthorization_url = \"{issuer}/auth\"\n\
             access_token_url = \"{issuer}/token\"\njwks_uri = \"{issuer}/jwks\"\nid_token_issuer = \"{issuer}\"\n\
             key = \"gh-azure\"\nsecret = \"gh-azure-secret\"\nscope = \"openid profile email groups\""
        ),
        r#"
[[authenticators.maps]]
name = "by object id"
map_type = "is_superuser"
triggers.groups = { has_or = ["6f1c2b9e-0d6a-4f7e-9a51-2c8e6b3d4a10"] }
"#,
    );
    let d = daemon(&[keycloak, google, azure]);
    let mut c = d.client().await;

    // Keycloak: username from preferred_username, groups as full paths
    let a = browse(&mut c, "Keycloak", "alice", "alicepass").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["groups"], json!(["/admins", "/developers"]));

    // Google: hd requested and checked on the token; the username is the
    // address's local part
    let (url, _) = start(&mut c, "Google").await;
    assert_eq!(param(&url, "hd").as_deref(), Some("example.test"));
    let a = browse(&mut c, "Google", "alice", "alicepass").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    // (Keycloak's alice holds "alice": the daemon's collision rule adds a
    // suffix; no preferred_username in Google's claims, so not the address)
    let name = a.value()["user"]["username"].as_str().unwrap().to_owned();
    assert!(name.starts_with("alice-") && !name.contains('@'), "{name}");
    assert_eq!(a.value()["user"]["email"], "alice@example.test");
    for (user, pw) in [("juergen", "jürgenpass"), ("Bob.Smith", "bobpass")] {
        let a = browse(&mut c, "Google", user, pw).await;
        assert_eq!(a.status, 403, "{user}: {:?}", a.value());
        assert!(message(&a).contains("hosted_domain_mismatch"), "{}", message(&a));
    }

    // Azure AD: uid ← UPN, username ← name, names, group object ids
    let a = browse(&mut c, "Azure AD", "alice", "alicepass").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    assert_eq!(v["user"]["first_name"], "Alice");
    assert_eq!(v["user"]["last_name"], "Anderson");
    assert_eq!(v["user"]["email"], "alice@example.test");
    assert_eq!(v["user"]["is_superuser"], true, "mapped by group object id: {v}");
    assert_eq!(
        v["groups"],
        json!([
            "6f1c2b9e-0d6a-4f7e-9a51-2c8e6b3d4a10",
            "b2a7e4c1-8f3d-4e2a-a6c9-1d5f7e9b0c32"
        ])
    );
    assert_eq!(v["attributes"]["upn"], json!(["alice@contoso.example"]));
    // too many groups: the overage claim is reported, not taken as "no groups"
    let a = browse(&mut c, "Azure AD", "juergen", "jürgenpass").await;
    assert_eq!(a.status, 403, "{:?}", a.value());
    assert!(message(&a).contains("groups_overage"), "{}", message(&a));
}

// ---------------------------------------------------------------------------
// Forged answers through a token endpoint the test controls.

/// What the fake provider answers next: the token response and userinfo.
#[derive(Default)]
struct Answers {
    token: Value,
    userinfo: Value,
    jwks: Value,
}

/// A minimal HTTP/1.1 server on `port`: POST /token, GET /userinfo, GET
/// /jwks answer from `answers`.
async fn fake_provider(port: u16, answers: Arc<Mutex<Answers>>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let answers = Arc::clone(&answers);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let body = {
                    let a = answers.lock().unwrap();
                    match path.split('?').next().unwrap_or("") {
                        "/token" => a.token.to_string(),
                        "/userinfo" => a.userinfo.to_string(),
                        "/jwks" => a.jwks.to_string(),
                        _ => "{}".into(),
                    }
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_id_tokens_and_userinfo_are_refused() {
    const ISS: &str = "https://issuer.example.test";
    const SECRET: &str = "craft-secret";
    let pem = openssl(
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "",
    );
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let other_pem = openssl(
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "",
    );
    let other = jsonwebtoken::EncodingKey::from_rsa_pem(&other_pem).unwrap();
    let public_pem = String::from_utf8(openssl(
        &["pkey", "-pubout"],
        &String::from_utf8(pem.clone()).unwrap(),
    ))
    .unwrap();

    let answers = Arc::new(Mutex::new(Answers {
        jwks: json!({"keys": [jwk]}),
        ..Answers::default()
    }));
    fake_provider(19320, Arc::clone(&answers)).await;
    let base = "http://127.0.0.1:19320";
    let common = format!(
        "authorization_url = \"https://idp.example.test/authorize\"\naccess_token_url = \"{base}/token\"\n\
         id_token_issuer = \"{ISS}\"\nkey = \"gh-craft\"\nsecret = \"{SECRET}\""
    );
    let generic = entry(
        "Crafted",
        "oidc",
        &format!("{common}\njwks_uri = \"{base}/jwks\"\nuserinfo_url = \"{base}/userinfo\"\nleeway = \"5s\""),
        "",
    );
    let keycloak = entry(
        "Keycloak",
        "keycloak",
        &format!("{common}\npublic_key = '''{public_pem}'''"),
        "",
    );
    let d = daemon(&[generic, keycloak]);
    let mut c = d.client().await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let rs256 = |claims: &Value, k: &jsonwebtoken::EncodingKey| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, claims, k).unwrap()
    };
    // One case: claims from the nonce, the token made of them; the answer.
    async fn case(
        c: &mut Client,
        answers: &Arc<Mutex<Answers>>,
        name: &str,
        make: &dyn Fn(&str) -> (String, Value),
    ) -> Answer {
        let (url, state) = start(c, name).await;
        let nonce = param(&url, "nonce").unwrap();
        let (id_token, userinfo) = make(&nonce);
        {
            let mut a = answers.lock().unwrap();
            a.token = json!({"access_token": "at-1", "token_type": "Bearer", "id_token": id_token});
            a.userinfo = userinfo;
        }
        let params: BTreeMap<String, String> =
            [("code".to_owned(), "c1".to_owned()), ("state".to_owned(), state)].into();
        finish(c, name, &params).await
    }
    let good = |nonce: &str| json!({"iss": ISS, "aud": "gh-craft", "sub": "u1", "exp": now + 300, "iat": now, "nonce": nonce, "preferred_username": "crafted"});
    let me = json!({"sub": "u1", "email": "u1@example.test", "email_verified": true});

    // the control: a well-made token is accepted (so the refusals below are
    // the checks', not the harness's)
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (rs256(&good(n), &key), me.clone())
    })
    .await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert_eq!(a.value()["user"]["username"], "crafted");
    assert_eq!(a.value()["user"]["email"], "u1@example.test", "userinfo merged");

    let reason = |a: &Answer| {
        a.value()["error"]["details"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let with = |n: &str, k: &str, v: Value| {
        let mut c = good(n);
        c[k] = v;
        c
    };
    // alg none
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good(n))),
            me.clone(),
        )
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "unsupported_algorithm"),
        "{:?}",
        a.value()
    );
    // HS256 with the client secret as the key, while the provider signs RS256
    let a = case(&mut c, &answers, "Crafted", &|n| {
        let t = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &good(n),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        (t, me.clone())
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "unsupported_algorithm"),
        "{:?}",
        a.value()
    );
    // signed by a key that is not the provider's
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (rs256(&good(n), &other), me.clone())
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "bad_signature"),
        "{:?}",
        a.value()
    );
    // another issuer
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (
            rs256(&with(n, "iss", json!("https://evil.example.test")), &key),
            me.clone(),
        )
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "wrong_issuer"),
        "{:?}",
        a.value()
    );
    // another audience, and azp naming another client
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (rs256(&with(n, "aud", json!("other-client")), &key), me.clone())
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "wrong_audience"),
        "{:?}",
        a.value()
    );
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (rs256(&with(n, "azp", json!("other-client")), &key), me.clone())
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "wrong_audience"),
        "{:?}",
        a.value()
    );
    // expired; issued in the future; issued long ago
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (rs256(&with(n, "exp", json!(now - 60)), &key), me.clone())
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "expired"),
        "{:?}",
        a.value()
    );
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (rs256(&with(n, "iat", json!(now + 600)), &key), me.clone())
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "not_yet_valid"),
        "{:?}",
        a.value()
    );
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (rs256(&with(n, "iat", json!(now - 7200)), &key), me.clone())
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "expired"),
        "{:?}",
        a.value()
    );
    // another login's nonce, and none at all
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (rs256(&with(n, "nonce", json!("not-this-one")), &key), me.clone())
    })
    .await;
    assert_eq!(a.status, 403, "{:?}", a.value());
    assert!(message(&a).contains("nonce_mismatch"), "{}", message(&a));
    let a = case(&mut c, &answers, "Crafted", &|n| {
        let mut t = good(n);
        t.as_object_mut().unwrap().remove("nonce");
        (rs256(&t, &key), me.clone())
    })
    .await;
    assert!(message(&a).contains("nonce_mismatch"), "{}", message(&a));
    // at_hash that does not match the access token
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (
            rs256(&with(n, "at_hash", json!("AAAAAAAAAAAAAAAAAAAAAA")), &key),
            me.clone(),
        )
    })
    .await;
    assert!(message(&a).contains("at_hash_mismatch"), "{}", message(&a));
    // userinfo about another subject
    let a = case(&mut c, &answers, "Crafted", &|n| {
        (
            rs256(&good(n), &key),
            json!({"sub": "someone-else", "email": "x@example.test"}),
        )
    })
    .await;
    assert_eq!(a.status, 403, "{:?}", a.value());
    assert!(message(&a).contains("userinfo_sub_mismatch"), "{}", message(&a));

    // Keycloak with the realm's public key: accepted when signed by it; the
    // audience trouble says which audience came and what to change
    let a = case(&mut c, &answers, "Keycloak", &|n| {
        (rs256(&good(n), &key), Value::Null)
    })
    .await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    let a = case(&mut c, &answers, "Keycloak", &|n| {
        (rs256(&with(n, "aud", json!(["account"])), &key), Value::Null)
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "wrong_audience"),
        "{:?}",
        a.value()
    );
    let m = message(&a);
    assert!(
        m.contains("[\"account\"]") && m.contains("Included Client Audience") && m.contains("gh-craft"),
        "{m}"
    );
    let a = case(&mut c, &answers, "Keycloak", &|n| {
        (rs256(&good(n), &other), Value::Null)
    })
    .await;
    assert_eq!(
        (a.status, reason(&a).as_str()),
        (401, "bad_signature"),
        "{:?}",
        a.value()
    );
}
