//! Plugins through the socket: a Rust cdylib (htpasswd, testkit) and a C
//! library, loaded from plugin_dirs or an explicit library, in-process and
//! under `isolation = "process"`; failures at load and at call time.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use gatehouse_e2e::{
    Daemon, LOCAL_AUTH, Setup, add_user, build_c_plugin, install_plugin, login, plugin_library,
};

fn sha512_crypt(password: &str) -> String {
    let out = Command::new("openssl")
        .args(["passwd", "-6", password])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn with_plugins(body: &str) -> Setup {
    Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: body.to_owned(),
        ..Setup::default()
    }
}

/// A daemon whose plugin_dirs holds the htpasswd, testkit and C plugins.
fn start(body: &str) -> Daemon {
    let setup = with_plugins(body);
    let d = Daemon::prepare(&setup);
    let dir = d.dir().join("plugins");
    install_plugin(&dir, &plugin_library("gatehouse_plugin_htpasswd"));
    install_plugin(&dir, &plugin_library("gatehouse_plugin_testkit"));
    build_c_plugin(&dir.join("libc_static.so"), &[]);
    std::fs::write(
        d.dir().join("users.htpasswd"),
        format!("ann:{}\n", sha512_crypt("ann's password")),
    )
    .unwrap();
    let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    d.spawn_with(cmd)
}

fn htpasswd_and_c(isolation: &str) -> String {
    format!(
        r#"
[[authenticators]]
name = "Web users"
type = "htpasswd"
isolation = "{isolation}"
[authenticators.settings]
file = "users.htpasswd"

[[authenticators]]
name = "C users"
type = "c_static"
isolation = "{isolation}"
[authenticators.settings]
user = "cuser"
password = "c password"
"#
    )
}

async fn check_plugin_logins(d: &Daemon) {
    let mut c = d.client().await;
    let a = login(&mut c, "ann", "ann's password").await;
    assert_eq!(a.status, 200, "{:?}\n{}", a.value(), d.logs());
    assert_eq!(a.value()["authenticator"], "Web users");
    assert_eq!(a.value()["user"]["username"], "ann");

    let a = login(&mut c, "cuser", "c password").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert_eq!(a.value()["authenticator"], "C users");
    assert_eq!(a.value()["groups"], serde_json::json!(["c-plugin-users"]));

    for (u, p) in [
        ("ann", "wrong"),
        ("cuser", "wrong"),
        ("nobody", "c password"),
        ("ann", ""),
    ] {
        let a = login(&mut c, u, p).await;
        assert_eq!(a.status, 401, "{u}/{p}: {:?}", a.value());
    }
    // the CLI, too
    let out = d.cli(&["login", "--authenticator", "C users", "cuser"], "c password\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = c.get("/v1/authenticators").await.unwrap().value();
    assert_eq!(list["authenticators"][0]["type"], "htpasswd");
    assert_eq!(list["authenticators"][1]["flow"], "password");
}

#[tokio::test]
async fn rust_and_c_plugins_from_plugin_dirs_in_process() {
    let d = start(&htpasswd_and_c("in_process"));
    check_plugin_logins(&d).await;
    assert!(
        d.logs().contains("c plugin loaded"),
        "plugin logs reach the daemon's log"
    );
}

#[tokio::test]
async fn rust_and_c_plugins_in_child_processes() {
    let d = start(&htpasswd_and_c("process"));
    check_plugin_logins(&d).await;
}

#[tokio::test]
async fn explicit_library_path() {
    let setup = Setup::with_body(&format!(
        "[[authenticators]]\nname = \"Web\"\ntype = \"htpasswd\"\nlibrary = \"{}\"\n[authenticators.settings]\nfile = \"users.htpasswd\"\n",
        plugin_library("gatehouse_plugin_htpasswd").display()
    ));
    let d = Daemon::prepare(&setup);
    std::fs::write(
        d.dir().join("users.htpasswd"),
        format!("ann:{}\n", sha512_crypt("pw of ann")),
    )
    .unwrap();
    let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    let d = d.spawn_with(cmd);
    let mut c = d.client().await;
    assert_eq!(login(&mut c, "ann", "pw of ann").await.status, 200);
}

#[tokio::test]
async fn a_panicking_plugin_costs_one_request_not_the_daemon() {
    let d = start(&format!(
        "[[authenticators]]\nname = \"Panics\"\ntype = \"testkit_panic\"\n{LOCAL_AUTH}"
    ));
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "kim", "kim password").await.status, 201);
    // tried first, panics, skipped: the local user still logs in
    let a = login(&mut c, "kim", "kim password").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    // named directly: a stable error, not a dropped connection
    let a = c
        .post(
            "/v1/login",
            &serde_json::json!({"username": "kim", "password": "x", "authenticator": "Panics"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 503, "{:?}", a.value());
    assert_eq!(a.code().as_deref(), Some("backend_unavailable"));
    assert_eq!(c.get("/v1/health").await.unwrap().status, 200);
}

#[tokio::test]
async fn an_aborting_plugin_under_isolation_is_restarted() {
    let d = start(&format!(
        "[[authenticators]]\nname = \"Aborts\"\ntype = \"testkit_abort\"\nisolation = \"process\"\n{LOCAL_AUTH}"
    ));
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "lee", "lee password").await.status, 201);
    let named = serde_json::json!({"username": "lee", "password": "x", "authenticator": "Aborts"});
    let a = c.post("/v1/login", &named).await.unwrap();
    assert_eq!(a.status, 503, "{:?}", a.value());
    // the daemon is alive and the next authenticator in order still works
    assert_eq!(login(&mut c, "lee", "lee password").await.status, 200);
    // the host comes back (with backoff) and crashes again on the next call
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !d.logs().contains("plugin host restarted") {
        assert!(
            std::time::Instant::now() < deadline,
            "host not restarted:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = c.post("/v1/login", &named).await.unwrap();
    assert_eq!(a.status, 503);
    assert_eq!(c.get("/v1/health").await.unwrap().status, 200);
}

#[tokio::test]
async fn down_backends_are_skipped() {
    let d = start(&format!(
        "[[authenticators]]\nname = \"Down\"\ntype = \"testkit_down\"\n{LOCAL_AUTH}"
    ));
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "max", "max password").await.status, 201);
    let a = login(&mut c, "max", "max password").await;
    assert_eq!(a.status, 200);
    let a = login(&mut c, "max", "wrong password").await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.error().unwrap().error.details.unwrap()["unavailable"],
        serde_json::json!(["Down"])
    );
    // only down backends: 503
    let a = c
        .post(
            "/v1/login",
            &serde_json::json!({"username": "max", "password": "max password", "authenticator": "Down"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.code().as_deref()),
        (503, Some("backend_unavailable"))
    );
}

