//! Authenticator maps: rules that turn an [`Identity`] into permissions
//! (login allowed, superuser, organization and team memberships, roles).
//!
//! # Semantics
//! - Maps run in `order` (default: their position). Each map has a target
//!   (allow, superuser, or a role on an organization, a team or globally)
//!   and a trigger that is true or false for the identity.
//! - A true trigger **grants** the target. A false trigger **revokes** it
//!   when `revoke = true`, and changes nothing otherwise.
//! - A later map deciding the same target overrides an earlier one.
//! - The login is denied when the last decision on `allow` is false (no
//!   allow map: allowed).
//! - **Several trigger kinds on one map must all hold** (logical AND):
//!   `never` makes the trigger false whatever else is set; `always` is true;
//!   `groups` and `attributes` are evaluated; a map with both `groups` and
//!   `attributes` fires only when both hold. (Upstream lets whichever kind
//!   is evaluated last win; that depends on evaluation order and was a
//!   source of surprise, so gatehouse does not.)
//! - `groups`: `has_or` (any listed group), `has_and` (all), `has_not`
//!   (none); several operators must all hold. Group names compare
//!   case-insensitively (LDAP DNs are case-insensitive).
//! - `attributes`: one condition per attribute name, combined with
//!   `join_condition` (`"or"`, the default, or `"and"`). A condition holds
//!   when any value of the attribute satisfies every operator given:
//!   `equals`, `contains`, `ends_with` (a string or a list: any of them),
//!   `matches` (a regular expression, must match the whole value) and `in`
//!   (a list of allowed values). A missing attribute fails its condition.
//!   `username`, `email`, `first_name` and `last_name` are attributes too
//!   unless the authenticator reports attributes of those names.

pub(crate) mod config;

use std::collections::BTreeMap;

use gatehouse_sdk::Identity;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The role an organization map grants by default.
pub const ORG_MEMBER: &str = "Organization Member";
/// The role that makes a user an organization admin.
pub const ORG_ADMIN: &str = "Organization Admin";
/// The role a team map grants by default.
pub const TEAM_MEMBER: &str = "Team Member";
/// The role that makes a user a team admin.
pub const TEAM_ADMIN: &str = "Team Admin";

/// What a map decides.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Whether the login is allowed.
    Allow,
    /// Superuser status.
    Superuser,
    /// A role on an organization, a team of it, or globally.
    Role {
        /// The organization (none: a global role).
        organization: Option<String>,
        /// The team within the organization.
        team: Option<String>,
        /// The role name.
        role: String,
    },
}

/// A checked map.
#[derive(Clone, Debug)]
pub struct Map {
    /// A name for explanations.
    pub name: String,
    /// The `map_type` as configured.
    pub map_type: String,
    /// What it decides.
    pub target: Target,
    /// Revoke when the trigger is false.
    pub revoke: bool,
    /// Position.
    pub order: i64,
    /// When it fires.
    pub trigger: Trigger,
}

/// A map's trigger.
#[derive(Clone, Debug, Default)]
pub struct Trigger {
    /// `always = {}`.
    pub always: bool,
    /// `never = {}`.
    pub never: bool,
    /// `groups = {…}`.
    pub groups: Option<GroupTrigger>,
    /// `attributes = {…}`.
    pub attributes: Option<AttributeTrigger>,
}

/// `triggers.groups`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupTrigger {
    /// Any of these.
    #[serde(default)]
    pub has_or: Vec<String>,
    /// All of these.
    #[serde(default)]
    pub has_and: Vec<String>,
    /// None of these.
    #[serde(default)]
    pub has_not: Vec<String>,
}

/// `triggers.attributes`.
#[derive(Clone, Debug, Default)]
pub struct AttributeTrigger {
    /// True: all conditions must hold; false: any.
    pub all: bool,
    /// Conditions by attribute name.
    pub conditions: Vec<(String, Condition)>,
}

/// Operators on one attribute.
#[derive(Clone, Debug, Default)]
pub struct Condition {
    /// Equal to one of these.
    pub equals: Vec<String>,
    /// Contains one of these.
    pub contains: Vec<String>,
    /// Ends with one of these.
    pub ends_with: Vec<String>,
    /// Matches (whole value) one of these.
    pub matches: Vec<Regex>,
    /// Is one of these.
    pub is_in: Vec<String>,
}

/// A string or a list of strings in the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Many.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// The raw form of one attribute condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    equals: Option<OneOrMany>,
    contains: Option<OneOrMany>,
    ends_with: Option<OneOrMany>,
    matches: Option<OneOrMany>,
    #[serde(rename = "in")]
    is_in: Option<Vec<String>>,
}

