//! TACACS+: the project's test server (tests/peers/tacacs/server.py) is
//! first proved against the PyPI reference client; then the `tacacs`
//! plugin library, loaded from `plugin_dirs` (in process and with
//! `isolation = "process"`), logs in against it through the socket.
//! Ports 19250–19259.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use gatehouse_e2e::{Daemon, Setup, TacacsServer, daemon_with_plugins, tacacs_reference_client};
use gatehouse_plugin_tacacs::packet::{self, Header, Reply, Start, Status};
use serde_json::{Value, json};

const KEY: &str = "tacsecret";
const LIB: &str = "gatehouse_plugin_tacacs";

/// Runs the reference client; (exit code, stdout).
fn reference(port: u16, key: &str, protocol: &str, user: &str, password: &str) -> (i32, String) {
    let out = Command::new(tacacs_reference_client())
        .args(["-v", "-H", "127.0.0.1", "-p", &port.to_string(), "-k", key])
        .args(["-t", protocol, "-u", user, "authenticate", "--password", password])
        .output()
        .expect("run tacacs_client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// One raw authentication START with a chosen sequence number, hidden
/// under `key`, and the server's answer (header and body revealed with the
/// server's key), if any.
fn raw_start(port: u16, key: &str, seq_no: u8) -> Option<(Header, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut body = Start {
        authen_type: packet::AUTHEN_TYPE_PAP,
        priv_lvl: 1,
        user: b"alice",
        port: b"raw",
        rem_addr: b"",
        data: b"alicepass",
    }
    .encode()
    .unwrap();
    let h = Header {
        version: 0xc1,
        kind: packet::TYPE_AUTHEN,
        seq_no,
        flags: 0,
        session_id: 0x1234_5678,
        length: body.len() as u32,
    };
    packet::obfuscate(&mut body, h.session_id, key.as_bytes(), h.version, seq_no);
    s.write_all(&h.encode()).unwrap();
    s.write_all(&body).unwrap();
    let mut hb = [0u8; packet::HEADER_LEN];
    s.read_exact(&mut hb).ok()?;
    let rh = Header::decode(&hb);
    let mut rb = vec![0u8; rh.length as usize];
    s.read_exact(&mut rb).ok()?;
    packet::obfuscate(&mut rb, rh.session_id, KEY.as_bytes(), rh.version, rh.seq_no);
    Some((rh, rb))
}

/// The test server answers the reference client as RFC 8907 says: ASCII
/// and PAP, right and wrong passwords, unknown users, another key; and it
/// refuses a session that does not start at sequence number 1.
#[test]
fn the_test_server_passes_the_reference_client() {
    let srv = TacacsServer::start(19250, KEY, &[]);
    for protocol in ["ascii", "pap"] {
        for (user, pw) in [("alice", "alicepass"), ("Bob.Smith", "bobpass")] {
            let (code, out) = reference(srv.port, KEY, protocol, user, pw);
            assert_eq!(
                (code, out.contains("status: PASS")),
                (0, true),
                "{protocol} {user}: {out}"
            );
            let (code, out) = reference(srv.port, KEY, protocol, user, "wrong");
            assert_eq!(
                (code, out.contains("status: FAIL")),
                (1, true),
                "{protocol} {user}: {out}"
            );
        }
        let (code, out) = reference(srv.port, KEY, protocol, "mallory", "alicepass");
        assert_eq!((code, out.contains("status: FAIL")), (1, true), "{out}");
    }
    // another key: the server cannot read the request and answers ERROR
    // (read here with its key: a client with the other key reads noise,
    // which is a PASS byte once in 256 tries)
    let (_, body) = raw_start(srv.port, "not-the-key", 1).expect("an ERROR reply");
    assert_eq!(Reply::decode(&body).unwrap().status, Status::Error);

    let (h, body) = raw_start(srv.port, KEY, 1).expect("a reply");
    assert_eq!((h.seq_no, h.session_id), (2, 0x1234_5678));
    assert_eq!(Reply::decode(&body).unwrap().status, Status::Pass);
    // a session starting at 3: ERROR, never a decision
    let (h, body) = raw_start(srv.port, KEY, 3).expect("an ERROR reply");
    assert_eq!(h.seq_no, 4);
    assert_eq!(Reply::decode(&body).unwrap().status, Status::Error);
}

fn authenticator(name: &str, port: u16, isolation: &str, extra: &str) -> String {
    format!(
        r#"
[[authenticators]]
name = "{name}"
type = "tacacs"
isolation = "{isolation}"
[authenticators.settings]
host = "127.0.0.1"
port = {port}
{extra}
"#
    )
}

fn daemon(body: &str) -> Daemon {
    daemon_with_plugins(
        Setup::with_body(&format!(
            "[lockout]\nmax_failures = 1000\nmax_failures_per_peer = 1000\n{body}"
        )),
        &[LIB],
    )
}

async fn login(d: &Daemon, auth: &str, user: &str, pw: &str, extra: Value) -> (u16, Value) {
    let mut req = json!({"username": user, "password": pw, "authenticator": auth});
    for (k, v) in extra.as_object().unwrap() {
        req[k] = v.clone();
    }
    let a = d.client().await.post("/v1/login", &req).await.unwrap();
    (a.status, a.value())
}

async fn ascii_and_pap(isolation: &str, port: u16) {
    let _srv = TacacsServer::start(port, KEY, &[]);
    let setup_dir = tempfile::tempdir().unwrap();
    let key_file = setup_dir.path().join("tacacs-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let d = daemon(&format!(
        "{}{}",
        authenticator("TAC ascii", port, isolation, &format!("secret = \"{KEY}\"")),
        authenticator(
            "TAC pap",
            port,
            isolation,
            &format!(
                "auth_protocol = \"pap\"\nsecret_file = {:?}",
                key_file.display().to_string()
            ),
        ),
    ));
    let plugins = d.client().await.get("/v1/plugins").await.unwrap().value();
    assert!(
        plugins.to_string().contains("libgatehouse_plugin_tacacs.so"),
        "{plugins}"
    );
    for auth in ["TAC ascii", "TAC pap"] {
        for (user, pw) in [
            ("alice", "alicepass"),
            ("Bob.Smith", "bobpass"),
            ("juergen", "jürgenpass"),
        ] {
            let (s, v) = login(&d, auth, user, pw, json!({})).await;
            assert_eq!(s, 200, "{auth} {user}: {v}");
            assert_eq!(v["authenticator_uid"], user, "{v}");
            let (s, v) = login(&d, auth, user, &format!("{pw}x"), json!({})).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (401, Some("invalid_credentials")),
                "{auth} {user}: {v}"
            );
        }
        let (s, v) = login(&d, auth, "mallory", "alicepass", json!({})).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (401, Some("invalid_credentials")),
            "{v}"
        );
        // the name is passed as typed: the server's users are case-sensitive
        let (s, _) = login(&d, auth, "bob.smith", "bobpass", json!({})).await;
        assert_eq!(s, 401);
    }
}

