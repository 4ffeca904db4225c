//! The Debian package: built by scripts/package.sh from the debug binaries
//! the test run has built (`--debug`: no release build), its files
//! checked, installed with dpkg into a throw-away overlay of this machine's
//! root (a private mount namespace: the machine itself is untouched), its
//! units verified with `systemd-analyze verify`, and the daemon started the
//! way gatehouse.service starts it (its user and group, umask, runtime and
//! state directories, command line) and used with the packaged CLI.
//!
//! Needs root (mount namespaces, overlayfs, dpkg); skipped with a message
//! otherwise. `GATEHOUSE_DEB=path/to.deb` tests a package built before
//! (a release one from `scripts/package.sh`, say).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gatehouse_e2e::namespace::MountNamespace;
use gatehouse_e2e::process::{bin_dir, is_root, repo_root};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deb() -> PathBuf {
    if let Some(p) = std::env::var_os("GATEHOUSE_DEB") {
        return PathBuf::from(p);
    }
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/package.sh")).arg("--debug");
    // the binaries this test run uses: <target dir>/debug
    let bins = bin_dir();
    if bins.file_name().is_some_and(|n| n == "debug")
        && let Some(target) = bins.parent()
    {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = run(cmd.current_dir(repo_root()));
    repo_root().join(out.lines().last().unwrap().trim())
}

/// An overlay of `/` (the upper layer a tmpfs) with its own /proc, /dev,
/// /run and /tmp, in a private mount namespace: dpkg installs into it,
/// and everything is gone once the namespace's processes are.
struct Overlay {
    ns: MountNamespace,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Overlay {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gh-pkg")
            .tempdir_in("/tmp")
            .unwrap();
        let ns = MountNamespace::new(
            r#"d=$1
mount -t tmpfs -o mode=0700 tmpfs "$d"
mkdir "$d/upper" "$d/work" "$d/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$d/root"
mount -t proc proc "$d/root/proc"
mount --rbind /dev "$d/root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$d/root/run"
mount -t tmpfs -o mode=1777 tmpfs "$d/root/tmp""#,
            &[dir.path()],
        );
        Self {
            ns,
            root: dir.path().join("root"),
            _dir: dir,
        }
    }

    /// `sh -c script` chrooted into the overlay.
    fn sh(&self, script: &str) -> Command {
        let mut cmd = self.ns.command("chroot");
        cmd.arg(&self.root).args(["sh", "-c", script]);
        cmd
    }

    /// Runs `script` in the overlay; its stdout, or a panic with its output.
    fn run(&self, script: &str) -> String {
        run(&mut self.sh(script))
    }
}

/// The unit's value of `key` (the last assignment, as systemd reads it).
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .trim()
}

