//! Hot reload: by file edit, by rename-over, by SIGHUP, by API, and by a new
//! drop-in; a broken configuration changes nothing and is reported; reloads
//! under load drop no request.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, add_user, login};

fn with_second(name: &str) -> Setup {
    Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[[authenticators]]\nname = \"{name}\"\ntype = \"local\"\nenabled = false\n[authenticators.settings]\nargon2_memory_kib = 64\nargon2_iterations = 1\n"
    ))
}

async fn names(d: &Daemon) -> Vec<String> {
    let v = d.client().await.get("/v1/authenticators").await.unwrap().value();
    v["authenticators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn reload_by_edit_rename_signal_and_api() {
    let d = Daemon::start(Setup::default());
    assert_eq!(names(&d).await, ["Local Database"]);

    // in-place edit
    d.write_config(&with_second("Edited"));
    d.wait_generation(2).await;
    assert_eq!(names(&d).await, ["Local Database", "Edited"]);

    // atomic editor save: write elsewhere, rename over
    d.replace_config(&with_second("Renamed"));
    d.wait_generation(3).await;
    assert_eq!(names(&d).await, ["Local Database", "Renamed"]);

    // SIGHUP (the file is unchanged, the generation still moves on)
    let before = d.wait_generation(3).await["generation"].as_u64().unwrap();
    d.signal("HUP");
    d.wait_generation(before + 1).await;

    // API
    let a = d
        .client()
        .await
        .post("/v1/reload", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert_eq!(a.value()["generation"], before + 2);
    assert!(d.logs().contains("configuration reloaded"));
}

#[tokio::test]
async fn broken_config_keeps_the_running_generation_and_is_reported() {
    let d = Daemon::start(with_second("Second"));
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "carol", "carol password").await.status, 201);

    // an unknown key and a bad value, written in place: the watcher reloads and fails
    let broken = Setup::with_body(&format!("[access]\nbogus_key = 1\n{LOCAL_AUTH}"));
    d.write_config(&broken);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let health = loop {
        let h = c.get("/v1/health").await.unwrap().value();
        if !h["last_reload_error"].is_null() {
            break h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload error reported: {h}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(health["generation"], 1, "the broken config must not be applied");
    assert!(
        health["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("bogus_key"),
        "{health}"
    );
    // still serving the old generation, including the second authenticator
    assert_eq!(names(&d).await, ["Local Database", "Second"]);
    assert_eq!(login(&mut c, "carol", "carol password").await.status, 200);

    // the API reload answers 422 with every error, file, line and key
    let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(a.status, 422);
    let err = a.error().unwrap().error;
    assert_eq!(err.code, "invalid_config");
    let errors = err.details.unwrap()["errors"].as_array().unwrap().clone();
    assert!(!errors.is_empty());
    let first = &errors[0];
    assert!(
        first["file"].as_str().unwrap().ends_with("gatehouse.toml"),
        "{first}"
    );
    assert!(first["line"].as_u64().unwrap() > 1, "{first}");
    assert_eq!(first["key"], "access.bogus_key", "{first}");

    // the CLI shows it too
    let out = d.cli(&["status"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED"), "{text}");
    let out = d.cli(&["reload"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus_key"));

    // a value error alone is reported with its key as well
    d.write_config(&Setup::with_body(&format!(
        "{LOCAL_AUTH}\n[lockout]\nwindow = \"forever\"\n"
    )));
    let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(a.status, 422);
    let details = a.error().unwrap().error.details.unwrap();
    assert_eq!(details["errors"][0]["key"], "lockout.window");

    // a plugin-level error (bad argon2 settings) is refused whole too
    d.write_config(&Setup::with_body(
        "[[authenticators]]\nname = \"L\"\ntype = \"local\"\n[authenticators.settings]\nargon2_iterations = 0\n",
    ));
    let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(a.status, 422, "{:?}", a.value());
    assert_eq!(names(&d).await, ["Local Database", "Second"]);

    // fixing the file clears the error
    d.write_config(&Setup::default());
    d.wait_generation(2).await;
    let h = c.get("/v1/health").await.unwrap().value();
    assert!(h["last_reload_error"].is_null(), "{h}");
    assert_eq!(names(&d).await, ["Local Database"]);
    assert_eq!(login(&mut c, "carol", "carol password").await.status, 200);
}

#[tokio::test]
async fn a_new_drop_in_file_is_picked_up() {
    let setup = Setup {
        daemon_extra: "include = [\"conf.d/*.toml\"]".into(),
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    std::fs::create_dir_all(d.dir().join("conf.d")).unwrap();
    let d = {
        // start after the directory exists
        let cfg = d;
        let mut cmd = std::process::Command::new(gatehouse_e2e::bin("gatehoused"));
        cmd.arg("--config").arg(&cfg.config);
        cfg.spawn_with(cmd)
    };
    assert_eq!(names(&d).await, ["Local Database"]);
    std::fs::write(
        d.dir().join("conf.d/50-extra.toml"),
        "[[authenticators]]\nname = \"Drop-in\"\ntype = \"local\"\n[authenticators.settings]\nargon2_memory_kib = 64\nargon2_iterations = 1\n",
    )
    .unwrap();
    d.wait_generation(2).await;
    assert_eq!(names(&d).await, ["Local Database", "Drop-in"]);
    std::fs::remove_file(d.dir().join("conf.d/50-extra.toml")).unwrap();
    d.wait_generation(3).await;
    assert_eq!(names(&d).await, ["Local Database"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_reloads_under_load_fail_no_request() {
    let d = Daemon::start(Setup::default());
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "dora", "dora password").await.status, 201);

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let socket = d.socket.clone();
        let stop = Arc::clone(&stop);
        let served = Arc::clone(&served);
        workers.push(tokio::spawn(async move {
            // one keep-alive connection per worker, for the whole run
            let mut c = gatehouse_e2e::Client::connect(&socket).await.unwrap();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c
                    .post(
                        "/v1/login",
                        &serde_json::json!({"username": "dora", "password": "dora password"}),
                    )
                    .await
                {
                    Ok(a) if a.status == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(a) => failures.push(format!("{} {:?}", a.status, a.value())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }));
    }
    // alternate two configurations so every reload builds new plugin instances
    let a = Setup::default();
    let b = Setup::with_body(&LOCAL_AUTH.replace("min_password_length = 8", "min_password_length = 9"));
    for i in 0..200 {
        d.write_config(if i % 2 == 0 { &b } else { &a });
        let r = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
        assert_eq!(r.status, 200, "reload {i}: {:?}", r.value());
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        served.load(Ordering::Relaxed) > 50,
        "too little load: {}",
        served.load(Ordering::Relaxed)
    );
    let h = c.get("/v1/health").await.unwrap().value();
    assert!(h["generation"].as_u64().unwrap() >= 201, "{h}");
}
