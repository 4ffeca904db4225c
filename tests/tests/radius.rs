//! The `radius` authenticator against a real FreeRADIUS 3.2
//! (tests/peers/radius), through the socket; forged replies from a
//! stand-in attacker on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use gatehouse_e2e::{Daemon, RadiusPeer, Setup, login, radius_start};
use gatehouse_plugin_radius::packet::{Packet, code, encode_reply};
use serde_json::{Value, json};

/// FreeRADIUS instance and port of these tests (this suite's range is
/// 19200–19249).
const PORT: u16 = 19200;
/// Nothing listens here (UDP): the port is closed.
const CLOSED_PORT: u16 = 19240;
/// The 128-byte password of `longpw` (tests/peers/radius/users).
fn long_password() -> String {
    format!("{}{}abcdefgh", "ü".repeat(20), "0123456789".repeat(8))
}

fn peer() -> RadiusPeer {
    radius_start("e2e", PORT)
}

/// A `radius` authenticator named "Corp RADIUS" with these settings lines.
fn radius(settings: &str) -> String {
    format!(
        "[[authenticators]]\nname = \"Corp RADIUS\"\ntype = \"radius\"\n[authenticators.settings]\n{settings}\n"
    )
}

fn start(body: &str) -> Daemon {
    Daemon::start(Setup::with_body(&format!(
        "[lockout]\nmax_failures = 1000\nmax_failures_per_peer = 1000\n{body}"
    )))
}

fn standard(p: &RadiusPeer) -> String {
    radius(&format!("server = \"{}\"\nsecret = \"{}\"", p.addr, p.secret))
}

async fn status(d: &Daemon, user: &str, pw: &str) -> (u16, Value) {
    let a = login(&mut d.client().await, user, pw).await;
    (a.status, a.value())
}

#[tokio::test]
async fn accept_reject_non_ascii_and_128_byte_passwords() {
    let p = peer();
    let d = start(&standard(&p));
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["authenticator"], "Corp RADIUS");
    let (s, v) = status(&d, "alice", "wrong").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{v}"
    );
    assert_eq!(status(&d, "mallory", "anything").await.0, 401, "always rejected");
    assert_eq!(status(&d, "nobody", "alicepass").await.0, 401);
    // case matters to RADIUS
    assert_eq!(status(&d, "ALICE", "alicepass").await.0, 401);
    // non-ASCII user name and password (UTF-8 on the wire)
    let (s, v) = status(&d, "jürgen", "jürgenpass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["username"], "jürgen");
    assert_eq!(status(&d, "jürgen", "jurgenpass").await.0, 401);
    // exactly 128 bytes (eight hidden blocks), multi-byte characters included
    let long = long_password();
    assert_eq!(long.len(), 128);
    let (s, v) = status(&d, "longpw", &long).await;
    assert_eq!(s, 200, "{v}");
    // one byte short of it is another password; one more cannot be sent
    assert_eq!(status(&d, "longpw", &long[..127]).await.0, 401);
    assert_eq!(status(&d, "longpw", &format!("{long}x")).await.0, 401);
    assert!(!d.logs().contains("alicepass"), "no password in the log");
}

#[tokio::test]
async fn class_and_filter_id_become_groups_that_feed_maps() {
    let p = peer();
    let body = format!(
        r#"{}
[[authenticators.maps]]
map_type = "is_superuser"
triggers.groups = {{ has_or = ["admins"] }}
[[authenticators.maps]]
map_type = "team"
organization = "Default"
team = "Ops"
triggers.groups = {{ has_or = ["operators"] }}
"#,
        standard(&p)
    );
    let d = start(&body);
    let a = login(&mut d.client().await, "alice", "alicepass").await;
    let v = a.value();
    assert_eq!(a.status, 200, "{v}");
    assert_eq!(v["user"]["is_superuser"], true, "Class/Filter-Id admins: {v}");
    assert_eq!(v["teams"], json!([]));
    // two Class values, no Filter-Id
    let (s, v) = status(&d, "Bob.Smith", "bobpass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["is_superuser"], false);
    assert_eq!(
        v["teams"],
        json!([{"name": "Ops", "organization": "Default", "admin": false}]),
        "{v}"
    );
    let (s, v) = status(&d, "jürgen", "jürgenpass").await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["user"]["is_superuser"].clone(), v["teams"].clone()),
        (json!(false), json!([]))
    );
}

