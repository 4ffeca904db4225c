//! The six `github*` authenticators end to end: the real daemon, the
//! browser played by the test, GitHub played by the HTTPS stand-in of
//! `gatehouse_e2e::github` (trusted through `[http] ca_file`).
//! start → stand-in's authorize page (302 back with code and state) →
//! finish → code exchange and REST calls.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use gatehouse_e2e::github::{Fault, GhUser, StandIn};
use gatehouse_e2e::{Answer, Client, Daemon, Setup};
use gatehouse_sdk::http::reqwest::Url;
use serde_json::{Value, json};

const CLIENT_ID: &str = "Iv1.e2e-client";
const CLIENT_SECRET: &str = "e2e-client-secret-5d1c";
const CALLBACKS: &str = "https://app.example.test/auth/callback/";

/// The users both stand-ins know.
fn people(gh: &StandIn) {
    gh.app(CLIENT_ID, CLIENT_SECRET, CALLBACKS);
    let mut alice = GhUser::new(1001, "alice")
        .member_of("acme", false)
        .in_team(42, "acme", "devs");
    alice.name = Some("Alice Liddell".into());
    alice.public_email = Some("alice@example.test".into());
    gh.user(alice);
    let mut bob = GhUser::new(1002, "bob")
        .member_of("umbrella", true)
        .in_team(77, "umbrella", "ops");
    bob.emails = vec![
        ("bob-old@example.test".into(), false, true),
        ("bob@example.test".into(), true, true),
    ];
    gh.user(bob);
    gh.user(
        GhUser::new(1003, "carol")
            .member_of("acme", false)
            .in_team(43, "acme", "qa"),
    );
    let mut erin = GhUser::new(1005, "erin");
    erin.emails = vec![("erin@example.test".into(), true, false)];
    erin.orgs.push(("acme".into(), "pending".into(), false));
    gh.user(erin);
}

/// One `[[authenticators]]` entry against a stand-in.
fn authenticator(name: &str, ty: &str, gh: &StandIn, extra: &str) -> String {
    let api = if ty.starts_with("github_enterprise") {
        format!("{}/api/v3", gh.base)
    } else {
        gh.base.clone()
    };
    format!(
        "[[authenticators]]\nname = \"{name}\"\ntype = \"{ty}\"\n[authenticators.settings]\nkey = \"{CLIENT_ID}\"\n\
         secret = \"{CLIENT_SECRET}\"\nurl = \"{}\"\napi_url = \"{api}\"\n{extra}\n",
        gh.base
    )
}

fn setup(gh: &StandIn, body: &str, env: Vec<(String, String)>) -> Setup {
    setup_with_ca(&gh.ca, body, env)
}

fn setup_with_ca(ca: &std::path::Path, body: &str, env: Vec<(String, String)>) -> Setup {
    Setup {
        daemon_extra: "public_url = \"https://app.example.test/auth\"".into(),
        env,
        ..Setup::with_body(&format!(
            "[lockout]\nmax_failures = 100\n\n[http]\nca_file = \"{}\"\ntimeout = \"1500ms\"\n\n{body}",
            ca.display()
        ))
    }
}

/// Starts a login: (state, the authorize URL).
async fn start(c: &mut Client, authenticator: &str) -> (String, String) {
    let a = c
        .post("/v1/login/start", &json!({"authenticator": authenticator}))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{authenticator}: {:?}", a.value());
    let v = a.value();
    (
        v["state"].as_str().unwrap().to_owned(),
        v["redirect_url"].as_str().unwrap().to_owned(),
    )
}

