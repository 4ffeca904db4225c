//! `pam_gatehouse.so` in a real PAM stack: `pamtester` runs a service
//! file naming the module, in a private mount namespace whose `/etc/pam.d`
//! is the test's own directory (the machine's PAM files are untouched).
//! Needs root (for `unshare -m`) and `pamtester` (`scripts/setup.sh`).

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, add_user, ldap_peer, login, radius_start, run_with_stdin};

/// This suite's FreeRADIUS instance (its port range is 19490–19499).
const RADIUS_PORT: u16 = 19491;

/// What pamtester reported.
struct Run {
    ok: bool,
    output: String,
    took: Duration,
}

/// Runs `pamtester gh-test USER OPS…` against a service file whose every
/// line is `TYPE required pam_gatehouse.so ARGS`, answering prompts from
/// `stdin` (one line per prompt).
fn pamtester(args: &str, user: &str, ops: &[&str], stdin: &str) -> Run {
    assert!(
        gatehouse_e2e::is_root(),
        "the PAM tests need root (unshare -m, bind mount over /etc/pam.d)"
    );
    let module = gatehouse_e2e::plugin_library("pam_gatehouse");
    let dir = tempfile::tempdir().unwrap();
    let service = ["auth", "account", "password"]
        .iter()
        .map(|t| format!("{t} required {} {args}\n", module.display()))
        .collect::<String>();
    std::fs::write(dir.path().join("gh-test"), service).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        "mount --bind \"$1\" /etc/pam.d && shift && exec pamtester -v gh-test \"$@\"",
        "sh",
    ])
    .arg(dir.path())
    .arg(user)
    .args(ops);
    let t = Instant::now();
    let out = run_with_stdin(&mut cmd, stdin);
    Run {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        took: t.elapsed(),
    }
}

fn socket_arg(d: &Daemon) -> String {
    format!("socket={} timeout=5", d.socket.display())
}

fn start(body: &str) -> Daemon {
    Daemon::start(Setup::with_body(&format!(
        "[lockout]\nmax_failures = 3\nmax_failures_per_peer = 1000\n{body}"
    )))
}

#[tokio::test]
async fn local_user_accepted_refused_and_password_changed() {
    let d = start(LOCAL_AUTH);
    assert_eq!(
        add_user(&mut d.client().await, "alice", "correct horse")
            .await
            .status,
        201
    );
    let args = socket_arg(&d);

    let r = pamtester(&args, "alice", &["authenticate", "acct_mgmt"], "correct horse\n");
    assert!(r.ok, "{}", r.output);
    assert!(r.output.contains("successfully authenticated"), "{}", r.output);

    let r = pamtester(&args, "alice", &["authenticate"], "wrong password\n");
    assert!(!r.ok, "{}", r.output);
    assert!(r.output.contains("Authentication failure"), "{}", r.output);

    let r = pamtester(&args, "nobody-here", &["acct_mgmt"], "");
    assert!(!r.ok && r.output.contains("User not known"), "{}", r.output);

    // `password`: the old one checked, the new one typed twice
    let r = pamtester(
        &args,
        "alice",
        &["chauthtok"],
        "correct horse\nbattery staple\nbattery staple\n",
    );
    assert!(r.ok, "{}", r.output);
    let mut c = d.client().await;
    assert_eq!(login(&mut c, "alice", "battery staple").await.status, 200);
    assert_eq!(login(&mut c, "alice", "correct horse").await.status, 401);
    // a mistyped retype changes nothing
    let r = pamtester(
        &args,
        "alice",
        &["chauthtok"],
        "battery staple\nnew one 1\nnew one 2\n",
    );
    assert!(!r.ok, "{}", r.output);
    assert_eq!(login(&mut c, "alice", "battery staple").await.status, 200);
    // and the password never reaches the log
    assert!(!d.logs().contains("battery staple"));
}

#[tokio::test]
async fn locked_out_user_is_refused_in_account() {
    let d = start(LOCAL_AUTH);
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "carol", "carol's password").await.status, 201);
    let args = socket_arg(&d);
    assert!(pamtester(&args, "carol", &["acct_mgmt"], "").ok);
    for _ in 0..3 {
        assert_eq!(login(&mut c, "carol", "guess").await.status, 401);
    }
    let r = pamtester(&args, "carol", &["acct_mgmt"], "");
    assert!(!r.ok, "{}", r.output);
    assert!(r.output.contains("Permission denied"), "{}", r.output);
    // auth is refused too, before the password is even checked
    let r = pamtester(&args, "carol", &["authenticate"], "carol's password\n");
    assert!(!r.ok, "{}", r.output);
}

#[tokio::test]
async fn ldap_user_accepted() {
    let p = ldap_peer();
    let d = start(&format!(
        r#"
[[authenticators]]
name = "corp-ldap"
type = "ldap"
[authenticators.settings]
server_uri = "{}"
user_dn_template = "uid=%(user)s,ou=users,dc=example,dc=test"
"#,
        p.uri
    ));
    let args = format!("{} authenticator=corp-ldap", socket_arg(&d));
    let r = pamtester(&args, "alice", &["authenticate", "acct_mgmt"], "alicepass\n");
    assert!(r.ok, "{}", r.output);
    let r = pamtester(&args, "alice", &["authenticate"], "notalicepass\n");
    assert!(
        !r.ok && r.output.contains("Authentication failure"),
        "{}",
        r.output
    );
}

#[tokio::test]
async fn radius_challenge_answered_through_the_conversation() {
    let p = radius_start("pam", RADIUS_PORT);
    let d = start(&format!(
        "[[authenticators]]\nname = \"radius\"\ntype = \"radius\"\n[authenticators.settings]\nserver = \"{}\"\nsecret = \"{}\"\n",
        p.addr, p.secret
    ));
    let args = socket_arg(&d);
    let r = pamtester(&args, "chris", &["authenticate"], "chrispass\n654321\n");
    assert!(r.ok, "{}", r.output);
    assert!(
        r.output.contains("Enter the code from your token"),
        "{}",
        r.output
    );
    let r = pamtester(&args, "chris", &["authenticate"], "chrispass\n000000\n");
    assert!(
        !r.ok && r.output.contains("Authentication failure"),
        "{}",
        r.output
    );
}

/// `authenticate` against `socket` with a 2 s timeout must answer
/// `PAM_AUTHINFO_UNAVAIL`, well within 5 s.
fn assert_unavailable(socket: &Path) {
    let args = format!("socket={} timeout=2", socket.display());
    let r = pamtester(&args, "alice", &["authenticate"], "pw\n");
    assert!(!r.ok, "{}", r.output);
    assert!(
        r.output
            .contains("Authentication service cannot retrieve authentication info"),
        "{}",
        r.output
    );
    assert!(r.took < Duration::from_secs(5), "took {:?}", r.took);
}

#[test]
fn daemon_down_is_authinfo_unavail_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // no socket at all
    assert_unavailable(&dir.path().join("missing.sock"));
    // a hung daemon: the socket accepts and never answers
    let hung = dir.path().join("hung.sock");
    let _listener = UnixListener::bind(&hung).unwrap();
    assert_unavailable(&hung);
}

#[tokio::test]
async fn a_typo_in_the_pam_file_fails_closed() {
    let d = start(LOCAL_AUTH);
    let r = pamtester(
        &format!("{} use_frist_pass", socket_arg(&d)),
        "alice",
        &["authenticate"],
        "pw\n",
    );
    // PAM_SERVICE_ERR, not a login attempt that merely failed
    assert!(
        !r.ok && r.output.contains("Error in service module"),
        "{}",
        r.output
    );
}
