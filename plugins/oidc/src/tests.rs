#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use base64::Engine as _;
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

/// The resolved settings of `preset` with `extra` (Azure AD with a tenant).
fn resolved(preset: Preset, extra: serde_json::Value) -> Settings {
    let mut base = json!({"key": "c", "secret": "s", "oidc_endpoint": "https://i"});
    if preset == Preset::AzureAd {
        base["tenant_id"] = json!("contoso.example");
    }
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value::<RawSettings>(base)
        .unwrap()
        .resolve(preset)
        .unwrap()
}

fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn claim_mapping_per_preset() {
    let s = resolved;
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

#[test]
fn an_unverified_email_is_neither_the_email_nor_an_attribute_nor_the_username() {
    let s = resolved(Preset::Oidc, json!({}));
    // false, or said some other way than true (fail closed)
    for unverified in [
        json!(false),
        json!("false"),
        json!(0),
        json!(1),
        json!(null),
        json!("yes"),
        json!({"v": true}),
        json!([true]),
    ] {
        let is_false = unverified == json!(false) || unverified == json!("false");
        let id = claims::identity(
            &s,
            &claims(json!({"sub": "u1", "email": "boss@corp.example", "email_verified": unverified})),
        )
        .unwrap();
        assert_eq!(id.email, None, "{unverified}");
        assert_eq!(id.username, "u1", "{unverified}");
        assert!(!id.attributes.contains_key("email"), "{unverified}");
        if is_false {
            assert_eq!(id.attributes["email_verified"], ["false"]);
        }
    }
    // verified, or not said (many providers only send verified addresses)
    for verified in [json!(true), json!("true"), json!(null)] {
        let mut c = json!({"sub": "u1", "email": "boss@corp.example", "email_verified": verified.clone()});
        if verified.is_null() {
            c.as_object_mut().unwrap().remove("email_verified");
        }
        let id = claims::identity(&s, &claims(c)).unwrap();
        assert_eq!(id.email.as_deref(), Some("boss@corp.example"), "{verified}");
        assert_eq!(id.username, "boss@corp.example", "{verified}");
        assert_eq!(id.attributes["email"], ["boss@corp.example"], "{verified}");
    }
}

#[test]
fn attributes_are_the_user_claims_as_text_without_protocol_claims_or_groups() {
    let s = resolved(Preset::Oidc, json!({}));
    let id = claims::identity(
        &s,
        &claims(
            json!({"sub": "u1", "iss": "https://i", "nonce": "n", "_claim_names": {"x": "y"},
                       "groups": ["g"], "mfa": true, "level": 3, "nickname": "", "none": [],
                       "tags": ["a", "", 2, false, null, {"k": "v"}], "department": "ops"}),
        ),
    )
    .unwrap();
    let mut keys: Vec<&str> = id.attributes.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["department", "level", "mfa", "sub", "tags"]);
    assert_eq!(id.attributes["mfa"], ["true"]);
    assert_eq!(id.attributes["level"], ["3"]);
    assert_eq!(id.attributes["tags"], ["a", "2", "false"]);
    assert_eq!(id.attributes["department"], ["ops"]);
    assert_eq!(id.groups, ["g"]);
}

#[test]
fn an_empty_claim_is_a_missing_one() {
    let s = resolved(Preset::Oidc, json!({}));
    assert_eq!(
        claims::identity(&s, &claims(json!({"sub": "", "preferred_username": "p"}))).unwrap_err(),
        OidcError::MissingClaim("sub".into()),
        "an empty subject is no user id"
    );
    let id = claims::identity(
        &s,
        &claims(json!({"sub": "u1", "preferred_username": "", "email": "e@x.example", "given_name": ""})),
    )
    .unwrap();
    assert_eq!(id.username, "e@x.example", "an empty name falls through");
    assert_eq!(id.first_name, None);
    let id = claims::identity(&s, &claims(json!({"sub": 42}))).unwrap();
    assert_eq!(id.uid, "42", "a number is printed");
}

#[test]
fn groups_are_the_nonempty_strings_and_numbers_of_the_claim() {
    let s = resolved(Preset::Oidc, json!({}));
    let groups = |g: serde_json::Value| {
        claims::identity(&s, &claims(json!({"sub": "u1", "groups": g})))
            .unwrap()
            .groups
    };
    assert_eq!(groups(json!("")), Vec::<String>::new());
    assert_eq!(groups(json!("admins")), ["admins"]);
    assert_eq!(
        groups(json!(["", "admins", 42, true, null, ["x"], {"y": 1}])),
        ["admins", "42"]
    );
    assert_eq!(groups(json!(7)), Vec::<String>::new());
}

