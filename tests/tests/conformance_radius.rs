//! The SDK's conformance kit on the linked-in RADIUS authenticator, against
//! the test FreeRADIUS.

#![allow(clippy::unwrap_used)]

use gatehouse_sdk::testing::AuthenticatorSuite;

#[test]
fn radius_passes_the_conformance_kit() {
    let p = gatehouse_e2e::radius_start("e2e", 19200);
    let settings = serde_json::json!({"server": p.addr, "secret": p.secret});
    AuthenticatorSuite::new(&gatehouse_plugin_radius::RadiusFactory, settings)
        .good("alice", "alicepass")
        .secret(&p.secret)
        .bad_settings(serde_json::json!({"server": "127.0.0.1"}))
        .bad_settings(serde_json::json!({"server": "h:0", "secret": "s"}))
        .bad_settings(
            serde_json::json!({"server": ["a", "b"], "secret": "s", "timeout": "10s", "retries": 1}),
        )
        .run()
        .unwrap();
}
