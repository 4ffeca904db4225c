//! Settings: snake_case as in CONFIG.md (`key`, `secret`, `scope`,
//! `org_name`, `team_id`, `url`, `api_url`, `callback_url`) and the
//! platform's own uppercase names (`KEY`, `SECRET`, `SCOPE`, `NAME` for the
//! organization, `ID` for the team, `URL`, `API_URL`, `CALLBACK_URL`), so an
//! exported configuration pastes in. Everything is checked when the
//! instance is built.

use gatehouse_sdk::http::reqwest::Url;
use gatehouse_sdk::{PluginError, Secret};
use serde::Deserialize;

/// The six types: where they log in and what they require.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `github`: any github.com user.
    Github,
    /// `github_org`: members of `org_name` only.
    Org,
    /// `github_team`: members of team `team_id` only.
    Team,
    /// `github_enterprise`: any user of the instance at `url`.
    Enterprise,
    /// `github_enterprise_org`: members of `org_name` on the instance.
    EnterpriseOrg,
    /// `github_enterprise_team`: members of team `team_id` on the instance.
    EnterpriseTeam,
}

impl Kind {
    /// Every type, in the order of the documentation.
    pub const ALL: [Kind; 6] = [
        Kind::Github,
        Kind::Org,
        Kind::Team,
        Kind::Enterprise,
        Kind::EnterpriseOrg,
        Kind::EnterpriseTeam,
    ];

    /// The `type = "…"` name.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Github => "github",
            Kind::Org => "github_org",
            Kind::Team => "github_team",
            Kind::Enterprise => "github_enterprise",
            Kind::EnterpriseOrg => "github_enterprise_org",
            Kind::EnterpriseTeam => "github_enterprise_team",
        }
    }

    /// True for the three GitHub Enterprise Server types.
    pub fn enterprise(self) -> bool {
        matches!(
            self,
            Kind::Enterprise | Kind::EnterpriseOrg | Kind::EnterpriseTeam
        )
    }

    /// True when only members of `org_name` may log in.
    pub fn needs_org(self) -> bool {
        matches!(self, Kind::Org | Kind::EnterpriseOrg)
    }

    /// True when only members of team `team_id` may log in.
    pub fn needs_team(self) -> bool {
        matches!(self, Kind::Team | Kind::EnterpriseTeam)
    }
}

/// A team id as written: a number, or a string of digits (the platform's
/// forms keep it as text).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum RawTeamId {
    Number(u64),
    Text(String),
}

/// The settings as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    #[serde(default, alias = "KEY")]
    key: String,
    #[serde(default, alias = "SECRET")]
    secret: Secret,
    #[serde(default, alias = "SCOPE")]
    scope: Option<String>,
    #[serde(default, alias = "NAME", alias = "ORG_NAME")]
    org_name: Option<String>,
    #[serde(default, alias = "ID", alias = "TEAM_ID")]
    team_id: Option<RawTeamId>,
    #[serde(default, alias = "URL")]
    url: Option<String>,
    #[serde(default, alias = "API_URL")]
    api_url: Option<String>,
    /// Filled in by the daemon (the setting, or derived from `public_url`).
    #[serde(default, alias = "CALLBACK_URL")]
    callback_url: Option<String>,
}

/// The default scope: enough to read private organization and team
/// memberships.
pub(crate) const DEFAULT_SCOPE: &str = "read:org";
const GITHUB_WEB: &str = "https://github.com";
const GITHUB_API: &str = "https://api.github.com";

/// Checked settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    pub(crate) scope: String,
    pub(crate) org_name: Option<String>,
    pub(crate) team_id: Option<u64>,
    /// The web base (`https://github.com` or the enterprise `url`), no
    /// trailing slash.
    pub(crate) web: Url,
    /// The REST API base (`https://api.github.com` or `api_url`), always
    /// ending in `/` so relative paths join under it.
    pub(crate) api: Url,
    pub(crate) callback_url: Option<String>,
}

