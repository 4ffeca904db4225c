//! The issuer end to end: entitlements through the admin API, tokens
//! issued over the socket, verified by gatehouse's own `jwt` verifier
//! (discovering the issuer over its TLS listener) and by an independent
//! implementation (node `jose`) reading `/v1/jwks`; key rotation; a bad
//! catalog refused at reload while the old one keeps serving.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, add_user, repo_root, throwaway_server_cert};
use http::Method;
use serde_json::{Value, json};

/// duo_chat with the seed's first registration (new_feature_up for
/// duo_enterprise only), paid since 2024-07-15.
const CATALOG: &str = "defaults: &defaults
  services:
    duo_chat:
      backend: gitlab-ai-gateway
      cut_off_date: 2024-7-15 00:00:00 UTC
      min_gitlab_version: 16.8
      bundled_with:
        duo_pro:
          unit_primitives:
            - duo_chat
            - documentation_search
        duo_enterprise:
          unit_primitives:
            - duo_chat
            - documentation_search
            - new_feature_up
production:
  <<: *defaults
";

fn setup(port: u16, dir: &Path, extra: &str) -> Setup {
    Setup::with_body(&format!(
        r#"{LOCAL_AUTH}
[issuer]
url = "https://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"
tls_cert_file = "{dir}/server.pem"
tls_key_file = "{dir}/server.key"
catalog = "catalog.yml"
instance_id = "test-instance"
host_name = "gitlab.test"
version = "17.2.0"
token_ttl = "10m"
{extra}

[[verifiers]]
name = "cloud-connector"
type = "jwt"
[verifiers.settings]
audience = "gitlab-ai-gateway"
issuers = ["https://127.0.0.1:{port}"]
ca_file = "{dir}/ca.pem"
algorithms = ["RS256", "ES256"]
unknown_kid_refetch_interval = "1s"

[[routes]]
name = "ai"
path_prefix = "/ai/"
verifier = "cloud-connector"
unit_primitive = "duo_chat"
"#,
        dir = dir.display()
    ))
}

fn start(port: u16, extra: &str) -> (Daemon, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    throwaway_server_cert(certs.path());
    let s = setup(port, certs.path(), extra);
    let d = Daemon::prepare(&s);
    std::fs::write(d.dir().join("catalog.yml"), CATALOG).unwrap();
    (d.spawn(&s), certs)
}

async fn issue(d: &Daemon, body: Value) -> (u16, Value) {
    let a = d.client().await.post("/v1/tokens/issue", &body).await.unwrap();
    (a.status, a.value())
}

