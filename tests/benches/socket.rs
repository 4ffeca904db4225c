//! Socket throughput and latency of `GET /v1/health` with N concurrent
//! keep-alive connections, against the real `gatehoused` (release build).
//!
//! Run with `scripts/bench.sh` (builds the release binaries first), or
//! `cargo build --release --bins && cargo bench -p gatehouse-e2e --bench socket`.
//! Environment: `BENCH_SECONDS` (default 3), `BENCH_CONNECTIONS` (default
//! "1,8,64"), `BENCH_PATH` (default /v1/health).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gatehouse_e2e::{Daemon, RawConnection, Setup};

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let conns: Vec<usize> = std::env::var("BENCH_CONNECTIONS")
        .unwrap_or_else(|_| "1,8,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let path = std::env::var("BENCH_PATH").unwrap_or_else(|_| "/v1/health".into());
    // one thread for the load generator, like the token bench
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let daemon = Daemon::start(Setup::default());
    println!(
        "gatehoused {} — GET {path}, {seconds}s per run, {} CPUs shared by client and daemon",
        gatehouse_e2e::bin("gatehoused").display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>6} {:>12} {:>10} {:>10} {:>10} {:>16}",
        "conns", "requests/s", "p50", "p99", "max", "daemon CPU/req"
    );
    let request = RawConnection::get(&path);
    for n in conns {
        let cpu0 = gatehouse_e2e::cpu_ns(daemon.pid());
        let (count, mut lat) = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for _ in 0..n {
                let socket = daemon.socket.clone();
                let request = request.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = RawConnection::connect(&socket).await.unwrap();
                    let mut lat = Vec::with_capacity(100_000);
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let status = c.roundtrip(&request).await.unwrap();
                        assert_eq!(status, 200);
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
        let cpu_us = (gatehouse_e2e::cpu_ns(daemon.pid()) - cpu0) as f64 / 1000.0 / count.max(1) as f64;
        lat.sort();
        println!(
            "{:>6} {:>12.0} {:>10.1?} {:>10.1?} {:>10.1?} {:>13.1} µs",
            n,
            count as f64 / seconds as f64,
            gatehouse_e2e::percentile(&lat, 0.50),
            gatehouse_e2e::percentile(&lat, 0.99),
            lat.last().copied().unwrap_or_default(),
            cpu_us
        );
    }
}
