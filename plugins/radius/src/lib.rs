//! The `radius` authenticator: PAP logins against RADIUS servers (RFC 2865)
//! with the settings of the automation platform's RADIUS authenticator
//! (`server`, `port`, `secret`), and a UDP client of its own.
//!
//! A login sends an Access-Request with User-Name, the hidden
//! User-Password (up to 128 bytes, any UTF-8), NAS-Identifier and/or
//! NAS-IP-Address, Calling-Station-Id (the end user's address, when the
//! application gave it) and a Message-Authenticator (RFC 3579) on every
//! request. Servers are tried in order: one that does not answer within
//! `timeout` after `1 + retries` transmissions, or whose port is closed,
//! gives way to the next.
//!
//! Replies are believed only when they come from the server's address and
//! port, answer an identifier in flight, and carry a valid Response
//! Authenticator and (unless `require_message_authenticator = false`, for
//! legacy servers) a valid Message-Authenticator: the BlastRADIUS attack
//! (CVE-2024-3596) forges replies without one. Everything else is dropped.
//!
//! Access-Accept: the identity (uid and username as typed; RADIUS
//! usernames are case-sensitive), with every `Class` and `Filter-Id` value
//! as a group. Access-Reject: invalid credentials. Access-Challenge: the
//! API's challenge step, prompting with the Reply-Message(s); the answer
//! goes to the same server as a new Access-Request carrying the State.

mod client;
pub mod packet;
mod settings;

use std::net::IpAddr;
use std::sync::Arc;

use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Challenge, Context, Flow, Identity, LoginStep, PasswordLogin,
    Plugin, PluginConfig, PluginError, Secret, async_trait,
};
use serde::{Deserialize, Serialize};

use client::{ExchangeError, Reply, Server};
use packet::{AccessRequest, MAX_ATTRIBUTE_LEN, MAX_PASSWORD_LEN, Packet, attr, code};
use settings::{RawSettings, Settings};

/// The plugin: one authenticator type, `radius`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RadiusPlugin;

impl Plugin for RadiusPlugin {
    fn name(&self) -> &str {
        "radius"
    }

    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        vec![Box::new(RadiusFactory)]
    }
}

/// Builds `radius` authenticators.
#[derive(Clone, Copy, Debug, Default)]
pub struct RadiusFactory;

impl AuthenticatorFactory for RadiusFactory {
    fn type_name(&self) -> &str {
        "radius"
    }

    fn flow(&self) -> Flow {
        Flow::Password
    }

    fn config_schema(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "required": ["server", "secret"],
            "properties": {
                "server": {"type": ["string", "array"], "description": "the RADIUS server(s): host, host:port or [v6]:port; several are tried in order"},
                "port": {"type": "integer", "default": 1812, "description": "UDP port of servers given without one"},
                "secret": {"type": "string", "description": "the shared secret with the server(s)"},
                "timeout": {"type": ["string", "number"], "default": "2s", "description": "wait for an answer per attempt (a duration, or seconds); all attempts must fit in the login's 30 s"},
                "retries": {"type": "integer", "default": 1, "description": "attempts after the first, per server"},
                "require_message_authenticator": {"type": "boolean", "default": true, "description": "refuse answers without a valid Message-Authenticator (BlastRADIUS protection)"},
                "nas_identifier": {"type": "string", "description": "NAS-Identifier sent in each request"},
                "nas_ip_address": {"type": "string", "description": "NAS-IP-Address (or NAS-IPv6-Address) sent in each request"}
            }
        })
    }

    fn secret_settings(&self) -> &[&str] {
        &["secret"]
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        let raw: RawSettings = config.parse()?;
        let settings = raw.resolve()?;
        let servers = settings
            .servers
            .iter()
            .map(|a| {
                Server::new(
                    a.clone(),
                    settings.secret.clone(),
                    settings.require_message_authenticator,
                )
            })
            .collect();
        Ok(Arc::new(RadiusAuthenticator { settings, servers }))
    }
}

struct RadiusAuthenticator {
    settings: Settings,
    servers: Vec<Server>,
}

/// What the daemon keeps between a challenge and its answer.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ChallengeState {
    /// The username of the first request.
    username: String,
    /// The server that asked (its State means nothing to another).
    server: usize,
    /// The State attribute, hex (absent when the server sent none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 2 * MAX_ATTRIBUTE_LEN {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One step of a login: what to send.
struct Step<'a> {
    username: &'a str,
    password: &'a Secret,
    state: Option<&'a [u8]>,
    remote_addr: Option<&'a str>,
}

