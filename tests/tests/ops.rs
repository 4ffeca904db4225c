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
    // (within 20 s: the first fetch may wait for a busy machine)
    let mut out = d.cli(&["status"], "");
    for _ in 0..200 {
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
    assert!(text(&out).contains("admin_uids / admin_gids"), "{}", text(&out));
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

fn audit_lines(d: &Daemon, file: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.dir().join("state").join(file))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn static_setup() -> Setup {
    Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[[verifiers]]\nname = \"static\"\ntype = \"static_object\"\n[verifiers.settings]\nstorage_token = \"a-long-storage-token-value\"\n\n\
         [[routes]]\nname = \"raw\"\npath_regex = '^(.+)(/raw/)'\nverifier = \"static\"\n"
    ))
}

/// Only logins were audited, with outcomes of their own (`denied`,
/// `locked`): every decision is now, in the API's stable codes, and never
/// with a secret.
#[tokio::test]
async fn every_decision_is_audited_in_stable_codes_without_secrets() {
    let d = Daemon::start(static_setup());
    let pw = "sam's secret password";
    assert_eq!(
        d.cli(&["user", "add", "sam"], &format!("{pw}\n")).status.code(),
        Some(0)
    );
    assert_eq!(
        d.cli(&["user", "passwd", "sam"], "another secret pw\n")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        d.cli(&["login", "sam"], "wrong password!!\n").status.code(),
        Some(5)
    );
    let out = d.cli(&["static-token", "create", "sam"], "");
    let token = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    let mut c = d.client().await;
    // /v1/check: no storage token (forbidden), no user token (401), an unknown one
    let check = |extra: &[(&'static str, &'static str)]| {
        let mut h = vec![
            ("x-original-uri", "/g/p/-/raw/main/x"),
            ("x-original-method", "GET"),
        ];
        h.extend_from_slice(extra);
        h
    };
    let a = c
        .send_raw_with(http::Method::GET, "/v1/check", &check(&[]))
        .await
        .unwrap();
    assert_eq!(a.status, 403);
    let storage = ("x-gitlab-external-storage-token", "a-long-storage-token-value");
    let a = c
        .send_raw_with(http::Method::GET, "/v1/check", &check(&[storage]))
        .await
        .unwrap();
    assert_eq!(a.status, 401);
    // RFC 6750 §3.1: no token, no error code in the challenge
    let challenges: Vec<_> = a.headers.get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 1);
    assert_eq!(challenges[0], "Bearer realm=\"gatehouse\"");
    let a = c
        .send_raw_with(
            http::Method::GET,
            "/v1/check",
            &check(&[storage, ("x-gitlab-static-object-token", "ghso_unknown")]),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 401);
    assert_eq!(
        a.headers["www-authenticate"],
        "Bearer realm=\"gatehouse\", error=\"invalid_token\""
    );
    assert_eq!(d.cli(&["verify", "-"], "ghso_unknown\n").status.code(), Some(1));
    let id = c.get("/v1/users/sam/static-tokens").await.unwrap().value()["tokens"][0]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        d.cli(&["static-token", "revoke", &id.to_string()], "")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(d.cli(&["reload"], "").status.code(), Some(0));
    assert_eq!(d.cli(&["user", "del", "sam"], "").status.code(), Some(0));

    let lines = audit_lines(&d, "audit.log");
    let has = |event: &str, outcome: &str| {
        lines
            .iter()
            .any(|l| l["event"] == event && l["outcome"] == outcome)
    };
    for (event, outcome) in [
        ("user_add", "success"),
        ("password_set", "success"),
        ("login", "invalid_credentials"),
        ("static_token_create", "success"),
        ("token_check", "forbidden"),
        ("token_check", "invalid_token"),
        ("token_verify", "invalid_token"),
        ("static_token_revoke", "success"),
        ("reload", "success"),
        ("user_delete", "success"),
    ] {
        assert!(has(event, outcome), "no {event}/{outcome} in {lines:#?}");
    }
    let check_reasons: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "token_check")
        .filter_map(|l| l["reason"].as_str())
        .collect();
    assert_eq!(check_reasons, ["denied", "missing_token", "unknown_token"]);
    let text = std::fs::read_to_string(d.dir().join("state/audit.log")).unwrap();
    for secret in [
        pw,
        "another secret pw",
        "wrong password!!",
        token.as_str(),
        "ghso_unknown",
        "a-long-storage-token-value",
    ] {
        assert!(!text.contains(secret), "the audit trail holds {secret:?}");
    }
    for old in ["denied", "locked", "unavailable"] {
        assert!(
            lines.iter().all(|l| l["outcome"] != old),
            "outcome {old:?} is no API code"
        );
    }
}

