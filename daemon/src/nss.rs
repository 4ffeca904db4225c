//! The host's name service (`libnss_gatehouse.so.2`): gatehouse users and
//! groups as passwd and group entries. Pure: the store's rows in, entries
//! out; the routes are `api/nss.rs`.
//!
//! Ids are derived, never stored, so every host sharing a store answers
//! the same:
//! - a user's uid is `uid_range` start + its store id (store ids are never
//!   reused: SQLite `AUTOINCREMENT`, PostgreSQL identity columns); its
//!   primary group is a private group of the same name with gid = uid;
//! - an organization's gid is `gid_range` start + 2 × its id, a team's
//!   `gid_range` start + 2 × its id + 1 (the two have separate id
//!   sequences). An organization's group is named as it is, a team's
//!   `<organization>.<team>`; organizations whose name holds a `.` are
//!   not groups (nor are their teams), so a group name splits at its first
//!   `.` into exactly one organization or team.
//!
//! An object whose id falls outside its range, or whose name is not a
//! safe host name ([`host_name_ok`]) or is a user's name (the user's
//! private group wins), is not answered for, and is logged once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};

use gatehouse_sdk::proto::{NssGroup, NssPasswd};

use crate::config::HostConfig;
use crate::store::{HostGroup, HostGroupKey, HostGroups, UserRecord};

/// The longest name answered for (glibc has no limit; `useradd` stops at 32).
pub const MAX_NAME: usize = 255;

/// Whether `name` can be a host user or group name: 1 to [`MAX_NAME`]
/// bytes; no whitespace, control character, `:`, `,` or `/` (which would
/// break a passwd or group line, or a path made of it); not starting with
/// `-` or `+` (compat-mode markers in `/etc/passwd`); not `.` or `..`;
/// not all digits (`chown 1000` must mean a uid).
pub fn host_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['-', '+'])
        && name != "."
        && name != ".."
        && !name.bytes().all(|b| b.is_ascii_digit())
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ':' | ',' | '/'))
}

/// Expands a `[host] home` template (`{username}`, `{uid}`; the template
/// was checked when the configuration was loaded).
pub fn expand_home(template: &str, username: &str, uid: u32) -> String {
    template
        .replace("{username}", username)
        .replace("{uid}", &uid.to_string())
}

/// The GECOS field: the user's names, without what would break the line or
/// its comma-separated subfields, at most 256 characters.
pub fn gecos(user: &UserRecord) -> String {
    let full = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    full.chars()
        .filter(|c| !c.is_control() && !matches!(c, ':' | ','))
        .take(256)
        .collect()
}

/// The group name of an organization, or of one of its teams: `None`
/// when the organization's name holds a `.` or the result is not a safe
/// host name.
pub fn group_name(organization: &str, team: Option<&str>) -> Option<String> {
    if organization.contains('.') {
        return None;
    }
    let name = match team {
        Some(t) => format!("{organization}.{t}"),
        None => organization.to_owned(),
    };
    host_name_ok(&name).then_some(name)
}

/// What a group name can name: the organization it is, or the team its
/// first `.` splits it into.
pub fn group_key(name: &str) -> HostGroupKey {
    match name.split_once('.') {
        Some((org, team)) => HostGroupKey::Team(org.to_owned(), team.to_owned()),
        None => HostGroupKey::Organization(name.to_owned()),
    }
}

/// Logs `message` once per `key` for the daemon's lifetime (at most 4096
/// keys are remembered, then everything is logged).
fn warn_once(key: String, message: impl FnOnce() -> String) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if seen.len() >= 4096 || seen.insert(key) {
        tracing::warn!("[host]: {}", message());
    }
}

/// The view of one generation's `[host]`.
pub struct HostDb<'a> {
    cfg: &'a HostConfig,
}

/// A gid decoded to what it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GidOwner {
    /// The private group of the user with this store id.
    User(i64),
    /// The organization with this store id.
    Organization(i64),
    /// The team with this store id.
    Team(i64),
}

