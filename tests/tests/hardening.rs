//! Attacks by other users of the same host, tried against the real daemon.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, add_user};

/// Under `umask 000` the store (password hashes) would be world-readable;
/// the state directory is 0700 and the database files 0600 anyway.
#[tokio::test]
async fn the_store_is_private_whatever_the_umask() {
    let d = Daemon::prepare(&Setup::with_body(LOCAL_AUTH));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000; exec \"$0\" --config \"$1\"")
        .arg(gatehouse_e2e::bin("gatehoused"))
        .arg(&d.config);
    let d = d.spawn_with(cmd);
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "ann", "a long password").await.status, 201);
    let state = d.dir().join("state");
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    for f in [
        "gatehouse.db",
        "gatehouse.db-wal",
        "gatehouse.db-shm",
        "audit.log",
    ] {
        let p = state.join(f);
        if p.exists() {
            assert_eq!(
                std::fs::metadata(&p).unwrap().mode() & 0o077,
                0,
                "{f} is open to others"
            );
        }
    }
    assert!(state.join("gatehouse.db").exists());
}

/// A state directory other users can write (they could swap the database)
/// is refused at start, naming the key.
#[test]
fn a_state_directory_others_can_write_is_refused() {
    let d = Daemon::prepare(&Setup::with_body(LOCAL_AUTH));
    let state = d.dir().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = gatehouse_e2e::run_with_stdin(
        Command::new(gatehouse_e2e::bin("gatehoused"))
            .arg("--config")
            .arg(&d.config),
        "",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("daemon.state_dir") && err.contains("writable by other users"),
        "{err}"
    );
    assert!(!state.join("gatehouse.db").exists(), "nothing was created");
}
