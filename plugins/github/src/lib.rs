//! The GitHub authenticators: `github`, `github_org`, `github_team` and
//! their GitHub Enterprise Server twins `github_enterprise`,
//! `github_enterprise_org`, `github_enterprise_team`, with the settings of
//! the automation platform's GitHub authenticators.
//!
//! A login is GitHub's OAuth web flow:
//! - `start` sends the browser to `<url>/login/oauth/authorize` with
//!   `client_id`, `redirect_uri`, `scope` (default `read:org`) and the
//!   daemon's `state` (which the daemon checks on the way back: single
//!   use, expiring, bound to this authenticator).
//! - `finish` exchanges the `code` at `<url>/login/oauth/access_token`,
//!   then reads through the REST API (`api_url`): `/user` (the numeric `id`
//!   is the stable uid, `login` the username), `/user/emails` for the
//!   primary verified address when `/user` shows none, and every page of
//!   `/user/orgs` and `/user/teams`. Organizations become the groups
//!   `org`, teams `org/team-slug`.
//! - `github_org` types check the organization with
//!   `GET /user/memberships/orgs/{org}`: the user's own membership, which
//!   the `read:org` scope shows even when it is private (the public
//!   `/orgs/{org}/members/{user}` check would need the app to be a member
//!   too); only `state: active` is admitted, 404 means "not a member (or a
//!   private organization this app cannot see)" and denies.
//! - `github_team` types admit users whose `/user/teams` (all pages, which
//!   `read:org` lists across organizations, secret teams included) holds
//!   the team with `id == team_id`: the same list the groups come from, so
//!   no legacy `/teams/{id}` endpoint is needed.
//!
//! The OAuth token is used for these calls only: it is never logged, never
//! put into an error, the identity or the flow state, and is dropped when
//! `finish` returns. API failures map to [`PluginError`]s: a rate limit
//! (with its reset time), 5xx, timeouts and unreachable servers are
//! `Unavailable` (503 `backend_unavailable`); a refused code or token is
//! `InvalidCredentials`; a user outside the organization or team is
//! `Denied` (403 `login_denied`).

mod api;
mod settings;

use std::sync::Arc;

use gatehouse_sdk::http::HttpClient;
use gatehouse_sdk::http::reqwest::Url;
use gatehouse_sdk::{
    Authenticator, AuthenticatorFactory, Context, FinishRequest, Flow, Identity, LoginStep, Plugin,
    PluginConfig, PluginError, Redirect, StartRequest, async_trait, constant_time_eq,
};
use serde::Deserialize;
use serde_json::json;

pub use api::{API_VERSION, GithubError, MEDIA_TYPE};
pub use settings::Kind;

use api::Api;
use settings::{RawSettings, Settings};

/// The plugin: the six GitHub authenticator types.
#[derive(Clone, Copy, Debug, Default)]
pub struct GithubPlugin;

impl Plugin for GithubPlugin {
    fn name(&self) -> &str {
        "github"
    }

    fn authenticators(&self) -> Vec<Box<dyn AuthenticatorFactory>> {
        Kind::ALL
            .into_iter()
            .map(|kind| Box::new(GithubFactory(kind)) as Box<dyn AuthenticatorFactory>)
            .collect()
    }
}

/// Builds authenticators of one GitHub type.
#[derive(Clone, Copy, Debug)]
pub struct GithubFactory(pub Kind);

impl AuthenticatorFactory for GithubFactory {
    fn type_name(&self) -> &str {
        self.0.type_name()
    }

    fn flow(&self) -> Flow {
        Flow::Redirect
    }

    fn config_schema(&self) -> serde_json::Value {
        let mut required = vec!["key", "secret"];
        if self.0.needs_org() {
            required.push("org_name");
        }
        if self.0.needs_team() {
            required.push("team_id");
        }
        if self.0.enterprise() {
            required.extend(["url", "api_url"]);
        }
        json!({
            "type": "object",
            "required": required,
            "properties": {
                "key": {"type": "string", "description": "the OAuth app's client id"},
                "secret": {"type": "string", "description": "the OAuth app's client secret"},
                "scope": {"type": "string", "default": settings::DEFAULT_SCOPE, "description": "OAuth scopes requested; the default reads private organization and team memberships"},
                "org_name": {"type": "string", "description": "*_org types: only members of this organization may log in (its login name)"},
                "team_id": {"type": ["integer", "string"], "description": "*_team types: only members of the team with this numeric id may log in"},
                "url": {"type": "string", "description": "github_enterprise*: the instance's web URL (default https://github.com)"},
                "api_url": {"type": "string", "description": "github_enterprise*: the instance's REST API URL (default https://api.github.com)"},
                "callback_url": {"type": "string", "description": "the authorization callback URL registered with the app (derived from [daemon] public_url when empty)"}
            }
        })
    }

