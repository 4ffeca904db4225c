//! The SDK's conformance kit on the `tacacs` plugin, linked in and as the
//! built library, against the project's TACACS+ test server.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{TacacsServer, plugin_library};
use gatehouse_sdk::testing::{AuthenticatorSuite, Loaded};

fn settings(port: u16, protocol: &str) -> serde_json::Value {
    serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "secret": "conformance-key",
        "auth_protocol": protocol,
    })
}

fn suite<'a>(
    subject: &'a dyn gatehouse_sdk::testing::Subject,
    port: u16,
    protocol: &str,
) -> AuthenticatorSuite<'a> {
    AuthenticatorSuite::new(subject, settings(port, protocol))
        .good("alice", "alicepass")
        .secret("conformance-key")
        .bad_settings(serde_json::json!({"host": "127.0.0.1"}))
        .bad_settings(serde_json::json!({"host": "127.0.0.1", "secret": "conformance-key", "port": 0}))
}

#[test]
fn tacacs_passes_the_conformance_kit_linked_in() {
    let srv = TacacsServer::start(19257, "conformance-key", &[]);
    for protocol in ["ascii", "pap"] {
        suite(&gatehouse_plugin_tacacs::TacacsFactory, srv.port, protocol)
            .run()
            .unwrap();
    }
}

#[test]
fn tacacs_passes_the_conformance_kit_as_a_library() {
    let srv = TacacsServer::start(19258, "conformance-key", &[]);
    let lib = Loaded::open(plugin_library("gatehouse_plugin_tacacs"), "tacacs").unwrap();
    for protocol in ["ascii", "pap"] {
        suite(&lib, srv.port, protocol).run().unwrap();
    }
}