#[test]
fn azure_groups_overage_is_refused_when_the_groups_are_elsewhere() {
    let azure = resolved(Preset::AzureAd, json!({}));
    let login = |s: &Settings, c: serde_json::Value| claims::identity(s, &claims(c));
    // implicit flow's overage flag (the groups claim left out)
    assert_eq!(
        login(&azure, json!({"sub": "x", "upn": "u", "hasgroups": true}))
            .unwrap_err()
            .code(),
        "groups_overage"
    );
    assert_eq!(
        login(
            &azure,
            json!({"sub": "x", "upn": "u", "_claim_names": {"groups": "src1"}})
        )
        .unwrap_err()
        .code(),
        "groups_overage"
    );
    // no overage: the flag false, or the groups there after all
    assert!(
        login(&azure, json!({"sub": "x", "upn": "u", "hasgroups": false}))
            .unwrap()
            .groups
            .is_empty()
    );
    assert_eq!(
        login(
            &azure,
            json!({"sub": "x", "upn": "u", "hasgroups": true, "groups": ["g"]})
        )
        .unwrap()
        .groups,
        ["g"]
    );
    // hasgroups is about `groups` only, not another groups claim
    let roles = resolved(Preset::AzureAd, json!({"groups_claim": "roles"}));
    assert_eq!(
        login(
            &roles,
            json!({"sub": "x", "upn": "u", "hasgroups": true, "roles": ["r"]})
        )
        .unwrap()
        .groups,
        ["r"]
    );
    assert!(
        login(&roles, json!({"sub": "x", "upn": "u", "hasgroups": true}))
            .unwrap()
            .groups
            .is_empty()
    );
}

#[test]
fn azure_takes_the_upn_from_preferred_username_only_for_its_default_id_key() {
    let azure = resolved(Preset::AzureAd, json!({}));
    let id = claims::identity(
        &azure,
        &claims(json!({"sub": "x", "preferred_username": "p@contoso.example", "name": "P"})),
    )
    .unwrap();
    assert_eq!(
        (id.uid.as_str(), id.username.as_str()),
        ("p@contoso.example", "P")
    );
    assert_eq!(
        claims::identity(&azure, &claims(json!({"sub": "x", "name": "P"}))).unwrap_err(),
        OidcError::MissingClaim("upn".into())
    );
    // another id key is never replaced by a (mutable) name
    let by_oid = resolved(Preset::AzureAd, json!({"id_key": "oid"}));
    assert_eq!(
        claims::identity(
            &by_oid,
            &claims(
                json!({"sub": "x", "upn": "u@contoso.example", "preferred_username": "p@contoso.example"})
            )
        )
        .unwrap_err(),
        OidcError::MissingClaim("oid".into())
    );
    // nor is `upn` outside Azure AD
    let generic = resolved(Preset::Oidc, json!({"id_key": "upn"}));
    assert_eq!(
        claims::identity(
            &generic,
            &claims(json!({"sub": "x", "preferred_username": "p@corp.example"}))
        )
        .unwrap_err(),
        OidcError::MissingClaim("upn".into())
    );
}

#[test]
fn at_hash_uses_the_hash_of_the_signature_algorithm() {
    use jose::Algorithm::*;
    // OIDC Core A.3's access token; the left halves of its SHA-256, SHA-384
    // and SHA-512, base64url (computed with Python's hashlib)
    let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
    let (sha256, sha384, sha512) = (
        "77QmUPtjPfzWtF2AnpK9RQ",
        "jtAeDp945y1dDqU3nkIVGNZP1HjH_MFs",
        "q7nS86GgvvFaZkzALLWqJYaJIKw2wCDAVfCAsm5CrBM",
    );
    for alg in [RS256, PS256, ES256] {
        assert_eq!(at_hash(alg, token).as_deref(), Some(sha256), "{alg:?}");
    }
    for alg in [RS384, PS384, ES384] {
        assert_eq!(at_hash(alg, token).as_deref(), Some(sha384), "{alg:?}");
    }
    // Ed25519 signs with SHA-512
    for alg in [RS512, PS512, EdDSA] {
        assert_eq!(at_hash(alg, token).as_deref(), Some(sha512), "{alg:?}");
    }
    assert_eq!(at_hash(HS256, token), None, "no at_hash for HMAC");
}

