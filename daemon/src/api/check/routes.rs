//! `[[routes]]`: the forward-auth rules `GET /v1/check` evaluates, resolved
//! from the raw configuration (stage two for this table) and matched
//! against the original request.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_sdk::proto::ConfigErrorEntry;
use toml::Spanned;

use crate::config::raw::RawRoute;
use crate::config::{Location, Resolver, check_name};

/// One `[[routes]]` entry of forward-auth.
#[derive(Clone, Debug)]
pub struct Route {
    /// Name.
    pub name: String,
    /// Which paths.
    pub matcher: PathMatch,
    /// Which methods (empty: any).
    pub methods: Vec<String>,
    /// The verifier that decides.
    pub verifier: String,
    /// A unit primitive the token must carry.
    pub unit_primitive: Option<String>,
    /// The audience the token must be for.
    pub audience: Option<String>,
    /// Only superusers.
    pub require_superuser: bool,
    /// Only members of this organization.
    pub require_organization: Option<String>,
    /// Only members of this team.
    pub require_team: Option<RequiredTeam>,
    /// Headers added to allowed answers.
    pub headers: BTreeMap<String, String>,
    /// Where it is configured.
    pub location: Location,
}

/// How a route matches the original path.
#[derive(Clone, Debug)]
pub enum PathMatch {
    /// The path starts with this.
    Prefix(String),
    /// The regex matches the path.
    Regex(regex::Regex),
}

/// A team a route requires, `require_team = "Organization/Team"`, split
/// once when the configuration is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredTeam {
    /// The team's organization.
    pub organization: String,
    /// The team.
    pub team: String,
}

impl RequiredTeam {
    /// Parses `Organization/Team`: exactly one `/`, neither side empty.
    pub fn parse(s: &str) -> Option<Self> {
        let (organization, team) = s.split_once('/')?;
        let (organization, team) = (organization.trim(), team.trim());
        (!organization.is_empty() && !team.is_empty() && !team.contains('/')).then(|| Self {
            organization: organization.to_owned(),
            team: team.to_owned(),
        })
    }
}

impl std::fmt::Display for RequiredTeam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.organization, self.team)
    }
}

impl Route {
    /// Does the route take this request?
    pub fn matches(&self, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
            && match &self.matcher {
                PathMatch::Prefix(p) => path.starts_with(p.as_str()),
                PathMatch::Regex(r) => r.is_match(path),
            }
    }
}

/// Resolves one `[[routes]]` entry; `None` (with the errors recorded in
/// `r`) when any of its values is invalid. A route exists only with the
/// matcher its own keys give: there is no default that would match every
/// path.
pub(crate) fn resolve_route(r: &mut Resolver<'_>, route: &Spanned<RawRoute>) -> Option<Route> {
    let raw = route.get_ref();
    let key = format!("routes[{:?}]", raw.name.get_ref());
    let mut ok = check_name(r, &raw.name, &format!("{key}.name"));
    let matcher = match (&raw.path_prefix, &raw.path_regex) {
        (Some(p), None) if p.starts_with('/') => Some(PathMatch::Prefix(p.clone())),
        (Some(_), None) => r.err(&route.span(), format!("{key}.path_prefix"), "must start with /"),
        (None, Some(re)) => match regex::Regex::new(re.get_ref()) {
            Ok(x) => Some(PathMatch::Regex(x)),
            Err(e) => r.err(
                &re.span(),
                format!("{key}.path_regex"),
                format!("invalid regex: {e}"),
            ),
        },
        _ => r.err(
            &route.span(),
            key.clone(),
            "give exactly one of path_prefix and path_regex",
        ),
    };
    let require_team = match &raw.require_team {
        None => None,
        Some(t) => {
            let team = RequiredTeam::parse(t);
            if team.is_none() {
                r.err::<()>(
                    &route.span(),
                    format!("{key}.require_team"),
                    "write it as \"Organization/Team\"",
                );
                ok = false;
            }
            team
        }
    };
    if let Some(o) = &raw.require_organization
        && o.trim().is_empty()
    {
        r.err::<()>(
            &route.span(),
            format!("{key}.require_organization"),
            "must not be empty",
        );
        ok = false;
    }
    for h in raw.headers.keys() {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            r.err::<()>(
                &route.span(),
                format!("{key}.headers"),
                format!("invalid header name {h:?}"),
            );
            ok = false;
        }
    }
    let matcher = matcher?;
    ok.then(|| Route {
        name: raw.name.get_ref().clone(),
        matcher,
        methods: raw.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
        verifier: raw.verifier.get_ref().clone(),
        unit_primitive: raw.unit_primitive.clone(),
        audience: raw.audience.clone(),
        require_superuser: raw.require_superuser,
        require_organization: raw.require_organization.clone(),
        require_team,
        headers: raw.headers.clone(),
        location: r.src.at(&route.span()),
    })
}

/// Errors for routes naming a verifier that is not configured.
pub(crate) fn check_verifiers(routes: &[Route], verifiers: &BTreeSet<String>) -> Vec<ConfigErrorEntry> {
    routes
        .iter()
        .filter(|rt| !verifiers.contains(&rt.verifier))
        .map(|rt| {
            rt.location.error(
                format!("routes[{:?}].verifier", rt.name),
                format!("no verifier named {:?}", rt.verifier),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
