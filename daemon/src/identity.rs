//! Turning an authenticator's [`Identity`] into a stored user.
//!
//! The link `(authenticator, uid) → user` is authoritative. A new identity
//! takes the user of the same username only when that user is the local
//! account of a `local` authenticator; otherwise a username already in use
//! yields a distinct, deterministic `<uid>-<hash>` username, so no
//! authenticator can silently take over another's account.

use std::collections::BTreeSet;

use gatehouse_sdk::Identity;
use gatehouse_sdk::proto::{OrganizationMembership, TeamMembership};
use serde::Serialize;

use crate::config::AuthenticatorSpec;
use crate::maps::{self, Evaluation, Target};
use crate::store::{GrantRecord, NewUser, Profile, Store, StoreError, Transaction, UserRecord};

/// Normalises a username the way the store keeps it: the PRECIS mapping of
/// `authn::username` (case-mapped for case-insensitive identities). Logins
/// refuse a result that `authn::username::check` refuses before this runs.
pub fn normalize(identity: &Identity) -> String {
    use crate::authn::username;
    if identity.case_insensitive {
        username::map_case_mapped(&identity.username)
    } else {
        username::map_case_preserved(&identity.username)
    }
}

/// FNV-1a, 64 bits: a stable short hash for collision suffixes (not for
/// security).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The uid an identity is linked under: lowercased when its authenticator
/// compares uids without case.
pub fn link_uid(identity: &Identity) -> String {
    if identity.case_insensitive {
        identity.uid.to_lowercase()
    } else {
        identity.uid.clone()
    }
}

/// The username given to an identity whose preferred name is taken.
pub fn collision_username(authenticator: &str, identity: &Identity) -> String {
    let mut key = authenticator.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(identity.uid.as_bytes());
    let uid = if identity.case_insensitive {
        identity.uid.to_lowercase()
    } else {
        identity.uid.clone()
    };
    format!("{}-{:08x}", uid, fnv1a(&key) & 0xffff_ffff)
}

/// What a login needs of its authenticator's configuration.
#[derive(Clone, Debug)]
pub struct LoginPolicy {
    /// The authenticator's name.
    pub authenticator: String,
    /// True for the `local` type (it vouches for the store's own accounts).
    pub is_local: bool,
    /// Legacy authenticators whose users move here on first login.
    pub auto_migrate_users_from: Vec<String>,
    /// Create missing organizations and teams.
    pub create_objects: bool,
    /// Remove grants this authenticator made that no map grants now.
    pub remove_users: bool,
}

impl LoginPolicy {
    /// The policy of a configured authenticator.
    pub fn of(spec: &AuthenticatorSpec) -> Self {
        Self {
            authenticator: spec.name.clone(),
            is_local: spec.kind == "local",
            auto_migrate_users_from: spec.auto_migrate_users_from.clone(),
            create_objects: spec.create_objects,
            remove_users: spec.remove_users,
        }
    }
}

/// What one login wrote.
#[derive(Clone, Debug)]
pub struct LoggedIn {
    /// The user, as stored after the login.
    pub user: UserRecord,
    /// What the maps changed.
    pub applied: Applied,
    /// The user's grants afterwards.
    pub grants: Vec<GrantRecord>,
}

/// Records a login in one store transaction: finds or creates the user,
/// links the identity, refreshes the profile, applies the maps, and resets
/// the lockout counter `reset_counter` names (the store key of the username
/// the login's failures were counted under). Either all of it is stored or
/// none; concurrent first logins of one new identity make one user.
pub async fn record_login(
    store: &dyn Store,
    policy: LoginPolicy,
    identity: Identity,
    eval: Evaluation,
    reset_counter: Option<Vec<u8>>,
) -> Result<LoggedIn, StoreError> {
    store
        .atomically(move |tx| {
            let mut user = resolve_user(tx, &policy, &identity)?;
            let applied = apply_maps(tx, &policy, &user, &eval)?;
            if let Some(su) = applied.superuser {
                user.is_superuser = su;
            }
            if let Some(key) = &reset_counter {
                tx.lockout_clear(key)?;
            }
            let grants = tx.grants(user.id)?;
            Ok(LoggedIn {
                user,
                applied,
                grants,
            })
        })
        .await
}

