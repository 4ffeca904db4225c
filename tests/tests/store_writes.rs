//! A login's writes are one store transaction: concurrent first logins of
//! one new identity make exactly one user (and all succeed), and what a
//! login reports as created was created by it.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{Client, Daemon, Setup, daemon_with_plugins, login};
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
[authenticators.settings.users.second]
groups = ["staff"]
[authenticators.settings.users.third]
groups = ["staff"]

[[authenticators.maps]]
name = "staff into Engineering"
map_type = "team"
organization = "Engineering"
team = "Platform"
triggers.groups = { has_or = ["staff"] }
"#;

fn daemon() -> Daemon {
    // more workers than cores: logins really run side by side
    let setup = Setup {
        daemon_extra: "worker_threads = 8".into(),
        ..Setup::with_body(BODY)
    };
    daemon_with_plugins(setup, &["gatehouse_plugin_testkit"])
}

/// 20 logins at once of a user the store has never seen.
async fn first_logins_at_once(d: &Daemon, username: &str) -> (Vec<String>, Vec<String>) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let socket = d.socket.clone();
        let username = username.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&socket).await.unwrap();
            let a = c
                .post(
                    "/v1/login",
                    &json!({"username": username, "password": "directory password", "explain": true}),
                )
                .await
                .unwrap();
            (a.status, a.value())
        }));
    }
    let mut ids = Vec::new();
    let mut created = Vec::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["user"]["username"], username);
        ids.push(v["user"]["id"].as_str().unwrap().to_owned());
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
    ids.sort();
    ids.dedup();
    (ids, created)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_first_logins_make_one_user_and_all_succeed() {
    let d = daemon();
    let (ids, mut created) = first_logins_at_once(&d, "newcomer").await;
    assert_eq!(ids.len(), 1, "one user: {ids:?}");
    // each object was reported created by exactly one login
    created.sort();
    assert_eq!(created, ["organization Engineering", "team Engineering/Platform"]);
    // more rounds of new users make the race likelier to show
    for user in ["second", "third"] {
        let (ids, created) = first_logins_at_once(&d, user).await;
        assert_eq!(ids.len(), 1, "one user: {ids:?}");
        assert!(created.is_empty(), "nothing new to create: {created:?}");
    }
    let mut c = d.client().await;
    let users = c.get("/v1/users").await.unwrap().value();
    assert_eq!(users["users"].as_array().unwrap().len(), 3, "{users}");
    // and logins keep working afterwards
    assert_eq!(login(&mut c, "newcomer", "directory password").await.status, 200);
}
