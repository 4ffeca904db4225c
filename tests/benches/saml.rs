//! SAML responses validated per second through `POST /v1/login/finish`
//! (IdP-initiated, RelayState "IdP"), 1 and 8 connections, in process and
//! with `isolation = "process"`; in the same run the platform's engine,
//! python3-saml's `OneLogin_Saml2_Response.is_valid` (Debian's
//! python3-onelogin-saml2, `benches/saml_python.py`), on the same
//! responses, in 1 and 8 worker processes.
//!
//! The responses are one real response of the test IdP (SimpleSAMLphp,
//! tests/peers/saml) for alice, copied with fresh Response and Assertion
//! IDs and times and signed again with the IdP's key (RSA-SHA256, both the
//! Response and the Assertion, as the IdP signs): every one is new to the
//! replay cache. Run with `scripts/bench.sh`; `BENCH_RESPONSES` sets the
//! responses per row (default 1500).
//!
//! Each row also reports the CPU time (user + system) spent per response:
//! by the daemon and its plugin host, and by python3-saml's workers. Other
//! work on the machine moves the rates a lot and the CPU times little, so
//! "per CPU second" compares the engines' own cost.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use gatehouse_e2e::{Client, Daemon, Setup, repo_root, run_with_stdin, saml_idp};
use serde_json::json;

fn entry(name: &str, isolation: &str, entity: &str, acs: &str, idp: &gatehouse_e2e::SamlIdp) -> String {
    format!(
        r#"
[[authenticators]]
name = "{name}"
type = "saml"
isolation = "{isolation}"
[authenticators.settings]
sp_entity_id = "{entity}"
idp_url = "{sso}"
idp_x509_cert_file = "{cert}"
idp_entity_id = "{idp_entity}"
idp_attr_user_permanent_id = "uid"
idp_attr_email = "mail"
idp_groups = "groups"
callback_url = "{acs}"
security_config = {{ wantMessagesSigned = true, wantAssertionsSigned = true }}
"#,
        sso = idp.sso_url,
        cert = idp.cert.display(),
        idp_entity = idp.entity_id,
    )
}

/// CPU seconds (user + system) used so far by `pid` and its children
/// alive now (the plugin host), from /proc: the figure the other agents'
/// builds on the machine disturb least.
fn cpu_secs(pid: u32) -> f64 {
    // fields after "(comm) ": state ppid … utime (12th) stime (13th), in
    // USER_HZ ticks (100 on Linux)
    let ticks = |stat: &str| -> Option<(u32, u64)> {
        let rest: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
        let ppid = rest.get(1)?.parse().ok()?;
        let t = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
        Some((ppid, t))
    };
    let mut total = 0;
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Some(this) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if let Some((ppid, t)) = ticks(&stat)
            && (this == pid || ppid == pid)
        {
            total += t;
        }
    }
    total as f64 / 100.0
}