impl RawCondition {
    /// Checks and compiles a condition.
    pub fn resolve(self) -> Result<Condition, String> {
        let matches = self
            .matches
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(|re| {
                Regex::new(&format!("^(?:{re})$")).map_err(|e| format!("matches: invalid regex {re:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let c = Condition {
            equals: self.equals.map(OneOrMany::into_vec).unwrap_or_default(),
            contains: self.contains.map(OneOrMany::into_vec).unwrap_or_default(),
            ends_with: self.ends_with.map(OneOrMany::into_vec).unwrap_or_default(),
            matches,
            is_in: self.is_in.unwrap_or_default(),
        };
        if c.equals.is_empty()
            && c.contains.is_empty()
            && c.ends_with.is_empty()
            && c.matches.is_empty()
            && c.is_in.is_empty()
        {
            return Err("a condition needs at least one of equals, contains, ends_with, matches, in".into());
        }
        Ok(c)
    }
}

impl Condition {
    fn holds(&self, value: &str) -> bool {
        (self.equals.is_empty() || self.equals.iter().any(|e| e == value))
            && (self.contains.is_empty() || self.contains.iter().any(|e| value.contains(e.as_str())))
            && (self.ends_with.is_empty() || self.ends_with.iter().any(|e| value.ends_with(e.as_str())))
            && (self.matches.is_empty() || self.matches.iter().any(|r| r.is_match(value)))
            && (self.is_in.is_empty() || self.is_in.iter().any(|e| e == value))
    }
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// The attributes maps see: the identity's, plus its profile fields.
fn attributes(identity: &Identity) -> BTreeMap<String, Vec<String>> {
    let mut a = identity.attributes.clone();
    let mut add = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            a.entry(k.to_owned()).or_insert_with(|| vec![v.clone()]);
        }
    };
    add("username", Some(&identity.username));
    add("email", identity.email.as_ref());
    add("first_name", identity.first_name.as_ref());
    add("last_name", identity.last_name.as_ref());
    a
}

impl Trigger {
    /// Evaluates the trigger; the string says what decided.
    pub fn evaluate(&self, identity: &Identity) -> (bool, String) {
        if self.never {
            return (false, "never".into());
        }
        let mut reasons = Vec::new();
        if self.always {
            reasons.push("always".to_owned());
        }
        if let Some(g) = &self.groups {
            let have: Vec<String> = identity.groups.iter().map(|g| lower(g)).collect();
            let has = |x: &String| have.contains(&lower(x));
            if !g.has_or.is_empty() {
                match g.has_or.iter().find(|x| has(x)) {
                    Some(x) => reasons.push(format!("groups.has_or: member of {x:?}")),
                    None => return (false, "groups.has_or: member of none".into()),
                }
            }
            if !g.has_and.is_empty() {
                match g.has_and.iter().find(|x| !has(x)) {
                    Some(x) => return (false, format!("groups.has_and: not a member of {x:?}")),
                    None => reasons.push("groups.has_and: member of all".into()),
                }
            }
            if !g.has_not.is_empty() {
                match g.has_not.iter().find(|x| has(x)) {
                    Some(x) => return (false, format!("groups.has_not: member of {x:?}")),
                    None => reasons.push("groups.has_not: member of none".into()),
                }
            }
        }
        if let Some(at) = &self.attributes {
            let attrs = attributes(identity);
            let results: Vec<(String, bool)> = at
                .conditions
                .iter()
                .map(|(name, cond)| {
                    let ok = attrs
                        .get(name)
                        .is_some_and(|vals| vals.iter().any(|v| cond.holds(v)));
                    (name.clone(), ok)
                })
                .collect();
            let ok = if at.all {
                results.iter().all(|r| r.1)
            } else {
                results.iter().any(|r| r.1)
            };
            let join = if at.all { "and" } else { "or" };
            let detail: Vec<String> = results.iter().map(|(n, ok)| format!("{n}={ok}")).collect();
            if !ok {
                return (false, format!("attributes ({join}): {}", detail.join(", ")));
            }
            reasons.push(format!("attributes ({join}): {}", detail.join(", ")));
        }
        (true, reasons.join("; "))
    }
}

/// One map's part in an evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct MapTrace {
    /// The map's name.
    pub name: String,
    /// Its type.
    pub map_type: String,
    /// Its target.
    pub target: Target,
    /// The trigger's value.
    pub triggered: bool,
    /// What decided the trigger.
    pub decided_by: String,
    /// `grant`, `revoke` or `none`.
    pub action: &'static str,
}

/// The result of running maps over an identity.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evaluation {
    /// Whether the login may proceed.
    pub allowed: bool,
    /// The final decision per target: true grant, false revoke.
    pub decisions: BTreeMap<Target, bool>,
    /// Every map in order.
    pub trace: Vec<MapTrace>,
}

