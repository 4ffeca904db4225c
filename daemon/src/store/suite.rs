//! One store test suite, run against SQLite and PostgreSQL: each case
//! takes an `Arc<dyn Store>`, and [`both!`] makes a test of it per backend.
//! The PostgreSQL cases use the throwaway cluster of `tests/peers/pg`
//! (started once per test binary) with a new database per case.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use gatehouse_sdk::Secret;

use super::*;

/// A fresh SQLite store (the directory lives as long as the store).
fn sqlite() -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("g.db")).unwrap();
    (Arc::new(s), Box::new(dir))
}

/// The test cluster: (superuser URL, CA file).
fn pg_cluster() -> (String, String) {
    static PEER: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PEER.get_or_init(|| {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/pg/start.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .expect("run tests/peers/pg/start.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "PostgreSQL did not start:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} missing:\n{stdout}"))
                .to_owned()
        };
        (get("GH_PG_URL"), get("GH_PG_CA"))
    })
    .clone()
}

/// A new, empty database on the test cluster; its settings.
pub(crate) fn pg_database() -> PostgresSettings {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let (url, ca) = pg_cluster();
    let name = format!(
        "gh_suite_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin =
        ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect to the test cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    PostgresSettings {
        url: Secret::new(format!(
            "{}/{name}?sslmode=require",
            url.rsplit_once('/').unwrap().0
        )),
        password: None,
        pool_size: 4,
        connect_timeout: Duration::from_secs(5),
        ca_file: Some(ca.into()),
    }
}

fn postgres() -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
    let s = PostgresStore::open(&pg_database()).expect("open the PostgreSQL store");
    (Arc::new(s), Box::new(()))
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (s, _keep) = super::sqlite();
                    super::$name(s).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (s, _keep) = tokio::task::spawn_blocking(super::postgres).await.unwrap();
                    super::$name(s).await;
                }
            )*
        }
    };
}

both!(
    schema_is_current,
    users_round_trip_and_conflict,
    organizations_teams_grants,
    a_failed_transaction_writes_nothing,
    concurrent_transactions_make_one_user,
    pending_logins_are_single_use_bound_and_expiring,
    static_tokens,
    entitlements,
    claims_are_once_until_expiry,
    lockout_counters,
    documents_are_replaced_only_at_the_version_read,
    offline_verifiers_are_kept_replaced_and_go_with_their_user,
    host_lookups_and_ids_never_reused,
);

async fn schema_is_current(s: Arc<dyn Store>) {
    assert_eq!(s.schema_version().await.unwrap(), 9);
}

