//! The SQLite store: one file in the state directory, WAL mode, schema
//! migrations numbered in the code and applied in a transaction at open.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_sdk::Secret;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Document, Entitlements, Facts, GrantRecord, HostGroup, HostGroupKey, HostGroups, LockoutKey, LockoutRow,
    MAX_PENDING, NewUser, OfflineVerifier, PendingKind, PendingLogin, Profile, StaticToken, Store,
    StoreError, Taken, Transaction, TransactionWork, UserRecord, pending_digest,
};

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
    // 4: logins waiting for a challenge answer or an identity provider's
    // callback (the id is kept as its SHA-256 digest)
    "CREATE TABLE pending_logins (
        digest TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        authenticator TEXT NOT NULL,
        username TEXT,
        peer_uid INTEGER,
        state TEXT NOT NULL,
        callback_url TEXT,
        return_to TEXT,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    );
    CREATE INDEX pending_logins_expiry ON pending_logins(expires_at);",
    // 5: entitlements for the issuer: namespace ancestry, add-ons bought
    // (namespace '' = the whole instance) and seats assigned to users
    "CREATE TABLE namespaces (
        name TEXT PRIMARY KEY,
        parent TEXT REFERENCES namespaces(name) ON DELETE SET NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE purchases (
        namespace TEXT NOT NULL,
        add_on TEXT NOT NULL,
        seats INTEGER NOT NULL,
        bought_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, add_on)
    );
    CREATE TABLE seat_assignments (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        add_on TEXT NOT NULL,
        assigned_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, add_on)
    );",
    // 6: one-time claims (the SAML replay cache and the like)
    "CREATE TABLE one_time_claims (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX one_time_claims_expiry ON one_time_claims(expires_at);",
    // 7: failed-login counters (lockout), by digest key, in milliseconds
    "CREATE TABLE lockout_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key BLOB NOT NULL,
        at_ms INTEGER NOT NULL,
        label TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX lockout_failures_key ON lockout_failures(key, at_ms);
    CREATE INDEX lockout_failures_at ON lockout_failures(at_ms);",
    // 8: named documents replaced whole under a version (the issuer keyring)
    "CREATE TABLE documents (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );",
    // 9: offline-login verifiers, per authenticator and username
    "CREATE TABLE offline_verifiers (
        authenticator TEXT NOT NULL,
        username TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        uid TEXT NOT NULL,
        verifier TEXT NOT NULL,
        verified_at INTEGER NOT NULL,
        PRIMARY KEY (authenticator, username)
    );
    CREATE INDEX offline_verifiers_user ON offline_verifiers(user_id);",
];

/// An SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Arc<tokio::sync::Mutex<Connection>>,
    /// The database file (backups read it through a connection of their own).
    path: std::path::PathBuf,
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
        // The database holds password hashes: 0600 whatever the umask. SQLite
        // gives its -wal and -shm files the database file's mode.
        let private = |p: &Path| {
            crate::statedir::private_file(p)
                .map_err(|e| StoreError::Backend(format!("cannot secure {}: {e}", p.display())))
        };
        private(path)?;
        let mut conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        // Plans fixed at prepare time: without this, SQLite 3.54 marks the
        // cached grants query "reprepare on bind" and parsed it again on
        // every login (a quarter of a login's CPU, measured with perf).
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(backend)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = std::path::PathBuf::from(side);
            if side.exists() {
                private(&side)?;
            }
        }
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // A statement on a cached page takes microseconds: run it here
        // rather than pay a thread hand-off. A task that finds the
        // connection taken waits as a task (the lock is async), not as a
        // thread: a hand-off to a blocking thread per contended call cost
        // more than the call itself once two serving threads met here.
        let mut guard = self.conn.lock().await;
        f(&mut guard)
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

/// The SQL of each [`Transaction`] call, over a connection or an open
/// transaction (a `rusqlite::Transaction` derefs to its connection).
mod q {
    use super::*;

    pub(super) fn user_by_id(c: &Connection, id: i64) -> Result<Option<UserRecord>, StoreError> {
        one(
            c,
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            params![id],
            user_row,
        )
        .optional()
        .map_err(backend)
    }

