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
//!   sequences). Teams are named `<organization>.<team>`.
//!
//! An object whose id falls outside its range, or whose name is not a
//! safe host name ([`host_name_ok`]), or whose name another object
//! already takes (a user's private group wins) is not answered for, and is
//! logged once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};

use gatehouse_sdk::proto::{NssGroup, NssPasswd};

use crate::config::HostConfig;
use crate::store::{HostGroups, UserRecord};

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

    /// Every organization and team group `[host] groups` exposes, by gid,
    /// with members who are users the host sees. `users` are the names
    /// of the users the host sees (their private groups take precedence).
    pub fn groups(&self, rows: &HostGroups, users: &BTreeMap<i64, String>) -> Vec<NssGroup> {
        let taken: BTreeSet<&str> = users.values().map(String::as_str).collect();
        // (gid, name) of every candidate
        let mut candidates: Vec<(u32, String)> = Vec::new();
        let mut add = |id: i64, team: bool, name: String| {
            let what = if team { "team" } else { "organization" };
            match self.group_gid(id, team) {
                None => warn_once(format!("gid {what} {id}"), || {
                    format!(
                        "{what} {name:?} (store id {id}) is beyond gid_range {}-{}: the host does not see it; widen gid_range",
                        self.cfg.gid_range.start, self.cfg.gid_range.end
                    )
                }),
                Some(_) if !host_name_ok(&name) => warn_once(format!("gname {what} {id}"), || {
                    format!("{what} {name:?} is not a safe host group name: the host does not see it")
                }),
                Some(_) if taken.contains(name.as_str()) => warn_once(format!("gtaken {what} {id}"), || {
                    format!(
                        "{what} {name:?} has a user's name (the user's private group wins): the host does not see it"
                    )
                }),
                Some(gid) => candidates.push((gid, name)),
            }
        };
        if self.cfg.groups.organizations {
            for (id, name) in &rows.organizations {
                add(*id, false, name.clone());
            }
        }
        if self.cfg.groups.teams {
            for (id, org, team) in &rows.teams {
                add(*id, true, format!("{org}.{team}"));
            }
        }
        // a name two groups claim is answered for neither
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, name) in &candidates {
            *count.entry(name.as_str()).or_default() += 1;
        }
        let clash: BTreeSet<String> = count
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(name, _)| name.to_owned())
            .collect();
        for name in &clash {
            warn_once(format!("clash {name}"), || {
                format!("two groups are both named {name:?}: the host sees neither")
            });
        }
        let mut members: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
        for (user_id, _, org, team) in &rows.members {
            let Some(name) = users.get(user_id) else {
                continue;
            };
            let gid = match team {
                Some(t) => self.group_gid(*t, true),
                None => self.group_gid(*org, false),
            };
            if let Some(gid) = gid {
                members.entry(gid).or_default().insert(name.as_str());
            }
        }
        let mut out: Vec<NssGroup> = candidates
            .into_iter()
            .filter(|(_, name)| !clash.contains(name))
            .map(|(gid, name)| NssGroup {
                members: members
                    .get(&gid)
                    .map(|m| m.iter().map(|s| (*s).to_owned()).collect())
                    .unwrap_or_default(),
                name,
                gid,
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
    fn groups_with_members_clashes_and_kinds() {
        let mut c = cfg();
        let rows = HostGroups {
            organizations: vec![
                (1, "default".into()),
                (2, "a.b".into()),
                (3, "alice".into()),
                (4, "bad name".into()),
            ],
            teams: vec![(1, "default".into(), "devs".into()), (2, "a".into(), "b".into())],
            members: vec![
                (1, "alice".into(), 1, None),
                (1, "alice".into(), 1, Some(1)),
                (2, "bob".into(), 1, Some(1)),
                (9, "unseen".into(), 1, Some(1)),
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
            ]
        );
        c.groups.organizations = false;
        let groups = HostDb::new(&c).groups(&rows, &users);
        assert_eq!(
            groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["default.devs", "a.b"]
        );
    }
}
