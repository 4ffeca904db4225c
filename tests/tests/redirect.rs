//! Redirect logins (`/v1/login/start` → identity provider → `/v1/login/finish`)
//! with the `testkit_redirect` fixture, in all three plugin modes: a
//! library in the daemon's process, a library in a child host, and the
//! plugin linked into the daemon (in-process tier). The `state` is single
//! use, expires, and only ever comes from a start; a challenge may follow
//! the identity provider.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use gatehouse_daemon::client::Client;
use gatehouse_e2e::{Daemon, InProcess, Setup, daemon_with_plugins};
use serde_json::json;

const BODY: &str = r#"
[lockout]
max_failures = 100

[[authenticators]]
name = "Local Database"
type = "local"
[authenticators.settings]
argon2_memory_kib = 64
argon2_iterations = 1

[[authenticators]]
name = "Corp IdP"
type = "testkit_redirect"
isolation = "ISOLATION"
[authenticators.settings]
idp_url = "https://idp.example.test/authorize"
[authenticators.settings.users.alice]
email = "alice@example.test"
groups = ["devs"]
[authenticators.settings.users.bob]
second_factor = true
"#;

const PUBLIC_URL: &str = "public_url = \"https://app.example.test/auth\"";

fn body(isolation: &str) -> String {
    BODY.replace("ISOLATION", isolation)
}

/// A daemon loading the testkit library from `plugin_dirs`.
fn library_daemon(isolation: &str) -> Daemon {
    let setup = Setup {
        daemon_extra: PUBLIC_URL.into(),
        ..Setup::with_body(&body(isolation))
    };
    daemon_with_plugins(setup, &["gatehouse_plugin_testkit"])
}