fn bad(msg: impl Into<String>) -> PluginError {
    PluginError::Misconfigured(msg.into())
}

/// An http(s) base URL without user info, query or fragment; the path
/// ends in `/`.
fn base_url(key: &str, value: &str) -> Result<Url, PluginError> {
    let mut url = Url::parse(value.trim()).map_err(|e| bad(format!("{key}: not a URL ({e})")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad(format!("{key}: must be an https:// URL")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!("{key}: has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(format!("{key}: must not carry credentials")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!("{key}: must not have a query or fragment")));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// An organization login: letters, digits and single inner hyphens, at
/// most 39 characters (GitHub's rule); it goes into an API path.
fn org_login(v: &str) -> Result<String, PluginError> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 39
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(bad(format!(
            "org_name: {v:?} is not an organization login (letters, digits and hyphens)"
        )))
    }
}

impl RawSettings {
    /// Checks everything for a type.
    pub(crate) fn resolve(self, kind: Kind) -> Result<Settings, PluginError> {
        let t = kind.type_name();
        let client_id = self.key.trim().to_owned();
        if client_id.is_empty() {
            return Err(bad("key: the OAuth app's client id is required"));
        }
        if client_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("key: must not contain spaces or control characters"));
        }
        if self.secret.is_empty() {
            return Err(bad(
                "secret: the OAuth app's client secret is required (or secret_file / secret_credential)",
            ));
        }
        let scope = self.scope.unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
        if scope.chars().any(char::is_control) {
            return Err(bad("scope: must not contain control characters"));
        }
        let org_name = match (kind.needs_org(), self.org_name) {
            (true, Some(o)) => Some(org_login(&o)?),
            (true, None) => return Err(bad(format!("org_name: required for type {t}"))),
            (false, Some(_)) => {
                return Err(bad(format!(
                    "org_name: type {t} does not check organizations (use github_org or github_enterprise_org)"
                )));
            }
            (false, None) => None,
        };
        let team_id = match (kind.needs_team(), self.team_id) {
            (true, Some(RawTeamId::Number(n))) if n > 0 => Some(n),
            (true, Some(RawTeamId::Text(s))) => match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad("team_id: must be the team's numeric id")),
            },
            (true, Some(RawTeamId::Number(_))) => return Err(bad("team_id: must be a positive number")),
            (true, None) => return Err(bad(format!("team_id: required for type {t}"))),
            (false, Some(_)) => {
                return Err(bad(format!(
                    "team_id: type {t} does not check teams (use github_team or github_enterprise_team)"
                )));
            }
            (false, None) => None,
        };
        let (web, api) = if kind.enterprise() {
            let web = self.url.ok_or_else(|| {
                bad(format!(
                    "url: required for type {t} (e.g. https://github.example.com)"
                ))
            })?;
            let api = self.api_url.ok_or_else(|| {
                bad(format!(
                    "api_url: required for type {t} (e.g. https://github.example.com/api/v3)"
                ))
            })?;
            (base_url("url", &web)?, base_url("api_url", &api)?)
        } else {
            // Overridable (a proxy in front of github.com, or a test
            // stand-in); github.com and api.github.com otherwise.
            (
                base_url("url", self.url.as_deref().unwrap_or(GITHUB_WEB))?,
                base_url("api_url", self.api_url.as_deref().unwrap_or(GITHUB_API))?,
            )
        };
        Ok(Settings {
            client_id,
            client_secret: self.secret,
            scope,
            org_name,
            team_id,
            web,
            api,
            callback_url: self.callback_url,
        })
    }
}

impl Settings {
    /// `<url>/login/oauth/<what>`.
    pub(crate) fn oauth_url(&self, what: &str) -> String {
        format!("{}login/oauth/{what}", self.web)
    }

