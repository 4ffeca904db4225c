//! `gatehouse store migrate`: moves a single-host SQLite store into an
//! empty PostgreSQL database, table by table in one PostgreSQL
//! transaction, ids kept, and commits only when every table's row count
//! matches. Run it with the daemons stopped.

use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::ValueRef;

use super::postgres::PostgresSettings;
use super::{PostgresStore, SqliteStore, StoreError};

/// A column's type, as both schemas agree on it.
#[derive(Clone, Copy)]
enum Ty {
    /// INTEGER / BIGINT (nullable).
    Int,
    /// TEXT (nullable).
    Text,
    /// INTEGER 0/1 / BOOLEAN.
    Bool,
    /// BLOB / BYTEA (nullable).
    Bytes,
}

/// A table: its name, its columns, and whether it has an identity `id`
/// column whose sequence must move on past the copied ids.
type Table = (&'static str, &'static [(&'static str, Ty)], bool);

/// Every table in the order foreign keys allow.
const TABLES: &[Table] = &[
    (
        "users",
        &[
            ("id", Ty::Int),
            ("username", Ty::Text),
            ("email", Ty::Text),
            ("first_name", Ty::Text),
            ("last_name", Ty::Text),
            ("is_superuser", Ty::Bool),
            ("password_hash", Ty::Text),
            ("created_at", Ty::Int),
            ("last_login", Ty::Int),
        ],
        true,
    ),
    (
        "authenticator_users",
        &[
            ("authenticator", Ty::Text),
            ("uid", Ty::Text),
            ("user_id", Ty::Int),
            ("linked_at", Ty::Int),
        ],
        false,
    ),
    (
        "organizations",
        &[("id", Ty::Int), ("name", Ty::Text), ("created_at", Ty::Int)],
        true,
    ),
    (
        "teams",
        &[
            ("id", Ty::Int),
            ("organization_id", Ty::Int),
            ("name", Ty::Text),
            ("created_at", Ty::Int),
        ],
        true,
    ),
    (
        "grants",
        &[
            ("user_id", Ty::Int),
            ("organization_id", Ty::Int),
            ("team_id", Ty::Int),
            ("role", Ty::Text),
            ("authenticator", Ty::Text),
            ("granted_at", Ty::Int),
        ],
        false,
    ),
    (
        "static_tokens",
        &[
            ("id", Ty::Int),
            ("user_id", Ty::Int),
            ("digest", Ty::Bytes),
            ("name", Ty::Text),
            ("created_at", Ty::Int),
            ("revoked_at", Ty::Int),
        ],
        true,
    ),
    (
        "pending_logins",
        &[
            ("digest", Ty::Text),
            ("kind", Ty::Text),
            ("authenticator", Ty::Text),
            ("username", Ty::Text),
            ("peer_uid", Ty::Int),
            ("state", Ty::Text),
            ("callback_url", Ty::Text),
            ("return_to", Ty::Text),
            ("expires_at", Ty::Int),
            ("used_at", Ty::Int),
        ],
        false,
    ),
    // parents are set in a second pass (a child may sort before its parent)
    (
        "namespaces",
        &[("name", Ty::Text), ("created_at", Ty::Int)],
        false,
    ),
    (
        "purchases",
        &[
            ("namespace", Ty::Text),
            ("add_on", Ty::Text),
            ("seats", Ty::Int),
            ("bought_at", Ty::Int),
        ],
        false,
    ),
    (
        "seat_assignments",
        &[
            ("user_id", Ty::Int),
            ("add_on", Ty::Text),
            ("assigned_at", Ty::Int),
        ],
        false,
    ),
    (
        "one_time_claims",
        &[("scope", Ty::Text), ("key", Ty::Text), ("expires_at", Ty::Int)],
        false,
    ),
    (
        "lockout_failures",
        &[
            ("id", Ty::Int),
            ("key", Ty::Bytes),
            ("at_ms", Ty::Int),
            ("label", Ty::Text),
        ],
        true,
    ),
    (
        "documents",
        &[
            ("name", Ty::Text),
            ("value", Ty::Text),
            ("version", Ty::Int),
            ("updated_at", Ty::Int),
        ],
        false,
    ),
    (
        "offline_verifiers",
        &[
            ("authenticator", Ty::Text),
            ("username", Ty::Text),
            ("user_id", Ty::Int),
            ("uid", Ty::Text),
            ("verifier", Ty::Text),
            ("verified_at", Ty::Int),
        ],
        false,
    ),
];

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("SQLite: {e}"))
}

fn pg_err(e: postgres::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {e}"))
}

/// One SQLite value as a PostgreSQL parameter of the column's type.
fn param(ty: Ty, v: ValueRef<'_>) -> Result<Box<dyn ToSql + Sync>, StoreError> {
    let bad = || StoreError::Backend(format!("unexpected SQLite value {v:?}"));
    Ok(match (ty, v) {
        (Ty::Int, ValueRef::Null) => Box::new(None::<i64>),
        (Ty::Int, ValueRef::Integer(i)) => Box::new(Some(i)),
        (Ty::Text, ValueRef::Null) => Box::new(None::<String>),
        (Ty::Text, ValueRef::Text(t)) => Box::new(Some(String::from_utf8(t.to_vec()).map_err(|_| bad())?)),
        (Ty::Bool, ValueRef::Integer(i)) => Box::new(i != 0),
        (Ty::Bytes, ValueRef::Null) => Box::new(None::<Vec<u8>>),
        (Ty::Bytes, ValueRef::Blob(b)) => Box::new(Some(b.to_vec())),
        _ => return Err(bad()),
    })
}

/// Copies every row of the SQLite store at `from` into the PostgreSQL
/// store `to` (created and migrated as needed; it must hold no rows).
/// Returns each table with its row count, checked on both sides. Blocking.
pub fn sqlite_to_postgres(from: &Path, to: &PostgresSettings) -> Result<Vec<(String, i64)>, StoreError> {
    if !from.is_file() {
        return Err(StoreError::NotFound(format!(
            "no SQLite store at {}",
            from.display()
        )));
    }
    // Opening brings the SQLite file to the current schema first.
    drop(SqliteStore::open(from)?);
    drop(PostgresStore::open(to)?);
    let src = rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite_err)?;
    let mut dst = PostgresStore::client(to)?;
    let mut tx = dst.transaction().map_err(pg_err)?;
    for (table, _, _) in TABLES {
        let n: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .map_err(pg_err)?
            .get(0);
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "the PostgreSQL database is not empty ({table} has {n} rows); migrate into a new database"
            )));
        }
    }
    let mut counts = Vec::new();
    for (table, cols, identity) in TABLES {
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            ))
            .map_err(pg_err)?;
        let mut st = src
            .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
            .map_err(sqlite_err)?;
        let mut rows = st.query([]).map_err(sqlite_err)?;
        let mut copied = 0i64;
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            let mut params = Vec::with_capacity(cols.len());
            for (i, (_, ty)) in cols.iter().enumerate() {
                params.push(param(*ty, row.get_ref(i).map_err(sqlite_err)?)?);
            }
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            tx.execute(&insert, &refs).map_err(pg_err)?;
            copied += 1;
        }
        if *table == "namespaces" {
            let mut st = src
                .prepare("SELECT name, parent FROM namespaces WHERE parent IS NOT NULL")
                .map_err(sqlite_err)?;
            let pairs = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(sqlite_err)?;
            for p in pairs {
                let (name, parent) = p.map_err(sqlite_err)?;
                tx.execute(
                    "UPDATE namespaces SET parent = $2 WHERE name = $1",
                    &[&name, &parent],
                )
                .map_err(pg_err)?;
            }
        }
        if *identity {
            // new rows continue after the moved ids
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                ),
                &[],
            )
            .map_err(pg_err)?;
        }
        let expected: i64 = src
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .map_err(sqlite_err)?;
        let landed: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .map_err(pg_err)?
            .get(0);
        if expected != copied || landed != copied {
            return Err(StoreError::Backend(format!(
                "{table}: {expected} rows in SQLite, {copied} copied, {landed} in PostgreSQL; nothing was committed"
            )));
        }
        counts.push(((*table).to_owned(), landed));
    }
    tx.commit().map_err(pg_err)?;
    Ok(counts)
}
