//! `gatehouse maps simulate`, `gatehouse lockout …`, and the generated
//! shell completions and man pages.

use std::path::PathBuf;

use clap::{CommandFactory, Subcommand};
use gatehouse_daemon::client::{Client, encode_segment};
use gatehouse_sdk::proto::LockoutList;

use crate::exit::Failure;
use crate::{Cli, expect, expect_empty};

/// `gatehouse maps …` (admin).
#[derive(Subcommand, Debug)]
pub(crate) enum MapsCommand {
    /// What AUTHENTICATOR's maps would grant, revoke or deny for an
    /// identity (nothing is written): `--identity` is a JSON object
    /// (`{"uid": …, "username": …, "groups": […], …}`), or `-` for stdin.
    Simulate {
        /// The authenticator whose maps run.
        authenticator: String,
        /// The identity as JSON, or `-`.
        #[arg(long)]
        identity: String,
    },
}

/// `gatehouse lockout …` (admin).
#[derive(Subcommand, Debug)]
pub(crate) enum LockoutCommand {
    /// The failure counters within `[lockout] window`.
    List,
    /// Clear USER's failures (their logins are accepted again).
    Reset {
        /// The username.
        user: String,
    },
}

pub(crate) async fn maps(cli: &Cli, client: &mut Client, cmd: &MapsCommand) -> Result<(), Failure> {
    let MapsCommand::Simulate {
        authenticator,
        identity,
    } = cmd;
    let text = if identity == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure::Usage(format!("cannot read the identity from stdin: {e}")))?
    } else {
        identity.clone()
    };
    let identity: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("--identity is not JSON: {e}")))?;
    let a = client
        .post(
            "/v1/maps/simulate",
            &serde_json::json!({"authenticator": authenticator, "identity": identity}),
        )
        .await
        .map_err(|e| crate::exit::client(&cli.socket, e))?;
    let v: serde_json::Value = expect(cli, &a)?;
    say!("authenticator: {}", v["authenticator"].as_str().unwrap_or(""));
    say!("allowed:       {}", v["allowed"]);
    match v["is_superuser"].as_bool() {
        Some(b) => say!("superuser:     {b}"),
        None => say!("superuser:     (no map decides)"),
    }
    for (label, key) in [
        ("organizations", "organizations"),
        ("teams", "teams"),
        ("roles", "roles"),
        ("revoked", "revoked"),
        ("skipped", "skipped"),
    ] {
        let items = v[key].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            continue;
        }
        say!("{label}:");
        for i in items {
            let path = [&i["organization"], &i["team"], &i["role"]]
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" / ");
            let note = if i["would_create"] == true {
                " (would be created)"
            } else if !i["exists"].as_bool().unwrap_or(true) {
                " (does not exist)"
            } else {
                ""
            };
            say!("  {path}{note}");
        }
    }
    say!("maps:");
    for m in v["maps"].as_array().cloned().unwrap_or_default() {
        say!(
            "  {:<24} {:<8} {:<6} {}",
            m["name"].as_str().unwrap_or(""),
            m["action"].as_str().unwrap_or(""),
            if m["triggered"] == true { "yes" } else { "no" },
            m["decided_by"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

pub(crate) async fn lockout(cli: &Cli, client: &mut Client, cmd: &LockoutCommand) -> Result<(), Failure> {
    let transport = |e| crate::exit::client(&cli.socket, e);
    match cmd {
        LockoutCommand::List => {
            let a = client.get("/v1/lockout").await.map_err(transport)?;
            let list: LockoutList = expect(cli, &a)?;
            if list.counters.is_empty() {
                say!("no failures counted");
            }
            for c in list.counters {
                say!(
                    "{:<8} {:<32} {:>3} failure(s){}{}",
                    c.kind,
                    c.name,
                    c.failures,
                    c.peer_uid
                        .filter(|_| c.kind == "address")
                        .map(|u| format!(" from uid {u}"))
                        .unwrap_or_default(),
                    if c.locked {
                        format!("  LOCKED for {}s", c.retry_after)
                    } else {
                        String::new()
                    }
                );
            }
        }
        LockoutCommand::Reset { user } => {
            let a = client
                .delete(&format!("/v1/lockout/{}", encode_segment(user)))
                .await
                .map_err(transport)?;
            expect_empty(cli, &a)?;
            say!("{user}: failures cleared");
        }
    }
    Ok(())
}

/// `gatehouse completions SHELL`: the completion script on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut Cli::command(), "gatehouse", &mut std::io::stdout());
}

/// `gatehouse man DIR`: gatehouse.1 and one page per subcommand
/// (`gatehouse-user-add.1` …) into DIR (scripts/package.sh).
pub(crate) fn man(dir: &PathBuf) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", dir.display())))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| Failure::Usage(format!("cannot write the man pages into {}: {e}", dir.display())))
}