/// Starts a redirect login; returns (state, nonce the "provider" sees).
async fn start(c: &mut Client, return_to: Option<&str>) -> (String, String) {
    let mut req = json!({"authenticator": "Corp IdP"});
    if let Some(r) = return_to {
        req["return_to"] = json!(r);
    }
    let a = c.post("/v1/login/start", &req).await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    let url = v["redirect_url"].as_str().unwrap().to_owned();
    let state = v["state"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://idp.example.test/authorize?"), "{url}");
    assert!(state.len() >= 32, "a long random state: {state}");
    assert!(url.contains(&format!("state={state}")), "{url}");
    assert!(
        url.contains("redirect_uri=https%3A%2F%2Fapp.example.test%2Fauth%2Fcallback%2FCorp%2520IdP"),
        "the callback URL derived from public_url: {url}"
    );
    let nonce = url
        .split("nonce=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    (state, nonce)
}

async fn finish(
    c: &mut Client,
    params: serde_json::Value,
    explain: bool,
) -> gatehouse_daemon::client::Answer {
    c.post(
        "/v1/login/finish",
        &json!({"authenticator": "Corp IdP", "params": params, "explain": explain}),
    )
    .await
    .unwrap()
}

fn reason(a: &gatehouse_daemon::client::Answer) -> String {
    a.value()["error"]["details"]["explanation"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Every case, against one daemon whose store is at `db`.
async fn suite(socket: &Path, db: &Path) {
    let mut c = Client::connect(socket).await.unwrap();
    // start → provider → finish
    let (state, nonce) = start(&mut c, Some("/after/login")).await;
    let params = json!({"state": state, "code": format!("alice.{nonce}")});
    let ok = finish(&mut c, params.clone(), false).await;
    assert_eq!(ok.status, 200, "{:?}", ok.value());
    let v = ok.value();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["user"]["email"], "alice@example.test");
    assert_eq!(v["authenticator"], "Corp IdP");
    assert_eq!(v["groups"], json!(["devs"]));
    assert_eq!(v["return_to"], "/after/login");

    // the same callback again: the state is used up
    let replay = finish(&mut c, params, true).await;
    assert_eq!(
        (replay.status, replay.code().as_deref()),
        (401, Some("invalid_credentials"))
    );
    assert_eq!(reason(&replay), "replayed_state");

    // a state no start issued
    let unknown = finish(
        &mut c,
        json!({"state": "made-up-state", "code": format!("alice.{nonce}")}),
        true,
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(reason(&unknown), "unknown_state");

    // an expired state (the store's clock moved on)
    let (state, nonce) = start(&mut c, None).await;
    let conn = rusqlite::Connection::open(db).unwrap();
    assert_eq!(
        conn.execute(
            "UPDATE pending_logins SET expires_at = 1 WHERE kind = 'redirect' AND used_at IS NULL",
            []
        )
        .unwrap(),
        1
    );
    let expired = finish(
        &mut c,
        json!({"state": state, "code": format!("alice.{nonce}")}),
        true,
    )
    .await;
    assert_eq!(expired.status, 401);
    assert_eq!(reason(&expired), "expired_state");

    // a provider answer for another start's nonce is refused, and the
    // state is spent by the attempt
    let (state, _) = start(&mut c, None).await;
    let (_, other_nonce) = start(&mut c, None).await;
    let forged = finish(
        &mut c,
        json!({"state": state, "code": format!("alice.{other_nonce}")}),
        false,
    )
    .await;
    assert_eq!(forged.status, 401, "{:?}", forged.value());

    // no state at all: an unsolicited callback, refused by this plugin
    let unsolicited = finish(&mut c, json!({"user": "alice"}), false).await;
    assert_eq!(unsolicited.status, 401);

    // two finishes racing with one state: exactly one wins
    let (state, nonce) = start(&mut c, None).await;
    let params = json!({"state": state, "code": format!("alice.{nonce}")});
    let mut c2 = Client::connect(socket).await.unwrap();
    let (a, b) = tokio::join!(
        finish(&mut c, params.clone(), false),
        finish(&mut c2, params, false)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);

    // a second factor after the provider, then done
    let (state, nonce) = start(&mut c, Some("/mfa")).await;
    let step = finish(
        &mut c,
        json!({"state": state, "code": format!("bob.{nonce}")}),
        false,
    )
    .await;
    assert_eq!(step.status, 200);
    let v = step.value();
    assert_eq!(v["status"], "challenge", "{v}");
    assert_eq!(v["prompt"], "Authenticator code:");
    let login_id = v["login_id"].as_str().unwrap().to_owned();
    let wrong = c
        .post(
            "/v1/login/continue",
            &json!({"login_id": login_id, "response": "000000"}),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    let (state, nonce) = start(&mut c, Some("/mfa")).await;
    let v = finish(
        &mut c,
        json!({"state": state, "code": format!("bob.{nonce}")}),
        false,
    )
    .await
    .value();
    let done = c
        .post(
            "/v1/login/continue",
            &json!({"login_id": v["login_id"], "response": "654321"}),
        )
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{:?}", done.value());
    assert_eq!(done.value()["user"]["username"], "bob");
    assert_eq!(done.value()["return_to"], "/mfa");

    // the published metadata names the derived callback URL
    let m = c.get("/v1/authenticators/Corp%20IdP/metadata").await.unwrap();
    assert_eq!(m.status, 200);
    assert_eq!(
        m.headers.get("content-type").unwrap().to_str().unwrap(),
        "application/samlmetadata+xml"
    );
    let xml = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        xml.contains("Location=\"https://app.example.test/auth/callback/Corp%20IdP\""),
        "{xml}"
    );
    let none = c
        .get("/v1/authenticators/Local%20Database/metadata")
        .await
        .unwrap();
    assert_eq!(none.status, 404);

    // each flow at its own endpoints
    let a = c
        .post("/v1/login/start", &json!({"authenticator": "Local Database"}))
        .await
        .unwrap();
    assert_eq!((a.status, a.code().as_deref()), (409, Some("flow_mismatch")));
    let a = c
        .post(
            "/v1/login",
            &json!({"username": "alice", "password": "x", "authenticator": "Corp IdP"}),
        )
        .await
        .unwrap();
    assert_eq!((a.status, a.code().as_deref()), (409, Some("flow_mismatch")));
    let a = c
        .post("/v1/login/start", &json!({"authenticator": "No Such"}))
        .await
        .unwrap();
    assert_eq!(a.code().as_deref(), Some("unknown_authenticator"));

    // one user per identity, however many logins
    let users = c.get("/v1/users").await.unwrap().value();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
}

#[tokio::test]
async fn redirect_logins_through_a_library_in_process() {
    let d = library_daemon("in_process");
    suite(&d.socket, &d.dir().join("state/gatehouse.db")).await;
}

#[tokio::test]
async fn redirect_logins_through_an_isolated_child() {
    let d = library_daemon("process");
    suite(&d.socket, &d.dir().join("state/gatehouse.db")).await;
}

#[tokio::test]
async fn redirect_logins_through_a_linked_plugin() {
    assert!(gatehouse_daemon::registry::linked::link(Box::new(gatehouse_plugin_testkit::Testkit)).is_ok());
    let d = InProcess::start(Setup {
        daemon_extra: PUBLIC_URL.into(),
        body: body("in_process"),
        ..Setup::default()
    })
    .await;
    suite(&d.socket, &d.dir().join("state/gatehouse.db")).await;
}

#[tokio::test]
async fn the_cli_starts_and_finishes_a_redirect_login() {
    let d = library_daemon("in_process");
    let out = d.cli(&["login", "--start", "Corp IdP"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap();
    let url = url.trim();
    assert!(
        url.starts_with("https://idp.example.test/authorize?state="),
        "{url}"
    );
    // The provider sends the browser back with state and code.
    let query = url.split_once('?').unwrap().1;
    let state = query.split('&').find_map(|p| p.strip_prefix("state=")).unwrap();
    let nonce = query.split('&').find_map(|p| p.strip_prefix("nonce=")).unwrap();
    let params = format!("state={state}&code=alice.{nonce}");
    let out = d.cli(&["login", "--finish", "Corp IdP", "--params", &params], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("logged in as alice"));
    // the same callback again: refused (invalid_credentials), exit code 5
    let out = d.cli(&["login", "--finish", "Corp IdP", "--params", &params], "");
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // a second factor is asked on the terminal (stdin here)
    let out = d.cli(&["login", "--start", "Corp IdP"], "");
    let url = String::from_utf8(out.stdout).unwrap();
    let query = url.trim().split_once('?').unwrap().1.to_owned();
    let state = query.split('&').find_map(|p| p.strip_prefix("state=")).unwrap();
    let nonce = query.split('&').find_map(|p| p.strip_prefix("nonce=")).unwrap();
    let params = format!("state={state}&code=bob.{nonce}");
    let out = d.cli(
        &["login", "--finish", "Corp IdP", "--params", &params],
        "654321\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("logged in as bob"));
}