/// Finds or creates the user for an identity and records the login.
pub fn resolve_user(
    tx: &mut dyn Transaction,
    policy: &LoginPolicy,
    identity: &Identity,
) -> Result<UserRecord, StoreError> {
    let name = policy.authenticator.as_str();
    let uid = link_uid(identity);
    let profile = Profile {
        email: identity.email.clone(),
        first_name: identity.first_name.clone(),
        last_name: identity.last_name.clone(),
    };
    if let Some(user) = tx.linked_user(name, &uid)? {
        tx.touch_login(user.id, &profile)?;
        return Ok(with_profile(user, profile));
    }
    // A user of a legacy authenticator moves here on first login, with the
    // memberships that authenticator granted.
    for legacy in &policy.auto_migrate_users_from {
        if let Some(user_id) = tx.move_link(legacy, name, &uid)?
            && let Some(user) = tx.user_by_id(user_id)?
        {
            tracing::info!(
                username = %user.username,
                from = %legacy,
                to = %name,
                "user migrated to a new authenticator"
            );
            tx.touch_login(user.id, &profile)?;
            return Ok(with_profile(user, profile));
        }
    }
    let username = normalize(identity);
    let user = match tx.user_by_username(&username)? {
        // The local authenticator vouches for the store's own account.
        Some(user) if policy.is_local => user,
        Some(_) => {
            let alt = collision_username(name, identity);
            match tx.user_by_username(&alt)? {
                Some(u) => u,
                None => create(tx, alt, identity)?,
            }
        }
        None => create(tx, username, identity)?,
    };
    tx.link_user(name, &uid, user.id)?;
    tx.touch_login(user.id, &profile)?;
    Ok(with_profile(user, profile))
}

/// The user as [`Store::touch_login`] left it (fields the identity
/// carries replace the stored ones).
fn with_profile(mut user: UserRecord, profile: Profile) -> UserRecord {
    user.email = profile.email.or(user.email);
    user.first_name = profile.first_name.or(user.first_name);
    user.last_name = profile.last_name.or(user.last_name);
    user
}

fn create(tx: &mut dyn Transaction, username: String, identity: &Identity) -> Result<UserRecord, StoreError> {
    tx.create_user(&NewUser {
        username,
        email: identity.email.clone(),
        first_name: identity.first_name.clone(),
        last_name: identity.last_name.clone(),
        is_superuser: false,
        password_hash: None,
    })
}

/// What applying maps changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Applied {
    /// Organizations and teams created (`create_objects`).
    pub created: Vec<String>,
    /// Targets skipped because their object is missing and
    /// `create_objects` is off.
    pub skipped: Vec<String>,
    /// Roles granted now.
    pub granted: Vec<String>,
    /// Roles removed (a revoking map, or `remove_users`).
    pub removed: Vec<String>,
    /// The superuser decision applied, if any.
    pub superuser: Option<bool>,
}

fn describe(organization: Option<&str>, team: Option<&str>, role: &str) -> String {
    match (organization, team) {
        (Some(o), Some(t)) => format!("{role} of team {o}/{t}"),
        (Some(o), None) => format!("{role} of organization {o}"),
        _ => format!("{role} (global)"),
    }
}

