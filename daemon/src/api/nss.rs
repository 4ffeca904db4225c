//! The host's name service routes, served on `[host] nss_socket` only
//! (any local process may connect; nothing here is a secret or an admin
//! action): `GET /v1/nss/passwd`, `GET /v1/nss/group` (each by `name=`,
//! by `uid=`/`gid=`, or every entry without a query) and
//! `GET /v1/nss/initgroups?name=`. The entries are built by [`crate::nss`].

use std::collections::BTreeMap;

use gatehouse_sdk::proto::{NssGroup, NssGroupIds, NssGroupList, NssPasswd, NssPasswdList};
use http::{Response, StatusCode};

use super::{ApiError, Body, json};
use crate::client::decode_segment;
use crate::config::HostConfig;
use crate::nss::{GidOwner, HostDb, group_key, host_name_ok};
use crate::runtime::Runtime;
use crate::store::{HostGroup, HostGroupKey};

/// What a lookup asks for.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    /// Every entry.
    All,
    /// By name.
    Name(String),
    /// By uid or gid.
    Id(u32),
}

/// Parses the query: nothing, `name=…` (percent-encoded) or `<id_key>=N`.
fn key(query: Option<&str>, id_key: &str) -> Result<Key, ApiError> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(Key::All);
    };
    let bad = || ApiError::bad_request(format!("expected no query, name=NAME or {id_key}=N"));
    let (k, v) = q.split_once('=').ok_or_else(bad)?;
    if v.contains(['&', '=']) {
        return Err(bad());
    }
    if k == "name" {
        decode_segment(v).map(Key::Name).ok_or_else(bad)
    } else if k == id_key {
        // digits only: no sign, no space, no leading '+'
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        v.parse().map(Key::Id).map_err(|_| bad())
    } else {
        Err(bad())
    }
}

fn host(rt: &Runtime) -> Result<&HostConfig, ApiError> {
    rt.config
        .host
        .as_ref()
        .ok_or_else(|| ApiError::not_found("[host] is not configured"))
}

fn not_found() -> ApiError {
    ApiError::not_found("no such entry")
}

/// Every user the host sees, by store id.
async fn all_users(rt: &Runtime, db: &HostDb<'_>) -> Result<Vec<NssPasswd>, ApiError> {
    Ok(rt
        .store
        .list_users()
        .await?
        .iter()
        .filter_map(|u| db.passwd(u))
        .collect())
}

/// Store id → name of every user the host sees.
fn by_id(db: &HostDb<'_>, users: &[NssPasswd]) -> BTreeMap<i64, String> {
    users
        .iter()
        .filter_map(|p| Some((db.user_id(p.uid)?, p.name.clone())))
        .collect()
}

/// `GET /v1/nss/passwd`.
pub(super) async fn passwd(rt: &Runtime, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let cfg = host(rt)?;
    let db = HostDb::new(cfg);
    let user = match key(query, "uid")? {
        Key::All => {
            let mut entries = all_users(rt, &db).await?;
            entries.sort_by_key(|p| p.uid);
            return Ok(json(StatusCode::OK, &NssPasswdList { entries }));
        }
        Key::Name(name) if host_name_ok(&name) => rt.store.user_by_username(&name).await?,
        Key::Name(_) => None,
        Key::Id(uid) => match db.user_id(uid) {
            Some(id) => rt.store.user_by_id(id).await?,
            None => None,
        },
    };
    let entry = user.as_ref().and_then(|u| db.passwd(u)).ok_or_else(not_found)?;
    Ok(json(StatusCode::OK, &entry))
}

/// Every group: the users' private groups, then organizations and teams.
async fn all_groups(rt: &Runtime, db: &HostDb<'_>) -> Result<Vec<NssGroup>, ApiError> {
    let users = all_users(rt, db).await?;
    let rows = rt.store.host_groups().await?;
    let mut out: Vec<NssGroup> = users.iter().map(HostDb::private_group).collect();
    out.extend(db.groups(&rows, &by_id(db, &users)));
    Ok(out)
}

/// The passwd entry of the user named `name`, when the host sees one.
async fn visible_user(rt: &Runtime, db: &HostDb<'_>, name: &str) -> Result<Option<NssPasswd>, ApiError> {
    if !host_name_ok(name) {
        return Ok(None);
    }
    Ok(rt.store.user_by_username(name).await?.and_then(|u| db.passwd(&u)))
}

