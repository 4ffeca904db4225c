//! A plugin's settings error never repeats the value it was given: it
//! reaches the reload answer, `/v1/health` (which any client reads) and
//! the log, and the value may be a password.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{Setup, daemon_with_plugins};
use serde_json::json;

fn setup(settings: &str) -> Setup {
    Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: format!(
            "[[authenticators]]\nname = \"Directory\"\ntype = \"testkit_users\"\n[authenticators.settings]\n{settings}\n"
        ),
        ..Setup::default()
    }
}

#[tokio::test]
async fn password_shaped_values_are_never_echoed() {
    let d = daemon_with_plugins(
        setup("password = \"a good password\""),
        &["gatehouse_plugin_testkit"],
    );
    let mut c = d.client().await;
    let cases = [
        // a secret typed as a number (unquoted in TOML)
        ("password = 8675309123", "8675309123"),
        // a password pasted into the wrong, non-secret setting
        (
            "password = \"x\"\ncase_insensitive = \"S3cret-Passw0rd!\"",
            "S3cret-Passw0rd!",
        ),
        // a password pasted as a setting's name's value of the wrong shape
        ("password = \"x\"\nusers = \"hunter2-hunter2\"", "hunter2-hunter2"),
    ];
    for (settings, secret) in cases {
        d.replace_config(&setup(settings));
        let a = c.post("/v1/reload", &json!({})).await.unwrap();
        assert_eq!(a.status, 422, "{settings}: {:?}", a.value());
        let answer = String::from_utf8_lossy(&a.body).into_owned();
        assert!(
            answer.contains("settings"),
            "the error names the settings: {answer}"
        );
        assert!(
            !answer.contains(secret),
            "reload answer echoes {secret:?}: {answer}"
        );
        let health = c.get("/v1/health").await.unwrap();
        let health = String::from_utf8_lossy(&health.body).into_owned();
        assert!(health.contains("last_reload_error"), "{health}");
        assert!(!health.contains(secret), "health echoes {secret:?}: {health}");
    }
    // the file watcher's reloads failed too; none of it reached the log
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = d.logs();
    assert!(
        logs.contains("invalid type"),
        "the log explains the error: {logs}"
    );
    for (_, secret) in cases {
        assert!(!logs.contains(secret), "the log echoes {secret:?}");
    }
}
