//! Process lifecycle: socket files (stale, live, mode), socket activation,
//! systemd notifications, graceful shutdown, offline config checks.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::Command;
use std::time::Duration;

use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, add_user, bin, login, repo_root, run_with_stdin};

#[tokio::test]
async fn a_stale_socket_is_replaced_and_the_mode_applied() {
    let setup = Setup {
        daemon_extra: String::new(),
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    // a socket file left behind by a crashed run: nobody listens on it
    drop(UnixListener::bind(&d.socket).unwrap());
    assert!(d.socket.exists());
    std::fs::write(
        &d.config,
        Daemon::config_text(&setup).replace("socket_mode = \"0666\"", "socket_mode = \"0640\""),
    )
    .unwrap();
    let mut cmd = Command::new(bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    let d = d.spawn_with(cmd);
    assert_eq!(d.client().await.get("/v1/health").await.unwrap().status, 200);
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(d.logs().contains("removing stale socket"));
}

#[tokio::test]
async fn a_live_socket_is_not_stolen() {
    let first = Daemon::start(Setup::default());
    let out = run_with_stdin(
        Command::new(bin("gatehoused")).arg("--config").arg(&first.config),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
    // the first daemon still serves on its socket
    assert_eq!(first.client().await.get("/v1/health").await.unwrap().status, 200);

    // a regular file at the socket path is never removed
    let other = Daemon::prepare(&Setup::default());
    std::fs::write(&other.socket, "precious").unwrap();
    let out = run_with_stdin(
        Command::new(bin("gatehoused")).arg("--config").arg(&other.config),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&other.socket).unwrap(), "precious");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_removes_the_socket() {
    // expensive hashing so the logins are still running when SIGTERM lands
    let body = LOCAL_AUTH
        .replace("argon2_memory_kib = 64", "argon2_memory_kib = 32768")
        .replace("argon2_iterations = 1", "argon2_iterations = 4");
    let mut d = Daemon::start(Setup::with_body(&body));
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "ivan", "ivan password").await.status, 201);

    let mut in_flight = Vec::new();
    for i in 0..6 {
        let mut client = d.client().await;
        in_flight.push(tokio::spawn(async move {
            let pw = if i % 2 == 0 {
                "ivan password"
            } else {
                "wrong password"
            };
            let t = std::time::Instant::now();
            let a = login(&mut client, "ivan", pw).await;
            (i, a.status, t.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    d.signal("TERM");
    let mut slowest = Duration::ZERO;
    for task in in_flight {
        let (i, status, took) = task.await.unwrap();
        slowest = slowest.max(took);
        assert_eq!(status, if i % 2 == 0 { 200 } else { 401 }, "request {i}");
    }
    assert!(
        slowest > Duration::from_millis(40),
        "requests finished before SIGTERM ({slowest:?}); the test proves nothing"
    );
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0), "{}", d.logs());
    assert!(!d.socket.exists(), "socket file left behind");
    assert!(gatehouse_e2e::Client::connect(&d.socket).await.is_err());
    assert!(d.logs().contains("SIGTERM"));
}

#[tokio::test]
async fn socket_activation_uses_the_passed_socket() {
    let Ok(activate) = which("systemd-socket-activate") else {
        eprintln!("skipped: systemd-socket-activate is not installed");
        return;
    };
    let d = Daemon::prepare(&Setup::default());
    let activated = d.dir().join("activated.sock");
    let mut cmd = Command::new(activate);
    cmd.arg("-l")
        .arg(&activated)
        .arg(bin("gatehoused"))
        .arg("--config")
        .arg(&d.config);
    // The harness waits on `d.socket`: point it at the activation socket.
    let mut d = d;
    let configured = std::mem::replace(&mut d.socket, activated.clone());
    let mut d = d.spawn_with(cmd);
    let h = d.client().await.get("/v1/health").await.unwrap();
    assert_eq!(h.status, 200);
    assert!(
        !configured.exists(),
        "the configured socket must not be bound when activated"
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        activated.exists(),
        "the activation socket belongs to the service manager"
    );
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.exists())
        })
        .ok_or(())
}

#[tokio::test]
async fn systemd_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let recv = || {
        let mut buf = vec![0u8; 4096];
        let n = notify.recv(&mut buf).expect("notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let setup = Setup {
        env: vec![("NOTIFY_SOCKET".into(), notify_path.display().to_string())],
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    let mut cmd = Command::new(bin("gatehoused"));
    cmd.arg("--config")
        .arg(&d.config)
        .env("NOTIFY_SOCKET", &notify_path);
    let mut d = d.spawn_with(cmd);
    let ready = recv();
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(ready.contains("STATUS=serving generation 1"), "{ready}");

    let r = d
        .client()
        .await
        .post("/v1/reload", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let reloading = recv();
    assert!(reloading.contains("RELOADING=1"), "{reloading}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = recv();
    assert!(
        ready.contains("READY=1") && ready.contains("generation 2"),
        "{ready}"
    );

    d.write_config(&Setup::with_body("[lockout]\nwindow = \"x\"\n"));
    let r = d
        .client()
        .await
        .post("/v1/reload", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    // the watcher may also have reloaded: read until the failure status arrives
    let mut failed = String::new();
    for _ in 0..6 {
        failed = recv();
        if failed.contains("last reload failed") {
            break;
        }
    }
    assert!(
        failed.contains("STATUS=") && failed.contains("last reload failed"),
        "{failed}"
    );
    assert!(failed.contains("lockout.window"), "{failed}");

    d.signal("TERM");
    let mut stopping = String::new();
    for _ in 0..6 {
        stopping = recv();
        if stopping.contains("STOPPING=1") {
            break;
        }
    }
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn check_config_validates_offline() {
    let root = repo_root();
    for file in ["etc/gatehouse.toml", "etc/dev.toml"] {
        let out = run_with_stdin(
            Command::new(bin("gatehoused"))
                .arg("--check-config")
                .arg(root.join(file)),
            "",
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
    }

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[daemon]\nsocket_mode = \"abc\"\n\n[[authenticators]]\nname = \"X\"\ntype = \"nonesuch\"\n",
    )
    .unwrap();
    let out = run_with_stdin(
        Command::new(bin("gatehoused")).arg("--check-config").arg(&bad),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2: daemon.socket_mode"), "{err}");
    // the CLI wraps the same check
    let out = run_with_stdin(Command::new(bin("gatehouse")).arg("check-config").arg(&bad), "");
    assert_eq!(out.status.code(), Some(1));

    // plugin-level errors are found offline too
    std::fs::write(&bad, "[[authenticators]]\nname = \"X\"\ntype = \"nonesuch\"\n").unwrap();
    let out = run_with_stdin(
        Command::new(bin("gatehoused")).arg("--check-config").arg(&bad),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:1: authenticators[\"X\"].type: unknown authenticator type"),
        "{err}"
    );

    // and --check-config never creates the state directory
    let good = dir.path().join("good.toml");
    std::fs::write(&good, format!("[daemon]\nstate_dir = \"st\"\n{LOCAL_AUTH}")).unwrap();
    let out = run_with_stdin(
        Command::new(bin("gatehoused")).arg("--check-config").arg(&good),
        "",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("st").exists());
}

#[tokio::test]
async fn worker_threads_is_honoured_and_only_a_restart_changes_it() {
    let setup = |n: u32| Setup {
        daemon_extra: format!("worker_threads = {n}"),
        ..Setup::default()
    };
    // three: more than this machine's CPUs, so not the default
    let d = Daemon::start(setup(3));
    // the runtime's own count, as the start-up line reports it
    let workers = || d.logs().matches(" workers=3").count();
    assert_eq!(workers(), 1, "{}", d.logs());
    // a reload that changes it is refused whole, with the key named
    d.write_config(&setup(1));
    let mut c = d.client().await;
    let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(a.status, 422, "{:?}", a.value());
    let errors = a.error().unwrap().error.details.unwrap()["errors"].clone();
    assert!(
        errors
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "daemon.worker_threads"),
        "{errors}"
    );
    assert_eq!(workers(), 1, "still one start-up, one worker");
    // out-of-range values are configuration errors
    let bad = Daemon::prepare(&setup(100_000));
    let out = std::process::Command::new(gatehouse_e2e::bin("gatehoused"))
        .arg("--check-config")
        .arg(&bad.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("daemon.worker_threads")
            || String::from_utf8_lossy(&out.stderr).contains("daemon.worker_threads"),
        "{out:?}"
    );
}