    fn secret_settings(&self) -> &[&str] {
        &["secret"]
    }

    fn build(&self, config: PluginConfig) -> Result<Arc<dyn Authenticator>, PluginError> {
        let raw: RawSettings = config.parse()?;
        let settings = raw.resolve(self.0)?;
        // The client's rules (https unless [http] danger_allow_http) apply
        // to both bases now, not at the first login.
        let http = config.context.http_client()?;
        for (key, url) in [("url", &settings.web), ("api_url", &settings.api)] {
            http.check_url(url.as_str())
                .map_err(|e| PluginError::Misconfigured(format!("{key}: {e}")))?;
        }
        Ok(Arc::new(GithubAuthenticator { settings, http }))
    }
}

struct GithubAuthenticator {
    settings: Settings,
    /// The client of the instance's `[http]` settings (shared per settings).
    http: HttpClient,
}

/// `/user` as documented (the fields used).
#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
}

/// One entry of `/user/emails`.
#[derive(Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// One entry of `/user/orgs`.
#[derive(Deserialize)]
struct Org {
    login: String,
}

/// One entry of `/user/teams`.
#[derive(Deserialize)]
struct Team {
    id: u64,
    slug: String,
    organization: Org,
}

/// `/user/memberships/orgs/{org}`.
#[derive(Deserialize)]
struct Membership {
    state: String,
}

/// SHA-256 of a state, hex: what the flow state keeps to tie a callback
/// to its start (the state itself stays with the daemon, as a digest).
fn state_tag(state: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, state.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A query or form string of pairs.
fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    let mut u = Url::parse("https://form.invalid/").unwrap_or_else(|_| unreachable!("a valid literal URL"));
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    u.query().unwrap_or_default().to_owned()
}

/// Turns an API failure into what the daemon does next, logging what the
/// plugin error cannot carry.
fn fail(ctx: &Context, what: &str, e: GithubError) -> PluginError {
    let text = format!("{what}: {e} [{}]", e.code());
    match e {
        GithubError::BadCredentials => {
            ctx.warn(&text);
            PluginError::InvalidCredentials
        }
        GithubError::TokenExchange { ref error } if error == "bad_verification_code" => {
            ctx.info(&format!(
                "{what}: the code is unknown, used or expired [bad_verification_code]"
            ));
            PluginError::InvalidCredentials
        }
        GithubError::Config { reason } => PluginError::Misconfigured(reason),
        _ => {
            ctx.warn(&text);
            PluginError::Unavailable(text)
        }
    }
}

impl GithubAuthenticator {
    /// Checks the organization rule through the user's own membership.
    async fn check_org(&self, ctx: &Context, api: &Api<'_>, org: &str) -> Result<(), PluginError> {
        let path = format!("user/memberships/orgs/{org}");
        match api.get::<Membership>(&path).await {
            Ok(m) if m.state == "active" => Ok(()),
            Ok(m) => Err(PluginError::Denied(format!(
                "the GitHub membership in organization {org} is {:?}, not active",
                m.state.chars().take(20).collect::<String>()
            ))),
            Err(GithubError::NotFound) => Err(PluginError::Denied(format!(
                "not a member of GitHub organization {org} (or the organization is not visible to this application)"
            ))),
            Err(GithubError::Forbidden { message }) => Err(PluginError::Denied(format!(
                "GitHub does not show the membership in organization {org}: {message}"
            ))),
            Err(e) => Err(fail(ctx, "organization membership", e)),
        }
    }