/// The browser at GitHub: signed in as `user`, sent back to the callback.
async fn callback(gh: &StandIn, user: &str, url: &str) -> BTreeMap<String, String> {
    gh.sign_in(user);
    let location = gh.browse(url).await.unwrap();
    assert!(location.starts_with(CALLBACKS), "{location}");
    Url::parse(&location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn finish(c: &mut Client, authenticator: &str, params: &BTreeMap<String, String>) -> Answer {
    c.post(
        "/v1/login/finish",
        &json!({"authenticator": authenticator, "params": params}),
    )
    .await
    .unwrap()
}

/// A whole login of `user` at `authenticator`.
async fn login(c: &mut Client, gh: &StandIn, authenticator: &str, user: &str) -> Answer {
    let (_, url) = start(c, authenticator).await;
    let params = callback(gh, user, &url).await;
    finish(c, authenticator, &params).await
}

fn groups(v: &Value) -> Vec<String> {
    v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_owned())
        .collect()
}

fn denied(a: &Answer) -> String {
    assert_eq!(
        (a.status, a.code().as_deref()),
        (403, Some("login_denied")),
        "{:?}",
        a.value()
    );
    a.value()["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_type_admits_its_members_and_denies_outsiders_enterprise_on_its_own_urls() {
    let com = StandIn::start(19350);
    let ent = StandIn::start(19351);
    people(&com);
    people(&ent);
    let body = [
        authenticator("gh", "github", &com, ""),
        authenticator("gh-org", "github_org", &com, "org_name = \"acme\""),
        authenticator("gh-team", "github_team", &com, "team_id = 42"),
        authenticator("ghe", "github_enterprise", &ent, ""),
        authenticator("ghe-org", "github_enterprise_org", &ent, "org_name = \"acme\""),
        authenticator("ghe-team", "github_enterprise_team", &ent, "team_id = \"42\""),
    ]
    .concat();
    // [http] ca_file holds both stand-ins' CAs
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("cas.pem");
    let pem = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    std::fs::write(&bundle, format!("{}{}", pem(&com.ca), pem(&ent.ca))).unwrap();
    let d = Daemon::start(setup_with_ca(&bundle, &body, vec![]));
    let mut c = d.client().await;
    for (name, gh, other, outsider) in [
        ("gh", &com, &ent, None),
        ("gh-org", &com, &ent, Some(("bob", "acme"))),
        ("gh-team", &com, &ent, Some(("carol", "42"))),
        ("ghe", &ent, &com, None),
        ("ghe-org", &ent, &com, Some(("bob", "acme"))),
        ("ghe-team", &ent, &com, Some(("carol", "42"))),
    ] {
        gh.clear_seen();
        other.clear_seen();
        let (_, url) = start(&mut c, name).await;
        assert!(
            url.starts_with(&format!("{}/login/oauth/authorize?client_id=", gh.base)),
            "{name}: {url}"
        );
        assert!(url.contains("scope=read%3Aorg"), "{name}: {url}");
        assert!(
            url.contains("redirect_uri=https%3A%2F%2Fapp.example.test%2Fauth%2Fcallback%2F"),
            "{name}: {url}"
        );
        let a = finish(&mut c, name, &callback(gh, "alice", &url).await).await;
        assert_eq!(a.status, 200, "{name}: {:?}", a.value());
        let v = a.value();
        // The first login makes user alice; the same name from another
        // authenticator is a different identity (the daemon's collision rule).
        let username = v["user"]["username"].as_str().unwrap();
        if name == "gh" {
            assert_eq!(username, "alice");
        } else {
            assert!(username.starts_with("1001-"), "{name}: {username}");
        }
        assert_eq!(
            v["authenticator_uid"], "1001",
            "{name}: the numeric id is the uid"
        );
        assert_eq!(v["user"]["email"], "alice@example.test");
        assert_eq!(v["user"]["first_name"], "Alice");
        assert_eq!(groups(&v), ["acme", "acme/devs"], "{name}");

        // The REST calls went to this type's API, with GitHub's headers.
        let seen = gh.seen();
        let prefix = if name.starts_with("ghe") { "/api/v3" } else { "" };
        for path in ["/user", "/user/orgs", "/user/teams"] {
            let r = seen
                .iter()
                .find(|s| s.uri.split('?').next() == Some(&format!("{prefix}{path}")))
                .unwrap_or_else(|| panic!("{name}: no {prefix}{path} in {seen:?}"));
            assert_eq!(r.accept.as_deref(), Some("application/vnd.github+json"));
            assert_eq!(r.api_version.as_deref(), Some("2022-11-28"));
            assert_eq!(r.auth_scheme.as_deref(), Some("Bearer"));
            assert!(
                r.user_agent
                    .as_deref()
                    .is_some_and(|u| u.starts_with("gatehouse/"))
            );
        }
        let exchange = seen
            .iter()
            .find(|s| s.uri == "/login/oauth/access_token")
            .expect("the code exchange");
        assert_eq!(exchange.method, "POST");
        assert_eq!(exchange.accept.as_deref(), Some("application/json"));
        if name.ends_with("-org") {
            assert!(
                seen.iter()
                    .any(|s| s.uri == format!("{prefix}/user/memberships/orgs/acme")),
                "{name}: {seen:?}"
            );
        }
        assert!(other.seen().is_empty(), "{name} reached the other server");

        match outsider {
            None => {
                let a = login(&mut c, gh, name, "bob").await;
                assert_eq!(a.status, 200, "{name}: {:?}", a.value());
                assert_eq!(groups(&a.value()), ["umbrella", "umbrella/ops"]);
            }
            Some((who, what)) => {
                let m = denied(&login(&mut c, gh, name, who).await);
                assert!(m.contains(what), "{name}: {m}");
            }
        }
    }
    // A pending invitation is not a membership.
    let m = denied(&login(&mut c, &com, "gh-org", "erin").await);
    assert!(m.contains("pending"), "{m}");
}

#[tokio::test]
async fn lists_are_read_across_pages_emails_fall_back_to_the_primary_verified_one_and_maps_use_the_groups() {
    let gh = StandIn::start(19352);
    people(&gh);
    let mut dave = GhUser::new(1004, "dave");
    for i in 1..=5 {
        dave = dave.member_of(&format!("org{i}"), false);
    }
    for i in 1..=7 {
        dave = dave.in_team(500 + i, &format!("org{}", i % 5 + 1), &format!("team{i}"));
    }
    dave = dave.in_team(42, "acme", "devs");
    gh.user(dave);
    gh.max_per_page(2);
    let maps = "scope = \"read:org user:email\"\n\n[[authenticators.maps]]\nname = \"devs\"\nmap_type = \"team\"\n\
                organization = \"Acme\"\nteam = \"Developers\"\ntriggers.groups = { has_or = [\"acme/devs\"] }\n";
    let body = [
        authenticator("gh", "github", &gh, maps),
        authenticator("gh-team", "github_team", &gh, "team_id = 42"),
    ]
    .concat();
    let d = Daemon::start(setup(&gh, &body, vec![]));
    let mut c = d.client().await;

    for name in ["gh", "gh-team"] {
        gh.clear_seen();
        let a = login(&mut c, &gh, name, "dave").await;
        assert_eq!(a.status, 200, "{name}: {:?}", a.value());
        let g = groups(&a.value());
        for i in 1..=5 {
            assert!(g.contains(&format!("org{i}")), "{name}: org{i} in {g:?}");
        }
        for i in 1..=7 {
            assert!(
                g.contains(&format!("org{}/team{i}", i % 5 + 1)),
                "{name}: team{i} in {g:?}"
            );
        }
        assert!(
            g.contains(&"acme/devs".to_owned()),
            "{name}: the team on the last page counts: {g:?}"
        );
        let uris: Vec<String> = gh.seen().into_iter().map(|s| s.uri).collect();
        assert!(
            uris.contains(&"/user/orgs?per_page=2&page=3".to_owned()),
            "{uris:?}"
        );
        assert!(
            uris.contains(&"/user/teams?per_page=2&page=4".to_owned()),
            "{uris:?}"
        );
        if name == "gh-team" {
            // read:org only: /user/emails answers 404, the login goes on
            // without an address
            assert!(uris.iter().any(|u| u.starts_with("/user/emails")), "{uris:?}");
            assert!(a.value()["user"]["email"].as_str().unwrap_or_default().is_empty());
        }
        if name == "gh" {
            let teams = &a.value()["teams"];
            assert!(
                teams
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["name"] == "Developers" && t["organization"] == "Acme"),
                "the map saw acme/devs: {teams}"
            );
        }
    }

    // No public address: the primary verified one from /user/emails.
    let a = login(&mut c, &gh, "gh", "bob").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert_eq!(a.value()["user"]["email"], "bob@example.test");
    // An unverified primary address is not used.
    let a = login(&mut c, &gh, "gh", "erin").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    assert!(
        a.value()["user"]["email"].as_str().unwrap_or_default().is_empty(),
        "{:?}",
        a.value()
    );
}

#[tokio::test]
async fn api_errors_map_to_clear_errors() {
    let gh = StandIn::start(19353);
    people(&gh);
    let body = [
        authenticator("gh", "github", &gh, ""),
        authenticator("gh-secret-org", "github_org", &gh, "org_name = \"secretorg\""),
        authenticator("gh-team", "github_team", &gh, "team_id = 42"),
    ]
    .concat();
    let wrong_secret = authenticator("gh-wrong", "github", &gh, "").replace(CLIENT_SECRET, "not-the-secret");
    let d = Daemon::start(setup(&gh, &format!("{body}{wrong_secret}"), vec![]));
    let mut c = d.client().await;
    let unavailable = |a: &Answer| {
        assert_eq!(
            (a.status, a.code().as_deref()),
            (503, Some("backend_unavailable")),
            "{:?}",
            a.value()
        );
        a.value()["error"]["message"].as_str().unwrap().to_owned()
    };

    // 403 with X-RateLimit-Remaining: 0 → unavailable, with the reset time.
    gh.fault("/user", Fault::RateLimited { reset: 4_102_444_799 });
    let m = unavailable(&login(&mut c, &gh, "gh", "alice").await);
    assert!(
        m.contains("rate limit") && m.contains("2099-12-31T23:59:59Z"),
        "{m}"
    );
    gh.clear_faults();

    // 5xx on a later page of calls
    gh.fault("/user/teams", Fault::Status(502));
    let m = unavailable(&login(&mut c, &gh, "gh-team", "alice").await);
    assert!(m.contains("502"), "{m}");
    gh.clear_faults();

    // a timeout ([http] timeout = 1.5s)
    gh.fault("/user", Fault::Delay(std::time::Duration::from_secs(4)));
    let m = unavailable(&login(&mut c, &gh, "gh", "alice").await);
    assert!(m.contains("in time"), "{m}");
    gh.clear_faults();

    // 401 Bad credentials: the token is refused → invalid_credentials
    gh.fault("/user", Fault::BadCredentials);
    let a = login(&mut c, &gh, "gh", "alice").await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("invalid_credentials"))
    );
    gh.clear_faults();

    // 404 on a private organization (or one the user is not in) → denied
    let m = denied(&login(&mut c, &gh, "gh-secret-org", "alice").await);
    assert!(m.contains("secretorg"), "{m}");

    // a pagination link to another host is not followed (the token would go there)
    gh.max_per_page(1);
    gh.fault("/user/orgs", Fault::ForeignNextLink);
    let mut two = GhUser::new(1010, "twoorgs")
        .member_of("acme", true)
        .member_of("umbrella", true);
    two.public_email = Some("t@example.test".into());
    gh.user(two);
    let m = unavailable(&login(&mut c, &gh, "gh", "twoorgs").await);
    assert!(m.contains("outside api_url"), "{m}");
    gh.clear_faults();
    gh.max_per_page(100);

    // the wrong client secret: GitHub says incorrect_client_credentials
    let m = unavailable(&login(&mut c, &gh, "gh-wrong", "alice").await);
    assert!(m.contains("incorrect_client_credentials"), "{m}");
    assert!(!m.contains("not-the-secret"), "{m}");

    // a code used once already: invalid_credentials
    let (_, url) = start(&mut c, "gh").await;
    let params = callback(&gh, "alice", &url).await;
    assert_eq!(finish(&mut c, "gh", &params).await.status, 200);
    let (state, _) = start(&mut c, "gh").await;
    let mut reused = params.clone();
    reused.insert("state".into(), state);
    let a = finish(&mut c, "gh", &reused).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("invalid_credentials")),
        "{:?}",
        a.value()
    );

    // the user cancelled at GitHub
    let (state, _) = start(&mut c, "gh").await;
    let cancelled: BTreeMap<String, String> = [
        ("error".to_owned(), "access_denied".to_owned()),
        ("state".to_owned(), state),
    ]
    .into();
    let a = finish(&mut c, "gh", &cancelled).await;
    assert_eq!(
        (a.status, a.code().as_deref()),
        (401, Some("invalid_credentials"))
    );
}

