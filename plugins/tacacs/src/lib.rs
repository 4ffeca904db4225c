//! `tacacs`: password logins against a TACACS+ server (RFC 8907), as a
//! plugin library the daemon loads from `plugin_dirs`.
//!
//! ```toml
//! [[authenticators]]
//! name = "Network TACACS+"
//! type = "tacacs"
//! [authenticators.settings]
//! host = "tacacs.example.com"
//! port = 49                      # default
//! secret_file = "/etc/gatehouse/tacacs-key"   # or secret / secret_credential
//! auth_protocol = "ascii"        # ascii (default) | pap
//! rem_addr = false               # send the login's remote_addr as rem_addr
//! session_timeout = 5            # seconds (or "5s"): the whole exchange
//! ```
//!
//! Each login is one authentication session on its own TCP connection
//! (no single-connect mode), with a random session id, bodies obfuscated
//! with the shared secret and sequence numbers checked both ways.
//!
//! - `pap`: one START carrying username and password; PASS or FAIL.
//! - `ascii`: a START carrying the username; the server's GETUSER is
//!   answered with the username and its GETPASS with the password (once
//!   each). A GETUSER or GETPASS asked again after the password went out
//!   is the server's way of saying "try again": the login is refused
//!   (`invalid_credentials`) and the session aborted.
//! - A GETDATA (a one-time code, a new PIN) becomes a challenge: the client
//!   sees the server's prompt (`echo` from the NOECHO flag) and answers
//!   through `/v1/login/continue`. The TCP session stays open in this
//!   plugin instance until the answer comes or five minutes pass.
//! - FOLLOW (deprecated) counts as FAIL; RESTART (the server wants another
//!   `auth_protocol`) and ERROR make the server unavailable.
//!
//! A reply that does not decode with the secret (the server has another
//! key), one sent in the clear, or one for another session or sequence
//! number makes the server unavailable (`backend_unavailable` to the
//! client) with a message naming the cause, never `invalid_credentials`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_sdk::serde::Deserialize;
use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Challenge, Context, Flow, Identity, LoginStep, PasswordLogin,
    Plugin, PluginConfig, PluginError, Secret, async_trait, serde_json,
};

pub mod packet;
pub mod session;

use packet::{Reply, Start, Status};
use session::{Session, SessionError};

/// The plugin: one authenticator type, `tacacs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TacacsPlugin;

impl Plugin for TacacsPlugin {
    fn name(&self) -> &str {
        "tacacs"
    }

    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        vec![Box::new(TacacsFactory)]
    }
}

gatehouse_sdk::export_plugin!(
    TacacsPlugin,
    authenticators = ["tacacs"],
    verifiers = [],
    capabilities = ["network"],
);

/// The `port` field of every START: the client "port" the server logs.
const CLIENT_PORT: &[u8] = b"gatehouse";
/// How long a session waits for a challenge's answer (the daemon's own
/// limit for challenge answers).
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// At most this many sessions wait for challenge answers at once.
const MAX_PENDING: usize = 1024;

/// `auth_protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(crate = "gatehouse_sdk::serde", rename_all = "lowercase")]
pub enum AuthProtocol {
    /// Prompts: GETUSER, GETPASS (and GETDATA challenges).
    #[default]
    Ascii,
    /// PAP: the password in the START packet.
    Pap,
}

impl AuthProtocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ascii => "ascii",
            Self::Pap => "pap",
        }
    }
}

/// `session_timeout`: whole seconds (as upstream) or a duration string.
#[derive(Clone, Debug, Deserialize)]
#[serde(crate = "gatehouse_sdk::serde", untagged)]
enum Timeout {
    Seconds(u64),
    Text(String),
}

/// `[authenticators.settings]` of `type = "tacacs"`.
#[derive(Debug, Deserialize)]
#[serde(crate = "gatehouse_sdk::serde", deny_unknown_fields)]
struct RawSettings {
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    secret: Secret,
    #[serde(default)]
    auth_protocol: AuthProtocol,
    #[serde(default)]
    rem_addr: bool,
    #[serde(default)]
    session_timeout: Option<Timeout>,
}

fn default_port() -> u16 {
    49
}