    /// Everything after the code exchange; the token dies with the caller.
    async fn identity(&self, ctx: &Context, api: &Api<'_>) -> Result<Identity, PluginError> {
        let user: User = api.get("user").await.map_err(|e| fail(ctx, "/user", e))?;
        let mut email = user.email.filter(|e| !e.is_empty());
        if email.is_none() {
            // Needs `user:email` (or `user`); without it GitHub refuses
            // and the identity simply has no address.
            match api.list::<Email>("user/emails").await {
                Ok(list) => {
                    email = list
                        .into_iter()
                        .find(|e| e.primary && e.verified)
                        .map(|e| e.email);
                }
                Err(GithubError::NotFound | GithubError::Forbidden { .. }) => {
                    ctx.debug("/user/emails is not readable with this token's scopes: no e-mail address");
                }
                Err(e) => return Err(fail(ctx, "/user/emails", e)),
            }
        }
        let orgs: Vec<Org> = api
            .list("user/orgs")
            .await
            .map_err(|e| fail(ctx, "/user/orgs", e))?;
        let teams: Vec<Team> = api
            .list("user/teams")
            .await
            .map_err(|e| fail(ctx, "/user/teams", e))?;

        if let Some(org) = &self.settings.org_name {
            self.check_org(ctx, api, org).await?;
        }
        if let Some(team_id) = self.settings.team_id
            && !teams.iter().any(|t| t.id == team_id)
        {
            return Err(PluginError::Denied(format!(
                "not a member of GitHub team {team_id}"
            )));
        }

        let mut id = Identity::new(user.id.to_string(), user.login.clone()).case_insensitive(true);
        id.email = email;
        if let Some(name) = user.name.filter(|n| !n.trim().is_empty()) {
            let name = name.trim().to_owned();
            match name.split_once(char::is_whitespace) {
                Some((first, last)) => {
                    id.first_name = Some(first.to_owned());
                    id.last_name = Some(last.trim().to_owned());
                }
                None => id.first_name = Some(name.clone()),
            }
            id = id.with_attribute("name", name);
        }
        let mut groups: Vec<String> = orgs.into_iter().map(|o| o.login).collect();
        if let Some(org) = &self.settings.org_name
            && !groups.iter().any(|g| g.eq_ignore_ascii_case(org))
        {
            groups.push(org.clone());
        }
        groups.extend(
            teams
                .iter()
                .map(|t| format!("{}/{}", t.organization.login, t.slug)),
        );
        groups.dedup();
        id.groups = groups;
        id = id
            .with_attribute("login", user.login)
            .with_attribute("id", user.id.to_string());
        if let Some(url) = user.html_url {
            id = id.with_attribute("html_url", url);
        }
        Ok(id)
    }
}

#[async_trait]
impl Authenticator for GithubAuthenticator {
    async fn start(&self, _ctx: &Context, req: StartRequest) -> Result<Redirect, PluginError> {
        if req.state.is_empty() {
            return Err(PluginError::BadRequest("a start needs the daemon's state".into()));
        }
        let s = &self.settings;
        let callback = req.callback_url.clone().or_else(|| s.callback_url.clone());
        let mut pairs = vec![("client_id", s.client_id.as_str())];
        if let Some(cb) = &callback {
            pairs.push(("redirect_uri", cb.as_str()));
        }
        pairs.push(("scope", s.scope.as_str()));
        pairs.push(("state", req.state.as_str()));
        let url = format!("{}?{}", s.oauth_url("authorize"), encode_pairs(&pairs));
        Ok(Redirect::new(
            url,
            json!({ "callback_url": callback, "state_sha256": state_tag(&req.state) }),
        ))
    }

