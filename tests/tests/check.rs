//! `GET /v1/check` forward-auth through the socket (nginx, Traefik and
//! Envoy header styles), `[[routes]]`, and static-object tokens.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{Daemon, Setup, add_user, forward_auth_body as body};
use http::Method;
use serde_json::json;

use gatehouse_e2e::{LOCAL_AUTH, STORAGE, forward_auth_daemon as start, oidc_start, oidc_stop, oidc_token};

async fn check(d: &Daemon, headers: &[(&str, &str)]) -> (u16, http::HeaderMap) {
    let mut c = d.client().await;
    let a = c.send_raw_with(Method::GET, "/v1/check", headers).await.unwrap();
    (a.status, a.headers)
}

#[tokio::test]
async fn jwt_routes_in_every_proxy_style() {
    let d = start();
    // nginx
    let (s, h) = check(
        &d,
        &[
            ("x-original-uri", "/ai/chat?x=1"),
            ("x-original-method", "POST"),
            ("authorization", "Bearer tok-good"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-gatehouse-user"], "alice");
    assert_eq!(h["x-gatehouse-scopes"], "duo_chat");
    assert_eq!(h["x-backend"], "ai-gateway");
    // Traefik
    let (s, _) = check(
        &d,
        &[
            ("x-forwarded-uri", "/ai/chat"),
            ("x-forwarded-method", "GET"),
            ("authorization", "Bearer tok-good"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    // Envoy: the original path follows /v1/check
    let mut c = d.client().await;
    let a = c
        .send_raw_with(
            Method::GET,
            "/v1/check/ai/chat?q=1",
            &[("authorization", "Bearer tok-good")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);

    // 401: no token, a bad one; 403: a method the route does not take, no route
    let (s, h) = check(&d, &[("x-original-uri", "/ai/chat")]).await;
    assert_eq!(s, 401);
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let (s, h) = check(
        &d,
        &[
            ("x-original-uri", "/ai/chat"),
            ("authorization", "Bearer tok-forged"),
        ],
    )
    .await;
    assert_eq!(s, 401);
    assert!(h["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", "/ai/chat"),
            ("authorization", "Bearer tok-revoked"),
        ],
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", "/ai/chat"),
            ("x-original-method", "DELETE"),
            ("authorization", "Bearer tok-good"),
        ],
    )
    .await;
    assert_eq!(s, 403, "no route takes DELETE");
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", "/elsewhere"),
            ("authorization", "Bearer tok-good"),
        ],
    )
    .await;
    assert_eq!(s, 403);

    // route requirements: superuser
    let mut c = d.client().await;
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", "/ai/admin/x"),
            ("authorization", "Bearer tok-good"),
        ],
    )
    .await;
    assert_eq!(s, 403, "alice is not a known superuser");
    assert_eq!(
        c.post(
            "/v1/users",
            &json!({"username": "root", "password": "root password", "is_superuser": true})
        )
        .await
        .unwrap()
        .status,
        201
    );
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", "/ai/admin/x"),
            ("authorization", "Bearer tok-admin"),
        ],
    )
    .await;
    assert_eq!(s, 200);

    // the admin route cannot be reached around its prefix: routes see the
    // path nginx routes (decoded, slashes merged, dot segments resolved)
    for sneaky in [
        "/ai/x/../admin/x",
        "/ai//admin/x",
        "/ai/./admin/x",
        "/ai/%2e%2e/ai/admin/x",
        "/ai%2fadmin/x",
        "/ai/%61dmin/x",
    ] {
        let (s, _) = check(
            &d,
            &[("x-original-uri", sneaky), ("authorization", "Bearer tok-good")],
        )
        .await;
        assert_eq!(s, 403, "{sneaky} reached the admin route as a non-superuser");
    }
    // and a path that climbs above the root, or hides a NUL, is refused
    for bad in ["/ai/../../admin/x", "/ai/%00/x", "/ai/%zz"] {
        let (s, _) = check(
            &d,
            &[("x-original-uri", bad), ("authorization", "Bearer tok-good")],
        )
        .await;
        assert_eq!(s, 403, "{bad}");
    }
    // the query string is no part of the path
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", "/ai/chat?next=/ai/admin/../x"),
            ("authorization", "Bearer tok-good"),
        ],
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn static_object_tokens() {
    let d = start();
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "sam", "sam password").await.status, 201);
    let out = d.cli(&["static-token", "create", "sam", "--name", "ci"], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("ghso_"), "{token}");
    let raw = "/group/project/-/raw/main/README.md";

    // in the query and in the header
    let (s, h) = check(
        &d,
        &[
            ("x-original-uri", &format!("{raw}?token={token}")),
            ("x-gitlab-external-storage-token", STORAGE),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-gatehouse-user"], "sam");
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", "/group/project/-/archive/main/p.zip"),
            ("x-gitlab-external-storage-token", STORAGE),
            ("x-gitlab-static-object-token", &token),
        ],
    )
    .await;
    assert_eq!(s, 200);
    // wrong or missing storage token: 403
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", &format!("{raw}?token={token}")),
            ("x-gitlab-external-storage-token", "wrong-storage-token-xxxx"),
        ],
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = check(&d, &[("x-original-uri", &format!("{raw}?token={token}"))]).await;
    assert_eq!(s, 403);
    // no or unknown user token: 401
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", raw),
            ("x-gitlab-external-storage-token", STORAGE),
        ],
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = check(
        &d,
        &[
            ("x-original-uri", &format!("{raw}?token=ghso_nope")),
            ("x-gitlab-external-storage-token", STORAGE),
        ],
    )
    .await;
    assert_eq!(s, 401);
    // a non-static path is not a static-object request
    let (s, _) = check(
        &d,
        &[
            (
                "x-original-uri",
                &format!("/group/project/-/blob/main/x?token={token}"),
            ),
            ("x-gitlab-external-storage-token", STORAGE),
        ],
    )
    .await;
    assert_eq!(s, 403);
    // revoked
    let list = c.get("/v1/users/sam/static-tokens").await.unwrap().value();
    let id = list["tokens"][0]["id"].as_i64().unwrap();
    let out = d.cli(&["static-token", "revoke", &id.to_string()], "");
    assert_eq!(out.status.code(), Some(0));
    let (s, h) = check(
        &d,
        &[
            ("x-original-uri", &format!("{raw}?token={token}")),
            ("x-gitlab-external-storage-token", STORAGE),
        ],
    )
    .await;
    assert_eq!(s, 401);
    assert!(h["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    // stored hashed: the plain token is nowhere in the database file
    let db = std::fs::read(d.dir().join("state/gatehouse.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
    assert!(!d.logs().contains(&token) && !d.logs().contains(STORAGE));
}

#[tokio::test]
async fn bad_routes_are_config_errors() {
    let d = start();
    let mut c = d.client().await;
    for (route, key) in [
        (
            "[[routes]]\nname = \"x\"\npath_prefix = \"/a\"\nverifier = \"nope\"\n",
            ".verifier",
        ),
        (
            "[[routes]]\nname = \"x\"\npath_regex = \"(\"\nverifier = \"test tokens\"\n",
            ".path_regex",
        ),
        (
            "[[routes]]\nname = \"x\"\nverifier = \"test tokens\"\n",
            "routes[\"x\"]",
        ),
    ] {
        d.write_config(&Setup {
            daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
            body: format!("{}\n{route}", body()),
            ..Setup::default()
        });
        let a = c.post("/v1/reload", &json!({})).await.unwrap();
        assert_eq!(a.status, 422, "{route}");
        let e = a.error().unwrap().error.details.unwrap()["errors"][0].clone();
        assert!(e["key"].as_str().unwrap().contains(key), "{e}");
    }
}

/// Stops the named provider instances when a test ends, however it ends.
struct Instances(Vec<&'static str>);
impl Drop for Instances {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::panic::catch_unwind(|| oidc_stop(n));
        }
    }
}

/// A token's `sub` names a user only through the identity that vouches for
/// it: a token from an issuer that does not vouch for local accounts, whose
/// `sub` happens to be an admin's local username, is refused.
#[tokio::test]
async fn a_subject_is_bound_to_the_issuer_that_vouches_for_it() {
    let _i = Instances(vec!["check-local", "check-other"]);
    let local = oidc_start("check-local", 19121);
    let other = oidc_start("check-other", 19122);
    let d = Daemon::start(Setup::with_body(&format!(
        r#"{LOCAL_AUTH}
[[verifiers]]
name = "sso"
type = "jwt"
[verifiers.settings]
audience = "gitlab-ai-gateway"
issuers = ["{local}", "{other}"]
[verifiers.subjects]
"{local}" = "Local Database"

[[routes]]
name = "admin"
path_prefix = "/admin/"
verifier = "sso"
require_superuser = true

[[routes]]
name = "open"
path_prefix = "/open/"
verifier = "sso"
"#
    )));
    let mut c = d.client().await;
    assert_eq!(
        c.post(
            "/v1/users",
            &json!({"username": "root", "password": "root password", "is_superuser": true})
        )
        .await
        .unwrap()
        .status,
        201
    );
    let admin = |token: &str| format!("Bearer {token}");

    // the issuer bound to the local authenticator speaks for local accounts
    let t = oidc_token("check-local", &["--sub", "root"]);
    let (s, h) = check(
        &d,
        &[("x-original-uri", "/admin/x"), ("authorization", &admin(&t))],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-gatehouse-user"], "root");
    // … and only for existing ones
    let t = oidc_token("check-local", &["--sub", "nobody"]);
    let (s, _) = check(
        &d,
        &[("x-original-uri", "/admin/x"), ("authorization", &admin(&t))],
    )
    .await;
    assert_eq!(s, 403);

    // a valid token from the other issuer with the same `sub`: not root
    let t = oidc_token("check-other", &["--sub", "root"]);
    let (s, _) = check(
        &d,
        &[("x-original-uri", "/open/x"), ("authorization", &admin(&t))],
    )
    .await;
    assert_eq!(s, 200, "the token itself is good");
    let mut c = d.client().await;
    let a = c
        .send_raw_with(
            Method::GET,
            "/v1/check",
            &[("x-original-uri", "/admin/x"), ("authorization", &admin(&t))],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 403);
    let e = a.error().unwrap().error;
    assert_eq!(e.code, "forbidden");
    assert!(e.message.contains("links no subject of issuer"), "{}", e.message);

    // an authenticator named in `subjects` must exist
    d.write_config(&Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[[verifiers]]\nname = \"sso\"\ntype = \"jwt\"\n[verifiers.settings]\n\
         audience = \"a\"\nissuers = [\"{local}\"]\n[verifiers.subjects]\n\"{local}\" = \"Nope\"\n"
    )));
    let a = c.post("/v1/reload", &json!({})).await.unwrap();
    assert_eq!(a.status, 422);
    let e = a.error().unwrap().error.details.unwrap()["errors"][0].clone();
    assert_eq!(e["key"], "verifiers[\"sso\"].subjects", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no authenticator named \"Nope\""),
        "{e}"
    );
}