/// Checked settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Server host name or address.
    pub host: String,
    /// Server TCP port.
    pub port: u16,
    /// The shared key.
    pub secret: Secret,
    /// ASCII or PAP.
    pub auth_protocol: AuthProtocol,
    /// Send the login's remote address as `rem_addr`.
    pub rem_addr: bool,
    /// Deadline of one exchange (connect and every packet of a call).
    pub session_timeout: Duration,
}

fn bad(msg: impl Into<String>) -> PluginError {
    PluginError::Misconfigured(msg.into())
}

impl Settings {
    /// Parses and checks `[authenticators.settings]`.
    pub fn from_config(config: &PluginConfig) -> Result<Self, PluginError> {
        let raw: RawSettings = config.parse()?;
        let host = raw.host.trim();
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(bad("host: expected a host name or address"));
        }
        if raw.port == 0 {
            return Err(bad("port: must be between 1 and 65535"));
        }
        if raw.secret.is_empty() {
            return Err(bad(
                "secret: must not be empty (TACACS+ without a key sends passwords in the clear)",
            ));
        }
        let session_timeout = match raw.session_timeout {
            None => Duration::from_secs(5),
            Some(Timeout::Seconds(s)) => Duration::from_secs(s),
            Some(Timeout::Text(t)) => {
                gatehouse_sdk::parse_duration(&t).map_err(|e| bad(format!("session_timeout: {e}")))?
            }
        };
        if session_timeout.is_zero() || session_timeout > Duration::from_secs(300) {
            return Err(bad(
                "session_timeout: must be more than 0 and at most 300 seconds",
            ));
        }
        // A literal IPv6 address may come in brackets, as in URLs.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        Ok(Self {
            host,
            port: raw.port,
            secret: raw.secret,
            auth_protocol: raw.auth_protocol,
            rem_addr: raw.rem_addr,
            session_timeout,
        })
    }
}

/// Builds `tacacs` authenticators.
#[derive(Clone, Copy, Debug, Default)]
pub struct TacacsFactory;

impl AuthenticatorFactory for TacacsFactory {
    fn type_name(&self) -> &str {
        "tacacs"
    }

    fn flow(&self) -> Flow {
        Flow::Password
    }

    fn secret_settings(&self) -> &[&str] {
        &["secret"]
    }

    fn config_schema(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["host", "secret"],
            "properties": {
                "host": {"type": "string", "description": "TACACS+ server host name or address"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 49, "description": "TCP port of the server"},
                "secret": {"type": "string", "description": "the shared key (or secret_file, secret_credential)"},
                "auth_protocol": {"enum": ["ascii", "pap"], "default": "ascii", "description": "the authentication exchange: ascii (prompted) or pap"},
                "rem_addr": {"type": "boolean", "default": false,
                             "description": "send the login's remote address as rem_addr"},
                "session_timeout": {"type": ["integer", "string"], "default": 5,
                                    "description": "seconds, or a duration such as \"5s\""}
            }
        })
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        let settings = Settings::from_config(&config)?;
        Ok(Arc::new(Tacacs {
            settings,
            pending: Mutex::new(HashMap::new()),
        }))
    }
}

/// Where an ASCII login stands.
#[derive(Clone, Debug)]
struct Progress {
    username: String,
    /// The username went out as a GETUSER answer.
    user_answered: bool,
    /// The password went out (or a GETPASS was turned into a challenge).
    password_sent: bool,
}

/// A session waiting for a challenge's answer.
struct Pending {
    session: Session,
    progress: Progress,
    expires: Instant,
}