impl<'a> HostDb<'a> {
    /// A view of `cfg`.
    pub fn new(cfg: &'a HostConfig) -> Self {
        Self { cfg }
    }

    /// The uid of the user with store id `id`.
    pub fn uid(&self, id: i64) -> Option<u32> {
        self.cfg.uid_range.at(id)
    }

    /// The store id of the user with `uid`.
    pub fn user_id(&self, uid: u32) -> Option<i64> {
        self.cfg.uid_range.offset(uid)
    }

    /// The gid of an organization (`team = false`) or team with store id `id`.
    pub fn group_gid(&self, id: i64, team: bool) -> Option<u32> {
        self.cfg
            .gid_range
            .at(id.checked_mul(2)?.checked_add(i64::from(team))?)
    }

    /// What `gid` names.
    pub fn gid_owner(&self, gid: u32) -> Option<GidOwner> {
        if let Some(id) = self.cfg.uid_range.offset(gid) {
            return Some(GidOwner::User(id));
        }
        let off = self.cfg.gid_range.offset(gid)?;
        Some(if off % 2 == 0 {
            GidOwner::Organization(off / 2)
        } else {
            GidOwner::Team(off / 2)
        })
    }

    /// The passwd entry of `user`, unless its id is out of range or its
    /// name unsafe (logged once).
    pub fn passwd(&self, user: &UserRecord) -> Option<NssPasswd> {
        let Some(uid) = self.uid(user.id) else {
            warn_once(format!("uid {}", user.id), || {
                format!(
                    "user {:?} (store id {}) is beyond uid_range {}-{}: the host does not see it; widen uid_range",
                    user.username, user.id, self.cfg.uid_range.start, self.cfg.uid_range.end
                )
            });
            return None;
        };
        if !host_name_ok(&user.username) {
            warn_once(format!("uname {}", user.id), || {
                format!(
                    "user with store id {} has a name that is not a safe host name: the host does not see it",
                    user.id
                )
            });
            return None;
        }
        Some(NssPasswd {
            name: user.username.clone(),
            uid,
            gid: uid,
            gecos: gecos(user),
            dir: expand_home(&self.cfg.home, &user.username, uid),
            shell: self.cfg.shell.clone(),
        })
    }

    /// The private group of a user whose passwd entry is `p`.
    pub fn private_group(p: &NssPasswd) -> NssGroup {
        NssGroup {
            name: p.name.clone(),
            gid: p.gid,
            members: Vec::new(),
        }
    }

    /// The group of an organization or team, when `[host] groups` exposes
    /// its kind and its name and gid are usable (else logged once), with
    /// the members in `users` (store id → name of the users the host sees).
    /// Whether a user has its name is the caller's business.
    pub fn group(&self, g: &HostGroup, users: impl Fn(i64, &str) -> bool) -> Option<NssGroup> {
        let team = g.team.is_some();
        if (team && !self.cfg.groups.teams) || (!team && !self.cfg.groups.organizations) {
            return None;
        }
        let what = if team { "team" } else { "organization" };
        let id = g.id;
        let Some(name) = group_name(&g.organization, g.team.as_deref()) else {
            warn_once(format!("gname {what} {id}"), || {
                format!(
                    "{what} {:?} has no usable host group name (a safe name; no '.' in an organization's): \
                     the host does not see it",
                    g.team.as_deref().unwrap_or(&g.organization)
                )
            });
            return None;
        };
        let Some(gid) = self.group_gid(id, team) else {
            warn_once(format!("gid {what} {id}"), || {
                format!(
                    "{what} {name:?} (store id {id}) is beyond gid_range {}-{}: the host does not see it; widen gid_range",
                    self.cfg.gid_range.start, self.cfg.gid_range.end
                )
            });
            return None;
        };
        Some(NssGroup {
            name,
            gid,
            members: g
                .members
                .iter()
                .filter(|(id, name)| users(*id, name))
                .map(|(_, name)| name.clone())
                .collect(),
        })
    }

