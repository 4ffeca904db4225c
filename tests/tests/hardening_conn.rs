//! Attacks on the daemon's connections and sockets (issue #19, items 1, 8
//! and 9), each performed for real against the real daemon: bounded loop
//! counts and times, on the test's own socket, 127.0.0.1 only.
//!
//! Other uids are played by a thread that switches its own credentials
//! (Linux credentials are per thread; `SO_PEERCRED` records the
//! connecting thread's), so one test process holds every side.

#![allow(clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, bin, cpu_ns, is_root};

/// Headers that promise a body which never comes.
const SLOW_BODY: &[u8] = b"POST /v1/login HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";

/// Runs `f` on a thread whose real and effective uid are `uid`.
fn as_uid<T: Send>(uid: u32, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let u = rustix::process::Uid::from_raw(uid);
            rustix::thread::set_thread_res_uid(u, u, rustix::process::Uid::ROOT)
                .expect("setresuid (needs root)");
            f()
        })
        .join()
        .expect("thread")
    })
}

/// `n` connections as `uid`, each sending `first` (possibly nothing).
fn open_as(uid: u32, socket: &Path, n: usize, first: &[u8]) -> Vec<UnixStream> {
    as_uid(uid, || {
        (0..n)
            .map(|_| {
                let mut s = UnixStream::connect(socket).expect("connect");
                if !first.is_empty() {
                    // the daemon may have closed it already (refused): fine
                    let _ = s.write_all(first);
                }
                s
            })
            .collect()
    })
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Nothing more from the daemon, and not closed.
    Open,
    /// Closed by the daemon, after these bytes.
    Closed(String),
}

/// What the daemon did with a connection so far (without waiting).
fn state(s: &mut UnixStream, seen: &mut Vec<u8>) -> State {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return State::Closed(String::from_utf8_lossy(seen).into_owned()),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return State::Open,
            Err(_) => return State::Closed(String::from_utf8_lossy(seen).into_owned()),
        }
    }
}

fn states(conns: &mut [UnixStream]) -> Vec<State> {
    conns.iter_mut().map(|s| state(s, &mut Vec::new())).collect()
}

fn count_open(states: &[State]) -> usize {
    states.iter().filter(|s| **s == State::Open).count()
}

/// A well-behaved client: a fresh connection, `GET /v1/health`, the status
/// and how long it took.
fn health(socket: &Path) -> (u16, Duration) {
    let start = Instant::now();
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: gatehouse\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, start.elapsed())
}

fn assert_answered_fast(socket: &Path, when: &str) {
    let (status, took) = health(socket);
    assert_eq!(status, 200, "{when}: the good client got no answer");
    assert!(took < Duration::from_secs(1), "{when}: answered after {took:?}");
}

/// Starts the daemon with `ulimit -n NOFILE` (soft and hard).
fn start_with_nofile(setup: &Setup, nofile: u32) -> Daemon {
    let d = Daemon::prepare(setup);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {nofile}; exec \"$0\" --config \"$1\""))
        .arg(bin("gatehoused"))
        .arg(&d.config);
    d.spawn_with(cmd)
}

fn daemon_extra(lines: &str) -> Setup {
    Setup {
        daemon_extra: lines.to_owned(),
        ..Setup::with_body(LOCAL_AUTH)
    }
}