#[tokio::test]
async fn a_callback_whose_state_does_not_match_a_start_is_refused() {
    let gh = StandIn::start(19354);
    people(&gh);
    let body = [
        authenticator("gh", "github", &gh, ""),
        authenticator("gh-org", "github_org", &gh, "org_name = \"acme\""),
    ]
    .concat();
    let d = Daemon::start(setup(&gh, &body, vec![]));
    let mut c = d.client().await;
    let refused = |a: &Answer| {
        assert_eq!(
            (a.status, a.code().as_deref()),
            (401, Some("invalid_credentials")),
            "{:?}",
            a.value()
        );
    };
    let (_, url) = start(&mut c, "gh").await;
    let params = callback(&gh, "alice", &url).await;

    // a state no start issued
    let mut forged = params.clone();
    forged.insert("state".into(), "made-up-state-0123456789abcdef0123456789".into());
    refused(&finish(&mut c, "gh", &forged).await);
    // the state of another authenticator's start
    let (other, _) = start(&mut c, "gh-org").await;
    let mut crossed = params.clone();
    crossed.insert("state".into(), other);
    refused(&finish(&mut c, "gh", &crossed).await);
    // no state at all (an unsolicited callback)
    let mut bare = params.clone();
    bare.remove("state");
    refused(&finish(&mut c, "gh", &bare).await);
    let exchanges = gh
        .seen()
        .iter()
        .filter(|s| s.uri == "/login/oauth/access_token")
        .count();
    assert_eq!(exchanges, 0, "no refused callback reached GitHub");

    // the right state works once, then it is used up
    assert_eq!(finish(&mut c, "gh", &params).await.status, 200);
    refused(&finish(&mut c, "gh", &params).await);
}