#[tokio::test]
async fn secrets_from_files_and_credentials() {
    let cred_dir = tempfile::tempdir().unwrap();
    std::fs::write(cred_dir.path().join("testkit-pw"), "from a credential\n").unwrap();
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: r#"
[[authenticators]]
name = "File secret"
type = "testkit_users"
[authenticators.settings]
password_file = "secret.txt"
users = { nia = {} }

[[authenticators]]
name = "Credential secret"
type = "testkit_users"
[authenticators.settings]
password_credential = "testkit-pw"
users = { oli = {} }
"#
        .into(),
        env: vec![],
    };
    let d = Daemon::prepare(&setup);
    install_plugin(
        &d.dir().join("plugins"),
        &plugin_library("gatehouse_plugin_testkit"),
    );
    std::fs::write(d.dir().join("secret.txt"), "from a file\n").unwrap();
    let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
    cmd.arg("--config")
        .arg(&d.config)
        .env("CREDENTIALS_DIRECTORY", cred_dir.path());
    let d = d.spawn_with(cmd);
    let mut c = d.client().await;
    assert_eq!(login(&mut c, "nia", "from a file").await.status, 200);
    assert_eq!(login(&mut c, "oli", "from a credential").await.status, 200);
    // a changed secret file is a reload (it was read, so it is watched)
    std::fs::write(d.dir().join("secret.txt"), "rotated\n").unwrap();
    d.wait_generation(2).await;
    assert_eq!(login(&mut c, "nia", "from a file").await.status, 401);
    assert_eq!(login(&mut c, "nia", "rotated").await.status, 200);
    // giving a secret twice is a config error naming the key
    let twice = setup.body.replace(
        "password_file = \"secret.txt\"",
        "password_file = \"secret.txt\"\npassword = \"inline\"",
    );
    d.write_config(&Setup {
        body: twice,
        ..setup.clone()
    });
    let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(a.status, 422);
    let e = &a.error().unwrap().error.details.unwrap()["errors"][0];
    assert!(e["key"].as_str().unwrap().ends_with(".settings.password"), "{e}");
    assert!(
        !d.logs().contains("from a file") && !d.logs().contains("rotated"),
        "secret in logs"
    );
}

