//! The `ldap` authenticator against a real OpenLDAP (tests/peers/ldap),
//! through the socket.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{Daemon, LdapPeer, Setup, ldap_peer, login};
use serde_json::{Value, json};

const USERS: &str = "ou=users,dc=example,dc=test";
const GROUPS: &str = "ou=groups,dc=example,dc=test";

fn group(cn: &str) -> String {
    format!("cn={cn},{GROUPS}")
}

/// An `ldap` authenticator with the reader service account and extra settings.
fn ldap(p: &LdapPeer, extra: &str) -> String {
    format!(
        r#"
[[authenticators]]
name = "Corp LDAP"
type = "ldap"
[authenticators.settings]
server_uri = ["{uri}"]
bind_dn = "cn=reader,ou=services,dc=example,dc=test"
bind_password = "readerpass"
user_search = ["{USERS}", "SCOPE_SUBTREE", "(uid=%(user)s)"]
user_attr_map = {{ first_name = "givenName", last_name = "sn", email = "mail" }}
{extra}
"#,
        uri = p.uri
    )
}

fn start(body: &str) -> Daemon {
    Daemon::start(Setup::with_body(&format!(
        "[lockout]\nmax_failures = 1000\nmax_failures_per_peer = 1000\n{body}"
    )))
}

async fn status(d: &Daemon, user: &str, pw: &str) -> (u16, Value) {
    let a = login(&mut d.client().await, user, pw).await;
    (a.status, a.value())
}

#[tokio::test]
async fn dn_template_login_without_a_service_account() {
    let p = ldap_peer();
    let d = start(&format!(
        r#"
[[authenticators]]
name = "Template"
type = "ldap"
[authenticators.settings]
server_uri = "{}"
user_dn_template = "uid=%(user)s,{USERS}"
"#,
        p.uri
    ));
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["email"], "alice@example.test");
    assert_eq!(v["authenticator_uid"], "alice");
    assert_eq!(status(&d, "alice", "wrong").await.0, 401);
    assert_eq!(status(&d, "nobody", "alicepass").await.0, 401);
    // RFC 4514: a DN-significant character cannot smuggle another RDN
    assert_eq!(status(&d, "alice,ou=users", "alicepass").await.0, 401);
}