#[test]
fn forms_are_encoded_as_application_x_www_form_urlencoded() {
    assert_eq!(
        protocol::form(&[
            ("grant_type", "authorization_code"),
            ("redirect_uri", "https://app.example.test/cb?x=1&y=2"),
            ("code_verifier", "a b+c/d~e*f-g.h_i"),
            ("client secret", "s3c:r%t=é"),
        ]),
        "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb%3Fx%3D1%26y%3D2\
         &code_verifier=a+b%2Bc%2Fd%7Ee*f-g.h_i&client+secret=s3c%3Ar%25t%3D%C3%A9"
    );
    assert_eq!(protocol::form(&[]), "");
    // RFC 6749 §2.3.1: the client id and secret, form-encoded before Basic
    assert_eq!(
        protocol::form_value("my client:id/é+&=%~*-._"),
        "my+client%3Aid%2F%C3%A9%2B%26%3D%25%7E*-._"
    );
    assert_eq!(protocol::form_value("AZaz09"), "AZaz09");
}

#[test]
fn a_code_of_the_longest_length_is_taken() {
    let code = "c".repeat(protocol::MAX_CODE);
    let params = BTreeMap::from([("code".to_owned(), code.clone())]);
    assert_eq!(
        callback(&params).unwrap(),
        Callback::Code {
            code: &code,
            iss: None
        }
    );
}

/// A provider on loopback (plain http, allowed there): `/jwks` serves the
/// test keys, `/token` answers what `answer` holds; the last token request
/// (head and body) is kept in `seen`.
struct Idp {
    url: String,
    answer: Arc<std::sync::Mutex<Vec<u8>>>,
    seen: Arc<std::sync::Mutex<String>>,
}

const CLIENT: &str = "gate house";
const CLIENT_SECRET: &str = "s:e/cret";
/// OIDC Core A.3's access token, whose at_hash halves are above.
const ACCESS_TOKEN: &str = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";

struct SigningKey {
    key: jsonwebtoken::EncodingKey,
    alg: jose::Algorithm,
    kid: &'static str,
}

/// Keys of each family (from openssl): RSA for RS384 and PS512, P-384,
/// Ed25519.
fn signing_keys() -> &'static [SigningKey] {
    use jose::Algorithm::*;
    static K: std::sync::OnceLock<Vec<SigningKey>> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        let pem = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .arg("genpkey")
                .args(args)
                .output()
                .expect("openssl");
            assert!(out.status.success());
            out.stdout
        };
        let rsa = pem(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
        let ec = pem(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]);
        let ed = pem(&["-algorithm", "ED25519"]);
        let rsa_key = || jsonwebtoken::EncodingKey::from_rsa_pem(&rsa).unwrap();
        vec![
            SigningKey {
                key: rsa_key(),
                alg: RS384,
                kid: "rsa-384",
            },
            SigningKey {
                key: rsa_key(),
                alg: PS512,
                kid: "rsa-pss-512",
            },
            SigningKey {
                key: jsonwebtoken::EncodingKey::from_ec_pem(&ec).unwrap(),
                alg: ES384,
                kid: "ec-384",
            },
            SigningKey {
                key: jsonwebtoken::EncodingKey::from_ed_pem(&ed).unwrap(),
                alg: EdDSA,
                kid: "ed25519",
            },
        ]
    })
}