    /// Logs (once) that a user's private group hides group `g`.
    pub fn shadowed(&self, g: &NssGroup) {
        warn_once(format!("gtaken {}", g.name), || {
            format!(
                "group {:?} has a user's name (the user's private group wins): the host does not see it",
                g.name
            )
        });
    }

    /// Every organization and team group, by gid. `users` are the users
    /// the host sees (store id → name); their private groups take
    /// precedence over groups of the same name.
    pub fn groups(&self, rows: &HostGroups, users: &BTreeMap<i64, String>) -> Vec<NssGroup> {
        let taken: BTreeSet<&str> = users.values().map(String::as_str).collect();
        let mut members: BTreeMap<(i64, bool), Vec<(i64, String)>> = BTreeMap::new();
        for (user_id, name, org, team) in &rows.members {
            let key = match team {
                Some(t) => (*t, true),
                None => (*org, false),
            };
            members.entry(key).or_default().push((*user_id, name.clone()));
        }
        let mut all: Vec<HostGroup> = rows
            .organizations
            .iter()
            .map(|(id, name)| HostGroup {
                id: *id,
                organization: name.clone(),
                team: None,
                members: members.remove(&(*id, false)).unwrap_or_default(),
            })
            .collect();
        all.extend(rows.teams.iter().map(|(id, org, team)| HostGroup {
            id: *id,
            organization: org.clone(),
            team: Some(team.clone()),
            members: members.remove(&(*id, true)).unwrap_or_default(),
        }));
        let visible = |id: i64, name: &str| users.get(&id).is_some_and(|n| n == name);
        let mut out: Vec<NssGroup> = all
            .iter()
            .filter_map(|g| self.group(g, visible))
            .filter(|g| {
                let free = !taken.contains(g.name.as_str());
                if !free {
                    self.shadowed(g);
                }
                free
            })
            .collect();
        out.sort_by_key(|g| g.gid);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HostGroupKinds, IdRange, Location};

    fn cfg() -> HostConfig {
        HostConfig {
            uid_range: IdRange {
                start: 70000,
                end: 70099,
            },
            gid_range: IdRange {
                start: 80000,
                end: 80099,
            },
            home: "/home/{username}".into(),
            shell: "/bin/bash".into(),
            groups: HostGroupKinds {
                organizations: true,
                teams: true,
            },
            nss_socket: None,
            location: Location::file(std::path::Path::new("g.toml")),
        }
    }

    fn user(id: i64, name: &str) -> UserRecord {
        UserRecord {
            id,
            username: name.into(),
            email: None,
            first_name: Some("Alice".into()),
            last_name: Some("Liddell, Jr: the 2nd".into()),
            is_superuser: false,
            password_hash: Some(gatehouse_sdk::Secret::new("$argon2id$secret".to_owned())),
        }
    }

    #[test]
    fn names() {
        for ok in ["alice", "a.b", "Default.Developers", "j\u{fc}rgen", "svc_1", "1a"] {
            assert!(host_name_ok(ok), "{ok}");
        }
        for bad in [
            "", "-rf", "+alice", ".", "..", "1000", "a b", "a:b", "a,b", "a/b", "a\nb", "a\tb",
        ] {
            assert!(!host_name_ok(bad), "{bad:?}");
        }
        assert!(!host_name_ok(&"a".repeat(256)));
        assert!(host_name_ok(&"a".repeat(255)));
    }

    #[test]
    fn home_template_and_gecos() {
        assert_eq!(expand_home("/home/{username}", "alice", 70001), "/home/alice");
        assert_eq!(
            expand_home("/srv/{uid}/{username}/{uid}", "bob", 7),
            "/srv/7/bob/7"
        );
        assert_eq!(gecos(&user(1, "alice")), "Alice Liddell Jr the 2nd");
    }

