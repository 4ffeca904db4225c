//! Many hosts, one identity: two daemons on one PostgreSQL database (the
//! real server of `tests/peers/pg`, a database per test). A user created
//! through one logs in through the other; a lockout counts across both; a
//! redirect login started on one finishes on the other; concurrent first
//! logins of one new user make one user; and PostgreSQL restarted under
//! load: requests fail cleanly while it is down, recover without
//! restarting the daemons, and no row is lost or doubled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_daemon::client::Client;
use gatehouse_e2e::pg::{PgCluster, pg_peer, pg_start, pg_stop};
use gatehouse_e2e::{Daemon, LOCAL_AUTH, Setup, add_user, daemon_with_plugins, login};
use serde_json::json;

/// The cluster the restart test stops and starts (its own, so the other
/// tests keep theirs).
const RESTART_PORT: u16 = 19431;

const PUBLIC_URL: &str = "public_url = \"https://app.example.test/auth\"";

fn redirect_body() -> String {
    let mut users = String::new();
    for u in ["alice", "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"] {
        users.push_str(&format!(
            "[authenticators.settings.users.{u}]\nemail = \"{u}@example.test\"\n"
        ));
    }
    format!(
        "[[authenticators]]\nname = \"Corp IdP\"\ntype = \"testkit_redirect\"\nisolation = \"in_process\"\n[authenticators.settings]\nidp_url = \"https://idp.example.test/authorize\"\n{users}"
    )
}

/// Two daemons on one new database of `pg`, with the local authenticator
/// and the testkit redirect one; `[lockout]` as given.
fn pair(pg: &PgCluster, lockout: &str) -> (Daemon, Daemon, String, tempfile::TempDir) {
    let db = pg.database("multi");
    let secrets = tempfile::tempdir().unwrap();
    let body = format!(
        "{}\n{lockout}\n{LOCAL_AUTH}\n{}",
        pg.store_table(&db, secrets.path()),
        redirect_body()
    );
    let setup = Setup {
        daemon_extra: PUBLIC_URL.into(),
        ..Setup::with_body(&body)
    };
    let a = daemon_with_plugins(setup.clone(), &["gatehouse_plugin_testkit"]);
    let b = daemon_with_plugins(setup, &["gatehouse_plugin_testkit"]);
    (a, b, db, secrets)
}

