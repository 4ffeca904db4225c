//! The SDK as an outsider meets it: the C example plugin
//! (`sdk/examples/c/password_plugin.c`) built with `-fvisibility=hidden`,
//! found in `plugin_dirs` through its manifest beside libraries that are
//! not plugins, logging users in; the conformance kit run on the built
//! `.so` from outside; `GET /v1/plugins` and `gatehouse plugins`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, build_c_library, build_c_plugin, login, repo_root};
use gatehouse_sdk::abi::manifest::{self, ManifestError};
use gatehouse_sdk::testing::{AuthenticatorSuite, Loaded};

fn build_example(out: &Path) {
    build_c_library(
        &repo_root().join("sdk/examples/c/password_plugin.c"),
        out,
        &["-std=c11", "-Wextra", "-pedantic", "-fvisibility=hidden"],
    );
}

/// A password with JSON escapes in it (quote, backslash, tab) and
/// non-ASCII text, and a username that needs escaping too.
const ODD_USER: &str = "zoë \"z\"";
const ODD_PASSWORD: &str = "p\"a\\s\ts wörd ✓";

fn body(isolation: &str) -> String {
    format!(
        r#"
[[authenticators]]
name = "C users"
type = "c_password"
isolation = "{isolation}"
[authenticators.settings]
group = "c-example-users"
[authenticators.settings.users]
ann = "ann's password"
{user} = {password}
{LOCAL_AUTH}"#,
        user = toml_string(ODD_USER),
        password = toml_string(ODD_PASSWORD),
    )
}

fn toml_string(s: &str) -> String {
    // JSON string syntax is valid TOML basic-string syntax for these.
    serde_json::to_string(s).unwrap()
}

/// A daemon whose plugin_dirs holds the example, a shared library that is
/// not a gatehouse plugin, and a file that is not a library at all.
fn start(isolation: &str) -> (Daemon, PathBuf) {
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: body(isolation),
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    let dir = d.dir().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    build_example(&dir.join("libc_password.so"));
    build_c_plugin(&dir.join("libstray.so"), &["GH_NO_MANIFEST"]);
    std::fs::write(dir.join("libjunk.so"), "not a library\n").unwrap();
    let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    (d.spawn_with(cmd), dir)
}

async fn check_logins(d: &Daemon) {
    let mut c = d.client().await;
    let a = login(&mut c, "ann", "ann's password").await;
    assert_eq!(a.status, 200, "{:?}\n{}", a.value(), d.logs());
    assert_eq!(a.value()["authenticator"], "C users");
    assert_eq!(a.value()["groups"], serde_json::json!(["c-example-users"]));

    let a = login(&mut c, ODD_USER, ODD_PASSWORD).await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert_eq!(a.value()["authenticator_uid"], ODD_USER);

    for (u, p) in [
        ("ann", "wrong"),
        ("ann", "ann's password "),
        ("ann", "ann's passwor"),
        ("ann", ""),
        (ODD_USER, "p\"a\\s"),
        ("nobody", "ann's password"),
    ] {
        let a = login(&mut c, u, p).await;
        assert_eq!(a.status, 401, "{u}/{p}: {:?}", a.value());
        assert_eq!(a.code().as_deref(), Some("invalid_credentials"));
    }
}

