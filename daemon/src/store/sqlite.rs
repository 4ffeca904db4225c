//! The SQLite store: one file in the state directory, WAL mode, schema
//! migrations numbered in the code and applied in a transaction at open.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gatehouse_sdk::Secret;
use rusqlite::{Connection, OptionalExtension, params};

use super::{GrantRecord, NewUser, Profile, StaticToken, Store, StoreError, UserRecord};

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: users and authenticator links
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE,
        email TEXT,
        first_name TEXT,
        last_name TEXT,
        is_superuser INTEGER NOT NULL DEFAULT 0,
        password_hash TEXT,
        created_at INTEGER NOT NULL,
        last_login INTEGER
    );
    CREATE TABLE authenticator_users (
        authenticator TEXT NOT NULL,
        uid TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        linked_at INTEGER NOT NULL,
        PRIMARY KEY (authenticator, uid)
    );
    CREATE INDEX authenticator_users_user ON authenticator_users(user_id);",
    // 2: organizations, teams and the grants maps make
    "CREATE TABLE organizations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE teams (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (organization_id, name)
    );
    CREATE TABLE grants (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        organization_id INTEGER REFERENCES organizations(id) ON DELETE CASCADE,
        team_id INTEGER REFERENCES teams(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        authenticator TEXT NOT NULL,
        granted_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX grants_unique ON grants(user_id, IFNULL(organization_id, 0), IFNULL(team_id, 0), role);",
    // 3: per-user static-object tokens, stored as SHA-256 digests
    "CREATE TABLE static_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        digest BLOB NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX static_tokens_user ON static_tokens(user_id);",
];

/// An SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            StoreError::Conflict(msg.clone().unwrap_or_else(|| "constraint".into()))
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs a statement through the connection's statement cache (parsing
/// SQL dominated the cost of a login before).
fn exec(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// One row through the statement cache.
fn one<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

const USER_COLUMNS: &str = "id, username, email, first_name, last_name, is_superuser, password_hash";

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        first_name: row.get(3)?,
        last_name: row.get(4)?,
        is_superuser: row.get(5)?,
        password_hash: row.get::<_, Option<String>>(6)?.map(Secret::new),
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // Uncontended, a statement on a cached page takes microseconds:
        // run it here rather than pay a thread hand-off. When another task
        // holds the connection, wait on a blocking thread instead of
        // stalling this async worker.
        if let Ok(mut guard) = self.conn.try_lock() {
            return f(&mut guard);
        }
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Backend("store lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    let target = u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX);
    if version > target {
        return Err(StoreError::Backend(format!(
            "database schema version {version} is newer than this gatehouse ({target}); refusing to touch it"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap_or(i64::MAX))
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

fn static_token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StaticToken> {
    Ok(StaticToken {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        revoked: r.get(4)?,
    })
}

fn get_user(conn: &Connection, username: &str) -> Result<Option<UserRecord>, StoreError> {
    one(
        conn,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
        params![username],
        user_row,
    )
    .optional()
    .map_err(backend)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError> {
        self.with(move |c| {
            exec(c,
                "INSERT INTO users (username, email, first_name, last_name, is_superuser, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    user.username,
                    user.email,
                    user.first_name,
                    user.last_name,
                    user.is_superuser,
                    user.password_hash.as_ref().map(Secret::expose),
                    now()
                ],
            )
            .map_err(|e| match backend(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("user {:?}", user.username)),
                other => other,
            })?;
            get_user(c, &user.username)?
                .ok_or_else(|| StoreError::Backend("inserted user vanished".into()))
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let username = username.to_owned();
        self.with(move |c| get_user(c, &username)).await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        self.with(move |c| {
            one(
                c,
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                params![id],
                user_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username"))
                .map_err(backend)?;
            let rows = stmt.query_map([], user_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn set_password_hash(&self, username: &str, hash: Secret) -> Result<bool, StoreError> {
        let username = username.to_owned();
        self.with(move |c| {
            let n = exec(
                c,
                "UPDATE users SET password_hash = ?1 WHERE username = ?2",
                params![hash.expose(), username],
            )
            .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let username = username.to_owned();
        self.with(move |c| {
            let n = exec(c, "DELETE FROM users WHERE username = ?1", params![username]).map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn linked_user(&self, authenticator: &str, uid: &str) -> Result<Option<UserRecord>, StoreError> {
        let (a, u) = (authenticator.to_owned(), uid.to_owned());
        self.with(move |c| {
            one(
                c,
                &format!(
                    "SELECT {} FROM users u JOIN authenticator_users l ON l.user_id = u.id
                     WHERE l.authenticator = ?1 AND l.uid = ?2",
                    USER_COLUMNS
                        .split(", ")
                        .map(|col| format!("u.{col}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                params![a, u],
                user_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn link_user(&self, authenticator: &str, uid: &str, user_id: i64) -> Result<(), StoreError> {
        let (a, u) = (authenticator.to_owned(), uid.to_owned());
        self.with(move |c| {
            exec(c,
                "INSERT INTO authenticator_users (authenticator, uid, user_id, linked_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (authenticator, uid) DO UPDATE SET user_id = excluded.user_id",
                params![a, u, user_id, now()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn touch_login(&self, user_id: i64, profile: Profile) -> Result<(), StoreError> {
        self.with(move |c| {
            // Most logins change nothing but the time: write only when the
            // profile changed or the recorded time is over a minute old.
            exec(
                c,
                "UPDATE users SET last_login = ?1,
                    email = COALESCE(?2, email),
                    first_name = COALESCE(?3, first_name),
                    last_name = COALESCE(?4, last_name)
                 WHERE id = ?5 AND (last_login IS NULL OR last_login < ?1 - 60
                    OR (?2 IS NOT NULL AND email IS NOT ?2)
                    OR (?3 IS NOT NULL AND first_name IS NOT ?3)
                    OR (?4 IS NOT NULL AND last_name IS NOT ?4))",
                params![
                    now(),
                    profile.email,
                    profile.first_name,
                    profile.last_name,
                    user_id
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn organization(&self, name: &str, create: bool) -> Result<Option<(i64, bool)>, StoreError> {
        let name = name.to_owned();
        self.with(move |c| {
            let found: Option<i64> = one(c, "SELECT id FROM organizations WHERE name = ?1", params![name], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            match (found, create) {
                (Some(id), _) => Ok(Some((id, false))),
                (None, false) => Ok(None),
                (None, true) => {
                    exec(c,
                        "INSERT INTO organizations (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                        params![name, now()],
                    )
                    .map_err(backend)?;
                    let id = one(c, "SELECT id FROM organizations WHERE name = ?1", params![name], |r| r.get(0))
                        .map_err(backend)?;
                    Ok(Some((id, true)))
                }
            }
        })
        .await
    }

    async fn team(
        &self,
        organization_id: i64,
        name: &str,
        create: bool,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        let name = name.to_owned();
        self.with(move |c| {
            let q = "SELECT id FROM teams WHERE organization_id = ?1 AND name = ?2";
            let found: Option<i64> = one(c, q, params![organization_id, name], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            match (found, create) {
                (Some(id), _) => Ok(Some((id, false))),
                (None, false) => Ok(None),
                (None, true) => {
                    exec(
                        c,
                        "INSERT INTO teams (organization_id, name, created_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (organization_id, name) DO NOTHING",
                        params![organization_id, name, now()],
                    )
                    .map_err(backend)?;
                    let id = one(c, q, params![organization_id, name], |r| r.get(0)).map_err(backend)?;
                    Ok(Some((id, true)))
                }
            }
        })
        .await
    }

    async fn grants(&self, user_id: i64) -> Result<Vec<GrantRecord>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT g.organization_id, o.name, g.team_id, t.name, g.role, g.authenticator
                     FROM grants g
                     LEFT JOIN organizations o ON o.id = g.organization_id
                     LEFT JOIN teams t ON t.id = g.team_id
                     WHERE g.user_id = ?1
                     ORDER BY o.name, t.name, g.role",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![user_id], |r| {
                    Ok(GrantRecord {
                        organization_id: r.get(0)?,
                        organization: r.get(1)?,
                        team_id: r.get(2)?,
                        team: r.get(3)?,
                        role: r.get(4)?,
                        authenticator: r.get(5)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn grant(
        &self,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
        authenticator: &str,
    ) -> Result<bool, StoreError> {
        let (role, authenticator) = (role.to_owned(), authenticator.to_owned());
        self.with(move |c| {
            let n = exec(
                c,
                "INSERT INTO grants (user_id, organization_id, team_id, role, authenticator, granted_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT DO UPDATE SET authenticator = excluded.authenticator",
                params![user_id, organization_id, team_id, role, authenticator, now()],
            )
            .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn revoke(
        &self,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
    ) -> Result<bool, StoreError> {
        let role = role.to_owned();
        self.with(move |c| {
            let n = exec(
                c,
                "DELETE FROM grants WHERE user_id = ?1 AND IFNULL(organization_id, 0) = IFNULL(?2, 0)
                     AND IFNULL(team_id, 0) = IFNULL(?3, 0) AND role = ?4",
                params![user_id, organization_id, team_id, role],
            )
            .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn set_superuser(&self, user_id: i64, value: bool) -> Result<(), StoreError> {
        self.with(move |c| {
            exec(
                c,
                "UPDATE users SET is_superuser = ?1 WHERE id = ?2",
                params![value, user_id],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn move_link(&self, from: &str, to: &str, uid: &str) -> Result<Option<i64>, StoreError> {
        let (from, to, uid) = (from.to_owned(), to.to_owned(), uid.to_owned());
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let user: Option<i64> = one(&tx,
                    "SELECT user_id FROM authenticator_users WHERE authenticator = ?1 AND uid = ?2",
                    params![from, uid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(user_id) = user {
                exec(&tx,
                    "UPDATE authenticator_users SET authenticator = ?1, linked_at = ?2 WHERE authenticator = ?3 AND uid = ?4",
                    params![to, now(), from, uid],
                )
                .map_err(backend)?;
                exec(&tx,
                    "UPDATE grants SET authenticator = ?1 WHERE user_id = ?2 AND authenticator = ?3",
                    params![to, user_id, from],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(user)
        })
        .await
    }

    async fn create_static_token(
        &self,
        user_id: i64,
        name: &str,
        digest: [u8; 32],
    ) -> Result<StaticToken, StoreError> {
        let name = name.to_owned();
        self.with(move |c| {
            exec(
                c,
                "INSERT INTO static_tokens (user_id, digest, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![user_id, digest.as_slice(), name, now()],
            )
            .map_err(backend)?;
            let id = c.last_insert_rowid();
            Ok(StaticToken {
                id,
                user_id,
                name,
                created_at: now(),
                revoked: false,
            })
        })
        .await
    }

    async fn static_token_user(
        &self,
        digest: [u8; 32],
    ) -> Result<Option<(StaticToken, UserRecord)>, StoreError> {
        self.with(move |c| {
            let found = one(
                c,
                "SELECT id, user_id, name, created_at, revoked_at IS NOT NULL FROM static_tokens WHERE digest = ?1",
                params![digest.as_slice()],
                static_token_row,
            )
            .optional()
            .map_err(backend)?;
            let Some(t) = found else { return Ok(None) };
            let user = one(
                c,
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                params![t.user_id],
                user_row,
            )
            .optional()
            .map_err(backend)?;
            Ok(user.map(|u| (t, u)))
        })
        .await
    }

    async fn static_tokens(&self, user_id: i64) -> Result<Vec<StaticToken>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, user_id, name, created_at, revoked_at IS NOT NULL FROM static_tokens
                     WHERE user_id = ?1 ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![user_id], static_token_row)
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn revoke_static_token(&self, id: i64) -> Result<bool, StoreError> {
        self.with(move |c| {
            let n = exec(
                c,
                "UPDATE static_tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![now(), id],
            )
            .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        self.with(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users_round_trip_and_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("g.db")).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), 3);
        let u = s
            .create_user(NewUser {
                username: "ann".into(),
                password_hash: Some(Secret::new("h1")),
                ..NewUser::default()
            })
            .await
            .unwrap();
        assert_eq!(u.username, "ann");
        let dup = s
            .create_user(NewUser {
                username: "ann".into(),
                ..NewUser::default()
            })
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))));
        assert!(s.set_password_hash("ann", Secret::new("h2")).await.unwrap());
        assert_eq!(
            s.user_by_username("ann").await.unwrap().unwrap().password_hash,
            Some(Secret::new("h2"))
        );
        s.link_user("Local", "ann", u.id).await.unwrap();
        assert_eq!(s.linked_user("Local", "ann").await.unwrap().unwrap().id, u.id);
        assert!(s.delete_user("ann").await.unwrap());
        assert!(s.linked_user("Local", "ann").await.unwrap().is_none());
        assert!(!s.delete_user("ann").await.unwrap());
    }

    #[tokio::test]
    async fn organizations_teams_grants() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("g.db")).unwrap();
        let u = s
            .create_user(NewUser {
                username: "ann".into(),
                ..NewUser::default()
            })
            .await
            .unwrap();
        assert_eq!(s.organization("Default", false).await.unwrap(), None);
        let (org, created) = s.organization("Default", true).await.unwrap().unwrap();
        assert!(created);
        assert_eq!(s.organization("Default", true).await.unwrap(), Some((org, false)));
        let (team, _) = s.team(org, "Devs", true).await.unwrap().unwrap();
        s.grant(u.id, Some(org), None, "Organization Member", "A")
            .await
            .unwrap();
        s.grant(u.id, Some(org), Some(team), "Team Member", "A")
            .await
            .unwrap();
        s.grant(u.id, Some(org), Some(team), "Team Member", "B")
            .await
            .unwrap();
        s.grant(u.id, None, None, "Auditor", "A").await.unwrap();
        let g = s.grants(u.id).await.unwrap();
        assert_eq!(g.len(), 3, "{g:?}");
        assert!(
            g.iter()
                .any(|g| g.team.as_deref() == Some("Devs") && g.authenticator == "B")
        );
        assert!(s.revoke(u.id, None, None, "Auditor").await.unwrap());
        assert!(!s.revoke(u.id, None, None, "Auditor").await.unwrap());
        s.link_user("A", "ann", u.id).await.unwrap();
        assert_eq!(s.move_link("A", "C", "ann").await.unwrap(), Some(u.id));
        assert!(s.linked_user("A", "ann").await.unwrap().is_none());
        assert_eq!(s.linked_user("C", "ann").await.unwrap().unwrap().id, u.id);
        let g = s.grants(u.id).await.unwrap();
        assert!(
            g.iter()
                .filter(|g| g.role == "Organization Member")
                .all(|g| g.authenticator == "C")
        );
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.create_user(NewUser {
                username: "bo".into(),
                ..NewUser::default()
            })
            .await
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.list_users().await.unwrap().len(), 1);
    }
}
