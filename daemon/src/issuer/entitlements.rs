//! Who may have which unit primitives of a service: the catalog's rules
//! applied to the store's facts (seats, purchases, namespace ancestry).
//! Pure: the clock and the caller's version are arguments.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{Service, Version};

/// Whose token is being issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A user: scopes from the add-ons they hold seats of.
    User(String),
    /// A namespace (group): scopes from the add-ons bought for it or for
    /// one of its ancestors.
    Namespace(String),
    /// The instance itself (`mode = "self_managed"`): scopes from the
    /// instance-wide purchases.
    Instance,
}

/// Where the issuer runs, as upstream tells its two deployments apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The SaaS issuer: tokens per user or namespace.
    GitlabCom,
    /// A self-managed instance: one instance token; namespaces and users
    /// are ignored, add-ons are bought for the whole instance.
    SelfManaged,
}

impl Mode {
    /// The realm claim and `X-Gitlab-Realm` header value.
    pub fn realm(self) -> &'static str {
        match self {
            Self::GitlabCom => "saas",
            Self::SelfManaged => "self-managed",
        }
    }
}

/// What the store knows about a subject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Add-ons the user holds a seat of.
    pub seats: BTreeSet<String>,
    /// Add-ons bought for the namespace or an ancestor (or for the
    /// instance), with their seat counts.
    pub purchased: BTreeMap<String, u32>,
}

/// Why nothing is granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The caller's version is older than the service's minimum.
    VersionTooOld {
        /// The minimum.
        minimum: Version,
    },
    /// The service is not sold with the instance's license type.
    License,
    /// Not free, not bought, no seat.
    NoAccess,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::VersionTooOld { minimum } => {
                write!(f, "the service needs version {minimum} or newer")
            }
            Self::License => f.write_str("the service is not sold with this instance's license type"),
            Self::NoAccess => f.write_str(
                "the service is not free, no add-on bundled with it was bought, and no seat is assigned",
            ),
        }
    }
}

/// The caller's context for one decision.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The issuer's mode.
    pub mode: Mode,
    /// The caller's version, when known.
    pub version: Option<&'a Version>,
    /// The instance's license type, when configured.
    pub license_type: Option<&'a str>,
    /// Now, in Unix seconds.
    pub now: i64,
}

/// Free access: no cut-off date or one still ahead, and the caller at
/// least `min_gitlab_version_for_free_access` (an unknown version is not
/// enough when a minimum is set).
pub fn free_access(service: &Service, version: Option<&Version>, now: i64) -> bool {
    let before_cut_off = service.cut_off.is_none_or(|c| now < c);
    let new_enough = match &service.min_version_for_free_access {
        None => true,
        Some(min) => version.is_some_and(|v| v >= min),
    };
    before_cut_off && new_enough
}

/// The unit primitives `subject` may have of `service`.
pub fn decide(
    service: &Service,
    subject: &Subject,
    facts: &Facts,
    cx: Context<'_>,
) -> Result<BTreeSet<String>, Denial> {
    if let Some(min) = &service.min_version
        && cx.version.is_none_or(|v| v < min)
    {
        return Err(Denial::VersionTooOld { minimum: min.clone() });
    }
    if let Some(license) = cx.license_type
        && !service.license_types.is_empty()
        && !service.license_types.contains(license)
    {
        return Err(Denial::License);
    }
    if free_access(service, cx.version, cx.now) {
        let all = service.all_unit_primitives();
        return if all.is_empty() {
            Err(Denial::NoAccess)
        } else {
            Ok(all)
        };
    }
    let add_ons: Box<dyn Iterator<Item = &String>> = match (cx.mode, subject) {
        (Mode::GitlabCom, Subject::User(_)) => Box::new(facts.seats.iter()),
        (Mode::GitlabCom, Subject::Namespace(_)) | (Mode::SelfManaged, _) => Box::new(facts.purchased.keys()),
        (Mode::GitlabCom, Subject::Instance) => Box::new(std::iter::empty()),
    };
    let scopes: BTreeSet<String> = add_ons
        .filter_map(|a| service.bundled_with.get(a))
        .flatten()
        .cloned()
        .collect();
    if scopes.is_empty() {
        Err(Denial::NoAccess)
    } else {
        Ok(scopes)
    }
}

