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

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigErrors, load};
    use crate::maps::{ORG_ADMIN, ORG_MEMBER, TEAM_MEMBER, Target};

    /// Loads a local authenticator `A` whose maps are `maps` (TOML).
    fn load_maps(maps: &str) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("g.toml");
        std::fs::write(
            &main,
            format!("[[authenticators]]\nname = \"A\"\ntype = \"local\"\n{maps}"),
        )
        .unwrap();
        load(&main)
    }

    fn error_keys(maps: &str) -> Vec<String> {
        match load_maps(maps) {
            Ok(_) => panic!("accepted:\n{maps}"),
            Err(e) => e.0.iter().map(|e| e.key.clone().unwrap_or_default()).collect(),
        }
    }

    fn map(body: &str) -> String {
        format!("[[authenticators.maps]]\n{body}\n")
    }

    #[test]
    fn maps_resolve_to_their_targets_in_order() {
        let c = load_maps(&[
            map("map_type = \"allow\"\ntriggers.groups.has_or = [\"admins\"]"),
            map("map_type = \"organization\"\norganization = \"O\"\nrole = \"Organization Admin\"\ntriggers.always = {}"),
            map("map_type = \"team\"\norganization = \"O\"\nteam = \"T\"\norder = -1\ntriggers.never = {}"),
            map("map_type = \"organization\"\norganization = \"P\"\ntriggers.always = {}"),
            map(
                "map_type = \"role\"\nrole = \"auditor\"\nrevoke = true\n\
                 triggers.attributes = { join_condition = \"and\", dept = { equals = \"x\" }, mail = { ends_with = \"@a\" } }",
            ),
            map("map_type = \"is_superuser\"\ntriggers.attributes = { join_condition = \"or\", dept = { in = [\"x\"] } }"),
        ]
        .concat())
        .unwrap();
        let maps = &c.authenticators[0].maps;
        let targets: Vec<&Target> = maps.iter().map(|m| &m.target).collect();
        let role = |o: &str, t: Option<&str>, r: &str| Target::Role {
            organization: Some(o.into()),
            team: t.map(Into::into),
            role: r.into(),
        };
        assert_eq!(
            targets,
            [
                &role("O", Some("T"), TEAM_MEMBER),
                &Target::Allow,
                &role("O", None, ORG_ADMIN),
                &role("P", None, ORG_MEMBER),
                &Target::Role {
                    organization: None,
                    team: None,
                    role: "auditor".into()
                },
                &Target::Superuser,
            ],
            "sorted by order (the team map's -1 first), defaults filled in"
        );
        assert!(maps[4].revoke && !maps[1].revoke);
        let attrs = maps[4].trigger.attributes.as_ref().unwrap();
        assert!(attrs.all, "join_condition = and");
        assert_eq!(attrs.conditions.len(), 2, "join_condition is no attribute");
        assert!(
            !maps[5].trigger.attributes.as_ref().unwrap().all,
            "join_condition = or"
        );
        assert!(maps[0].trigger.never && maps[2].trigger.always);
    }

    #[test]
    fn positions_are_the_default_order_and_name_counting_from_one() {
        let c = load_maps(
            &[
                map("map_type = \"allow\"\ntriggers.always = {}"),
                map("map_type = \"is_superuser\"\nname = \"su\"\ntriggers.always = {}"),
                map("map_type = \"allow\"\norder = 1\ntriggers.never = {}"),
                map("map_type = \"allow\"\norder = 0\ntriggers.never = {}"),
            ]
            .concat(),
        )
        .unwrap();
        let maps = &c.authenticators[0].maps;
        let seen: Vec<(&str, i64)> = maps.iter().map(|m| (m.name.as_str(), m.order)).collect();
        assert_eq!(
            seen,
            [
                ("allow map #4", 0),
                ("allow map #1", 1),
                ("allow map #3", 1),
                ("su", 2)
            ],
            "explicit orders sort among the positions (1, 2, …); ties keep the file order"
        );
    }

    #[test]
    fn each_trigger_kind_alone_is_enough() {
        for t in [
            "triggers.always = {}",
            "triggers.never = {}",
            "triggers.groups.has_not = [\"x\"]",
            "triggers.attributes = { dept = { equals = \"x\" } }",
        ] {
            let c = load_maps(&map(&format!("map_type = \"allow\"\n{t}")));
            assert!(c.is_ok(), "{t}: {:?}", c.err());
        }
    }

    #[test]
    fn bad_maps_are_refused_with_their_key() {
        let m = "authenticators[\"A\"].maps[0]";
        for (body, key) in [
            ("map_type = \"allow\"\ntriggers = {}", ".triggers"),
            ("map_type = \"allow\"", ".triggers"),
            ("map_type = \"allow\"\ntriggers.groups = {}", ".triggers.groups"),
            (
                "map_type = \"organization\"\norganization = \" \"\ntriggers.always = {}",
                ".organization",
            ),
            (
                "map_type = \"organization\"\ntriggers.always = {}",
                ".organization",
            ),
            (
                "map_type = \"organization\"\norganization = \"O\"\nrole = \"Team Admin\"\ntriggers.always = {}",
                ".role",
            ),
            (
                "map_type = \"team\"\norganization = \"O\"\nteam = \" \"\ntriggers.always = {}",
                ".team",
            ),
            (
                "map_type = \"team\"\norganization = \" \"\nteam = \"T\"\ntriggers.always = {}",
                ".team",
            ),
            ("map_type = \"team\"\nteam = \"T\"\ntriggers.always = {}", ".team"),
            ("map_type = \"role\"\ntriggers.always = {}", ".role"),
            (
                "map_type = \"role\"\nrole = \"r\"\nteam = \"T\"\ntriggers.always = {}",
                ".organization",
            ),
            ("map_type = \"admin\"\ntriggers.always = {}", ".map_type"),
            (
                "map_type = \"allow\"\ntriggers.attributes = { join_condition = \"xor\", dept = { equals = \"x\" } }",
                ".triggers.attributes.join_condition",
            ),
            (
                "map_type = \"allow\"\ntriggers.attributes = { join_condition = \"and\" }",
                ".triggers.attributes",
            ),
            (
                "map_type = \"allow\"\ntriggers.attributes = { dept = {}, mail = { equals = \"x\" } }",
                ".triggers.attributes.dept",
            ),
        ] {
            assert_eq!(error_keys(&map(body)), [format!("{m}{key}")], "{body}");
        }
        // the roles each kind of map allows
        for (kind, role) in [("organization", "Organization Member"), ("team", "Team Admin")] {
            let body = format!(
                "map_type = \"{kind}\"\norganization = \"O\"\nteam = \"T\"\nrole = \"{role}\"\ntriggers.always = {{}}"
            );
            assert!(load_maps(&map(&body)).is_ok(), "{body}");
        }
    }
}