#[tokio::test]
async fn ascii_and_pap_from_plugin_dirs() {
    ascii_and_pap("in_process", 19251).await;
}

#[tokio::test]
async fn ascii_and_pap_from_plugin_dirs_in_a_child_process() {
    ascii_and_pap("process", 19252).await;
}

/// Another key is a broken backend (503, and the log and explanation say
/// why), never a wrong password; so is a server that is not there.
#[tokio::test]
async fn a_wrong_key_is_detected() {
    let _srv = TacacsServer::start(19253, KEY, &[]);
    let d = daemon(&format!(
        "{}{}{}",
        authenticator("wrong ascii", 19253, "in_process", "secret = \"not-the-key\""),
        authenticator(
            "wrong pap",
            19253,
            "process",
            "secret = \"not-the-key\"\nauth_protocol = \"pap\""
        ),
        authenticator("nobody home", 19259, "in_process", "secret = \"k\""),
    ));
    for auth in ["wrong ascii", "wrong pap"] {
        let (s, v) = login(&d, auth, "alice", "alicepass", json!({"explain": true})).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (503, Some("backend_unavailable")),
            "{v}"
        );
        let why = v["error"]["details"]["explanation"]["authenticators"][0]["message"]
            .as_str()
            .unwrap();
        assert!(why.contains("wrong_key") && why.contains("another key"), "{why}");
        assert!(
            !why.contains("not-the-key") && !why.contains("alicepass"),
            "{why}"
        );
    }
    assert!(d.logs().contains("wrong_key"));
    let (s, v) = login(&d, "nobody home", "alice", "alicepass", json!({"explain": true})).await;
    assert_eq!(s, 503, "{v}");
    let why = v["error"]["details"]["explanation"]["authenticators"][0]["message"]
        .as_str()
        .unwrap();
    assert!(why.contains("connect_failed"), "{why}");
}

