//! Token verification over the socket (`POST /v1/tokens/verify`) with the
//! `jwt` verifier: (a) cache hits, (b) misses with fresh RS256 and ES256
//! tokens, at 1, 8 and 64 connections; in the same run the rate of an
//! in-process PyJWT verifier on the same tokens, the daemon's CPU time per
//! miss, and the raw signature verification cost for comparison. Keys are
//! made here and loaded from the verifier's persisted-keys file (the issuer
//! itself is unreachable). Run with `scripts/bench.sh`.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gatehouse_e2e::{Client, Daemon, Setup};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

const ISSUER: &str = "http://127.0.0.1:9/bench-issuer";

fn genpkey(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn pubkey(private: &[u8], dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let priv_path = dir.join(format!("{name}.key"));
    std::fs::write(&priv_path, private).unwrap();
    let pub_path = dir.join(format!("{name}.pub.pem"));
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&priv_path)
        .arg("-out")
        .arg(&pub_path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    pub_path
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let per_alg: usize = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6000);
    let work = tempfile::tempdir().unwrap();
    let rsa_pem = genpkey(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let ec_pem = genpkey(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let rsa_pub = pubkey(&rsa_pem, work.path(), "rsa");
    let ec_pub = pubkey(&ec_pem, work.path(), "ec");
    let rsa = EncodingKey::from_rsa_pem(&rsa_pem).unwrap();
    let ec = EncodingKey::from_ec_pem(&ec_pem).unwrap();
    let mut jr = Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
    jr.common.key_id = Some("rsa-1".into());
    let mut je = Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap();
    je.common.key_id = Some("ec-1".into());

    let setup = Setup::with_body(&format!(
        "[[verifiers]]\nname = \"cc\"\ntype = \"jwt\"\n[verifiers.settings]\naudience = \"gitlab-ai-gateway\"\nissuers = [\"{ISSUER}\"]\nfetch_timeout = \"1s\"\n"
    ));
    let d = Daemon::prepare(&setup);
    let keys_dir = d.dir().join("state/plugins/cc");
    std::fs::create_dir_all(&keys_dir).unwrap();
    std::fs::write(
        keys_dir.join(gatehouse_plugin_jwt::persisted_keys_file(ISSUER)),
        serde_json::to_vec(&JwkSet { keys: vec![jr, je] }).unwrap(),
    )
    .unwrap();
    let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    let d = d.spawn_with(cmd);
    let pid = d.pid();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let make = |key: &EncodingKey, alg: Algorithm, kid: &str, i: usize| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": format!("user-{i}"), "aud": "gitlab-ai-gateway",
            "exp": now + 3600, "nbf": now - 5, "iat": now - 5, "jti": format!("{kid}-{i}"),
            "scopes": ["duo_chat", "code_suggestions"]
        });
        jsonwebtoken::encode(&h, &claims, key).unwrap()
    };
    eprintln!("signing {per_alg} RS256 and {per_alg} ES256 tokens…");
    let rs: Vec<String> = (0..per_alg)
        .map(|i| make(&rsa, Algorithm::RS256, "rsa-1", i))
        .collect();
    let es: Vec<String> = (0..per_alg)
        .map(|i| make(&ec, Algorithm::ES256, "ec-1", i))
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "POST /v1/tokens/verify (jwt verifier), {seconds}s per row (misses: until the fresh tokens run out), 2 shared cores"
    );
    println!(
        "{:<24} {:>5} {:>10} {:>10} {:>10}",
        "case", "conc", "verifies/s", "p50", "p99"
    );
    let run = |tokens: Arc<Vec<String>>, conc: usize, fresh: bool| -> (f64, Duration, Duration, u64) {
        let next = Arc::new(AtomicUsize::new(0));
        let ticks0 = cpu_ticks(pid);
        let started = Instant::now();
        let lat = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let socket = d.socket.clone();
                let tokens = Arc::clone(&tokens);
                let next = Arc::clone(&next);
                tasks.push(tokio::spawn(async move {
                    let mut c = Client::connect(&socket).await.unwrap();
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if fresh && i >= tokens.len() {
                            break;
                        }
                        let t = &tokens[i % tokens.len()];
                        let s = Instant::now();
                        let a = c
                            .post(
                                "/v1/tokens/verify",
                                &serde_json::json!({"token": t, "unit_primitive": "duo_chat"}),
                            )
                            .await
                            .unwrap();
                        assert_eq!(a.status, 200, "{:?}", a.value());
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
        let ticks = cpu_ticks(pid) - ticks0;
        let mut lat = lat;
        lat.sort();
        let n = lat.len();
        (
            n as f64 / elapsed,
            gatehouse_e2e::percentile(&lat, 0.5),
            gatehouse_e2e::percentile(&lat, 0.99),
            if n > 0 { ticks * 10_000 / n as u64 } else { 0 },
        )
    };
    let hit = Arc::new(vec![rs[0].clone()]);
    let mut rates = Vec::new();
    for conc in [1usize, 8, 64] {
        let (r, p50, p99, _) = run(Arc::clone(&hit), conc, false);
        println!(
            "{:<24} {:>5} {:>10.0} {:>10.2?} {:>10.2?}",
            "cache hit", conc, r, p50, p99
        );
        rates.push(("hit", conc, r));
    }
    let mut cpu_per_miss = Vec::new();
    for (name, tokens) in [("miss RS256", &rs), ("miss ES256", &es)] {
        let chunks: Vec<Vec<String>> = tokens.chunks(tokens.len() / 3).map(<[String]>::to_vec).collect();
        for (conc, chunk) in [1usize, 8, 64].into_iter().zip(chunks) {
            let (r, p50, p99, us) = run(Arc::new(chunk), conc, true);
            println!(
                "{:<24} {:>5} {:>10.0} {:>10.2?} {:>10.2?}   daemon CPU {us} µs/verify",
                name, conc, r, p50, p99
            );
            rates.push((name, conc, r));
            if conc == 64 {
                cpu_per_miss.push((name, us));
            }
        }
    }
    // raw signature verification in this process (the floor)
    let dk = DecodingKey::from_rsa_pem(&std::fs::read(&rsa_pub).unwrap()).unwrap();
    let t0 = Instant::now();
    let n = 2000;
    for t in rs.iter().take(n) {
        let (input, sig) = t.rsplit_once('.').unwrap();
        assert!(jsonwebtoken::crypto::verify(sig, input.as_bytes(), &dk, Algorithm::RS256).unwrap());
    }
    let raw_us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "raw RS256 signature verification (aws-lc, one core): {:.1} µs ({:.0}/s)",
        raw_us,
        1e6 / raw_us
    );
    for (name, us) in &cpu_per_miss {
        if name.contains("RS256") {
            println!(
                "daemon CPU per RS256 miss: {us} µs = {:.2}x the raw verification",
                *us as f64 / raw_us
            );
        }
    }
    // PyJWT on the same tokens
    let script = gatehouse_e2e::repo_root().join("tests/benches/pyjwt_reference.py");
    for (alg, tokens, key) in [("RS256", &rs, &rsa_pub), ("ES256", &es, &ec_pub)] {
        let file = work.path().join(format!("{alg}.tokens"));
        std::fs::write(&file, tokens.join("\n")).unwrap();
        let out = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(&file)
            .arg(key)
            .arg(alg)
            .arg("gitlab-ai-gateway")
            .arg(seconds.to_string())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let py: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0.0);
                println!("PyJWT {alg} in-process, one core: {py:.0} decodes/s");
                for (case, conc, r) in &rates {
                    if *case == "hit" || case.contains(alg) {
                        println!(
                            "    {case:<12} conc {conc:>2}: gatehoused is {:.1}x PyJWT {alg}",
                            r / py
                        );
                    }
                }
            }
            Ok(o) => println!("PyJWT reference failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => {
                println!("PyJWT reference not run: {e} (apt-get install python3-jwt python3-cryptography)")
            }
        }
    }
}