#[tokio::test]
async fn the_token_code_and_client_secret_never_reach_the_log() {
    let gh = StandIn::start(19355);
    people(&gh);
    let body = [
        authenticator("gh", "github", &gh, "scope = \"read:org user:email\""),
        authenticator("gh-org", "github_org", &gh, "org_name = \"acme\""),
    ]
    .concat();
    let env = vec![("RUST_LOG".to_owned(), "debug".to_owned())];
    let d = Daemon::start(setup(&gh, &body, env));
    let mut c = d.client().await;
    assert_eq!(login(&mut c, &gh, "gh", "alice").await.status, 200);
    assert_eq!(login(&mut c, &gh, "gh", "bob").await.status, 200);
    denied(&login(&mut c, &gh, "gh-org", "bob").await);
    for fault in [
        Fault::BadCredentials,
        Fault::RateLimited { reset: 4_102_444_799 },
        Fault::Status(500),
    ] {
        gh.fault("/user", fault);
        assert_ne!(login(&mut c, &gh, "gh", "alice").await.status, 200);
        gh.clear_faults();
    }
    let logs = d.logs();
    assert!(
        logs.contains("rate limit") && logs.contains("Bad credentials"),
        "the failures were logged (the grep below means something): {logs}"
    );
    let secrets = gh.issued_secrets();
    assert!(
        secrets.iter().filter(|s| s.starts_with("gho_")).count() >= 6,
        "{secrets:?}"
    );
    for s in secrets.iter().map(String::as_str).chain([CLIENT_SECRET]) {
        assert!(!logs.contains(s), "{s} is in the log:\n{logs}");
    }
}