    pub(super) fn create_user(c: &Connection, user: &NewUser) -> Result<UserRecord, StoreError> {
        exec(
            c,
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
        get_user(c, &user.username)?.ok_or_else(|| StoreError::Backend("inserted user vanished".into()))
    }

    pub(super) fn linked_user(c: &Connection, a: &str, u: &str) -> Result<Option<UserRecord>, StoreError> {
        one(
            c,
            &format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id =
                 (SELECT user_id FROM authenticator_users WHERE authenticator = ?1 AND uid = ?2)"
            ),
            params![a, u],
            user_row,
        )
        .optional()
        .map_err(backend)
    }

    pub(super) fn link_user(c: &Connection, a: &str, u: &str, user_id: i64) -> Result<(), StoreError> {
        exec(
            c,
            "INSERT INTO authenticator_users (authenticator, uid, user_id, linked_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (authenticator, uid) DO UPDATE SET user_id = excluded.user_id",
            params![a, u, user_id, now()],
        )
        .map_err(backend)?;
        Ok(())
    }

    pub(super) fn move_link(
        c: &Connection,
        from: &str,
        to: &str,
        uid: &str,
    ) -> Result<Option<i64>, StoreError> {
        let user: Option<i64> = one(
            c,
            "SELECT user_id FROM authenticator_users WHERE authenticator = ?1 AND uid = ?2",
            params![from, uid],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
        if let Some(user_id) = user {
            exec(
                c,
                "UPDATE authenticator_users SET authenticator = ?1, linked_at = ?2 WHERE authenticator = ?3 AND uid = ?4",
                params![to, now(), from, uid],
            )
            .map_err(backend)?;
            exec(
                c,
                "UPDATE grants SET authenticator = ?1 WHERE user_id = ?2 AND authenticator = ?3",
                params![to, user_id, from],
            )
            .map_err(backend)?;
        }
        Ok(user)
    }

    pub(super) fn touch_login(c: &Connection, user_id: i64, profile: &Profile) -> Result<(), StoreError> {
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
    }

    /// Finds (or, with `create`, inserts) a row by `select`/`insert`; the
    /// bool says whether this call inserted it.
    /// Finds a row's id with `select`, or (with `create`) inserts it with
    /// `insert` (whose parameters are `select`'s plus the time); the bool
    /// says whether this call inserted it.
    fn find_or_create(
        c: &Connection,
        select: &str,
        insert: &str,
        key: &[&dyn rusqlite::ToSql],
        create: bool,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        let found: Option<i64> = one(c, select, key, |r| r.get(0)).optional().map_err(backend)?;
        match (found, create) {
            (Some(id), _) => Ok(Some((id, false))),
            (None, false) => Ok(None),
            (None, true) => {
                let at = now();
                let mut with_time = key.to_vec();
                with_time.push(&at);
                let inserted = exec(c, insert, with_time.as_slice()).map_err(backend)? > 0;
                let id = one(c, select, key, |r| r.get(0)).map_err(backend)?;
                Ok(Some((id, inserted)))
            }
        }
    }

    pub(super) fn organization(
        c: &Connection,
        name: &str,
        create: bool,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        find_or_create(
            c,
            "SELECT id FROM organizations WHERE name = ?1",
            "INSERT INTO organizations (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            &[&name],
            create,
        )
    }

    pub(super) fn team(
        c: &Connection,
        org: i64,
        name: &str,
        create: bool,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        find_or_create(
            c,
            "SELECT id FROM teams WHERE organization_id = ?1 AND name = ?2",
            "INSERT INTO teams (organization_id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (organization_id, name) DO NOTHING",
            &[&org, &name],
            create,
        )
    }

    pub(super) fn grants(c: &Connection, user_id: i64) -> Result<Vec<GrantRecord>, StoreError> {
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
    }

    pub(super) fn grant(
        c: &Connection,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
        authenticator: &str,
    ) -> Result<bool, StoreError> {
        let inserted = exec(
            c,
            "INSERT INTO grants (user_id, organization_id, team_id, role, authenticator, granted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO NOTHING",
            params![user_id, organization_id, team_id, role, authenticator, now()],
        )
        .map_err(backend)?
            > 0;
        if !inserted {
            // Held already: the latest granting authenticator owns it.
            exec(
                c,
                "UPDATE grants SET authenticator = ?5 WHERE user_id = ?1 AND IFNULL(organization_id, 0) = IFNULL(?2, 0)
                     AND IFNULL(team_id, 0) = IFNULL(?3, 0) AND role = ?4 AND authenticator IS NOT ?5",
                params![user_id, organization_id, team_id, role, authenticator],
            )
            .map_err(backend)?;
        }
        Ok(inserted)
    }

    pub(super) fn revoke(
        c: &Connection,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
    ) -> Result<bool, StoreError> {
        let n = exec(
            c,
            "DELETE FROM grants WHERE user_id = ?1 AND IFNULL(organization_id, 0) = IFNULL(?2, 0)
                 AND IFNULL(team_id, 0) = IFNULL(?3, 0) AND role = ?4",
            params![user_id, organization_id, team_id, role],
        )
        .map_err(backend)?;
        Ok(n > 0)
    }

    pub(super) fn set_superuser(c: &Connection, user_id: i64, value: bool) -> Result<(), StoreError> {
        exec(
            c,
            "UPDATE users SET is_superuser = ?1 WHERE id = ?2",
            params![value, user_id],
        )
        .map_err(backend)?;
        Ok(())
    }
}

/// A write transaction whose `BEGIN IMMEDIATE`, `COMMIT` and `ROLLBACK`
/// come from the statement cache: rusqlite's own `Transaction` parses them
/// again on every call, which was a third of a login's lockout check (perf).
/// IMMEDIATE takes the write lock up front: a second writer (this process
/// holds one connection; another process waits on busy_timeout) sees the
/// first one's commit, never half of it. Dropped without
/// [`WriteTx::commit`] (an error, a panic), it rolls back.
struct WriteTx<'c> {
    c: &'c Connection,
    open: bool,
}

