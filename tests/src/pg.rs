//! The PostgreSQL peer (`tests/peers/pg`): throwaway clusters on
//! 127.0.0.1, one per port, started once and shared across test
//! processes; a new database per test so tests run in parallel; and the
//! `[store]` table that points a daemon at one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::repo_root;

/// The port of the shared cluster.
pub const PG_PORT: u16 = 19430;

/// One cluster: its superuser URL and the CA that signed its certificate.
#[derive(Clone, Debug)]
pub struct PgCluster {
    /// The port.
    pub port: u16,
    /// `postgres://postgres:<pw>@127.0.0.1:<port>/postgres`.
    pub admin_url: String,
    /// The throwaway CA (PEM).
    pub ca: PathBuf,
}

fn script(name: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("tests/peers/pg").join(name))
        .args(args)
        .output()
        .expect("run a tests/peers/pg script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tests/peers/pg/{name} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Starts (or finds) the cluster on `port`. Panics with the script's output
/// when it cannot: PostgreSQL tests never skip silently.
pub fn pg_start(port: u16) -> PgCluster {
    let out = script("start.sh", &[&port.to_string()]);
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing from start.sh output:\n{out}"))
            .to_owned()
    };
    PgCluster {
        port,
        admin_url: get("GH_PG_URL"),
        ca: PathBuf::from(get("GH_PG_CA")),
    }
}

/// Stops the cluster on `port` (its data stays).
pub fn pg_stop(port: u16) {
    script("stop.sh", &[&port.to_string()]);
}

/// The shared cluster, started once per test process.
pub fn pg_peer() -> PgCluster {
    static PEER: std::sync::OnceLock<PgCluster> = std::sync::OnceLock::new();
    PEER.get_or_init(|| pg_start(PG_PORT)).clone()
}

impl PgCluster {
    /// The superuser's password.
    pub fn password(&self) -> String {
        self.admin_url
            .strip_prefix("postgres://postgres:")
            .and_then(|rest| rest.split_once('@'))
            .map(|(pw, _)| pw.to_owned())
            .expect("a password in the admin URL")
    }

    /// Runs `f` with a superuser connection to `db`, on a thread of its
    /// own (the synchronous client must not run on an async worker).
    pub fn with<T: Send>(&self, db: &str, f: impl FnOnce(&mut postgres::Client) -> T + Send) -> T {
        let url = format!("{}/{db}", self.admin_url.rsplit_once('/').expect("a URL").0);
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut c =
                    postgres::Client::connect(&url, postgres::NoTls).expect("connect to the test cluster");
                f(&mut c)
            })
            .join()
            .expect("a PostgreSQL helper thread")
        })
    }

    /// Every username in `db`'s users table (duplicates kept).
    pub fn usernames(&self, db: &str) -> Vec<String> {
        self.with(db, |c| {
            c.query("SELECT username FROM users", &[])
                .expect("list users")
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
    }

    /// Creates a new, empty database named after `prefix`; its name.
    pub fn database(&self, prefix: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "gh_{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.with("postgres", |c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .expect("drop an old test database");
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create a test database");
        });
        name
    }

    /// The `[store]` table for database `db`: TLS verified against the
    /// cluster's CA, the password from `password_file` (written to `dir`).
    pub fn store_table(&self, db: &str, dir: &Path) -> String {
        let pw = dir.join(format!("pg-password-{db}"));
        std::fs::write(&pw, format!("{}\n", self.password())).expect("write the password file");
        format!(
            "[store]\nurl = \"postgres://postgres@127.0.0.1:{}/{db}?sslmode=require\"\nca_file = \"{}\"\npassword_file = \"{}\"\npool_size = 4\nconnect_timeout = \"2s\"\n",
            self.port,
            self.ca.display(),
            pw.display()
        )
    }

    /// `SELECT COUNT(*)` of a query's rows in `db`.
    pub fn count(&self, db: &str, sql: &str) -> i64 {
        self.with(db, |c| {
            c.query_one(&format!("SELECT COUNT(*) FROM ({sql}) AS q"), &[])
                .expect("count")
                .get(0)
        })
    }
}