#[test]
fn the_package_installs_and_the_daemon_runs_as_the_unit_runs_it() {
    if !is_root() {
        eprintln!("SKIPPED: installing the package into an overlay needs root (mount namespaces)");
        return;
    }
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
        "./usr/share/zsh/vendor-completions/_gatehouse",
        "./usr/share/fish/vendor_completions.d/gatehouse.fish",
        "./usr/share/doc/gatehouse/operations.md",
        "./usr/share/doc/gatehouse/examples/nginx/gatehouse-auth.conf",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(file)),
            "{file} not in the package:\n{listing}"
        );
    }
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains("Package: gatehouse"), "{info}");
    assert!(info.contains("postinst") && info.contains("conffiles"), "{info}");

    let host_before = (
        Path::new("/usr/bin/gatehoused").exists(),
        Path::new("/var/lib/gatehouse").exists(),
        std::fs::read_to_string("/etc/passwd").unwrap(),
    );
    let o = Overlay::new();
    run(o.ns.command("cp").arg(&deb).arg(o.root.join("tmp/gatehouse.deb")));
    // the man-db trigger is left pending: it only indexes the pages
    o.run("dpkg -i --no-triggers /tmp/gatehouse.deb");

    // what postinst made: the system user, the state directory, enabled units
    let user = o.run("getent passwd gatehouse");
    assert!(
        user.contains(":/var/lib/gatehouse:") && user.trim_end().ends_with("nologin"),
        "{user}"
    );
    assert_eq!(
        o.run("stat -c '%a %U %G' /var/lib/gatehouse /etc/gatehouse/conf.d"),
        "700 gatehouse gatehouse\n755 root root\n"
    );
    o.run("test -L /etc/systemd/system/sockets.target.wants/gatehouse.socket");
    o.run("test -L /etc/systemd/system/multi-user.target.wants/gatehouse.service");
    let conffiles = o.run("dpkg-query -W -f='${Conffiles}' gatehouse");
    assert!(conffiles.contains("/etc/gatehouse/gatehouse.toml"), "{conffiles}");

    // the units as systemd would load them
    if o.sh("command -v systemd-analyze")
        .output()
        .unwrap()
        .status
        .success()
    {
        let out = o
            .sh("systemd-analyze verify /usr/lib/systemd/system/gatehouse.socket /usr/lib/systemd/system/gatehouse.service")
            .output()
            .unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        // other units on the machine may draw warnings; ours none
        assert!(!t.contains("gatehouse"), "{t}");
    } else {
        eprintln!("systemd-analyze is not installed: the units are not verified");
    }

    // start the daemon as gatehouse.service does
    let unit = o.run("cat /usr/lib/systemd/system/gatehouse.service");
    let exec = unit_value(&unit, "ExecStart");
    assert_eq!(exec, "/usr/bin/gatehoused --config /etc/gatehouse/gatehouse.toml");
    let (user, group) = (unit_value(&unit, "User"), unit_value(&unit, "Group"));
    let runtime = format!("/run/{}", unit_value(&unit, "RuntimeDirectory"));
    let state = format!("/var/lib/{}", unit_value(&unit, "StateDirectory"));
    assert_eq!(state, "/var/lib/gatehouse");
    assert_eq!(unit_value(&unit, "StateDirectoryMode"), "0700");
    o.run(&format!(
        "install -d -o {user} -g {group} -m {} {runtime}",
        unit_value(&unit, "RuntimeDirectoryMode")
    ));
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("daemon.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut daemon = Stop(
        o.ns.command("chroot")
            .arg(&o.root)
            .args([
                "env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
            ])
            .arg(format!("RUNTIME_DIRECTORY={runtime}"))
            .arg(format!("STATE_DIRECTORY={state}"))
            .args(["sh", "-c"])
            .arg(format!(
                "umask {}; exec setpriv --reuid={user} --regid={group} --init-groups --no-new-privs {exec}",
                unit_value(&unit, "UMask")
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let cli = |args: &str, stdin: &str| {
        let mut child = o
            .sh(&format!("gatehouse {args}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cli("status", "").status.success() {
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "the packaged daemon exited: {}",
            log()
        );
        assert!(
            Instant::now() < deadline,
            "the packaged daemon did not answer: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // a clean start: nothing to warn about in the packaged layout (the
    // state directory's mode was narrowed with a warning on every start)
    assert!(
        !log().contains(" WARN ") && !log().contains(" ERROR "),
        "{}",
        log()
    );
    // the service user runs it, and owns the socket and the store
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.0.id())).unwrap();
    let uid = o.run(&format!("id -u {user}"));
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.trim())),
        "{status}"
    );
    assert_eq!(
        o.run(&format!("stat -c '%a %U %G' {runtime}/gatehouse.sock")),
        format!("660 {user} {group}\n")
    );

    // the packaged CLI, on the socket the packaged config names
    let out = cli("user add ann", "ann's long password\n");
    assert!(out.status.success(), "{}{}", text(&out), log());
    let out = cli("login ann", "ann's long password\n");
    assert!(out.status.success(), "{}{}", text(&out), log());
    let out = cli("login ann", "not ann's password\n");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_eq!(
        o.run(&format!("stat -c '%a %U' {state}/gatehouse.db")),
        format!("600 {user}\n")
    );
    // a user outside the group cannot reach the socket at all
    let out = o.sh("runuser -u nobody -- gatehouse status").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("add your user to the gatehouse group"),
        "{}",
        text(&out)
    );

    // systemctl stop: SIGTERM, a clean exit
    assert!(
        Command::new("kill")
            .args(["-TERM", &daemon.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(daemon.0.wait().unwrap().success(), "{}", log());
    drop(daemon);
    drop(o);
    let host_after = (
        Path::new("/usr/bin/gatehoused").exists(),
        Path::new("/var/lib/gatehouse").exists(),
        std::fs::read_to_string("/etc/passwd").unwrap(),
    );
    assert!(host_before == host_after, "the machine itself was changed");
}