/// The group of one organization or team, unless the host does not see it
/// or a user's private group has its name.
async fn one_group(rt: &Runtime, db: &HostDb<'_>, key: HostGroupKey) -> Result<Option<NssGroup>, ApiError> {
    let Some(g) = rt.store.host_group(key).await? else {
        return Ok(None);
    };
    let Some(entry) = db.group(&g, |id, name| db.uid(id).is_some() && host_name_ok(name)) else {
        return Ok(None);
    };
    if visible_user(rt, db, &entry.name).await?.is_some() {
        db.shadowed(&entry);
        return Ok(None);
    }
    Ok(Some(entry))
}

/// `GET /v1/nss/group`.
pub(super) async fn group(rt: &Runtime, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let cfg = host(rt)?;
    let db = HostDb::new(cfg);
    let found = match key(query, "gid")? {
        Key::All => {
            let mut entries = all_groups(rt, &db).await?;
            entries.sort_by_key(|g| g.gid);
            return Ok(json(StatusCode::OK, &NssGroupList { entries }));
        }
        Key::Name(name) => match visible_user(rt, &db, &name).await? {
            // a user's private group first, then an organization or team
            Some(p) => Some(HostDb::private_group(&p)),
            None if host_name_ok(&name) => one_group(rt, &db, group_key(&name))
                .await?
                .filter(|g| g.name == name),
            None => None,
        },
        Key::Id(gid) => match db.gid_owner(gid) {
            Some(GidOwner::User(id)) => rt
                .store
                .user_by_id(id)
                .await?
                .and_then(|u| db.passwd(&u))
                .map(|p| HostDb::private_group(&p)),
            Some(GidOwner::Organization(id)) => one_group(rt, &db, HostGroupKey::OrganizationId(id)).await?,
            Some(GidOwner::Team(id)) => one_group(rt, &db, HostGroupKey::TeamId(id)).await?,
            None => None,
        }
        .filter(|g| g.gid == gid),
    };
    Ok(json(StatusCode::OK, &found.ok_or_else(not_found)?))
}

/// `GET /v1/nss/initgroups?name=`: every gid the user is a member of, its
/// private group first, then by gid. From the user's own grants: one
/// query, whatever the number of groups.
pub(super) async fn initgroups(rt: &Runtime, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let cfg = host(rt)?;
    let db = HostDb::new(cfg);
    let Key::Name(name) = key(query, "name")? else {
        return Err(ApiError::bad_request("expected name=NAME"));
    };
    let me = visible_user(rt, &db, &name).await?.ok_or_else(not_found)?;
    let id = db.user_id(me.uid).ok_or_else(not_found)?;
    let mut groups: BTreeMap<u32, String> = BTreeMap::new();
    for g in rt.store.grants(id).await? {
        let (group_id, team) = match (g.team_id, g.organization_id) {
            (Some(t), _) => (t, g.team),
            (None, Some(o)) => (o, None),
            (None, None) => continue, // a global role: no group
        };
        let Some(organization) = g.organization else {
            continue;
        };
        let host_group = HostGroup {
            id: group_id,
            organization,
            team,
            members: Vec::new(),
        };
        if let Some(entry) = db.group(&host_group, |_, _| false) {
            groups.insert(entry.gid, entry.name);
        }
    }
    let mut gids = vec![me.gid];
    for (gid, group_name) in groups {
        // a user's private group hides a group of its name
        if visible_user(rt, &db, &group_name).await?.is_none() {
            gids.push(gid);
        }
    }
    Ok(json(StatusCode::OK, &NssGroupIds { gids }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_strictly() {
        assert_eq!(key(None, "uid").expect("all"), Key::All);
        assert_eq!(key(Some(""), "uid").expect("all"), Key::All);
        assert_eq!(
            key(Some("name=alice"), "uid").expect("name"),
            Key::Name("alice".into())
        );
        assert_eq!(
            key(Some("name=j%C3%BCrgen"), "uid").expect("name"),
            Key::Name("j\u{fc}rgen".into())
        );
        assert_eq!(key(Some("uid=70001"), "uid").expect("id"), Key::Id(70001));
        for bad in [
            "uid=-1",
            "uid=+1",
            "uid=",
            "uid=4294967296",
            "gid=1",
            "name=a&uid=1",
            "name",
            "name=%zz",
            "other=1",
        ] {
            assert!(key(Some(bad), "uid").is_err(), "{bad}");
        }
    }
}