async fn start(c: &mut Client) -> (String, String) {
    let a = c
        .post("/v1/login/start", &json!({"authenticator": "Corp IdP"}))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    let v = a.value();
    let url = v["redirect_url"].as_str().unwrap().to_owned();
    let state = v["state"].as_str().unwrap().to_owned();
    let nonce = url
        .split("nonce=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    (state, nonce)
}

async fn finish(c: &mut Client, state: &str, code: &str) -> gatehouse_daemon::client::Answer {
    c.post(
        "/v1/login/finish",
        &json!({"authenticator": "Corp IdP", "params": {"state": state, "code": code}}),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_user_created_through_one_logs_in_through_the_other() {
    let pg = pg_peer();
    let (a, b, db, _s) = pair(&pg, "");
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    assert_eq!(
        add_user(&mut ca, "ann", "correct horse battery").await.status,
        201
    );
    let ok = login(&mut cb, "ann", "correct horse battery").await;
    assert_eq!(ok.status, 200, "{:?}", ok.value());
    assert_eq!(ok.value()["user"]["username"], "ann");
    let bad = login(&mut cb, "ann", "wrong password!").await;
    assert_eq!(bad.status, 401);
    // one row, in the shared database
    assert_eq!(pg.count(&db, "SELECT 1 FROM users WHERE username = 'ann'"), 1);
    // the other way round, and a user deleted on one is gone on the other
    assert_eq!(add_user(&mut cb, "bo", "correct horse battery").await.status, 201);
    assert_eq!(login(&mut ca, "bo", "correct horse battery").await.status, 200);
    assert_eq!(ca.delete("/v1/users/bo").await.unwrap().status, 204);
    assert_eq!(login(&mut cb, "bo", "correct horse battery").await.status, 401);
}

#[tokio::test]
async fn a_lockout_counts_across_both() {
    let pg = pg_peer();
    let (a, b, _db, _s) = pair(&pg, "[lockout]\nmax_failures = 3\nwindow = \"5m\"\n");
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    assert_eq!(add_user(&mut ca, "cy", "correct horse battery").await.status, 201);
    // two failures on A, one on B: neither alone reaches 3
    assert_eq!(login(&mut ca, "cy", "wrong password!").await.status, 401);
    assert_eq!(login(&mut ca, "cy", "wrong password!").await.status, 401);
    assert_eq!(login(&mut cb, "cy", "wrong password!").await.status, 401);
    // the right password is refused now, on both
    for c in [&mut ca, &mut cb] {
        let locked = login(c, "cy", "correct horse battery").await;
        assert_eq!(locked.status, 429, "{:?}", locked.value());
    }
    // another user is not affected
    assert_eq!(
        add_user(&mut cb, "dee", "correct horse battery").await.status,
        201
    );
    assert_eq!(login(&mut ca, "dee", "correct horse battery").await.status, 200);
    // a success on one host resets the counter both count in (inside the
    // login's own transaction): two failures on B, a success on A, two
    // more failures on B, and A still lets dee in
    for _ in 0..2 {
        assert_eq!(login(&mut cb, "dee", "wrong password!").await.status, 401);
    }
    assert_eq!(login(&mut ca, "dee", "correct horse battery").await.status, 200);
    for _ in 0..2 {
        assert_eq!(login(&mut cb, "dee", "wrong password!").await.status, 401);
    }
    assert_eq!(login(&mut ca, "dee", "correct horse battery").await.status, 200);
}

#[tokio::test]
async fn a_redirect_login_started_on_one_finishes_on_the_other() {
    let pg = pg_peer();
    let (a, b, db, _s) = pair(&pg, "");
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    let (state, nonce) = start(&mut ca).await;
    let ok = finish(&mut cb, &state, &format!("alice.{nonce}")).await;
    assert_eq!(ok.status, 200, "{:?}", ok.value());
    assert_eq!(ok.value()["user"]["username"], "alice");
    // the state is spent for both hosts
    for c in [&mut ca, &mut cb] {
        let replay = finish(c, &state, &format!("alice.{nonce}")).await;
        assert_eq!(replay.status, 401, "{:?}", replay.value());
    }
    assert_eq!(pg.count(&db, "SELECT 1 FROM users WHERE username = 'alice'"), 1);
}

#[tokio::test]
async fn concurrent_first_logins_of_one_new_user_make_one_user() {
    let pg = pg_peer();
    let (a, b, db, _s) = pair(&pg, "");
    for u in ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"] {
        let mut ca = a.client().await;
        let mut cb = b.client().await;
        let (sa, na) = start(&mut ca).await;
        let (sb, nb) = start(&mut cb).await;
        let (code_a, code_b) = (format!("{u}.{na}"), format!("{u}.{nb}"));
        let (ra, rb) = tokio::join!(finish(&mut ca, &sa, &code_a), finish(&mut cb, &sb, &code_b));
        assert_eq!(
            (ra.status, rb.status),
            (200, 200),
            "{:?} {:?}",
            ra.value(),
            rb.value()
        );
        assert_eq!(
            ra.value()["user"]["id"],
            rb.value()["user"]["id"],
            "both logins name one user"
        );
        assert_eq!(
            pg.count(&db, &format!("SELECT 1 FROM users WHERE username = '{u}'")),
            1,
            "{u}"
        );
        assert_eq!(
            pg.count(
                &db,
                &format!(
                    "SELECT 1 FROM authenticator_users WHERE uid = '{u}' AND authenticator = 'Corp IdP'"
                )
            ),
            1,
            "{u}"
        );
    }
}

/// A jwt verifier with one ES256 key the test signs with: checking its
/// tokens needs no store.
fn token_setup(d: &Daemon) -> String {
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    const ISSUER: &str = "http://127.0.0.1:9/multi-node-issuer";
    let pem = gatehouse_e2e::openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        "",
    );
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let dir = d.dir().join("state/plugins/cc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(gatehouse_plugin_jwt::persisted_keys_file(ISSUER)),
        serde_json::to_vec(&JwkSet { keys: vec![jwk] }).unwrap(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    jsonwebtoken::encode(
        &h,
        &json!({"iss": ISSUER, "sub": "svc", "aud": "multi", "exp": now + 3600, "iat": now - 5}),
        &key,
    )
    .unwrap()
}

fn verifier_table() -> &'static str {
    "[[verifiers]]\nname = \"cc\"\ntype = \"jwt\"\n[verifiers.settings]\naudience = \"multi\"\nissuers = [\"http://127.0.0.1:9/multi-node-issuer\"]\nfetch_timeout = \"1s\"\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load() {
    let pg = pg_start(RESTART_PORT);
    let db = pg.database("restart");
    let secrets = tempfile::tempdir().unwrap();
    let body = format!(
        "{}\n{LOCAL_AUTH}\n{}",
        pg.store_table(&db, secrets.path()),
        verifier_table()
    );
    let setup = Setup::with_body(&body);
    let spawn = || {
        let d = Daemon::prepare(&setup);
        let token = token_setup(&d);
        let mut cmd = Command::new(gatehouse_e2e::bin("gatehoused"));
        cmd.arg("--config").arg(&d.config);
        (d.spawn_with(cmd), token)
    };
    let (a, token_a) = spawn();
    let (b, _) = spawn();
    let mut ca = a.client().await;
    assert_eq!(
        add_user(&mut ca, "before", "correct horse battery").await.status,
        201
    );

    // load: both daemons create users without pause, recording each answer
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for (host, d) in [("a", &a), ("b", &b)] {
        let socket = d.socket.clone();
        let (created, failed, stop) = (Arc::clone(&created), Arc::clone(&failed), Arc::clone(&stop));
        load.push(tokio::spawn(async move {
            let mut n = 0;
            let mut other = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("{host}-{n}");
                n += 1;
                let mut c = Client::connect(&socket).await.unwrap();
                let r = add_user(&mut c, &name, "correct horse battery").await;
                match r.status {
                    201 => created.lock().unwrap().push(name),
                    503 => {
                        assert_eq!(
                            r.code().as_deref(),
                            Some("backend_unavailable"),
                            "{:?}",
                            r.value()
                        );
                        failed.lock().unwrap().push(name);
                    }
                    s => other.push((s, r.value())),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_outage = created.lock().unwrap().len();
    assert!(before_outage > 0, "the load made users before the outage");

    pg_stop(RESTART_PORT);
    let failed_before = failed.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // down: what needs the store says so, quickly and cleanly
    let started = Instant::now();
    let down = login(&mut ca, "before", "correct horse battery").await;
    assert_eq!(down.status, 503, "{:?}", down.value());
    assert_eq!(down.code().as_deref(), Some("backend_unavailable"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // ...while a token check that needs no state goes on working
    let v = ca
        .post("/v1/tokens/verify", &json!({"token": token_a}))
        .await
        .unwrap();
    assert_eq!(v.status, 200, "{:?}", v.value());
    assert!(
        failed.lock().unwrap().len() > failed_before,
        "requests failed while PostgreSQL was down"
    );

    // back up: both daemons recover on their own
    let pg = pg_start(RESTART_PORT);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut recovered = [false, false];
    while recovered != [true, true] {
        assert!(
            Instant::now() < deadline,
            "no recovery after PostgreSQL came back"
        );
        for (i, d) in [&a, &b].into_iter().enumerate() {
            let mut c = d.client().await;
            if login(&mut c, "before", "correct horse battery").await.status == 200 {
                recovered[i] = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = created.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        created.lock().unwrap().len() > after,
        "the load goes on succeeding after recovery"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        let other = t.await.unwrap();
        assert!(other.is_empty(), "answers other than 201/503: {other:?}");
    }

    // no duplicate and no lost rows: every user whose creation was
    // acknowledged is there once; the rest are failed attempts (a commit
    // whose acknowledgement was lost may be there, once)
    let created: BTreeSet<String> = created.lock().unwrap().iter().cloned().collect();
    let failed: BTreeSet<String> = failed.lock().unwrap().iter().cloned().collect();
    let rows = pg.usernames(&db);
    let in_db: BTreeSet<String> = rows.iter().cloned().collect();
    assert_eq!(rows.len(), in_db.len(), "no duplicate usernames");
    for u in &created {
        assert!(in_db.contains(u), "{u} was acknowledged but is missing");
    }
    for u in &in_db {
        assert!(
            u == "before" || created.contains(u) || failed.contains(u),
            "{u} was never asked for"
        );
    }
    // and a user made before the outage logs in through both
    let mut cb = b.client().await;
    let some = created.iter().next().unwrap();
    assert_eq!(login(&mut cb, some, "correct horse battery").await.status, 200);
    // the outage was logged, without the database password
    let logs = a.logs();
    assert!(logs.contains("PostgreSQL"), "{logs}");
    assert!(!logs.contains(&pg.password()), "{logs}");

    // a restart while the daemons are idle costs no request at all: idle
    // connections are checked before they are used again
    tokio::time::sleep(Duration::from_millis(1200)).await;
    pg_stop(RESTART_PORT);
    let _pg = pg_start(RESTART_PORT);
    for d in [&a, &b] {
        let mut c = d.client().await;
        let r = login(&mut c, "before", "correct horse battery").await;
        assert_eq!(
            r.status,
            200,
            "the first request after a quiet restart: {:?}",
            r.value()
        );
    }
}

#[tokio::test]
async fn the_migration_command_moves_a_populated_sqlite_store() {
    let pg = pg_peer();
    // a single host on SQLite, with local and redirect users, a grant-free
    // link, a failed login counted, and a pending redirect login
    let setup = Setup {
        daemon_extra: PUBLIC_URL.into(),
        ..Setup::with_body(&format!("{LOCAL_AUTH}\n{}", redirect_body()))
    };
    let mut single = daemon_with_plugins(setup.clone(), &["gatehouse_plugin_testkit"]);
    let mut c = single.client().await;
    for u in ["ann", "bo", "cy"] {
        assert_eq!(add_user(&mut c, u, "correct horse battery").await.status, 201);
    }
    let (state, nonce) = start(&mut c).await;
    let alice = finish(&mut c, &state, &format!("alice.{nonce}")).await;
    assert_eq!(alice.status, 200, "{:?}", alice.value());
    let alice_id = alice.value()["user"]["id"].clone();
    assert_eq!(login(&mut c, "bo", "wrong password!").await.status, 401);
    let (pending_state, pending_nonce) = start(&mut c).await;
    drop(c);
    single.signal("TERM");
    assert!(single.wait_exit(Duration::from_secs(10)).is_some());
    let sqlite = single.dir().join("state/gatehouse.db");
    assert!(sqlite.is_file());

    let db = pg.database("migrate");
    let secrets = tempfile::tempdir().unwrap();
    let store = pg.store_table(&db, secrets.path());
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}?sslmode=require", pg.port);
    let migrate = |from: &str| {
        Command::new(gatehouse_e2e::bin("gatehouse"))
            .args([
                "store",
                "migrate",
                "--from",
                from,
                "--to",
                &url,
                "--password-file",
            ])
            .arg(secrets.path().join(format!("pg-password-{db}")))
            .arg("--ca-file")
            .arg(&pg.ca)
            .output()
            .unwrap()
    };
    let from = format!("sqlite:{}", sqlite.display());
    let out = migrate(&from);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("users                4 rows"), "{stdout}");
    assert!(stdout.contains("authenticator_users  1 rows"), "{stdout}");
    assert!(!stdout.contains(&pg.password()), "no password in the output");
    assert_eq!(pg.count(&db, "SELECT 1 FROM users"), 4);

    // a second run refuses: the target is not empty
    let again = migrate(&from);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // and a missing source is a clear error
    let missing = migrate("sqlite:/nonexistent/gatehouse.db");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no SQLite store"));

    // two hosts on the moved store: the same users, the same links
    let setup = Setup {
        daemon_extra: PUBLIC_URL.into(),
        ..Setup::with_body(&format!("{store}\n{LOCAL_AUTH}\n{}", redirect_body()))
    };
    let a = daemon_with_plugins(setup.clone(), &["gatehouse_plugin_testkit"]);
    let b = daemon_with_plugins(setup, &["gatehouse_plugin_testkit"]);
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    assert_eq!(login(&mut ca, "ann", "correct horse battery").await.status, 200);
    assert_eq!(login(&mut cb, "cy", "correct horse battery").await.status, 200);
    let (state, nonce) = start(&mut cb).await;
    let again = finish(&mut ca, &state, &format!("alice.{nonce}")).await;
    assert_eq!(again.status, 200, "{:?}", again.value());
    assert_eq!(
        again.value()["user"]["id"],
        alice_id,
        "the link moved with its user"
    );
    // the pending login started before the move finishes after it
    let late = finish(&mut cb, &pending_state, &format!("alice.{pending_nonce}")).await;
    assert_eq!(late.status, 200, "{:?}", late.value());
    // new users get new ids after the moved ones
    assert_eq!(
        add_user(&mut ca, "dee", "correct horse battery").await.status,
        201
    );
    assert_eq!(pg.count(&db, "SELECT 1 FROM users"), 5);
}

/// A catalog in which duo_chat is free (no cut-off date).
const CATALOG: &str = "services:
  duo_chat:
    backend: gitlab-ai-gateway
    bundled_with:
      duo_pro:
        unit_primitives:
          - duo_chat
";

/// Two daemons with an `[issuer]` on one database of `pg`.
fn issuer_pair(pg: &PgCluster) -> (Daemon, Daemon, tempfile::TempDir) {
    let (a, b, files, _) = issuer_pair_with(pg, "");
    (a, b, files)
}

/// [`issuer_pair`] with more `[issuer]` lines; also the database's name
/// and the setup's body.
fn issuer_pair_with(
    pg: &PgCluster,
    issuer_extra: &str,
) -> (Daemon, Daemon, tempfile::TempDir, (String, String)) {
    let db = pg.database("multi");
    let files = tempfile::tempdir().unwrap();
    let catalog = files.path().join("catalog.yml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let body = format!(
        "{}\n{LOCAL_AUTH}\n[issuer]\nurl = \"https://issuer.example.test\"\nalgorithm = \"ES256\"\ncatalog = \"{}\"\ninstance_id = \"multi\"\ntoken_ttl = \"10m\"\n{issuer_extra}",
        pg.store_table(&db, files.path()),
        catalog.display()
    );
    let setup = Setup::with_body(&body);
    (
        Daemon::start(setup.clone()),
        Daemon::start(setup),
        files,
        (db, body),
    )
}

/// The JWKS a daemon publishes, as a key set, with its key ids.
async fn jwks(d: &Daemon) -> (gatehouse_sdk::jose::KeySet, BTreeSet<String>) {
    let a = d.client().await.get("/v1/jwks").await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.value());
    let kids = a.value()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    (gatehouse_sdk::jose::KeySet::from_json(&a.body).unwrap(), kids)
}

/// Whether `token`'s signature verifies with `keys`, and its `kid`.
fn signed_by(keys: &gatehouse_sdk::jose::KeySet, token: &str) -> (bool, String) {
    use gatehouse_sdk::jose::jws;
    let allowed = jws::allowed_algorithms(&["ES256"]).unwrap();
    let parsed = jws::parse(token, &allowed).unwrap();
    let kid = parsed.kid.clone().unwrap_or_default();
    (keys.check(&parsed) == Some(true), kid)
}

async fn login_token(d: &Daemon, user: &str) -> String {
    let a = login(&mut d.client().await, user, "correct horse battery").await;
    assert_eq!(a.status, 200, "{:?}", a.value());
    a.value()["token"].as_str().expect("a login token").to_owned()
}

#[tokio::test]
async fn both_hosts_sign_with_one_keyring_and_publish_each_others_rotations() {
    let pg = pg_peer();
    let (a, b, _files) = issuer_pair(&pg);
    assert_eq!(
        add_user(&mut a.client().await, "ann", "correct horse battery")
            .await
            .status,
        201
    );
    // one keyring: the same JWKS on both, and a token of either verifies
    // with the other's
    let (keys_a, kids_a) = jwks(&a).await;
    let (keys_b, kids_b) = jwks(&b).await;
    assert_eq!(kids_a.len(), 1);
    assert_eq!(kids_a, kids_b);
    let from_a = login_token(&a, "ann").await;
    let from_b = login_token(&b, "ann").await;
    assert!(signed_by(&keys_b, &from_a).0);
    assert!(signed_by(&keys_a, &from_b).0);

    // a rotation on B: A signs with the new key once it looks in the
    // store again (within 5 s), its old tokens still verify, and A's JWKS
    // has both keys
    jwks(&a).await;
    let a_read_at = Instant::now();
    let r = b
        .client()
        .await
        .post("/v1/issuer/rotate", &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.value());
    let new_kid = r.value()["kid"].as_str().unwrap().to_owned();
    let (keys_b, kids_b) = jwks(&b).await;
    assert!(kids_b.contains(&new_kid) && kids_b.len() == 2, "{kids_b:?}");
    assert!(signed_by(&keys_b, &from_a).0, "a token of the retired key");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut old_kid_seen = false;
    let first_login_at = Instant::now();
    loop {
        let (ok, kid) = signed_by(&keys_b, &login_token(&a, "ann").await);
        assert!(ok);
        if kid == new_kid {
            break;
        }
        old_kid_seen = true;
        assert!(Instant::now() < deadline, "A still signs with {kid}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // (unless this machine took seconds to get here, A kept its keys for
    // a while: the refresh, not the JWKS read, brought the new one)
    if first_login_at - a_read_at < Duration::from_secs(3) {
        assert!(old_kid_seen, "A read the store again at once");
    }
    assert_eq!(jwks(&a).await.1, kids_b);
    // a restart of A keeps the shared keys
    let mut a = a;
    a.restart();
    assert_eq!(jwks(&a).await.1, jwks(&b).await.1);
}

/// The keyring document as PostgreSQL holds it.
fn stored_keyring(pg: &PgCluster, db: &str) -> String {
    pg.with(db, |c| {
        c.query_one("SELECT value FROM documents WHERE name = 'issuer.keyring'", &[])
            .expect("the keyring document")
            .get(0)
    })
}

#[tokio::test]
async fn a_sealed_keyring_is_ciphertext_in_postgres_and_a_host_without_its_key_refuses_it() {
    use base64::Engine as _;
    let pg = pg_peer();
    let keys = tempfile::tempdir().unwrap();
    let write_key = |name: &str, byte: u8| {
        let path = keys.path().join(name);
        let text = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        (path, text)
    };
    let (k1, k1_text) = write_key("k1", 1);
    let (k2, _) = write_key("k2", 2);
    let (a, b, _files, (db, body)) =
        issuer_pair_with(&pg, &format!("keyring_key_file = \"{}\"\n", k1.display()));
    assert_eq!(
        add_user(&mut a.client().await, "ann", "correct horse battery")
            .await
            .status,
        201
    );
    // one keyring for both hosts, and no private key in the database
    let (keys_a, kids_a) = jwks(&a).await;
    assert_eq!(kids_a, jwks(&b).await.1);
    assert!(signed_by(&keys_a, &login_token(&b, "ann").await).0);
    let stored = stored_keyring(&pg, &db);
    assert!(stored.contains("A256GCM"), "{stored}");
    for secret in ["pkcs8", "\"d\"", k1_text.as_str()] {
        assert!(!stored.contains(secret), "{secret} in {stored}");
    }

    // B given another key: the reload is refused, nothing is rewritten,
    // and B keeps signing with the keys it had
    let wrong = body.replace(&k1.display().to_string(), &k2.display().to_string());
    b.replace_config(&Setup::with_body(&wrong));
    let r = b.client().await.post("/v1/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 422, "{:?}", r.value());
    let errors = r.value()["error"]["details"]["errors"].to_string();
    assert!(errors.contains("sealed with key id"), "{errors}");
    assert!(!errors.contains(&k1_text), "{errors}");
    assert_eq!(stored_keyring(&pg, &db), stored);
    assert!(signed_by(&keys_a, &login_token(&b, "ann").await).0);

    // the new key with the old one beside it: B seals the keyring again
    // under the new key, and A (old key only) is told why it cannot read it
    let moved = format!("{wrong}keyring_previous_key_file = \"{}\"\n", k1.display());
    b.replace_config(&Setup::with_body(&moved));
    let r = b.client().await.post("/v1/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.value());
    let resealed = stored_keyring(&pg, &db);
    assert!(resealed != stored && !resealed.contains("pkcs8"), "{resealed}");
    assert_eq!(jwks(&b).await.1, kids_a);
    let r = a.client().await.get("/v1/jwks").await.unwrap();
    assert_eq!(r.status, 503, "{:?}", r.value());
}
