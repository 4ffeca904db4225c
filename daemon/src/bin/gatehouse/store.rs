//! `gatehouse store …`: the store as a whole.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use gatehouse_daemon::client::Client;
use gatehouse_sdk::Secret;

use crate::exit::Failure;
use crate::{Cli, api_failure};

/// `gatehouse store …` (admin).
#[derive(Subcommand, Debug)]
pub(crate) enum StoreCommand {
    /// Write a consistent copy of the store to FILE while the daemon keeps
    /// serving (SQLite: a database file; restore: docs/operations.md).
    Backup {
        /// A new file (an existing one is not overwritten); mode 0600.
        file: PathBuf,
    },
    /// Move a single-host SQLite store into an empty PostgreSQL database
    /// (every table, ids kept, row counts checked; one transaction).
    Migrate {
        /// The SQLite store: `sqlite:PATH` (or `sqlite://PATH`).
        #[arg(long, value_name = "sqlite:PATH")]
        from: String,
        /// The PostgreSQL database: `postgres://user@host:port/db?sslmode=…`.
        /// Give the password with --password-file rather than in the URL.
        #[arg(long, value_name = "postgres://…")]
        to: String,
        /// A file holding the PostgreSQL password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The CA certificates (PEM) the server's certificate must chain to
        /// (TLS is then required).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

/// `store backup` (through the daemon; `migrate` is run before connecting).
pub(crate) async fn store(cli: &Cli, client: &mut Client, cmd: &StoreCommand) -> Result<(), Failure> {
    let StoreCommand::Backup { file } = cmd else {
        return Err(Failure::Usage("store migrate runs without a daemon".into()));
    };
    // Create the file first: a backup must not replace anything, and a
    // path we cannot write should fail before the daemon does the work.
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", file.display())))?;
    let result = async {
        let a = client
            .get("/v1/store/backup")
            .await
            .map_err(|e| crate::exit::client(&cli.socket, e))?;
        if !a.ok() {
            return Err(api_failure(&a));
        }
        out.write_all(&a.body)
            .and_then(|()| out.sync_all())
            .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", file.display())))?;
        Ok(a.body.len())
    }
    .await;
    match result {
        Ok(n) => {
            say!("{}: {n} bytes", file.display());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(file);
            Err(e)
        }
    }
}

/// `store migrate`: works on the databases directly, not through a daemon.
pub(crate) fn migrate(json: bool, cmd: &StoreCommand) -> ExitCode {
    let StoreCommand::Migrate {
        from,
        to,
        password_file,
        ca_file,
    } = cmd
    else {
        return ExitCode::from(2);
    };
    let fail = |code: u8, m: String| {
        let _ = writeln!(std::io::stderr(), "gatehouse: {m}");
        ExitCode::from(code)
    };
    let Some(path) = from
        .strip_prefix("sqlite://")
        .or_else(|| from.strip_prefix("sqlite:"))
        .filter(|p| !p.is_empty())
    else {
        return fail(2, "--from must be sqlite:PATH".into());
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return fail(2, "--to must be a postgres:// URL".into());
    }
    let password = match password_file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => Some(Secret::new(t.trim_end_matches(['\n', '\r']))),
            Err(e) => return fail(2, format!("cannot read {}: {e}", f.display())),
        },
        None => None,
    };
    let settings = gatehouse_daemon::store::PostgresSettings {
        url: Secret::new(to.clone()),
        password,
        pool_size: 1,
        connect_timeout: std::time::Duration::from_secs(10),
        ca_file: ca_file.clone(),
    };
    match gatehouse_daemon::store::copy::sqlite_to_postgres(std::path::Path::new(path), &settings) {
        Ok(counts) => {
            if json {
                let map: serde_json::Map<String, serde_json::Value> =
                    counts.iter().map(|(t, n)| (t.clone(), (*n).into())).collect();
                say!("{}", serde_json::Value::Object(map));
            } else {
                say!("moved {path} to {}:", gatehouse_daemon::store::redacted_url(to));
                for (table, n) in &counts {
                    say!("  {table:<20} {n} rows (counts match)");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, e.to_string()),
    }
}