/// Item 1: connections that send headers with `Content-Length: 100` and
/// never the body. With 256 descriptors, 300 of them used to leave the
/// daemon unable to accept anything. Now one uid holds at most
/// `max_connections_per_uid` of them, the rest are answered 429 at once,
/// the held ones are closed after `request_timeout`, and a client of
/// another uid is answered within 1 s throughout.
#[test]
fn slow_bodies_are_capped_per_uid_and_cut_off_while_others_are_served() {
    if !is_root() {
        eprintln!("skipped: needs root for a second uid");
        return;
    }
    let d = start_with_nofile(
        &daemon_extra(
            "max_connections = 200\nmax_connections_per_uid = 20\nrequest_timeout = \"2s\"\nidle_timeout = \"20s\"",
        ),
        256,
    );
    let started = Instant::now();
    let mut attack = open_as(65534, &d.socket, 300, SLOW_BODY);
    assert_answered_fast(&d.socket, "right after the attack");
    std::thread::sleep(Duration::from_millis(500));
    let mut seen: Vec<Vec<u8>> = vec![Vec::new(); attack.len()];
    let first: Vec<State> = attack
        .iter_mut()
        .zip(seen.iter_mut())
        .map(|(s, b)| state(s, b))
        .collect();
    assert_eq!(
        count_open(&first),
        20,
        "one uid holds max_connections_per_uid connections"
    );
    for s in &first {
        if let State::Closed(answer) = s {
            assert!(
                answer.starts_with("HTTP/1.1 429") && answer.contains("max_connections_per_uid"),
                "refused with a reason: {answer:?}"
            );
        }
    }
    // the good client keeps being answered while the slow bodies are held
    while started.elapsed() < Duration::from_millis(1500) {
        assert_answered_fast(&d.socket, "while slow bodies are held");
        std::thread::sleep(Duration::from_millis(100));
    }
    // request_timeout (2 s from the first byte) closes the held ones
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    let after = states(&mut attack);
    assert_eq!(
        count_open(&after),
        0,
        "slow bodies are cut off after request_timeout"
    );
    assert_answered_fast(&d.socket, "after the attack");
    let mut c = UnixStream::connect(&d.socket).unwrap();
    c.write_all(b"GET /v1/metrics HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut m = String::new();
    c.read_to_string(&mut m).unwrap();
    assert!(
        m.contains("gatehouse_connections_refused_total{reason=\"max_connections_per_uid\"} 280"),
        "{m}"
    );
}

/// Item 1: the global cap. Two uids hold 15 idle connections each
/// (`max_connections = 30`); a third uid's connection is answered 429 and
/// closed, and is served again once `idle_timeout` has closed the idle ones.
#[test]
fn the_global_cap_refuses_and_idle_connections_are_closed() {
    if !is_root() {
        eprintln!("skipped: needs root for other uids");
        return;
    }
    let d = start_with_nofile(
        // idle_timeout well above the time 30 connections take to open on
        // a loaded CI machine (at 2 s, the first ones were once closed before
        // they were counted)
        &daemon_extra("max_connections = 30\nmax_connections_per_uid = 15\nidle_timeout = \"5s\""),
        256,
    );
    // the harness's readiness probe has just closed its connection; give
    // the daemon a moment to see that and free its slot, or the 30th
    // connection below finds the cap full (seen in CI)
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut held = open_as(60001, &d.socket, 15, b"");
    held.extend(open_as(60002, &d.socket, 15, b""));
    std::thread::sleep(Duration::from_millis(300));
    let s = states(&mut held);
    assert_eq!(
        count_open(&s),
        30,
        "{:?}",
        s.iter().filter(|s| **s != State::Open).collect::<Vec<_>>()
    );
    let mut third = open_as(60003, &d.socket, 1, b"");
    std::thread::sleep(Duration::from_millis(300));
    match state(&mut third[0], &mut Vec::new()) {
        State::Closed(a) => assert!(
            a.starts_with("HTTP/1.1 429") && a.contains("its maximum"),
            "{a:?}"
        ),
        State::Open => panic!("a connection over max_connections was kept"),
    }
    // idle connections (nothing sent) close after idle_timeout
    std::thread::sleep(Duration::from_millis(5800).saturating_sub(started.elapsed()));
    assert_eq!(count_open(&states(&mut held)), 0, "idle connections are closed");
    let ok = as_uid(60003, || health(&d.socket));
    assert_eq!(ok.0, 200);
}

/// Item 1: a peer that `[access]` refuses is answered 403 and closed at
/// once, before it sends a byte, so 300 of them (more than the daemon's
/// 256 descriptors) hold nothing and a permitted client is still served.
#[test]
fn forbidden_peers_are_dropped_before_any_read() {
    if !is_root() {
        eprintln!("skipped: needs root for a second uid");
        return;
    }
    let d = start_with_nofile(
        &Setup::with_body(&format!(
            "[access]\nclient_uids = [0]\nadmin_uids = [0]\n{LOCAL_AUTH}"
        )),
        256,
    );
    let mut idle = open_as(65534, &d.socket, 300, b"");
    assert_answered_fast(&d.socket, "with 300 forbidden connections");
    // (a few linger 200 ms, closed for writing, so a client still sending
    // its request reads the answer)
    std::thread::sleep(Duration::from_millis(500));
    let mut answer = Vec::new();
    let s = state(&mut idle[0], &mut answer);
    assert!(
        matches!(&s, State::Closed(a) if a.starts_with("HTTP/1.1 403") && a.contains("may not use this socket")),
        "{s:?}"
    );
    assert_eq!(
        count_open(&states(&mut idle)),
        0,
        "every forbidden peer is closed"
    );
    // the CLI of a forbidden user still learns why
    let out = d.cli_as("nobody", &["status"], "");
    assert_eq!(out.status.code(), Some(4), "permission denied: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not use this socket"));
}