fn serve_idp() -> Idp {
    use std::io::{Read as _, Write as _};
    let keys: Vec<_> = signing_keys()
        .iter()
        .map(|k| {
            let mut j = jsonwebtoken::jwk::Jwk::from_encoding_key(&k.key, k.alg).unwrap();
            j.common.key_id = Some(k.kid.into());
            j
        })
        .collect();
    let jwks = serde_json::to_vec(&jsonwebtoken::jwk::JwkSet { keys }).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let idp = Idp {
        url: format!("http://{}", listener.local_addr().unwrap()),
        answer: Arc::default(),
        seen: Arc::default(),
    };
    let (answer, seen) = (Arc::clone(&idp.answer), Arc::clone(&idp.seen));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // the head, then the body by its Content-Length
            let complete = |r: &[u8]| {
                let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return false;
                };
                let head = String::from_utf8_lossy(&r[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                r.len() >= end + 4 + length
            };
            while !complete(&request) {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request).into_owned();
            let body = match request.split_whitespace().nth(1) {
                Some("/jwks") => jwks.clone(),
                Some("/token") => {
                    *seen.lock().unwrap() = request;
                    answer.lock().unwrap().clone()
                }
                _ => Vec::new(),
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    idp
}

impl Idp {
    fn authenticator(&self) -> Arc<dyn Authenticator> {
        let u = &self.url;
        build(
            Preset::Oidc,
            json!({"authorization_url": format!("{u}/authorize"), "access_token_url": format!("{u}/token"),
                   "id_token_issuer": u, "jwks_uri": format!("{u}/jwks"), "key": CLIENT, "secret": CLIENT_SECRET,
                   "algorithms": ["RS384", "PS512", "ES384", "EdDSA"]}),
        )
        .unwrap()
    }

    /// An ID token for this login signed by `key`, with `at_hash`.
    fn id_token(&self, key: &SigningKey, at_hash: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut h = jsonwebtoken::Header::new(key.alg);
        h.kid = Some(key.kid.into());
        let claims = json!({"iss": self.url, "aud": CLIENT, "sub": "u1", "iat": now, "exp": now + 300,
                            "nonce": "the-nonce", "at_hash": at_hash});
        jsonwebtoken::encode(&h, &claims, &key.key).unwrap()
    }

    /// The token endpoint's next answer: the tokens, then `pad` bytes of
    /// padding in the JSON.
    fn answer(&self, id_token: &str, pad: usize) {
        let mut body = format!(
            r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"Bearer","id_token":"{id_token}","pad":""#
        );
        body.extend(std::iter::repeat_n('x', pad));
        body.push_str("\"}");
        *self.answer.lock().unwrap() = body.into_bytes();
    }

    /// The length of an answer with no padding.
    fn answer_len(&self, id_token: &str) -> usize {
        self.answer(id_token, 0);
        self.answer.lock().unwrap().len()
    }
}

async fn login(a: &Arc<dyn Authenticator>) -> Result<gatehouse_sdk::Identity, PluginError> {
    let params = BTreeMap::from([
        ("code".to_owned(), "the-code".to_owned()),
        ("state".to_owned(), "s".to_owned()),
    ]);
    let flow = json!({"nonce": "the-nonce", "verifier": "the-verifier", "redirect_uri": "https://app.example.test/cb"});
    match a
        .finish(&Context::new("t"), FinishRequest::new(params, Some(flow), None))
        .await?
    {
        LoginStep::Authenticated(id) => Ok(id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_login_checks_at_hash_with_the_hash_of_the_id_tokens_algorithm() {
    let idp = serve_idp();
    let a = idp.authenticator();
    let sha256 = "77QmUPtjPfzWtF2AnpK9RQ";
    for key in signing_keys() {
        let right = match key.alg {
            jose::Algorithm::RS384 | jose::Algorithm::ES384 => "jtAeDp945y1dDqU3nkIVGNZP1HjH_MFs",
            _ => "q7nS86GgvvFaZkzALLWqJYaJIKw2wCDAVfCAsm5CrBM",
        };
        idp.answer(&idp.id_token(key, right), 0);
        let id = login(&a).await.unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(id.uid, "u1");
        // the SHA-256 one (right for RS256) is not this algorithm's
        idp.answer(&idp.id_token(key, sha256), 0);
        let e = login(&a).await.unwrap_err();
        assert!(e.to_string().contains("at_hash_mismatch"), "{:?}: {e}", key.alg);
    }
    // the code went to the token endpoint, with the verifier, the client
    // authenticated with its id and secret form-encoded (RFC 6749 §2.3.1)
    let seen = idp.seen.lock().unwrap().clone();
    assert!(seen.starts_with("POST /token "), "{seen}");
    assert!(
        seen.ends_with(
            "\r\n\r\ngrant_type=authorization_code&code=the-code\
             &redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb&code_verifier=the-verifier"
        ),
        "{seen}"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("gate+house:s%3Ae%2Fcret");
    assert!(
        seen.to_ascii_lowercase().contains(&format!(
            "\r\nauthorization: basic {}\r\n",
            basic.to_ascii_lowercase()
        )),
        "{seen}"
    );
}

#[tokio::test]
async fn a_token_answer_is_read_up_to_64_kib() {
    let idp = serve_idp();
    let a = idp.authenticator();
    let key = &signing_keys()[0];
    let id_token = idp.id_token(key, "jtAeDp945y1dDqU3nkIVGNZP1HjH_MFs");
    let pad = 64 * 1024 - idp.answer_len(&id_token);
    idp.answer(&id_token, pad);
    assert_eq!(login(&a).await.unwrap().uid, "u1", "64 KiB exactly");
    idp.answer(&id_token, pad + 1);
    let e = login(&a).await.unwrap_err();
    assert!(
        matches!(&e, PluginError::Unavailable(m) if m.contains("larger than 65536 bytes")),
        "{e}"
    );
}