#[tokio::test]
async fn access_challenge_is_the_challenge_step() {
    let p = peer();
    // the secret from a file, as deployments keep it
    let secret_dir = tempfile::tempdir().unwrap();
    let secret_file = secret_dir.path().join("secret");
    std::fs::write(&secret_file, &p.secret).unwrap();
    let d = start(&radius(&format!(
        "server = \"{}\"\nsecret_file = \"{}\"",
        p.addr,
        secret_file.display()
    )));
    let mut c = d.client().await;
    let a = login(&mut c, "chris", "chrispass").await;
    let v = a.value();
    assert_eq!(a.status, 200, "{v}");
    assert_eq!(v["status"], "challenge", "{v}");
    assert_eq!(v["prompt"], "Enter the code from your token");
    assert_eq!(v["echo"], false);
    let id = v["login_id"].as_str().unwrap().to_owned();
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

    let v = login(&mut c, "chris", "chrispass").await.value();
    let id = v["login_id"].as_str().unwrap().to_owned();
    let done = c
        .post(
            "/v1/login/continue",
            &json!({"login_id": id, "response": "654321"}),
        )
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{:?}", done.value());
    assert_eq!(done.value()["user"]["username"], "chris");
    // a wrong password never reaches the challenge
    assert_eq!(login(&mut c, "chris", "654321").await.status, 401);
}

#[tokio::test]
async fn the_second_server_answers_when_the_first_is_down() {
    let p = peer();
    // the first port is closed: ICMP says so at once
    let d = start(&radius(&format!(
        "server = [\"127.0.0.1:{CLOSED_PORT}\", \"{}\"]\nsecret = \"{}\"\ntimeout = \"2s\"",
        p.addr, p.secret
    )));
    let t = Instant::now();
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(d.logs().contains("port_unreachable"), "{}", d.logs());

    // the first one is silent: its timeout and retries, then the second
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let d = start(&radius(&format!(
        "server = [\"127.0.0.1:{silent_port}\", \"{}\"]\nsecret = \"{}\"\ntimeout = \"300ms\"\nretries = 1",
        p.addr, p.secret
    )));
    let t = Instant::now();
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    assert!(t.elapsed() >= Duration::from_millis(600), "{:?}", t.elapsed());
    assert!(d.logs().contains("timeout"), "{}", d.logs());
    // it got the request twice (one retransmission), the same datagram
    silent.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 4096];
    let n1 = silent.recv(&mut buf).unwrap();
    let first = buf[..n1].to_vec();
    let n2 = silent.recv(&mut buf).unwrap();
    assert_eq!(first, buf[..n2].to_vec());
}

#[tokio::test]
async fn a_wrong_secret_is_backend_unavailable_after_the_timeout() {
    let p = peer();
    let d = start(&radius(&format!(
        "server = \"{}\"\nsecret = \"not-the-secret\"\ntimeout = \"400ms\"\nretries = 1",
        p.addr
    )));
    let t = Instant::now();
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("backend_unavailable")),
        "{v}"
    );
    assert!(t.elapsed() >= Duration::from_millis(800), "{:?}", t.elapsed());
    assert!(d.logs().contains("no reply to 2 transmission(s)"), "{}", d.logs());
    assert!(!d.logs().contains("not-the-secret"), "no secret in the log");
}

