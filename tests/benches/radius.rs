//! RADIUS logins per second over the socket against the test FreeRADIUS
//! (PAP, Message-Authenticator both ways, Class → groups), with 1 and 32
//! concurrent clients; in the same run the platform's engine (pyrad called
//! the way django-radius calls it, `benches/radius_pyrad.py`, in the venv
//! `scripts/bench_venv.sh` makes) and FreeRADIUS's own limit as its
//! `radclient` drives it. Run with `scripts/bench.sh`; `BENCH_SECONDS`
//! sets the seconds per row (default 5); `BENCH_ONLY` the rows to run, by
//! comma-separated parts of their names (`daemon`, `gatehoused`, `plugin`,
//! `pyrad`, `radclient`; default all), for measuring one change quickly;
//! `BENCH_DAEMON_EXTRA` lines added to both daemons' `[daemon]` section
//! (e.g. `worker_threads = 1`).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_e2e::{Daemon, RawConnection, Setup, radius_start, repo_root};
use gatehouse_sdk::AuthenticatorFactory;

/// This bench's FreeRADIUS instance (the RADIUS suite's port range is 19200–19249).
const PORT: u16 = 19210;

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let run = gatehouse_e2e::bench_only;
    let p = radius_start("bench", PORT);
    let (host, port) = p.addr.rsplit_once(':').unwrap();
    let body = format!(
        r#"
[lockout]
max_failures = 1000000
max_failures_per_peer = 1000000
[[authenticators]]
name = "Corp RADIUS"
type = "radius"
[authenticators.settings]
server = "{}"
secret = "{}"
"#,
        p.addr, p.secret
    );
    let daemon_extra = gatehouse_e2e::daemon_extra();
    let daemon = Daemon::start(Setup {
        daemon_extra: daemon_extra.clone(),
        ..Setup::with_body(&body)
    });
    // The daemon's own cost per login (socket, JSON, user and membership
    // bookkeeping in SQLite) with a backend that answers at once: the
    // ceiling any backend's rate through the socket is under.
    let pipeline = {
        let setup = Setup {
            daemon_extra: format!("plugin_dirs = [\"plugins\"]\n{daemon_extra}"),
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
    // The socket rows' load generator: one thread writing prepared requests,
    // like the other socket benches and like radclient (one process), so
    // the 2 cores go to the daemon and FreeRADIUS rather than to a client.
    let load = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = RawConnection::post_json("/v1/login", br#"{"username":"alice","password":"alicepass"}"#);
    // The plugin alone runs on the runtime the daemon gives it by default.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "RADIUS login (PAP, Message-Authenticator, Class → groups), {seconds}s per row; FreeRADIUS, \
         the daemon and the load generator share the 2 cores"
    );
    println!(
        "{:<40} {:>5} {:>10} {:>10} {:>10} {:>12}",
        "engine", "conc", "logins/s", "p50", "p99", "daemon CPU"
    );
    let mut ours = Vec::new();
    for (label, d, conc) in [
        ("daemon only (instant backend)", &pipeline, 1usize),
        ("daemon only (instant backend)", &pipeline, 32),
        ("gatehoused (socket)", &daemon, 1),
        ("gatehoused (socket)", &daemon, 32),
    ] {
        if !run(label) {
            if label.starts_with("gatehoused") {
                ours.push(f64::NAN);
            }
            continue;
        }
        let cpu_before = gatehouse_e2e::cpu_ns(d.pid());
        let (n, mut lat) = load.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let socket = d.socket.clone();
                let request = request.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = RawConnection::connect(&socket).await.unwrap();
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let status = c.roundtrip(&request).await.unwrap();
                        assert_eq!(status, 200, "login refused");
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
        // the daemon's own CPU per login (its threads, from schedstat):
        // steadier than the rate on a shared machine
        let cpu_us =
            (gatehouse_e2e::cpu_ns(d.pid()).saturating_sub(cpu_before)) as f64 / 1000.0 / n.max(1) as f64;
        lat.sort();
        let rate = n as f64 / seconds as f64;
        if label.starts_with("gatehoused") {
            ours.push(rate);
        }
        println!(
            "{:<40} {:>5} {:>10.0} {:>10.2?} {:>10.2?} {:>8.1} µs",
            label,
            conc,
            rate,
            gatehouse_e2e::percentile(&lat, 0.5),
            gatehouse_e2e::percentile(&lat, 0.99),
            cpu_us
        );
    }

    // The plugin alone, in this process (no socket, no daemon): its own
    // client against the same server, for comparison with radclient.
    let plugin = gatehouse_plugin_radius::RadiusFactory
        .build(gatehouse_sdk::PluginConfig::new(
            "bench",
            serde_json::json!({"server": p.addr, "secret": p.secret}),
        ))
        .unwrap();
    let plugin: std::sync::Arc<dyn gatehouse_sdk::Authenticator> = plugin;
    for conc in [1usize, 32] {
        if !run("plugin alone (in process, no socket)") {
            break;
        }
        let (n, mut lat) = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let plugin = plugin.clone();
                tasks.push(tokio::spawn(async move {
                    let ctx = gatehouse_sdk::Context::new("bench");
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let r = plugin
                            .login(&ctx, gatehouse_sdk::PasswordLogin::new("alice", "alicepass"))
                            .await;
                        assert!(
                            matches!(r, Ok(gatehouse_sdk::LoginStep::Authenticated(_))),
                            "{r:?}"
                        );
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
        println!(
            "{:<40} {:>5} {:>10.0} {:>10.2?} {:>10.2?}",
            "plugin alone (in process, no socket)",
            conc,
            n as f64 / seconds as f64,
            gatehouse_e2e::percentile(&lat, 0.5),
            gatehouse_e2e::percentile(&lat, 0.99)
        );
    }

    let python = repo_root().join("target/bench-venv/bin/python");
    let script = repo_root().join("tests/benches/radius_pyrad.py");
    for (i, conc) in [1usize, 32].into_iter().enumerate() {
        if !run("pyrad as django-radius calls it") {
            break;
        }
        let out = Command::new(&python)
            .arg(&script)
            .args([host, port, &p.secret, &seconds.to_string(), &conc.to_string()])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                let f: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                println!(
                    "{:<40} {:>5} {:>10.0} {:>8.2}ms {:>8.2}ms   gatehoused is {:.1}x",
                    "pyrad as django-radius calls it",
                    conc,
                    f[0],
                    f[1],
                    f[2],
                    ours[i] / f[0]
                );
            }
            Ok(o) => println!("pyrad: failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => println!("pyrad: not run: {e} (scripts/bench_venv.sh makes the venv)"),
        }
    }

    // radclient: the same request (with a Message-Authenticator), `conc`
    // copies in the file, each sent repeatedly, `conc` in flight. radclient
    // has no duration option: a short run measures its pace, then a run
    // sized to last about `seconds` gives the rate (its start-up, reading
    // the dictionaries, then weighs as little as in the daemon's rows).
    for (i, conc) in [1usize, 32].into_iter().enumerate() {
        if !run("radclient (FreeRADIUS's own client)") {
            break;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("requests");
        let one = "User-Name = \"alice\"\nUser-Password = \"alicepass\"\nNAS-Identifier = \"bench\"\n\
                   Message-Authenticator = 0x00\n\n";
        std::fs::write(&file, one.repeat(conc)).unwrap();
        let radclient = |total: usize| -> Result<f64, String> {
            let per_copy = (total / conc).max(1);
            let t = Instant::now();
            let o = Command::new("radclient")
                .args([
                    "-q",
                    "-s",
                    "-c",
                    &per_copy.to_string(),
                    "-p",
                    &conc.to_string(),
                    "-f",
                ])
                .arg(&file)
                .args([&p.addr, "auth", &p.secret])
                .output()
                .map_err(|e| format!("not run: {e} (tests/peers/install.sh installs freeradius-utils)"))?;
            let elapsed = t.elapsed();
            let text = String::from_utf8_lossy(&o.stdout);
            let accepted: usize = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Accepted"))
                .and_then(|l| l.trim_start_matches([' ', ':', '\t']).trim().parse().ok())
                .unwrap_or(0);
            if accepted < per_copy * conc {
                return Err(format!(
                    "{accepted} of {} accepted: {}",
                    per_copy * conc,
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            Ok(accepted as f64 / elapsed.as_secs_f64())
        };
        let rate = radclient(2000).and_then(|pace| radclient((pace * seconds as f64) as usize));
        match rate {
            Ok(rate) => println!(
                "{:<40} {:>5} {:>10.0} {:>10} {:>10}   gatehoused is {:.0}% of it",
                "radclient (FreeRADIUS's own client)",
                conc,
                rate,
                "",
                "",
                100.0 * ours[i] / rate
            ),
            Err(e) => println!("radclient: {e}"),
        }
    }
}
