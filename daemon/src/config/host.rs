//! `[host]`: what the host's name service sees of gatehouse's users and
//! groups (`libnss_gatehouse.so.2`, answered on `nss_socket`).
//!
//! ```toml
//! [host]
//! uid_range = [200000, 299999]   # uid = start + the user's store id
//! gid_range = [300000, 399999]   # organizations and teams (see crate::nss)
//! home = "/home/{username}"      # {username}, {uid}
//! shell = "/bin/bash"
//! groups = ["organizations", "teams"]
//! nss_socket = "/run/gatehouse/nss.sock"   # read-only lookups, mode 0666; off when absent
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{Location, Resolver, join};

/// `[host]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHost {
    uid_range: Option<Spanned<Vec<i64>>>,
    gid_range: Option<Spanned<Vec<i64>>>,
    home: Option<Spanned<String>>,
    shell: Option<Spanned<String>>,
    groups: Option<Spanned<Vec<String>>>,
    nss_socket: Option<Spanned<String>>,
}

/// An inclusive id range, `start` ≥ 1 (never root), `end` ≤ 4294967294
/// (`(uid_t)-1` means "no id" to the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// The first id.
    pub start: u32,
    /// The last id.
    pub end: u32,
}

impl IdRange {
    /// `start + offset`, when that is in the range.
    pub fn at(self, offset: i64) -> Option<u32> {
        let id = i64::from(self.start).checked_add(offset)?;
        u32::try_from(id)
            .ok()
            .filter(|id| (self.start..=self.end).contains(id))
    }

    /// The offset of `id` from `start`, when `id` is in the range.
    pub fn offset(self, id: u32) -> Option<i64> {
        (self.start..=self.end)
            .contains(&id)
            .then(|| i64::from(id - self.start))
    }

    fn overlaps(self, other: Self) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// Which gatehouse objects are host groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostGroupKinds {
    /// Organizations, named as they are.
    pub organizations: bool,
    /// Teams, named `<organization>.<team>`.
    pub teams: bool,
}

/// `[host]`, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// Users' uids (and their private groups' gids).
    pub uid_range: IdRange,
    /// Organization and team gids.
    pub gid_range: IdRange,
    /// The home directory template (`{username}`, `{uid}`).
    pub home: String,
    /// The login shell.
    pub shell: String,
    /// Which objects are groups.
    pub groups: HostGroupKinds,
    /// The read-only lookup socket, when on. Only a restart changes it.
    pub nss_socket: Option<PathBuf>,
    /// Where `[host]` is.
    pub location: Location,
}

/// The highest id a range may reach.
const MAX_ID: i64 = 4_294_967_294;

fn range(
    r: &mut Resolver<'_>,
    v: Option<&Spanned<Vec<i64>>>,
    key: &str,
    table: &std::ops::Range<usize>,
) -> Option<IdRange> {
    let Some(v) = v else {
        return r.err(
            table,
            key,
            "required in [host]: [first, last], e.g. [200000, 299999]",
        );
    };
    match v.get_ref().as_slice() {
        [a, b] if (1..=MAX_ID).contains(a) && (*a..=MAX_ID).contains(b) => Some(IdRange {
            start: u32::try_from(*a).ok()?,
            end: u32::try_from(*b).ok()?,
        }),
        _ => r.err(
            &v.span(),
            key,
            format!("must be [first, last] with 1 <= first <= last <= {MAX_ID}"),
        ),
    }
}