#[tokio::test]
async fn search_login_names_and_case() {
    let p = ldap_peer();
    let d = start(&ldap(&p, ""));
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["first_name"], "Alice");
    let mut ids = Vec::new();
    for name in ["Bob.Smith", "bob.smith", "BOB.SMITH"] {
        let (s, v) = status(&d, name, "bobpass").await;
        assert_eq!(s, 200, "{name}: {v}");
        assert_eq!(v["user"]["username"], "bob.smith");
        ids.push(v["user"]["id"].clone());
    }
    assert!(ids.iter().all(|i| *i == ids[0]));
    // non-ASCII uid and password
    let (s, v) = status(&d, "zoë", "zoepass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["username"], "zoë");
    let (s, v) = status(&d, "juergen", "jürgenpass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["last_name"], "Müller");
    assert_eq!(status(&d, "juergen", "jurgenpass").await.0, 401);
}

#[tokio::test]
async fn union_search_refuses_a_user_found_twice() {
    let p = ldap_peer();
    let d = start(&ldap(
        &p,
        "",
    )
    .replace(
        &format!("user_search = [\"{USERS}\", \"SCOPE_SUBTREE\", \"(uid=%(user)s)\"]"),
        &format!(
            "user_search = [[\"{USERS}\", \"SCOPE_SUBTREE\", \"(uid=%(user)s)\"], [\"ou=contractors,dc=example,dc=test\", \"SCOPE_ONELEVEL\", \"(uid=%(user)s)\"]]"
        ),
    ));
    assert_eq!(
        status(&d, "alice", "alicepass").await.0,
        401,
        "alice is in both subtrees"
    );
    assert_eq!(status(&d, "alice", "alicepass2").await.0, 401);
    assert_eq!(
        status(&d, "carl", "carlpass").await.0,
        200,
        "found once, in the second search"
    );
    assert_eq!(status(&d, "Bob.Smith", "bobpass").await.0, 200);
    assert!(d.logs().contains("found 2 times"), "{}", d.logs());
}

#[tokio::test]
async fn injection_strings_never_authenticate() {
    let p = ldap_peer();
    let d = start(&ldap(&p, ""));
    for user in [
        "*",
        "alic*",
        "*lice",
        ")(uid=*",
        "alice)(|(uid=*)",
        "*)(objectClass=*",
        "alice\u{0}",
        "\\2a",
        "alice\\00",
    ] {
        for pw in ["alicepass", "x"] {
            let (s, v) = status(&d, user, pw).await;
            assert_eq!(s, 401, "{user:?}/{pw}: {v}");
        }
    }
    // slapd's own log shows the searches it got: escaped, never widened
    let log_path = std::path::Path::new(&p.ca).with_file_name("slapd.log");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains(r#"filter="(uid=alic\2A)""#),
        "no escaped search in {}",
        log_path.display()
    );
    assert!(log.contains(r#"filter="(uid=\29\28uid=\2A)""#));
    assert!(
        !log.contains(r#"filter="(uid=alic*)""#) && !log.contains("(uid=*)"),
        "an unescaped search reached slapd"
    );
    // the empty password is refused before any bind (an empty simple bind
    // is an unauthenticated bind, which servers accept)
    for user in ["alice", "cn=admin,dc=example,dc=test"] {
        assert_eq!(status(&d, user, "").await.0, 401);
    }
}

#[tokio::test]
async fn starttls_ldaps_and_failover() {
    let p = ldap_peer();
    let starttls = ldap(&p, &format!("start_tls = true\nca_file = \"{}\"", p.ca));
    let d = start(&starttls);
    assert_eq!(status(&d, "alice", "alicepass").await.0, 200);

    let ldaps = ldap(&p, &format!("ca_file = \"{}\"", p.ca)).replace(&p.uri, &p.ldaps_uri);
    let d = start(&ldaps);
    assert_eq!(status(&d, "alice", "alicepass").await.0, 200);

    // the first URI is down: the second answers
    let failover = ldap(&p, "connection_options = { OPT_NETWORK_TIMEOUT = 2 }").replace(
        &format!("[\"{}\"]", p.uri),
        &format!("[\"ldap://127.0.0.1:1\", \"{}\"]", p.uri),
    );
    let d = start(&failover);
    assert_eq!(status(&d, "alice", "alicepass").await.0, 200);
    assert_eq!(
        status(&d, "alice", "alicepass").await.0,
        200,
        "the dead server is skipped"
    );

    // every server down: 503, not 401
    let down = ldap(&p, "").replace(&p.uri, "ldap://127.0.0.1:1");
    let d = start(&down);
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 503, "{v}");
}

#[tokio::test]
async fn ca_file_adds_to_the_system_roots() {
    // The directory's CA plays the system roots (SSL_CERT_FILE, read the way
    // ldap3 reads the platform store); ca_file names another, unrelated CA.
    // Adding: ldaps still verifies. Replacing (the old meaning): it would not.
    let p = ldap_peer();
    let dir = tempfile::tempdir().unwrap();
    let other = gatehouse_e2e::throwaway_ca(dir.path(), "other-ca");
    let body = ldap(&p, &format!("ca_file = \"{}\"", other.display())).replace(&p.uri, &p.ldaps_uri);
    let with_system_ca = |body: &str| {
        Daemon::start(Setup {
            env: vec![("SSL_CERT_FILE".into(), p.ca.clone())],
            ..Setup::with_body(&format!("[lockout]\nmax_failures = 1000\n{body}"))
        })
    };
    let d = with_system_ca(&body);
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 200, "the system roots still apply with a ca_file: {v}");
    drop(d);
    // control: without the directory's CA anywhere, ldaps is refused
    let d = start(&body);
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 503, "{v}");
}

#[tokio::test]
async fn wrong_service_password_is_backend_unavailable() {
    let p = ldap_peer();
    let d = start(&ldap(&p, "").replace(
        "bind_password = \"readerpass\"",
        "bind_password = \"not-the-password\"",
    ));
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "backend_unavailable");
    let logs = d.logs();
    assert!(logs.contains("was refused"), "{logs}");
    assert!(
        !logs.contains("not-the-password") && !logs.contains("alicepass"),
        "a secret in the log"
    );
}

fn groups_of(v: &Value) -> Vec<String> {
    v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_lowercase())
        .collect()
}

async fn groups_with(
    p: &LdapPeer,
    group_type: &str,
    filter: &str,
    params: &str,
    user: &str,
    pw: &str,
) -> Vec<String> {
    let d = start(&ldap(
        p,
        &format!(
            "group_type = \"{group_type}\"\ngroup_search = [\"{GROUPS}\", \"SCOPE_SUBTREE\", \"{filter}\"]\n{params}"
        ),
    ));
    let (s, v) = status(&d, user, pw).await;
    assert_eq!(s, 200, "{group_type} {user}: {v}");
    groups_of(&v)
}

