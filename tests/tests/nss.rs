//! `libnss_gatehouse.so.2` under the real glibc: `getent` and `id` run in a
//! private mount namespace (`unshare -m`) whose `/etc/nsswitch.conf` is
//! the test's own (`passwd: files gatehouse`), with the built module found
//! through `LD_LIBRARY_PATH` (glibc's NSS `dlopen` honours it in programs
//! that are not setuid). The machine's own files are untouched. Needs root
//! (for `unshare -m`); skipped with a message otherwise.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, add_user, ldap_peer};
use serde_json::{Value, json};

/// The test's view of the host: an nsswitch.conf naming `gatehouse`, the
/// module where the loader finds it, and the socket the module asks.
struct Host {
    _dir: tempfile::TempDir,
    nsswitch: PathBuf,
    lib: PathBuf,
    socket: PathBuf,
}

impl Host {
    fn new(socket: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let nsswitch = dir.path().join("nsswitch.conf");
        std::fs::write(
            &nsswitch,
            "passwd: files gatehouse\ngroup: files gatehouse\nshadow: files\nhosts: files\n",
        )
        .unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib).unwrap();
        std::fs::copy(
            gatehouse_e2e::plugin_library("nss_gatehouse"),
            lib.join("libnss_gatehouse.so.2"),
        )
        .unwrap();
        Self {
            _dir: dir,
            nsswitch,
            lib,
            socket: socket.to_owned(),
        }
    }

    /// Runs `args` in the namespace: (exit code, stdout, how long it took).
    fn run(&self, args: &[&str]) -> (i32, String, Duration) {
        let t = Instant::now();
        let out = Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                "mount --bind \"$1\" /etc/nsswitch.conf && shift && exec \"$@\"",
                "sh",
            ])
            .arg(&self.nsswitch)
            .args(args)
            .env("LD_LIBRARY_PATH", &self.lib)
            .env("GATEHOUSE_NSS_SOCKET", &self.socket)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("mount:"), "{stderr}");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            t.elapsed(),
        )
    }

    /// `run`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, _) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out}");
        out
    }
}

fn skip_unless_root() -> bool {
    if gatehouse_e2e::is_root() {
        return false;
    }
    eprintln!("SKIPPED: the NSS tests need root (unshare -m, a bind mount over /etc/nsswitch.conf)");
    true
}

const HOST: &str = r#"
[host]
uid_range = [70000, 79999]
gid_range = [80000, 89999]
home = "/home/{username}"
shell = "/bin/bash"
nss_socket = "nss.sock"
"#;

/// A local authenticator whose users join organization `eng`, and LDAP
/// whose users join `corp` and, for members of `admins`, team
/// `corp`/`admins`.
fn body() -> String {
    let p = ldap_peer();
    format!(
        r#"{HOST}
{LOCAL_AUTH}
[[authenticators.maps]]
map_type = "organization"
organization = "eng"
triggers.always = {{}}

[[authenticators]]
name = "corp-ldap"
type = "ldap"
[authenticators.settings]
server_uri = ["{uri}"]
bind_dn = "cn=reader,ou=services,dc=example,dc=test"
bind_password = "readerpass"
user_search = ["ou=users,dc=example,dc=test", "SCOPE_SUBTREE", "(uid=%(user)s)"]
user_attr_map = {{ first_name = "givenName", last_name = "sn", email = "mail" }}
group_type = "NestedGroupOfNamesType"
group_search = ["ou=groups,dc=example,dc=test", "SCOPE_SUBTREE", "(objectClass=groupOfNames)"]
[[authenticators.maps]]
map_type = "organization"
organization = "corp"
triggers.always = {{}}
[[authenticators.maps]]
map_type = "team"
organization = "corp"
team = "admins"
triggers.groups = {{ has_or = ["admins"] }}
"#,
        uri = p.uri
    )
}

async fn login_with(d: &Daemon, authenticator: &str, user: &str, password: &str) -> Value {
    let a = d
        .client()
        .await
        .post(
            "/v1/login",
            &json!({"username": user, "password": password, "authenticator": authenticator}),
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(a.status, 200, "{v}");
    v
}

/// One raw request on a socket; (status, body).
fn raw(socket: &Path, request: &str) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
    )
}

