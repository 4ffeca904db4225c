//! The forward-auth fixture: a daemon with a token verifier (the testkit
//! plugin), the static-object verifier and routes.

use std::process::Command;

use crate::plugins::{install_plugin, plugin_library};
use crate::process::{Daemon, LOCAL_AUTH, Setup, bin};

/// The external storage token of [`forward_auth_daemon`].
pub const STORAGE: &str = "storage-token-0123456789abcdef";

/// The configuration of [`forward_auth_daemon`]: a token verifier (the
/// testkit fixture), the static-object verifier and three routes.
pub fn forward_auth_body() -> String {
    format!(
        r#"{LOCAL_AUTH}
[[verifiers]]
name = "test tokens"
type = "testkit_tokens"
[verifiers.settings]
audience = "gitlab-ai-gateway"
revoked = ["tok-revoked"]
[verifiers.settings.tokens]
tok-good = {{ subject = "alice", audience = ["gitlab-ai-gateway"], scopes = ["duo_chat"] }}
tok-admin = {{ subject = "root", audience = ["gitlab-ai-gateway"], scopes = ["duo_chat"] }}
[verifiers.subjects]
testkit = "Local Database"    # its subjects are local usernames

[[verifiers]]
name = "static-objects"
type = "static_object"
[verifiers.settings]
storage_token_file = "storage-token"

[[routes]]
name = "static objects"
path_regex = '^(.+)(/raw/|/-/archive/)'
verifier = "static-objects"

[[routes]]
name = "admin"
path_prefix = "/ai/admin/"
verifier = "test tokens"
require_superuser = true

[[routes]]
name = "ai endpoints"
path_prefix = "/ai/"
methods = ["GET", "POST"]
verifier = "test tokens"
unit_primitive = "duo_chat"
[routes.headers]
X-Backend = "ai-gateway"
"#
    )
}

/// A daemon with [`forward_auth_body`], the testkit plugin and the storage
/// token file in place.
pub fn forward_auth_daemon() -> Daemon {
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: forward_auth_body(),
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    install_plugin(
        &d.dir().join("plugins"),
        &plugin_library("gatehouse_plugin_testkit"),
    );
    std::fs::write(d.dir().join("storage-token"), format!("{STORAGE}\n")).expect("storage token");
    let mut cmd = Command::new(bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    d.spawn_with(cmd)
}