/// logrotate moves audit.log away and sends SIGHUP: the daemon kept
/// writing into the moved file.
#[tokio::test]
async fn sighup_reopens_the_audit_file() {
    let d = Daemon::start(Setup::default());
    assert_eq!(
        d.cli(&["login", "nobody-here"], "wrong password\n").status.code(),
        Some(5)
    );
    let state = d.dir().join("state");
    std::fs::rename(state.join("audit.log"), state.join("audit.log.1")).unwrap();
    d.signal("HUP");
    d.wait_generation(2).await;
    assert_eq!(
        d.cli(&["login", "nobody-else"], "wrong password\n").status.code(),
        Some(5)
    );
    let old = audit_lines(&d, "audit.log.1");
    let new = audit_lines(&d, "audit.log");
    assert!(old.iter().all(|l| l["username"] != "nobody-else"), "{old:?}");
    assert!(new.iter().any(|l| l["username"] == "nobody-else"), "{new:?}");
    assert!(
        new.iter()
            .any(|l| l["event"] == "reload" && l["reason"] == "signal"),
        "{new:?}"
    );
}

/// `[log] audit = "log"`: no file, the events go to the log (journald).
#[tokio::test]
async fn audit_to_the_log_only() {
    let d = Daemon::start(Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[log]\naudit = \"log\"\n"
    )));
    assert_eq!(
        d.cli(&["login", "nobody-here"], "wrong password\n").status.code(),
        Some(5)
    );
    assert!(!d.dir().join("state/audit.log").exists());
    assert!(
        d.logs().contains("\"outcome\":\"invalid_credentials\""),
        "{}",
        d.logs()
    );
}

/// `[log] format = "json"`: one JSON object per line with a timestamp;
/// text off a terminal has timestamps too (it had none).
#[tokio::test]
async fn log_formats_json_and_text_with_timestamps() {
    // the daemon answers on its socket before its first lines reach the
    // log file (seen in CI): wait for them
    fn logged(d: &Daemon) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let logs = d.logs();
            if !logs.trim().is_empty() || std::time::Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let d = Daemon::start(Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[log]\nformat = \"json\"\n"
    )));
    let logs = logged(&d);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l["timestamp"].as_str().is_some_and(|t| t.starts_with("20")),
            "{l}"
        );
        assert!(l["level"].is_string() && l["message"].is_string(), "{l}");
    }
    drop(d);
    if std::env::var_os("JOURNAL_STREAM").is_none() {
        let d = Daemon::start(Setup::default());
        let first = logged(&d).lines().next().unwrap_or_default().to_owned();
        assert!(
            first.starts_with("20") && first.contains('T'),
            "no timestamp: {first}"
        );
    }
    // a reload cannot change the format
    let d = Daemon::start(Setup::default());
    d.write_config(&Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[log]\nformat = \"json\"\n"
    )));
    let out = d.cli(&["reload"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("log.format"), "{}", text(&out));
}

/// A private mount namespace with a tmpfs over `/run` (so no journald
/// socket of the machine's is reachable in it) and, with `journald`, the
/// real systemd-journald started in it, storing its journal in
/// `store` (bound over `/run/log/journal`): the machine's own journal and
/// files are untouched.
struct Journal {
    ns: gatehouse_e2e::namespace::MountNamespace,
    journald: Option<std::process::Child>,
    store: tempfile::TempDir,
}

