//! The `saml` authenticator through the socket, against a real IdP
//! (SimpleSAMLphp, tests/peers/saml): the IdP imports gatehouse's generated
//! metadata as it is; SP-initiated and IdP-initiated logins of alice,
//! Bob.Smith and juergen reach the maps; and an attack suite built from
//! real IdP responses (edited, then signed again with the IdP's key or
//! another one), each refused with 401 `invalid_credentials` and its named
//! reason in `explain` and the log. The happy path and three attacks again
//! with `isolation = "process"`.
//!
//! Port 19400 (the shared IdP).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_e2e::{Answer, Client, Daemon, SamlIdp, SamlPost, Setup, saml_idp, saml_sign};
use serde_json::json;

const MAPS: &str = r#"
[[authenticators.maps]]
name = "admins are superusers"
map_type = "is_superuser"
revoke = true
triggers.groups = { has_or = ["admins"] }

[[authenticators.maps]]
name = "developers team"
map_type = "team"
organization = "Default"
team = "Developers"
triggers.groups = { has_or = ["developers"] }
"#;

/// A throwaway key and self-signed certificate (PEM files) in `dir`.
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
        ])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (key, cert)
}

/// One SP setup: its URLs and the daemon's config entry.
struct Sp {
    name: String,
    entity: String,
    acs: String,
}

impl Sp {
    fn new(name: &str, tag: &str) -> Self {
        Self {
            name: name.to_owned(),
            entity: format!("https://{tag}.app.test/saml/sp"),
            acs: format!("https://{tag}.app.test/saml/acs"),
        }
    }

    fn entry(&self, idp: &SamlIdp, key: &Path, cert: &Path, isolation: &str, extra: &str) -> String {
        format!(
            r#"
[[authenticators]]
name = "{name}"
type = "saml"
isolation = "{isolation}"
[authenticators.settings]
sp_entity_id = "{entity}"
sp_public_cert_file = "{cert}"
sp_private_key_file = "{key}"
idp_url = "{sso}"
idp_x509_cert_file = "{idp_cert}"
idp_entity_id = "{idp_entity}"
idp_attr_user_permanent_id = "uid"
idp_attr_email = "mail"
idp_attr_first_name = "givenName"
idp_attr_last_name = "sn"
idp_groups = "groups"
extra_data = ["cn", "eduPersonAffiliation"]
callback_url = "{acs}"
org_info = {{ "en-US" = {{ name = "example", displayname = "Example Org", url = "https://example.test" }} }}
technical_contact = {{ givenName = "Tech Team", emailAddress = "tech@example.test" }}
support_contact = {{ givenName = "Help Desk", emailAddress = "help@example.test" }}
security_config = {{ authnRequestsSigned = true, wantMessagesSigned = true, wantAssertionsSigned = true }}
{extra}
{MAPS}
"#,
            name = self.name,
            entity = self.entity,
            acs = self.acs,
            cert = cert.display(),
            key = key.display(),
            sso = idp.sso_url,
            idp_cert = idp.cert.display(),
            idp_entity = idp.entity_id,
        )
    }

    /// Fetches gatehouse's metadata and registers it at the IdP as it is.
    async fn register(&self, c: &mut Client, idp: &SamlIdp, file_stem: &str) -> String {
        let a = c
            .get(&format!("/v1/authenticators/{}/metadata", self.name))
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let body = String::from_utf8(a.body.to_vec()).unwrap();
        idp.register_sp(file_stem, &body);
        body
    }
}

/// start → the IdP's form as `user` → what the IdP posts back.
async fn sp_initiated(
    c: &mut Client,
    idp: &SamlIdp,
    sp: &Sp,
    user: &str,
    password: &str,
) -> (String, SamlPost) {
    let a = c
        .post("/v1/login/start", &json!({"authenticator": sp.name}))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    let url = a.value()["redirect_url"].as_str().unwrap().to_owned();
    let state = a.value()["state"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&idp.sso_url), "{url}");
    let post = idp.login(&url, user, password).expect("the IdP login succeeds");
    assert_eq!(
        post.acs, sp.acs,
        "the IdP posts to the ACS of gatehouse's metadata"
    );
    assert_eq!(post.relay_state, state, "the IdP repeats the RelayState");
    (state, post)
}

