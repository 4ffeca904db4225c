//! Stage two for `[[authenticators.maps]]`: raw map entries checked and
//! turned into [`Map`]s (evaluation is in the parent module).

use toml::Spanned;

use super::{self as maps, AttributeTrigger, Map, RawCondition, Target, Trigger};
use crate::config::Resolver;
use crate::config::raw::RawMap;

/// Resolves the maps of one authenticator (`key` is its key path, e.g.
/// `authenticators["LDAP"]`), sorted by `order`; `None` (with the errors
/// recorded in `r`) when any map is invalid.
pub(crate) fn resolve_maps(r: &mut Resolver<'_>, raw: &[Spanned<RawMap>], key: &str) -> Option<Vec<Map>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, m) in raw.iter().enumerate() {
        let span = m.span();
        let m = m.get_ref();
        let mkey = format!("{key}.maps[{i}]");
        let fail = |r: &mut Resolver<'_>, sub: &str, msg: String| {
            r.err::<()>(&span, format!("{mkey}{sub}"), msg);
            false
        };
        let role_or = |default: &str, allowed: &[&str], r: &mut Resolver<'_>| -> Option<String> {
            match &m.role {
                None => Some(default.to_owned()),
                Some(x) if allowed.contains(&x.as_str()) => Some(x.clone()),
                Some(x) => {
                    r.err::<()>(
                        &span,
                        format!("{mkey}.role"),
                        format!("{x:?} is not one of {allowed:?}"),
                    );
                    None
                }
            }
        };
        let target = match m.map_type.get_ref().as_str() {
            "allow" => Some(Target::Allow),
            "is_superuser" => Some(Target::Superuser),
            "organization" => match &m.organization {
                Some(o) if !o.trim().is_empty() => {
                    role_or(maps::ORG_MEMBER, &[maps::ORG_MEMBER, maps::ORG_ADMIN], r).map(|role| {
                        Target::Role {
                            organization: Some(o.clone()),
                            team: None,
                            role,
                        }
                    })
                }
                _ => {
                    ok = fail(
                        r,
                        ".organization",
                        "an organization map needs `organization`".into(),
                    );
                    None
                }
            },
            "team" => match (&m.organization, &m.team) {
                (Some(o), Some(t)) if !o.trim().is_empty() && !t.trim().is_empty() => {
                    role_or(maps::TEAM_MEMBER, &[maps::TEAM_MEMBER, maps::TEAM_ADMIN], r).map(|role| {
                        Target::Role {
                            organization: Some(o.clone()),
                            team: Some(t.clone()),
                            role,
                        }
                    })
                }
                _ => {
                    ok = fail(r, ".team", "a team map needs `organization` and `team`".into());
                    None
                }
            },
            "role" => match (&m.role, &m.organization, &m.team) {
                (None, _, _) => {
                    ok = fail(r, ".role", "a role map needs `role`".into());
                    None
                }
                (Some(_), None, Some(_)) => {
                    ok = fail(
                        r,
                        ".organization",
                        "a team role needs the team's `organization`".into(),
                    );
                    None
                }
                (Some(role), o, t) => Some(Target::Role {
                    organization: o.clone(),
                    team: t.clone(),
                    role: role.clone(),
                }),
            },
            other => {
                r.err::<()>(
                    &m.map_type.span(),
                    format!("{mkey}.map_type"),
                    format!("unknown map_type {other:?} (allow, is_superuser, organization, team, role)"),
                );
                None
            }
        };
        let Some(triggers) = &m.triggers else {
            ok = fail(
                r,
                ".triggers",
                "a map needs a trigger (always, never, groups or attributes)".into(),
            );
            continue;
        };
        let tspan = triggers.span();
        let t = triggers.get_ref();
        let mut trigger = Trigger {
            always: t.always.is_some(),
            never: t.never.is_some(),
            groups: t.groups.clone(),
            attributes: None,
        };
        if let Some(attrs) = &t.attributes {
            let mut at = AttributeTrigger::default();
            for (name, value) in attrs {
                if name == "join_condition" {
                    match value.as_str() {
                        Some("or") => at.all = false,
                        Some("and") => at.all = true,
                        _ => {
                            r.err::<()>(
                                &tspan,
                                format!("{mkey}.triggers.attributes.join_condition"),
                                "must be \"and\" or \"or\"",
                            );
                            ok = false;
                        }
                    }
                    continue;
                }
                match value
                    .clone()
                    .try_into::<RawCondition>()
                    .map_err(|e| e.to_string())
                    .and_then(RawCondition::resolve)
                {
                    Ok(c) => at.conditions.push((name.clone(), c)),
                    Err(e) => {
                        r.err::<()>(
                            &tspan,
                            format!("{mkey}.triggers.attributes.{name}"),
                            e.trim().to_owned(),
                        );
                        ok = false;
                    }
                }
            }
            if at.conditions.is_empty() {
                r.err::<()>(
                    &tspan,
                    format!("{mkey}.triggers.attributes"),
                    "needs at least one attribute condition",
                );
                ok = false;
            }
            trigger.attributes = Some(at);
        }
        if !trigger.always && !trigger.never && trigger.groups.is_none() && trigger.attributes.is_none() {
            ok = fail(
                r,
                ".triggers",
                "a map needs a trigger (always, never, groups or attributes)".into(),
            );
        }
        if let Some(g) = &trigger.groups
            && g.has_or.is_empty()
            && g.has_and.is_empty()
            && g.has_not.is_empty()
        {
            ok = fail(r, ".triggers.groups", "needs has_or, has_and or has_not".into());
        }
        if let Some(target) = target {
            out.push(Map {
                name: m
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{} map #{}", m.map_type.get_ref(), i + 1)),
                map_type: m.map_type.get_ref().clone(),
                target,
                revoke: m.revoke,
                order: m.order.unwrap_or(i64::try_from(i + 1).unwrap_or(i64::MAX)),
                trigger,
            });
        } else {
            ok = false;
        }
    }
    out.sort_by_key(|m| m.order);
    ok.then_some(out)
}
