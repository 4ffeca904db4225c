//! `[http]`: the settings reach library plugins in process and in an
//! isolated child; plain http is refused without `danger_allow_http` and
//! allowed (with a warning) with it; `[http] ca_file` adds to the system
//! roots (the system roots come from `SSL_CERT_FILE` here).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gatehouse_e2e::{Daemon, Setup, oidc_start_tls, oidc_stop, oidc_token, plugin_library};
use serde_json::{Value, json};

/// Stops the named provider instances when a test ends, however it ends.
struct Instances(Vec<&'static str>);
impl Drop for Instances {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::panic::catch_unwind(|| oidc_stop(n));
        }
    }
}

/// A plain-http server on 127.0.0.1 answering `hello` to everything; the
/// number of requests it has seen.
fn plain_server() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hello", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&hits);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
        }
    });
    (url, hits)
}

fn echo(name: &str, isolation: &str, fetch: Option<&str>) -> String {
    let mut s = format!(
        "[[authenticators]]\nname = \"{name}\"\ntype = \"testkit_http\"\nlibrary = \"{}\"\nisolation = \"{isolation}\"\n",
        plugin_library("gatehouse_plugin_testkit").display()
    );
    if let Some(url) = fetch {
        s.push_str(&format!("[authenticators.settings]\nfetch = \"{url}\"\n"));
    }
    s
}

async fn attributes(d: &Daemon, authenticator: &str) -> Value {
    let a = d
        .client()
        .await
        .post(
            "/v1/login",
            &json!({"username": "ann", "password": "x", "authenticator": authenticator}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{authenticator}: {:?}", a.value());
    a.value()["attributes"].clone()
}

fn one(attrs: &Value, key: &str) -> String {
    attrs[key][0]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {attrs}"))
        .to_owned()
}

#[tokio::test]
async fn library_plugins_in_process_and_isolated_see_the_daemons_http_settings() {
    let (_ca_dir, ca) = throwaway_ca();
    let body = format!(
        "[http]\nca_file = \"{}\"\nproxy = \"http://user:hunter2@127.0.0.1:1\"\nconnect_timeout = \"3s\"\n\
         timeout = \"7s\"\nuser_agent = \"e2e-agent/1\"\n{}{}",
        ca.display(),
        echo("in-process", "in_process", None),
        echo("isolated", "process", None)
    );
    let d = Daemon::start(Setup::with_body(&body));
    for name in ["in-process", "isolated"] {
        let a = attributes(&d, name).await;
        assert_eq!(one(&a, "http_timeout_ms"), "7000", "{name}");
        assert_eq!(one(&a, "http_connect_timeout_ms"), "3000", "{name}");
        assert_eq!(one(&a, "http_user_agent"), "e2e-agent/1", "{name}");
        assert_eq!(one(&a, "http_ca_file"), ca.display().to_string(), "{name}");
        assert_eq!(one(&a, "http_proxy_set"), "true", "{name}");
        assert_eq!(one(&a, "http_danger_allow_http"), "false", "{name}");
    }
    assert!(
        !d.logs().contains("hunter2"),
        "the proxy's password reached the log"
    );
}

#[tokio::test]
async fn plain_http_is_refused_without_the_danger_flag_and_allowed_with_it() {
    let (url, hits) = plain_server();
    let plugins = format!(
        "{}{}",
        echo("in-process", "in_process", Some(&url)),
        echo("isolated", "process", Some(&url))
    );
    let d = Daemon::start(Setup::with_body(&plugins));
    for name in ["in-process", "isolated"] {
        let a = attributes(&d, name).await;
        assert_eq!(one(&a, "http_fetch"), "error:plain_http_refused", "{name}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent");
    assert!(!d.logs().contains("danger_allow_http is on"));

    // Turning the flag on is a change of [http]: the plugins are rebuilt
    // with it, and the daemon warns.
    d.write_config(&Setup::with_body(&format!(
        "[http]\ndanger_allow_http = true\n{plugins}"
    )));
    let r = d.client().await.post("/v1/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.value());
    for name in ["in-process", "isolated"] {
        let a = attributes(&d, name).await;
        assert_eq!(one(&a, "http_danger_allow_http"), "true", "{name}");
        assert_eq!(one(&a, "http_fetch"), "ok:hello", "{name}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(
        d.logs().contains("danger_allow_http is on"),
        "the danger flag is warned about: {}",
        d.logs()
    );
}

/// A throwaway CA certificate (not trusted by anything here), in a
/// directory that lives as long as the first value.
fn throwaway_ca() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pem = gatehouse_e2e::throwaway_ca(dir.path(), "unrelated-ca");
    (dir, pem)
}

#[tokio::test]
async fn http_ca_file_adds_to_the_system_roots() {
    let _i = Instances(vec!["http-ca-a", "http-ca-b"]);
    // A's CA plays the system roots (SSL_CERT_FILE); B's is [http] ca_file.
    let (a, ca_a) = oidc_start_tls("http-ca-a", 19131);
    let (b, ca_b) = oidc_start_tls("http-ca-b", 19132);
    let verifier = format!(
        "[[verifiers]]\nname = \"jwt\"\ntype = \"jwt\"\n[verifiers.settings]\naudience = \"gitlab-ai-gateway\"\n\
         issuers = [\"{a}\", \"{b}\"]\nfetch_timeout = \"3s\"\n"
    );
    let setup = |http: &str| Setup {
        env: vec![("SSL_CERT_FILE".into(), ca_a.display().to_string())],
        ..Setup::with_body(&format!("{http}{verifier}"))
    };
    let ask = |token: &str| json!({"token": token, "unit_primitive": "duo_chat"});
    let ta = oidc_token("http-ca-a", &["--scopes", "duo_chat"]);
    let tb = oidc_token("http-ca-b", &["--scopes", "duo_chat"]);

    let d = Daemon::start(setup(&format!("[http]\nca_file = \"{}\"\n", ca_b.display())));
    let mut c = d.client().await;
    let r = c.post("/v1/tokens/verify", &ask(&ta)).await.unwrap();
    assert_eq!(r.status, 200, "the system roots still apply: {:?}", r.value());
    let r = c.post("/v1/tokens/verify", &ask(&tb)).await.unwrap();
    assert_eq!(r.status, 200, "[http] ca_file is trusted: {:?}", r.value());
    drop(d);

    // control: without [http] ca_file, B's certificate is not trusted
    let d = Daemon::start(setup(""));
    let mut c = d.client().await;
    assert_eq!(c.post("/v1/tokens/verify", &ask(&ta)).await.unwrap().status, 200);
    let r = c.post("/v1/tokens/verify", &ask(&tb)).await.unwrap();
    assert_eq!(r.status, 503, "{:?}", r.value());
    // logged by the verifier's background refresher, maybe after the answer
    assert!(d.wait_log("UnknownIssuer").await, "{}", d.logs());
}
