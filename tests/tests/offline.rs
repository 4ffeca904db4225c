//! Offline login against a real slapd of the test's own: log in online
//! through LDAP, stop slapd, log in again from the kept verifier (marked
//! offline in the answer and the audit line); a wrong password offline is
//! refused, a verifier older than `offline_max_age` is not used, a user
//! who never logged in online gets `backend_unavailable`, and a password
//! the directory refuses online is forgotten for offline use too.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_e2e::{Client, Daemon, PrivateLdap, Setup};
use serde_json::{Value, json};

const LDAP_PORT: u16 = 19540;
const LDAPS_PORT: u16 = 19541;

fn ldap_entry(name: &str, uri: &str, age: &str) -> String {
    format!(
        "[[authenticators]]\nname = \"{name}\"\ntype = \"ldap\"\noffline_max_age = \"{age}\"\n\
         [authenticators.settings]\nserver_uri = \"{uri}\"\nuser_dn_template = \"uid=%(user)s,ou=users,dc=example,dc=test\"\n"
    )
}

async fn login_at(c: &mut Client, authenticator: &str, user: &str, password: &str) -> (u16, Value) {
    let a = c
        .post(
            "/v1/login",
            &json!({"username": user, "password": password, "authenticator": authenticator}),
        )
        .await
        .unwrap();
    (a.status, a.value())
}

fn audit(d: &Daemon) -> Vec<Value> {
    std::fs::read_to_string(d.dir().join("state/audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sets `uid`'s password in the directory (as its admin).
fn set_ldap_password(uri: &str, uid: &str, password: &str) {
    let ldif = format!(
        "dn: uid={uid},ou=users,dc=example,dc=test\nchangetype: modify\nreplace: userPassword\nuserPassword: {password}\n"
    );
    let mut child = Command::new("ldapmodify")
        .args([
            "-x",
            "-H",
            uri,
            "-D",
            "cn=admin,dc=example,dc=test",
            "-w",
            "adminpass",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn online_then_offline_within_and_past_the_max_age() {
    let run = tempfile::tempdir().unwrap();
    let ldap = PrivateLdap::start(run.path(), LDAP_PORT, LDAPS_PORT);
    let uri = ldap.peer.uri.clone();
    let d = Daemon::start(Setup::with_body(&format!(
        "[lockout]\nmax_failures = 50\nmax_failures_per_peer = 1000\n{}\n{}",
        ldap_entry("corp", &uri, "1h"),
        ldap_entry("brief", &uri, "2s"),
    )));
    let mut c = d.client().await;

    // online: accepted, not offline; a wrong password changes nothing kept
    let (s, v) = login_at(&mut c, "corp", "alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("offline").is_none(), "{v}");
    let alice_id = v["user"]["id"].clone();
    let (s, v) = login_at(&mut c, "brief", "alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    let brief_at = Instant::now();
    assert_eq!(login_at(&mut c, "corp", "alice", "wrong-password").await.0, 401);
    // the verifier is no password: it is an Argon2id hash, never the text
    assert!(!d.logs().contains("alicepass"));

    ldap.stop();
    // offline: the kept verifier answers, and says so
    let (s, v) = login_at(&mut c, "corp", "Alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["offline"], true, "{v}");
    assert_eq!(v["user"]["id"], alice_id);
    assert_eq!(v["authenticator"], "corp");
    let last = audit(&d).into_iter().last().unwrap();
    assert_eq!(
        (last["outcome"].as_str(), last["reason"].as_str()),
        (Some("success"), Some("offline")),
        "{last}"
    );
    // a wrong password offline is refused (and counted)
    let (s, v) = login_at(&mut c, "corp", "alice", "not-alicepass").await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["code"], "invalid_credentials", "{v}");
    // someone who never logged in online: the backend is simply unavailable
    let (s, v) = login_at(&mut c, "corp", "bob", "bobpass").await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "backend_unavailable", "{v}");
    // past offline_max_age: refused as unavailable, the reason audited
    // (ages count in whole seconds: 2 s are surely past after 3.1 s)
    let wait = Duration::from_millis(3_100).saturating_sub(brief_at.elapsed());
    tokio::time::sleep(wait).await;
    let (s, v) = login_at(&mut c, "brief", "alice", "alicepass").await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["details"]["offline"], "expired", "{v}");
    let last = audit(&d).into_iter().last().unwrap();
    assert_eq!(last["reason"], "offline_expired", "{last}");

    // the directory changes alice's password: the old one, refused online,
    // is forgotten for offline use too
    ldap.restart();
    set_ldap_password(&uri, "alice", "alice-new-pass");
    assert_eq!(login_at(&mut c, "corp", "alice", "alicepass").await.0, 401);
    ldap.stop();
    let (s, v) = login_at(&mut c, "corp", "alice", "alicepass").await;
    assert_eq!(s, 503, "the refused password still logs in offline: {v}");
    // and the new one, never accepted online here, is not known either
    assert_eq!(login_at(&mut c, "corp", "alice", "alice-new-pass").await.0, 503);
    // online again: the new password is kept from now on
    ldap.restart();
    assert_eq!(login_at(&mut c, "corp", "alice", "alice-new-pass").await.0, 200);
    ldap.stop();
    let (s, v) = login_at(&mut c, "corp", "alice", "alice-new-pass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["offline"], true);
}

#[tokio::test]
async fn offline_login_is_refused_for_redirect_authenticators_at_load() {
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        ..Setup::with_body(
            "[[authenticators]]\nname = \"idp\"\ntype = \"testkit_redirect\"\noffline_max_age = \"1d\"\n[authenticators.settings]\nidp_url = \"https://idp.example.test/authorize\"\n",
        )
    };
    let d = Daemon::prepare(&setup);
    gatehouse_e2e::install_plugin(
        &d.dir().join("plugins"),
        &gatehouse_e2e::plugin_library("gatehouse_plugin_testkit"),
    );
    let out = Command::new(gatehouse_e2e::bin("gatehoused"))
        .arg("--check-config")
        .arg(&d.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("offline_max_age") && err.contains("redirect"),
        "{err}"
    );
}
