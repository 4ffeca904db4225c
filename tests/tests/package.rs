//! The Debian package: built by scripts/package.sh, its files checked, and
//! the daemon started from it the way gatehouse.service starts it.
//!
//! Not in the default run: it needs a release build (about 5 minutes on
//! two cores). Run it with
//!   cargo nextest run -p gatehouse-e2e --test package --run-ignored only
//! (GATEHOUSE_DEB=path/to.deb uses a package built before.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_e2e::process::{repo_root, run_with_stdin};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deb() -> PathBuf {
    if let Some(p) = std::env::var_os("GATEHOUSE_DEB") {
        return PathBuf::from(p);
    }
    let out = run(Command::new("bash").arg(repo_root().join("scripts/package.sh")));
    repo_root().join(out.lines().last().unwrap().trim())
}

#[test]
#[ignore = "needs a release build (scripts/package.sh); run with --run-ignored only"]
fn the_package_installs_its_files_and_the_daemon_starts_as_the_unit_starts_it() {
    let deb = deb();
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for file in [
        "./usr/bin/gatehoused",
        "./usr/bin/gatehouse",
        "./etc/gatehouse/gatehouse.toml",
        "./etc/gatehouse/conf.d/README",
        "./usr/lib/systemd/system/gatehouse.service",
        "./usr/lib/systemd/system/gatehouse.socket",
        "./usr/lib/sysusers.d/gatehouse.conf",
        "./usr/lib/tmpfiles.d/gatehouse.conf",
        "./usr/share/man/man1/gatehouse.1.gz",
        "./usr/share/man/man1/gatehouse-store-backup.1.gz",
        "./usr/share/bash-completion/completions/gatehouse",
        "./usr/share/doc/gatehouse/operations.md",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(file)),
            "{file} not in the package:\n{listing}"
        );
    }
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains("Package: gatehouse"), "{info}");
    assert!(info.contains("postinst") && info.contains("conffiles"), "{info}");

    // unpack as dpkg would, then start the daemon the way the unit does
    let root = tempfile::Builder::new()
        .prefix("gh-deb")
        .tempdir_in("/tmp")
        .unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root.path()));
    let unit = std::fs::read_to_string(root.path().join("usr/lib/systemd/system/gatehouse.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    assert_eq!(exec, "/usr/bin/gatehoused --config /etc/gatehouse/gatehouse.toml");
    let at = |p: &str| root.path().join(p.trim_start_matches('/'));
    // the shipped configuration, with the unit's directories moved under the root
    let conf = at("/etc/gatehouse/gatehouse.toml");
    let shipped = std::fs::read_to_string(&conf).unwrap();
    let state = at("/var/lib/gatehouse");
    let socket = at("/run/gatehouse/gatehouse.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let moved = shipped.replacen(
        "[daemon]\n",
        &format!(
            "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n",
            state.display(),
            socket.display()
        ),
        1,
    );
    std::fs::write(&conf, moved).unwrap();
    let check = run(Command::new(at("/usr/bin/gatehoused"))
        .arg("--check-config")
        .arg(&conf));
    assert!(check.contains("configuration is valid"), "{check}");
    let mut daemon = Command::new(at("/usr/bin/gatehoused"))
        .arg("--config")
        .arg(&conf)
        .stderr(std::fs::File::create(root.path().join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let cli = |args: &[&str], stdin: &str| {
        run_with_stdin(
            Command::new(at("/usr/bin/gatehouse"))
                .arg("--socket")
                .arg(&socket)
                .args(args),
            stdin,
        )
    };
    let mut up = false;
    for _ in 0..100 {
        if cli(&["status"], "").status.success() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = || std::fs::read_to_string(root.path().join("daemon.log")).unwrap_or_default();
    assert!(up, "the packaged daemon did not answer: {}", log());
    assert!(
        cli(&["user", "add", "ann"], "ann's long password\n")
            .status
            .success(),
        "{}",
        log()
    );
    assert!(
        cli(&["login", "ann"], "ann's long password\n").status.success(),
        "{}",
        log()
    );
    assert!(Path::new(&state).join("gatehouse.db").exists());
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    assert!(daemon.wait().unwrap().success(), "{}", log());
}