#[tokio::test]
async fn bad_libraries_are_refused_at_load_and_on_reload() {
    let d = start(LOCAL_AUTH);
    let mut c = d.client().await;
    let dir = d.dir().join("plugins");
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "libc_wrong_abi.so",
            &["GH_TEST_ABI_MAJOR=2"],
            "ABI version 2 is not supported",
        ),
        (
            "libc_no_entry.so",
            &["GH_NO_ENTRY"],
            "symbol gatehouse_plugin_entry is missing",
        ),
        (
            "libc_clash.so",
            &["GH_TYPE=\"local\""],
            "clashes with the built-in type",
        ),
    ];
    for (file, defines, message) in cases {
        build_c_plugin(&dir.join(file), defines);
        let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
        assert_eq!(a.status, 422, "{file}: {:?}", a.value());
        let errors = a.error().unwrap().error.details.unwrap()["errors"].clone();
        let text = errors.to_string();
        assert!(text.contains(file) && text.contains(message), "{file}: {text}");
        // the running generation keeps serving
        let h = c.get("/v1/health").await.unwrap().value();
        assert_eq!(h["generation"], 1);
        assert_eq!(
            add_user(&mut c, &file.replace(['.', '_'], "-"), "a long password")
                .await
                .status,
            201
        );
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    // refused at startup as well, naming the file
    build_c_plugin(&dir.join("libc_wrong_abi.so"), &["GH_TEST_ABI_MAJOR=2"]);
    let out = gatehouse_e2e::run_with_stdin(
        Command::new(gatehouse_e2e::bin("gatehoused"))
            .arg("--check-config")
            .arg(&d.config),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("libc_wrong_abi.so"));
    // an explicit library that is not a plugin
    let e = gatehouse_e2e::run_with_stdin(
        Command::new(gatehouse_e2e::bin("gatehoused"))
            .arg("--check-config")
            .arg({
                let f = d.dir().join("explicit.toml");
                std::fs::write(
                    &f,
                    format!(
                        "[[authenticators]]\nname = \"X\"\ntype = \"c_static\"\nlibrary = \"{}\"\n",
                        dir.join("libc_wrong_abi.so").display()
                    ),
                )
                .unwrap();
                f
            }),
        "",
    );
    assert_eq!(e.status.code(), Some(1));
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        err.contains("explicit.toml:1: authenticators[\"X\"].library") && err.contains("ABI version 2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_new_library_is_loaded_on_reload() {
    let d = start(LOCAL_AUTH);
    let mut c = d.client().await;
    let dir = d.dir().join("plugins");
    build_c_plugin(&dir.join("libc_other.so"), &["GH_TYPE=\"c_other\""]);
    d.write_config(&with_plugins(&format!(
        "{LOCAL_AUTH}\n[[authenticators]]\nname = \"Other\"\ntype = \"c_other\"\n[authenticators.settings]\nuser = \"o\"\npassword = \"o password\"\n"
    )));
    d.wait_generation(2).await;
    assert_eq!(login(&mut c, "o", "o password").await.status, 200);
}

#[tokio::test]
async fn a_library_replaced_at_its_path_is_loaded_anew_on_reload() {
    let d = start(LOCAL_AUTH);
    let mut c = d.client().await;
    let dir = d.dir().join("plugins");
    let lib = dir.join("libc_versioned.so");
    let body = |ty: &str| {
        with_plugins(&format!(
            "{LOCAL_AUTH}\n[[authenticators]]\nname = \"Versioned\"\ntype = \"{ty}\"\n[authenticators.settings]\nuser = \"v\"\npassword = \"v password\"\n"
        ))
    };
    // a new version is built beside the old one and renamed over it, as a
    // package upgrade does
    let install = |defines: &[&str]| {
        let new = dir.join("libc_versioned.so.new");
        build_c_plugin(&new, defines);
        std::fs::rename(&new, &lib).unwrap();
    };
    let groups = |v: &serde_json::Value| v["groups"].to_string();
    install(&["GH_TYPE=\"c_versioned\"", "GH_GROUP=\"v1-users\""]);
    d.write_config(&body("c_versioned"));
    d.wait_generation(2).await;
    let a = login(&mut c, "v", "v password").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert!(groups(&a.value()).contains("v1-users"), "{:?}", a.value());

    // version 2: same type, same settings; a reload runs the new code
    install(&["GH_TYPE=\"c_versioned\"", "GH_GROUP=\"v2-users\""]);
    let r = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.value());
    let a = login(&mut c, "v", "v password").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert!(groups(&a.value()).contains("v2-users"), "{:?}", a.value());

    // version 3 renames the type: the old type is gone with the old file
    install(&["GH_TYPE=\"c_renamed\""]);
    let r = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(r.status, 422, "{:?}", r.value());
    assert!(r.value().to_string().contains("c_versioned"), "{:?}", r.value());
    d.write_config(&body("c_renamed"));
    let r = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.value());
    assert_eq!(login(&mut c, "v", "v password").await.status, 200);
}