#[tokio::test]
async fn every_group_type() {
    let p = ldap_peer();
    let g = |cn: &str| group(cn).to_lowercase();
    let posix = groups_with(
        &p,
        "PosixGroupType",
        "(objectClass=posixGroup)",
        "",
        "alice",
        "alicepass",
    )
    .await;
    assert!(
        posix.contains(&g("developers")) && posix.contains(&"developers".into()),
        "{posix:?}"
    );
    let posix = groups_with(
        &p,
        "PosixGroupType",
        "(objectClass=posixGroup)",
        "",
        "juergen",
        "jürgenpass",
    )
    .await;
    assert!(posix.contains(&g("staff")), "{posix:?}");

    let gon = groups_with(
        &p,
        "GroupOfNamesType",
        "(objectClass=groupOfNames)",
        "",
        "alice",
        "alicepass",
    )
    .await;
    assert!(
        gon.contains(&g("admins")) && !gon.contains(&g("all-staff")),
        "not nested: {gon:?}"
    );

    let nested = groups_with(
        &p,
        "NestedGroupOfNamesType",
        "(objectClass=groupOfNames)",
        "",
        "alice",
        "alicepass",
    )
    .await;
    for cn in ["admins", "all-staff", "everyone"] {
        assert!(nested.contains(&g(cn)), "{cn}: {nested:?}");
    }

    let unique = groups_with(
        &p,
        "GroupOfUniqueNamesType",
        "(objectClass=groupOfUniqueNames)",
        "",
        "Bob.Smith",
        "bobpass",
    )
    .await;
    assert!(unique.contains(&g("operators")), "{unique:?}");

    let role = groups_with(
        &p,
        "OrganizationalRoleGroupType",
        "(objectClass=organizationalRole)",
        "",
        "dave",
        "davepass",
    )
    .await;
    assert!(role.contains(&g("auditors")), "{role:?}");

    let member_dn = groups_with(
        &p,
        "MemberDNGroupType",
        "(objectClass=groupOfUniqueNames)",
        "group_type_params = { member_attr = \"uniqueMember\", name_attr = \"cn\" }",
        "juergen",
        "jürgenpass",
    )
    .await;
    assert!(member_dn.contains(&g("operators")), "{member_dn:?}");

    // cycles end: dave is in cyclic-b, cyclic-b in cyclic-a, cyclic-a in cyclic-b
    let cyclic = groups_with(
        &p,
        "NestedGroupOfNamesType",
        "(objectClass=groupOfNames)",
        "",
        "dave",
        "davepass",
    )
    .await;
    assert!(
        cyclic.contains(&g("cyclic-a")) && cyclic.contains(&g("cyclic-b")),
        "{cyclic:?}"
    );
}

#[tokio::test]
async fn groups_feed_maps_and_require_deny() {
    let p = ldap_peer();
    let body = ldap(
        &p,
        &format!(
            r#"group_type = "NestedGroupOfNamesType"
group_search = ["{GROUPS}", "SCOPE_SUBTREE", "(objectClass=groupOfNames)"]
[[authenticators.maps]]
map_type = "team"
organization = "Default"
team = "Everyone"
triggers.groups = {{ has_or = ["{}"] }}
[[authenticators.maps]]
map_type = "is_superuser"
triggers.groups = {{ has_or = ["admins"] }}
"#,
            group("everyone")
        ),
    );
    let d = start(&body);
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["teams"],
        json!([{"name": "Everyone", "organization": "Default", "admin": false}]),
        "nested DN"
    );
    assert_eq!(v["user"]["is_superuser"], true, "group names match too");
    let (_, v) = status(&d, "dave", "davepass").await;
    assert_eq!(v["teams"], json!([]));

    let required = ldap(
        &p,
        &format!(
            "group_type = \"NestedGroupOfNamesType\"\ngroup_search = [\"{GROUPS}\", \"SCOPE_SUBTREE\", \"(objectClass=groupOfNames)\"]\nrequire_group = \"{}\"\ndeny_group = \"{}\"",
            group("everyone"),
            group("admins")
        ),
    );
    let d = start(&required);
    let (s, v) = status(&d, "juergen", "jürgenpass").await;
    assert_eq!(s, 200, "in everyone via all-staff: {v}");
    let (s, v) = status(&d, "dave", "davepass").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("login_denied")),
        "not in everyone"
    );
    let (s, _) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 403, "admins are denied");
}

/// Aborts the TCP connections process `pid` holds to 127.0.0.1:`port`
/// (`ss -K`, as a server's idle timeout or restart would end them); how
/// many.
fn abort_connections(pid: u32, port: u16) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut killed = 0;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(inode)) = (f.get(1), f.get(2), f.get(9)) else {
            continue;
        };
        let port_of = |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap(), 16).unwrap();
        if port_of(remote) != port || !inodes.iter().any(|i| i == inode) {
            continue;
        }
        let out = std::process::Command::new("ss")
            .args(["-K", "-t", "dst", "127.0.0.1", "dport", "=", &port.to_string()])
            .args(["sport", "=", &port_of(local).to_string()])
            .output()
            .expect("ss (iproute2)");
        assert!(out.status.success(), "{out:?}");
        killed += 1;
    }
    killed
}

#[tokio::test]
async fn pooled_connections_the_server_dropped_are_replaced() {
    let p = ldap_peer();
    let port: u16 = p.uri.rsplit(':').next().unwrap().parse().unwrap();
    let d = start(&ldap(&p, "pool_size = 2"));
    for _ in 0..3 {
        assert_eq!(status(&d, "alice", "alicepass").await.0, 200);
    }
    // the pooled service and bind connections die under the daemon
    assert!(
        abort_connections(d.pid(), port) > 0,
        "no pooled connection to abort"
    );
    let (s, v) = status(&d, "alice", "alicepass").await;
    assert_eq!(s, 200, "one retry on fresh connections: {v}");
    let (s, v) = status(&d, "bob.smith", "bobpass").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(status(&d, "alice", "wrong").await.0, 401);
}
