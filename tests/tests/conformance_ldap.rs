//! The SDK's conformance kit on the linked-in LDAP authenticator, against
//! the test slapd.

#![allow(clippy::unwrap_used)]

use gatehouse_sdk::testing::AuthenticatorSuite;

#[test]
fn ldap_passes_the_conformance_kit() {
    let p = gatehouse_e2e::ldap_peer();
    let settings = serde_json::json!({
        "server_uri": p.uri,
        "bind_dn": "cn=reader,ou=services,dc=example,dc=test",
        "bind_password": "readerpass",
        "user_search": ["ou=users,dc=example,dc=test", "SCOPE_SUBTREE", "(uid=%(user)s)"],
    });
    AuthenticatorSuite::new(&gatehouse_plugin_ldap::LdapFactory, settings)
        .good("alice", "alicepass")
        .secret("readerpass")
        .bad_settings(serde_json::json!({"server_uri": "ldap://h"}))
        .bad_settings(serde_json::json!({"server_uri": "nope", "user_dn_template": "uid=%(user)s"}))
        .run()
        .unwrap();
}
