//! The in-process tier ([`InProcess`]): the daemon booted inside the test
//! process through `gatehouse_daemon::run(daemon, listener, shutdown)`.
//! Fast API tests ported from `api.rs` and `reload.rs` (which keep running
//! against the binary), and the shutdown future itself.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gatehouse_e2e::{InProcess, LOCAL_AUTH, Setup, add_user, login};
use serde_json::json;

#[tokio::test]
async fn health_and_authenticators() {
    let d = InProcess::start(Setup::default()).await;
    let mut c = d.client().await;
    let h = c.get("/v1/health").await.unwrap();
    assert_eq!(h.status, 200);
    let v = h.value();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["generation"], 1);
    assert_eq!(v["authenticators"], 1);
    assert_eq!(v["verifiers"], 0);
    assert!(v["last_reload_error"].is_null());
    let a = c.get("/v1/authenticators").await.unwrap().value();
    assert_eq!(
        a,
        json!({"authenticators": [
            {"name": "Local Database", "type": "local", "enabled": true, "order": 1, "flow": "password"}
        ]})
    );
}

#[tokio::test]
async fn login_success_and_failure() {
    let d = InProcess::start(Setup::default()).await;
    let mut c = d.client().await;
    let created = add_user(&mut c, "Alice", "correct horse").await;
    assert_eq!(created.status, 201, "{:?}", created.value());
    assert_eq!(created.value()["username"], "alice");
    let ok = login(&mut c, "ALICE", "correct horse").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.value()["user"]["username"], "alice");
    for (user, pw) in [("alice", "wrong horse"), ("nobody-here", "correct horse")] {
        let bad = login(&mut c, user, pw).await;
        assert_eq!(bad.status, 401, "{user}");
        assert_eq!(bad.code().as_deref(), Some("invalid_credentials"));
    }
    // the same state the socket changed
    let rt = d.state().runtime();
    assert!(rt.store.user_by_username("alice").await.unwrap().is_some());
}

#[tokio::test]
async fn reload_by_api_and_by_file_change() {
    let d = InProcess::start(Setup::default()).await;
    let mut c = d.client().await;
    let second = format!(
        "{LOCAL_AUTH}\n[[authenticators]]\nname = \"Second\"\ntype = \"local\"\n[authenticators.settings]\nmin_password_length = 8\n"
    );
    d.write_config(&Setup::with_body(&second));
    let a = c.post("/v1/reload", &json!({})).await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert_eq!(d.state().runtime().authenticators.len(), 2);

    // a broken file: the watcher's reload fails and the running
    // configuration stays. (Not compared by generation: the watcher may
    // still be reloading the file written above, a good reload of its own,
    // when the generation would be read.)
    d.write_config(&Setup::with_body("[[authenticators]]\nname = \"X\"\nbogus = 1\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.state().last_reload_error().is_none() {
        assert!(Instant::now() < deadline, "the watcher did not reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running: Vec<String> = d
        .state()
        .runtime()
        .authenticators
        .iter()
        .map(|a| a.spec.name.clone())
        .collect();
    assert_eq!(running.len(), 2, "{running:?}");
    assert!(running.iter().any(|n| n == "Second"), "{running:?}");
    let health = c.get("/v1/health").await.unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.value()["generation"], d.state().runtime().generation);
}

#[tokio::test]
async fn the_shutdown_future_stops_the_daemon_gracefully() {
    let d = InProcess::start(Setup::default()).await;
    let socket = d.socket.clone();
    // a keep-alive connection that has been served
    let mut c = d.client().await;
    assert_eq!(c.get("/v1/health").await.unwrap().status, 200);
    tokio::time::timeout(Duration::from_secs(10), d.stop())
        .await
        .expect("run returns once the shutdown future resolves")
        .unwrap();
    assert!(!socket.exists(), "the socket file is removed");
    assert!(gatehouse_e2e::Client::connect(&socket).await.is_err());
}
