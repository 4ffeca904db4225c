//! Settings checks, and the client against a scripted peer that sends what
//! a well-behaved server would not (forged, misnumbered, foreign-key or
//! missing replies). The real-server tests are in `tests/tests/tacacs.rs`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gatehouse_sdk::serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::packet::{FLAG_UNENCRYPTED, Header, Reply, Status, TYPE_AUTHEN};

const KEY: &str = "scripted-key";

fn build(settings: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
    TacacsFactory.build(PluginConfig::new("t", settings))
}

#[test]
fn settings_are_checked() {
    let ok = json!({"host": "127.0.0.1", "secret": "k"});
    assert!(build(ok).is_ok());
    for (bad, word) in [
        (json!({"secret": "k"}), "host"),
        (json!({"host": "127.0.0.1"}), "secret"),
        (json!({"host": "", "secret": "k"}), "host"),
        (json!({"host": "a b", "secret": "k"}), "host"),
        (json!({"host": "h", "secret": ""}), "secret"),
        (json!({"host": "h", "secret": "k", "port": 0}), "port"),
        (json!({"host": "h", "secret": "k", "port": 70000}), "u16"),
        (
            json!({"host": "h", "secret": "k", "auth_protocol": "chap"}),
            "expected `ascii` or `pap`",
        ),
        (
            json!({"host": "h", "secret": "k", "session_timeout": 0}),
            "session_timeout",
        ),
        (
            json!({"host": "h", "secret": "k", "session_timeout": "soon"}),
            "session_timeout",
        ),
        (
            json!({"host": "h", "secret": "k", "session_timeout": 301}),
            "session_timeout",
        ),
        (json!({"host": "h", "secret": "k", "sekret": "x"}), "sekret"),
    ] {
        match build(bad.clone()) {
            Err(PluginError::Misconfigured(m)) => assert!(m.contains(word), "{bad}: {m}"),
            other => panic!("{bad}: {:?}", other.map(|_| ())),
        }
    }
    let s = Settings::from_config(&PluginConfig::new(
        "t",
        json!({"host": "[::1]", "secret": "k", "session_timeout": "1500ms", "auth_protocol": "pap"}),
    ))
    .unwrap();
    assert_eq!(s.host, "::1");
    assert_eq!(s.port, 49);
    assert_eq!(s.session_timeout, Duration::from_millis(1500));
    assert_eq!(s.auth_protocol, AuthProtocol::Pap);
}

#[test]
fn the_secret_is_not_in_debug_output() {
    let s = Settings::from_config(&PluginConfig::new(
        "t",
        json!({"host": "h", "secret": "very-secret-key"}),
    ))
    .unwrap();
    assert!(!format!("{s:?}").contains("very-secret-key"));
}

/// One packet a scripted peer read: its header and revealed body.
struct Seen {
    header: Header,
    body: Vec<u8>,
}

async fn read_packet(s: &mut TcpStream, key: &[u8]) -> Option<Seen> {
    let mut hb = [0u8; packet::HEADER_LEN];
    s.read_exact(&mut hb).await.ok()?;
    let header = Header::decode(&hb);
    let mut body = vec![0u8; header.length as usize];
    s.read_exact(&mut body).await.ok()?;
    packet::obfuscate(&mut body, header.session_id, key, header.version, header.seq_no);
    Some(Seen { header, body })
}

/// A reply packet to `to`, obfuscated with `key` unless `flags` says not.
fn reply(to: &Header, key: &[u8], seq_no: u8, flags: u8, status: u8, msg: &[u8]) -> Vec<u8> {
    let mut body = vec![status, 0];
    body.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(msg);
    if flags & FLAG_UNENCRYPTED == 0 {
        packet::obfuscate(&mut body, to.session_id, key, to.version, seq_no);
    }
    let h = Header {
        version: to.version,
        kind: TYPE_AUTHEN,
        seq_no,
        flags,
        session_id: to.session_id,
        length: body.len() as u32,
    };
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Runs `script` on the first connection; returns the settings to reach it.
async fn peer<F, Fut>(
    extra: serde_json::Value,
    script: F,
) -> (serde_json::Value, tokio::task::JoinHandle<Vec<Seen>>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<Seen>> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        script(s).await
    });
    let mut settings = json!({"host": "127.0.0.1", "port": port, "secret": KEY, "session_timeout": "2s"});
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    (settings, task)
}