async fn verify(d: &Daemon, token: &str, unit_primitive: &str) -> (u16, Value) {
    // the verifier's first discovery may have run before the issuer's
    // listener was up: it retries within a second
    for _ in 0..20 {
        let (s, v) = verify_once(d, token, unit_primitive).await;
        if s != 503 {
            return (s, v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    verify_once(d, token, unit_primitive).await
}

async fn verify_once(d: &Daemon, token: &str, unit_primitive: &str) -> (u16, Value) {
    let a = d
        .client()
        .await
        .post(
            "/v1/tokens/verify",
            &json!({"token": token, "verifier": "cloud-connector", "unit_primitive": unit_primitive}),
        )
        .await
        .unwrap();
    (a.status, a.value())
}

/// Verifies `token` with node `jose` against the JWKS the daemon serves.
async fn verify_independently(d: &Daemon, token: &str, issuer: &str) -> Result<Value, String> {
    let jwks = d.client().await.get("/v1/jwks").await.unwrap();
    assert_eq!(jwks.status, 200);
    let file = d.dir().join("jwks.json");
    std::fs::write(&file, &jwks.body).unwrap();
    let out = Command::new("node")
        .arg(repo_root().join("tests/peers/oidc/verify.mjs"))
        .args(["--jwks", file.to_str().unwrap(), "--token", token])
        .args(["--issuer", issuer, "--audience", "gitlab-ai-gateway"])
        .output()
        .expect("run node");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn admin(d: &Daemon, method: Method, path: &str, body: Value) -> u16 {
    d.client()
        .await
        .send_json(method, path, &body)
        .await
        .unwrap()
        .status
}

#[tokio::test]
async fn issue_verify_and_rotate_through_the_tls_listener() {
    let port = 19141;
    let issuer = format!("https://127.0.0.1:{port}");
    let (d, _certs) = start(port, "");
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "alice", "alice-password").await.status, 201);
    assert_eq!(add_user(&mut c, "bob", "bob-password-1").await.status, 201);
    let seat = json!({"user": "alice", "add_on": "duo_enterprise"});
    assert_eq!(admin(&d, Method::PUT, "/v1/entitlements/seats", seat).await, 200);

    // the discovery document, as a remote backend sees it
    let disc = d
        .client()
        .await
        .get("/.well-known/openid-configuration")
        .await
        .unwrap();
    assert_eq!(disc.value()["jwks_uri"], format!("{issuer}/v1/jwks"));

    let (s, alice) = issue(&d, json!({"service": "duo_chat", "user": "alice"})).await;
    assert_eq!(s, 200, "{alice}");
    assert_eq!(
        alice["scopes"],
        json!(["documentation_search", "duo_chat", "new_feature_up"])
    );
    assert_eq!(alice["reused"], false);
    let h = &alice["headers"];
    assert_eq!(h["X-Gitlab-Instance-Id"], "test-instance");
    assert_eq!(h["X-Gitlab-Realm"], "saas");
    assert_eq!(h["X-Gitlab-Version"], "17.2.0");
    assert_eq!(h["X-Gitlab-Host-Name"], "gitlab.test");
    assert_eq!(h["X-Gitlab-Duo-Seat-Count"], "0");
    let token = alice["token"].as_str().unwrap().to_owned();
    assert_eq!(h["Authorization"], format!("Bearer {token}"));
    let global = h["X-Gitlab-Global-User-Id"].as_str().unwrap();
    assert!(!global.contains("alice") && global.len() == 32, "{global}");

    // gatehouse's own jwt verifier, discovering the issuer over TLS
    let (s, v) = verify(&d, &token, "new_feature_up").await;
    assert_eq!(s, 200, "{v}\n{}", d.logs());
    assert_eq!(v["subject"], "alice");
    assert_eq!(v["issuer"], issuer);
    // an independent implementation reading /v1/jwks
    let payload = verify_independently(&d, &token, &issuer).await.unwrap();
    assert_eq!(payload["header"]["alg"], "RS256");
    assert_eq!(payload["payload"]["gitlab_realm"], "saas");
    assert_eq!(payload["payload"]["scopes"], alice["scopes"]);

    // reused while young; a seat taken back changes the answer at once
    let (_, again) = issue(&d, json!({"service": "duo_chat", "user": "alice"})).await;
    assert_eq!(again["reused"], true);
    assert_eq!(again["token"], alice["token"]);
    let (s, bob) = issue(&d, json!({"service": "duo_chat", "user": "bob"})).await;
    assert_eq!(
        (s, bob["error"]["code"].as_str()),
        (403, Some("no_access")),
        "{bob}"
    );
    let seat = json!({"user": "alice", "add_on": "duo_enterprise"});
    assert_eq!(
        admin(&d, Method::DELETE, "/v1/entitlements/seats", seat).await,
        200
    );
    let (s, _) = issue(&d, json!({"service": "duo_chat", "user": "alice"})).await;
    assert_eq!(s, 403);
    let seat = json!({"user": "alice", "add_on": "duo_pro"});
    assert_eq!(admin(&d, Method::PUT, "/v1/entitlements/seats", seat).await, 200);
    let (_, pro) = issue(&d, json!({"service": "duo_chat", "user": "alice"})).await;
    assert_eq!(pro["scopes"], json!(["documentation_search", "duo_chat"]));
    let pro_token = pro["token"].as_str().unwrap().to_owned();
    let (s, v) = verify(&d, &pro_token, "new_feature_up").await;
    assert_eq!(
        (s, v["error"]["details"]["reason"].as_str()),
        (401, Some("missing_scope")),
        "{v}"
    );

    // rotation: new tokens use the new key, old ones still verify
    let old_kid = payload["header"]["kid"].as_str().unwrap().to_owned();
    let r = d
        .client()
        .await
        .post("/v1/issuer/rotate", &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let new_kid = r.value()["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let (_, fresh) = issue(&d, json!({"service": "duo_chat", "user": "alice"})).await;
    assert_eq!(fresh["reused"], false);
    let fresh_token = fresh["token"].as_str().unwrap();
    let p = verify_independently(&d, fresh_token, &issuer).await.unwrap();
    assert_eq!(p["header"]["kid"], new_kid);
    assert!(verify_independently(&d, &pro_token, &issuer).await.is_ok());
    // the jwt verifier fetches the unknown kid (after its refetch interval)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, v) = verify(&d, fresh_token, "duo_chat").await;
    assert_eq!(s, 200, "{v}");
    let jwks = d.client().await.get("/v1/jwks").await.unwrap().value();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));

    // the keyring lives in the store (0600), not in a file of its own
    use std::os::unix::fs::PermissionsExt as _;
    assert!(!d.dir().join("state/issuer-keys.json").exists());
    let meta = std::fs::metadata(d.dir().join("state/gatehouse.db")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn namespaces_inherit_purchases_and_requests_are_checked() {
    let port = 19142;
    let (d, _certs) = start(port, "issue_uids = [60002]");
    let put = |path: &'static str, body: Value| {
        let d = &d;
        async move { admin(d, Method::PUT, path, body).await }
    };
    assert_eq!(
        admin(&d, Method::PUT, "/v1/entitlements/namespaces/acme", json!({})).await,
        200
    );
    assert_eq!(
        admin(
            &d,
            Method::PUT,
            "/v1/entitlements/namespaces/acme/web",
            json!({"parent": "acme"})
        )
        .await,
        200
    );
    // a cycle is refused
    assert_eq!(
        admin(
            &d,
            Method::PUT,
            "/v1/entitlements/namespaces/acme",
            json!({"parent": "acme/web"})
        )
        .await,
        409
    );
    // a purchase for an unknown namespace is refused
    assert_eq!(
        put(
            "/v1/entitlements/purchases",
            json!({"namespace": "nope", "add_on": "duo_pro", "seats": 5})
        )
        .await,
        404
    );
    let (s, _) = issue(&d, json!({"service": "duo_chat", "namespace": "acme/web"})).await;
    assert_eq!(s, 403);
    assert_eq!(
        put(
            "/v1/entitlements/purchases",
            json!({"namespace": "acme", "add_on": "duo_pro", "seats": 5})
        )
        .await,
        200
    );
    assert_eq!(
        put(
            "/v1/entitlements/purchases",
            json!({"namespace": "acme", "add_on": "duo_enterprise", "seats": 12})
        )
        .await,
        200
    );
    let (s, web) = issue(&d, json!({"service": "duo_chat", "namespace": "acme/web"})).await;
    assert_eq!(s, 200, "{web}");
    assert_eq!(
        web["scopes"],
        json!(["documentation_search", "duo_chat", "new_feature_up"])
    );
    assert_eq!(web["headers"]["X-Gitlab-Duo-Seat-Count"], "12");

    // bad requests: reserved claims, both subjects, unknown service, old version
    for (body, status) in [
        (
            json!({"service": "duo_chat", "namespace": "acme", "extra_claims": {"scopes": ["x"]}}),
            400,
        ),
        (
            json!({"service": "duo_chat", "namespace": "acme", "extra_claims": {"exp": 1}}),
            400,
        ),
        (
            json!({"service": "duo_chat", "namespace": "acme", "user": "alice"}),
            400,
        ),
        (json!({"service": "duo_chat"}), 400),
        (json!({"service": "nope", "namespace": "acme"}), 404),
        (
            json!({"service": "duo_chat", "namespace": "acme", "version": "16.7"}),
            403,
        ),
        (
            json!({"service": "duo_chat", "namespace": "acme", "version": "x"}),
            400,
        ),
        (
            json!({"service": "duo_chat", "namespace": "acme", "surprise": 1}),
            400,
        ),
    ] {
        let (s, v) = issue(&d, body.clone()).await;
        assert_eq!(s, status, "{body} → {v}");
    }
    // extra claims are merged
    let (s, v) = issue(
        &d,
        json!({"service": "duo_chat", "namespace": "acme", "extra_claims": {"feature": "chat"}}),
    )
    .await;
    assert_eq!(s, 200);
    let claims = token_claims(v["token"].as_str().unwrap());
    assert_eq!(claims["feature"], "chat");
    assert_eq!(claims["sub"], "namespace:acme");
    assert_eq!(claims["aud"], "gitlab-ai-gateway");
    assert!(claims["jti"].as_str().unwrap().len() >= 20);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );

    // only admins and the peers [issuer] issue_uids names may issue
    if gatehouse_e2e::is_root() {
        let body = r#"{"service":"duo_chat","namespace":"acme"}"#;
        let answer = post_as(60001, &d.socket, "/v1/tokens/issue", body);
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains("issue_uids"), "{answer}");
        let answer = post_as(60002, &d.socket, "/v1/tokens/issue", body);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // and the entitlement routes are admin-only
        let answer = post_as(60002, &d.socket, "/v1/issuer/rotate", "{}");
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
}

/// One request over the socket from a thread running as `uid`; the
/// whole answer as text.
fn post_as(uid: u32, socket: &Path, path: &str, body: &str) -> String {
    use std::io::{Read as _, Write as _};
    std::thread::scope(|s| {
        s.spawn(|| {
            let u = rustix::process::Uid::from_raw(uid);
            rustix::thread::set_thread_res_uid(u, u, rustix::process::Uid::ROOT).expect("setresuid (needs root)");
            let mut c = std::os::unix::net::UnixStream::connect(socket).expect("connect");
            // One write: the daemon may answer (and close) as soon as it
            // has the head, and a later write would then fail with EPIPE.
            let request = format!(
                "POST {path} HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            match c.write_all(request.as_bytes()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => panic!("write: {e}"),
            }
            let mut out = String::new();
            c.read_to_string(&mut out).expect("read");
            out
        })
        .join()
        .expect("thread")
    })
}

fn token_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_bad_catalog_is_refused_at_reload_and_the_old_one_serves() {
    let port = 19143;
    let (d, _certs) = start(port, "");
    assert_eq!(
        admin(&d, Method::PUT, "/v1/entitlements/namespaces/acme", json!({})).await,
        200
    );
    assert_eq!(
        admin(
            &d,
            Method::PUT,
            "/v1/entitlements/purchases",
            json!({"namespace": "acme", "add_on": "duo_pro"})
        )
        .await,
        200
    );
    let broken = CATALOG.replace(
        "            - documentation_search\n        duo_enterprise",
        "            - documentation search\n        duo_enterprise",
    );
    std::fs::write(d.dir().join("catalog.yml"), broken).unwrap();
    let r = d.client().await.post("/v1/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 422, "{:?}", r.value());
    let errors = r.value()["error"]["details"]["errors"].clone();
    let e = &errors[0];
    assert!(e["file"].as_str().unwrap().ends_with("catalog.yml"), "{errors}");
    assert_eq!(e["line"], 11, "{errors}");
    assert!(
        e["message"].as_str().unwrap().contains("documentation search"),
        "{errors}"
    );
    // the old catalog still answers
    let (s, v) = issue(&d, json!({"service": "duo_chat", "namespace": "acme"})).await;
    assert_eq!(s, 200, "{v}");
    // a typo in a key is caught too, with its line
    let typo = CATALOG.replace("      min_gitlab_version: 16.8", "      min_gitlab_versoin: 16.8");
    std::fs::write(d.dir().join("catalog.yml"), typo).unwrap();
    let r = d.client().await.post("/v1/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 422);
    let e = r.value()["error"]["details"]["errors"][0].clone();
    assert_eq!(e["line"], 6, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("min_gitlab_versoin"),
        "{e}"
    );
}

#[tokio::test]
async fn self_managed_issues_the_instance_token() {
    let port = 19144;
    let (d, _certs) = start(port, "mode = \"self_managed\"\nalgorithm = \"ES256\"");
    let (s, _) = issue(&d, json!({"service": "duo_chat", "user": "whoever"})).await;
    assert_eq!(s, 403, "no instance purchase yet");
    assert_eq!(
        admin(
            &d,
            Method::PUT,
            "/v1/entitlements/purchases",
            json!({"add_on": "duo_pro", "seats": 3})
        )
        .await,
        200
    );
    // users and namespaces are ignored: one instance token
    let (s, v) = issue(&d, json!({"service": "duo_chat", "user": "whoever"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scopes"], json!(["documentation_search", "duo_chat"]));
    assert_eq!(v["headers"]["X-Gitlab-Realm"], "self-managed");
    let claims = token_claims(v["token"].as_str().unwrap());
    assert_eq!(claims["sub"], "test-instance");
    let (_, w) = issue(&d, json!({"service": "duo_chat", "namespace": "other"})).await;
    assert_eq!(w["token"], v["token"]);
    let (s, checked) = verify(&d, v["token"].as_str().unwrap(), "duo_chat").await;
    assert_eq!(s, 200, "{checked}");
}

#[tokio::test]
async fn logins_return_tokens_that_verify_and_pass_forward_auth() {
    let port = 19145;
    let (d, _certs) = start(port, "login_audience = \"gitlab-ai-gateway\"");
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "alice", "alice-password").await.status, 201);
    assert_eq!(add_user(&mut c, "carol", "carol-password").await.status, 201);
    let seat = json!({"user": "alice", "add_on": "duo_pro"});
    assert_eq!(admin(&d, Method::PUT, "/v1/entitlements/seats", seat).await, 200);

    let a = gatehouse_e2e::login(&mut c, "alice", "alice-password").await;
    assert_eq!(a.status, 200);
    let token = a.value()["token"].as_str().expect("a login token").to_owned();
    let claims = token_claims(&token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "gitlab-ai-gateway");
    assert_eq!(claims["scopes"], json!(["documentation_search", "duo_chat"]));
    assert_eq!(claims["gatehouse_authenticator"], "Local Database");
    let (s, v) = verify(&d, &token, "duo_chat").await;
    assert_eq!(s, 200, "{v}");
    let check = |token: String| {
        let d = &d;
        async move {
            d.client()
                .await
                .send_raw_with(
                    Method::GET,
                    "/v1/check",
                    &[
                        ("x-original-uri", "/ai/chat"),
                        ("authorization", &format!("Bearer {token}")),
                    ],
                )
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(check(token).await, 200);
    // carol holds no seat: her token verifies but carries no duo_chat
    let a = gatehouse_e2e::login(&mut c, "carol", "carol-password").await;
    let carol = a.value()["token"].as_str().expect("a login token").to_owned();
    assert_eq!(token_claims(&carol)["scopes"], json!([]));
    assert_eq!(check(carol).await, 403);
}

#[tokio::test]
async fn the_cli_manages_entitlements_issues_and_rotates() {
    let port = 19146;
    let (d, _certs) = start(port, "");
    let ok = |args: &[&str]| {
        let out = d.cli(args, "");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["entitlements", "namespace", "acme"]);
    ok(&["entitlements", "namespace", "acme/web", "--parent", "acme"]);
    ok(&[
        "entitlements",
        "purchase",
        "duo_enterprise",
        "--namespace",
        "acme",
        "--seats",
        "7",
    ]);
    let list = ok(&["entitlements", "list"]);
    assert!(list.contains("namespace acme/web (in acme)"), "{list}");
    assert!(
        list.contains("purchase  duo_enterprise for acme: 7 seats"),
        "{list}"
    );
    let out = d.cli(
        &[
            "token",
            "issue",
            "--service",
            "duo_chat",
            "--namespace",
            "acme/web",
            "--claim",
            "feature=chat",
        ],
        "",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(token_claims(&token)["feature"], "chat");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scopes: documentation_search duo_chat new_feature_up"),
        "{err}"
    );
    // nothing to grant: exit 1 with the code
    let out = d.cli(
        &[
            "token",
            "issue",
            "--service",
            "duo_chat",
            "--namespace",
            "acme/none",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let rotated = ok(&["issuer", "rotate"]);
    assert!(rotated.starts_with("new signing key "), "{rotated}");
    ok(&[
        "entitlements",
        "purchase",
        "duo_enterprise",
        "--namespace",
        "acme",
        "--delete",
    ]);
    let out = d.cli(
        &[
            "token",
            "issue",
            "--service",
            "duo_chat",
            "--namespace",
            "acme/web",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_access"));
}

#[test]
fn check_config_reads_the_catalog_but_makes_no_keys() {
    let certs = tempfile::tempdir().unwrap();
    throwaway_server_cert(certs.path());
    let s = setup(19147, certs.path(), "");
    let d = Daemon::prepare(&s);
    std::fs::write(d.dir().join("catalog.yml"), CATALOG).unwrap();
    let out = Command::new(gatehouse_e2e::bin("gatehoused"))
        .arg("--check-config")
        .arg(&d.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // the keyring is in the store, and the check opens a scratch store
    assert!(!d.dir().join("state/gatehouse.db").exists());
    assert!(!d.dir().join("state/issuer-keys.json").exists());
    // and a broken catalog fails the check with its file and line
    std::fs::write(
        d.dir().join("catalog.yml"),
        "services:\n  x:\n    cut_off_date: soon\n",
    )
    .unwrap();
    let out = Command::new(gatehouse_e2e::bin("gatehoused"))
        .arg("--check-config")
        .arg(&d.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("catalog.yml:3"), "{err}");
}

#[test]
fn check_config_leaves_a_keyring_credential_to_the_unit_or_reads_it_from_a_directory() {
    use base64::Engine as _;
    let certs = tempfile::tempdir().unwrap();
    throwaway_server_cert(certs.path());
    let s = setup(19148, certs.path(), "keyring_key_credential = \"keyring.key\"");
    let d = Daemon::prepare(&s);
    std::fs::write(d.dir().join("catalog.yml"), CATALOG).unwrap();
    let check = |dir: Option<&Path>| {
        let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
        cmd.arg("--check-config")
            .arg(&d.config)
            .env_remove("CREDENTIALS_DIRECTORY");
        if let Some(dir) = dir {
            cmd.arg("--credentials-dir").arg(dir);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // outside the unit: a note, not an error
    let (ok, err) = check(None);
    assert!(ok, "{err}");
    assert!(
        err.contains("issuer.keyring_key_credential") && err.contains("not checked outside the unit"),
        "{err}"
    );
    // with the unit's credentials: read and checked, the value never shown
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("keyring.key"), "c2hvcnQ=\n").unwrap();
    let (ok, err) = check(Some(creds.path()));
    assert!(!ok);
    assert!(
        err.contains("issuer.keyring_key") && err.contains("32 random bytes"),
        "{err}"
    );
    assert!(!err.contains("c2hvcnQ="), "{err}");
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    std::fs::write(creds.path().join("keyring.key"), format!("{key}\n")).unwrap();
    let (ok, err) = check(Some(creds.path()));
    assert!(ok, "{err}");
    assert!(!err.contains("not checked"), "{err}");
    // a credential the directory lacks is an error there
    std::fs::remove_file(creds.path().join("keyring.key")).unwrap();
    let (ok, err) = check(Some(creds.path()));
    assert!(!ok && err.contains("issuer.keyring_key"), "{err}");
}