/// Item 1: when descriptors run out (the daemon's limit lowered to 48
/// under it, with `max_connections` sized for the start-up limit), the
/// accept loop backs off instead of spinning, and serves again as soon as
/// descriptors are free.
#[test]
fn accept_backs_off_when_descriptors_run_out_and_recovers() {
    let d = start_with_nofile(
        &daemon_extra("max_connections = 1000\nmax_connections_per_uid = 1000\nidle_timeout = \"60s\""),
        4096,
    );
    let pid = d.pid();
    let ok = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg("--nofile=48:48")
        .status()
        .expect("prlimit")
        .success();
    assert!(ok, "prlimit");
    let held: Vec<UnixStream> = (0..80)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ns(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spent = Duration::from_nanos(cpu_ns(pid) - before);
    assert!(
        spent < Duration::from_millis(150),
        "the daemon spun while out of descriptors: {spent:?} of CPU in 1 s"
    );
    assert!(d.logs().contains("accept failed"), "{}", d.logs());
    drop(held);
    assert_answered_fast(&d.socket, "once descriptors are free");
    assert!(d.logs().contains("accepting connections again"), "{}", d.logs());
}

/// Item 1: the soft descriptor limit is raised to the hard one at start.
#[test]
fn the_descriptor_limit_is_raised_to_the_hard_limit() {
    let d = Daemon::prepare(&Setup::default());
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=256:4096")
        .arg(bin("gatehoused"))
        .arg("--config")
        .arg(&d.config);
    let d = d.spawn_with(cmd);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[3..5], &["4096", "4096"], "{line}");
}

/// Item 1: bad values of the new keys are errors that name them.
#[test]
fn connection_settings_are_checked() {
    let d = Daemon::prepare(&daemon_extra(
        "max_connections = 0\nmax_connections_per_uid = -1\nrequest_timeout = \"1ms\"\nidle_timeout = \"soon\"",
    ));
    let out = gatehouse_e2e::run_with_stdin(
        Command::new(bin("gatehoused"))
            .arg("--check-config")
            .arg(&d.config),
        "",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for key in [
        "daemon.max_connections",
        "daemon.max_connections_per_uid",
        "daemon.request_timeout",
        "daemon.idle_timeout",
    ] {
        assert!(err.contains(key), "{key} not named: {err}");
    }
}

fn start_on_socket(d: &Daemon, socket: &Path) -> std::process::Output {
    let mut child = Command::new(bin("gatehoused"))
        .arg("--config")
        .arg(&d.config)
        .arg("--socket")
        .arg(socket)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // a daemon that starts would serve forever: give it a moment, then stop it
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() || UnixStream::connect(socket).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = Command::new("kill").arg(child.id().to_string()).status();
    }
    child.wait_with_output().unwrap()
}