/// A configured `tacacs` authenticator.
pub struct Tacacs {
    settings: Settings,
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Tacacs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tacacs")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What one reply asks the client to do.
enum Next {
    Answer(Vec<u8>),
    Done(Result<LoginStep, PluginError>),
    Challenge { prompt: String, echo: bool },
}

fn unavailable(e: SessionError) -> PluginError {
    PluginError::Unavailable(format!("tacacs {e}"))
}

/// Server text for a log or a prompt: printable characters only, cut.
fn text(b: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(b)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    s.trim().to_owned()
}

fn random_id() -> Result<String, PluginError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| PluginError::Internal(format!("no random numbers: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Tacacs {
    /// Decides on one ASCII reply.
    fn next_ascii(reply: &Reply, p: &mut Progress, password: Option<&Secret>) -> Next {
        match reply.status {
            Status::Pass => Next::Done(Ok(LoginStep::Authenticated(Identity::new(
                p.username.clone(),
                p.username.clone(),
            )))),
            Status::Fail | Status::Follow => Next::Done(Err(PluginError::InvalidCredentials)),
            Status::GetUser if !p.user_answered && !p.password_sent => {
                p.user_answered = true;
                Next::Answer(p.username.as_bytes().to_vec())
            }
            Status::GetPass if !p.password_sent => {
                p.password_sent = true;
                match password {
                    Some(pw) => Next::Answer(pw.expose().as_bytes().to_vec()),
                    // The password was never asked for before a challenge:
                    // ask the user now, hidden.
                    None => Next::Challenge {
                        prompt: prompt_or(&reply.server_msg, "Password:"),
                        echo: false,
                    },
                }
            }
            // Asked again after the password: the server refused it.
            Status::GetUser | Status::GetPass => Next::Done(Err(PluginError::InvalidCredentials)),
            Status::GetData => Next::Challenge {
                prompt: prompt_or(&reply.server_msg, "Response:"),
                echo: !reply.no_echo(),
            },
            Status::Restart => Next::Done(Err(restart(AuthProtocol::Ascii))),
            Status::Error => Next::Done(Err(server_error(reply))),
        }
    }

    /// Decides on the one PAP reply.
    fn next_pap(reply: &Reply, username: &str) -> Next {
        Next::Done(match reply.status {
            Status::Pass => Ok(LoginStep::Authenticated(Identity::new(username, username))),
            Status::Fail | Status::Follow => Err(PluginError::InvalidCredentials),
            Status::Restart => Err(restart(AuthProtocol::Pap)),
            Status::Error => Err(server_error(reply)),
            s => Err(PluginError::Unavailable(format!(
                "tacacs unexpected_status: {s:?} in reply to a PAP login"
            ))),
        })
    }

    /// Runs an ASCII session from its current reply until it ends or asks
    /// a challenge.
    async fn drive(
        &self,
        mut session: Session,
        mut reply: Reply,
        mut progress: Progress,
        password: Option<&Secret>,
    ) -> Result<LoginStep, PluginError> {
        loop {
            match Self::next_ascii(&reply, &mut progress, password) {
                Next::Answer(msg) => {
                    let body = packet::encode_continue(&msg, 0)
                        .map_err(|e| unavailable(SessionError::TooLong(e)))?;
                    session.send(body).await.map_err(unavailable)?;
                    reply = session.receive().await.map_err(unavailable)?;
                }
                Next::Done(result) => {
                    if matches!(reply.status, Status::GetUser | Status::GetPass) {
                        session.abort().await;
                    }
                    return result;
                }
                Next::Challenge { prompt, echo } => {
                    let id = random_id()?;
                    self.park(
                        id.clone(),
                        Pending {
                            session,
                            progress,
                            expires: Instant::now() + CHALLENGE_TTL,
                        },
                    )?;
                    return Ok(LoginStep::Challenge(Challenge::new(
                        prompt,
                        echo,
                        serde_json::json!({ "session": id }),
                    )));
                }
            }
        }
    }

    /// Keeps a session for its challenge answer.
    fn park(&self, id: String, pending: Pending) -> Result<(), PluginError> {
        let mut map = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        map.retain(|_, p| p.expires > now);
        if map.len() >= MAX_PENDING {
            return Err(PluginError::Unavailable(
                "tacacs too_many_challenges: too many logins wait for a challenge answer".into(),
            ));
        }
        map.insert(id, pending);
        Ok(())
    }

    async fn login_inner(&self, request: PasswordLogin) -> Result<LoginStep, PluginError> {
        let s = &self.settings;
        let rem_addr = match (&request.remote_addr, s.rem_addr) {
            (Some(a), true) => a.as_bytes(),
            _ => b"",
        };
        let (minor, authen_type, data) = match s.auth_protocol {
            AuthProtocol::Ascii => (packet::MINOR_DEFAULT, packet::AUTHEN_TYPE_ASCII, &b""[..]),
            AuthProtocol::Pap => (
                packet::MINOR_ONE,
                packet::AUTHEN_TYPE_PAP,
                request.password.expose().as_bytes(),
            ),
        };
        let start = Start {
            authen_type,
            priv_lvl: packet::PRIV_LVL_USER,
            user: request.username.as_bytes(),
            port: CLIENT_PORT,
            rem_addr,
            data,
        };
        let body = match start.encode() {
            Ok(b) => b,
            // No server account has a name (or a PAP password) that long.
            Err(packet::TooLong {
                field: "user" | "data",
                ..
            }) => return Err(PluginError::InvalidCredentials),
            Err(e) => {
                return Err(PluginError::BadRequest(format!(
                    "{} is longer than {} bytes",
                    e.field, e.max
                )));
            }
        };
        let mut session = Session::connect(&s.host, s.port, s.secret.expose().as_bytes(), minor)
            .await
            .map_err(unavailable)?;
        session.send(body).await.map_err(unavailable)?;
        let reply = session.receive().await.map_err(unavailable)?;
        match s.auth_protocol {
            AuthProtocol::Pap => match Self::next_pap(&reply, &request.username) {
                Next::Done(r) => r,
                _ => Err(PluginError::Internal("PAP asked a question".into())),
            },
            AuthProtocol::Ascii => {
                let progress = Progress {
                    username: request.username.clone(),
                    user_answered: false,
                    password_sent: false,
                };
                self.drive(session, reply, progress, Some(&request.password))
                    .await
            }
        }
    }

    async fn continue_inner(&self, id: &str, response: Secret) -> Result<LoginStep, PluginError> {
        let pending = {
            let mut map = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let found = map.remove(id);
            // expired sessions close here too, not only when another waits
            let now = Instant::now();
            map.retain(|_, p| p.expires > now);
            found
        };
        let Some(Pending {
            mut session,
            progress,
            ..
        }) = pending.filter(|p| p.expires > Instant::now())
        else {
            return Err(PluginError::BadRequest(
                "no TACACS+ session waits for this answer (expired, answered, or the plugin restarted)"
                    .into(),
            ));
        };
        let body = packet::encode_continue(response.expose().as_bytes(), 0)
            .map_err(|e| PluginError::BadRequest(format!("the answer is longer than {} bytes", e.max)))?;
        session.send(body).await.map_err(unavailable)?;
        let reply = session.receive().await.map_err(unavailable)?;
        self.drive(session, reply, progress, None).await
    }

    async fn within<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, PluginError>>,
    ) -> Result<T, PluginError> {
        tokio::time::timeout(self.settings.session_timeout, fut)
            .await
            .unwrap_or_else(|_| Err(unavailable(SessionError::Timeout)))
    }
}

fn prompt_or(msg: &[u8], default: &str) -> String {
    let t = text(msg);
    if t.is_empty() { default.to_owned() } else { t }
}

fn restart(protocol: AuthProtocol) -> PluginError {
    PluginError::Unavailable(format!(
        "tacacs server_restart: the server does not take auth_protocol = {:?}",
        protocol.as_str()
    ))
}

fn server_error(reply: &Reply) -> PluginError {
    let msg = text(&reply.server_msg);
    PluginError::Unavailable(if msg.is_empty() {
        "tacacs server_error: the server answered ERROR".into()
    } else {
        format!("tacacs server_error: the server answered ERROR: {msg}")
    })
}

#[async_trait]
impl Authenticator for Tacacs {
    async fn login(&self, _ctx: &Context, request: PasswordLogin) -> Result<LoginStep, PluginError> {
        if request.username.is_empty() || request.password.is_empty() {
            return Err(PluginError::InvalidCredentials);
        }
        self.within(self.login_inner(request)).await
    }

    async fn continue_login(
        &self,
        _ctx: &Context,
        state: serde_json::Value,
        response: Secret,
    ) -> Result<LoginStep, PluginError> {
        let Some(id) = state.get("session").and_then(|v| v.as_str()) else {
            return Err(PluginError::BadRequest("not a TACACS+ challenge".into()));
        };
        let id = id.to_owned();
        self.within(self.continue_inner(&id, response)).await
    }
}

#[cfg(test)]
mod tests;