#[tokio::test]
async fn the_stand_in_refuses_what_github_refuses() {
    let gh = StandIn::start(19356);
    people(&gh);
    let http = |ua: &str| {
        gatehouse_sdk::http::HttpClient::new(
            &gatehouse_sdk::HttpSettings::default()
                .with_ca_file(Some(gh.ca.display().to_string()))
                .with_user_agent(ua),
        )
        .unwrap()
    };
    let client = http("e2e/1");
    let code = || async {
        gh.sign_in("alice");
        let url = format!(
            "{}/login/oauth/authorize?client_id={CLIENT_ID}&redirect_uri={}x&state=s1",
            gh.base,
            CALLBACKS.replace(':', "%3A").replace('/', "%2F")
        );
        let loc = gh.browse(&url).await.unwrap();
        assert!(loc.contains("state=s1"), "{loc}");
        Url::parse(&loc)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    };
    let exchange = |secret: &str, code: &str, accept: Option<&str>| {
        let mut r = client
            .post(&format!("{}/login/oauth/access_token", gh.base))
            .unwrap()
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "client_id={CLIENT_ID}&client_secret={secret}&code={code}"
            ));
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let json = Some("application/json");
    let c = code().await;
    let body = exchange("wrong", &c, json).await;
    assert!(body.contains("\"incorrect_client_credentials\""), "{body}");
    let body = exchange(CLIENT_SECRET, &c, None).await;
    assert!(
        body.starts_with("access_token=gho_") && body.contains("token_type=bearer"),
        "without Accept: application/json the answer is form-encoded: {body}"
    );
    let body = exchange(CLIENT_SECRET, &c, json).await;
    assert!(
        body.contains("\"bad_verification_code\""),
        "a code is single use: {body}"
    );
    let body = exchange(CLIENT_SECRET, &code().await, json).await;
    let token: Value = serde_json::from_str(&body).unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    let get = |client: &gatehouse_sdk::http::HttpClient, headers: &[(&str, &str)]| {
        let mut r = client.get(&format!("{}/user", gh.base)).unwrap();
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let bearer = format!("Bearer {token}");
    let good = [
        ("accept", "application/vnd.github+json"),
        ("x-github-api-version", "2022-11-28"),
        ("authorization", bearer.as_str()),
    ];
    let (s, body) = get(&client, &good).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"login\":\"alice\""), "{body}");
    let (s, body) = get(&http(""), &good).await;
    assert_eq!(s, 403, "no User-Agent: {body}");
    assert_eq!(get(&client, &good[1..]).await.0, 415, "no Accept");
    let (s, body) = get(
        &client,
        &[good[0], ("x-github-api-version", "1999-01-01"), good[2]],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = get(&client, &good[..2]).await;
    assert_eq!(s, 401);
    assert!(body.contains("Requires authentication"), "{body}");
    let (s, body) = get(&client, &[good[0], good[1], ("authorization", "Bearer gho_nope")]).await;
    assert_eq!(s, 401);
    assert!(
        body.contains("\"Bad credentials\"") && body.contains("documentation_url"),
        "{body}"
    );
}

