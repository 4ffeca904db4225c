//! The socket API: every route, every error path, and the daemon keeps
//! serving after bad input.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{Daemon, Setup, add_user, login};
use http::Method;

fn body(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test]
async fn health_and_authenticators() {
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    let h = c.get("/v1/health").await.unwrap();
    assert_eq!(h.status, 200);
    let v = h.value();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["generation"], 1);
    assert_eq!(v["authenticators"], 1);
    assert_eq!(v["verifiers"], 0);
    assert!(v["last_reload_error"].is_null());
    assert!(v["reloaded_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["version"].is_string());

    let a = c.get("/v1/authenticators").await.unwrap().value();
    assert_eq!(
        a,
        serde_json::json!({"authenticators": [
            {"name": "Local Database", "type": "local", "enabled": true, "order": 1, "flow": "password"}
        ]})
    );
}

#[tokio::test]
async fn login_success_and_failure() {
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    let created = add_user(&mut c, "Alice", "correct horse").await;
    assert_eq!(created.status, 201, "{:?}", created.value());
    assert_eq!(created.value()["username"], "alice");

    let ok = login(&mut c, "alice", "correct horse").await;
    assert_eq!(ok.status, 200);
    let v = ok.value();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["authenticator"], "Local Database");
    assert_eq!(v["authenticator_uid"], "alice");
    assert!(v["organizations"].is_array() && v["teams"].is_array() && v["groups"].is_array());

    // usernames are case-insensitive
    assert_eq!(login(&mut c, "ALICE", "correct horse").await.status, 200);

    for (user, pw) in [
        ("alice", "wrong horse"),
        ("nobody-here", "correct horse"),
        ("alice", ""),
    ] {
        let bad = login(&mut c, user, pw).await;
        assert_eq!(bad.status, 401, "{user}/{pw}");
        assert_eq!(bad.code().as_deref(), Some("invalid_credentials"));
    }

    // naming the authenticator
    let named = c
        .post(
            "/v1/login",
            &serde_json::json!({"username": "alice", "password": "correct horse", "authenticator": "Local Database"}),
        )
        .await
        .unwrap();
    assert_eq!(named.status, 200);
    let unknown = c
        .post(
            "/v1/login",
            &serde_json::json!({"username": "alice", "password": "x", "authenticator": "Nope"}),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code().as_deref(), Some("unknown_authenticator"));
}

#[tokio::test]
async fn bad_requests_get_codes_and_the_daemon_keeps_serving() {
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    let json = Some("application/json");
    // (method, path, content type, body, expected status, expected code)
    type Case<'a> = (Method, &'a str, Option<&'a str>, String, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            Method::POST,
            "/v1/login",
            json,
            "{not json".into(),
            400,
            "bad_request",
        ),
        (Method::POST, "/v1/login", json, "".into(), 400, "bad_request"),
        (
            Method::POST,
            "/v1/login",
            json,
            r#"{"username": 5, "password": "x"}"#.into(),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/v1/login",
            json,
            r#"{"username": "a"}"#.into(),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/v1/login",
            json,
            r#"{"username": "", "password": "x"}"#.into(),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/v1/login",
            json,
            r#"[1,2,3]"#.into(),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/v1/login",
            Some("text/plain"),
            "{}".into(),
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/login",
            json,
            format!(r#"{{"username": "a", "password": "{}"}}"#, "x".repeat(70 * 1024)),
            413,
            "payload_too_large",
        ),
        (Method::GET, "/v1/nope", None, String::new(), 404, "not_found"),
        (Method::GET, "/", None, String::new(), 404, "not_found"),
        (
            Method::GET,
            "/v1/login",
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            Method::DELETE,
            "/v1/health",
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/v1/login/continue",
            json,
            r#"{"login_id": "zz", "response": "1"}"#.into(),
            400,
            "bad_request",
        ),
    ];
    for (method, path, ct, b, status, code) in cases {
        let a = c.send_raw(method.clone(), path, ct, body(&b)).await.unwrap();
        assert_eq!(a.status, status, "{method} {path} {:.60}: {:?}", b, a.value());
        let err = a
            .error()
            .unwrap_or_else(|| panic!("{method} {path}: no error body"));
        assert_eq!(err.error.code, code, "{method} {path}");
        assert!(!err.error.message.is_empty());
        if status == 405 {
            assert!(a.headers.get("allow").is_some());
        }
    }
    // A type error never echoes the submitted value.
    let a = c
        .send_raw(
            Method::POST,
            "/v1/login",
            json,
            body(r#"{"username": "a", "password": 12345678}"#),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 400);
    // still serving, on the same keep-alive connection and on a new one
    assert_eq!(c.get("/v1/health").await.unwrap().status, 200);
    assert_eq!(d.client().await.get("/v1/health").await.unwrap().status, 200);

    // A body sent without Content-Length (chunked) is limited too.
    let mut raw = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    use std::io::{Read, Write};
    let chunk = "y".repeat(70 * 1024);
    write!(
        raw,
        "POST /v1/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        chunk.len(),
        chunk
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = raw.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

#[tokio::test]
async fn metrics_count_requests_and_reloads() {
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    for _ in 0..3 {
        c.get("/v1/health").await.unwrap();
    }
    c.get("/v1/missing").await.unwrap();
    login(&mut c, "ghost", "whatever1").await;
    c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    let m = c.get("/v1/metrics").await.unwrap();
    assert_eq!(m.status, 200);
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    assert!(
        text.contains("gatehouse_requests_total{route=\"/v1/health\",status=\"200\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("gatehouse_requests_total{route=\"other\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("gatehouse_request_duration_seconds_count{route=\"/v1/health\"} 3"),
        "{text}"
    );
    assert!(
        text.contains(
            "gatehouse_logins_total{authenticator=\"Local Database\",outcome=\"invalid_credentials\"} 1"
        ),
        "{text}"
    );
    assert!(
        // one reload: the start is not counted
        text.contains("gatehouse_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(text.contains("gatehouse_config_generation 2"), "{text}");
}

#[tokio::test]
async fn unknown_users_cost_as_much_as_wrong_passwords() {
    // Realistic cost so the hash dominates the timing.
    let body = gatehouse_e2e::LOCAL_AUTH
        .replace("argon2_memory_kib = 64", "argon2_memory_kib = 8192")
        .replace("argon2_iterations = 1", "argon2_iterations = 3");
    // no lockout in the way of the repeated failures
    let body = format!("[lockout]\nmax_failures = 100\n{body}");
    let d = Daemon::start(Setup::with_body(&body));
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "timing", "right password").await.status, 201);
    let time = |user: &'static str| {
        let socket = d.socket.clone();
        async move {
            let mut c = gatehouse_e2e::Client::connect(&socket).await.unwrap();
            let mut v = Vec::new();
            for _ in 0..7 {
                let t = std::time::Instant::now();
                assert_eq!(login(&mut c, user, "wrong password").await.status, 401);
                v.push(t.elapsed());
            }
            v.sort();
            v[3]
        }
    };
    let known = time("timing").await;
    let unknown = time("no-such-user").await;
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {known:?}: the difference reveals which users exist"
    );
}