    /// An API URL: `<api_url>/<path>` (path without a leading `/`).
    #[cfg(test)]
    pub(crate) fn api_url(&self, path: &str) -> String {
        format!("{}{}", self.api, path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn resolve(kind: Kind, v: serde_json::Value) -> Result<Settings, String> {
        let raw: RawSettings = serde_json::from_value(v).map_err(|e| e.to_string())?;
        raw.resolve(kind).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_github_com_and_read_org() {
        let s = resolve(Kind::Github, json!({"key": "id", "secret": "s"})).unwrap();
        assert_eq!(
            s.oauth_url("authorize"),
            "https://github.com/login/oauth/authorize"
        );
        assert_eq!(s.api_url("/user"), "https://api.github.com/user");
        assert_eq!(s.scope, "read:org");
        assert!(s.org_name.is_none() && s.team_id.is_none());
    }

    #[test]
    fn uppercase_platform_names_are_accepted() {
        let s = resolve(
            Kind::EnterpriseTeam,
            json!({"KEY": "id", "SECRET": "s", "SCOPE": "read:org user:email", "ID": "42",
                   "URL": "https://ghe.example.com", "API_URL": "https://ghe.example.com/api/v3",
                   "CALLBACK_URL": "https://app.example.com/cb"}),
        )
        .unwrap();
        assert_eq!(s.team_id, Some(42));
        assert_eq!(s.scope, "read:org user:email");
        assert_eq!(
            s.api_url("user/teams"),
            "https://ghe.example.com/api/v3/user/teams"
        );
        assert_eq!(
            s.oauth_url("access_token"),
            "https://ghe.example.com/login/oauth/access_token"
        );
        let s = resolve(Kind::Org, json!({"KEY": "id", "SECRET": "s", "NAME": "acme"})).unwrap();
        assert_eq!(s.org_name.as_deref(), Some("acme"));
    }

    #[test]
    fn each_type_requires_what_it_checks() {
        let base = || json!({"key": "id", "secret": "s"});
        let with = |extra: serde_json::Value| {
            let mut v = base();
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        let ent = json!({"url": "https://ghe.example.com", "api_url": "https://ghe.example.com/api/v3"});
        for (kind, v, needle) in [
            (Kind::Org, base(), "org_name: required"),
            (Kind::Team, base(), "team_id: required"),
            (Kind::Enterprise, base(), "url: required"),
            (
                Kind::Enterprise,
                with(json!({"url": "https://ghe.example.com"})),
                "api_url: required",
            ),
            (
                Kind::Github,
                with(json!({"org_name": "acme"})),
                "does not check organizations",
            ),
            (
                Kind::Org,
                with(json!({"org_name": "acme", "team_id": 3})),
                "does not check teams",
            ),
            (Kind::Team, with(json!({"team_id": "x1"})), "numeric id"),
            (Kind::Team, with(json!({"team_id": 0})), "positive"),
            (
                Kind::Org,
                with(json!({"org_name": "acme/../x"})),
                "not an organization login",
            ),
            (Kind::Github, json!({"secret": "s"}), "key: "),
            (Kind::Github, json!({"key": "id"}), "secret: "),
            (Kind::Github, with(json!({"url": "ftp://x"})), "https"),
            (
                Kind::Github,
                with(json!({"api_url": "https://u:p@x/"})),
                "credentials",
            ),
            (Kind::Github, with(json!({"api_url": "https://x/?a=b"})), "query"),
            (Kind::EnterpriseOrg, with(ent.clone()), "org_name: required"),
        ] {
            let e = resolve(kind, v.clone()).unwrap_err();
            assert!(e.contains(needle), "{kind:?} {v}: {e}");
        }
        let mut v = with(ent);
        v["team_id"] = json!(7);
        assert_eq!(resolve(Kind::EnterpriseTeam, v).unwrap().team_id, Some(7));
    }

    #[test]
    fn unknown_settings_are_refused_and_the_secret_is_not_shown() {
        let e = resolve(
            Kind::Github,
            json!({"key": "id", "secret": "s3cr3t", "sekret": 1}),
        )
        .unwrap_err();
        assert!(e.contains("sekret"), "{e}");
        let s = resolve(Kind::Github, json!({"key": "id", "secret": "s3cr3t"})).unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