impl RadiusAuthenticator {
    /// Refuses what RADIUS cannot carry before anything is sent: an empty
    /// or over-long username or password never reaches a server.
    fn acceptable(ctx: &Context, username: &str, password: &Secret) -> Result<(), PluginError> {
        if username.is_empty() || password.is_empty() {
            return Err(PluginError::InvalidCredentials);
        }
        if username.len() > MAX_ATTRIBUTE_LEN {
            ctx.debug("username longer than RADIUS can carry (253 bytes): refused unsent");
            return Err(PluginError::InvalidCredentials);
        }
        if password.len() > MAX_PASSWORD_LEN {
            ctx.debug("password longer than RADIUS can carry (128 bytes): refused unsent");
            return Err(PluginError::InvalidCredentials);
        }
        Ok(())
    }

    fn encode(&self, step: &Step<'_>, id: u8, auth: &[u8; 16]) -> Result<Vec<u8>, packet::PacketError> {
        let secret = self.settings.secret.expose().as_bytes();
        let mut r = AccessRequest::new(id, auth);
        r.add(attr::USER_NAME, step.username.as_bytes())?;
        r.add_password(step.password.expose().as_bytes(), secret)?;
        if let Some(n) = &self.settings.nas_identifier {
            r.add(attr::NAS_IDENTIFIER, n.as_bytes())?;
        }
        match self.settings.nas_ip_address {
            Some(IpAddr::V4(a)) => {
                r.add(attr::NAS_IP_ADDRESS, &a.octets())?;
            }
            Some(IpAddr::V6(a)) => {
                r.add(attr::NAS_IPV6_ADDRESS, &a.octets())?;
            }
            None => {}
        }
        if let Some(a) = step.remote_addr
            && !a.is_empty()
            && a.len() <= MAX_ATTRIBUTE_LEN
        {
            r.add(attr::CALLING_STATION_ID, a.as_bytes())?;
        }
        if let Some(s) = step.state {
            r.add(attr::STATE, s)?;
        }
        Ok(r.finish(secret))
    }

    async fn send_to(&self, ctx: &Context, index: usize, step: &Step<'_>) -> Result<Reply, ExchangeError> {
        let server = &self.servers[index];
        let r = server
            .exchange(
                |id, auth| self.encode(step, id, auth),
                self.settings.timeout,
                self.settings.retries,
            )
            .await;
        if let Ok(reply) = &r
            && reply.dropped > 0
        {
            ctx.warn(&format!(
                "{}: dropped {} reply(ies) that failed verification (last: {}) before a valid one",
                server.label(),
                reply.dropped,
                reply.last_drop.map_or("?", |e| e.code())
            ));
        }
        r
    }

    /// Tries the servers in order (or only `only`, for a challenge answer).
    async fn run(
        &self,
        ctx: &Context,
        step: Step<'_>,
        only: Option<usize>,
    ) -> Result<LoginStep, PluginError> {
        let order: Vec<usize> = match only {
            Some(i) => vec![i],
            None => (0..self.servers.len()).collect(),
        };
        let mut failures = Vec::new();
        for i in order {
            match self.send_to(ctx, i, &step).await {
                Ok(reply) => return self.outcome(ctx, i, step.username, &reply),
                Err(ExchangeError::Encode(e)) => {
                    // only over-long input gets here; nothing was sent
                    ctx.debug(&format!("request not encodable: {e}"));
                    return Err(PluginError::InvalidCredentials);
                }
                Err(e) => {
                    let label = self.servers[i].label();
                    ctx.warn(&format!("RADIUS server {label}: {e}"));
                    failures.push(format!("{label}: {e}"));
                }
            }
        }
        Err(PluginError::Unavailable(format!(
            "no RADIUS server answered: {}",
            failures.join("; ")
        )))
    }

    fn outcome(
        &self,
        ctx: &Context,
        server: usize,
        username: &str,
        reply: &Reply,
    ) -> Result<LoginStep, PluginError> {
        let p = Packet::parse(&reply.bytes)
            .map_err(|e| PluginError::Internal(format!("a verified reply did not parse: {e}")))?;
        match p.code {
            code::ACCESS_ACCEPT => {
                let mut id = Identity::new(username, username);
                let mut groups: Vec<String> = Vec::new();
                for (typ, key) in [(attr::CLASS, "class"), (attr::FILTER_ID, "filter_id")] {
                    for v in p.all(typ) {
                        match std::str::from_utf8(v) {
                            Ok(s) if !s.is_empty() => {
                                id = id.with_attribute(key, s);
                                if !groups.iter().any(|g| g == s) {
                                    groups.push(s.to_owned());
                                }
                            }
                            _ => ctx.debug(&format!("{key} value that is not UTF-8 text skipped")),
                        }
                    }
                }
                for g in groups {
                    id = id.with_group(g);
                }
                for m in p.all(attr::REPLY_MESSAGE) {
                    id = id.with_attribute("reply_message", String::from_utf8_lossy(m));
                }
                Ok(LoginStep::Authenticated(id))
            }
            code::ACCESS_REJECT => Err(PluginError::InvalidCredentials),
            code::ACCESS_CHALLENGE => {
                let prompt: Vec<String> = p
                    .all(attr::REPLY_MESSAGE)
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect();
                let prompt = if prompt.is_empty() {
                    "Response:".to_owned()
                } else {
                    prompt.join("\n")
                };
                // RFC 2869 Prompt: 1 echoes the answer; default no echo.
                let echo = p.first(attr::PROMPT) == Some(&[0, 0, 0, 1][..]);
                let state = ChallengeState {
                    username: username.to_owned(),
                    server,
                    state: p.first(attr::STATE).map(hex),
                };
                let state = serde_json::to_value(&state)
                    .map_err(|e| PluginError::Internal(format!("challenge state: {e}")))?;
                Ok(LoginStep::Challenge(Challenge::new(prompt, echo, state)))
            }
            other => Err(PluginError::Internal(format!("unexpected verified code {other}"))),
        }
    }
}

