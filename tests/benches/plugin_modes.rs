//! Per-call overhead of the three plugin modes on a trivial authenticator
//! (`testkit_accept`): linked in (a Rust trait call), dynamic in-process
//! (the C ABI into the cdylib), and a child process (`isolation =
//! "process"`). Run with `scripts/bench.sh`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_daemon::isolation::supervisor::Isolated;
use gatehouse_sdk::abi::{CreateConfig, host};
use gatehouse_sdk::{Authenticator, Context, LoginStep, PasswordLogin, Plugin, PluginConfig};

async fn measure(name: &str, auth: Arc<dyn Authenticator>, seconds: u64, concurrency: usize) {
    let ctx = Context::new("bench");
    // warm up
    for _ in 0..1000 {
        auth.login(&ctx, PasswordLogin::new("u", "p")).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let auth = Arc::clone(&auth);
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 20);
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = auth.login(&ctx, PasswordLogin::new("user", "password")).await;
                lat.push(t.elapsed());
                assert!(matches!(r, Ok(LoginStep::Authenticated(_))));
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat.sort();
    println!(
        "{:<28} {:>5} {:>12.0} {:>10.2?} {:>10.2?}",
        name,
        concurrency,
        lat.len() as f64 / seconds as f64,
        gatehouse_e2e::percentile(&lat, 0.5),
        gatehouse_e2e::percentile(&lat, 0.99)
    );
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let linked = gatehouse_plugin_testkit::Testkit
            .authenticators()
            .into_iter()
            .find(|f| f.type_name() == "testkit_accept")
            .unwrap()
            .build(PluginConfig::new("bench", serde_json::json!({})))
            .unwrap();
        let lib_path = gatehouse_e2e::plugin_library("gatehouse_plugin_testkit");
        let library = host::load(&lib_path).unwrap();
        let create = CreateConfig {
            name: "bench".into(),
            settings: serde_json::json!({}),
            state_dir: None,
            config_dir: None,
            http: gatehouse_sdk::HttpSettings::default(),
        };
        let dynamic = library.create_authenticator("testkit_accept", &create).unwrap();
        let isolated: Arc<dyn Authenticator> = Arc::new(
            Isolated::start_with(
                gatehouse_e2e::bin("gatehoused"),
                lib_path.clone(),
                "testkit_accept".into(),
                create.clone(),
            )
            .await
            .unwrap(),
        );
        println!("plugin call overhead, testkit_accept login, {seconds}s per row");
        println!(
            "{:<28} {:>5} {:>12} {:>10} {:>10}",
            "mode", "conc", "calls/s", "p50", "p99"
        );
        for conc in [1, 8] {
            measure("linked-in (trait call)", Arc::clone(&linked), seconds, conc).await;
            measure("dynamic in-process (C ABI)", Arc::clone(&dynamic), seconds, conc).await;
            measure("child process", Arc::clone(&isolated), seconds, conc).await;
        }
    });
}