fn main() {
    let per_row: usize = std::env::var("BENCH_RESPONSES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let idp = saml_idp();
    let entity = "https://bench.app.test/saml/sp";
    let acs = "https://bench.app.test/saml/acs";
    let body = format!(
        "[lockout]\nmax_failures = 1000000\nmax_failures_per_peer = 1000000\n{}{}",
        entry("saml", "in_process", entity, acs, &idp),
        entry("saml-isolated", "process", entity, acs, &idp),
    );
    let daemon = Daemon::start(Setup::with_body(&body));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // one real response: register the SP from gatehouse's metadata, log alice in at the IdP
    let metadata = rt.block_on(async {
        let mut c = daemon.client().await;
        let a = c.get("/v1/authenticators/saml/metadata").await.unwrap();
        assert_eq!(a.status, 200);
        String::from_utf8(a.body.to_vec()).unwrap()
    });
    idp.register_sp("bench", &metadata);
    let post = idp
        .login(&idp.unsolicited_url(entity, "IdP"), "alice", "alicepass")
        .expect("IdP login");
    let template = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&post.response)
            .unwrap(),
    )
    .unwrap();
    let rows: [(&str, &str, usize); 4] = [
        ("gatehoused (socket, in process)", "saml", 1),
        ("gatehoused (socket, in process)", "saml", 8),
        ("gatehoused (socket, isolation = process)", "saml-isolated", 1),
        ("gatehoused (socket, isolation = process)", "saml-isolated", 8),
    ];
    let script = repo_root().join("tests/benches/saml_python.py");
    let t = Instant::now();
    let out = run_with_stdin(
        Command::new("/usr/bin/python3")
            .arg(&script)
            .arg("prepare")
            .arg(&idp.key)
            .arg(&idp.cert)
            .arg((per_row * rows.len()).to_string()),
        &template,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let responses: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(responses.len(), per_row * rows.len());
    println!(
        "SAML responses (real IdP response for alice, fresh IDs, RSA-SHA256 on Response and Assertion, {} bytes), \
         {per_row} per row, prepared in {:.1?}; the daemon, its plugin host, python and the load generator \
         share the 2 cores",
        template.len(),
        t.elapsed()
    );
    println!(
        "{:<44} {:>5} {:>10} {:>10} {:>10} {:>12}",
        "engine", "conc", "resp/s", "p50", "p99", "CPU ms/resp"
    );
    let mut ours = Vec::new();
    let mut ours_cpu = Vec::new();
    for (i, (label, authenticator, conc)) in rows.iter().enumerate() {
        let batch = responses[i * per_row..(i + 1) * per_row].to_vec();
        let cpu_before = cpu_secs(daemon.pid());
        let (rate, mut lat) = rt.block_on(async {
            let mut clients = Vec::new();
            for _ in 0..*conc {
                clients.push(Client::connect(&daemon.socket).await.unwrap());
            }
            let start = Instant::now();
            let mut tasks = Vec::new();
            for (k, mut c) in clients.into_iter().enumerate() {
                let mine: Vec<String> = batch.iter().skip(k).step_by(*conc).cloned().collect();
                let authenticator = authenticator.to_string();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(mine.len());
                    for r in mine {
                        let mut params = BTreeMap::new();
                        params.insert("SAMLResponse", r);
                        params.insert("RelayState", "IdP".to_owned());
                        let t = Instant::now();
                        let a = c
                            .post(
                                "/v1/login/finish",
                                &json!({"authenticator": authenticator, "params": params}),
                            )
                            .await
                            .unwrap();
                        assert_eq!(a.status, 200, "{:?}", a.value());
                        lat.push(t.elapsed());
                    }
                    lat
                }));
            }
            let mut all: Vec<Duration> = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            (all.len() as f64 / start.elapsed().as_secs_f64(), all)
        });
        let cpu_ms = (cpu_secs(daemon.pid()) - cpu_before) * 1000.0 / per_row as f64;
        lat.sort();
        ours.push(rate);
        ours_cpu.push(cpu_ms);
        println!(
            "{:<44} {:>5} {:>10.0} {:>10.2?} {:>10.2?} {:>12.2}",
            label,
            conc,
            rate,
            gatehouse_e2e::percentile(&lat, 0.5),
            gatehouse_e2e::percentile(&lat, 0.99),
            cpu_ms
        );
    }
    // the platform's engine on the responses of the first two rows
    for (i, procs) in [1usize, 8].into_iter().enumerate() {
        let batch = responses[i * per_row..(i + 1) * per_row].join("\n");
        let out = run_with_stdin(
            Command::new("/usr/bin/python3")
                .arg(&script)
                .arg("verify")
                .args([entity, acs, &idp.entity_id])
                .arg(&idp.cert)
                .arg(procs.to_string()),
            &batch,
        );
        if !out.status.success() {
            println!("python3-saml: failed: {}", String::from_utf8_lossy(&out.stderr));
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        assert_eq!(f[1], f[2], "python3-saml accepts every response: {text}");
        println!(
            "{:<44} {:>5} {:>10.0} {:>10} {:>10} {:>12.2}   gatehoused (in process) is {:.1}x, isolated {:.1}x; \
             per CPU second {:.1}x, {:.1}x",
            "python3-saml is_valid (worker processes)",
            procs,
            f[0],
            "",
            "",
            f[3],
            ours[i] / f[0],
            ours[i + 2] / f[0],
            f[3] / ours_cpu[i],
            f[3] / ours_cpu[i + 2],
        );
    }
}
