//! Challenges: `/v1/login` answers `challenge`, `/v1/login/continue`
//! finishes (or asks again); login ids are single-use and bound to the
//! peer; the CLI answers prompts. Through the C ABI and a child host.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{Daemon, Setup, install_plugin, login, plugin_library};
use serde_json::json;

fn start(isolation: &str) -> Daemon {
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: format!(
            "[lockout]\nmax_failures = 100\n[[authenticators]]\nname = \"OTP\"\ntype = \"testkit_otp\"\nisolation = \"{isolation}\"\n"
        ),
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    install_plugin(
        &d.dir().join("plugins"),
        &plugin_library("gatehouse_plugin_testkit"),
    );
    let mut cmd = std::process::Command::new(gatehouse_e2e::bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    d.spawn_with(cmd)
}

async fn flow(d: &Daemon) {
    let mut c = d.client().await;
    let a = login(&mut c, "uma", "otp-password").await;
    assert_eq!(a.status, 200);
    let v = a.value();
    assert_eq!(v["status"], "challenge", "{v}");
    assert_eq!(v["prompt"], "Code:");
    assert_eq!(v["echo"], false);
    let id = v["login_id"].as_str().unwrap().to_owned();

    // a wrong code: 401, and the id is used up
    let wrong = c
        .post(
            "/v1/login/continue",
            &json!({"login_id": id, "response": "000000"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (wrong.status, wrong.code().as_deref()),
        (401, Some("invalid_credentials"))
    );
    let again = c
        .post(
            "/v1/login/continue",
            &json!({"login_id": id, "response": "123456"}),
        )
        .await
        .unwrap();
    assert_eq!(again.status, 400, "single use");

    // a second challenge, then the right code
    let v = login(&mut c, "uma", "otp-password").await.value();
    let id = v["login_id"].as_str().unwrap().to_owned();
    let second = c
        .post(
            "/v1/login/continue",
            &json!({"login_id": id, "response": "again"}),
        )
        .await
        .unwrap()
        .value();
    assert_eq!(second["status"], "challenge");
    assert_eq!(second["echo"], true);
    let id2 = second["login_id"].as_str().unwrap();
    let done = c
        .post(
            "/v1/login/continue",
            &json!({"login_id": id2, "response": "123456"}),
        )
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{:?}", done.value());
    assert_eq!(done.value()["user"]["username"], "uma");
    assert_eq!(done.value()["authenticator"], "OTP");

    // a wrong password never reaches the challenge
    assert_eq!(login(&mut c, "uma", "nope").await.status, 401);

    // the CLI answers the prompt from stdin
    let out = d.cli(&["login", "uma"], "otp-password\n123456\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("logged in as uma"));
    let out = d.cli(&["login", "uma"], "otp-password\n999999\n");
    assert_eq!(out.status.code(), Some(5), "wrong credentials");
}

#[tokio::test]
async fn challenges_in_process() {
    flow(&start("in_process")).await;
}

#[tokio::test]
async fn challenges_through_a_child_host() {
    flow(&start("process")).await;
}

#[tokio::test]
async fn another_peer_cannot_answer() {
    if !gatehouse_e2e::is_root() {
        eprintln!("skipped: needs root to act as another uid");
        return;
    }
    let d = start("in_process");
    let mut c = d.client().await;
    let v = login(&mut c, "uma", "otp-password").await.value();
    let id = v["login_id"].as_str().unwrap().to_owned();
    // nobody tries the id through a raw request on the socket
    let body = json!({"login_id": id, "response": "123456"}).to_string();
    let out = gatehouse_e2e::run_with_stdin(
        std::process::Command::new("runuser")
            .args([
                "-u",
                "nobody",
                "--",
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--unix-socket",
            ])
            .arg(&d.socket)
            .args([
                "-H",
                "content-type: application/json",
                "-d",
                &body,
                "http://x/v1/login/continue",
            ]),
        "",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
    // the rightful peer still can
    let done = c
        .post(
            "/v1/login/continue",
            &json!({"login_id": id, "response": "123456"}),
        )
        .await
        .unwrap();
    assert_eq!(done.status, 200);
}