/// The lookup socket of `d`, once it is bound (the harness's readiness
/// is the main socket's, which is bound first).
fn nss_socket(d: &Daemon) -> PathBuf {
    let path = d.dir().join("nss.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no {}:\n{}", path.display(), d.logs());
        std::thread::sleep(Duration::from_millis(10));
    }
    path
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn getent_and_id_answer_from_the_daemon() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start(Setup::with_body(&body()));
    let nss_socket = nss_socket(&d);
    assert_eq!(
        std::fs::metadata(&nss_socket).unwrap().mode() & 0o777,
        0o666,
        "any local process may ask"
    );
    assert_eq!(
        add_user(&mut d.client().await, "lena", "lena's password")
            .await
            .status,
        201
    );
    let lena = login_with(&d, "Local Database", "lena", "lena's password").await;
    let alice = login_with(&d, "corp-ldap", "alice", "alicepass").await;
    let uid = |v: &Value| 70000 + v["user"]["id"].as_str().unwrap().parse::<u32>().unwrap();
    let (alice_uid, lena_uid) = (uid(&alice), uid(&lena));
    let host = Host::new(&nss_socket);

    // getent passwd by name and by uid
    let line = host.ok(&["getent", "passwd", "alice"]);
    let fields: Vec<&str> = line.trim_end().split(':').collect();
    assert_eq!(fields[0], "alice");
    assert_eq!(fields[2], alice_uid.to_string());
    assert_eq!(fields[3], alice_uid.to_string(), "the private group");
    assert_eq!(fields[5], "/home/alice");
    assert_eq!(fields[6], "/bin/bash");
    assert_eq!(host.ok(&["getent", "passwd", &alice_uid.to_string()]), line);
    // any local process, not only root
    assert_eq!(
        host.ok(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "getent",
            "passwd",
            "alice"
        ]),
        line
    );
    // unknown user and uid: exit 2 (not found)
    assert_eq!(host.run(&["getent", "passwd", "nosuchuser"]).0, 2);
    assert_eq!(host.run(&["getent", "passwd", "79999"]).0, 2);
    assert_eq!(host.run(&["getent", "passwd", "ALICE"]).0, 2, "names are exact");
    // the machine's own users still come from files
    assert!(host.ok(&["getent", "passwd", "root"]).starts_with("root:x:0:0:"));

    // enumeration: files first, then gatehouse
    let all = host.ok(&["getent", "passwd"]);
    assert!(all.starts_with("root:"), "{all}");
    assert!(all.contains(&format!("lena:x:{lena_uid}:{lena_uid}:")), "{all}");
    assert!(all.contains(&line), "{all}");

    // groups: the private group, organizations, teams
    let corp_admins = host.ok(&["getent", "group", "corp.admins"]);
    let f: Vec<&str> = corp_admins.trim_end().split(':').collect();
    assert_eq!(f[0], "corp.admins");
    let admins_gid: u32 = f[2].parse().unwrap();
    assert!(
        (80000..90000).contains(&admins_gid) && admins_gid % 2 == 1,
        "a team's gid is odd: {admins_gid}"
    );
    assert_eq!(f[3], "alice");
    assert_eq!(
        host.ok(&["getent", "group", &admins_gid.to_string()]),
        corp_admins
    );
    let corp = host.ok(&["getent", "group", "corp"]);
    let corp_gid: u32 = corp.split(':').nth(2).unwrap().parse().unwrap();
    assert_eq!(corp_gid % 2, 0, "an organization's gid is even");
    assert_eq!(corp.trim_end().split(':').nth(3), Some("alice"));
    assert_eq!(
        host.ok(&["getent", "group", "alice"]).trim_end(),
        format!("alice:x:{alice_uid}:")
    );
    let groups = host.ok(&["getent", "group"]);
    for g in [&corp_admins, &corp] {
        assert!(groups.contains(g.as_str()), "{groups}");
    }
    assert!(groups.contains("\neng:x:"), "{groups}");
    assert!(groups.contains(&format!("lena:x:{lena_uid}:")), "{groups}");
    assert_eq!(host.run(&["getent", "group", "nosuchgroup"]).0, 2);

    // id: uid, primary group, supplementary groups (initgroups)
    let id = host.ok(&["id", "alice"]);
    assert!(
        id.starts_with(&format!("uid={alice_uid}(alice) gid={alice_uid}(alice) groups=")),
        "{id}"
    );
    for g in [
        format!("{alice_uid}(alice)"),
        format!("{corp_gid}(corp)"),
        format!("{admins_gid}(corp.admins)"),
    ] {
        assert!(id.contains(&g), "{id} lacks {g}");
    }
    assert!(!id.contains("(eng)"), "{id}");
    let id = host.ok(&["id", "lena"]);
    assert!(id.contains("(eng)") && !id.contains("corp"), "{id}");
    assert_eq!(host.run(&["id", "nosuchuser"]).0, 1);

    // a user deleted in gatehouse is gone for the host too
    let a = d.client().await.delete("/v1/users/lena").await.unwrap();
    assert_eq!(a.status, 204);
    assert_eq!(host.run(&["getent", "passwd", "lena"]).0, 2);
    assert_eq!(host.run(&["getent", "passwd", &lena_uid.to_string()]).0, 2);
}

