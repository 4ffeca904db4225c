//! `gatehouse store …`: the store as a whole.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use clap::Subcommand;
use gatehouse_daemon::client::Client;

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
}

pub(crate) async fn store(cli: &Cli, client: &mut Client, cmd: &StoreCommand) -> Result<(), Failure> {
    let StoreCommand::Backup { file } = cmd;
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
