#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use gatehouse_sdk::{AuthenticatorFactory, PluginConfig, PluginError, StartRequest};
use serde_json::json;

use super::*;
use crate::protocol::{Callback, at_hash, callback, pkce_challenge, token_response};

fn build(preset: Preset, settings: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
    OidcFactory(preset).build(PluginConfig::new("t", settings))
}

fn misconfigured(preset: Preset, settings: serde_json::Value) -> String {
    match build(preset, settings) {
        Err(PluginError::Misconfigured(m)) => m,
        Err(e) => panic!("not a settings error: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

async fn start_url(preset: Preset, settings: serde_json::Value) -> String {
    let a = build(preset, settings).unwrap();
    let r = a
        .start(
            &Context::new("t"),
            StartRequest::new("the-state", Some("https://app.example.test/cb".into())),
        )
        .await
        .unwrap();
    assert_eq!(r.flow_state["redirect_uri"], "https://app.example.test/cb");
    assert!(r.flow_state["verifier"].as_str().unwrap().len() >= 43);
    r.url
}

fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

#[test]
fn settings_are_checked_and_never_echo_the_secret() {
    let base = json!({"oidc_endpoint": "https://idp.example.test", "key": "c", "secret": "s3cr3t-value"});
    assert!(build(Preset::Oidc, base.clone()).is_ok());
    let with = |k: &str, v: serde_json::Value| {
        let mut s = base.clone();
        s[k] = v;
        s
    };
    assert!(misconfigured(Preset::Oidc, with("key", json!(""))).contains("key"));
    assert!(
        misconfigured(Preset::Oidc, with("response_type", json!("id_token token"))).contains("response_type")
    );
    assert!(
        misconfigured(
            Preset::Oidc,
            with("token_endpoint_auth_method", json!("private_key_jwt"))
        )
        .contains("token_endpoint_auth_method")
    );
    assert!(
        misconfigured(Preset::Oidc, with("access_token_method", json!("PUT")))
            .contains("access_token_method")
    );
    assert!(misconfigured(Preset::Oidc, with("oidc_endpoint", json!("ftp://x"))).contains("oidc_endpoint"));
    assert!(misconfigured(Preset::Oidc, with("algorithms", json!(["HS256"]))).contains("HS256"));
    assert!(misconfigured(Preset::Oidc, with("public_key", json!("not a key"))).contains("public_key"));
    assert!(
        misconfigured(Preset::Oidc, with("hosted_domain", json!("example.test"))).contains("google_oauth2")
    );
    let unknown = misconfigured(Preset::Oidc, with("secret_typo", json!("s3cr3t-value")));
    assert!(
        unknown.contains("secret_typo") && !unknown.contains("s3cr3t-value"),
        "{unknown}"
    );
    // a confidential client needs its secret; a public one does not
    let mut public = base.clone();
    public.as_object_mut().unwrap().remove("secret");
    assert!(misconfigured(Preset::Oidc, public.clone()).contains("secret"));
    public["token_endpoint_auth_method"] = json!("none");
    assert!(build(Preset::Oidc, public).is_ok());
    // explicit endpoints need the issuer and keys
    let explicit = json!({"key": "c", "secret": "s", "authorization_url": "https://i/a", "access_token_url": "https://i/t"});
    assert!(misconfigured(Preset::Oidc, explicit.clone()).contains("id_token_issuer"));
    let mut explicit = explicit;
    explicit["id_token_issuer"] = json!("https://i");
    assert!(misconfigured(Preset::Oidc, explicit.clone()).contains("jwks_uri"));
    explicit["JWKS_URI"] = json!("https://i/jwks");
    assert!(build(Preset::Oidc, explicit).is_ok(), "uppercase names are taken");
}

#[tokio::test]
async fn start_sends_state_nonce_pkce_and_the_openid_scope() {
    let url = start_url(
        Preset::Oidc,
        json!({"authorization_url": "https://idp.example.test/authorize?tenant=x", "access_token_url": "https://idp.example.test/token",
               "id_token_issuer": "https://idp.example.test", "jwks_uri": "https://idp.example.test/jwks",
               "key": "client one", "secret": "s", "scope": "email profile"}),
    )
    .await;
    assert!(
        url.starts_with("https://idp.example.test/authorize?tenant=x&"),
        "{url}"
    );
    let q = query(&url);
    assert_eq!(q["state"], "the-state");
    assert_eq!(q["client_id"], "client one");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "openid email profile", "openid is always asked for");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["nonce"].len() >= 32);
    // two starts: two nonces, two verifiers
    let again = query(
        &start_url(
            Preset::Oidc,
            json!({"authorization_url": "https://idp.example.test/authorize", "access_token_url": "https://idp.example.test/token",
                   "id_token_issuer": "https://idp.example.test", "jwks_uri": "https://idp.example.test/jwks", "key": "c", "secret": "s"}),
        )
        .await,
    );
    assert_ne!(again["nonce"], q["nonce"]);
    assert_ne!(again["code_challenge"], q["code_challenge"]);
}

#[tokio::test]
async fn presets_build_their_providers_endpoints() {
    let google = start_url(
        Preset::Google,
        json!({"key": "g", "secret": "s", "hd": "example.test"}),
    )
    .await;
    assert!(
        google.starts_with("https://accounts.google.com/o/oauth2/v2/auth?"),
        "{google}"
    );
    assert_eq!(query(&google)["hd"], "example.test");
    let azure = start_url(
        Preset::AzureAd,
        json!({"key": "a", "secret": "s", "TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47"}),
    )
    .await;
    assert!(
        azure.starts_with(
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/authorize?"
        ),
        "{azure}"
    );
    assert!(
        misconfigured(
            Preset::AzureAd,
            json!({"key": "a", "secret": "s", "tenant_id": "common"})
        )
        .contains("tenant_id")
    );
    assert!(misconfigured(Preset::AzureAd, json!({"key": "a", "secret": "s"})).contains("tenant_id"));
    // Keycloak: the realm follows from the authorization URL
    let a = OidcFactory(Preset::Keycloak)
        .build(PluginConfig::new(
            "k",
            json!({"authorization_url": "https://kc.example.test/realms/corp/protocol/openid-connect/auth",
                   "access_token_url": "https://kc.example.test/realms/corp/protocol/openid-connect/token",
                   "jwks_uri": "https://kc.example.test/realms/corp/protocol/openid-connect/certs",
                   "key": "k", "secret": "s"}),
        ))
        .unwrap();
    let url = a
        .start(
            &Context::new("k"),
            StartRequest::new("s1", Some("https://app/cb".into())),
        )
        .await
        .unwrap()
        .url;
    assert!(url.starts_with("https://kc.example.test/realms/corp/protocol/openid-connect/auth?"));
}

#[test]
fn callback_parameters() {
    let p = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let ok = p(&[("code", "abc"), ("state", "s"), ("iss", "https://i")]);
    assert_eq!(
        callback(&ok).unwrap(),
        Callback::Code {
            code: "abc",
            iss: Some("https://i")
        }
    );
    let err = p(&[
        ("error", "access_denied\u{1b}[31m"),
        ("error_description", "no\nthanks"),
        ("code", "abc"),
    ]);
    match callback(&err).unwrap() {
        Callback::Error(OidcError::Provider { error, description }) => {
            assert_eq!(error, "access_denied[31m", "control characters are dropped");
            assert_eq!(description.as_deref(), Some("nothanks"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        callback(&p(&[("state", "s")])),
        Err(OidcError::BadCallback(_))
    ));
    let long = "c".repeat(protocol::MAX_CODE + 1);
    assert!(matches!(
        callback(&p(&[("code", &long)])),
        Err(OidcError::BadCallback(_))
    ));
}

#[test]
fn token_responses() {
    let ok = token_response(
        200,
        br#"{"access_token":"a","token_type":"bearer","id_token":"x.y.z"}"#,
    )
    .unwrap();
    assert_eq!((ok.access_token.as_str(), ok.id_token.as_str()), ("a", "x.y.z"));
    match token_response(
        400,
        br#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
    ) {
        Err(OidcError::TokenEndpoint { error, description }) => {
            assert_eq!(error, "invalid_grant");
            assert_eq!(description.as_deref(), Some("grant request is invalid"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        token_response(502, b"<html>"),
        Err(OidcError::Unavailable(_))
    ));
    assert!(
        matches!(token_response(200, br#"{"access_token":"a","token_type":"Bearer"}"#), Err(OidcError::Unavailable(m)) if m.contains("id_token"))
    );
    assert!(matches!(
        token_response(200, br#"{"access_token":"a","token_type":"mac","id_token":"t"}"#),
        Err(OidcError::Unavailable(_))
    ));
    assert!(matches!(
        token_response(200, b"[]"),
        Err(OidcError::Unavailable(_))
    ));
}

#[test]
fn pkce_and_at_hash_match_the_rfc_examples() {
    // RFC 7636 appendix B
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    // OIDC Core A.3's access token and at_hash (RS256)
    assert_eq!(
        at_hash(
            jose::Algorithm::RS256,
            "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        )
        .as_deref(),
        Some("77QmUPtjPfzWtF2AnpK9RQ")
    );
}

#[test]
fn errors_map_to_what_the_daemon_answers_without_secrets() {
    let e: PluginError = OidcError::Provider {
        error: "access_denied".into(),
        description: None,
    }
    .into();
    assert!(
        matches!(&e, PluginError::Denied(m) if m.starts_with("provider_error") && m.contains("access_denied"))
    );
    let e: PluginError = OidcError::IdToken {
        reason: TokenRejection::Expired,
        detail: "old".into(),
    }
    .into();
    assert!(matches!(
        e,
        PluginError::InvalidToken {
            reason: TokenRejection::Expired,
            ..
        }
    ));
    assert!(matches!(
        PluginError::from(OidcError::Unavailable("x".into())),
        PluginError::Unavailable(_)
    ));
    assert!(matches!(
        PluginError::from(OidcError::BadCallback("x".into())),
        PluginError::BadRequest(_)
    ));
    let overage = OidcError::GroupsOverage {
        claim: "groups".into(),
    }
    .to_string();
    assert!(overage.contains("groups_overage") && overage.contains("Groups assigned to the application"));
}

#[test]
fn claim_mapping_per_preset() {
    let s = |preset: Preset, extra: serde_json::Value| {
        let mut base = json!({"key": "c", "secret": "s", "oidc_endpoint": "https://i", "tenant_id": null});
        if preset == Preset::AzureAd {
            base["tenant_id"] = json!("contoso.example");
        } else {
            base.as_object_mut().unwrap().remove("tenant_id");
        }
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value::<RawSettings>(base)
            .unwrap()
            .resolve(preset)
            .unwrap()
    };
    let claims = |v: serde_json::Value| v.as_object().unwrap().clone();
    let azure = claims::identity(
        &s(Preset::AzureAd, json!({})),
        &claims(
            json!({"sub": "x", "upn": "a@contoso.example", "name": "Alice A", "given_name": "Alice",
                       "family_name": "A", "email": "a@contoso.example", "groups": ["g1", "g2"]}),
        ),
    )
    .unwrap();
    assert_eq!(
        (azure.uid.as_str(), azure.username.as_str()),
        ("a@contoso.example", "Alice A")
    );
    assert_eq!(azure.groups, ["g1", "g2"]);
    let overage = claims::identity(
        &s(Preset::AzureAd, json!({"groups_claim": "roles_and_groups"})),
        &claims(json!({"sub": "x", "upn": "u", "_claim_names": {"roles_and_groups": "src1"}})),
    );
    assert_eq!(overage.unwrap_err().code(), "groups_overage");
    let google = s(Preset::Google, json!({"hosted_domain": "Example.TEST"}));
    let ok = claims::identity(
        &google,
        &claims(json!({"sub": "1", "email": "bo@example.test", "hd": "example.test"})),
    )
    .unwrap();
    assert_eq!(ok.username, "bo");
    for bad in [
        json!({"sub": "1", "email": "bo@x.test", "hd": "x.test"}),
        json!({"sub": "1", "email": "bo@gmail.com"}),
    ] {
        assert_eq!(
            claims::identity(&google, &claims(bad)).unwrap_err().code(),
            "hosted_domain_mismatch"
        );
    }
    let generic = s(Preset::Oidc, json!({"id_key": "oid", "username_key": "login"}));
    assert_eq!(
        claims::identity(&generic, &claims(json!({"sub": "1"}))).unwrap_err(),
        OidcError::MissingClaim("oid".into())
    );
    let id = claims::identity(
        &generic,
        &claims(json!({"oid": 7, "login": "lo", "groups": "one", "nonce": "n"})),
    )
    .unwrap();
    assert_eq!((id.uid.as_str(), id.username.as_str()), ("7", "lo"));
    assert_eq!(id.groups, ["one"]);
    assert!(
        !id.attributes.contains_key("nonce"),
        "protocol claims are not attributes"
    );
    // userinfo adds, never replaces sub or protocol claims
    let merged = claims::merge(
        claims(json!({"sub": "1", "iss": "i", "email": "a@x"})),
        claims(json!({"sub": "2", "iss": "evil", "email": "b@x", "locale": "de"})),
    );
    assert_eq!(merged["sub"], "1");
    assert_eq!(merged["iss"], "i");
    assert_eq!(merged["email"], "b@x");
    assert_eq!(merged["locale"], "de");
}