/// GETUSER is answered with the login's username; a GETDATA (a one-time
/// code after the password) becomes a challenge on the same session.
#[tokio::test]
async fn getuser_prompts_and_getdata_challenges() {
    let _srv = TacacsServer::start(19254, KEY, &["--getuser-always", "--otp", "alice=424242"]);
    for isolation in ["in_process", "process"] {
        let d = daemon(&authenticator(
            "TAC",
            19254,
            isolation,
            &format!("secret = \"{KEY}\""),
        ));
        let (s, v) = login(&d, "TAC", "Bob.Smith", "bobpass", json!({})).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(login(&d, "TAC", "Bob.Smith", "nope", json!({})).await.0, 401);

        let mut c = d.client().await;
        for (code, status) in [("424242", 200), ("000000", 401)] {
            let (s, v) = login(&d, "TAC", "alice", "alicepass", json!({})).await;
            assert_eq!((s, v["status"].as_str()), (200, Some("challenge")), "{v}");
            assert_eq!(
                (v["prompt"].as_str(), v["echo"].as_bool()),
                (Some("Code:"), Some(false))
            );
            let a = c
                .post(
                    "/v1/login/continue",
                    &json!({"login_id": v["login_id"], "response": code}),
                )
                .await
                .unwrap();
            assert_eq!(a.status, status, "{isolation} {code}: {}", a.value());
            if status == 200 {
                assert_eq!(a.value()["authenticator_uid"], "alice");
            }
        }
        // a wrong password never reaches the code
        assert_eq!(login(&d, "TAC", "alice", "wrong", json!({})).await.0, 401);
    }
}

/// `rem_addr = true` sends the login's `remote_addr`; without it nothing
/// is sent (this server refuses logins from anywhere but 192.0.2.7).
#[tokio::test]
async fn rem_addr_is_sent_when_enabled() {
    let _srv = TacacsServer::start(19255, KEY, &["--require-rem-addr", "192.0.2.7"]);
    let d = daemon(&format!(
        "{}{}",
        authenticator(
            "with",
            19255,
            "in_process",
            &format!("secret = \"{KEY}\"\nrem_addr = true")
        ),
        authenticator(
            "without",
            19255,
            "process",
            &format!("secret = \"{KEY}\"\nauth_protocol = \"pap\"")
        ),
    ));
    let from = |a: &str| json!({"remote_addr": a});
    assert_eq!(
        login(&d, "with", "alice", "alicepass", from("192.0.2.7")).await.0,
        200
    );
    assert_eq!(
        login(&d, "with", "alice", "alicepass", from("198.51.100.1"))
            .await
            .0,
        401
    );
    assert_eq!(login(&d, "with", "alice", "alicepass", json!({})).await.0, 401);
    assert_eq!(
        login(&d, "without", "alice", "alicepass", from("192.0.2.7"))
            .await
            .0,
        401
    );
}

/// `session_timeout` bounds a login against a server that never answers.
#[tokio::test]
async fn session_timeout_bounds_a_silent_server() {
    // a listener that accepts and never answers
    let l = std::net::TcpListener::bind("127.0.0.1:19256").unwrap();
    let hold = std::thread::spawn(move || {
        let conn = l.accept();
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(conn);
    });
    let d = daemon(&authenticator(
        "slow",
        19256,
        "in_process",
        "secret = \"k\"\nsession_timeout = \"1s\"",
    ));
    let t = std::time::Instant::now();
    let (s, v) = login(&d, "slow", "alice", "alicepass", json!({"explain": true})).await;
    assert_eq!(s, 503, "{v}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );
    let why = v["error"]["details"]["explanation"]["authenticators"][0]["message"]
        .as_str()
        .unwrap();
    assert!(why.contains("timeout"), "{why}");
    drop(d);
    hold.join().unwrap();
}