/// An IdP-initiated login as `user` (RelayState "IdP").
fn idp_initiated(idp: &SamlIdp, sp: &Sp, user: &str, password: &str) -> SamlPost {
    let post = idp
        .login(&idp.unsolicited_url(&sp.entity, "IdP"), user, password)
        .expect("the IdP login succeeds");
    assert_eq!(post.acs, sp.acs);
    post
}

async fn finish(c: &mut Client, sp: &Sp, response: &str, relay_state: &str) -> Answer {
    let mut params = BTreeMap::new();
    params.insert("SAMLResponse".to_owned(), response.to_owned());
    params.insert("RelayState".to_owned(), relay_state.to_owned());
    c.post(
        "/v1/login/finish",
        &json!({"authenticator": sp.name, "params": params, "explain": true}),
    )
    .await
    .unwrap()
}

/// Asserts a 401 `invalid_credentials` with `reason` in `explain`.
fn refused(a: &Answer, reason: &str, what: &str) {
    let v = a.value();
    assert_eq!(a.status, 401, "{what}: {v}");
    assert_eq!(a.code().as_deref(), Some("invalid_credentials"), "{what}: {v}");
    assert_eq!(
        v["error"]["details"]["explanation"]["reason"], reason,
        "{what}: {v}"
    );
}

fn decode(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

fn encode(xml: &str) -> String {
    STANDARD.encode(xml)
}

/// Re-signs `xml` as the IdP does (Assertion, then Response) with the
/// given key and certificate.
fn resign(xml: &str, key: &Path, cert: &Path) -> String {
    encode(&saml_sign(xml, key, cert, &["--assertion", "--response"]))
}

/// The text between `start` and `end` (exclusive), first occurrence.
fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
    let j = s[i..].find(end).unwrap_or_else(|| panic!("no {end:?}")) + i;
    &s[i..j]
}

/// The whole `<saml:Assertion …>…</saml:Assertion>` element.
fn assertion_element(xml: &str) -> String {
    let i = xml.find("<saml:Assertion").unwrap();
    let end = "</saml:Assertion>";
    let j = xml.find(end).unwrap() + end.len();
    xml[i..j].to_owned()
}

/// `element` without its (first) signature.
fn unsigned(element: &str) -> String {
    let sig = format!(
        "<ds:Signature{}</ds:Signature>",
        between(element, "<ds:Signature", "</ds:Signature>")
    );
    element.replacen(&sig, "", 1)
}