/// A stand-in attacker: answers each request it gets with `forge(request)`
/// (a list of datagrams, sent in order from its own port), for `count`
/// requests.
fn attacker(count: usize, forge: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 4096];
        for _ in 0..count {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            for d in forge(&buf[..n]) {
                let _ = sock.send_to(&d, from);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    port
}

fn request_authenticator(req: &[u8]) -> [u8; 16] {
    let p = Packet::parse(req).unwrap();
    p.authenticator
}

#[tokio::test]
async fn forged_replies_are_ignored() {
    const SECRET: &[u8] = b"shared-secret";
    let settings = |port: u16, extra: &str| {
        radius(&format!(
            "server = \"127.0.0.1:{port}\"\nsecret = \"shared-secret\"\ntimeout = \"700ms\"\nretries = 0\n{extra}"
        ))
    };

    // An attacker who does not know the secret: an Access-Accept with a
    // made-up authenticator (and Message-Authenticator). Dropped: 503.
    let port = attacker(1, |req| {
        let mut forged = encode_reply(code::ACCESS_ACCEPT, req[1], &[0; 16], &[], b"guess", true).unwrap();
        forged[4..20].copy_from_slice(&[0x42; 16]);
        vec![forged]
    });
    let d = start(&settings(port, ""));
    let (s, v) = status(&d, "alice", "whatever").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("backend_unavailable")),
        "{v}"
    );
    assert!(d.logs().contains("bad_response_authenticator"), "{}", d.logs());

    // BlastRADIUS: a reply with a valid Response Authenticator but no
    // Message-Authenticator. Dropped by default...
    let blast = |req: &[u8]| {
        vec![
            encode_reply(
                code::ACCESS_ACCEPT,
                req[1],
                &request_authenticator(req),
                &[],
                SECRET,
                false,
            )
            .unwrap(),
        ]
    };
    let port = attacker(1, blast);
    let d = start(&settings(port, ""));
    let (s, v) = status(&d, "alice", "whatever").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("backend_unavailable")),
        "{v}"
    );
    assert!(d.logs().contains("missing_message_authenticator"), "{}", d.logs());
    // ...and taken only with the explicit opt-out for legacy servers
    let port = attacker(1, blast);
    let d = start(&settings(port, "require_message_authenticator = false"));
    assert_eq!(status(&d, "alice", "whatever").await.0, 200);

    // Forged accepts first (wrong secret, no Message-Authenticator, another
    // identifier), then the server's genuine reject: the reject decides.
    let port = attacker(1, |req| {
        let auth = request_authenticator(req);
        vec![
            encode_reply(code::ACCESS_ACCEPT, req[1], &auth, &[], b"guess", true).unwrap(),
            encode_reply(code::ACCESS_ACCEPT, req[1], &auth, &[], SECRET, false).unwrap(),
            encode_reply(
                code::ACCESS_ACCEPT,
                req[1].wrapping_add(1),
                &auth,
                &[],
                SECRET,
                true,
            )
            .unwrap(),
            vec![req[1]; 7],
            encode_reply(code::ACCESS_REJECT, req[1], &auth, &[], SECRET, true).unwrap(),
        ]
    });
    let d = start(&settings(port, ""));
    let (s, v) = status(&d, "alice", "whatever").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{v}"
    );
    assert!(d.logs().contains("dropped 2 reply(ies)"), "{}", d.logs());
}

#[tokio::test]
async fn replies_from_another_port_are_ignored() {
    const SECRET: &[u8] = b"shared-secret";
    // The attacker knows the secret but answers from another socket (as
    // an off-path attacker would have to): the client never sees it.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let req = &buf[..n];
            let ok = encode_reply(
                code::ACCESS_ACCEPT,
                req[1],
                &request_authenticator(req),
                &[],
                SECRET,
                true,
            )
            .unwrap();
            let _ = other.send_to(&ok, from);
        }
    });
    let d = start(&radius(&format!(
        "server = \"127.0.0.1:{port}\"\nsecret = \"shared-secret\"\ntimeout = \"500ms\"\nretries = 0"
    )));
    let (s, v) = status(&d, "alice", "whatever").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("backend_unavailable")),
        "{v}"
    );
}

#[tokio::test]
async fn concurrent_logins_each_get_their_own_answer() {
    let p = peer();
    let d = start(&standard(&p));
    let mut tasks = Vec::new();
    for i in 0..96 {
        let socket = d.socket.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = gatehouse_e2e::Client::connect(&socket).await.unwrap();
            let (user, pw, want) = match i % 3 {
                0 => ("alice", "alicepass", 200),
                1 => ("alice", "wrong", 401),
                _ => ("Bob.Smith", "bobpass", 200),
            };
            let a = login(&mut c, user, pw).await;
            assert_eq!(a.status, want, "{user}/{pw}: {:?}", a.value());
            if want == 200 {
                assert_eq!(a.value()["authenticator_uid"], user, "another login's answer");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