/// Item 8: a socket directory that another user can write (or owns) is
/// refused; a sticky world-writable one is accepted with a warning.
#[test]
fn a_socket_directory_other_users_can_change_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let d = Daemon::prepare(&Setup::default());
    let dir = d.dir().join("run");
    std::fs::create_dir(&dir).unwrap();

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = start_on_socket(&d, &dir.join("gh.sock"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("daemon.socket") && err.contains("writable by other users"),
        "{err}"
    );
    assert!(!dir.join("gh.sock").exists());

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let out = start_on_socket(&d, &dir.join("gh.sock"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is owned by uid 65534"), "{err}");

    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = start_on_socket(&d, &dir.join("gh.sock"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("listening") && log.contains("can take its name"),
        "started, with a warning: {log}"
    );
}

/// A socket bound by uid 65534, as a user who moved the real one away
/// would; records what each connection sent.
struct FakeDaemon {
    path: PathBuf,
    listener: UnixListener,
}

impl FakeDaemon {
    fn bind(dir: &Path) -> Self {
        let sub = dir.join("hijack");
        std::fs::create_dir(&sub).unwrap();
        std::os::unix::fs::chown(&sub, Some(65534), Some(65534)).unwrap();
        let path = sub.join("gatehouse.sock");
        let listener = as_uid(65534, || UnixListener::bind(&path).expect("bind as 65534"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        listener.set_nonblocking(true).unwrap();
        Self { path, listener }
    }

    /// Everything the connections so far sent (waiting briefly for each).
    fn received(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok((mut s, _)) = self.listener.accept() {
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            buf.truncate(n);
            out.push(buf);
        }
        out
    }
}

fn cli(socket: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    gatehouse_e2e::run_with_stdin(
        Command::new(bin("gatehouse"))
            .arg("--socket")
            .arg(socket)
            .env_remove("GATEHOUSE_DAEMON_USER")
            .args(args),
        stdin,
    )
}

/// Item 8: the CLI sends no password to a socket that another user put
/// where the daemon's should be: not when the file is theirs, and not when
/// they made the file root's (the listening process is still theirs).
/// Naming their uid as the daemon user lets it through.
#[test]
fn the_cli_sends_no_secret_to_another_users_socket() {
    if !is_root() {
        eprintln!("skipped: needs root for a second uid");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("gh-e2e")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake = FakeDaemon::bind(tmp.path());

    let out = cli(&fake.path, &["login", "alice"], "the secret password\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "permission denied: {err}");
    assert!(err.contains("the socket file belongs to uid 65534"), "{err}");
    assert!(fake.received().is_empty(), "the CLI did not even connect");

    // the file made root's: the peer credentials still tell
    std::os::unix::fs::chown(&fake.path, Some(0), Some(0)).unwrap();
    let out = cli(&fake.path, &["user", "passwd", "alice"], "the secret password\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "permission denied: {err}");
    assert!(err.contains("the listening process runs as uid 65534"), "{err}");
    let got = fake.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].is_empty(),
        "nothing was sent: {:?}",
        String::from_utf8_lossy(&got[0])
    );

    // told that the daemon runs as 65534, the CLI talks to it
    let path = fake.path.clone();
    let login = std::thread::spawn(move || {
        cli(
            &path,
            &["--daemon-user", "65534", "login", "alice"],
            "the secret password\n",
        )
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = fake.received();
    while got.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        got = fake.received();
    }
    // (the fake closes without answering: the CLI fails, after sending)
    let out = login.join().unwrap();
    assert_eq!(got.len(), 1, "{out:?}");
    assert!(
        String::from_utf8_lossy(&got[0]).starts_with("POST /v1/login"),
        "{:?}",
        String::from_utf8_lossy(&got[0])
    );
    // and the real daemon (root) is trusted without a flag
    let d = Daemon::start(Setup::default());
    let out = cli(&d.socket, &["status"], "");
    assert!(out.status.success(), "{out:?}");
    let out = d.cli_as("nobody", &["status"], "");
    assert!(out.status.success(), "{out:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tcp_request(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Item 9: the forward-auth TCP listener answers `/v1/check` (Traefik's
/// and Envoy's forms) and nothing else: `POST /v1/users` with
/// `is_superuser`, which a socat bridge used to pass on as uid 0, is 404
/// and creates nobody.
#[tokio::test]
async fn forward_auth_over_tcp_serves_check_only() {
    let port = free_port();
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: format!(
            "{}\n[forward_auth]\nlisten = \"127.0.0.1:{port}\"\n",
            gatehouse_e2e::forward_auth_body()
        ),
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    gatehouse_e2e::install_plugin(
        &d.dir().join("plugins"),
        &gatehouse_e2e::plugin_library("gatehouse_plugin_testkit"),
    );
    std::fs::write(d.dir().join("storage-token"), "x".repeat(32)).unwrap();
    let mut cmd = Command::new(bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    let d = d.spawn_with(cmd);
    let mut c = d.client().await;
    assert_eq!(
        gatehouse_e2e::add_user(&mut c, "alice", "a long password")
            .await
            .status,
        201
    );

    let get = |path: &str, headers: &str| {
        tcp_request(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: auth\r\nConnection: close\r\n{headers}\r\n"),
        )
    };
    // Traefik: X-Forwarded-Method / X-Forwarded-Uri
    let a = get(
        "/v1/check",
        "X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /ai/chat\r\nAuthorization: Bearer tok-good\r\n",
    );
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    assert!(a.to_ascii_lowercase().contains("x-gatehouse-user: alice"), "{a}");
    let a = get("/v1/check", "X-Forwarded-Uri: /ai/chat\r\n");
    assert!(a.starts_with("HTTP/1.1 401"), "{a}");
    // Envoy: the original path after /v1/check
    let a = get("/v1/check/ai/chat", "Authorization: Bearer tok-good\r\n");
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");

    // nothing else
    let body = r#"{"username":"mallory","password":"a long password","is_superuser":true}"#;
    let a = tcp_request(
        port,
        &format!(
            "POST /v1/users HTTP/1.1\r\nHost: auth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(a.starts_with("HTTP/1.1 404"), "{a}");
    assert!(a.contains("/v1/check only"), "{a}");
    for path in ["/v1/health", "/v1/users", "/v1/metrics", "/v1/reload"] {
        let a = get(path, "");
        assert!(a.starts_with("HTTP/1.1 404"), "{path}: {a}");
    }
    let users = c.get("/v1/users").await.unwrap().value();
    assert!(!users.to_string().contains("mallory"), "{users}");

    // the address is a restart-only setting
    std::fs::write(
        &d.config,
        std::fs::read_to_string(&d.config).unwrap().replace(
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{}", free_port()),
        ),
    )
    .unwrap();
    let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(a.status, 422, "{:?}", a.value());
    assert!(a.value().to_string().contains("forward_auth.listen"));
}
