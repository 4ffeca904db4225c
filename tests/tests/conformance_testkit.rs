//! The SDK's conformance kit on first-party plugins, in both forms: linked
//! in (the Rust factory) and loaded through the C ABI from the cdylib.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::plugin_library;
use gatehouse_sdk::abi::host;
use gatehouse_sdk::testing::{
    AuthenticatorSuite, Loaded, RedirectSuite, Subject, VerifierSubject, VerifierSuite,
};

#[test]
fn testkit_users_linked_in_and_dynamic() {
    let settings = serde_json::json!({"password": "the shared secret", "users": {"pat": {"groups": ["g"]}}});
    let run = |subject: &dyn Subject| {
        AuthenticatorSuite::new(subject, settings.clone())
            .good("pat", "the shared secret")
            .secret("the shared secret")
            .bad_settings(serde_json::json!({"password": ""}))
            .run()
            .unwrap();
    };
    let factory = gatehouse_sdk::Plugin::authenticators(&gatehouse_plugin_testkit::Testkit)
        .into_iter()
        .find(|f| f.type_name() == "testkit_users")
        .unwrap();
    run(&FactoryRef(factory.as_ref()));
    let library = host::load(&plugin_library("gatehouse_plugin_testkit")).unwrap();
    run(&Loaded {
        library,
        type_name: "testkit_users".into(),
    });
}

#[test]
fn the_kit_catches_a_broken_plugin() {
    // testkit_accept accepts any password: the suite must fail it.
    let library = host::load(&plugin_library("gatehouse_plugin_testkit")).unwrap();
    let result = AuthenticatorSuite::new(
        &Loaded {
            library,
            type_name: "testkit_accept".into(),
        },
        serde_json::json!({}),
    )
    .good("anyone", "anything")
    .run();
    let err = result.unwrap_err();
    assert!(err.contains("wrong password"), "{err}");
}

#[test]
fn testkit_tokens_verifier_linked_in_and_dynamic() {
    let settings = serde_json::json!({
        "audience": "gitlab-ai-gateway",
        "revoked": ["tok-revoked"],
        "tokens": {
            "tok-good": {"subject": "alice", "audience": ["gitlab-ai-gateway"], "scopes": ["duo_chat"]},
            "tok-elsewhere": {"subject": "bob", "audience": ["elsewhere"], "scopes": []}
        }
    });
    let run = |subject: &dyn VerifierSubject| {
        VerifierSuite::new(subject, settings.clone())
            .good("tok-good")
            .refused("tok-revoked")
            .refused("tok-elsewhere")
            .run()
            .unwrap();
    };
    let factory = gatehouse_sdk::Plugin::verifiers(&gatehouse_plugin_testkit::Testkit)
        .into_iter()
        .find(|f| f.type_name() == "testkit_tokens")
        .unwrap();
    run(&VerifierFactoryRef(factory.as_ref()));
    // from outside: the built library, opened by path
    run(&Loaded::open(plugin_library("gatehouse_plugin_testkit"), "testkit_tokens").unwrap());
}

#[test]
fn the_verifier_kit_catches_a_verifier_that_accepts_garbage() {
    // testkit_tokens with a token named like garbage: the suite's garbage
    // check must fail it.
    let library = Loaded::open(plugin_library("gatehouse_plugin_testkit"), "testkit_tokens").unwrap();
    let err = VerifierSuite::new(
        &library,
        serde_json::json!({"tokens": {"not-a-token": {"subject": "eve", "audience": [], "scopes": []}}}),
    )
    .run()
    .unwrap_err();
    assert!(err.contains("garbage is refused"), "{err}");
}

struct VerifierFactoryRef<'a>(&'a dyn gatehouse_sdk::VerifierFactory);

impl VerifierSubject for VerifierFactoryRef<'_> {
    fn build(
        &self,
        settings: serde_json::Value,
    ) -> Result<std::sync::Arc<dyn gatehouse_sdk::Verifier>, gatehouse_sdk::PluginError> {
        self.0
            .build(gatehouse_sdk::PluginConfig::new("conformance", settings))
    }
    fn schema(&self) -> serde_json::Value {
        self.0.config_schema()
    }
}

struct FactoryRef<'a>(&'a dyn gatehouse_sdk::AuthenticatorFactory);

impl Subject for FactoryRef<'_> {
    fn build(
        &self,
        settings: serde_json::Value,
    ) -> Result<std::sync::Arc<dyn gatehouse_sdk::Authenticator>, gatehouse_sdk::PluginError> {
        self.0
            .build(gatehouse_sdk::PluginConfig::new("conformance", settings))
    }
    fn schema(&self) -> serde_json::Value {
        self.0.config_schema()
    }
    fn flow(&self) -> gatehouse_sdk::Flow {
        self.0.flow()
    }
}

#[test]
fn testkit_redirect_linked_in_and_dynamic() {
    let settings = serde_json::json!({
        "idp_url": "https://idp.example.test/authorize",
        "users": {"alice": {"email": "alice@example.test"}}
    });
    // The simulated provider: it signs in alice and echoes the start's
    // nonce and state.
    let provider = |r: &gatehouse_sdk::Redirect| {
        let query = r.url.split_once('?').ok_or("no query")?.1;
        let get = |k: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(&format!("{k}=")))
                .map(str::to_owned)
                .ok_or(format!("no {k}"))
        };
        Ok([
            ("state".to_owned(), get("state")?),
            ("code".to_owned(), format!("alice.{}", get("nonce")?)),
        ]
        .into_iter()
        .collect())
    };
    let run = |subject: &dyn Subject| {
        RedirectSuite::new(
            subject,
            settings.clone(),
            Some("https://app.example.test/callback/x"),
        )
        .good_callback(provider)
        .bad_settings(serde_json::json!({"idp_url": "http://plain.example.test/"}))
        .run()
        .unwrap();
    };
    let factory = gatehouse_sdk::Plugin::authenticators(&gatehouse_plugin_testkit::Testkit)
        .into_iter()
        .find(|f| f.type_name() == "testkit_redirect")
        .unwrap();
    run(&FactoryRef(factory.as_ref()));
    let library = host::load(&plugin_library("gatehouse_plugin_testkit")).unwrap();
    run(&Loaded {
        library,
        type_name: "testkit_redirect".into(),
    });
}
