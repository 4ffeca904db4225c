//! The identity pipeline through the socket: maps, organizations and teams,
//! usernames and collisions, migration, lockout, audit, explain and the
//! simulator. Identities come from the `testkit_users` fixture plugin.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use gatehouse_e2e::{Client, Daemon, LOCAL_AUTH, Setup, add_user, install_plugin, login, plugin_library};
use serde_json::{Value, json};

const ADMINS: &str = "cn=admins,ou=groups,dc=example,dc=test";
const DEVS: &str = "cn=developers,ou=groups,dc=example,dc=test";
const OPS: &str = "cn=operators,ou=groups,dc=example,dc=test";
const BANNED: &str = "cn=banned,ou=groups,dc=example,dc=test";

/// The directory's users, as testkit_users settings.
fn users(alice_dept: &str, bob_groups: &[&str]) -> String {
    let bob_groups: Vec<String> = bob_groups.iter().map(|g| format!("{g:?}")).collect();
    format!(
        r#"
[authenticators.settings.users.alice]
email = "alice@example.com"
first_name = "Alice"
groups = ["{ADMINS}", "CN=Developers,OU=Groups,DC=Example,DC=Test"]
attributes = {{ dept = ["{alice_dept}"] }}
[authenticators.settings.users.bob]
email = "bob@corp.example"
groups = [{}]
attributes = {{ dept = ["Sales"] }}
[authenticators.settings.users.dave]
email = "dave@example.com"
[authenticators.settings.users.mallory]
groups = ["{BANNED}"]
"#,
        bob_groups.join(", ")
    )
}

fn directory(flags: &str, maps: &str, users: &str) -> String {
    format!(
        r#"
[[authenticators]]
name = "Directory"
type = "testkit_users"
{flags}
[authenticators.settings]
password = "directory password"
case_insensitive = true
{users}
{maps}
"#
    )
}

const MAPS: &str = r#"
[[authenticators.maps]]
name = "not banned"
map_type = "allow"
triggers.groups = { has_not = ["cn=banned,ou=groups,dc=example,dc=test"] }

[[authenticators.maps]]
name = "admins are superusers"
map_type = "is_superuser"
revoke = true
triggers.groups = { has_or = ["cn=admins,ou=groups,dc=example,dc=test"] }

[[authenticators.maps]]
name = "everyone in Default"
map_type = "organization"
organization = "Default"
triggers.always = {}

[[authenticators.maps]]
name = "engineering admins"
map_type = "organization"
organization = "Engineering"
role = "Organization Admin"
revoke = true
triggers.attributes = { dept = { equals = "Engineering" } }

[[authenticators.maps]]
name = "developers team"
map_type = "team"
organization = "Default"
team = "Developers"
triggers.groups = { has_or = ["cn=developers,ou=groups,dc=example,dc=test"] }

[[authenticators.maps]]
name = "ops team"
map_type = "team"
organization = "Default"
team = "Ops"
triggers.groups = { has_or = ["cn=operators,ou=groups,dc=example,dc=test"] }

[[authenticators.maps]]
name = "devops"
map_type = "team"
organization = "Default"
team = "DevOps"
role = "Team Admin"
triggers.groups = { has_and = ["cn=developers,ou=groups,dc=example,dc=test", "cn=operators,ou=groups,dc=example,dc=test"] }

[[authenticators.maps]]
name = "corp auditors"
map_type = "role"
role = "Auditor"
triggers.attributes = { join_condition = "or", email = { ends_with = ["@corp.example"] }, dept = { in = ["Finance"] } }

[[authenticators.maps]]
name = "eng-ish"
map_type = "role"
organization = "Default"
role = "Engineer"
triggers.attributes = { dept = { matches = "Eng.*" }, email = { contains = "alice" }, join_condition = "and" }
"#;

fn start(body: &str) -> Daemon {
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: body.to_owned(),
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    install_plugin(
        &d.dir().join("plugins"),
        &plugin_library("gatehouse_plugin_testkit"),
    );
    let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    d.spawn_with(cmd)
}

