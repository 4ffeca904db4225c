//! `gatehouse`: the command-line client of `gatehoused`. It speaks the
//! socket API through [`gatehouse_daemon::client`] and the wire types only.
//!
//! Exit status (`exit.rs`, documented in `docs/cli.md`): 0 success, 1 the
//! daemon refused, 2 usage error, 3 daemon unreachable, 4 permission
//! denied, 5 wrong credentials, 6 `status`: degraded.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse_daemon::client::{Answer, Client, decode_segment, encode_segment};
use gatehouse_sdk::Secret;
use gatehouse_sdk::proto::{
    AuthenticatorList, ContinueRequest, CreateUser, FinishLoginRequest, Health, LoginRequest, LoginResponse,
    PluginList, ReloadAnswer, SetPassword, StartLoginRequest, StartLoginResponse, Status, TokenVerified,
    UserList, VerifyTokenRequest,
};

/// Writes a line to stdout; a closed pipe (`gatehouse … | head`) ends the
/// program quietly instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*)
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }};
}

mod exit;
mod issuer;
mod ops;
mod store;

/// Talk to the gatehouse daemon.
#[derive(Parser, Debug)]
#[command(name = "gatehouse", version, about)]
struct Cli {
    /// The daemon's socket.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_SOCKET",
        default_value = "/run/gatehouse/gatehouse.sock"
    )]
    socket: PathBuf,
    /// The user gatehoused runs as (a name or a uid). The CLI talks only to
    /// a socket whose file and listening process belong to root, to you,
    /// or to this user (default: `gatehouse`, when that user exists), so a
    /// socket put in its place by someone else never gets a password.
    #[arg(long, global = true, env = "GATEHOUSE_DAEMON_USER", value_name = "USER")]
    daemon_user: Option<String>,
    /// Print the daemon's JSON answers instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Health, the last reload, and each authenticator's and verifier's
    /// backend (online / offline since / last error; keys per issuer).
    /// Exits 6 when the last reload failed or a backend is offline (admin;
    /// other peers see the health part only).
    Status,
    /// The configured authenticators in login order.
    Authenticators,
    /// Every authenticator and verifier type with where it comes from, the
    /// plugin libraries, and the files of plugin_dirs skipped (admin).
    Plugins,
    /// Log a user in (password from the terminal, or stdin when not a TTY),
    /// or drive a redirect login by hand: `--start NAME` prints the URL to
    /// open; `--finish NAME --params 'state=…&code=…'` completes it with the
    /// callback's parameters.
    Login {
        /// Only this authenticator.
        #[arg(long, conflicts_with_all = ["start", "finish"])]
        authenticator: Option<String>,
        /// Start a redirect login with this authenticator; prints the URL.
        #[arg(long, value_name = "AUTHENTICATOR", conflicts_with_all = ["finish", "user"])]
        start: Option<String>,
        /// Where the browser should end up afterwards (with --start).
        #[arg(long, requires = "start")]
        return_to: Option<String>,
        /// Finish a redirect login with this authenticator (with --params).
        #[arg(
            long,
            value_name = "AUTHENTICATOR",
            requires = "params",
            conflicts_with = "user"
        )]
        finish: Option<String>,
        /// The callback's query string, `k=v&k2=v2` (percent-encoded).
        #[arg(long, requires = "finish")]
        params: Option<String>,
        /// The username (password logins).
        #[arg(required_unless_present_any = ["start", "finish"])]
        user: Option<String>,
    },
    /// Check a token (`-` reads it from stdin, keeping it out of `ps`).
    Verify {
        /// The token, or `-`.
        token: String,
        /// A unit primitive the token's scopes must contain.
        #[arg(long)]
        unit_primitive: Option<String>,
        /// The audience the token must be for.
        #[arg(long)]
        audience: Option<String>,
        /// Only this verifier.
        #[arg(long)]
        verifier: Option<String>,
    },
    /// Reload the daemon's configuration (admin).
    Reload,
    /// Validate a configuration file offline (runs `gatehoused --check-config`).
    CheckConfig {
        /// The main configuration file.
        file: PathBuf,
        /// Read `*_credential` secrets from DIR (as systemd's
        /// `$CREDENTIALS_DIRECTORY`); without it they are noted as not
        /// checked outside the unit.
        #[arg(long, value_name = "DIR")]
        credentials_dir: Option<PathBuf>,
    },
    /// Manage local users (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage per-user static-object tokens (admin).
    #[command(subcommand)]
    StaticToken(StaticTokenCommand),
    /// Service access tokens from the daemon's issuer.
    #[command(subcommand)]
    Token(issuer::TokenCommand),
    /// The issuer's signing keys (admin).
    #[command(subcommand)]
    Issuer(issuer::IssuerCommand),
    /// Namespaces, add-on purchases and seats (admin).
    #[command(subcommand)]
    Entitlements(issuer::EntitlementCommand),
    /// Try an authenticator's maps on an identity (admin).
    #[command(subcommand)]
    Maps(ops::MapsCommand),
    /// The login failure counters (admin).
    #[command(subcommand)]
    Lockout(ops::LockoutCommand),
    /// The store as a whole: a backup through the daemon (admin), or a
    /// migration done offline (the daemons stopped).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages into DIR.
    #[command(hide = true)]
    Man {
        /// The directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum StaticTokenCommand {
    /// Create a token for USER and print it (it is shown only once).
    Create {
        /// The user.
        user: String,
        /// A label.
        #[arg(long)]
        name: Option<String>,
    },
    /// List USER's tokens.
    List {
        /// The user.
        user: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token id.
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user; the password is read from the terminal or stdin.
    Add {
        /// The username.
        user: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Given name.
        #[arg(long)]
        first_name: Option<String>,
        /// Family name.
        #[arg(long)]
        last_name: Option<String>,
        /// Make the user a superuser.
        #[arg(long)]
        superuser: bool,
    },
    /// Set a user's password (read from the terminal or stdin).
    Passwd {
        /// The username.
        user: String,
    },
    /// Delete a user.
    Del {
        /// The username.
        user: String,
    },
    /// List users.
    List,
}

use exit::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::CheckConfig {
        file,
        credentials_dir,
    } = &cli.command
    {
        return check_config(file, credentials_dir.as_deref());
    }
    match &cli.command {
        Command::Completions { shell } => {
            ops::completions(*shell);
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => {
            return match ops::man(dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(f) => f.report(),
            };
        }
        _ => {}
    }
    if let Command::Store(cmd @ store::StoreCommand::Migrate { .. }) = &cli.command {
        return store::migrate(cli.json, cmd);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

/// The uids a socket may belong to: root, the caller, and the daemon's
/// user (`--daemon-user`, else `gatehouse` when it exists).
fn trusted_uids(cli: &Cli) -> Result<Vec<u32>, Failure> {
    let mut uids = vec![0, gatehouse_daemon::client::current_uid()];
    match &cli.daemon_user {
        Some(user) => uids.push(
            gatehouse_daemon::client::lookup_uid(user)
                .ok_or_else(|| Failure::Usage(format!("--daemon-user: no user {user:?}")))?,
        ),
        None => uids.extend(gatehouse_daemon::client::lookup_uid("gatehouse")),
    }
    uids.sort_unstable();
    uids.dedup();
    Ok(uids)
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    // Every command checks who listens before it sends anything: logins,
    // `user add`/`passwd` and `verify` send secrets, and the others' answers
    // are only worth something from the real daemon.
    let mut client = Client::connect_trusted(&cli.socket, &trusted_uids(cli)?)
        .await
        .map_err(|e| exit::client(&cli.socket, e))?;
    let transport = |e: gatehouse_daemon::client::ClientError| exit::client(&cli.socket, e);
    match &cli.command {
        Command::Status => return status(cli, &mut client).await,
        Command::Authenticators => {
            let a = client.get("/v1/authenticators").await.map_err(transport)?;
            let list: AuthenticatorList = expect(cli, &a)?;
            for x in list.authenticators {
                say!(
                    "{:>4}  {:<8} {:<10} {:<8} {}",
                    x.order,
                    if x.enabled { "enabled" } else { "disabled" },
                    x.kind,
                    x.flow,
                    x.name
                );
            }
        }
        Command::Plugins => {
            let a = client.get("/v1/plugins").await.map_err(transport)?;
            let list: PluginList = expect(cli, &a)?;
            say!("types:");
            for t in &list.types {
                say!("  {:<13} {:<20} {}", t.family, t.type_name, t.origin);
            }
            if !list.libraries.is_empty() {
                say!("libraries:");
            }
            for l in &list.libraries {
                say!("  {} {} (sdk {}): {}", l.name, l.version, l.sdk_version, l.path);
                let mut provides: Vec<String> = l
                    .authenticators
                    .iter()
                    .map(|t| format!("authenticator {t}"))
                    .collect();
                provides.extend(l.verifiers.iter().map(|t| format!("verifier {t}")));
                say!(
                    "    provides: {}",
                    if provides.is_empty() {
                        "nothing".to_owned()
                    } else {
                        provides.join(", ")
                    }
                );
                if !l.capabilities.is_empty() {
                    say!("    needs:    {}", l.capabilities.join(", "));
                }
            }
            if !list.skipped.is_empty() {
                say!("skipped (not gatehouse plugins):");
            }
            for s in &list.skipped {
                say!("  {}: {}", s.path, s.reason);
            }
        }
        Command::Login {
            start: Some(name),
            return_to,
            ..
        } => {
            let req = StartLoginRequest {
                authenticator: name.clone(),
                return_to: return_to.clone(),
            };
            let a = client.post("/v1/login/start", &req).await.map_err(transport)?;
            let r: StartLoginResponse = expect(cli, &a)?;
            say!("{}", r.redirect_url);
        }
        Command::Login {
            finish: Some(name),
            params,
            ..
        } => {
            let params = parse_query(params.as_deref().unwrap_or(""))
                .ok_or_else(|| Failure::Usage("--params: invalid percent-encoding".into()))?;
            let req = FinishLoginRequest {
                authenticator: name.clone(),
                params,
                state: None,
                explain: false,
            };
            let a = client.post("/v1/login/finish", &req).await.map_err(transport)?;
            answer_challenges(cli, &mut client, a).await?;
        }
        Command::Login {
            authenticator, user, ..
        } => {
            let password = read_password("Password: ", false)?;
            let req = LoginRequest {
                username: user.clone().unwrap_or_default(),
                password,
                authenticator: authenticator.clone(),
                remote_addr: None,
                explain: false,
            };
            let a = client.post("/v1/login", &req).await.map_err(transport)?;
            answer_challenges(cli, &mut client, a).await?;
        }
        Command::Verify {
            token,
            unit_primitive,
            audience,
            verifier,
        } => {
            let token = if token == "-" {
                read_password("Token: ", false)?
            } else {
                Secret::new(token.clone())
            };
            let req = VerifyTokenRequest {
                token,
                verifier: verifier.clone(),
                audience: audience.clone(),
                unit_primitive: unit_primitive.clone(),
            };
            let a = client.post("/v1/tokens/verify", &req).await.map_err(transport)?;
            let t: TokenVerified = expect(cli, &a)?;
            say!("valid (verifier {})", t.verifier);
            say!("issuer:   {}", t.issuer);
            say!("subject:  {}", t.subject);
            say!("audience: {}", t.audience.join(", "));
            say!("scopes:   {}", t.scopes.join(", "));
            if let Some(exp) = t.expires_at {
                say!("expires:  {exp}");
            }
        }
        Command::Reload => {
            let a = client
                .post("/v1/reload", &serde_json::json!({}))
                .await
                .map_err(transport)?;
            let r: ReloadAnswer = expect(cli, &a)?;
            say!("reloaded: generation {}", r.generation);
        }
        Command::CheckConfig { .. } => unreachable_check_config(),
        Command::User(cmd) => user(cli, &mut client, cmd).await?,
        Command::Token(cmd) => return issuer::token(cli, &mut client, cmd).await,
        Command::Issuer(cmd) => return issuer::issuer(cli, &mut client, cmd).await,
        Command::Entitlements(cmd) => return issuer::entitlements(cli, &mut client, cmd).await,
        Command::Maps(cmd) => ops::maps(cli, &mut client, cmd).await?,
        Command::Lockout(cmd) => ops::lockout(cli, &mut client, cmd).await?,
        Command::Store(cmd) => store::store(cli, &mut client, cmd).await?,
        Command::Completions { .. } | Command::Man { .. } => unreachable_check_config(),
        Command::StaticToken(cmd) => {
            let a = match cmd {
                StaticTokenCommand::Create { user, name } => client
                    .post(
                        &format!("/v1/users/{}/static-tokens", encode_segment(user)),
                        &serde_json::json!({ "name": name }),
                    )
                    .await
                    .map_err(transport)?,
                StaticTokenCommand::List { user } => client
                    .get(&format!("/v1/users/{}/static-tokens", encode_segment(user)))
                    .await
                    .map_err(transport)?,
                StaticTokenCommand::Revoke { id } => {
                    let a = client
                        .delete(&format!("/v1/static-tokens/{id}"))
                        .await
                        .map_err(transport)?;
                    expect_empty(cli, &a)?;
                    say!("revoked static-object token {id}");
                    return Ok(());
                }
            };
            let v: serde_json::Value = expect(cli, &a)?;
            match cmd {
                StaticTokenCommand::Create { .. } => {
                    say!("{}", v["token"].as_str().unwrap_or(""));
                    eprintln!(
                        "token id {} (shown once; revoke with `gatehouse static-token revoke {}`)",
                        v["id"], v["id"]
                    );
                }
                _ => {
                    for t in v["tokens"].as_array().into_iter().flatten() {
                        say!(
                            "{:>6}  {:<8} {}",
                            t["id"],
                            if t["revoked"].as_bool().unwrap_or(false) {
                                "revoked"
                            } else {
                                "active"
                            },
                            t["name"].as_str().unwrap_or("")
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

async fn user(cli: &Cli, client: &mut Client, cmd: &UserCommand) -> Result<(), Failure> {
    let transport = |e: gatehouse_daemon::client::ClientError| Failure::Usage(e.to_string());
    match cmd {
        UserCommand::Add {
            user,
            email,
            first_name,
            last_name,
            superuser,
        } => {
            let password = read_password("New password: ", true)?;
            let req = CreateUser {
                username: user.clone(),
                password,
                email: email.clone(),
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                is_superuser: *superuser,
            };
            let a = client.post("/v1/users", &req).await.map_err(transport)?;
            let u: gatehouse_sdk::proto::User = expect(cli, &a)?;
            say!("created user {} (id {})", u.username, u.id);
        }
        UserCommand::Passwd { user } => {
            let password = read_password("New password: ", true)?;
            let path = format!("/v1/users/{}/password", encode_segment(user));
            let a = client
                .put(&path, &SetPassword { password })
                .await
                .map_err(transport)?;
            expect_empty(cli, &a)?;
            say!("password of {user} changed");
        }
        UserCommand::Del { user } => {
            let a = client
                .delete(&format!("/v1/users/{}", encode_segment(user)))
                .await
                .map_err(transport)?;
            expect_empty(cli, &a)?;
            say!("deleted user {user}");
        }
        UserCommand::List => {
            let a = client.get("/v1/users").await.map_err(transport)?;
            let list: UserList = expect(cli, &a)?;
            for u in list.users {
                say!(
                    "{:>6}  {:<24} {}{}",
                    u.id,
                    u.username,
                    u.email.unwrap_or_default(),
                    if u.is_superuser { "  (superuser)" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// `gatehouse status`: `/v1/status` for admins, `/v1/health` otherwise.
async fn status(cli: &Cli, client: &mut Client) -> Result<(), Failure> {
    let transport = |e: gatehouse_daemon::client::ClientError| exit::client(&cli.socket, e);
    // health first: a client endpoint, so a peer refused the socket
    // learns why here; then the admin part when this peer may read it
    let a = client.get("/v1/health").await.map_err(transport)?;
    if cli.json && !a.ok() {
        say!("{}", String::from_utf8_lossy(&a.body));
    }
    let h: Health = expect_quiet(&a)?;
    let a = client.get("/v1/status").await.map_err(transport)?;
    let full = if a.error().is_some_and(|e| e.error.code == "forbidden") {
        None
    } else {
        Some(expect_quiet::<Status>(&a)?)
    };
    let h = full.as_ref().map_or(h, |s| s.health.clone());
    let degraded = h.last_reload_error.is_some()
        || full
            .as_ref()
            .is_some_and(|s| s.backends.iter().any(|b| b.state == "offline"));
    if cli.json {
        match &full {
            Some(s) => say!("{}", serde_json::to_string(s).unwrap_or_default()),
            None => say!("{}", serde_json::to_string(&h).unwrap_or_default()),
        }
    } else {
        say!(
            "status:         {}",
            if degraded { "degraded" } else { &h.status }
        );
        say!("version:        {}", h.version);
        say!("generation:     {} (loaded {})", h.generation, h.reloaded_at);
        match &h.last_reload_error {
            Some(e) => say!("last reload:    FAILED: {e}"),
            None => say!("last reload:    ok"),
        }
        match &full {
            None => say!(
                "backends:       (admin only: {} authenticators, {} verifiers)",
                h.authenticators,
                h.verifiers
            ),
            Some(s) => {
                say!("backends:");
                for b in &s.backends {
                    let since = match (&b.offline_since, &b.last_ok_at) {
                        (Some(t), _) => format!(" since {t}"),
                        (None, Some(t)) => format!(" (last answer {t})"),
                        (None, None) => String::new(),
                    };
                    say!(
                        "  {:<13} {:<20} {:<14} {}{since}",
                        b.family,
                        b.name,
                        b.kind,
                        b.state
                    );
                    if let Some(e) = &b.last_error {
                        say!(
                            "      last error: {e} ({})",
                            b.last_error_at.as_deref().unwrap_or("?")
                        );
                    }
                    for i in &b.issuers {
                        say!(
                            "      issuer {}: {} key(s), fetched {}{}",
                            i.issuer,
                            i.keys,
                            i.keys_fetched_at.as_deref().unwrap_or("never"),
                            i.last_error
                                .as_ref()
                                .map(|e| format!("; last fetch failed: {e}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    if degraded {
        return Err(Failure::with(exit::DEGRADED, ""));
    }
    Ok(())
}

/// Decodes a 2xx answer without printing it (the caller prints).
fn expect_quiet<T: serde::de::DeserializeOwned>(a: &Answer) -> Result<T, Failure> {
    if !a.ok() {
        return Err(api_failure(a));
    }
    a.json::<T>()
        .map_err(|e| Failure::Usage(format!("unexpected answer from the daemon: {e}")))
}

/// Decodes a 2xx answer, printing it raw with `--json`; turns an error
/// answer into [`Failure::Denied`].
/// Prints the outcome of a login, answering challenges (one-time codes,
/// RADIUS Access-Challenge) from the terminal until it is done.
async fn answer_challenges(cli: &Cli, client: &mut Client, mut a: Answer) -> Result<(), Failure> {
    for _ in 0..5 {
        match expect::<LoginResponse>(cli, &a)? {
            LoginResponse::Ok(r) => {
                say!(
                    "logged in as {} (id {}) by {}",
                    r.user.username,
                    r.user.id,
                    r.authenticator
                );
                return Ok(());
            }
            LoginResponse::Challenge(c) => {
                let prompt = format!("{} ", c.prompt.trim_end());
                let response = read_password(&prompt, false)?;
                let cont = ContinueRequest {
                    login_id: c.login_id,
                    response,
                };
                a = client
                    .post("/v1/login/continue", &cont)
                    .await
                    .map_err(|e| exit::client(&cli.socket, e))?;
            }
        }
    }
    Err(Failure::Denied("too many challenges".into()))
}

/// Parses `k=v&k2=v2` (percent-encoding, `+` for a space).
fn parse_query(query: &str) -> Option<std::collections::BTreeMap<String, String>> {
    // an encoded plus is %2B, so every bare `+` is a space
    let decode = |s: &str| decode_segment(&s.replace('+', " "));
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn expect<T: serde::de::DeserializeOwned>(cli: &Cli, a: &Answer) -> Result<T, Failure> {
    if cli.json {
        say!("{}", String::from_utf8_lossy(&a.body));
    }
    if !a.ok() {
        return Err(api_failure(a));
    }
    let value = a
        .json::<T>()
        .map_err(|e| Failure::Usage(format!("unexpected answer from the daemon: {e}")))?;
    if cli.json {
        // Already printed; the caller's text output is suppressed below.
        std::process::exit(0);
    }
    Ok(value)
}

fn expect_empty(cli: &Cli, a: &Answer) -> Result<(), Failure> {
    if !a.ok() {
        if cli.json {
            say!("{}", String::from_utf8_lossy(&a.body));
        }
        return Err(api_failure(a));
    }
    if cli.json {
        say!("{{}}");
        std::process::exit(0);
    }
    Ok(())
}

fn api_failure(a: &Answer) -> Failure {
    match a.error() {
        Some(e) => {
            let mut msg = format!("{} ({})", e.error.message, e.error.code);
            if let Some(errors) = e
                .error
                .details
                .as_ref()
                .and_then(|d| d.get("errors"))
                .and_then(|v| v.as_array())
            {
                for err in errors {
                    msg.push_str(&format!(
                        "\n  {}:{}: {}: {}",
                        err["file"].as_str().unwrap_or("?"),
                        err["line"].as_u64().map(|l| l.to_string()).unwrap_or_default(),
                        err["key"].as_str().unwrap_or(""),
                        err["message"].as_str().unwrap_or("")
                    ));
                }
            }
            exit::api(a, msg)
        }
        None => Failure::Denied(format!("HTTP {}", a.status)),
    }
}

/// Reads a password from the terminal (no echo) or one line of stdin. With
/// `confirm` on a terminal it asks twice.
fn read_password(prompt: &str, confirm: bool) -> Result<Secret, Failure> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt)
            .map_err(|e| Failure::Usage(format!("cannot read the password: {e}")))?;
        if confirm {
            let again = rpassword::prompt_password("Repeat: ")
                .map_err(|e| Failure::Usage(format!("cannot read the password: {e}")))?;
            if again != first {
                return Err(Failure::Usage("the passwords differ".into()));
            }
        }
        Ok(Secret::new(first))
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Usage(format!("cannot read the password from stdin: {e}")))?;
        let pw = line.strip_suffix('\n').unwrap_or(&line);
        let pw = pw.strip_suffix('\r').unwrap_or(pw);
        Ok(Secret::new(pw))
    }
}

/// `check-config` runs the daemon binary's offline validation, so the CLI
/// never links the daemon's configuration code.
fn check_config(file: &PathBuf, credentials_dir: Option<&std::path::Path>) -> ExitCode {
    let daemon = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("gatehoused")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("gatehoused"));
    let mut command = std::process::Command::new(&daemon);
    command.arg("--check-config").arg(file);
    if let Some(dir) = credentials_dir {
        command.arg("--credentials-dir").arg(dir);
    }
    match command.status() {
        Ok(s) => match s.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(1) => ExitCode::from(1),
            _ => ExitCode::from(2),
        },
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "gatehouse: cannot run {}: {e}",
                daemon.display()
            );
            ExitCode::from(2)
        }
    }
}

fn unreachable_check_config() -> ! {
    // `main` handles check-config before connecting.
    std::process::exit(2)
}
