//! Token verification over the socket (`POST /v1/tokens/verify`) with the
//! `jwt` verifier: (a) cache hits, (b) misses with fresh RS256 and ES256
//! tokens, at 1, 8 and 64 connections; in the same run the rate of an
//! in-process PyJWT verifier on the same tokens, the daemon's CPU time per
//! miss, and the raw signature verification cost for comparison. Keys are
//! made here and loaded from the verifier's persisted-keys file (the issuer
//! itself is unreachable). Run with `scripts/bench.sh`; `BENCH_DAEMON_EXTRA`
//! adds lines to the daemon's `[daemon]` section (e.g. `worker_threads = 1`).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_e2e::{Daemon, RawConnection, Setup, openssl};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const ISSUER: &str = "http://127.0.0.1:9/bench-issuer";

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let per_alg: usize = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30_000);
    let work = tempfile::tempdir().unwrap();
    let rsa_pem = openssl(
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "",
    );
    let ec_pem = openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        "",
    );
    // public PEM files, for PyJWT
    let public_pem = |private: &[u8], name: &str| {
        let path = work.path().join(format!("{name}.pub.pem"));
        let pem = openssl(&["pkey", "-pubout"], std::str::from_utf8(private).unwrap());
        std::fs::write(&path, pem).unwrap();
        path
    };
    let rsa_pub = public_pem(&rsa_pem, "rsa");
    let ec_pub = public_pem(&ec_pem, "ec");
    let rsa = EncodingKey::from_rsa_pem(&rsa_pem).unwrap();
    let ec = EncodingKey::from_ec_pem(&ec_pem).unwrap();
    let mut jr = Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
    jr.common.key_id = Some("rsa-1".into());
    let mut je = Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap();
    je.common.key_id = Some("ec-1".into());

    let setup = Setup {
        daemon_extra: gatehouse_e2e::daemon_extra(),
        ..Setup::with_body(&format!(
            "[[verifiers]]\nname = \"cc\"\ntype = \"jwt\"\n[verifiers.settings]\naudience = \"gitlab-ai-gateway\"\nissuers = [\"{ISSUER}\"]\nfetch_timeout = \"1s\"\n"
        ))
    };
    let d = Daemon::prepare(&setup);
    let keys_dir = d.dir().join("state/plugins/cc");
    std::fs::create_dir_all(&keys_dir).unwrap();
    std::fs::write(
        keys_dir.join(gatehouse_plugin_jwt::persisted_keys_file(ISSUER)),
        serde_json::to_vec(&JwkSet {
            keys: vec![jr.clone(), je.clone()],
        })
        .unwrap(),
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
    // RSA signing is slow: both cores sign, before anything is measured
    let sign_all = |key: &EncodingKey, alg: Algorithm, kid: &str| -> Vec<String> {
        let half = per_alg / 2;
        let make = &make;
        std::thread::scope(|s| {
            let first = s.spawn(move || (0..half).map(|i| make(key, alg, kid, i)).collect::<Vec<_>>());
            let mut second: Vec<String> = (half..per_alg).map(|i| make(key, alg, kid, i)).collect();
            let mut all = first.join().unwrap();
            all.append(&mut second);
            all
        })
    };
    let rs = sign_all(&rsa, Algorithm::RS256, "rsa-1");
    let es = sign_all(&ec, Algorithm::ES256, "ec-1");

    // One thread for the load generator: the other core is the daemon's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let requests = |tokens: &[String]| -> Vec<Vec<u8>> {
        tokens
            .iter()
            .map(|t| {
                RawConnection::post_json(
                    "/v1/tokens/verify",
                    &serde_json::to_vec(&serde_json::json!({"token": t, "unit_primitive": "duo_chat"}))
                        .unwrap(),
                )
            })
            .collect()
    };
    println!(
        "POST /v1/tokens/verify (jwt verifier), {seconds}s per row (misses: until the fresh tokens run out), 2 shared cores"
    );
    println!(
        "{:<24} {:>5} {:>10} {:>10} {:>10}",
        "case", "conc", "verifies/s", "p50", "p99"
    );
    let run = |tokens: Arc<Vec<Vec<u8>>>, conc: usize, fresh: bool| -> (f64, Duration, Duration, f64, f64) {
        let next = Arc::new(AtomicUsize::new(0));
        let cpu0 = gatehouse_e2e::cpu_ns(pid);
        let ticks0 = gatehouse_e2e::cpu_ticks(pid);
        let started = Instant::now();
        let lat = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let socket = d.socket.clone();
                let tokens = Arc::clone(&tokens);
                let next = Arc::clone(&next);
                tasks.push(tokio::spawn(async move {
                    let mut c = RawConnection::connect(&socket).await.unwrap();
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if fresh && i >= tokens.len() {
                            break;
                        }
                        let t = &tokens[i % tokens.len()];
                        let s = Instant::now();
                        let status = c.roundtrip(t).await.unwrap();
                        assert_eq!(status, 200);
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
        let cpu = gatehouse_e2e::cpu_ns(pid) - cpu0;
        let ticks = gatehouse_e2e::cpu_ticks(pid);
        let (user, kernel) = (ticks.0 - ticks0.0, ticks.1 - ticks0.1);
        let user_share = 100.0 * user as f64 / (user + kernel).max(1) as f64;
        let mut lat = lat;
        lat.sort();
        let n = lat.len();
        (
            n as f64 / elapsed,
            gatehouse_e2e::percentile(&lat, 0.5),
            gatehouse_e2e::percentile(&lat, 0.99),
            if n > 0 {
                cpu as f64 / 1000.0 / n as f64
            } else {
                0.0
            },
            user_share,
        )
    };
    let hit = Arc::new(requests(&rs[..1]));
    let mut rates = Vec::new();
    // the floor: RS256 signature verification in this process, key parsed
    // once; measured right after each RS256 miss row (this machine's speed
    // drifts between runs)
    let der = openssl(
        &["pkey", "-pubout", "-outform", "DER"],
        std::str::from_utf8(&rsa_pem).unwrap(),
    );
    let raw_key = ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der).unwrap();
    let split: Vec<(&str, Vec<u8>)> = rs
        .iter()
        .take(2000)
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap();
            (input, URL_SAFE_NO_PAD.decode(sig).unwrap())
        })
        .collect();
    let raw_rs256 = || {
        let t0 = Instant::now();
        for (input, sig) in &split {
            raw_key.verify_sig(input.as_bytes(), sig).unwrap();
        }
        t0.elapsed().as_secs_f64() * 1e6 / split.len() as f64
    };
    // BENCH_ONLY="miss RS256" (say) runs only the rows whose case contains
    // it: for profiling one case
    let wanted = gatehouse_e2e::bench_only;
    for conc in [1usize, 8, 64].into_iter().filter(|_| wanted("cache hit")) {
        let (r, p50, p99, us, user) = run(Arc::clone(&hit), conc, false);
        println!(
            "{:<24} {:>5} {:>10.0} {:>10.2?} {:>10.2?}   daemon CPU {us:.1} µs/verify ({user:.0} % user)",
            "cache hit", conc, r, p50, p99
        );
        rates.push(("hit", conc, r));
    }
    let mut cpu_per_miss = Vec::new();
    for (name, tokens) in [("miss RS256", &rs), ("miss ES256", &es)] {
        if !wanted(name) {
            continue;
        }
        let chunks: Vec<Vec<Vec<u8>>> = tokens.chunks(tokens.len() / 3).map(&requests).collect();
        for (conc, chunk) in [1usize, 8, 64].into_iter().zip(chunks) {
            let (r, p50, p99, us, user) = run(Arc::new(chunk), conc, true);
            println!(
                "{:<24} {:>5} {:>10.0} {:>10.2?} {:>10.2?}   daemon CPU {us:.1} µs/verify ({user:.0} % user)",
                name, conc, r, p50, p99
            );
            rates.push((name, conc, r));
            if name.contains("RS256") {
                let raw = raw_rs256();
                println!(
                    "{:<24} {:>5}   raw aws-lc verification just after: {raw:.1} µs; daemon CPU = {:.2}x that",
                    "",
                    "",
                    us / raw
                );
                if conc == 64 {
                    cpu_per_miss.push((name, us, raw));
                }
            }
        }
    }
    // PyJWT on the same tokens, two ways (see pyjwt_reference.py)
    let jwks_file = work.path().join("jwks.json");
    std::fs::write(
        &jwks_file,
        serde_json::to_vec(&JwkSet { keys: vec![jr, je] }).unwrap(),
    )
    .unwrap();
    let script = gatehouse_e2e::repo_root().join("tests/benches/pyjwt_reference.py");
    for (alg, tokens, key) in [("RS256", &rs, &rsa_pub), ("ES256", &es, &ec_pub)] {
        if !wanted(&format!("miss {alg}")) && !wanted("cache hit") {
            continue;
        }
        let file = work.path().join(format!("{alg}.tokens"));
        std::fs::write(&file, tokens.join("\n")).unwrap();
        for (mode, key, label) in [
            ("key", key, "key object loaded once"),
            ("jwksclient", &jwks_file, "PyJWKClient + decode, as documented"),
        ] {
            let out = Command::new("/usr/bin/python3")
                .arg(&script)
                .arg(mode)
                .arg(&file)
                .arg(key)
                .arg(alg)
                .arg("gitlab-ai-gateway")
                .arg(seconds.to_string())
                .output();
            let py: f64 = match out {
                Ok(o) if o.status.success() => {
                    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0.0)
                }
                Ok(o) => {
                    println!("PyJWT reference failed: {}", String::from_utf8_lossy(&o.stderr));
                    continue;
                }
                Err(e) => {
                    println!(
                        "PyJWT reference not run: {e} (apt-get install python3-jwt python3-cryptography)"
                    );
                    continue;
                }
            };
            println!("PyJWT {alg} in-process, one core, {label}: {py:.0} decodes/s");
            for (case, conc, r) in &rates {
                if *case == "hit" || case.contains(alg) {
                    println!("    {case:<12} conc {conc:>2}: gatehoused is {:.1}x", r / py);
                }
            }
        }
    }
    // the raw verification as the issue defines it: OpenSSL's own figure
    let speed = Command::new("openssl")
        .args(["speed", "-seconds", "2", "rsa2048"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let openssl_per_s: Option<f64> = speed
        .lines()
        .find(|l| l.starts_with("rsa 2048 bits"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok());
    if let Some(per_s) = openssl_per_s {
        let openssl_us = 1e6 / per_s;
        println!("openssl speed rsa2048: {per_s:.0} verifies/s = {openssl_us:.1} µs");
        for (name, us, _) in &cpu_per_miss {
            if name.contains("RS256") {
                println!(
                    "daemon CPU per RS256 miss: {us:.1} µs = {:.2}x openssl speed's verification",
                    us / openssl_us
                );
            }
        }
    }
}
