//! User administration and peer credentials: the CLI and the API, an admin
//! peer and a real second uid.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{Daemon, Setup, add_user, is_root, login};

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn cli_user_add_then_login_by_cli_and_api() {
    let d = Daemon::start(Setup::default());
    let out = d.cli(
        &["user", "add", "Erin", "--email", "erin@example.test"],
        "erin's password\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = d.cli(&["login", "erin"], "erin's password\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("logged in as erin"));

    let out = d.cli(&["login", "erin"], "not her password\n");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));

    let mut c = d.client().await;
    let a = login(&mut c, "erin", "erin's password").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.value()["user"]["email"], "erin@example.test");

    // list (text and JSON)
    let out = d.cli(&["user", "list"], "");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("erin"),
        "{}",
        text(&out)
    );
    let out = d.cli(&["--json", "user", "list"], "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["users"][0]["username"], "erin");

    // passwd, then the old password stops working
    let out = d.cli(&["user", "passwd", "erin"], "a brand new one\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(login(&mut c, "erin", "erin's password").await.status, 401);
    assert_eq!(login(&mut c, "erin", "a brand new one").await.status, 200);

    // duplicates and weak passwords are refused with codes
    let dup = add_user(&mut c, "ERIN", "whatever long").await;
    assert_eq!((dup.status, dup.code().as_deref()), (409, Some("conflict")));
    let weak = add_user(&mut c, "frank", "short").await;
    assert_eq!(
        (weak.status, weak.code().as_deref()),
        (422, Some("unprocessable"))
    );
    let bad = add_user(&mut c, "has space", "long enough pw").await;
    assert_eq!(bad.status, 400);

    // del
    let out = d.cli(&["user", "del", "erin"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(login(&mut c, "erin", "a brand new one").await.status, 401);
    let out = d.cli(&["user", "del", "erin"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // the password never reaches the log
    let logs = d.logs();
    assert!(
        !logs.contains("erin's password") && !logs.contains("a brand new one"),
        "{logs}"
    );
}

#[tokio::test]
async fn non_ascii_usernames_and_passwords() {
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "Jürgen", "jürgenpass").await.status, 201);
    assert_eq!(login(&mut c, "jürgen", "jürgenpass").await.status, 200);
    assert_eq!(login(&mut c, "JÜRGEN", "jürgenpass").await.status, 200);
    let out = d.cli(&["user", "passwd", "jürgen"], "zoë's secret\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(login(&mut c, "jürgen", "zoë's secret").await.status, 200);
}

#[tokio::test]
async fn a_non_admin_peer_is_refused_admin_endpoints() {
    if !is_root() {
        eprintln!("skipped: needs root to run the CLI as another uid");
        return;
    }
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "gina", "gina password").await.status, 201);

    // nobody may use client endpoints…
    let out = d.cli_as("nobody", &["status"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = d.cli_as("nobody", &["login", "gina"], "gina password\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // …but not admin ones: 403 forbidden, and nothing changes
    for args in [
        vec!["reload"],
        vec!["user", "list"],
        vec!["user", "add", "mallory"],
        vec!["user", "passwd", "gina"],
        vec!["user", "del", "gina"],
    ] {
        let out = d.cli_as(
            "nobody",
            &[&["--json"], args.as_slice()].concat(),
            "mallory password\n",
        );
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert_eq!(v["error"]["code"], "forbidden", "{args:?}: {}", text(&out));
    }
    assert_eq!(login(&mut c, "gina", "gina password").await.status, 200);
    let h = c.get("/v1/health").await.unwrap().value();
    assert_eq!(h["generation"], 1);

    // client_uids restricts client endpoints as well
    let uid_of_nobody = 65534;
    d.write_config(&Setup::with_body(&format!(
        "[access]\nclient_uids = [0]\nadmin_uids = [0]\n{}",
        gatehouse_e2e::LOCAL_AUTH
    )));
    d.wait_generation(2).await;
    let out = d.cli_as("nobody", &["--json", "status"], "");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("forbidden"));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&uid_of_nobody.to_string()));

    // and admin_uids can name another uid
    d.write_config(&Setup::with_body(&format!(
        "[access]\nadmin_uids = [0, {uid_of_nobody}]\n{}",
        gatehouse_e2e::LOCAL_AUTH
    )));
    d.wait_generation(3).await;
    let out = d.cli_as("nobody", &["reload"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test]
async fn explain_is_for_admins() {
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "hank", "hank password").await.status, 201);
    let a = c
        .post(
            "/v1/login",
            &serde_json::json!({"username": "hank", "password": "hank password", "explain": true}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(
        a.value()["explanation"]["authenticators"][0]["outcome"],
        "accepted",
        "{:?}",
        a.value()
    );
}

#[tokio::test]
async fn changed_hash_parameters_rehash_on_login() {
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "ivy", "ivy password").await.status, 201);
    let db = d.dir().join("state/gatehouse.db");
    let stored = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT password_hash FROM users WHERE username = 'ivy'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap()
    };
    let before = stored();
    assert!(before.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{before}");

    d.write_config(&Setup::with_body(
        &gatehouse_e2e::LOCAL_AUTH.replace("argon2_memory_kib = 64", "argon2_memory_kib = 128"),
    ));
    d.wait_generation(2).await;
    // a wrong password changes nothing
    assert_eq!(login(&mut c, "ivy", "not ivy's").await.status, 401);
    assert_eq!(stored(), before);
    // the right one is accepted and the hash upgraded
    assert_eq!(login(&mut c, "ivy", "ivy password").await.status, 200);
    let after = stored();
    assert!(after.starts_with("$argon2id$v=19$m=128,t=1,p=1$"), "{after}");
    assert_eq!(login(&mut c, "ivy", "ivy password").await.status, 200);
}