impl<'c> WriteTx<'c> {
    fn begin(c: &'c Connection) -> Result<Self, StoreError> {
        exec(c, "BEGIN IMMEDIATE", []).map_err(backend)?;
        Ok(Self { c, open: true })
    }

    fn commit(mut self) -> Result<(), StoreError> {
        exec(self.c, "COMMIT", []).map_err(backend)?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.c
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        // a failed COMMIT (busy) leaves the transaction open as well
        if self.open && !self.c.is_autocommit() {
            let _ = exec(self.c, "ROLLBACK", []);
        }
    }
}

/// [`Transaction`] over an open SQLite transaction.
struct SqliteTx<'c>(&'c Connection);

impl Transaction for SqliteTx<'_> {
    fn linked_user(&mut self, authenticator: &str, uid: &str) -> Result<Option<UserRecord>, StoreError> {
        q::linked_user(self.0, authenticator, uid)
    }
    fn user_by_id(&mut self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        q::user_by_id(self.0, id)
    }
    fn user_by_username(&mut self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        get_user(self.0, username)
    }
    fn create_user(&mut self, user: &NewUser) -> Result<UserRecord, StoreError> {
        q::create_user(self.0, user)
    }
    fn link_user(&mut self, authenticator: &str, uid: &str, user_id: i64) -> Result<(), StoreError> {
        q::link_user(self.0, authenticator, uid, user_id)
    }
    fn move_link(&mut self, from: &str, to: &str, uid: &str) -> Result<Option<i64>, StoreError> {
        q::move_link(self.0, from, to, uid)
    }
    fn touch_login(&mut self, user_id: i64, profile: &Profile) -> Result<(), StoreError> {
        q::touch_login(self.0, user_id, profile)
    }
    fn organization(&mut self, name: &str, create: bool) -> Result<Option<(i64, bool)>, StoreError> {
        q::organization(self.0, name, create)
    }
    fn team(
        &mut self,
        organization_id: i64,
        name: &str,
        create: bool,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        q::team(self.0, organization_id, name, create)
    }
    fn grants(&mut self, user_id: i64) -> Result<Vec<GrantRecord>, StoreError> {
        q::grants(self.0, user_id)
    }
    fn grant(
        &mut self,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
        authenticator: &str,
    ) -> Result<bool, StoreError> {
        q::grant(self.0, user_id, organization_id, team_id, role, authenticator)
    }
    fn revoke(
        &mut self,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
    ) -> Result<bool, StoreError> {
        q::revoke(self.0, user_id, organization_id, team_id, role)
    }
    fn set_superuser(&mut self, user_id: i64, value: bool) -> Result<(), StoreError> {
        q::set_superuser(self.0, user_id, value)
    }
    fn lockout_clear(&mut self, key: &[u8]) -> Result<(), StoreError> {
        clear_lockout(self.0, key)
    }
}