#[tokio::test]
async fn the_c_example_logs_users_in_beside_libraries_that_are_not_plugins() {
    let (d, dir) = start("in_process");
    check_logins(&d).await;
    assert!(d.logs().contains("c_password example plugin loaded"));
    // the stray files were skipped (at info), not errors
    assert!(d.logs().contains("libstray.so: skipped"), "{}", d.logs());

    let mut c = d.client().await;
    let a = c.get("/v1/plugins").await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    let lib = dir.join("libc_password.so").canonicalize().unwrap();
    let types = v["types"].as_array().unwrap();
    assert!(
        types.contains(&serde_json::json!({
            "family": "authenticator", "type": "c_password", "origin": lib.display().to_string()
        })),
        "{v}"
    );
    assert!(
        types
            .contains(&serde_json::json!({"family": "authenticator", "type": "local", "origin": "built-in"})),
        "{v}"
    );
    assert_eq!(
        v["libraries"],
        serde_json::json!([{
            "path": lib.display().to_string(),
            "name": "c-password-example",
            "version": "1.0.0",
            "sdk_version": gatehouse_sdk::SDK_VERSION,
            "authenticators": ["c_password"],
            "verifiers": [],
            "capabilities": [],
        }])
    );
    let skipped: Vec<(String, String)> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = Path::new(s["path"].as_str().unwrap()).file_name().unwrap();
            (
                name.to_string_lossy().into_owned(),
                s["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            ("libjunk.so".to_owned(), "not_elf".to_owned()),
            ("libstray.so".to_owned(), "no_manifest".to_owned())
        ]
    );

    let out = d.cli(&["plugins"], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "c_password",
        "c-password-example 1.0.0",
        "provides: authenticator c_password",
        "libstray.so: not a gatehouse plugin",
        "libjunk.so: not an ELF file",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
}

#[tokio::test]
async fn the_c_example_in_a_child_process() {
    let (d, _) = start("process");
    check_logins(&d).await;
}

#[test]
fn the_conformance_kit_runs_on_the_built_c_example() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("libc_password_kit.so");
    build_example(&so);
    let m = manifest::read(&so).unwrap();
    assert_eq!(
        (m.name.as_str(), m.authenticators.clone()),
        ("c-password-example", Some(vec!["c_password".to_owned()]))
    );
    let subject = Loaded::open(&so, "c_password").unwrap();
    AuthenticatorSuite::new(
        &subject,
        serde_json::json!({"users": {"kit": "the kit's password", "other": "another secret"}}),
    )
    .good("kit", "the kit's password")
    .secret("the kit's password")
    .secret("another secret")
    .bad_settings(serde_json::json!({}))
    .bad_settings(serde_json::json!({"users": {"kit": ""}}))
    .bad_settings(serde_json::json!({"users": {"kit": 1}}))
    .bad_settings(serde_json::json!({"users": {"kit": "x"}, "group": ["not", "a", "string"]}))
    .run()
    .unwrap();

    // a type the library does not provide, and a library that is not a plugin
    assert!(
        Loaded::open(&so, "nope")
            .err()
            .unwrap()
            .contains("no type \"nope\""),
        "unknown type"
    );
    let stray = dir.path().join("libstray_kit.so");
    build_c_plugin(&stray, &["GH_NO_MANIFEST"]);
    let e = Loaded::open(&stray, "c_static").err().unwrap();
    assert!(e.contains("not a gatehouse plugin"), "{e}");
    assert_eq!(manifest::read(&stray).unwrap_err(), ManifestError::Missing);
}

#[test]
fn rust_plugins_carry_their_manifest() {
    let htpasswd = manifest::read(&gatehouse_e2e::plugin_library("gatehouse_plugin_htpasswd")).unwrap();
    assert_eq!(htpasswd.name, "gatehouse-plugin-htpasswd");
    assert_eq!(htpasswd.sdk_version, gatehouse_sdk::SDK_VERSION);
    assert_eq!(htpasswd.authenticators, Some(vec!["htpasswd".to_owned()]));
    assert_eq!(htpasswd.verifiers, Some(vec![]));
    assert_eq!(htpasswd.capabilities, ["files"]);
    // the short macro form: name, version and SDK only
    let testkit = manifest::read(&gatehouse_e2e::plugin_library("gatehouse_plugin_testkit")).unwrap();
    assert_eq!(testkit.name, "gatehouse-plugin-testkit");
    assert_eq!(testkit.authenticators, None);
}

#[test]
fn an_explicit_library_without_a_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stray = dir.path().join("libstray.so");
    build_c_plugin(&stray, &["GH_NO_MANIFEST"]);
    let config = dir.path().join("explicit.toml");
    std::fs::write(
        &config,
        format!(
            "[[authenticators]]\nname = \"X\"\ntype = \"c_static\"\nlibrary = \"{}\"\n",
            stray.display()
        ),
    )
    .unwrap();
    let out = gatehouse_e2e::run_with_stdin(
        Command::new(gatehouse_e2e::bin("gatehoused"))
            .arg("--check-config")
            .arg(&config),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("authenticators[\"X\"].library")
            && err.contains("libstray.so")
            && err.contains("not a gatehouse plugin: no .gatehouse_manifest manifest section"),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifest_that_disagrees_with_its_library_is_refused() {
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        ..Setup::default()
    };
    let d = Daemon::start(setup);
    let mut c = d.client().await;
    let dir = d.dir().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[&str], &str); 2] = [
        (
            "libc_liar.so",
            &["GH_TYPE=\"c_real\"", "GH_MANIFEST_TYPE=\"c_claimed\""],
            "its manifest lists authenticator types [c_claimed] but the library provides [c_real]",
        ),
        (
            // refused from the manifest: the library's code never runs
            "libc_future.so",
            &["GH_MANIFEST_ABI=\"2\""],
            "plugin ABI version 2 is not supported",
        ),
    ];
    for (file, defines, message) in cases {
        build_c_plugin(&dir.join(file), defines);
        let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
        assert_eq!(a.status, 422, "{file}: {:?}", a.value());
        let text = a.error().unwrap().error.details.unwrap()["errors"].to_string();
        assert!(text.contains(file) && text.contains(message), "{file}: {text}");
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    // the liar was loaded (its types are only known then), the future-ABI
    // library never was
    assert_eq!(
        d.logs().matches("c plugin loaded").count(),
        1,
        "a library refused by its manifest was loaded:\n{}",
        d.logs()
    );
    let a = c.post("/v1/reload", &serde_json::json!({})).await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
}
