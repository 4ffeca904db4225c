//! A login's writes are one store transaction: concurrent first logins of
//! one new identity make exactly one user (and all succeed), and what a
//! login reports as created was created by it.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{Client, Daemon, Setup, install_plugin, login, plugin_library};
use serde_json::json;

const BODY: &str = r#"
[lockout]
max_failures = 1000
max_failures_per_peer = 1000

[[authenticators]]
name = "Directory"
type = "testkit_users"
create_objects = true
[authenticators.settings]
password = "directory password"
[authenticators.settings.users.newcomer]
email = "newcomer@example.test"
groups = ["staff"]

[[authenticators.maps]]
name = "staff into Engineering"
map_type = "team"
organization = "Engineering"
team = "Platform"
triggers.groups = { has_or = ["staff"] }
"#;

fn daemon() -> Daemon {
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: BODY.into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_first_logins_make_one_user_and_all_succeed() {
    let d = daemon();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let socket = d.socket.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&socket).await.unwrap();
            let a = c
                .post(
                    "/v1/login",
                    &json!({"username": "newcomer", "password": "directory password", "explain": true}),
                )
                .await
                .unwrap();
            (a.status, a.value())
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = Vec::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["user"]["username"], "newcomer");
        ids.insert(v["user"]["id"].as_str().unwrap().to_owned());
        created.extend(
            v["explanation"]["applied"]["created"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned()),
        );
        assert_eq!(
            v["teams"],
            json!([{"name": "Platform", "organization": "Engineering", "admin": false}])
        );
    }
    assert_eq!(ids.len(), 1, "one user: {ids:?}");
    // each object was reported created by exactly one login
    created.sort();
    assert_eq!(created, ["organization Engineering", "team Engineering/Platform"]);
    let mut c = d.client().await;
    let users = c.get("/v1/users").await.unwrap().value();
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
    // and logins keep working afterwards
    assert_eq!(login(&mut c, "newcomer", "directory password").await.status, 200);
}