async fn login(
    settings: serde_json::Value,
    user: &str,
    pw: &str,
    addr: Option<&str>,
) -> Result<LoginStep, PluginError> {
    let auth = build(settings).unwrap();
    let mut req = PasswordLogin::new(user, pw);
    req.remote_addr = addr.map(str::to_owned);
    auth.login(&Context::new("t"), req).await
}

fn unavailable_code(r: Result<LoginStep, PluginError>) -> String {
    match r {
        Err(PluginError::Unavailable(m)) => m,
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn ascii_start_and_continue_are_as_rfc_8907_says() {
    let (settings, task) = peer(json!({"rem_addr": true}), |mut s| async move {
        let k = KEY.as_bytes();
        let start = read_packet(&mut s, k).await.unwrap();
        s.write_all(&reply(&start.header, k, 2, 0, 5, b"Password: "))
            .await
            .unwrap();
        let cont = read_packet(&mut s, k).await.unwrap();
        s.write_all(&reply(&cont.header, k, 4, 0, 1, b"")).await.unwrap();
        vec![start, cont]
    })
    .await;
    let r = login(settings, "alice", "alicepass", Some("192.0.2.7"))
        .await
        .unwrap();
    assert!(matches!(r, LoginStep::Authenticated(id) if id.username == "alice" && id.uid == "alice"));
    let seen = task.await.unwrap();
    let (start, cont) = (&seen[0], &seen[1]);
    assert_eq!(
        (
            start.header.version,
            start.header.kind,
            start.header.seq_no,
            start.header.flags
        ),
        (0xc0, 1, 1, 0)
    );
    assert_eq!(
        &start.body[..8],
        &[1, 1, 1, 1, 5, 9, 9, 0],
        "LOGIN, priv 1, ASCII, service LOGIN, lengths"
    );
    assert_eq!(&start.body[8..], b"alicegatehouse192.0.2.7");
    assert_eq!(cont.header.seq_no, 3);
    assert_eq!(cont.header.session_id, start.header.session_id);
    assert_eq!(
        cont.body,
        [
            0, 9, 0, 0, 0, b'a', b'l', b'i', b'c', b'e', b'p', b'a', b's', b's'
        ]
    );
}

#[tokio::test]
async fn pap_sends_the_password_in_the_start_with_minor_version_one() {
    let (settings, task) = peer(json!({"auth_protocol": "pap"}), |mut s| async move {
        let k = KEY.as_bytes();
        let start = read_packet(&mut s, k).await.unwrap();
        s.write_all(&reply(&start.header, k, 2, 0, 2, b"")).await.unwrap();
        vec![start]
    })
    .await;
    // rem_addr is off: the address is not sent
    let r = login(settings, "bob", "pw", Some("192.0.2.7")).await;
    assert!(matches!(r, Err(PluginError::InvalidCredentials)), "{r:?}");
    let start = &task.await.unwrap()[0];
    assert_eq!(start.header.version, 0xc1);
    assert_eq!(&start.body[..8], &[1, 1, 2, 1, 3, 9, 0, 2]);
    assert_eq!(&start.body[8..], b"bobgatehousepw");
}

/// Anyone on the path can forge a cleartext PASS: it must not log in.
#[tokio::test]
async fn a_forged_cleartext_pass_is_refused() {
    let (settings, _task) = peer(json!({}), |mut s| async move {
        let start = read_packet(&mut s, KEY.as_bytes()).await.unwrap();
        s.write_all(&reply(&start.header, b"", 2, FLAG_UNENCRYPTED, 1, b""))
            .await
            .unwrap();
        vec![]
    })
    .await;
    let m = unavailable_code(login(settings, "alice", "x", None).await);
    assert!(m.contains("unencrypted_reply"), "{m}");
}

#[tokio::test]
async fn a_server_with_another_key_is_reported_as_such() {
    let (settings, _task) = peer(json!({}), |mut s| async move {
        let start = read_packet(&mut s, b"other").await.unwrap();
        s.write_all(&reply(&start.header, b"other", 2, 0, 7, b"bad"))
            .await
            .unwrap();
        vec![]
    })
    .await;
    let m = unavailable_code(login(settings, "alice", "x", None).await);
    assert!(m.contains("wrong_key") && m.contains("another key"), "{m}");
}

#[tokio::test]
async fn a_replayed_or_misnumbered_reply_is_refused() {
    let (settings, _task) = peer(json!({}), |mut s| async move {
        let start = read_packet(&mut s, KEY.as_bytes()).await.unwrap();
        // a PASS numbered as if it answered a later packet
        s.write_all(&reply(&start.header, KEY.as_bytes(), 4, 0, 1, b""))
            .await
            .unwrap();
        vec![]
    })
    .await;
    let m = unavailable_code(login(settings, "alice", "x", None).await);
    assert!(m.contains("sequence number"), "{m}");
}

#[tokio::test]
async fn a_silent_or_closing_server_is_unavailable() {
    let (settings, _task) = peer(json!({}), |mut s| async move {
        let _ = read_packet(&mut s, KEY.as_bytes()).await;
        vec![]
    })
    .await;
    let m = unavailable_code(login(settings, "alice", "x", None).await);
    assert!(m.contains("connection_closed"), "{m}");

    let (settings, task) = peer(json!({"session_timeout": "300ms"}), |mut s| async move {
        let _ = read_packet(&mut s, KEY.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        vec![]
    })
    .await;
    let t = std::time::Instant::now();
    let m = unavailable_code(login(settings, "alice", "x", None).await);
    assert!(m.contains("timeout"), "{m}");
    assert!(t.elapsed() < Duration::from_secs(2));
    task.abort();
}

#[tokio::test]
async fn a_second_getpass_is_a_refusal_and_the_session_is_aborted() {
    let (settings, task) = peer(json!({}), |mut s| async move {
        let k = KEY.as_bytes();
        let start = read_packet(&mut s, k).await.unwrap();
        s.write_all(&reply(&start.header, k, 2, 0, 5, b"Password:"))
            .await
            .unwrap();
        let c1 = read_packet(&mut s, k).await.unwrap();
        s.write_all(&reply(&c1.header, k, 4, 0, 5, b"Wrong. Password:"))
            .await
            .unwrap();
        let abort = read_packet(&mut s, k).await.unwrap();
        vec![start, c1, abort]
    })
    .await;
    let r = login(settings, "alice", "wrong", None).await;
    assert!(matches!(r, Err(PluginError::InvalidCredentials)), "{r:?}");
    let seen = task.await.unwrap();
    assert_eq!(seen[2].header.seq_no, 5);
    assert_eq!(seen[2].body, [0, 0, 0, 0, packet::CONTINUE_FLAG_ABORT]);
}

#[tokio::test]
async fn getdata_becomes_a_challenge_on_the_same_session() {
    let (settings, task) = peer(json!({}), |mut s| async move {
        let k = KEY.as_bytes();
        let start = read_packet(&mut s, k).await.unwrap();
        s.write_all(&reply(&start.header, k, 2, 0, 5, b"")).await.unwrap();
        let c1 = read_packet(&mut s, k).await.unwrap();
        let mut r = reply(&c1.header, k, 4, 0, 3, b"Code:\n");
        // NOECHO: the flags byte is the body's second, obfuscated
        let mut pad = [0u8; 2];
        packet::obfuscate(&mut pad, c1.header.session_id, k, c1.header.version, 4);
        r[packet::HEADER_LEN + 1] = pad[1] ^ packet::REPLY_FLAG_NOECHO;
        s.write_all(&r).await.unwrap();
        let c2 = read_packet(&mut s, k).await.unwrap();
        s.write_all(&reply(&c2.header, k, 6, 0, 1, b"")).await.unwrap();
        vec![c2]
    })
    .await;
    let auth = build(settings).unwrap();
    let ctx = Context::new("t");
    let step = auth
        .login(&ctx, PasswordLogin::new("alice", "alicepass"))
        .await
        .unwrap();
    let LoginStep::Challenge(c) = step else {
        panic!("{step:?}")
    };
    assert_eq!((c.prompt.as_str(), c.echo), ("Code:", false));
    // an unknown session is a bad request, and does not use the real one up
    let e = auth
        .continue_login(&ctx, json!({"session": "00"}), Secret::new("123456"))
        .await;
    assert!(matches!(e, Err(PluginError::BadRequest(_))), "{e:?}");
    let done = auth
        .continue_login(&ctx, c.state.clone(), Secret::new("123456"))
        .await
        .unwrap();
    assert!(matches!(done, LoginStep::Authenticated(id) if id.username == "alice"));
    assert_eq!(task.await.unwrap()[0].body[5..], *b"123456");
    // single use
    let again = auth.continue_login(&ctx, c.state, Secret::new("123456")).await;
    assert!(matches!(again, Err(PluginError::BadRequest(_))), "{again:?}");
}

#[tokio::test]
async fn long_usernames_and_empty_passwords_never_reach_the_server() {
    let settings = json!({"host": "127.0.0.1", "port": 9, "secret": "k"});
    let long = "x".repeat(256);
    assert!(matches!(
        login(settings.clone(), &long, "pw", None).await,
        Err(PluginError::InvalidCredentials)
    ));
    assert!(matches!(
        login(settings, "alice", "", None).await,
        Err(PluginError::InvalidCredentials)
    ));
}

fn reply_of(status: Status, msg: &[u8]) -> Reply {
    Reply {
        status,
        flags: 0,
        server_msg: msg.to_vec(),
        data: Vec::new(),
    }
}

fn fresh() -> Progress {
    Progress {
        username: "alice".into(),
        user_answered: false,
        password_sent: false,
    }
}

/// The decision table of RFC 8907 §5.4 as this client applies it.
#[test]
fn each_status_leads_where_the_docs_say() {
    let pw = Secret::new("pw");
    let done = |n: Next| match n {
        Next::Done(r) => r,
        _ => panic!("expected an end"),
    };
    assert!(matches!(
        done(Tacacs::next_ascii(
            &reply_of(Status::Follow, b""),
            &mut fresh(),
            Some(&pw)
        )),
        Err(PluginError::InvalidCredentials)
    ));
    let restart = done(Tacacs::next_ascii(
        &reply_of(Status::Restart, b""),
        &mut fresh(),
        Some(&pw),
    ));
    assert!(
        matches!(&restart, Err(PluginError::Unavailable(m)) if m.contains("\"ascii\"")),
        "{restart:?}"
    );
    // server text is shown without control characters (no log injection)
    let error = done(Tacacs::next_ascii(
        &reply_of(Status::Error, b"db down\r\nFAKE LOG LINE"),
        &mut fresh(),
        Some(&pw),
    ));
    assert!(
        matches!(&error, Err(PluginError::Unavailable(m)) if m.contains("db downFAKE LOG LINE") && !m.contains('\n')),
        "{error:?}"
    );
    // GETUSER once, then GETPASS once; asked again: refused
    let mut p = fresh();
    assert!(
        matches!(Tacacs::next_ascii(&reply_of(Status::GetUser, b""), &mut p, Some(&pw)), Next::Answer(a) if a == b"alice")
    );
    assert!(
        matches!(Tacacs::next_ascii(&reply_of(Status::GetPass, b""), &mut p, Some(&pw)), Next::Answer(a) if a == b"pw")
    );
    assert!(matches!(
        done(Tacacs::next_ascii(
            &reply_of(Status::GetUser, b""),
            &mut p,
            Some(&pw)
        )),
        Err(PluginError::InvalidCredentials)
    ));
    // GETPASS after a challenge (no password kept): asked of the user, hidden
    let mut p = fresh();
    assert!(matches!(
        Tacacs::next_ascii(&reply_of(Status::GetPass, b"New PIN:"), &mut p, None),
        Next::Challenge { prompt, echo: false } if prompt == "New PIN:"
    ));
    // PAP knows only decisions
    for s in [Status::GetData, Status::GetPass, Status::GetUser] {
        assert!(matches!(
            done(Tacacs::next_pap(&reply_of(s, b""), "alice")),
            Err(PluginError::Unavailable(_))
        ));
    }
    assert!(matches!(
        done(Tacacs::next_pap(&reply_of(Status::Pass, b""), "alice")),
        Ok(LoginStep::Authenticated(id)) if id.username == "alice"
    ));
}