/// The SDK's redirect conformance kit on every type, against the stand-in:
/// a whole login with real callback parameters, and each parameter
/// tampered with, another start's flow state, made-up codes — refused.
#[test]
fn the_sdk_conformance_kit_passes_for_every_type() {
    use std::sync::Arc;

    use gatehouse_plugin_github::{GithubFactory, Kind};
    use gatehouse_sdk::testing::{RedirectSuite, Subject};
    use gatehouse_sdk::{
        Authenticator, AuthenticatorFactory, Context, HttpSettings, PluginConfig, PluginError,
    };

    struct WithCa(GithubFactory, String);
    impl Subject for WithCa {
        fn build(&self, settings: Value) -> Result<Arc<dyn Authenticator>, PluginError> {
            let ctx = Context::new("conformance")
                .with_http(HttpSettings::default().with_ca_file(Some(self.1.clone())));
            AuthenticatorFactory::build(
                &self.0,
                PluginConfig::new("conformance", settings).with_context(ctx),
            )
        }
        fn schema(&self) -> Value {
            AuthenticatorFactory::config_schema(&self.0)
        }
        fn flow(&self) -> gatehouse_sdk::Flow {
            AuthenticatorFactory::flow(&self.0)
        }
    }

    let gh = StandIn::start(19357);
    people(&gh);
    gh.sign_in("alice");
    for kind in Kind::ALL {
        let mut v = json!({"key": CLIENT_ID, "secret": CLIENT_SECRET, "url": gh.base, "api_url": gh.base});
        if kind.enterprise() {
            v["api_url"] = json!(format!("{}/api/v3", gh.base));
        }
        if kind.needs_org() {
            v["org_name"] = json!("acme");
        }
        if kind.needs_team() {
            v["team_id"] = json!(42);
        }
        let subject = WithCa(GithubFactory(kind), gh.ca.display().to_string());
        RedirectSuite::new(&subject, v, Some(&format!("{CALLBACKS}conformance")))
            .good_callback(|redirect| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let location = rt.block_on(gh.browse(&redirect.url))?;
                Ok(Url::parse(&location)
                    .map_err(|e| e.to_string())?
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect())
            })
            .secret(CLIENT_SECRET)
            .bad_settings(json!({"key": CLIENT_ID}))
            .run()
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    }
}
