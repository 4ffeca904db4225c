//! Token issuance over the socket (`POST /v1/tokens/issue`): ES256 and
//! RS256, a fresh token per request (distinct `extra_claims`, so the reuse
//! cache never answers) and with reuse (one subject), at 1 and 8
//! connections; in the same run PyJWT's `jwt.encode` with the same key and
//! `openssl speed` signing as references. Run with `scripts/bench.sh`.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use gatehouse_e2e::{Daemon, RawConnection, Setup};

const CATALOG: &str = "services:
  duo_chat:
    backend: gitlab-ai-gateway
    cut_off_date: 2024-7-15 00:00:00 UTC
    bundled_with:
      duo_pro:
        unit_primitives: [duo_chat, documentation_search]
";

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!("POST /v1/tokens/issue, {seconds}s per row, 2 shared cores");
    println!(
        "{:<8} {:<7} {:>5} {:>10} {:>10} {:>10}",
        "alg", "case", "conc", "issued/s", "p50", "p99"
    );
    let mut summary = Vec::new();
    for alg in ["ES256", "RS256"] {
        let setup = Setup::with_body(&format!(
            "[issuer]\nurl = \"https://gatehouse.bench\"\nalgorithm = \"{alg}\"\ncatalog = \"catalog.yml\"\nreuse = 0.5\n"
        ));
        let d = Daemon::prepare(&setup);
        std::fs::write(d.dir().join("catalog.yml"), CATALOG).unwrap();
        let d = d.spawn(&setup);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = d.client().await;
            let ok = c
                .put("/v1/entitlements/namespaces/bench", &serde_json::json!({}))
                .await
                .unwrap();
            assert_eq!(ok.status, 200);
            let ok = c
                .put(
                    "/v1/entitlements/purchases",
                    &serde_json::json!({"namespace": "bench", "add_on": "duo_pro", "seats": 10}),
                )
                .await
                .unwrap();
            assert_eq!(ok.status, 200);
        });
        let mut best_fresh: f64 = 0.0;
        let mut fresh_cpu = f64::MAX;
        for (case, fresh) in [("fresh", true), ("reuse", false)] {
            for conc in [1usize, 8] {
                let (rate, p50, p99, cpu) = run(&rt, &d, conc, fresh, seconds);
                println!(
                    "{alg:<8} {case:<7} {conc:>5} {rate:>10.0} {:>10.2?} {:>10.2?} {cpu:>11.1} µs",
                    p50, p99
                );
                if fresh {
                    best_fresh = best_fresh.max(rate);
                    fresh_cpu = fresh_cpu.min(cpu);
                }
            }
        }
        // the references, with the daemon's own key
        let keyring: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.dir().join("state/issuer-keys.json")).unwrap()).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(keyring["keys"][0]["pkcs8"].as_str().unwrap())
            .unwrap();
        let pem_body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = pem_body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let key_file = d.dir().join("bench-key.pem");
        std::fs::write(&key_file, pem).unwrap();
        let pyjwt = pyjwt_rate(alg, &key_file, seconds);
        let openssl = openssl_sign_rate(alg, seconds);
        println!(
            "{alg:<8} PyJWT jwt.encode, one process: {} tokens/s; openssl speed signing, one core: {} signs/s",
            pyjwt.map_or("n/a (python3-jwt missing)".into(), |r| format!("{r:.0}")),
            openssl.map_or("n/a".into(), |r| format!("{r:.0}"))
        );
        summary.push((alg, best_fresh, fresh_cpu, pyjwt, openssl));
    }
    println!();
    for (alg, fresh, cpu, pyjwt, openssl) in summary {
        if let Some(p) = pyjwt {
            println!(
                "{alg}: fresh issuance {fresh:.0}/s = {:.2}x PyJWT's one-process rate",
                fresh / p
            );
        }
        if let Some(o) = openssl {
            let raw = 1e6 / o;
            println!(
                "{alg}: daemon CPU per fresh token {cpu:.1} µs vs raw signing {raw:.1} µs (openssl speed): {:.2}x",
                cpu / raw
            );
        }
    }
}

fn run(
    rt: &tokio::runtime::Runtime,
    d: &Daemon,
    conc: usize,
    fresh: bool,
    seconds: u64,
) -> (f64, Duration, Duration, f64) {
    let counter = Arc::new(AtomicUsize::new(0));
    let cpu0 = gatehouse_e2e::cpu_ns(d.pid());
    let started = Instant::now();
    let mut lat = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let socket = d.socket.clone();
            let counter = Arc::clone(&counter);
            tasks.push(tokio::spawn(async move {
                let mut c = RawConnection::connect(&socket).await.unwrap();
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let body = if fresh {
                        serde_json::json!({"service": "duo_chat", "namespace": "bench", "extra_claims": {"n": i}})
                    } else {
                        serde_json::json!({"service": "duo_chat", "namespace": "bench"})
                    };
                    let req = RawConnection::post_json("/v1/tokens/issue", &serde_json::to_vec(&body).unwrap());
                    let s = Instant::now();
                    assert_eq!(c.roundtrip(&req).await.unwrap(), 200);
                    lat.push(s.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_us = (gatehouse_e2e::cpu_ns(d.pid()) - cpu0) as f64 / 1000.0 / lat.len().max(1) as f64;
    lat.sort();
    (
        lat.len() as f64 / elapsed,
        gatehouse_e2e::percentile(&lat, 0.5),
        gatehouse_e2e::percentile(&lat, 0.99),
        cpu_us,
    )
}

/// PyJWT's `jwt.encode` rate with the same key and claims of the same shape.
fn pyjwt_rate(alg: &str, key: &std::path::Path, seconds: u64) -> Option<f64> {
    let script = r#"
import sys, time, jwt
from cryptography.hazmat.primitives import serialization
alg, path, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
# parsed once, as a long-running issuer would hold it
key = serialization.load_pem_private_key(open(path, "rb").read(), password=None)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < secs:
    now = int(time.time())
    jwt.encode({"iss": "https://gatehouse.bench", "aud": "gitlab-ai-gateway", "sub": "namespace:bench",
                "scopes": ["documentation_search", "duo_chat"], "iat": now, "nbf": now, "exp": now + 3600,
                "jti": str(n), "n": n}, key, algorithm=alg, headers={"kid": "bench"})
    n += 1
print(n / (time.perf_counter() - t0))
"#;
    // Debian's interpreter: python3-jwt is installed for it (scripts/bench.sh)
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, alg, key.to_str()?, &seconds.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `openssl speed` signing rate on one core.
fn openssl_sign_rate(alg: &str, seconds: u64) -> Option<f64> {
    let which = if alg == "RS256" { "rsa2048" } else { "ecdsap256" };
    let out = Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "-mr", which])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // machine-readable (OpenSSL 3): "+F2:n:bits:signs/s:verifies/s" (RSA),
    // "+F4:…" (ECDSA)
    let line = text
        .lines()
        .find(|l| l.starts_with("+F2:") || l.starts_with("+F4:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    let rate: f64 = fields.get(3)?.parse().ok()?;
    (rate > 0.0).then_some(rate)
}
