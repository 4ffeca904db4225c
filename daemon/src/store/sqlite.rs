//! The SQLite store: one file in the state directory, WAL mode, schema
//! migrations numbered in the code and applied in a transaction at open.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gatehouse_sdk::Secret;
use rusqlite::{Connection, OptionalExtension, params};

use super::{NewUser, Profile, Store, StoreError, UserRecord};

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

fn get_user(conn: &Connection, username: &str) -> Result<Option<UserRecord>, StoreError> {
    conn.query_row(
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
            c.execute(
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
            c.query_row(
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
                .prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username"))
                .map_err(backend)?;
            let rows = stmt.query_map([], user_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn set_password_hash(&self, username: &str, hash: Secret) -> Result<bool, StoreError> {
        let username = username.to_owned();
        self.with(move |c| {
            let n = c
                .execute(
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
            let n = c
                .execute("DELETE FROM users WHERE username = ?1", params![username])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn linked_user(&self, authenticator: &str, uid: &str) -> Result<Option<UserRecord>, StoreError> {
        let (a, u) = (authenticator.to_owned(), uid.to_owned());
        self.with(move |c| {
            c.query_row(
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
            c.execute(
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
            c.execute(
                "UPDATE users SET last_login = ?1,
                    email = COALESCE(?2, email),
                    first_name = COALESCE(?3, first_name),
                    last_name = COALESCE(?4, last_name)
                 WHERE id = ?5",
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
        assert_eq!(s.schema_version().await.unwrap(), 1);
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
