//! `gatehouse token issue`, `gatehouse issuer rotate` and
//! `gatehouse entitlements …`: the issuer's socket routes.

use clap::Subcommand;
use gatehouse_daemon::client::{Client, encode_segment};
use gatehouse_sdk::proto::{IssueTokenRequest, IssuedToken};
use http::Method;
use serde_json::{Value, json};

use super::{Cli, Failure, expect};

/// `gatehouse token …`.
#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Issue a service access token (admins and `[issuer] issue_uids`);
    /// prints the token, its scopes and expiry go to stderr.
    Issue {
        /// The service, as the catalog names it.
        #[arg(long)]
        service: String,
        /// For this user.
        #[arg(long, conflicts_with = "namespace")]
        user: Option<String>,
        /// For this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// The caller's version (for the catalog's minimum versions).
        #[arg(long)]
        caller_version: Option<String>,
        /// An extra claim, `name=value` (a JSON value, else a string); repeatable.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
    },
}

/// `gatehouse issuer …`.
#[derive(Subcommand, Debug)]
pub(crate) enum IssuerCommand {
    /// Make a new signing key; the old one stays published until the
    /// tokens it signed have expired (admin).
    Rotate,
}

/// `gatehouse entitlements …` (admin).
#[derive(Subcommand, Debug)]
pub(crate) enum EntitlementCommand {
    /// Every namespace, purchase and seat.
    List,
    /// Create or move a namespace (or delete it with --delete).
    Namespace {
        /// The namespace (a group path such as `acme/web`).
        name: String,
        /// Its parent namespace.
        #[arg(long, conflicts_with = "delete")]
        parent: Option<String>,
        /// Delete it and its purchases.
        #[arg(long)]
        delete: bool,
    },
    /// Record an add-on bought for a namespace, or for the whole instance
    /// without --namespace (or remove it with --delete).
    Purchase {
        /// The add-on.
        add_on: String,
        /// The namespace; the instance when absent.
        #[arg(long)]
        namespace: Option<String>,
        /// Seats bought.
        #[arg(long, default_value_t = 0, conflicts_with = "delete")]
        seats: u32,
        /// Remove the purchase.
        #[arg(long)]
        delete: bool,
    },
    /// Assign a user a seat of an add-on (or take it back with --delete).
    Seat {
        /// The user.
        user: String,
        /// The add-on.
        add_on: String,
        /// Take the seat back.
        #[arg(long)]
        delete: bool,
    },
}

fn transport(cli: &Cli, e: gatehouse_daemon::client::ClientError) -> Failure {
    super::exit::client(&cli.socket, e)
}

pub(crate) async fn token(cli: &Cli, client: &mut Client, cmd: &TokenCommand) -> Result<(), Failure> {
    let TokenCommand::Issue {
        service,
        user,
        namespace,
        caller_version,
        claims,
    } = cmd;
    let mut extra = serde_json::Map::new();
    for c in claims {
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| Failure::Usage(format!("--claim {c:?}: expected NAME=VALUE")))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        extra.insert(k.to_owned(), v);
    }
    let req = IssueTokenRequest {
        service: service.clone(),
        user: user.clone(),
        namespace: namespace.clone(),
        extra_claims: (!extra.is_empty()).then_some(extra),
        version: caller_version.clone(),
    };
    let a = client
        .post("/v1/tokens/issue", &req)
        .await
        .map_err(|e| transport(cli, e))?;
    let t: IssuedToken = expect(cli, &a)?;
    say!("{}", t.token.expose());
    eprintln!(
        "scopes: {}; expires at {}{}",
        t.scopes.join(" "),
        t.expires_at,
        if t.reused { " (reused)" } else { "" }
    );
    Ok(())
}

pub(crate) async fn issuer(cli: &Cli, client: &mut Client, cmd: &IssuerCommand) -> Result<(), Failure> {
    let IssuerCommand::Rotate = cmd;
    let a = client
        .post("/v1/issuer/rotate", &json!({}))
        .await
        .map_err(|e| transport(cli, e))?;
    let v: Value = expect(cli, &a)?;
    say!("new signing key {}", v["kid"].as_str().unwrap_or("?"));
    Ok(())
}

pub(crate) async fn entitlements(
    cli: &Cli,
    client: &mut Client,
    cmd: &EntitlementCommand,
) -> Result<(), Failure> {
    let verb = |delete: bool| if delete { Method::DELETE } else { Method::PUT };
    let a = match cmd {
        EntitlementCommand::List => client
            .get("/v1/entitlements")
            .await
            .map_err(|e| transport(cli, e))?,
        EntitlementCommand::Namespace { name, parent, delete } => {
            let path: Vec<String> = name.split('/').map(encode_segment).collect();
            client
                .send_json(
                    verb(*delete),
                    &format!("/v1/entitlements/namespaces/{}", path.join("/")),
                    &json!({ "parent": parent }),
                )
                .await
                .map_err(|e| transport(cli, e))?
        }
        EntitlementCommand::Purchase {
            add_on,
            namespace,
            seats,
            delete,
        } => {
            let mut body = json!({"add_on": add_on, "namespace": namespace});
            if !delete {
                body["seats"] = json!(seats);
            }
            client
                .send_json(verb(*delete), "/v1/entitlements/purchases", &body)
                .await
                .map_err(|e| transport(cli, e))?
        }
        EntitlementCommand::Seat { user, add_on, delete } => client
            .send_json(
                verb(*delete),
                "/v1/entitlements/seats",
                &json!({"user": user, "add_on": add_on}),
            )
            .await
            .map_err(|e| transport(cli, e))?,
    };
    let v: Value = expect(cli, &a)?;
    if let EntitlementCommand::List = cmd {
        for n in v["namespaces"].as_array().into_iter().flatten() {
            match n["parent"].as_str() {
                Some(p) => say!("namespace {} (in {p})", n["name"].as_str().unwrap_or("")),
                None => say!("namespace {}", n["name"].as_str().unwrap_or("")),
            }
        }
        for p in v["purchases"].as_array().into_iter().flatten() {
            say!(
                "purchase  {} for {}: {} seats",
                p["add_on"].as_str().unwrap_or(""),
                p["namespace"].as_str().unwrap_or("the instance"),
                p["seats"]
            );
        }
        for s in v["seats"].as_array().into_iter().flatten() {
            say!(
                "seat      {} holds {}",
                s["user"].as_str().unwrap_or(""),
                s["add_on"].as_str().unwrap_or("")
            );
        }
    } else {
        say!("ok");
    }
    Ok(())
}
