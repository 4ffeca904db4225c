//! The SDK's conformance kit on first-party plugins, in both forms: linked
//! in (the Rust factory) and loaded through the C ABI from the cdylib.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use gatehouse_e2e::plugin_library;
use gatehouse_sdk::abi::host;
use gatehouse_sdk::testing::{AuthenticatorSuite, Loaded, Subject};

fn htpasswd_file(dir: &std::path::Path) -> std::path::PathBuf {
    let out = Command::new("openssl")
        .args(["passwd", "-6", "ann's password"])
        .output()
        .unwrap();
    let file = dir.join("users");
    std::fs::write(
        &file,
        format!("ann:{}\n", String::from_utf8(out.stdout).unwrap().trim()),
    )
    .unwrap();
    file
}

fn suite(subject: &dyn Subject, file: &std::path::Path) {
    AuthenticatorSuite::new(subject, serde_json::json!({ "file": file }))
        .good("ann", "ann's password")
        .bad_settings(serde_json::json!({}))
        .bad_settings(serde_json::json!({ "file": "/nonexistent/users" }))
        .run()
        .unwrap();
}

#[test]
fn htpasswd_linked_in_and_dynamic() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd_file(dir.path());
    suite(&gatehouse_plugin_htpasswd::HtpasswdFactory, &file);
    let library = host::load(&plugin_library("gatehouse_plugin_htpasswd")).unwrap();
    suite(
        &Loaded {
            library,
            type_name: "htpasswd".into(),
        },
        &file,
    );
}