    async fn finish(&self, ctx: &Context, req: FinishRequest) -> Result<LoginStep, PluginError> {
        // GitHub's flow always starts here: an unsolicited callback is refused.
        let Some(flow) = req.flow_state else {
            return Err(PluginError::InvalidCredentials);
        };
        let callback = flow["callback_url"].as_str().map(str::to_owned);
        if req.callback_url.is_some() && req.callback_url != callback {
            return Err(PluginError::BadRequest(
                "the callback URL changed since the start".into(),
            ));
        }
        // The daemon found this flow state by the callback's `state`; when
        // the parameters carry it, it must also be the start's own.
        if let Some(state) = req.params.get("state") {
            let tag = flow["state_sha256"].as_str().unwrap_or_default();
            if !constant_time_eq(state_tag(state).as_bytes(), tag.as_bytes()) {
                return Err(PluginError::InvalidCredentials);
            }
        }
        if let Some(error) = req.params.get("error") {
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            ctx.info(&format!("GitHub sent the user back with error {error:?}"));
            return Err(PluginError::InvalidCredentials);
        }
        let code = req
            .params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| PluginError::BadRequest("the callback has no code parameter".into()))?;
        let s = &self.settings;
        let http = &self.http;
        let mut form = vec![
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.expose()),
            ("code", code.as_str()),
        ];
        if let Some(cb) = &callback {
            form.push(("redirect_uri", cb.as_str()));
        }
        let now = ctx.unix_now();
        let token = api::exchange_code(http, &s.oauth_url("access_token"), encode_pairs(&form), now)
            .await
            .map_err(|e| fail(ctx, "code exchange", e))?;
        let api = Api {
            http,
            base: &s.api,
            token: &token,
            now,
        };
        let identity = self.identity(ctx, &api).await?;
        drop(token);
        Ok(LoginStep::Authenticated(identity))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn factory(kind: Kind) -> GithubFactory {
        GithubFactory(kind)
    }

    #[test]
    fn the_plugin_has_six_redirect_types() {
        let names: Vec<String> = GithubPlugin
            .authenticators()
            .iter()
            .map(|f| {
                assert_eq!(f.flow(), Flow::Redirect);
                assert_eq!(f.secret_settings(), ["secret"]);
                f.type_name().to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "github",
                "github_org",
                "github_team",
                "github_enterprise",
                "github_enterprise_org",
                "github_enterprise_team"
            ]
        );
    }

    fn build(kind: Kind, v: serde_json::Value) -> Result<Arc<dyn Authenticator>, PluginError> {
        factory(kind).build(PluginConfig::new("gh", v))
    }

    #[test]
    fn start_goes_to_github_com_with_client_id_scope_state_and_callback() {
        let a = build(Kind::Github, json!({"key": "Iv1.abc", "secret": "shh"})).unwrap();
        let r = gatehouse_sdk::block_on(a.start(
            &Context::new("gh"),
            StartRequest::new("st4te", Some("https://app.example.com/cb/GitHub".into())),
        ))
        .unwrap();
        assert_eq!(
            r.url,
            "https://github.com/login/oauth/authorize?client_id=Iv1.abc&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb%2FGitHub&scope=read%3Aorg&state=st4te"
        );
        assert_eq!(r.flow_state["callback_url"], "https://app.example.com/cb/GitHub");
        assert_eq!(r.flow_state["state_sha256"], state_tag("st4te"));
        assert!(
            !r.flow_state.to_string().contains("st4te"),
            "the state itself is not kept"
        );
        assert!(!r.url.contains("shh"));
    }

    #[test]
    fn enterprise_start_goes_to_the_enterprise_url() {
        let a = build(
            Kind::EnterpriseOrg,
            json!({"key": "k", "secret": "s", "org_name": "acme", "scope": "read:org user:email",
                   "url": "https://ghe.example.com/", "api_url": "https://ghe.example.com/api/v3"}),
        )
        .unwrap();
        let r = gatehouse_sdk::block_on(a.start(&Context::new("gh"), StartRequest::new("x", None))).unwrap();
        assert_eq!(
            r.url,
            "https://ghe.example.com/login/oauth/authorize?client_id=k&scope=read%3Aorg+user%3Aemail&state=x"
        );
    }

    #[test]
    fn plain_http_bases_need_the_danger_setting() {
        let v = json!({"key": "k", "secret": "s", "url": "http://ghe.example.com",
                       "api_url": "http://ghe.example.com/api/v3"});
        let e = build(Kind::Enterprise, v.clone()).err().unwrap();
        assert!(
            matches!(&e, PluginError::Misconfigured(m) if m.contains("url")),
            "{e}"
        );
        let ctx =
            Context::new("gh").with_http(gatehouse_sdk::HttpSettings::default().with_danger_allow_http(true));
        assert!(
            factory(Kind::Enterprise)
                .build(PluginConfig::new("gh", v).with_context(ctx))
                .is_ok()
        );
    }

    #[test]
    fn unsolicited_and_codeless_callbacks_are_refused_without_a_request() {
        let a = build(Kind::Github, json!({"key": "k", "secret": "s"})).unwrap();
        let ctx = Context::new("gh");
        let params = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let e =
            gatehouse_sdk::block_on(a.finish(&ctx, FinishRequest::new(params(&[("code", "c")]), None, None)))
                .unwrap_err();
        assert_eq!(e, PluginError::InvalidCredentials);
        let flow = Some(json!({"callback_url": "https://a/cb"}));
        let e = gatehouse_sdk::block_on(a.finish(
            &ctx,
            FinishRequest::new(params(&[]), flow.clone(), Some("https://a/cb".into())),
        ))
        .unwrap_err();
        assert!(matches!(e, PluginError::BadRequest(_)), "{e}");
        let e = gatehouse_sdk::block_on(a.finish(
            &ctx,
            FinishRequest::new(
                params(&[("error", "access_denied")]),
                flow.clone(),
                Some("https://a/cb".into()),
            ),
        ))
        .unwrap_err();
        assert_eq!(e, PluginError::InvalidCredentials);
        let e = gatehouse_sdk::block_on(a.finish(
            &ctx,
            FinishRequest::new(params(&[("code", "c")]), flow, Some("https://b/cb".into())),
        ))
        .unwrap_err();
        assert!(matches!(e, PluginError::BadRequest(m) if m.contains("callback")));
        // another start's state in the parameters: refused before any request
        let flow = Some(json!({"callback_url": "https://a/cb", "state_sha256": state_tag("mine")}));
        let e = gatehouse_sdk::block_on(a.finish(
            &ctx,
            FinishRequest::new(
                params(&[("code", "c"), ("state", "theirs")]),
                flow,
                Some("https://a/cb".into()),
            ),
        ))
        .unwrap_err();
        assert_eq!(e, PluginError::InvalidCredentials);
    }
}