#[async_trait]
impl Authenticator for RadiusAuthenticator {
    async fn login(&self, ctx: &Context, req: PasswordLogin) -> Result<LoginStep, PluginError> {
        Self::acceptable(ctx, &req.username, &req.password)?;
        let step = Step {
            username: &req.username,
            password: &req.password,
            state: None,
            remote_addr: req.remote_addr.as_deref(),
        };
        self.run(ctx, step, None).await
    }

    async fn continue_login(
        &self,
        ctx: &Context,
        state: serde_json::Value,
        response: Secret,
    ) -> Result<LoginStep, PluginError> {
        let st: ChallengeState = serde_json::from_value(state)
            .map_err(|_| PluginError::BadRequest("not a RADIUS challenge state".into()))?;
        let radius_state = match &st.state {
            Some(h) => Some(unhex(h).ok_or_else(|| PluginError::BadRequest("bad RADIUS State".into()))?),
            None => None,
        };
        if st.server >= self.servers.len() {
            return Err(PluginError::Unavailable(
                "the RADIUS server that asked the challenge is no longer configured".into(),
            ));
        }
        Self::acceptable(ctx, &st.username, &response)?;
        let step = Step {
            username: &st.username,
            password: &response,
            state: radius_state.as_deref(),
            remote_addr: None,
        };
        self.run(ctx, step, Some(st.server)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn build(v: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
        RadiusFactory.build(PluginConfig::new("t", v))
    }

    #[test]
    fn settings_are_checked_at_build() {
        assert!(build(serde_json::json!({"server": "127.0.0.1", "secret": "s"})).is_ok());
        let e = build(serde_json::json!({"server": "127.0.0.1", "secret": "s", "typo": 1}))
            .err()
            .unwrap();
        assert!(e.to_string().contains("typo"), "{e}");
        assert!(build(serde_json::json!({"server": "127.0.0.1"})).is_err());
    }

    #[tokio::test]
    async fn unsendable_credentials_never_reach_a_server() {
        // Nothing listens here: a request sent would fail as unavailable.
        let a = build(
            serde_json::json!({"server": "127.0.0.1:9", "secret": "s", "timeout": "50ms", "retries": 0}),
        )
        .unwrap();
        let ctx = Context::new("t");
        for (u, p) in [
            ("alice", String::new()),
            ("", "pw".to_owned()),
            ("alice", "x".repeat(129)),
            (&*"u".repeat(254), "pw".to_owned()),
        ] {
            let r = a.login(&ctx, PasswordLogin::new(u, p.as_str())).await;
            assert!(matches!(r, Err(PluginError::InvalidCredentials)), "{r:?}");
        }
        let r = a
            .login(&ctx, PasswordLogin::new("alice", "x".repeat(128).as_str()))
            .await;
        assert!(
            matches!(r, Err(PluginError::Unavailable(_))),
            "128 bytes are sent: {r:?}"
        );
    }

    #[tokio::test]
    async fn a_forged_challenge_state_is_a_bad_request() {
        let a = build(serde_json::json!({"server": "127.0.0.1:9", "secret": "s"})).unwrap();
        let ctx = Context::new("t");
        for st in [
            serde_json::json!({"nope": 1}),
            serde_json::json!({"username": "u", "server": 0, "state": "zz"}),
        ] {
            let r = a.continue_login(&ctx, st, Secret::new("1")).await;
            assert!(matches!(r, Err(PluginError::BadRequest(_))), "{r:?}");
        }
        let r = a
            .continue_login(
                &ctx,
                serde_json::json!({"username": "u", "server": 7}),
                Secret::new("1"),
            )
            .await;
        assert!(matches!(r, Err(PluginError::Unavailable(_))), "{r:?}");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 1, 0xfe, 0xff])).unwrap(), [0, 1, 0xfe, 0xff]);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