/// `X-Gitlab-Duo-Seat-Count`: the highest seat count among the bought
/// add-ons bundled with the service.
pub fn seat_count(service: &Service, facts: &Facts) -> u32 {
    facts
        .purchased
        .iter()
        .filter(|(a, _)| service.bundled_with.contains_key(*a))
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::catalog::{Catalog, parse_date};
    use super::*;

    #[test]
    fn realms_and_denials_read_as_the_platform_writes_them() {
        // the `gitlab_realm` claim and X-Gitlab-Realm header values
        assert_eq!(Mode::GitlabCom.realm(), "saas");
        assert_eq!(Mode::SelfManaged.realm(), "self-managed");
        let minimum = Version::parse("16.8").expect("version");
        assert_eq!(
            Denial::VersionTooOld { minimum }.to_string(),
            "the service needs version 16.8 or newer"
        );
        assert_eq!(
            Denial::License.to_string(),
            "the service is not sold with this instance's license type"
        );
        assert!(
            Denial::NoAccess
                .to_string()
                .starts_with("the service is not free")
        );
    }

    /// The duo_chat service as the seed writes it, before any registration.
    const BASE: &str = "defaults: &defaults
  services:
    duo_chat:
      backend: gitlab-ai-gateway
      cut_off_date: 2024-7-15 00:00:00 UTC
      min_gitlab_version: 16.8
      min_gitlab_version_for_free_access: 16.8
      bundled_with:
        duo_pro:
          unit_primitives:
            - duo_chat
            - documentation_search
        duo_enterprise:
          unit_primitives:
            - duo_chat
            - documentation_search
            - new_feature_up
production:
  <<: *defaults
";

    /// Registration 2: a stand-alone service, sold with both add-ons, not
    /// free (cut-off in the past), from 17.1.
    const STANDALONE: &str = "services:
  new_feature:
    backend: gitlab-ai-gateway
    cut_off_date: 2024-1-1 00:00:00 UTC
    min_gitlab_version: 17.1
    bundled_with:
      duo_pro:
        unit_primitives:
          - new_feature_up
      duo_enterprise:
        unit_primitives:
          - new_feature_up
";

    /// Registration 3: in duo_chat (enterprise only) and stand-alone too.
    const BOTH: &str = "defaults: &defaults
  services:
    new_feature:
      backend: gitlab-ai-gateway
      bundled_with:
        duo_enterprise:
          unit_primitives:
            - new_feature
    duo_chat:
      backend: gitlab-ai-gateway
      cut_off_date: 2024-7-15 00:00:00 UTC
      bundled_with:
        duo_pro:
          unit_primitives:
            - duo_chat
            - documentation_search
        duo_enterprise:
          unit_primitives:
            - duo_chat
            - documentation_search
            - new_feature_up
production:
  <<: *defaults
";

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn seats(add_ons: &[&str]) -> Facts {
        Facts {
            seats: set(add_ons),
            purchased: BTreeMap::new(),
        }
    }

    fn bought(add_ons: &[(&str, u32)]) -> Facts {
        Facts {
            seats: BTreeSet::new(),
            purchased: add_ons.iter().map(|(a, n)| ((*a).to_owned(), *n)).collect(),
        }
    }

    fn cx(version: &Version, now: i64) -> Context<'_> {
        Context {
            mode: Mode::GitlabCom,
            version: Some(version),
            license_type: None,
            now,
        }
    }

    fn after(date: &str) -> i64 {
        parse_date(date).expect("date") + 1
    }

    #[test]
    fn registration_in_an_existing_service_is_enterprise_only() {
        let c = Catalog::from_str("cc.yml", BASE, "production").expect("catalog");
        let chat = c.service("duo_chat").expect("duo_chat");
        let v = Version::parse("17.0").expect("v");
        let now = after("2024-7-15");
        let user = Subject::User("alice".into());
        assert_eq!(
            decide(chat, &user, &seats(&["duo_enterprise"]), cx(&v, now)),
            Ok(set(&["duo_chat", "documentation_search", "new_feature_up"]))
        );
        assert_eq!(
            decide(chat, &user, &seats(&["duo_pro"]), cx(&v, now)),
            Ok(set(&["duo_chat", "documentation_search"]))
        );
        assert_eq!(
            decide(chat, &user, &seats(&[]), cx(&v, now)),
            Err(Denial::NoAccess)
        );
        let ns = Subject::Namespace("group".into());
        assert_eq!(
            decide(chat, &ns, &bought(&[("duo_enterprise", 10)]), cx(&v, now)),
            Ok(set(&["duo_chat", "documentation_search", "new_feature_up"]))
        );
        assert_eq!(
            decide(chat, &ns, &bought(&[]), cx(&v, now)),
            Err(Denial::NoAccess)
        );
        // a namespace's purchases do not stand in for a user's seat
        assert_eq!(
            decide(chat, &user, &bought(&[("duo_enterprise", 10)]), cx(&v, now)),
            Err(Denial::NoAccess)
        );
    }

    #[test]
    fn free_access_flips_at_the_cut_off() {
        let c = Catalog::from_str("cc.yml", BASE, "production").expect("catalog");
        let chat = c.service("duo_chat").expect("duo_chat");
        let v = Version::parse("16.8").expect("v");
        let cut = parse_date("2024-7-15 00:00:00 UTC").expect("date");
        let nobody = Subject::User("bob".into());
        // one second before: free, every unit primitive of the service
        assert_eq!(
            decide(chat, &nobody, &seats(&[]), cx(&v, cut - 1)),
            Ok(set(&["duo_chat", "documentation_search", "new_feature_up"]))
        );
        // at the cut-off: paid
        assert_eq!(
            decide(chat, &nobody, &seats(&[]), cx(&v, cut)),
            Err(Denial::NoAccess)
        );
        // before the cut-off but older than the free-access minimum
        let old = Version::parse("16.7").expect("v");
        assert_eq!(
            decide(chat, &nobody, &seats(&[]), cx(&old, cut - 1)),
            Err(Denial::VersionTooOld {
                minimum: Version::parse("16.8").expect("v")
            })
        );
    }

    #[test]
    fn a_stand_alone_service_with_a_past_cut_off_and_a_minimum_version() {
        let c = Catalog::from_str("cc.yml", STANDALONE, "production").expect("catalog");
        let s = c.service("new_feature").expect("new_feature");
        let now = after("2024-1-1");
        let new = Version::parse("17.1").expect("v");
        let user = Subject::User("alice".into());
        for add_on in ["duo_pro", "duo_enterprise"] {
            assert_eq!(
                decide(s, &user, &seats(&[add_on]), cx(&new, now)),
                Ok(set(&["new_feature_up"])),
                "{add_on}"
            );
        }
        assert_eq!(
            decide(s, &user, &seats(&[]), cx(&new, now)),
            Err(Denial::NoAccess)
        );
        let old = Version::parse("17.0.9").expect("v");
        assert!(matches!(
            decide(s, &user, &seats(&["duo_pro"]), cx(&old, now)),
            Err(Denial::VersionTooOld { .. })
        ));
        // an unknown caller version is not new enough
        let mut unknown = cx(&new, now);
        unknown.version = None;
        assert!(matches!(
            decide(s, &user, &seats(&["duo_pro"]), unknown),
            Err(Denial::VersionTooOld { .. })
        ));
        let ns = Subject::Namespace("g".into());
        assert_eq!(
            decide(s, &ns, &bought(&[("duo_pro", 5)]), cx(&new, now)),
            Ok(set(&["new_feature_up"]))
        );
    }

    #[test]
    fn both_at_once_a_service_and_a_primitive_in_duo_chat() {
        let c = Catalog::from_str("cc.yml", BOTH, "production").expect("catalog");
        let v = Version::parse("17.3").expect("v");
        let now = after("2024-7-15");
        let user = Subject::User("alice".into());
        let standalone = c.service("new_feature").expect("new_feature");
        // no cut-off on the stand-alone service: free for everybody
        assert_eq!(
            decide(standalone, &user, &seats(&[]), cx(&v, now)),
            Ok(set(&["new_feature"]))
        );
        let chat = c.service("duo_chat").expect("duo_chat");
        assert_eq!(
            decide(chat, &user, &seats(&["duo_enterprise"]), cx(&v, now)),
            Ok(set(&["duo_chat", "documentation_search", "new_feature_up"]))
        );
        assert_eq!(
            decide(chat, &user, &seats(&["duo_pro"]), cx(&v, now)),
            Ok(set(&["duo_chat", "documentation_search"]))
        );
    }

    #[test]
    fn self_managed_uses_instance_purchases_and_ignores_seats() {
        let c = Catalog::from_str("cc.yml", BASE, "production").expect("catalog");
        let chat = c.service("duo_chat").expect("duo_chat");
        let v = Version::parse("17.0").expect("v");
        let mut sm = cx(&v, after("2024-7-15"));
        sm.mode = Mode::SelfManaged;
        assert_eq!(
            decide(chat, &Subject::Instance, &bought(&[("duo_pro", 3)]), sm),
            Ok(set(&["duo_chat", "documentation_search"]))
        );
        assert_eq!(
            decide(chat, &Subject::Instance, &seats(&["duo_enterprise"]), sm),
            Err(Denial::NoAccess)
        );
    }

    #[test]
    fn license_types_and_seat_counts() {
        let yaml = "name: code_suggestions\nadd_ons: [duo_pro, duo_enterprise]\nlicense_types: [premium, ultimate]\ncut_off_date: 2024-1-1 00:00:00 UTC\n";
        let c = Catalog::from_str("cs.yml", yaml, "production").expect("catalog");
        let s = c.service("code_suggestions").expect("service");
        let v = Version::parse("17.0").expect("v");
        let mut context = cx(&v, after("2024-1-1"));
        context.license_type = Some("free");
        let f = seats(&["duo_pro"]);
        assert_eq!(
            decide(s, &Subject::User("a".into()), &f, context),
            Err(Denial::License)
        );
        context.license_type = Some("ultimate");
        assert_eq!(
            decide(s, &Subject::User("a".into()), &f, context),
            Ok(set(&["code_suggestions"]))
        );
        let f = bought(&[("duo_pro", 5), ("duo_enterprise", 12), ("other", 99)]);
        assert_eq!(seat_count(s, &f), 12);
        assert_eq!(seat_count(s, &bought(&[])), 0);
    }
}