impl Evaluation {
    /// The superuser decision, if any map made one.
    pub fn superuser(&self) -> Option<bool> {
        self.decisions.get(&Target::Superuser).copied()
    }
}

/// Runs `maps` (already in order) over an identity.
pub fn evaluate(maps: &[Map], identity: &Identity) -> Evaluation {
    let mut decisions = BTreeMap::new();
    let mut trace = Vec::new();
    for m in maps {
        let (triggered, decided_by) = m.trigger.evaluate(identity);
        let action = if triggered {
            decisions.insert(m.target.clone(), true);
            "grant"
        } else if m.revoke || m.target == Target::Allow {
            // A false allow trigger always decides: it denies.
            decisions.insert(m.target.clone(), false);
            if m.target == Target::Allow {
                "deny"
            } else {
                "revoke"
            }
        } else {
            "none"
        };
        trace.push(MapTrace {
            name: m.name.clone(),
            map_type: m.map_type.clone(),
            target: m.target.clone(),
            triggered,
            decided_by,
            action,
        });
    }
    Evaluation {
        allowed: decisions.get(&Target::Allow).copied().unwrap_or(true),
        decisions,
        trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str, target: Target, revoke: bool, trigger: Trigger) -> Map {
        Map {
            name: name.into(),
            map_type: "test".into(),
            target,
            revoke,
            order: 0,
            trigger,
        }
    }

    fn groups(has_or: &[&str], has_and: &[&str], has_not: &[&str]) -> Trigger {
        Trigger {
            groups: Some(GroupTrigger {
                has_or: has_or.iter().map(|s| (*s).into()).collect(),
                has_and: has_and.iter().map(|s| (*s).into()).collect(),
                has_not: has_not.iter().map(|s| (*s).into()).collect(),
            }),
            ..Trigger::default()
        }
    }

    fn org(name: &str) -> Target {
        Target::Role {
            organization: Some(name.into()),
            team: None,
            role: ORG_MEMBER.into(),
        }
    }

    #[test]
    fn group_operators() {
        let id = Identity::new("u", "u")
            .with_group("CN=Admins,DC=x")
            .with_group("cn=devs,dc=x");
        assert!(
            groups(&["cn=admins,dc=x"], &[], &[]).evaluate(&id).0,
            "case-insensitive"
        );
        assert!(!groups(&["cn=ops,dc=x"], &[], &[]).evaluate(&id).0);
        assert!(
            groups(&[], &["cn=admins,dc=x", "cn=devs,dc=x"], &[])
                .evaluate(&id)
                .0
        );
        assert!(
            !groups(&[], &["cn=admins,dc=x", "cn=ops,dc=x"], &[])
                .evaluate(&id)
                .0
        );
        assert!(groups(&[], &[], &["cn=ops,dc=x"]).evaluate(&id).0);
        assert!(!groups(&[], &[], &["cn=devs,dc=x"]).evaluate(&id).0);
        assert!(
            !groups(&["cn=admins,dc=x"], &[], &["cn=devs,dc=x"])
                .evaluate(&id)
                .0,
            "operators AND"
        );
    }

    #[test]
    fn attribute_operators_and_join() {
        let id = Identity::new("u", "jdoe")
            .with_email("jdoe@example.com")
            .with_attribute("dept", "Engineering")
            .with_attribute("dept", "R&D");
        let cond = |raw: &str| -> Condition {
            let r: RawCondition = toml::from_str(raw).unwrap();
            r.resolve().unwrap()
        };
        let at = |all: bool, c: Vec<(&str, Condition)>| Trigger {
            attributes: Some(AttributeTrigger {
                all,
                conditions: c.into_iter().map(|(n, c)| (n.to_owned(), c)).collect(),
            }),
            ..Trigger::default()
        };
        assert!(
            at(false, vec![("email", cond("ends_with = [\"@example.com\"]"))])
                .evaluate(&id)
                .0
        );
        assert!(
            at(false, vec![("dept", cond("equals = \"R&D\""))])
                .evaluate(&id)
                .0,
            "any value"
        );
        assert!(
            at(false, vec![("dept", cond("contains = \"gineer\""))])
                .evaluate(&id)
                .0
        );
        assert!(
            at(false, vec![("dept", cond("matches = \"Eng.*\""))])
                .evaluate(&id)
                .0
        );
        assert!(
            !at(false, vec![("dept", cond("matches = \"Eng\""))])
                .evaluate(&id)
                .0,
            "whole value"
        );
        assert!(
            at(false, vec![("username", cond("in = [\"jdoe\", \"x\"]"))])
                .evaluate(&id)
                .0
        );
        assert!(
            !at(false, vec![("missing", cond("equals = \"x\""))])
                .evaluate(&id)
                .0
        );
        let mixed = vec![
            ("dept", cond("equals = \"Sales\"")),
            ("email", cond("ends_with = \"@example.com\"")),
        ];
        assert!(at(false, mixed).evaluate(&id).0, "or");
        let mixed = vec![
            ("dept", cond("equals = \"Sales\"")),
            ("email", cond("ends_with = \"@example.com\"")),
        ];
        assert!(!at(true, mixed).evaluate(&id).0, "and");
    }

    #[test]
    fn each_operator_fails_on_a_value_it_does_not_name() {
        let id = Identity::new("u", "jdoe")
            .with_email("jdoe@example.com")
            .with_attribute("dept", "Engineering");
        let holds = |name: &str, raw: &str| {
            let r: RawCondition = toml::from_str(raw).unwrap();
            Trigger {
                attributes: Some(AttributeTrigger {
                    all: true,
                    conditions: vec![(name.to_owned(), r.resolve().unwrap())],
                }),
                ..Trigger::default()
            }
            .evaluate(&id)
            .0
        };
        for (name, yes, no) in [
            ("username", "in = [\"jdoe\"]", "in = [\"x\"]"),
            ("username", "equals = \"jdoe\"", "equals = \"x\""),
            (
                "email",
                "ends_with = \"@example.com\"",
                "ends_with = \"@evil.com\"",
            ),
            ("dept", "contains = \"gineer\"", "contains = \"Sales\""),
            ("dept", "matches = \"Eng[a-z]+\"", "matches = \"Sales.*\""),
        ] {
            assert!(holds(name, yes), "{name} {yes}");
            assert!(!holds(name, no), "{name} {no}");
        }
        // operators of one condition must all hold
        assert!(!holds("username", "in = [\"jdoe\"]\nequals = \"x\""));
        assert!(!holds("username", "equals = \"jdoe\"\nin = [\"x\"]"));
    }

    #[test]
    fn superuser_is_undecided_without_a_map_and_revoked_by_one() {
        let id = Identity::new("u", "u").with_group("devs");
        let never = Trigger {
            never: true,
            ..Trigger::default()
        };
        let e = evaluate(&[], &id);
        assert_eq!(e.superuser(), None);
        assert!(e.allowed);
        let e = evaluate(&[map("org", org("O"), false, groups(&["devs"], &[], &[]))], &id);
        assert_eq!(e.superuser(), None, "other targets decide nothing about it");
        let e = evaluate(&[map("su", Target::Superuser, true, never.clone())], &id);
        assert_eq!(e.superuser(), Some(false));
        assert_eq!(e.trace[0].action, "revoke");
        let e = evaluate(&[map("allow", Target::Allow, false, never)], &id);
        assert_eq!(e.trace[0].action, "deny");
        assert!(!e.allowed);
    }

    #[test]
    fn trigger_kinds_combine_with_and_never_wins() {
        let id = Identity::new("u", "u").with_group("g").with_email("a@b.c");
        let mut t = groups(&["g"], &[], &[]);
        t.attributes = Some(AttributeTrigger {
            all: false,
            conditions: vec![(
                "email".into(),
                Condition {
                    ends_with: vec!["@nope".into()],
                    ..Condition::default()
                },
            )],
        });
        assert!(!t.evaluate(&id).0, "groups true AND attributes false");
        let t = Trigger {
            always: true,
            never: true,
            ..Trigger::default()
        };
        assert!(!t.evaluate(&id).0);
    }

    #[test]
    fn order_override_revoke_and_allow() {
        let id = Identity::new("u", "u").with_group("devs");
        let always = Trigger {
            always: true,
            ..Trigger::default()
        };
        let never = Trigger {
            never: true,
            ..Trigger::default()
        };
        let e = evaluate(
            &[
                map("a", org("O"), false, always.clone()),
                map("b", org("O"), true, never.clone()),
                map("c", org("P"), false, never.clone()),
                map("d", Target::Superuser, false, groups(&["devs"], &[], &[])),
            ],
            &id,
        );
        assert!(e.allowed);
        assert_eq!(e.decisions.get(&org("O")), Some(&false), "later revoke overrides");
        assert_eq!(
            e.decisions.get(&org("P")),
            None,
            "false without revoke changes nothing"
        );
        assert_eq!(e.superuser(), Some(true));
        assert_eq!(e.trace[2].action, "none");

        let denied = evaluate(
            &[map("allow", Target::Allow, false, groups(&["admins"], &[], &[]))],
            &id,
        );
        assert!(!denied.allowed);
        let reallowed = evaluate(
            &[
                map("deny", Target::Allow, false, never),
                map("allow", Target::Allow, false, always),
            ],
            &id,
        );
        assert!(reallowed.allowed, "a later allow map overrides");
    }
}