fn tokens_verifier(isolation: &str) -> String {
    format!(
        r#"
[[verifiers]]
name = "test tokens"
type = "testkit_tokens"
isolation = "{isolation}"
[verifiers.settings]
audience = "gitlab-ai-gateway"
revoked = ["tok-revoked"]
[verifiers.settings.tokens]
tok-good = {{ subject = "alice", audience = ["gitlab-ai-gateway"], scopes = ["duo_chat", "code_suggestions"] }}
tok-other-aud = {{ subject = "bob", audience = ["elsewhere"], scopes = ["duo_chat"] }}
"#
    )
}

async fn check_verifier(d: &Daemon) {
    let mut c = d.client().await;
    let verify = |token: &str, up: Option<&str>| {
        let mut body = serde_json::json!({"token": token});
        if let Some(up) = up {
            body["unit_primitive"] = up.into();
        }
        body
    };
    let a = c
        .post("/v1/tokens/verify", &verify("tok-good", Some("duo_chat")))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    assert_eq!(v["valid"], true);
    assert_eq!(v["verifier"], "test tokens");
    assert_eq!(v["subject"], "alice");
    assert_eq!(v["issuer"], "testkit");
    assert_eq!(v["scopes"], serde_json::json!(["duo_chat", "code_suggestions"]));

    for (token, up, reason) in [
        ("tok-good", Some("self_hosted_models"), "missing_scope"),
        ("tok-other-aud", None, "wrong_audience"),
        ("tok-revoked", None, "revoked"),
        ("tok-forged", None, "bad_signature"),
        ("", None, "malformed"),
    ] {
        let a = c.post("/v1/tokens/verify", &verify(token, up)).await.unwrap();
        assert_eq!(a.status, 401, "{token}: {:?}", a.value());
        let v = a.value();
        assert_eq!(v["valid"], false);
        assert_eq!(v["error"]["code"], "invalid_token");
        assert_eq!(v["error"]["details"]["reason"], reason, "{token}");
    }
    let a = c
        .post(
            "/v1/tokens/verify",
            &serde_json::json!({"token": "tok-good", "verifier": "nope"}),
        )
        .await
        .unwrap();
    assert_eq!((a.status, a.code().as_deref()), (404, Some("unknown_verifier")));

    // the CLI: exit 0 valid, 1 invalid; "-" reads the token from stdin
    let out = d.cli(&["verify", "-", "--unit-primitive", "duo_chat"], "tok-good\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
    let out = d.cli(&["verify", "tok-good", "--unit-primitive", "nope"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_token"));

    let h = c.get("/v1/health").await.unwrap().value();
    assert_eq!(h["verifiers"], 1);
    let m = String::from_utf8(c.get("/v1/metrics").await.unwrap().body.to_vec()).unwrap();
    assert!(
        m.contains("gatehouse_token_checks_total{verifier=\"test tokens\",outcome=\"missing_scope\"} "),
        "{m}"
    );
    assert!(!d.logs().contains("tok-good"), "a token reached the log");
}

#[tokio::test]
async fn a_verifier_plugin_in_process() {
    let d = start(&format!("{LOCAL_AUTH}{}", tokens_verifier("in_process")));
    check_verifier(&d).await;
}

#[tokio::test]
async fn a_verifier_plugin_in_a_child_process() {
    let d = start(&format!("{LOCAL_AUTH}{}", tokens_verifier("process")));
    check_verifier(&d).await;
}

/// A library cannot take a built-in verifier type either (`static_object`
/// was shadowed silently before): refused, naming the file and the type.
#[tokio::test]
async fn a_library_cannot_shadow_a_built_in_verifier_type() {
    let d = start(LOCAL_AUTH);
    let mut c = d.client().await;
    let dir = d.dir().join("plugins");
    build_c_plugin(
        &dir.join("libc_shadow.so"),
        &["GH_TYPE=\"c_shadow\"", "GH_VERIFIER_TYPE=\"static_object\""],
    );
    let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(a.status, 422, "{:?}", a.value());
    let text = a.error().unwrap().error.details.unwrap()["errors"].to_string();
    assert!(
        text.contains("libc_shadow.so")
            && text.contains("verifier type \\\"static_object\\\"")
            && text.contains("clashes with the built-in type"),
        "{text}"
    );
    assert_eq!(c.get("/v1/health").await.unwrap().value()["generation"], 1);
}