/// Applies a map evaluation to a user: superuser status, grants, revokes,
/// and (`remove_users`) removal of grants this authenticator made before
/// that no map grants now.
pub fn apply_maps(
    tx: &mut dyn Transaction,
    spec: &LoginPolicy,
    user: &UserRecord,
    eval: &Evaluation,
) -> Result<Applied, StoreError> {
    let authenticator = spec.authenticator.as_str();
    let mut applied = Applied::default();
    if let Some(su) = eval.superuser()
        && su != user.is_superuser
    {
        tx.set_superuser(user.id, su)?;
        applied.superuser = Some(su);
    }
    // (organization id, team id, role) granted by this login
    let mut kept: BTreeSet<(Option<i64>, Option<i64>, String)> = BTreeSet::new();
    for (target, grant) in &eval.decisions {
        let Target::Role {
            organization,
            team,
            role,
        } = target
        else {
            continue;
        };
        let what = describe(organization.as_deref(), team.as_deref(), role);
        let create = *grant && spec.create_objects;
        let org_id = match organization {
            None => None,
            Some(o) => match tx.organization(o, create)? {
                Some((id, created)) => {
                    if created {
                        applied.created.push(format!("organization {o}"));
                    }
                    Some(id)
                }
                None => {
                    if *grant {
                        tracing::info!(
                            authenticator,
                            "map skipped: organization {o:?} does not exist and create_objects is off"
                        );
                        applied.skipped.push(what);
                    }
                    continue;
                }
            },
        };
        let team_id = match (team, org_id) {
            (Some(t), Some(org)) => match tx.team(org, t, create)? {
                Some((id, created)) => {
                    if created {
                        applied
                            .created
                            .push(format!("team {}/{t}", organization.as_deref().unwrap_or("")));
                    }
                    Some(id)
                }
                None => {
                    if *grant {
                        tracing::info!(
                            authenticator,
                            "map skipped: team {t:?} does not exist and create_objects is off"
                        );
                        applied.skipped.push(what);
                    }
                    continue;
                }
            },
            _ => None,
        };
        if *grant {
            tx.grant(user.id, org_id, team_id, role, authenticator)?;
            kept.insert((org_id, team_id, role.clone()));
            applied.granted.push(what);
        } else if tx.revoke(user.id, org_id, team_id, role)? {
            applied.removed.push(what);
        }
    }
    if spec.remove_users {
        for g in tx.grants(user.id)? {
            if g.authenticator == authenticator
                && !kept.contains(&(g.organization_id, g.team_id, g.role.clone()))
            {
                tx.revoke(user.id, g.organization_id, g.team_id, &g.role)?;
                applied
                    .removed
                    .push(describe(g.organization.as_deref(), g.team.as_deref(), &g.role));
            }
        }
    }
    Ok(applied)
}

/// A user's memberships as the wire lists them.
pub fn memberships(
    grants: &[GrantRecord],
) -> (Vec<OrganizationMembership>, Vec<TeamMembership>, Vec<String>) {
    let mut orgs: Vec<OrganizationMembership> = Vec::new();
    let mut teams: Vec<TeamMembership> = Vec::new();
    let mut roles = Vec::new();
    for g in grants {
        match (&g.organization, &g.team) {
            (Some(o), None) => {
                let admin = g.role == maps::ORG_ADMIN;
                match orgs.iter_mut().find(|m| &m.name == o) {
                    Some(m) => m.admin |= admin,
                    None => orgs.push(OrganizationMembership {
                        name: o.clone(),
                        admin,
                    }),
                }
                if g.role != maps::ORG_MEMBER && g.role != maps::ORG_ADMIN {
                    roles.push(format!("{o}: {}", g.role));
                }
            }
            (Some(o), Some(t)) => {
                let admin = g.role == maps::TEAM_ADMIN;
                match teams.iter_mut().find(|m| &m.name == t && &m.organization == o) {
                    Some(m) => m.admin |= admin,
                    None => teams.push(TeamMembership {
                        name: t.clone(),
                        organization: o.clone(),
                        admin,
                    }),
                }
                if g.role != maps::TEAM_MEMBER && g.role != maps::TEAM_ADMIN {
                    roles.push(format!("{o}/{t}: {}", g.role));
                }
            }
            _ => roles.push(g.role.clone()),
        }
    }
    (orgs, teams, roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collision_names_are_deterministic_and_distinct() {
        let a = Identity::new("jdoe", "jdoe");
        assert_eq!(collision_username("LDAP", &a), collision_username("LDAP", &a));
        assert_ne!(collision_username("LDAP", &a), collision_username("SAML", &a));
        assert!(collision_username("LDAP", &a).starts_with("jdoe-"));
    }
}