/// The lookup socket serves the lookups only: no admin route, no secret;
/// and the main socket does not serve them.
#[tokio::test]
async fn the_lookup_socket_is_read_only_and_holds_no_secret() {
    let d = Daemon::start(Setup::with_body(&format!("{HOST}\n{LOCAL_AUTH}")));
    assert_eq!(
        add_user(&mut d.client().await, "lena", "lena's password")
            .await
            .status,
        201
    );
    let nss = nss_socket(&d);
    let (status, body) = raw(&nss, &get("/v1/nss/passwd?name=lena"));
    assert_eq!(status, 200, "{body}");
    let entry: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(entry["name"], "lena");
    let (_, all) = raw(&nss, &get("/v1/nss/passwd"));
    for text in [&body, &all] {
        assert!(!text.contains("argon2") && !text.contains("password"), "{text}");
    }
    for (request, want) in [
        (get("/v1/users"), 404),
        (get("/v1/health"), 404),
        (get("/v1/store/backup"), 404),
        ("POST /v1/reload HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(), 404),
        (
            "POST /v1/users HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: 37\r\nConnection: close\r\n\r\n{\"username\":\"x\",\"password\":\"xxxxxxxx\"}".to_owned(),
            404,
        ),
        ("DELETE /v1/nss/passwd HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n".to_owned(), 405),
        (get("/v1/nss/passwd?uid=-1"), 400),
        (get("/v1/nss/initgroups"), 400),
    ] {
        let (status, body) = raw(&nss, &request);
        assert_eq!(status, want, "{request}: {body}");
    }
    // nothing was created or deleted through it
    let users = d.client().await.get("/v1/users").await.unwrap();
    let users: Value = serde_json::from_slice(&users.body).unwrap();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["lena"]);
    // the main socket has no /v1/nss routes
    let a = d.client().await.get("/v1/nss/passwd?name=lena").await.unwrap();
    assert_eq!(a.status, 404);
}

/// Serves a forged answer (alice as uid 0) on a socket bound by uid
/// 65534 in `dir`; the listener keeps its credentials.
fn impostor(dir: &Path) -> PathBuf {
    let path = dir.join("impostor.sock");
    let p = path.clone();
    let listener: UnixListener = std::thread::scope(|s| {
        s.spawn(|| {
            let u = rustix::process::Uid::from_raw(65534);
            rustix::thread::set_thread_res_uid(u, u, rustix::process::Uid::ROOT)
                .expect("setresuid (needs root)");
            UnixListener::bind(&p).unwrap()
        })
        .join()
        .unwrap()
    });
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = r#"{"name":"alice","uid":0,"gid":0,"gecos":"","dir":"/root","shell":"/bin/sh"}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    path
}