impl Journal {
    fn new(journald: bool) -> Self {
        let store = tempfile::tempdir().unwrap();
        // volatile storage only, no kernel messages, nothing forwarded
        let ns = gatehouse_e2e::namespace::MountNamespace::new(
            r#"mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/log/journal /run/systemd/journald.conf.d
mount --bind "$1" /run/log/journal
printf '[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\nForwardToConsole=no\nForwardToWall=no\n' \
  > /run/systemd/journald.conf.d/zz-gatehouse-test.conf
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi"#,
            &[store.path()],
        );
        let journald = journald.then(|| {
            let bin = [
                "/lib/systemd/systemd-journald",
                "/usr/lib/systemd/systemd-journald",
            ]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("systemd-journald (Debian package systemd; tests/peers/install.sh)");
            // not socket-activated: it binds /run/systemd/journal/{socket,stdout,dev-log} itself
            let child = ns
                .command(bin)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !ns
                .command("test")
                .args(["-S", "/run/systemd/journal/socket"])
                .status()
                .unwrap()
                .success()
            {
                assert!(std::time::Instant::now() < deadline, "journald did not start");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            child
        });
        Self { ns, journald, store }
    }

    /// gatehoused in the namespace, on a prepared daemon directory.
    fn daemon(&self, d: Daemon) -> Daemon {
        let mut cmd = self.ns.command(gatehouse_e2e::process::bin("gatehoused"));
        cmd.arg("--config")
            .arg(&d.config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG");
        d.spawn_with(cmd)
    }

    /// The journal read back with journalctl, one JSON object per entry.
    fn entries(&self) -> Vec<serde_json::Value> {
        let out = std::process::Command::new("journalctl")
            .arg("--directory")
            .arg(self.machine_dir())
            .args(["-o", "json", "--no-pager"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `<store>/<machine id>`, where journald keeps its files.
    fn machine_dir(&self) -> std::path::PathBuf {
        std::fs::read_dir(self.store.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.is_dir())
            .expect("a journal directory")
    }

    /// Every byte journald stored (all journal files).
    fn raw(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(self.machine_dir()).unwrap() {
            all.extend(std::fs::read(e.unwrap().path()).unwrap());
        }
        all
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(mut j) = self.journald.take() {
            let _ = j.kill();
            let _ = j.wait();
        }
    }
}

/// `format = "journald"` was only tested for its fallback: the records now
/// go to a real systemd-journald and are read back with journalctl, with
/// their priority, identifier, target and structured fields, the audit
/// trail among them (`audit = "log"`), and no password in the journal.
#[tokio::test]
async fn journald_format_writes_structured_records_without_secrets() {
    if !gatehouse_e2e::process::is_root() {
        eprintln!("SKIPPED: a private journald needs root (mount namespace)");
        return;
    }
    let journal = Journal::new(true);
    let setup = Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[log]\nformat = \"journald\"\naudit = \"log\"\n"
    ));
    let d = Daemon::prepare(&setup);
    // a state directory others may read: narrowed, with a warning
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(d.dir().join("state")).unwrap();
    std::fs::set_permissions(d.dir().join("state"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let d = journal.daemon(d);
    let (pw, wrong) = ("ann's journald secret", "a wrong secret guess");
    assert_eq!(
        d.cli(&["user", "add", "ann"], &format!("{pw}\n")).status.code(),
        Some(0)
    );
    assert_eq!(
        d.cli(&["login", "ann"], &format!("{pw}\n")).status.code(),
        Some(0)
    );
    assert_eq!(
        d.cli(&["login", "ann"], &format!("{wrong}\n")).status.code(),
        Some(5)
    );

    let pid = d.pid().to_string();
    let ours = |e: &serde_json::Value| e["_PID"] == pid.as_str();
    let audit = |entries: &[serde_json::Value], event: &str, outcome: &str| {
        entries.iter().filter(|e| ours(e)).any(|e| {
            e["TARGET"] == "audit"
                && e["MESSAGE"]
                    .as_str()
                    .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                    .is_some_and(|a| a["event"] == event && a["outcome"] == outcome && a["username"] == "ann")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut entries = journal.entries();
    while !audit(&entries, "login", "invalid_credentials") {
        assert!(
            std::time::Instant::now() < deadline,
            "no audit record in the journal: {entries:#?}\ndaemon stderr: {}",
            d.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        entries = journal.entries();
    }
    let mine: Vec<&serde_json::Value> = entries.iter().filter(|e| ours(e)).collect();
    // nothing fell back to stderr
    assert!(!d.logs().contains("listening"), "{}", d.logs());
    for e in &mine {
        assert_eq!(e["SYSLOG_IDENTIFIER"], "gatehoused", "{e}");
        assert_eq!(e["_TRANSPORT"], "journal", "{e}");
        assert!(e["CODE_FILE"].is_string() && e["CODE_LINE"].is_string(), "{e}");
    }
    // the start line: info (6), its target and its fields (prefixed F_)
    let start = mine
        .iter()
        .find(|e| e["MESSAGE"].as_str().is_some_and(|m| m.ends_with(" listening")))
        .unwrap_or_else(|| panic!("no start line: {mine:#?}"));
    assert_eq!(start["PRIORITY"], "6", "{start}");
    assert_eq!(start["TARGET"], "gatehouse_daemon", "{start}");
    assert_eq!(start["F_SOCKET"], d.socket.display().to_string(), "{start}");
    assert_eq!(start["F_GENERATION"], "1", "{start}");
    assert_eq!(start["F_AUTHENTICATORS"], "1", "{start}");
    // a warning is a warning (4)
    let warn = mine
        .iter()
        .find(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.contains("narrowed to 0700"))
        })
        .unwrap_or_else(|| panic!("no warning: {mine:#?}"));
    assert_eq!(warn["PRIORITY"], "4", "{warn}");
    // the audit trail: every decision, as info
    assert!(audit(&entries, "user_add", "success"), "{mine:#?}");
    assert!(audit(&entries, "login", "success"), "{mine:#?}");
    assert!(
        mine.iter()
            .filter(|e| e["TARGET"] == "audit")
            .all(|e| e["PRIORITY"] == "6")
    );
    assert!(!d.dir().join("state/audit.log").exists());
    // no password anywhere in the journal: not in what journalctl shows,
    // not in the files' bytes
    let export = std::process::Command::new("journalctl")
        .arg("--directory")
        .arg(journal.machine_dir())
        .args(["-o", "export", "--no-pager"])
        .output()
        .unwrap()
        .stdout;
    let raw = journal.raw();
    for secret in [pw, wrong] {
        for (what, bytes) in [("journalctl", &export), ("the journal files", &raw)] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{what} hold {secret:?}"
            );
        }
    }
}

/// `format = "journald"` where journald is not reachable (no socket in a
/// namespace of its own, when root can make one): text on stderr and a
/// warning saying so, not a daemon without logs.
#[tokio::test]
async fn journald_format_falls_back_to_text_with_a_warning() {
    let setup = Setup::with_body(&format!("{LOCAL_AUTH}\n[log]\nformat = \"journald\"\n"));
    let d = if gatehouse_e2e::process::is_root() {
        let journal = Journal::new(false);
        let d = journal.daemon(Daemon::prepare(&setup));
        drop(journal);
        d
    } else if std::path::Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("SKIPPED: journald runs here and a namespace without it needs root");
        return;
    } else {
        Daemon::start(setup)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !d.logs().contains("listening") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(d.logs().contains("journald is not reachable"), "{}", d.logs());
    assert!(d.logs().contains("listening"), "{}", d.logs());
}

/// Stops nginx on drop: SIGTERM to the master, which takes its workers
/// down (SIGKILL would leave them serving).
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// The shipped nginx example (etc/nginx/gatehouse-auth.conf, with the
/// location of its header comment) sent `WWW-Authenticate` twice on a 401:
/// nginx copies it from the auth answer, and the example added it again.
#[tokio::test]
async fn the_shipped_nginx_example_sends_one_challenge() {
    let d = Daemon::start(Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[[verifiers]]\nname = \"static\"\ntype = \"static_object\"\n[verifiers.settings]\nstorage_token = \"a-long-storage-token-value\"\n\n\
         [[routes]]\nname = \"ai\"\npath_prefix = \"/ai/\"\nverifier = \"static\"\n"
    )));
    let example =
        std::fs::read_to_string(gatehouse_e2e::process::repo_root().join("etc/nginx/gatehouse-auth.conf"))
            .unwrap();
    // the location from the header comment, uncommented
    let location: String = example
        .lines()
        .skip_while(|l| !l.contains("location /ai/"))
        .take_while(|l| *l != "#       }")
        .chain(std::iter::once("#       }"))
        .map(|l| format!("{}\n", l.strip_prefix("#   ").unwrap_or(l)))
        .collect();
    assert!(location.contains("auth_request /_gatehouse;"), "{location}");
    let include = example.replace("/run/gatehouse/gatehouse.sock", &d.socket.display().to_string());
    let run = d.dir().join("nginx");
    std::fs::create_dir_all(run.join("tmp")).unwrap();
    std::fs::write(run.join("gatehouse-auth.conf"), include).unwrap();
    let user = if gatehouse_e2e::process::is_root() {
        "user root;"
    } else {
        ""
    };
    let r = run.display();
    std::fs::write(
        run.join("nginx.conf"),
        format!(
            "{user}\nworker_processes 1;\ndaemon off;\npid {r}/nginx.pid;\nerror_log {r}/error.log notice;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  client_body_temp_path {r}/tmp; proxy_temp_path {r}/tmp; fastcgi_temp_path {r}/tmp;\n  uwsgi_temp_path {r}/tmp; scgi_temp_path {r}/tmp;\n  access_log off;\n\
             upstream ai_gateway {{ server 127.0.0.1:19465; }}\n\
             server {{ listen 127.0.0.1:19465; location / {{ return 200 \"upstream\\n\"; }} }}\n\
             server {{\n  listen 127.0.0.1:19464;\n  include {r}/gatehouse-auth.conf;\n{location}}}\n}}\n"
        ),
    )
    .unwrap();
    let nginx = Child(
        std::process::Command::new("nginx")
            .args([
                "-e",
                &format!("{r}/error.log"),
                "-p",
                &format!("{r}/"),
                "-c",
                &format!("{r}/nginx.conf"),
            ])
            .spawn()
            .unwrap(),
    );
    let headers = |extra: &[&str]| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-D", "-", "-o", "/dev/null", "--max-time", "5"]);
        for h in extra {
            cmd.args(["-H", h]);
        }
        let out = cmd.arg("http://127.0.0.1:19464/ai/-/raw/x").output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut answer = String::new();
    for _ in 0..50 {
        answer = headers(&["X-Gitlab-External-Storage-Token: a-long-storage-token-value"]);
        if answer.starts_with("HTTP/1.1 401") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let challenges: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, value)| value.trim())
        .collect();
    assert_eq!(challenges, ["Bearer realm=\"gatehouse\""], "{answer}");
    let answer = headers(&[
        "X-Gitlab-External-Storage-Token: a-long-storage-token-value",
        "X-Gitlab-Static-Object-Token: ghso_unknown",
    ]);
    let challenges: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, value)| value.trim())
        .collect();
    assert_eq!(
        challenges,
        ["Bearer realm=\"gatehouse\", error=\"invalid_token\""],
        "{answer}"
    );
    drop(nginx);
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(gatehouse_e2e::process::repo_root().join(path)).unwrap()
}