/// Every timestamp of the document moved `secs` seconds.
fn shift_times(xml: &str, secs: i64) -> String {
    let mut out = String::new();
    let mut rest = xml;
    // attributes like IssueInstant="2026-12-03T14:37:16Z"
    while let Some(i) = rest.find("=\"20") {
        out.push_str(&rest[..i + 2]);
        let value = &rest[i + 2..i + 22];
        if value.ends_with('Z') && value.as_bytes()[10] == b'T' {
            let t = chrono_like_parse(value) + secs;
            out.push_str(&chrono_like_format(t));
        } else {
            out.push_str(value);
        }
        rest = &rest[i + 22..];
    }
    out.push_str(rest);
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` → Unix seconds (days from civil).
fn chrono_like_parse(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

fn chrono_like_format(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[test]
fn the_time_helpers_round_trip() {
    for s in [
        "2026-12-03T14:37:16Z",
        "2024-02-29T00:00:00Z",
        "1999-12-31T23:59:59Z",
    ] {
        assert_eq!(chrono_like_format(chrono_like_parse(s)), s);
    }
    assert_eq!(
        shift_times("a=\"2026-12-03T14:37:16Z\" b=\"x\"", -3600),
        "a=\"2026-12-03T13:37:16Z\" b=\"x\""
    );
}

fn daemon(entries: &[String]) -> Daemon {
    Daemon::start(Setup::with_body(&format!(
        "[lockout]\nmax_failures = 1000\n{}",
        entries.concat()
    )))
}

async fn happy_path(isolation: &str, tag: &str) {
    let idp = saml_idp();
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keypair(dir.path(), "sp");
    let sp = Sp::new("corp-saml", tag);
    let d = daemon(&[sp.entry(&idp, &key, &cert, isolation, "")]);
    let mut c = d.client().await;
    let metadata = sp.register(&mut c, &idp, tag).await;
    assert!(
        metadata.contains(&format!("entityID=\"{}\"", sp.entity)),
        "{metadata}"
    );
    assert!(
        metadata.contains(&format!("Location=\"{}\"", sp.acs)),
        "{metadata}"
    );
    assert!(
        metadata.contains("<md:OrganizationDisplayName xml:lang=\"en-US\">Example Org"),
        "{metadata}"
    );
    assert!(metadata.contains("contactType=\"technical\""), "{metadata}");
    assert!(metadata.contains("contactType=\"support\""), "{metadata}");
    let sp_cert: String = std::fs::read_to_string(&cert)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        metadata.contains(&sp_cert),
        "the signing certificate is published"
    );

    // the IdP checks the AuthnRequest signature with the certificate of
    // the imported metadata: a request with a broken signature gets no
    // response
    let a = c
        .post("/v1/login/start", &json!({"authenticator": sp.name}))
        .await
        .unwrap();
    let url = a.value()["redirect_url"].as_str().unwrap().to_owned();
    let mut parsed = url::Url::parse(&url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "RelayState" {
                (k, format!("{v}x"))
            } else {
                (k, v)
            }
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    assert!(
        idp.login(parsed.as_str(), "alice", "alicepass").is_none(),
        "the IdP answered a request whose signature does not cover its RelayState"
    );

    for (user, password, email, first, last, groups, superuser, teams) in [
        (
            "alice",
            "alicepass",
            "alice@example.test",
            "Alice",
            "Anderson",
            json!(["admins", "developers"]),
            true,
            vec!["Developers"],
        ),
        (
            "Bob.Smith",
            "bobpass",
            "Bob.Smith@example.test",
            "Bob",
            "Smith",
            json!(["developers", "operators"]),
            false,
            vec!["Developers"],
        ),
        (
            "juergen",
            "jürgenpass",
            "juergen@example.test",
            "Jürgen",
            "Müller",
            json!(["all-staff"]),
            false,
            vec![],
        ),
    ] {
        // SP-initiated: the IdP accepted the signed AuthnRequest of the
        // imported metadata and answers it
        let (state, post) = sp_initiated(&mut c, &idp, &sp, user, password).await;
        let a = finish(&mut c, &sp, &post.response, &state).await;
        assert_eq!(a.status, 200, "{user}: {:?}", a.value());
        let v = a.value();
        assert_eq!(
            v["user"]["username"].as_str().unwrap().to_lowercase(),
            user.to_lowercase(),
            "{v}"
        );
        assert_eq!(v["authenticator_uid"], user);
        assert_eq!(v["user"]["email"], email);
        assert_eq!(v["user"]["first_name"], first);
        assert_eq!(v["user"]["last_name"], last);
        assert_eq!(v["groups"], groups, "{v}");
        assert_eq!(v["user"]["is_superuser"], superuser, "{user}: maps: {v}");
        let got: Vec<&str> = v["teams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, teams, "{user}: {v}");
        assert!(v["attributes"]["cn"].is_array(), "extra_data: {v}");
        assert!(v["attributes"].get("mail").is_none(), "only extra_data: {v}");

        // IdP-initiated (RelayState "IdP", no start)
        let post = idp_initiated(&idp, &sp, user, password);
        let a = finish(&mut c, &sp, &post.response, &post.relay_state).await;
        assert_eq!(a.status, 200, "{user} (IdP-initiated): {:?}", a.value());
        assert_eq!(a.value()["authenticator_uid"], user);
        assert_eq!(a.value()["groups"], groups);
    }
    // where the plugin ran: a `plugin-host @linked` child of the daemon, or none
    assert_eq!(
        plugin_hosts(d.pid()),
        usize::from(isolation == "process"),
        "{isolation}"
    );
}

/// How many `gatehoused plugin-host @linked` children `pid` has.
fn plugin_hosts(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid …
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            ppid == Some(pid) && cmdline.split(|b| *b == 0).any(|a| a == b"@linked")
        })
        .count()
}

#[tokio::test]
async fn sp_and_idp_initiated_logins_of_three_users_reach_the_maps() {
    happy_path("in_process", "happy").await;
}

#[tokio::test]
async fn the_happy_path_in_an_isolated_plugin_host() {
    happy_path("process", "isolated").await;
}

/// A fresh unsolicited response of `user` decoded: (xml, relay state).
fn fresh(idp: &SamlIdp, sp: &Sp) -> String {
    decode(&idp_initiated(idp, sp, "alice", "alicepass").response)
}

#[tokio::test]
async fn attacks_built_from_real_responses_are_refused_with_their_reason() {
    let idp = saml_idp();
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keypair(dir.path(), "sp");
    let (evil_key, evil_cert) = keypair(dir.path(), "evil");
    let sp = Sp::new("corp-saml", "attacks");
    let strict = Sp {
        name: "strict-saml".into(),
        entity: sp.entity.clone(),
        acs: sp.acs.clone(),
    };
    let d = daemon(&[
        sp.entry(&idp, &key, &cert, "in_process", ""),
        strict.entry(&idp, &key, &cert, "in_process", "allow_idp_initiated = false"),
    ]);
    let mut c = d.client().await;
    sp.register(&mut c, &idp, "attacks").await;
    // a second SP at the IdP, whose responses must not be accepted here
    let other = Sp::new("other", "attacks-other");
    idp.register_sp(
        "attacks-other",
        &format!(
            "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"{}\">\
             <md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
             <md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" \
             Location=\"{}\" index=\"0\"/></md:SPSSODescriptor></md:EntityDescriptor>",
            other.entity, other.acs
        ),
    );

    let base = fresh(&idp, &sp);
    // the baseline: an untouched response, signed again by the IdP's key, passes
    let a = finish(&mut c, &sp, &resign(&base, &idp.key, &idp.cert), "IdP").await;
    assert_eq!(a.status, 200, "re-signed baseline: {:?}", a.value());

    let assertion = assertion_element(&base);
    // an unsigned copy of the assertion about mallory
    let evil_assertion = unsigned(&assertion)
        .replace(
            between(&assertion, "ID=\"", "\""),
            "_evil0000000000000000000000000000000000001",
        )
        .replace(">alice<", ">mallory<");
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    let b = fresh(&idp, &sp);
    cases.push((
        "unsigned",
        encode(&saml_sign(&b, &idp.key, &idp.cert, &[])),
        "signature",
    ));
    let b = fresh(&idp, &sp);
    cases.push((
        "signed by another key",
        resign(&b, &evil_key, &evil_cert),
        "signature",
    ));
    let b = fresh(&idp, &sp);
    cases.push((
        "signed by the IdP's key with RSA-SHA1 (not an allowed algorithm)",
        encode(&saml_sign(
            &b,
            &idp.key,
            &idp.cert,
            &["--assertion", "--response", "--rsa-sha1"],
        )),
        "signature",
    ));
    let b = fresh(&idp, &sp);
    cases.push((
        "assertion tampered after signing",
        encode(&b.replace("alice@example.test", "mallory@example.test")),
        "signature",
    ));
    let b = fresh(&idp, &sp);
    let a_el = assertion_element(&b);
    let evil = evil_assertion.replace(">alice<", ">mallory<");
    cases.push((
        "a second, unsigned assertion before the signed one",
        encode(&b.replace(&a_el, &format!("{evil}{a_el}"))),
        "structure",
    ));
    let b = fresh(&idp, &sp);
    let a_el = assertion_element(&b);
    cases.push((
        "a second, unsigned assertion after the signed one",
        encode(&b.replace(&a_el, &format!("{a_el}{evil}"))),
        "structure",
    ));
    let b = fresh(&idp, &sp);
    let a_el = assertion_element(&b);
    let wrapped = evil.replacen("<saml:Subject>", &format!("<saml:Subject>{a_el}"), 1);
    cases.push((
        "the signed assertion wrapped inside an evil one",
        encode(&b.replace(&a_el, &wrapped)),
        "structure",
    ));
    let b = fresh(&idp, &sp);
    let a_el = assertion_element(&b);
    let ext = format!("<samlp:Extensions>{a_el}</samlp:Extensions>{evil}");
    cases.push((
        "the signed assertion moved into Extensions, an evil one in its place",
        encode(&b.replace(&a_el, &ext)),
        "structure",
    ));
    let b = fresh(&idp, &sp);
    let a_el = assertion_element(&b);
    let a_sig = format!(
        "<ds:Signature{}</ds:Signature>",
        between(&a_el, "<ds:Signature", "</ds:Signature>")
    );
    let r_sig = format!(
        "<ds:Signature{}</ds:Signature>",
        between(&b, "<ds:Signature", "</ds:Signature>")
    );
    let moved = b
        .replacen(&r_sig, &a_sig, 1)
        .replace(&a_el, &a_el.replace(&a_sig, "").replace(">alice<", ">mallory<"));
    cases.push((
        "the assertion's signature moved onto the Response",
        encode(&moved),
        "signature",
    ));
    let b = fresh(&idp, &sp);
    let injected = saml_sign(
        &b.replace(">alice<", ">alice.evil<"),
        &idp.key,
        &idp.cert,
        &["--assertion", "--response"],
    )
    .replace(">alice.evil<", ">alice<!---->.evil<");
    cases.push((
        "comment injection in NameID and uid",
        encode(&injected),
        "comment",
    ));
    let b = fresh(&idp, &sp);
    cases.push((
        "wrong audience",
        resign(
            &b.replace(&format!(">{}<", sp.entity), ">https://other.app.test/sp<"),
            &idp.key,
            &idp.cert,
        ),
        "audience",
    ));
    let b = fresh(&idp, &sp);
    cases.push((
        "wrong recipient",
        resign(
            &b.replace(
                &format!("Recipient=\"{}\"", sp.acs),
                "Recipient=\"https://other.app.test/acs\"",
            ),
            &idp.key,
            &idp.cert,
        ),
        "recipient",
    ));
    let b = fresh(&idp, &sp);
    cases.push((
        "expired",
        resign(&shift_times(&b, -3600), &idp.key, &idp.cert),
        "expired",
    ));
    let b = fresh(&idp, &sp);
    cases.push((
        "not yet valid",
        resign(&shift_times(&b, 3600), &idp.key, &idp.cert),
        "not_yet_valid",
    ));
    cases.push((
        "XXE",
        encode(&format!(
            "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
            base.replacen(">alice<", ">&x;<", 1)
        )),
        "dtd",
    ));
    cases.push((
        "DTD entity expansion",
        encode(&format!(
            "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>{}",
            base.replacen(">alice<", ">&b;<", 1)
        )),
        "dtd",
    ));
    cases.push(("oversized input", "A".repeat(50 * 1024), "too_large"));
    let for_other = idp
        .login(&idp.unsolicited_url(&other.entity, "IdP"), "alice", "alicepass")
        .unwrap();
    cases.push((
        "a response for another SP entity",
        for_other.response,
        "destination",
    ));
    let b = fresh(&idp, &sp);
    let destination = format!(" Destination=\"{}\"", sp.acs);
    assert!(b.contains(&destination), "the IdP names the ACS as Destination");
    cases.push((
        "a signed Response without a Destination",
        resign(&b.replacen(&destination, "", 1), &idp.key, &idp.cert),
        "destination",
    ));
    let b = fresh(&idp, &sp);
    cases.push((
        "a response signed for another issuer",
        resign(
            &b.replace(&format!(">{}<", idp.entity_id), ">https://evil.idp.test/<"),
            &idp.key,
            &idp.cert,
        ),
        "issuer",
    ));

    for (what, response, reason) in &cases {
        let a = finish(&mut c, &sp, response, "IdP").await;
        refused(&a, reason, what);
    }

    // larger still: the daemon refuses the body before any plugin reads it
    let a = finish(&mut c, &sp, &"A".repeat(300 * 1024), "IdP").await;
    assert_eq!(a.status, 413, "{:?}", a.value());
    assert_eq!(a.code().as_deref(), Some("payload_too_large"));

    // replay: one use per assertion ID, however it is presented
    let once = idp_initiated(&idp, &sp, "alice", "alicepass");
    let a = finish(&mut c, &sp, &once.response, "IdP").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    let a = finish(&mut c, &sp, &once.response, "IdP").await;
    refused(&a, "replay", "replayed");
    let a = finish(
        &mut c,
        &sp,
        &resign(&decode(&once.response), &idp.key, &idp.cert),
        "IdP",
    )
    .await;
    refused(&a, "replay", "replayed with a new signature");

    // unsolicited while IdP-initiated logins are off
    let b = idp_initiated(&idp, &sp, "alice", "alicepass");
    let a = finish(&mut c, &strict, &b.response, "IdP").await;
    refused(
        &a,
        "unsolicited",
        "unsolicited response when IdP-initiated is off",
    );

    // InResponseTo: a solicited answer presented as unsolicited, and under another login's state
    let (_state, solicited) = sp_initiated(&mut c, &idp, &sp, "alice", "alicepass").await;
    let a = finish(&mut c, &sp, &solicited.response, "IdP").await;
    refused(
        &a,
        "in_response_to",
        "InResponseTo for a request this login did not send",
    );
    let start = c
        .post("/v1/login/start", &json!({"authenticator": sp.name}))
        .await
        .unwrap();
    let other_state = start.value()["state"].as_str().unwrap().to_owned();
    let a = finish(&mut c, &sp, &solicited.response, &other_state).await;
    refused(&a, "in_response_to", "InResponseTo for an unknown request");

    // the reasons are in the log too
    let logs = d.logs();
    for reason in ["signature", "audience", "replay", "structure", "dtd"] {
        assert!(logs.contains(reason), "log lacks {reason}: {logs}");
    }
}

#[tokio::test]
async fn attacks_on_an_isolated_plugin_host() {
    let idp = saml_idp();
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keypair(dir.path(), "sp");
    let sp = Sp::new("corp-saml", "isolated-attacks");
    let d = daemon(&[sp.entry(&idp, &key, &cert, "process", "")]);
    let mut c = d.client().await;
    sp.register(&mut c, &idp, "isolated-attacks").await;

    let b = fresh(&idp, &sp);
    let a = finish(
        &mut c,
        &sp,
        &encode(&saml_sign(&b, &idp.key, &idp.cert, &[])),
        "IdP",
    )
    .await;
    refused(&a, "signature", "unsigned");

    let b = fresh(&idp, &sp);
    let a_el = assertion_element(&b);
    let evil = unsigned(&a_el)
        .replace(
            between(&a_el, "ID=\"", "\""),
            "_evil0000000000000000000000000000000000002",
        )
        .replace(">alice<", ">mallory<");
    let a = finish(
        &mut c,
        &sp,
        &encode(&b.replace(&a_el, &format!("{evil}{a_el}"))),
        "IdP",
    )
    .await;
    refused(&a, "structure", "a second, unsigned assertion");

    let once = idp_initiated(&idp, &sp, "Bob.Smith", "bobpass");
    let a = finish(&mut c, &sp, &once.response, "IdP").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    let a = finish(&mut c, &sp, &once.response, "IdP").await;
    refused(&a, "replay", "replayed");
}