#[test]
fn down_hung_or_untrusted_daemons_answer_nothing() {
    if skip_unless_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();

    // no daemon: not found, at once
    let host = Host::new(&dir.path().join("missing.sock"));
    let (code, out, took) = host.run(&["getent", "passwd", "alice"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(host.ok(&["getent", "passwd", "root"]).starts_with("root:"));

    // a hung daemon: the module gives up within its 2 s timeout
    let hung = dir.path().join("hung.sock");
    let _hung = UnixListener::bind(&hung).unwrap();
    let host = Host::new(&hung);
    let (code, _, took) = host.run(&["getent", "passwd", "alice"]);
    assert_eq!(code, 2);
    assert!(took < Duration::from_secs(5), "{took:?}");

    // an impostor owning the socket file is not asked
    let fake = impostor(dir.path());
    assert_eq!(std::fs::metadata(&fake).unwrap().uid(), 65534);
    let host = Host::new(&fake);
    let (code, out, _) = host.run(&["getent", "passwd", "alice"]);
    assert_eq!((code, out.as_str()), (2, ""), "forged entry accepted");
    // nor is one listening behind a root-owned file
    std::os::unix::fs::chown(&fake, Some(0), Some(0)).unwrap();
    let (code, out, _) = host.run(&["getent", "passwd", "alice"]);
    assert_eq!((code, out.as_str()), (2, ""), "forged entry accepted");
    // the impostor did answer: the refusal is the module's
    let (status, body) = raw(&fake, &get("/v1/nss/passwd?name=alice"));
    assert_eq!(status, 200, "{body}");
}

/// `scripts/install-host.sh` puts both modules where each layout's PAM and
/// glibc look for them (staged under a directory here).
#[test]
fn install_host_puts_both_modules_in_place() {
    let from = gatehouse_e2e::bin_dir();
    let built_nss = std::fs::read(gatehouse_e2e::plugin_library("nss_gatehouse")).unwrap();
    let built_pam = std::fs::read(gatehouse_e2e::plugin_library("pam_gatehouse")).unwrap();
    let arch = std::env::consts::ARCH;
    for (layout, pam, nss) in [
        (
            "debian",
            format!("lib/{arch}-linux-gnu/security/pam_gatehouse.so"),
            format!("lib/{arch}-linux-gnu/libnss_gatehouse.so.2"),
        ),
        (
            "rhel",
            "usr/lib64/security/pam_gatehouse.so".to_owned(),
            "usr/lib64/libnss_gatehouse.so.2".to_owned(),
        ),
    ] {
        let dest = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(gatehouse_e2e::repo_root().join("scripts/install-host.sh"))
            .arg("--from")
            .arg(&from)
            .arg("--destdir")
            .arg(dest.path())
            .args(["--layout", layout])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("passwd: files gatehouse"), "{text}");
        for (path, built) in [(&pam, &built_pam), (&nss, &built_nss)] {
            let p = dest.path().join(path);
            assert_eq!(&std::fs::read(&p).unwrap(), built, "{layout}: {path}");
            assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o644);
        }
    }
    // a wrong layout is refused, not guessed
    let out = Command::new("bash")
        .arg(gatehouse_e2e::repo_root().join("scripts/install-host.sh"))
        .args(["--from", "/nonexistent", "--layout", "arch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Two hosts on one PostgreSQL store answer every user and group with the
/// same ids, whichever host created them.
#[tokio::test]
async fn hosts_sharing_a_store_agree_on_ids() {
    let pg = gatehouse_e2e::pg::pg_peer();
    let db = pg.database("nss");
    let secrets = tempfile::tempdir().unwrap();
    let body = format!(
        "{}\n{HOST}\n{LOCAL_AUTH}\n[[authenticators.maps]]\nmap_type = \"team\"\norganization = \"eng\"\nteam = \"ops\"\ntriggers.always = {{}}\n",
        pg.store_table(&db, secrets.path())
    );
    let a = Daemon::start(Setup::with_body(&body));
    let b = Daemon::start(Setup::with_body(&body));
    assert_eq!(
        add_user(&mut a.client().await, "ann", "ann's password")
            .await
            .status,
        201
    );
    assert_eq!(
        add_user(&mut b.client().await, "ben", "ben's password")
            .await
            .status,
        201
    );
    login_with(&b, "Local Database", "ann", "ann's password").await;
    login_with(&a, "Local Database", "ben", "ben's password").await;
    let (na, nb) = (nss_socket(&a), nss_socket(&b));
    for path in [
        "/v1/nss/passwd?name=ann",
        "/v1/nss/passwd?name=ben",
        "/v1/nss/group?name=eng.ops",
        "/v1/nss/initgroups?name=ann",
        "/v1/nss/passwd",
        "/v1/nss/group",
    ] {
        let (sa, from_a) = raw(&na, &get(path));
        let (sb, from_b) = raw(&nb, &get(path));
        assert_eq!((sa, sb), (200, 200), "{path}: {from_a} {from_b}");
        assert_eq!(from_a, from_b, "{path}");
    }
    let (_, team) = raw(&na, &get("/v1/nss/group?name=eng.ops"));
    let team: Value = serde_json::from_str(&team).unwrap();
    assert_eq!(team["members"], json!(["ann", "ben"]));
}