fn clear_lockout(c: &Connection, key: &[u8]) -> Result<(), StoreError> {
    exec(c, "DELETE FROM lockout_failures WHERE key = ?1", params![key]).map_err(backend)?;
    Ok(())
}

fn pending_row(kind: PendingKind, id: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingLogin> {
    let state: String = r.get(3)?;
    Ok(PendingLogin {
        kind,
        id: id.to_owned(),
        authenticator: r.get(0)?,
        username: r.get(1)?,
        peer_uid: r.get(2)?,
        state: serde_json::from_str(&state).unwrap_or(serde_json::Value::Null),
        callback_url: r.get(4)?,
        return_to: r.get(5)?,
        expires_at: r.get(6)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn backup(&self, to: &Path) -> Result<(), StoreError> {
        // `VACUUM INTO` on a connection of its own: one read transaction,
        // so a consistent snapshot while the daemon keeps writing (WAL
        // readers do not block writers), compacted, written to a new file.
        let from = self.path.clone();
        let to = to.to_owned();
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open_with_flags(
                &from,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(backend)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(backend)?;
            let target = to
                .to_str()
                .ok_or_else(|| StoreError::Backend("the backup path is not UTF-8".into()))?;
            conn.execute("VACUUM INTO ?1", [target]).map_err(backend)?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Backend(format!("backup task failed: {e}")))?
    }

    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError> {
        self.with(move |c| q::create_user(c, &user)).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let username = username.to_owned();
        self.with(move |c| get_user(c, &username)).await
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
        self.with(move |c| q::linked_user(c, &a, &u)).await
    }

    async fn grants(&self, user_id: i64) -> Result<Vec<GrantRecord>, StoreError> {
        self.with(move |c| q::grants(c, user_id)).await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        self.with(move |c| q::user_by_id(c, id)).await
    }

    async fn host_group(&self, key: HostGroupKey) -> Result<Option<HostGroup>, StoreError> {
        self.with(move |c| {
            const TEAM: &str = "SELECT t.id, o.name, t.name FROM teams t
                 JOIN organizations o ON o.id = t.organization_id";
            let team_row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, Some(r.get(2)?)));
            let org_row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, None));
            let found: Option<(i64, String, Option<String>)> = match &key {
                HostGroupKey::OrganizationId(id) => one(
                    c,
                    "SELECT id, name FROM organizations WHERE id = ?1",
                    params![id],
                    org_row,
                ),
                HostGroupKey::Organization(name) => one(
                    c,
                    "SELECT id, name FROM organizations WHERE name = ?1",
                    params![name],
                    org_row,
                ),
                HostGroupKey::TeamId(id) => one(c, &format!("{TEAM} WHERE t.id = ?1"), params![id], team_row),
                HostGroupKey::Team(org, team) => one(
                    c,
                    &format!("{TEAM} WHERE o.name = ?1 AND t.name = ?2"),
                    params![org, team],
                    team_row,
                ),
            }
            .optional()
            .map_err(backend)?;
            let Some((id, organization, team)) = found else {
                return Ok(None);
            };
            let sql = if team.is_some() {
                "SELECT DISTINCT u.id, u.username FROM grants g JOIN users u ON u.id = g.user_id
                 WHERE g.team_id = ?1 ORDER BY u.id"
            } else {
                "SELECT DISTINCT u.id, u.username FROM grants g JOIN users u ON u.id = g.user_id
                 WHERE g.organization_id = ?1 AND g.team_id IS NULL ORDER BY u.id"
            };
            let mut stmt = c.prepare_cached(sql).map_err(backend)?;
            let members = stmt
                .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            Ok(Some(HostGroup {
                id,
                organization,
                team,
                members,
            }))
        })
        .await
    }

    async fn host_groups(&self) -> Result<HostGroups, StoreError> {
        self.with(|c| {
            let mut out = HostGroups::default();
            let mut stmt = c
                .prepare_cached("SELECT id, name FROM organizations ORDER BY id")
                .map_err(backend)?;
            out.organizations = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            let mut stmt = c
                .prepare_cached(
                    "SELECT t.id, o.name, t.name FROM teams t
                     JOIN organizations o ON o.id = t.organization_id ORDER BY t.id",
                )
                .map_err(backend)?;
            out.teams = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            let mut stmt = c
                .prepare_cached(
                    "SELECT DISTINCT u.id, u.username, g.organization_id, g.team_id FROM grants g
                     JOIN users u ON u.id = g.user_id
                     WHERE g.organization_id IS NOT NULL ORDER BY u.id",
                )
                .map_err(backend)?;
            out.members = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn transaction(&self, work: TransactionWork) -> Result<(), StoreError> {
        self.with(move |c| {
            let tx = WriteTx::begin(c)?;
            work(&mut SqliteTx(&tx))?;
            tx.commit()
        })
        .await
    }

    async fn put_pending(&self, p: PendingLogin) -> Result<bool, StoreError> {
        self.with(move |c| {
            let now = now();
            // Used and expired entries are kept an hour past their expiry so
            // a replay is told from an unknown id, then purged.
            exec(c, "DELETE FROM pending_logins WHERE expires_at < ?1", params![now - 3600]).map_err(backend)?;
            let live: i64 = one(
                c,
                "SELECT COUNT(*) FROM pending_logins WHERE expires_at > ?1 AND used_at IS NULL",
                params![now],
                |r| r.get(0),
            )
            .map_err(backend)?;
            if usize::try_from(live).unwrap_or(usize::MAX) >= MAX_PENDING {
                return Ok(false);
            }
            let state = serde_json::to_string(&p.state).map_err(|e| StoreError::Backend(e.to_string()))?;
            exec(
                c,
                "INSERT INTO pending_logins
                     (digest, kind, authenticator, username, peer_uid, state, callback_url, return_to, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    pending_digest(&p.id),
                    p.kind.as_str(),
                    p.authenticator,
                    p.username,
                    p.peer_uid,
                    state,
                    p.callback_url,
                    p.return_to,
                    p.expires_at
                ],
            )
            .map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn take_pending(
        &self,
        kind: PendingKind,
        id: &str,
        peer_uid: u32,
        now: i64,
    ) -> Result<Taken, StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            let digest = pending_digest(&id);
            let taken = one(
                c,
                "UPDATE pending_logins SET used_at = ?4
                 WHERE digest = ?1 AND kind = ?2 AND used_at IS NULL AND expires_at > ?4
                   AND (peer_uid IS NULL OR peer_uid = ?3)
                 RETURNING authenticator, username, peer_uid, state, callback_url, return_to, expires_at",
                params![digest, kind.as_str(), peer_uid, now],
                |r| pending_row(kind, &id, r),
            )
            .optional()
            .map_err(backend)?;
            if let Some(p) = taken {
                return Ok(Taken::Found(Box::new(p)));
            }
            let seen: Option<(Option<i64>, i64, Option<u32>)> = one(
                c,
                "SELECT used_at, expires_at, peer_uid FROM pending_logins WHERE digest = ?1 AND kind = ?2",
                params![digest, kind.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(backend)?;
            Ok(match seen {
                None => Taken::Unknown,
                Some((_, _, Some(owner))) if owner != peer_uid => Taken::Unknown,
                Some((Some(_), _, _)) => Taken::Replayed,
                Some((None, _, _)) => Taken::Expired,
            })
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

    async fn put_namespace(&self, name: &str, parent: Option<&str>) -> Result<(), StoreError> {
        let (name, parent) = (name.to_owned(), parent.map(str::to_owned));
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            if let Some(p) = &parent {
                // the parent must exist and must not descend from `name`
                let chain = ancestry(&tx, p)?;
                if chain.is_empty() {
                    return Err(StoreError::NotFound(format!("no namespace named {p:?}")));
                }
                if chain.iter().any(|n| n == &name) {
                    return Err(StoreError::Conflict(format!(
                        "{p:?} descends from {name:?}: a namespace cannot be its own ancestor"
                    )));
                }
            }
            exec(
                &tx,
                "INSERT INTO namespaces (name, parent, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET parent = excluded.parent",
                params![name, parent, now()],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn delete_namespace(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            exec(&tx, "DELETE FROM purchases WHERE namespace = ?1", params![name]).map_err(backend)?;
            let n = exec(&tx, "DELETE FROM namespaces WHERE name = ?1", params![name]).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_purchase(
        &self,
        namespace: Option<&str>,
        add_on: &str,
        seats: u32,
    ) -> Result<(), StoreError> {
        let (namespace, add_on) = (namespace.map(str::to_owned), add_on.to_owned());
        self.with(move |c| {
            if let Some(ns) = &namespace
                && ancestry(c, ns)?.is_empty()
            {
                return Err(StoreError::NotFound(format!("no namespace named {ns:?}")));
            }
            exec(
                c,
                "INSERT INTO purchases (namespace, add_on, seats, bought_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(namespace, add_on) DO UPDATE SET seats = excluded.seats",
                params![namespace.unwrap_or_default(), add_on, seats, now()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_purchase(&self, namespace: Option<&str>, add_on: &str) -> Result<bool, StoreError> {
        let (namespace, add_on) = (namespace.unwrap_or_default().to_owned(), add_on.to_owned());
        self.with(move |c| {
            let n = exec(
                c,
                "DELETE FROM purchases WHERE namespace = ?1 AND add_on = ?2",
                params![namespace, add_on],
            )
            .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn set_seat(&self, user_id: i64, add_on: &str, assigned: bool) -> Result<bool, StoreError> {
        let add_on = add_on.to_owned();
        self.with(move |c| {
            let n = if assigned {
                exec(
                    c,
                    "INSERT OR IGNORE INTO seat_assignments (user_id, add_on, assigned_at) VALUES (?1, ?2, ?3)",
                    params![user_id, add_on, now()],
                )
            } else {
                exec(
                    c,
                    "DELETE FROM seat_assignments WHERE user_id = ?1 AND add_on = ?2",
                    params![user_id, add_on],
                )
            }
            .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn entitlement_facts(
        &self,
        user_id: Option<i64>,
        namespace: Option<&str>,
    ) -> Result<Option<Facts>, StoreError> {
        let namespace = namespace.map(str::to_owned);
        self.with(move |c| {
            let mut facts = Facts::default();
            if let Some(id) = user_id {
                let mut st = c
                    .prepare_cached("SELECT add_on FROM seat_assignments WHERE user_id = ?1")
                    .map_err(backend)?;
                let rows = st
                    .query_map(params![id], |r| r.get::<_, String>(0))
                    .map_err(backend)?;
                for r in rows {
                    facts.seats.insert(r.map_err(backend)?);
                }
            }
            let chain = match &namespace {
                Some(ns) => {
                    let chain = ancestry(c, ns)?;
                    if chain.is_empty() {
                        return Ok(None);
                    }
                    chain
                }
                None => vec![String::new()],
            };
            let mut st = c
                .prepare_cached("SELECT add_on, seats FROM purchases WHERE namespace = ?1")
                .map_err(backend)?;
            for ns in &chain {
                let rows = st
                    .query_map(params![ns], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
                    .map_err(backend)?;
                for r in rows {
                    let (add_on, seats) = r.map_err(backend)?;
                    let slot = facts.purchased.entry(add_on).or_insert(0);
                    *slot = (*slot).max(seats);
                }
            }
            Ok(Some(facts))
        })
        .await
    }

    async fn list_entitlements(&self) -> Result<Entitlements, StoreError> {
        self.with(|c| {
            let mut out = Entitlements::default();
            let mut st = c
                .prepare_cached("SELECT name, parent FROM namespaces ORDER BY name")
                .map_err(backend)?;
            for r in st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
            {
                out.namespaces.push(r.map_err(backend)?);
            }
            let mut st = c
                .prepare_cached("SELECT namespace, add_on, seats FROM purchases ORDER BY namespace, add_on")
                .map_err(backend)?;
            for r in st
                .query_map([], |r| {
                    let ns: String = r.get(0)?;
                    Ok(((!ns.is_empty()).then_some(ns), r.get(1)?, r.get(2)?))
                })
                .map_err(backend)?
            {
                out.purchases.push(r.map_err(backend)?);
            }
            let mut st = c
                .prepare_cached(
                    "SELECT u.username, s.add_on FROM seat_assignments s JOIN users u ON u.id = s.user_id
                     ORDER BY u.username, s.add_on",
                )
                .map_err(backend)?;
            for r in st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
            {
                out.seats.push(r.map_err(backend)?);
            }
            Ok(out)
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

    async fn claim_once(&self, scope: &str, key: &str, expires_at: i64) -> Result<bool, StoreError> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.with(move |c| {
            let now = now();
            // The purge and the claim commit together: one write
            // transaction, not two.
            let tx = WriteTx::begin(c)?;
            exec(
                &tx,
                "DELETE FROM one_time_claims WHERE expires_at < ?1",
                params![now],
            )
            .map_err(backend)?;
            let n = exec(
                &tx,
                "INSERT INTO one_time_claims (scope, key, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (scope, key) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE one_time_claims.expires_at < ?4",
                params![scope, key, expires_at, now],
            )
            .map_err(backend)?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn lockout_record(&self, keys: &[LockoutKey], at_ms: i64, since_ms: i64) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.with(move |c| {
            let tx = WriteTx::begin(c)?;
            exec(
                &tx,
                "DELETE FROM lockout_failures WHERE at_ms < ?1",
                params![since_ms],
            )
            .map_err(backend)?;
            for k in &keys {
                exec(
                    &tx,
                    "INSERT INTO lockout_failures (key, at_ms, label) VALUES (?1, ?2, ?3)",
                    params![k.key, at_ms, k.label],
                )
                .map_err(backend)?;
                exec(
                    &tx,
                    "DELETE FROM lockout_failures WHERE key = ?1 AND id NOT IN
                     (SELECT id FROM lockout_failures WHERE key = ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2)",
                    params![k.key, k.cap],
                )
                .map_err(backend)?;
            }
            tx.commit()
        })
        .await
    }

    async fn lockout_failures(
        &self,
        keys: &[LockoutKey],
        since_ms: i64,
    ) -> Result<Vec<Vec<i64>>, StoreError> {
        let keys = keys.to_vec();
        self.with(move |c| {
            // One statement for every key: one snapshot, one round of file
            // locks (a statement per key took one each).
            let mut out = vec![Vec::new(); keys.len()];
            if keys.is_empty() {
                return Ok(out);
            }
            let marks: Vec<String> = (0..keys.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "SELECT key, at_ms FROM lockout_failures WHERE at_ms >= ?1 AND key IN ({}) ORDER BY at_ms, id",
                marks.join(", ")
            );
            let mut st = c.prepare_cached(&sql).map_err(backend)?;
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&since_ms];
            values.extend(keys.iter().map(|k| &k.key as &dyn rusqlite::ToSql));
            let mut rows = st.query(values.as_slice()).map_err(backend)?;
            while let Some(row) = rows.next().map_err(backend)? {
                let key: Vec<u8> = row.get(0).map_err(backend)?;
                if let Some(i) = keys.iter().position(|k| k.key == key) {
                    out[i].push(row.get(1).map_err(backend)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn lockout_clear(&self, key: &[u8]) -> Result<(), StoreError> {
        let key = key.to_vec();
        self.with(move |c| clear_lockout(c, &key)).await
    }

    async fn lockout_list(&self, since_ms: i64) -> Result<Vec<LockoutRow>, StoreError> {
        self.with(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT key, label, at_ms FROM lockout_failures WHERE at_ms >= ?1 ORDER BY key, at_ms, id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![since_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(super::group_lockout_rows(rows))
        })
        .await
    }

    async fn document(&self, name: &str) -> Result<Option<Document>, StoreError> {
        let name = name.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT value, version FROM documents WHERE name = ?1",
                params![name],
                |r| {
                    Ok(Document {
                        value: Secret::new(r.get::<_, String>(0)?),
                        version: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn put_document(
        &self,
        name: &str,
        expected: Option<i64>,
        value: &Secret,
    ) -> Result<bool, StoreError> {
        let (name, value) = (name.to_owned(), value.clone());
        self.with(move |c| {
            let n = match expected {
                None => exec(
                    c,
                    "INSERT INTO documents (name, value, version, updated_at) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (name) DO NOTHING",
                    params![name, value.expose(), now()],
                ),
                Some(v) => exec(
                    c,
                    "UPDATE documents SET value = ?2, version = version + 1, updated_at = ?3
                     WHERE name = ?1 AND version = ?4",
                    params![name, value.expose(), now(), v],
                ),
            }
            .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn offline_verifier(
        &self,
        authenticator: &str,
        username: &str,
    ) -> Result<Option<OfflineVerifier>, StoreError> {
        let (authenticator, username) = (authenticator.to_owned(), username.to_owned());
        self.with(move |c| {
            c.query_row(
                "SELECT user_id, uid, verifier, verified_at FROM offline_verifiers
                 WHERE authenticator = ?1 AND username = ?2",
                params![authenticator, username],
                |r| {
                    Ok(OfflineVerifier {
                        user_id: r.get(0)?,
                        uid: r.get(1)?,
                        verifier: Secret::new(r.get::<_, String>(2)?),
                        verified_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn put_offline_verifier(
        &self,
        authenticator: &str,
        username: &str,
        verifier: &OfflineVerifier,
    ) -> Result<(), StoreError> {
        let (authenticator, username, v) = (authenticator.to_owned(), username.to_owned(), verifier.clone());
        self.with(move |c| {
            exec(
                c,
                "INSERT INTO offline_verifiers (authenticator, username, user_id, uid, verifier, verified_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (authenticator, username) DO UPDATE SET user_id = excluded.user_id,
                   uid = excluded.uid, verifier = excluded.verifier, verified_at = excluded.verified_at",
                params![
                    authenticator,
                    username,
                    v.user_id,
                    v.uid,
                    v.verifier.expose(),
                    v.verified_at
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_offline_verifier(&self, authenticator: &str, username: &str) -> Result<bool, StoreError> {
        let (authenticator, username) = (authenticator.to_owned(), username.to_owned());
        self.with(move |c| {
            exec(
                c,
                "DELETE FROM offline_verifiers WHERE authenticator = ?1 AND username = ?2",
                params![authenticator, username],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }
}

/// `name` and its ancestors, nearest first; empty when `name` is unknown.
/// Bounded, so a damaged table with a cycle cannot loop.
fn ancestry(c: &Connection, name: &str) -> Result<Vec<String>, StoreError> {
    const MAX_DEPTH: usize = 64;
    let mut chain = Vec::new();
    let mut next = Some(name.to_owned());
    while let Some(n) = next.take() {
        if chain.len() >= MAX_DEPTH || chain.contains(&n) {
            break;
        }
        let parent: Option<Option<String>> = c
            .prepare_cached("SELECT parent FROM namespaces WHERE name = ?1")
            .and_then(|mut st| st.query_row(params![n], |r| r.get(0)).optional())
            .map_err(backend)?;
        let Some(parent) = parent else { break };
        chain.push(n);
        next = parent;
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&dir.path().join("g.db")).unwrap())
    }

    // What every store must do is in `store/suite.rs`, run against SQLite
    // and PostgreSQL alike; here only what is SQLite's own.

    fn pending(kind: PendingKind, id: &str, peer: Option<u32>, expires_at: i64) -> PendingLogin {
        PendingLogin {
            kind,
            id: id.into(),
            authenticator: "A".into(),
            username: Some("ann".into()),
            peer_uid: peer,
            state: serde_json::json!({"n": 1}),
            callback_url: Some("https://app/cb".into()),
            return_to: None,
            expires_at,
        }
    }

    #[tokio::test]
    async fn pending_ids_are_kept_as_digests_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let now = now();
        assert!(
            s.put_pending(pending(PendingKind::Challenge, "c1", Some(7), now + 60))
                .await
                .unwrap()
        );
        let c = Connection::open(dir.path().join("g.db")).unwrap();
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM pending_logins"), 1);
        assert_eq!(
            count("SELECT COUNT(*) FROM pending_logins WHERE digest = 'c1'"),
            0
        );
    }

    #[tokio::test]
    async fn one_time_claims_refuse_a_live_replay_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        let now = now();
        assert!(s.claim_once("saml:A", "_id1", now + 60).await.unwrap());
        // the same key again while the claim lives: a replay
        assert!(!s.claim_once("saml:A", "_id1", now + 60).await.unwrap());
        // another scope (authenticator) or key is independent
        assert!(s.claim_once("saml:B", "_id1", now + 60).await.unwrap());
        assert!(s.claim_once("saml:A", "_id2", now + 60).await.unwrap());
        // an expired claim can be taken again (and is swept)
        assert!(s.claim_once("saml:A", "_old", now - 1).await.unwrap());
        assert!(s.claim_once("saml:A", "_old", now + 60).await.unwrap());
        assert!(!s.claim_once("saml:A", "_old", now + 60).await.unwrap());
        // claims survive a reopen (another host of the same store)
        drop(s);
        let s = open(&dir);
        assert!(!s.claim_once("saml:A", "_id1", now + 60).await.unwrap());
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