/// Checks a path template: absolute, placeholders among `allowed`, no
/// character that would break a passwd line.
pub(crate) fn check_template(t: &str, allowed: &[&str]) -> Result<(), String> {
    if !t.starts_with('/') {
        return Err("must be an absolute path".into());
    }
    if let Some(c) = t.chars().find(|c| c.is_control() || *c == ':') {
        return Err(format!("must not contain {c:?}"));
    }
    let mut rest = t;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err("has a '}' without its '{'".into());
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("has a '{' without its '}'")?;
        let name = &after[..close];
        if !allowed.contains(&name) {
            let allowed: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
            return Err(if allowed.is_empty() {
                "takes no placeholders".into()
            } else {
                format!("unknown placeholder {{{name}}}: use {}", allowed.join(", "))
            });
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Resolves `[host]`; `None` when invalid (the errors are recorded).
pub(crate) fn resolve(r: &mut Resolver<'_>, raw: &Spanned<RawHost>, dir: &Path) -> Option<HostConfig> {
    let table = raw.span();
    let h = raw.get_ref();
    let before = r.error_count();
    let uid_range = range(r, h.uid_range.as_ref(), "host.uid_range", &table);
    let gid_range = range(r, h.gid_range.as_ref(), "host.gid_range", &table);
    if let (Some(u), Some(g), Some(span)) = (uid_range, gid_range, h.gid_range.as_ref().map(Spanned::span))
        && u.overlaps(g)
    {
        r.err::<()>(
            &span,
            "host.gid_range",
            "must not overlap uid_range: each user's private group has its uid as gid",
        );
    }
    let mut template = |v: Option<&Spanned<String>>, key: &str, default: &str, allowed: &[&str]| match v {
        None => Some(default.to_owned()),
        Some(v) => match check_template(v.get_ref(), allowed) {
            Ok(()) => Some(v.get_ref().clone()),
            Err(e) => r.err(&v.span(), key, e),
        },
    };
    let home = template(
        h.home.as_ref(),
        "host.home",
        "/home/{username}",
        &["username", "uid"],
    );
    let shell = template(h.shell.as_ref(), "host.shell", "/bin/sh", &[]);
    let mut groups = HostGroupKinds {
        organizations: true,
        teams: true,
    };
    if let Some(g) = &h.groups {
        groups = HostGroupKinds {
            organizations: false,
            teams: false,
        };
        for kind in g.get_ref() {
            match kind.as_str() {
                "organizations" => groups.organizations = true,
                "teams" => groups.teams = true,
                _ => {
                    r.err::<()>(
                        &g.span(),
                        "host.groups",
                        format!("unknown kind {kind:?}: use \"organizations\" and/or \"teams\""),
                    );
                }
            }
        }
    }
    let nss_socket = match &h.nss_socket {
        Some(s) if s.get_ref().trim().is_empty() => r.err(&s.span(), "host.nss_socket", "must not be empty"),
        Some(s) => Some(join(dir, s.get_ref())),
        None => None,
    };
    if r.error_count() > before {
        return None;
    }
    Some(HostConfig {
        uid_range: uid_range?,
        gid_range: gid_range?,
        home: home?,
        shell: shell?,
        groups,
        nss_socket,
        location: r.src.at(&table),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert!(check_template("/home/{username}", &["username", "uid"]).is_ok());
        assert!(check_template("/srv/{uid}/{username}", &["username", "uid"]).is_ok());
        assert!(check_template("home/{username}", &["username"]).is_err());
        assert!(check_template("/home/{user}", &["username"]).is_err());
        assert!(check_template("/home/{username", &["username"]).is_err());
        assert!(check_template("/home/}", &["username"]).is_err());
        assert!(check_template("/bin/{x}", &[]).is_err());
        assert!(check_template("/bin/ba:sh", &[]).is_err());
        assert!(check_template("/bin/ba\nsh", &[]).is_err());
    }

    #[test]
    fn ranges() {
        let r = IdRange {
            start: 1000,
            end: 1009,
        };
        assert_eq!(r.at(0), Some(1000));
        assert_eq!(r.at(9), Some(1009));
        assert_eq!(r.at(10), None);
        assert_eq!(r.at(-1), None);
        assert_eq!(r.at(i64::MAX), None);
        assert_eq!(r.offset(1005), Some(5));
        assert_eq!(r.offset(999), None);
        assert_eq!(r.offset(1010), None);
        assert!(r.overlaps(IdRange {
            start: 1009,
            end: 2000
        }));
        assert!(!r.overlaps(IdRange {
            start: 1010,
            end: 2000
        }));
    }
}