    #[test]
    fn passwd_entries_and_ranges() {
        let c = cfg();
        let db = HostDb::new(&c);
        let p = db.passwd(&user(1, "alice")).expect("entry");
        assert_eq!(
            (p.name.as_str(), p.uid, p.gid, p.dir.as_str(), p.shell.as_str()),
            ("alice", 70001, 70001, "/home/alice", "/bin/bash")
        );
        // no secret reaches the entry
        assert!(!serde_json::to_string(&p).expect("json").contains("argon2"));
        assert_eq!(db.user_id(70001), Some(1));
        assert!(db.passwd(&user(99, "last")).is_some());
        assert!(db.passwd(&user(100, "beyond")).is_none());
        assert!(db.passwd(&user(2, "ev:il")).is_none());
        assert_eq!(db.user_id(69999), None);
    }

    #[test]
    fn gids_decode() {
        let c = cfg();
        let db = HostDb::new(&c);
        assert_eq!(db.group_gid(3, false), Some(80006));
        assert_eq!(db.group_gid(3, true), Some(80007));
        assert_eq!(db.gid_owner(80006), Some(GidOwner::Organization(3)));
        assert_eq!(db.gid_owner(80007), Some(GidOwner::Team(3)));
        assert_eq!(db.gid_owner(70004), Some(GidOwner::User(4)));
        assert_eq!(db.gid_owner(90000), None);
        assert_eq!(db.group_gid(50, false), None);
        assert_eq!(db.group_gid(49, true), Some(80099));
    }

    #[test]
    fn group_names_split_at_the_first_dot() {
        assert_eq!(group_name("corp", None).as_deref(), Some("corp"));
        assert_eq!(group_name("corp", Some("ops.eu")).as_deref(), Some("corp.ops.eu"));
        assert_eq!(group_name("a.b", None), None);
        assert_eq!(group_name("a.b", Some("c")), None);
        assert_eq!(group_name("corp", Some("night shift")), None);
        assert_eq!(group_name("-x", None), None);
        assert_eq!(group_key("corp"), HostGroupKey::Organization("corp".into()));
        assert_eq!(
            group_key("corp.ops.eu"),
            HostGroupKey::Team("corp".into(), "ops.eu".into())
        );
    }

    #[test]
    fn groups_with_members_names_and_kinds() {
        let mut c = cfg();
        let rows = HostGroups {
            organizations: vec![
                (1, "default".into()),
                (2, "a.b".into()),
                (3, "alice".into()),
                (4, "bad name".into()),
                (5, "a".into()),
                (60, "beyond".into()),
            ],
            teams: vec![
                (1, "default".into(), "devs".into()),
                (2, "a".into(), "b".into()),
                (3, "a.b".into(), "c".into()),
            ],
            members: vec![
                (1, "alice".into(), 1, None),
                (1, "alice".into(), 1, Some(1)),
                (2, "bob".into(), 1, Some(1)),
                (9, "unseen".into(), 1, Some(1)),
                // a stale name: the user was renamed or is not seen
                (2, "robert".into(), 1, None),
            ],
        };
        let users: BTreeMap<i64, String> = [(1, "alice".to_owned()), (2, "bob".to_owned())].into();
        let groups = HostDb::new(&c).groups(&rows, &users);
        let got: Vec<(&str, u32, Vec<&str>)> = groups
            .iter()
            .map(|g| {
                (
                    g.name.as_str(),
                    g.gid,
                    g.members.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("default", 80002, vec!["alice"]),
                ("default.devs", 80003, vec!["alice", "bob"]),
                ("a.b", 80005, vec![]),
                ("a", 80010, vec![]),
            ]
        );
        c.groups.organizations = false;
        let groups = HostDb::new(&c).groups(&rows, &users);
        assert_eq!(
            groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["default.devs", "a.b"]
        );
        c.groups.organizations = true;
        c.groups.teams = false;
        let groups = HostDb::new(&c).groups(&rows, &users);
        assert_eq!(
            groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["default", "a"]
        );
    }
}