fn rewrite(d: &Daemon, body: &str) {
    d.write_config(&Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: body.to_owned(),
        ..Setup::default()
    });
}

async fn reload(c: &mut Client) {
    let a = c.post("/v1/reload", &json!({})).await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
}

async fn ok(c: &mut Client, user: &str, pw: &str) -> Value {
    let a = login(c, user, pw).await;
    assert_eq!(a.status, 200, "{user}: {:?}", a.value());
    a.value()
}

fn orgs(v: &Value) -> Vec<(String, bool)> {
    v["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_owned(),
                o["admin"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn teams(v: &Value) -> Vec<(String, bool)> {
    v["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["organization"], "Default");
            (
                t["name"].as_str().unwrap().to_owned(),
                t["admin"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn roles(v: &Value) -> Vec<String> {
    v["attributes"]["gatehouse_roles"]
        .as_array()
        .map(|a| a.iter().map(|r| r.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

const PW: &str = "directory password";

#[tokio::test]
async fn every_map_type_and_trigger_operator() {
    let d = start(&directory("", MAPS, &users("Engineering", &[DEVS, OPS])));
    let mut c = d.client().await;

    let alice = ok(&mut c, "alice", PW).await;
    assert_eq!(alice["user"]["is_superuser"], true);
    assert_eq!(alice["user"]["email"], "alice@example.com");
    assert_eq!(
        orgs(&alice),
        [("Default".into(), false), ("Engineering".into(), true)]
    );
    assert_eq!(
        teams(&alice),
        [("Developers".into(), false)],
        "groups compare case-insensitively"
    );
    assert_eq!(
        roles(&alice),
        ["Default: Engineer"],
        "attributes and: matches + contains"
    );

    let bob = ok(&mut c, "bob", PW).await;
    assert_eq!(bob["user"]["is_superuser"], false);
    assert_eq!(orgs(&bob), [("Default".into(), false)]);
    assert_eq!(
        teams(&bob),
        [
            ("DevOps".into(), true),
            ("Developers".into(), false),
            ("Ops".into(), false)
        ],
        "has_and, has_or; Team Admin role"
    );
    assert_eq!(roles(&bob), ["Auditor"], "attributes or: ends_with");

    let dave = ok(&mut c, "dave", PW).await;
    assert_eq!(orgs(&dave), [("Default".into(), false)]);
    assert!(teams(&dave).is_empty() && roles(&dave).is_empty());

    // allow map: has_not
    let m = login(&mut c, "mallory", PW).await;
    assert_eq!((m.status, m.code().as_deref()), (403, Some("login_denied")));
    let users = c.get("/v1/users").await.unwrap().value();
    assert!(
        !users.to_string().contains("mallory"),
        "a denied login creates no user: {users}"
    );
}

#[tokio::test]
async fn revoke_true_false_and_remove_users() {
    let body = |dept: &str, bob: &[&str], remove: bool| {
        directory(&format!("remove_users = {remove}"), MAPS, &users(dept, bob))
    };
    let d = start(&body("Engineering", &[DEVS, OPS], false));
    let mut c = d.client().await;
    assert_eq!(orgs(&ok(&mut c, "alice", PW).await).len(), 2);
    assert_eq!(teams(&ok(&mut c, "bob", PW).await).len(), 3);

    // alice leaves engineering and the admins: revoke = true removes both
    // the organization and superuser status; bob leaves operators: the ops
    // map has revoke = false and remove_users is off, so he stays.
    rewrite(&d, &body("Sales", &[DEVS], false));
    reload(&mut c).await;
    let alice = ok(&mut c, "alice", PW).await;
    assert_eq!(orgs(&alice), [("Default".into(), false)]);
    assert_eq!(alice["user"]["is_superuser"], true, "still in admins");
    let bob = ok(&mut c, "bob", PW).await;
    assert_eq!(
        teams(&bob),
        [
            ("DevOps".into(), true),
            ("Developers".into(), false),
            ("Ops".into(), false)
        ]
    );

    // with remove_users, what the maps no longer grant goes
    rewrite(&d, &body("Sales", &[DEVS], true));
    reload(&mut c).await;
    let bob = ok(&mut c, "bob", PW).await;
    assert_eq!(teams(&bob), [("Developers".into(), false)]);
}

#[tokio::test]
async fn create_objects_false_skips_missing_objects() {
    let maps = r#"
[[authenticators.maps]]
name = "ghost org"
map_type = "organization"
organization = "Ghost"
triggers.always = {}
"#;
    let d = start(&directory("create_objects = false", maps, &users("x", &[])));
    let mut c = d.client().await;
    let a = c
        .post(
            "/v1/login",
            &json!({"username": "dave", "password": PW, "explain": true}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let v = a.value();
    assert!(orgs(&v).is_empty());
    assert_eq!(
        v["explanation"]["applied"]["skipped"],
        json!(["Organization Member of organization Ghost"])
    );

    // once the organization exists (another authenticator may create it), the map applies
    let creator = directory("", maps, &users("x", &[])).replace("name = \"Directory\"", "name = \"Creator\"");
    rewrite(
        &d,
        &format!(
            "{}\n{creator}",
            directory("create_objects = false", maps, &users("x", &[]))
        ),
    );
    reload(&mut c).await;
    let via_creator = c
        .post(
            "/v1/login",
            &json!({"username": "bob", "password": PW, "authenticator": "Creator"}),
        )
        .await
        .unwrap();
    assert_eq!(orgs(&via_creator.value()), [("Ghost".into(), false)]);
    let dave = ok(&mut c, "dave", PW).await;
    assert_eq!(orgs(&dave), [("Ghost".into(), false)]);
}

#[tokio::test]
async fn order_and_override() {
    let maps = r#"
[[authenticators.maps]]
name = "grant"
map_type = "team"
organization = "Default"
team = "T"
triggers.always = {}

[[authenticators.maps]]
name = "revoke"
map_type = "team"
organization = "Default"
team = "T"
revoke = true
triggers.never = {}
"#;
    let d = start(&directory("", maps, &users("x", &[])));
    let mut c = d.client().await;
    assert!(
        teams(&ok(&mut c, "dave", PW).await).is_empty(),
        "the later revoke overrides the grant"
    );

    // order = 0 moves the revoking map first: now the grant wins
    rewrite(
        &d,
        &directory(
            "",
            &maps.replace("revoke = true", "revoke = true\norder = 0"),
            &users("x", &[]),
        ),
    );
    reload(&mut c).await;
    let dave = ok(&mut c, "dave", PW).await;
    assert_eq!(teams(&dave), [("T".into(), false)]);
}

#[tokio::test]
async fn usernames_collisions_and_migration() {
    let case_users = r#"
[authenticators.settings.users."Bob.Smith"]
[authenticators.settings.users.carol]
"#;
    let legacy = r#"
[[authenticators]]
name = "Legacy"
type = "testkit_users"
[authenticators.settings]
password = "legacy password"
users = { erin = { uid = "erin-uid" } }
[[authenticators.maps]]
map_type = "organization"
organization = "Old"
triggers.always = {}
"#;
    let body = format!("{LOCAL_AUTH}{}{legacy}", directory("", "", case_users));
    let d = start(&body);
    let mut c = d.client().await;

    // case variants are one user, stored lowercased
    let ids: Vec<Value> = {
        let mut v = Vec::new();
        for name in ["Bob.Smith", "bob.smith", "BOB.SMITH"] {
            let r = ok(&mut c, name, PW).await;
            assert_eq!(r["user"]["username"], "bob.smith");
            assert_eq!(r["authenticator_uid"], "bob.smith");
            v.push(r["user"]["id"].clone());
        }
        v
    };
    assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");

    // a local user "carol" exists: the directory's carol gets her own user
    assert_eq!(add_user(&mut c, "carol", "carol's local pw").await.status, 201);
    let local = ok(&mut c, "carol", "carol's local pw").await;
    assert_eq!(local["user"]["username"], "carol");
    let dir = c
        .post(
            "/v1/login",
            &json!({"username": "carol", "password": PW, "authenticator": "Directory"}),
        )
        .await
        .unwrap()
        .value();
    let suffixed = dir["user"]["username"].as_str().unwrap().to_owned();
    assert!(
        suffixed.starts_with("carol-") && suffixed.len() == "carol-".len() + 8,
        "{suffixed}"
    );
    assert_ne!(dir["user"]["id"], local["user"]["id"]);
    let again = c
        .post(
            "/v1/login",
            &json!({"username": "carol", "password": PW, "authenticator": "Directory"}),
        )
        .await
        .unwrap()
        .value();
    assert_eq!(again["user"]["username"], suffixed.as_str(), "deterministic");

    // migration: erin logs in through Legacy, then through New, which migrates from Legacy
    let erin = ok(&mut c, "erin", "legacy password").await;
    assert_eq!(orgs(&erin), [("Old".into(), false)]);
    let new = r#"
[[authenticators]]
name = "New"
type = "testkit_users"
auto_migrate_users_from = ["Legacy"]
remove_users = false
[authenticators.settings]
password = "new password"
users = { erin = { uid = "erin-uid" } }
"#;
    rewrite(&d, &format!("{body}{new}"));
    reload(&mut c).await;
    let migrated = c
        .post(
            "/v1/login",
            &json!({"username": "erin", "password": "new password", "authenticator": "New"}),
        )
        .await
        .unwrap()
        .value();
    assert_eq!(migrated["user"]["id"], erin["user"]["id"], "same user");
    assert_eq!(orgs(&migrated), [("Old".into(), false)], "memberships kept");
    // once: Legacy no longer owns erin; logging in there again is a new, suffixed user
    let legacy_again = c
        .post(
            "/v1/login",
            &json!({"username": "erin", "password": "legacy password", "authenticator": "Legacy"}),
        )
        .await
        .unwrap()
        .value();
    assert_ne!(legacy_again["user"]["id"], erin["user"]["id"]);
    let second = c
        .post(
            "/v1/login",
            &json!({"username": "erin", "password": "new password", "authenticator": "New"}),
        )
        .await
        .unwrap()
        .value();
    assert_eq!(second["user"]["id"], erin["user"]["id"]);
}

#[tokio::test]
async fn lockout_retry_after_reset_and_reload() {
    let body = format!("[lockout]\nmax_failures = 3\nwindow = \"1m\"\n{LOCAL_AUTH}");
    let d = start(&body);
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "lou", "lou password").await.status, 201);
    assert_eq!(add_user(&mut c, "sam", "sam password").await.status, 201);

    // a success resets: two failures, a success, two more failures: not locked
    for _ in 0..2 {
        assert_eq!(login(&mut c, "sam", "wrong").await.status, 401);
    }
    ok(&mut c, "sam", "sam password").await;
    for _ in 0..2 {
        assert_eq!(login(&mut c, "sam", "wrong").await.status, 401);
    }
    ok(&mut c, "sam", "sam password").await;

    for _ in 0..3 {
        assert_eq!(login(&mut c, "lou", "wrong").await.status, 401);
    }
    let locked = login(&mut c, "LOU", "lou password").await;
    assert_eq!(
        (locked.status, locked.code().as_deref()),
        (429, Some("too_many_attempts"))
    );
    let retry: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // other users are not affected
    ok(&mut c, "sam", "sam password").await;

    // a reload keeps the counters
    rewrite(&d, &body.replace("window = \"1m\"", "window = \"2m\""));
    reload(&mut c).await;
    assert_eq!(login(&mut c, "lou", "lou password").await.status, 429);

    // the audit trail has the decisions, and no password
    let audit = std::fs::read_to_string(d.dir().join("state/audit.log")).unwrap();
    let lines: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        lines
            .iter()
            .any(|l| l["outcome"] == "too_many_attempts" && l["username"] == "lou")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["outcome"] == "success" && l["authenticator"] == "Local Database")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["outcome"] == "invalid_credentials" && l["peer_uid"].is_u64())
    );
    assert!(!audit.contains("lou password") && !audit.contains("sam password"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.dir().join("state/audit.log"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test]
async fn explain_and_simulator_agree_with_a_real_login() {
    let d = start(&directory("", MAPS, &users("Engineering", &[DEVS, OPS])));
    let mut c = d.client().await;
    let real = c
        .post(
            "/v1/login",
            &json!({"username": "bob", "password": PW, "explain": true}),
        )
        .await
        .unwrap()
        .value();
    let explanation = &real["explanation"];
    assert_eq!(explanation["authenticators"][0]["outcome"], "accepted");
    let identity = json!({
        "uid": "bob", "username": "bob", "case_insensitive": true, "email": "bob@corp.example",
        "groups": [DEVS, OPS], "attributes": {"dept": ["Sales"]}
    });
    let sim = c
        .post(
            "/v1/maps/simulate",
            &json!({"authenticator": "Directory", "identity": identity}),
        )
        .await
        .unwrap();
    assert_eq!(sim.status, 200, "{:?}", sim.value());
    let sim = sim.value();
    assert_eq!(
        sim["maps"], explanation["maps"],
        "same maps, same triggers, same actions"
    );
    assert_eq!(sim["allowed"], true);
    assert_eq!(
        sim["is_superuser"], false,
        "not an admin, and the superuser map revokes"
    );
    assert_eq!(real["user"]["is_superuser"], false);
    let sim_teams: Vec<&str> = sim["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team"].as_str().unwrap())
        .collect();
    let real_teams: Vec<String> = teams(&real).into_iter().map(|t| t.0).collect();
    assert_eq!(sim_teams, real_teams);
    // the simulator writes nothing: a user it has never seen stays unknown
    let nobody = json!({"uid": "zed", "username": "zed", "groups": [BANNED]});
    let sim = c
        .post(
            "/v1/maps/simulate",
            &json!({"authenticator": "Directory", "identity": nobody}),
        )
        .await
        .unwrap()
        .value();
    assert_eq!(sim["allowed"], false);
    assert!(
        !c.get("/v1/users")
            .await
            .unwrap()
            .value()
            .to_string()
            .contains("zed")
    );
    // the trigger that decided is named
    let su = sim["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "not banned")
        .unwrap();
    assert!(su["decided_by"].as_str().unwrap().contains("has_not"), "{su}");
}

#[tokio::test]
async fn bad_maps_are_config_errors() {
    let d = start(LOCAL_AUTH);
    let mut c = d.client().await;
    for (maps, key) in [
        (
            "[[authenticators.maps]]\nmap_type = \"organization\"\ntriggers.always = {}\n",
            ".organization",
        ),
        (
            "[[authenticators.maps]]\nmap_type = \"team\"\norganization = \"O\"\ntriggers.always = {}\n",
            ".team",
        ),
        (
            "[[authenticators.maps]]\nmap_type = \"wizard\"\ntriggers.always = {}\n",
            ".map_type",
        ),
        ("[[authenticators.maps]]\nmap_type = \"allow\"\n", ".triggers"),
        (
            "[[authenticators.maps]]\nmap_type = \"allow\"\ntriggers.attributes = { email = { matches = \"(\" } }\n",
            ".triggers.attributes.email",
        ),
        (
            "[[authenticators.maps]]\nmap_type = \"allow\"\ntriggers.attributes = { email = { starts_with = \"a\" } }\n",
            ".triggers.attributes.email",
        ),
    ] {
        rewrite(&d, &format!("{LOCAL_AUTH}{maps}"));
        let a = c.post("/v1/reload", &json!({})).await.unwrap();
        assert_eq!(a.status, 422, "{maps}: {:?}", a.value());
        let e = a.error().unwrap().error.details.unwrap()["errors"][0].clone();
        assert!(e["key"].as_str().unwrap().ends_with(key), "{maps}: {e}");
        assert!(e["line"].is_u64(), "{e}");
    }
}
