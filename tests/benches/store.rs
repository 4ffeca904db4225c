//! The store, side by side: local-password logins/s and cached-token
//! checks/s (`POST /v1/tokens/verify`, jwt verifier cache hits) with the
//! SQLite store, the PostgreSQL store (the throwaway cluster of
//! `tests/peers/pg`, TLS), and two daemons on one PostgreSQL database with
//! the load split between them. Same Argon2 parameters everywhere.
//!
//! Run with `scripts/bench.sh`, or `cargo build --release --bins && cargo
//! bench -p gatehouse-e2e --bench store`. Environment: `BENCH_SECONDS`
//! (default 3), `BENCH_CONCURRENCY` (default 8, split over the daemons).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_e2e::pg::pg_peer;
use gatehouse_e2e::{Daemon, RawConnection, Setup};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const ISSUER: &str = "http://127.0.0.1:9/store-bench-issuer";

/// OWASP's second Argon2id choice (19 MiB, 2 passes, 1 lane), for every row.
const LOCAL: &str = "[[authenticators]]\nname = \"Local Database\"\ntype = \"local\"\n[authenticators.settings]\nargon2_memory_kib = 19456\nargon2_iterations = 2\nargon2_parallelism = 1\n";

fn verifier() -> String {
    format!(
        "[[verifiers]]\nname = \"cc\"\ntype = \"jwt\"\n[verifiers.settings]\naudience = \"bench\"\nissuers = [\"{ISSUER}\"]\nfetch_timeout = \"1s\"\n"
    )
}

/// Starts a daemon with `store` (a `[store]` table or nothing) whose jwt
/// verifier trusts `jwk`.
fn daemon(store: &str, jwk: &Jwk) -> Daemon {
    let setup = Setup::with_body(&format!(
        "{store}\n[lockout]\nmax_failures = 1000000\n{LOCAL}\n{}",
        verifier()
    ));
    let d = Daemon::prepare(&setup);
    let dir = d.dir().join("state/plugins/cc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(gatehouse_plugin_jwt::persisted_keys_file(ISSUER)),
        serde_json::to_vec(&JwkSet {
            keys: vec![jwk.clone()],
        })
        .unwrap(),
    )
    .unwrap();
    let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    d.spawn_with(cmd)
}

/// Requests/s of `request` over `conc` connections spread across `daemons`
/// for `seconds`; every answer must be 200.
fn rate(rt: &tokio::runtime::Runtime, daemons: &[&Daemon], conc: usize, request: &[u8], seconds: u64) -> f64 {
    let request = Arc::new(request.to_vec());
    let started = Instant::now();
    let n = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for i in 0..conc {
            let socket = daemons[i % daemons.len()].socket.clone();
            let request = Arc::clone(&request);
            tasks.push(tokio::spawn(async move {
                let mut c = RawConnection::connect(&socket).await.unwrap();
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let status = c.roundtrip(&request).await.unwrap();
                    assert_eq!(status, 200);
                    n += 1;
                }
                n
            }));
        }
        let mut all = 0;
        for t in tasks {
            all += t.await.unwrap();
        }
        all
    });
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let conc: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let pem = gatehouse_e2e::openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        "",
    );
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    let token = jsonwebtoken::encode(
        &h,
        &serde_json::json!({"iss": ISSUER, "sub": "svc", "aud": "bench", "exp": now + 3600, "iat": now - 5}),
        &key,
    )
    .unwrap();
    let verify = RawConnection::post_json(
        "/v1/tokens/verify",
        &serde_json::to_vec(&serde_json::json!({"token": token})).unwrap(),
    );
    let login = RawConnection::post_json(
        "/v1/login",
        &serde_json::to_vec(&serde_json::json!({"username": "bench", "password": "correct horse battery"}))
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let pg = pg_peer();
    let secrets = tempfile::tempdir().unwrap();
    let sqlite_daemon = daemon("", &jwk);
    let db1 = pg.database("bench_one");
    let pg_one = daemon(&pg.store_table(&db1, secrets.path()), &jwk);
    let db2 = pg.database("bench_two");
    let store2 = pg.store_table(&db2, secrets.path());
    let pg_a = daemon(&store2, &jwk);
    let pg_b = daemon(&store2, &jwk);
    rt.block_on(async {
        for d in [&sqlite_daemon, &pg_one, &pg_a] {
            let mut c = d.client().await;
            let a = gatehouse_e2e::add_user(&mut c, "bench", "correct horse battery").await;
            assert_eq!(a.status, 201, "{:?}", a.value());
        }
    });

    println!(
        "store bench: {seconds}s per cell, {conc} connections (split over the daemons), Argon2id 19 MiB/2 passes/1 lane, {} CPUs shared by client, daemons and PostgreSQL",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<28} {:>12} {:>18}", "store", "logins/s", "token checks/s");
    let rows: [(&str, Vec<&Daemon>); 3] = [
        ("SQLite, 1 daemon", vec![&sqlite_daemon]),
        ("PostgreSQL, 1 daemon", vec![&pg_one]),
        ("PostgreSQL, 2 daemons", vec![&pg_a, &pg_b]),
    ];
    for (name, daemons) in &rows {
        // warm: connections opened, the token cached
        rate(&rt, daemons, daemons.len(), &login, 1);
        rate(&rt, daemons, daemons.len(), &verify, 1);
        let logins = rate(&rt, daemons, conc, &login, seconds);
        let checks = rate(&rt, daemons, conc, &verify, seconds);
        println!("{name:<28} {logins:>12.1} {checks:>18.0}");
    }
}