/// `too_many_attempts` (429) and `no_access` were missing from the error
/// table of docs/api.md.
#[test]
fn every_error_code_is_in_the_api_error_table() {
    let doc = repo_file("docs/api.md");
    for code in gatehouse_sdk::proto::ErrorCode::ALL {
        let row = format!("| {} | `{}` |", code.http_status(), code.as_str());
        assert!(doc.contains(&row), "docs/api.md has no row {row}");
    }
}

/// etc/conf.d/README said the shipped file has `include` commented out
/// (it is active) and, like etc/gatehouse.toml, left `[[routes]]` and the
/// later tables out of what a drop-in may hold.
#[test]
fn what_a_drop_in_may_hold_is_documented_and_true() {
    let readme = repo_file("etc/conf.d/README");
    let main = repo_file("etc/gatehouse.toml");
    assert!(
        main.lines().any(|l| l.starts_with("include = ")),
        "include is active"
    );
    assert!(!readme.contains("commented out"), "{readme}");
    let tables = [
        "[[authenticators]]",
        "[[verifiers]]",
        "[[routes]]",
        "[access]",
        "[store]",
        "[lockout]",
        "[http]",
        "[log]",
        "[forward_auth]",
        "[issuer]",
        "[host]",
    ];
    let header: String = main
        .lines()
        .skip_while(|l| !l.contains("Drop-in files read after this one"))
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for t in tables {
        assert!(readme.contains(t), "etc/conf.d/README does not name {t}");
        assert!(
            header.contains(t),
            "the include comment of etc/gatehouse.toml does not name {t}: {header}"
        );
    }
    // and they do load from a drop-in
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("g.toml"),
        "[daemon]\nstate_dir = \"st\"\ninclude = [\"conf.d/*.toml\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf.d/10-r.toml"),
        "[[verifiers]]\nname = \"s\"\ntype = \"static_object\"\n[verifiers.settings]\nstorage_token = \"a-long-storage-token\"\n\
         [[routes]]\nname = \"r\"\npath_prefix = \"/x/\"\nverifier = \"s\"\n[log]\nformat = \"json\"\n[lockout]\nmax_failures = 3\n",
    )
    .unwrap();
    let out = std::process::Command::new(gatehouse_e2e::process::bin("gatehoused"))
        .arg("--check-config")
        .arg(dir.path().join("g.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// docs/api.md listed `/v1/maps/simulate`'s answer without
/// `authenticator` and `remove_users`.
#[tokio::test]
async fn the_simulate_answer_is_documented_field_by_field() {
    let d = Daemon::start(Setup::default());
    let a = d
        .client()
        .await
        .post(
            "/v1/maps/simulate",
            &serde_json::json!({"authenticator": "Local Database", "identity": {"uid": "u", "username": "u"}}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    let mut got: Vec<String> = a.value().as_object().unwrap().keys().cloned().collect();
    got.sort();
    let doc = repo_file("docs/api.md");
    let row = doc.lines().find(|l| l.contains("`/v1/maps/simulate`")).unwrap();
    let answer = row.split("→ `{").nth(1).unwrap().split("}`").next().unwrap();
    let mut documented: Vec<String> = answer
        .split(',')
        .map(|f| f.trim().split([':', ' ']).next().unwrap().to_owned())
        .collect();
    documented.sort();
    assert_eq!(got, documented);
}

/// On a machine without Rust, scripts/dev.sh and scripts/setup.sh failed
/// with "cargo: command not found" (setup after installing packages):
/// they stop first and say what to install.
#[test]
fn dev_and_setup_say_how_to_install_rust() {
    let bin = tempfile::tempdir().unwrap();
    for tool in ["dirname", "cut", "sed", "sort", "head", "id", "cat", "grep"] {
        let path = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap();
        std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
    }
    for script in ["scripts/dev.sh", "scripts/setup.sh"] {
        let out = std::process::Command::new("/bin/bash")
            .arg(gatehouse_e2e::process::repo_root().join(script))
            .env("PATH", bin.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{script}: {}", text(&out));
        let t = text(&out);
        assert!(t.contains("Rust 1.") && t.contains("rustup"), "{script}: {t}");
    }
}

/// `gatehouse lockout list|reset USER` did not exist: a locked-out user
/// waited out the window.
#[tokio::test]
async fn lockout_list_and_reset() {
    let d = Daemon::start(Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[lockout]\nmax_failures = 2\n"
    )));
    assert_eq!(
        d.cli(&["user", "add", "lou"], "lou's good password\n")
            .status
            .code(),
        Some(0)
    );
    let out = d.cli(&["lockout", "list"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("no failures counted"), "{}", text(&out));
    for _ in 0..2 {
        assert_eq!(
            d.cli(&["login", "lou"], "a wrong password\n").status.code(),
            Some(5)
        );
    }
    // locked: the right password is refused
    let out = d.cli(&["login", "lou"], "lou's good password\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("too_many_attempts"), "{}", text(&out));
    let out = d.cli(&["lockout", "list"], "");
    let line = text(&out)
        .lines()
        .find(|l| l.starts_with("user"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.contains("lou") && line.contains("2 failure(s)") && line.contains("LOCKED"),
        "{}",
        text(&out)
    );
    let json = d.cli(&["--json", "lockout", "list"], "");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        v["counters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "peer"),
        "{v}"
    );
    // only admins
    assert_eq!(
        d.cli_as("nobody", &["lockout", "reset", "lou"], "").status.code(),
        Some(4)
    );
    let out = d.cli(&["lockout", "reset", "LOU"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        d.cli(&["login", "lou"], "lou's good password\n").status.code(),
        Some(0)
    );
    let out = d.cli(&["lockout", "reset", "lou"], "");
    assert_eq!(out.status.code(), Some(1), "nothing to reset: {}", text(&out));
    let audit = audit_lines(&d, "audit.log");
    assert!(
        audit
            .iter()
            .any(|l| l["event"] == "lockout_reset" && l["outcome"] == "success"),
        "{audit:?}"
    );
}

/// `gatehouse maps simulate` did not exist (only the API route).
#[tokio::test]
async fn maps_simulate_from_the_cli() {
    let d = Daemon::start(Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[[authenticators.maps]]\nname = \"devs\"\nmap_type = \"organization\"\norganization = \"Eng\"\ntriggers.groups = {{ has_or = [\"dev\"] }}\n"
    )));
    let out = d.cli(
        &["maps", "simulate", "Local Database", "--identity", "-"],
        r#"{"uid": "u1", "username": "u1", "groups": ["dev"]}"#,
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("allowed:       true"), "{t}");
    assert!(
        t.contains("organizations:\n  Eng / Organization Member (would be created)"),
        "{t}"
    );
    assert!(t.contains("superuser:     (no map decides)"), "{t}");
    assert!(
        t.lines().any(|l| l.contains("devs") && l.contains("grant")),
        "{t}"
    );
    let out = d.cli(
        &["maps", "simulate", "Local Database", "--identity", "{not json"],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Completions (clap_complete) and man pages (clap_mangen) come from the
/// binary itself.
#[test]
fn completions_and_man_pages() {
    let gh = gatehouse_e2e::process::bin("gatehouse");
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(&gh)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("lockout") && script.contains("check-config"),
            "{shell}: {script}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&gh)
        .arg("man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = std::fs::read_to_string(dir.path().join("gatehouse.1")).unwrap();
    assert!(
        page.contains(".TH gatehouse 1") && page.contains("lockout"),
        "{page}"
    );
    assert!(dir.path().join("gatehouse-store-backup.1").exists());
}

/// `gatehouse store backup FILE` while logins and writes go on; the copy,
/// restored as the documented steps say, serves every user written before
/// the backup started.
#[tokio::test]
async fn store_backup_under_load_and_restore() {
    let d = Daemon::start(Setup::default());
    for i in 0..20 {
        let out = d.cli(&["user", "add", &format!("u{i}")], "a long password\n");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    // load: user creations and logins on other connections, meanwhile
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..4 {
        let stop = std::sync::Arc::clone(&stop);
        let mut c = d.client().await;
        load.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("load{w}x{n}");
                let a = c
                    .post(
                        "/v1/users",
                        &serde_json::json!({"username": name, "password": "a long password"}),
                    )
                    .await
                    .unwrap();
                assert_eq!(a.status, 201, "{:?}", a.value());
                let a = c
                    .post(
                        "/v1/login",
                        &serde_json::json!({"username": "u3", "password": "a long password"}),
                    )
                    .await
                    .unwrap();
                assert_eq!(a.status, 200);
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backup = d.dir().join("backup.db");
    let out = d.cli(&["store", "backup", backup.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for l in load {
        written += l.await.unwrap();
    }
    assert!(written > 0, "the load ran");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // never over an existing file
    let out = d.cli(&["store", "backup", backup.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // restore (docs/operations.md): stop, put the copy in place, start
    let restored = Daemon::prepare(&Setup::default());
    std::fs::create_dir_all(restored.dir().join("state")).unwrap();
    std::fs::set_permissions(
        restored.dir().join("state"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::copy(&backup, restored.dir().join("state/gatehouse.db")).unwrap();
    let restored = restored.spawn(&Setup::default());
    let users = restored.client().await.get("/v1/users").await.unwrap().value();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    for i in 0..20 {
        assert!(
            names.contains(&format!("u{i}").as_str()),
            "u{i} missing: {names:?}"
        );
    }
    assert_eq!(
        restored.cli(&["login", "u7"], "a long password\n").status.code(),
        Some(0)
    );
    // a consistent file: every load user is whole or absent
    let loaded = names.iter().filter(|n| n.starts_with("load")).count();
    assert!(loaded <= written as usize);
}
