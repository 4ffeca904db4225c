//! LDAP logins per second over the socket against the test slapd (search,
//! user bind, nested group lookup), with 1 and 16 concurrent clients, and
//! in the same run the rates of the platform's own engine (Django's
//! `authenticate()` with django-auth-ldap, `benches/ldap_django.py`) and of
//! bare python-ldap doing the same LDAP steps without the ORM
//! (`benches/ldap_reference.py`), both on Debian's python3. Run with
//! `scripts/bench.sh`.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_e2e::{Client, Daemon, Setup, ldap_peer};

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let p = ldap_peer();
    let body = format!(
        r#"
[lockout]
max_failures = 1000000
max_failures_per_peer = 1000000
[[authenticators]]
name = "Corp LDAP"
type = "ldap"
[authenticators.settings]
server_uri = "{}"
bind_dn = "cn=reader,ou=services,dc=example,dc=test"
bind_password = "readerpass"
user_search = ["ou=users,dc=example,dc=test", "SCOPE_SUBTREE", "(uid=%(user)s)"]
group_type = "NestedGroupOfNamesType"
group_search = ["ou=groups,dc=example,dc=test", "SCOPE_SUBTREE", "(objectClass=groupOfNames)"]
"#,
        p.uri
    );
    let daemon = Daemon::start(Setup::with_body(&body));
    // The daemon's own cost per login (socket, JSON, user and membership
    // bookkeeping in SQLite) with a backend that answers at once.
    let pipeline = {
        let setup = Setup {
            daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
            body: "[lockout]\nmax_failures = 1000000\nmax_failures_per_peer = 1000000\n\
                   [[authenticators]]\nname = \"accept\"\ntype = \"testkit_accept\"\n"
                .into(),
            ..Setup::default()
        };
        let d = Daemon::prepare(&setup);
        gatehouse_e2e::install_plugin(
            &d.dir().join("plugins"),
            &gatehouse_e2e::plugin_library("gatehouse_plugin_testkit"),
        );
        let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
        cmd.arg("--config").arg(&d.config);
        d.spawn_with(cmd)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "LDAP login (search + user bind + nested groups), {seconds}s per row, slapd on the same 2 cores"
    );
    println!(
        "{:<34} {:>5} {:>10} {:>10} {:>10}",
        "engine", "conc", "logins/s", "p50", "p99"
    );
    let mut ours = Vec::new();
    for (label, d) in [
        ("daemon only (instant backend)", &pipeline),
        ("gatehoused (socket)", &daemon),
    ] {
        for conc in [1usize, 16] {
            let (n, mut lat) = rt.block_on(async {
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let mut tasks = Vec::new();
                for _ in 0..conc {
                    let socket = d.socket.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut c = Client::connect(&socket).await.unwrap();
                        let mut lat = Vec::new();
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            let a = gatehouse_e2e::login(&mut c, "alice", "alicepass").await;
                            assert_eq!(a.status, 200, "{:?}", a.value());
                            lat.push(t.elapsed());
                        }
                        lat
                    }));
                }
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                (all.len(), all)
            });
            lat.sort();
            let rate = n as f64 / seconds as f64;
            if label.starts_with("gatehoused") {
                ours.push(rate);
            }
            println!(
                "{:<34} {:>5} {:>10.0} {:>10.2?} {:>10.2?}",
                label,
                conc,
                rate,
                gatehouse_e2e::percentile(&lat, 0.5),
                gatehouse_e2e::percentile(&lat, 0.99)
            );
        }
    }
    let references = [
        (
            "django-auth-ldap (the platform's)",
            "tests/benches/ldap_django.py",
        ),
        (
            "python-ldap, same steps, no ORM",
            "tests/benches/ldap_reference.py",
        ),
    ];
    for (name, script) in references {
        let script = gatehouse_e2e::repo_root().join(script);
        for (i, conc) in [1usize, 16].into_iter().enumerate() {
            let out = Command::new("/usr/bin/python3")
                .arg(&script)
                .arg(&p.uri)
                .arg(&p.ca)
                .arg(seconds.to_string())
                .arg(conc.to_string())
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    let text = String::from_utf8_lossy(&o.stdout);
                    let f: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                    println!(
                        "{:<34} {:>5} {:>10.0} {:>8.2}ms {:>8.2}ms   gatehoused is {:.1}x",
                        name,
                        conc,
                        f[0],
                        f[1],
                        f[2],
                        ours[i] / f[0]
                    );
                }
                Ok(o) => println!("{name}: failed: {}", String::from_utf8_lossy(&o.stderr)),
                Err(e) => println!("{name}: not run: {e} (scripts/bench.sh installs it)"),
            }
        }
    }
}