async fn users_round_trip_and_conflict(s: Arc<dyn Store>) {
    let u = s
        .create_user(NewUser {
            username: "ann".into(),
            email: Some("ann@example.test".into()),
            password_hash: Some(Secret::new("h1")),
            ..NewUser::default()
        })
        .await
        .unwrap();
    assert_eq!(u.username, "ann");
    assert_eq!(u.email.as_deref(), Some("ann@example.test"));
    assert!(!u.is_superuser);
    let dup = s
        .create_user(NewUser {
            username: "ann".into(),
            ..NewUser::default()
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert!(s.set_password_hash("ann", Secret::new("h2")).await.unwrap());
    assert!(!s.set_password_hash("nobody", Secret::new("h2")).await.unwrap());
    assert_eq!(
        s.user_by_username("ann").await.unwrap().unwrap().password_hash,
        Some(Secret::new("h2"))
    );
    assert!(s.user_by_username("bob").await.unwrap().is_none());
    s.create_user(NewUser {
        username: "bob".into(),
        ..NewUser::default()
    })
    .await
    .unwrap();
    let names: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["ann", "bob"]);
    let id = u.id;
    s.atomically(move |tx| tx.link_user("Local", "ann", id))
        .await
        .unwrap();
    assert_eq!(s.linked_user("Local", "ann").await.unwrap().unwrap().id, id);
    assert!(s.linked_user("Local", "bob").await.unwrap().is_none());
    assert!(s.delete_user("ann").await.unwrap());
    assert!(s.linked_user("Local", "ann").await.unwrap().is_none());
    assert!(!s.delete_user("ann").await.unwrap());
}

async fn organizations_teams_grants(s: Arc<dyn Store>) {
    let u = s
        .create_user(NewUser {
            username: "ann".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let uid = u.id;
    s.atomically(move |tx| {
        assert_eq!(tx.organization("Default", false)?, None);
        let (org, created) = tx.organization("Default", true)?.unwrap();
        assert!(created);
        assert_eq!(tx.organization("Default", true)?, Some((org, false)));
        assert_eq!(tx.team(org, "Devs", false)?, None);
        let (team, created) = tx.team(org, "Devs", true)?.unwrap();
        assert!(created);
        assert_eq!(tx.team(org, "Devs", true)?, Some((team, false)));
        assert!(tx.grant(uid, Some(org), None, "Organization Member", "A")?);
        assert!(tx.grant(uid, Some(org), Some(team), "Team Member", "A")?);
        assert!(!tx.grant(uid, Some(org), Some(team), "Team Member", "B")?);
        assert!(tx.grant(uid, None, None, "Auditor", "A")?);
        let g = tx.grants(uid)?;
        assert_eq!(g.len(), 3, "{g:?}");
        assert!(
            g.iter()
                .any(|g| g.team.as_deref() == Some("Devs") && g.authenticator == "B")
        );
        assert!(tx.revoke(uid, None, None, "Auditor")?);
        assert!(!tx.revoke(uid, None, None, "Auditor")?);
        tx.link_user("A", "ann", uid)?;
        assert_eq!(tx.move_link("A", "C", "ann")?, Some(uid));
        assert_eq!(tx.move_link("A", "C", "ann")?, None);
        assert!(tx.linked_user("A", "ann")?.is_none());
        assert_eq!(tx.linked_user("C", "ann")?.unwrap().id, uid);
        assert!(
            tx.grants(uid)?
                .iter()
                .filter(|g| g.role == "Organization Member")
                .all(|g| g.authenticator == "C")
        );
        tx.set_superuser(uid, true)?;
        assert!(tx.user_by_id(uid)?.unwrap().is_superuser);
        assert_eq!(tx.user_by_username("ann")?.unwrap().id, uid);
        tx.touch_login(
            uid,
            &Profile {
                email: Some("new@example.test".into()),
                ..Profile::default()
            },
        )?;
        assert_eq!(
            tx.user_by_id(uid)?.unwrap().email.as_deref(),
            Some("new@example.test")
        );
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(s.grants(uid).await.unwrap().len(), 2);
}

async fn a_failed_transaction_writes_nothing(s: Arc<dyn Store>) {
    let r = s
        .atomically(|tx| {
            tx.create_user(&NewUser {
                username: "half".into(),
                ..NewUser::default()
            })?;
            tx.organization("Half Org", true)?;
            Err::<(), _>(StoreError::Backend("stop".into()))
        })
        .await;
    assert!(r.is_err());
    assert!(s.user_by_username("half").await.unwrap().is_none());
    assert_eq!(
        s.atomically(|tx| tx.organization("Half Org", false))
            .await
            .unwrap(),
        None
    );
}

async fn concurrent_transactions_make_one_user(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.atomically(|tx| {
                if let Some(u) = tx.linked_user("X", "new")? {
                    return Ok(u.id);
                }
                let u = tx.create_user(&NewUser {
                    username: "new".into(),
                    ..NewUser::default()
                })?;
                tx.link_user("X", "new", u.id)?;
                tx.organization("Shared Org", true)?;
                Ok(u.id)
            })
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(s.list_users().await.unwrap().len(), 1);
}

fn pending(kind: PendingKind, id: &str, peer: Option<u32>, expires_at: i64) -> PendingLogin {
    PendingLogin {
        kind,
        id: id.into(),
        authenticator: "A".into(),
        username: Some("ann".into()),
        peer_uid: peer,
        state: serde_json::json!({"n": 1}),
        callback_url: Some("https://app/cb".into()),
        return_to: Some("/home".into()),
        expires_at,
    }
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

async fn pending_logins_are_single_use_bound_and_expiring(s: Arc<dyn Store>) {
    let now = now();
    assert!(
        s.put_pending(pending(PendingKind::Challenge, "c1", Some(7), now + 60))
            .await
            .unwrap()
    );
    assert!(matches!(
        s.take_pending(PendingKind::Challenge, "c1", 8, now)
            .await
            .unwrap(),
        Taken::Unknown
    ));
    assert!(matches!(
        s.take_pending(PendingKind::Redirect, "c1", 7, now).await.unwrap(),
        Taken::Unknown
    ));
    match s
        .take_pending(PendingKind::Challenge, "c1", 7, now)
        .await
        .unwrap()
    {
        Taken::Found(p) => {
            assert_eq!(p.state["n"], 1);
            assert_eq!(p.username.as_deref(), Some("ann"));
            assert_eq!(p.peer_uid, Some(7));
            assert_eq!(p.callback_url.as_deref(), Some("https://app/cb"));
            assert_eq!(p.return_to.as_deref(), Some("/home"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.take_pending(PendingKind::Challenge, "c1", 7, now)
            .await
            .unwrap(),
        Taken::Replayed
    ));
    assert!(
        s.put_pending(pending(PendingKind::Redirect, "r1", None, now + 10))
            .await
            .unwrap()
    );
    assert!(matches!(
        s.take_pending(PendingKind::Redirect, "r1", 9, now + 11)
            .await
            .unwrap(),
        Taken::Expired
    ));
    assert!(matches!(
        s.take_pending(PendingKind::Redirect, "nope", 9, now)
            .await
            .unwrap(),
        Taken::Unknown
    ));
    // two takers at once: exactly one gets it
    assert!(
        s.put_pending(pending(PendingKind::Redirect, "r2", None, now + 60))
            .await
            .unwrap()
    );
    let (a, b) = tokio::join!(
        s.take_pending(PendingKind::Redirect, "r2", 1, now),
        s.take_pending(PendingKind::Redirect, "r2", 2, now)
    );
    let found = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|t| matches!(t, Taken::Found(_)))
        .count();
    assert_eq!(found, 1);
}

async fn static_tokens(s: Arc<dyn Store>) {
    let u = s
        .create_user(NewUser {
            username: "ann".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let t = s.create_static_token(u.id, "ci", [7; 32]).await.unwrap();
    assert_eq!((t.user_id, t.name.as_str(), t.revoked), (u.id, "ci", false));
    let dup = s.create_static_token(u.id, "again", [7; 32]).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let (found, owner) = s.static_token_user([7; 32]).await.unwrap().unwrap();
    assert_eq!((found.id, owner.username.as_str()), (t.id, "ann"));
    assert!(s.static_token_user([8; 32]).await.unwrap().is_none());
    assert_eq!(s.static_tokens(u.id).await.unwrap(), vec![t.clone()]);
    assert!(s.revoke_static_token(t.id).await.unwrap());
    assert!(!s.revoke_static_token(t.id).await.unwrap());
    assert!(s.static_token_user([7; 32]).await.unwrap().unwrap().0.revoked);
}

async fn entitlements(s: Arc<dyn Store>) {
    let u = s
        .create_user(NewUser {
            username: "ann".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    s.put_namespace("top", None).await.unwrap();
    s.put_namespace("team", Some("top")).await.unwrap();
    assert!(matches!(
        s.put_namespace("x", Some("missing")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.put_namespace("top", Some("team")).await,
        Err(StoreError::Conflict(_))
    ));
    s.put_purchase(Some("top"), "pro", 5).await.unwrap();
    s.put_purchase(Some("team"), "pro", 3).await.unwrap();
    s.put_purchase(None, "basic", 100).await.unwrap();
    assert!(matches!(
        s.put_purchase(Some("missing"), "pro", 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.set_seat(u.id, "pro", true).await.unwrap());
    assert!(!s.set_seat(u.id, "pro", true).await.unwrap());
    let f = s
        .entitlement_facts(Some(u.id), Some("team"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.purchased.get("pro"), Some(&5));
    assert!(f.seats.contains("pro"));
    let f = s.entitlement_facts(None, None).await.unwrap().unwrap();
    assert_eq!(f.purchased.get("basic"), Some(&100));
    assert!(
        s.entitlement_facts(None, Some("missing"))
            .await
            .unwrap()
            .is_none()
    );
    let all = s.list_entitlements().await.unwrap();
    assert_eq!(
        all.namespaces,
        [
            ("team".to_owned(), Some("top".to_owned())),
            ("top".to_owned(), None)
        ]
    );
    assert_eq!(all.purchases.len(), 3);
    assert_eq!(all.seats, [("ann".to_owned(), "pro".to_owned())]);
    assert!(s.delete_purchase(None, "basic").await.unwrap());
    assert!(!s.delete_purchase(None, "basic").await.unwrap());
    assert!(s.set_seat(u.id, "pro", false).await.unwrap());
    assert!(s.delete_namespace("top").await.unwrap());
    assert!(!s.delete_namespace("top").await.unwrap());
    let all = s.list_entitlements().await.unwrap();
    assert_eq!(all.namespaces, [("team".to_owned(), None)]);
}

async fn claims_are_once_until_expiry(s: Arc<dyn Store>) {
    let now = now();
    assert!(s.claim_once("saml", "id-1", now + 60).await.unwrap());
    assert!(!s.claim_once("saml", "id-1", now + 60).await.unwrap(), "a replay");
    assert!(
        s.claim_once("other", "id-1", now + 60).await.unwrap(),
        "scopes are apart"
    );
    // an expired claim may be claimed again
    assert!(s.claim_once("saml", "id-2", now - 5).await.unwrap());
    assert!(s.claim_once("saml", "id-2", now + 60).await.unwrap());
    assert!(!s.claim_once("saml", "id-2", now + 60).await.unwrap());
    // many at once: one winner
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.claim_once("saml", "race", now + 60).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(won, 1);
}

async fn documents_are_replaced_only_at_the_version_read(s: Arc<dyn Store>) {
    let text = |t: &str| Secret::new(t);
    assert_eq!(s.document("ring").await.unwrap(), None);
    assert!(s.put_document("ring", None, &text("one")).await.unwrap());
    // a second first writer loses
    assert!(!s.put_document("ring", None, &text("other")).await.unwrap());
    let d = s.document("ring").await.unwrap().unwrap();
    assert_eq!((d.value.expose(), d.version), ("one", 1));
    assert!(s.put_document("ring", Some(1), &text("two")).await.unwrap());
    // a writer that read version 1 is now stale
    assert!(!s.put_document("ring", Some(1), &text("stale")).await.unwrap());
    let d = s.document("ring").await.unwrap().unwrap();
    assert_eq!((d.value.expose(), d.version), ("two", 2));
    assert_eq!(s.document("other").await.unwrap(), None);
    // many writers from one version: exactly one wins
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.put_document("ring", Some(2), &Secret::new(format!("w{i}")))
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(s.document("ring").await.unwrap().unwrap().version, 3);
}

async fn offline_verifiers_are_kept_replaced_and_go_with_their_user(s: Arc<dyn Store>) {
    let ann = s
        .create_user(NewUser {
            username: "ann".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let v = |hash: &str, at| OfflineVerifier {
        user_id: ann.id,
        uid: "uid=ann".into(),
        verifier: Secret::new(hash),
        verified_at: at,
    };
    assert_eq!(s.offline_verifier("LDAP", "ann").await.unwrap(), None);
    s.put_offline_verifier("LDAP", "ann", &v("$argon2id$one", 10))
        .await
        .unwrap();
    s.put_offline_verifier("LDAP", "ann", &v("$argon2id$two", 20))
        .await
        .unwrap();
    s.put_offline_verifier("RADIUS", "ann", &v("$argon2id$r", 30))
        .await
        .unwrap();
    assert_eq!(
        s.offline_verifier("LDAP", "ann").await.unwrap(),
        Some(v("$argon2id$two", 20))
    );
    assert!(s.delete_offline_verifier("RADIUS", "ann").await.unwrap());
    assert!(!s.delete_offline_verifier("RADIUS", "ann").await.unwrap());
    assert_eq!(s.offline_verifier("RADIUS", "ann").await.unwrap(), None);
    // a deleted user takes its verifiers along
    assert!(s.delete_user("ann").await.unwrap());
    assert_eq!(s.offline_verifier("LDAP", "ann").await.unwrap(), None);
}

async fn lockout_counters(s: Arc<dyn Store>) {
    let k = |key: &[u8], cap| LockoutKey {
        key: key.to_vec(),
        cap,
        label: String::from_utf8_lossy(key).into_owned(),
    };
    let (a, b) = (k(b"user-a", 3), k(b"peer-1", 10));
    for t in [1_000, 2_000, 3_000, 4_000] {
        s.lockout_record(&[a.clone(), b.clone()], t, 0).await.unwrap();
    }
    let got = s
        .lockout_failures(&[a.clone(), b.clone(), k(b"none", 1)], 0)
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            vec![2_000, 3_000, 4_000],
            vec![1_000, 2_000, 3_000, 4_000],
            vec![]
        ]
    );
    // the window: only failures at or after `since`
    let got = s.lockout_failures(std::slice::from_ref(&b), 3_000).await.unwrap();
    assert_eq!(got, vec![vec![3_000, 4_000]]);
    // recording drops what fell out of the window, for every key
    s.lockout_record(&[k(b"other", 5)], 10_000, 4_000).await.unwrap();
    assert_eq!(
        s.lockout_failures(std::slice::from_ref(&b), 0).await.unwrap(),
        vec![vec![4_000]]
    );
    // the list: every live key with its label and times, by key
    let listed = s.lockout_list(0).await.unwrap();
    let summary: Vec<(&str, &[i64])> = listed
        .iter()
        .map(|r| (r.label.as_str(), r.times.as_slice()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("other", &[10_000][..]),
            ("peer-1", &[4_000][..]),
            ("user-a", &[4_000][..])
        ]
    );
    assert_eq!(s.lockout_list(5_000).await.unwrap().len(), 1);
    s.lockout_clear(b"user-a").await.unwrap();
    assert_eq!(
        s.lockout_failures(&[a.clone(), b.clone()], 0).await.unwrap(),
        vec![vec![], vec![4_000]]
    );
    // inside a login's transaction: kept when the transaction fails,
    // gone when it commits
    let failed = s
        .atomically(|tx| {
            tx.lockout_clear(b"peer-1")?;
            Err::<(), _>(StoreError::Backend("stop".into()))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(
        s.lockout_failures(std::slice::from_ref(&b), 0).await.unwrap(),
        vec![vec![4_000]]
    );
    s.atomically(|tx| tx.lockout_clear(b"peer-1")).await.unwrap();
    assert_eq!(
        s.lockout_failures(&[a, b], 0).await.unwrap(),
        vec![Vec::<i64>::new(), Vec::new()]
    );
}

/// Several daemons starting at once on a new database: the advisory lock
/// lets one migrate and the others find the schema done.
#[test]
fn concurrent_opens_migrate_once() {
    let settings = pg_database();
    let opened: Vec<Result<PostgresStore, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| PostgresStore::open(&settings)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &opened {
        assert!(o.is_ok(), "{:?}", o.as_ref().err());
    }
    let mut c = PostgresStore::client(&settings).unwrap();
    let rows = c.query("SELECT version FROM gatehouse_schema", &[]).unwrap();
    assert_eq!(rows.len(), 1, "one version row");
    assert_eq!(rows[0].get::<_, i32>(0), 9);
}

/// A wrong password or an untrusted server certificate: a clear error
/// that shows neither the password nor the URL's.
#[test]
fn connection_failures_are_clear_and_secret_free() {
    let mut s = pg_database();
    s.password = Some(Secret::new("wrong-s3cret"));
    let e = PostgresStore::open(&s)
        .err()
        .expect("a wrong password fails")
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("wrong-s3cret"), "{e}");
    let mut s = pg_database();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=not the test CA", "-days", "2", "-keyout"])
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok);
    s.ca_file = Some(other_ca);
    let e = PostgresStore::open(&s)
        .err()
        .expect("an untrusted server fails")
        .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}

/// The host's name service derives uids and gids from store ids: they must
/// never be reused, and the lookups must see what the grants say.
async fn host_lookups_and_ids_never_reused(s: Arc<dyn Store>) {
    let new = |name: &str| NewUser {
        username: name.into(),
        ..NewUser::default()
    };
    let ann = s.create_user(new("ann")).await.unwrap();
    let bob = s.create_user(new("bob")).await.unwrap();
    assert!(s.delete_user("bob").await.unwrap());
    let cy = s.create_user(new("cy")).await.unwrap();
    assert!(cy.id > bob.id, "a deleted user's id was reused");
    assert_eq!(s.user_by_id(ann.id).await.unwrap().unwrap().username, "ann");
    assert!(s.user_by_id(bob.id).await.unwrap().is_none());
    let (a, c) = (ann.id, cy.id);
    let (org, team) = s
        .atomically(move |tx| {
            let (org, _) = tx.organization("Default", true)?.unwrap();
            let (gone, _) = tx.organization("Gone", true)?.unwrap();
            let (team, _) = tx.team(org, "Devs", true)?.unwrap();
            tx.grant(a, Some(org), None, "Organization Member", "A")?;
            tx.grant(a, Some(org), Some(team), "Team Member", "A")?;
            tx.grant(a, Some(org), Some(team), "Team Admin", "A")?;
            tx.grant(c, Some(org), Some(team), "Team Member", "A")?;
            tx.grant(c, None, None, "Auditor", "A")?;
            tx.grant(c, Some(gone), None, "Organization Member", "A")?;
            Ok((org, team))
        })
        .await
        .unwrap();
    let g = s.host_groups().await.unwrap();
    assert_eq!(g.organizations.len(), 2, "{g:?}");
    assert_eq!(g.organizations[0], (org, "Default".to_owned()));
    assert_eq!(g.teams, vec![(team, "Default".to_owned(), "Devs".to_owned())]);
    let mut members = g.members.clone();
    members.sort();
    // one row per (user, organization, team), whatever the roles
    assert_eq!(
        members,
        vec![
            (a, "ann".to_owned(), org, None),
            (a, "ann".to_owned(), org, Some(team)),
            (c, "cy".to_owned(), org, Some(team)),
            (c, "cy".to_owned(), g.organizations[1].0, None),
        ]
    );
    // one group by id or name, members once whatever their roles
    let want_org = HostGroup {
        id: org,
        organization: "Default".into(),
        team: None,
        members: vec![(a, "ann".into())],
    };
    let want_team = HostGroup {
        id: team,
        organization: "Default".into(),
        team: Some("Devs".into()),
        members: vec![(a, "ann".into()), (c, "cy".into())],
    };
    let get = |k: HostGroupKey| {
        let s = Arc::clone(&s);
        async move { s.host_group(k).await.unwrap() }
    };
    assert_eq!(
        get(HostGroupKey::OrganizationId(org)).await,
        Some(want_org.clone())
    );
    assert_eq!(
        get(HostGroupKey::Organization("Default".into())).await,
        Some(want_org)
    );
    assert_eq!(get(HostGroupKey::TeamId(team)).await, Some(want_team.clone()));
    assert_eq!(
        get(HostGroupKey::Team("Default".into(), "Devs".into())).await,
        Some(want_team)
    );
    assert_eq!(get(HostGroupKey::TeamId(org + team + 100)).await, None);
    assert_eq!(get(HostGroupKey::Organization("Devs".into())).await, None);
    assert_eq!(get(HostGroupKey::Team("Gone".into(), "Devs".into())).await, None);
}
