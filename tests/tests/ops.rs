//! What operators see: `gatehouse status` with each backend's state, the
//! CLI's documented exit statuses and messages that say what to do.
//! Ports 19460–19489 are this file's.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::process::LOCAL_AUTH;
use gatehouse_e2e::{Daemon, Setup, oidc_start, oidc_stop};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Oidc(&'static str);
impl Drop for Oidc {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| oidc_stop(self.0));
    }
}

/// `gatehouse status` printed a count of authenticators and verifiers and
/// exited 0 whatever their backends did. It shows each one's state now,
/// the keys per issuer, and exits 6 once a backend is offline.
#[tokio::test]
async fn status_shows_each_backend_and_exits_6_when_one_is_offline() {
    let _o = Oidc("ops-status");
    let issuer = oidc_start("ops-status", 19462);
    let setup = Setup::with_body(&format!(
        r#"{LOCAL_AUTH}
[[authenticators]]
name = "Directory"
type = "ldap"
[authenticators.settings]
server_uri = "ldap://127.0.0.1:19460"
user_dn_template = "uid=%(user)s,ou=people,dc=example,dc=test"

[[verifiers]]
name = "cloud"
type = "jwt"
[verifiers.settings]
audience = "x"
issuers = ["{issuer}", "http://127.0.0.1:19461"]
"#
    ));
    let d = Daemon::start(setup);
    // the reachable issuer's keys are fetched in the background
    let mut out = d.cli(&["status"], "");
    for _ in 0..50 {
        if text(&out).contains(&format!("issuer {issuer}: ")) && !text(&out).contains("fetched never;") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        out = d.cli(&["status"], "");
    }
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("Directory") && t.contains("unknown"),
        "not called yet: {t}"
    );
    assert!(
        t.lines()
            .any(|l| l.contains(&format!("issuer {issuer}:")) && !l.contains("fetched never")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.contains("issuer http://127.0.0.1:19461: 0 key(s), fetched never; last fetch failed")),
        "{t}"
    );

    // a login finds the directory down
    let login = d.cli(&["login", "--authenticator", "Directory", "alice"], "pw\n");
    assert_ne!(login.status.code(), Some(0), "{}", text(&login));
    let out = d.cli(&["status"], "");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(6), "{t}");
    assert!(t.contains("status:         degraded"), "{t}");
    let line = t.lines().find(|l| l.contains("Directory")).unwrap();
    assert!(line.contains("offline since 20"), "{t}");
    assert!(t.contains("last error: "), "{t}");

    // the same as JSON
    let out = d.cli(&["--json", "status"], "");
    assert_eq!(out.status.code(), Some(6));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "Directory")
        .unwrap();
    assert_eq!(dir["state"], "offline", "{v}");
    assert!(dir["offline_since"].is_string(), "{v}");
    let local = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "Local Database")
        .unwrap();
    assert_eq!(local["state"], "unknown", "{v}");
    assert!(v["last_reload_ok_at"].is_string(), "{v}");

    // a peer that is not an admin reads the health part only
    let out = d.cli_as("nobody", &["status"], "");
    let t = text(&out);
    assert!(t.contains("admin only"), "{t}");
    assert!(!t.contains("Directory"), "{t}");
}

/// A failed reload makes `status` exit 6 too, and a good one clears it.
#[tokio::test]
async fn status_exits_6_after_a_failed_reload() {
    let d = Daemon::start(Setup::default());
    assert_eq!(d.cli(&["status"], "").status.code(), Some(0));
    d.write_config(&Setup::with_body(
        "[[authenticators]]\nname = \"x\"\ntype = \"nope\"\n",
    ));
    let reload = d.cli(&["reload"], "");
    assert_eq!(reload.status.code(), Some(1), "{}", text(&reload));
    let out = d.cli(&["status"], "");
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("last reload:    FAILED"), "{}", text(&out));
    d.write_config(&Setup::default());
    assert_eq!(d.cli(&["reload"], "").status.code(), Some(0));
    assert_eq!(d.cli(&["status"], "").status.code(), Some(0));
}

/// Every failure exited 1 or 2: the kinds an operator scripts against
/// have their own status now, and the message says what to do.
#[tokio::test]
async fn exit_statuses_tell_failures_apart_and_messages_say_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start(Setup::default());
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    // usage
    assert_eq!(d.cli(&["no-such-command"], "").status.code(), Some(2));
    // daemon unreachable
    let out = std::process::Command::new(gatehouse_e2e::process::bin("gatehouse"))
        .args(["--socket", "/tmp/gh-ops-no-such.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("is gatehoused running?"), "{}", text(&out));
    // permission denied on the socket, with the group to join
    let out = d.cli_as("nobody", &["status"], "");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("0600 root:root: add your user to the root group"),
        "{}",
        text(&out)
    );
    // wrong password
    let out = d.cli(&["user", "add", "ann"], "ann's password\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = d.cli(&["login", "ann"], "not ann's password\n");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_eq!(
        d.cli(&["login", "ann"], "ann's password\n").status.code(),
        Some(0)
    );
    // the daemon refused
    let out = d.cli(&["verify", "not-a-token"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// An admin command from a peer that is not an admin: 4, with the
/// `[access]` keys to change.
#[tokio::test]
async fn forbidden_is_a_permission_failure_naming_the_access_keys() {
    let d = Daemon::start(Setup::default());
    let out = d.cli_as("nobody", &["user", "list"], "");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("[access] admin_uids"), "{}", text(&out));
}

/// `gatehouse verify` on a valid static-object token answered
/// `backend_unavailable`, and an unknown one was counted as a
/// `bad_signature`.
#[tokio::test]
async fn verify_checks_static_object_tokens_and_counts_unknown_ones_as_such() {
    let d = Daemon::prepare(&Setup::default());
    std::fs::write(d.dir().join("storage-token"), "a-long-storage-token-value\n").unwrap();
    let setup = Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[[verifiers]]\nname = \"static\"\ntype = \"static_object\"\n[verifiers.settings]\nstorage_token_file = \"storage-token\"\n"
    ));
    d.write_config(&setup);
    let d = d.spawn(&setup);
    assert_eq!(
        d.cli(&["user", "add", "sam"], "sam's password\n").status.code(),
        Some(0)
    );
    let out = d.cli(&["static-token", "create", "sam"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    let out = d.cli(&["verify", "-"], &format!("{token}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("valid (verifier static)"), "{}", text(&out));
    assert!(text(&out).contains("subject:  sam"), "{}", text(&out));

    let out = d.cli(&["--json", "verify", "-"], "not-a-known-token\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("\"reason\":\"unknown_token\""),
        "{}",
        text(&out)
    );
    let metrics = d.client().await.get("/v1/metrics").await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        metrics.contains("gatehouse_token_checks_total{verifier=\"static\",outcome=\"unknown_token\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("bad_signature"), "{metrics}");
    assert!(!metrics.contains("unavailable"), "{metrics}");
}
