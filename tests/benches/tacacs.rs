//! TACACS+ logins per second over the socket against the project's test
//! server (`tests/peers/tacacs/server.py`), `ascii` (START, GETPASS,
//! CONTINUE, PASS: two round trips) and `pap` (one), with the plugin
//! library in process and in a child process, 1 and 8 concurrent clients;
//! and, as the reference, the PyPI `tacacs_plus` client authenticating in a
//! loop against the same server (so the server's own cost shows). Run with
//! `scripts/bench.sh` (`BENCH_SECONDS`, default 5).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_e2e::{Client, Setup, TacacsServer, daemon_with_plugins, repo_root, tacacs_reference_client};

const PORT: u16 = 19260;

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let _srv = TacacsServer::start(PORT, "benchkey", &["--quiet"]);
    let mut body = String::from("[lockout]\nmax_failures = 1000000\nmax_failures_per_peer = 1000000\n");
    for isolation in ["in_process", "process"] {
        for protocol in ["ascii", "pap"] {
            body.push_str(&format!(
                "[[authenticators]]\nname = \"{protocol} {isolation}\"\ntype = \"tacacs\"\n\
                 isolation = \"{isolation}\"\n[authenticators.settings]\nhost = \"127.0.0.1\"\n\
                 port = {PORT}\nsecret = \"benchkey\"\nauth_protocol = \"{protocol}\"\n"
            ));
        }
    }
    let d = daemon_with_plugins(Setup::with_body(&body), &["gatehouse_plugin_tacacs"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("TACACS+ login through the socket, {seconds}s per row, test server (Python) on the same cores");
    println!(
        "{:<40} {:>5} {:>10} {:>10} {:>10}",
        "engine", "conc", "logins/s", "p50", "p99"
    );
    for isolation in ["in_process", "process"] {
        for protocol in ["ascii", "pap"] {
            let name = format!("{protocol} {isolation}");
            for conc in [1usize, 8] {
                let (n, mut lat) = rt.block_on(async {
                    let deadline = Instant::now() + Duration::from_secs(seconds);
                    let mut tasks = Vec::new();
                    for _ in 0..conc {
                        let socket = d.socket.clone();
                        let name = name.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut c = Client::connect(&socket).await.unwrap();
                            let req = serde_json::json!({
                                "username": "alice", "password": "alicepass", "authenticator": name
                            });
                            let mut lat = Vec::new();
                            while Instant::now() < deadline {
                                let t = Instant::now();
                                let a = c.post("/v1/login", &req).await.unwrap();
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
                println!(
                    "{:<40} {:>5} {:>10.0} {:>10.2?} {:>10.2?}",
                    format!("gatehoused, {name}"),
                    conc,
                    n as f64 / seconds as f64,
                    gatehouse_e2e::percentile(&lat, 0.5),
                    gatehouse_e2e::percentile(&lat, 0.99)
                );
            }
        }
    }
    // The reference client in a loop (one process, no socket, no store).
    let python = tacacs_reference_client().parent().unwrap().join("python");
    for protocol in ["ascii", "pap"] {
        let script = format!(
            "import time\nfrom tacacs_plus.client import TACACSClient\n\
             from tacacs_plus.flags import TAC_PLUS_AUTHEN_TYPES\n\
             c = TACACSClient('127.0.0.1', {PORT}, 'benchkey', timeout=5)\n\
             t = TAC_PLUS_AUTHEN_TYPES['{protocol}']\nend = time.time() + {seconds}\nn = 0\nlat = []\n\
             while time.time() < end:\n    s = time.perf_counter()\n\
             \x20   assert c.authenticate('alice', 'alicepass', authen_type=t).valid\n\
             \x20   lat.append(time.perf_counter() - s)\n    n += 1\n\
             lat.sort()\nprint(n / {seconds}, lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3)\n"
        );
        let out = Command::new(&python)
            .arg("-c")
            .arg(&script)
            .current_dir(repo_root())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() == 3 {
            println!(
                "{:<40} {:>5} {:>10.0} {:>8.2}ms {:>8.2}ms",
                format!("tacacs_plus (PyPI client), {protocol}"),
                1,
                f[0],
                f[1],
                f[2]
            );
        } else {
            println!(
                "tacacs_plus {protocol}: failed: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
