//! [`Identity`]: what every successful login produces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The identity an authenticator vouches for after a successful login.
///
/// The daemon, not the plugin, turns it into a user: it runs the maps,
/// normalises the username and applies the collision rules. Build one with
/// [`Identity::new`] and the `with_*` methods; the struct is
/// `#[non_exhaustive]` so later SDK versions can add fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Identity {
    /// A stable identifier of the user at the backend (LDAP DN or uid, SAML
    /// permanent id, OIDC `sub`, GitHub numeric id). Never reassigned.
    pub uid: String,
    /// The preferred username.
    pub username: String,
    /// True when the backend treats usernames case-insensitively (LDAP): the
    /// daemon then stores the username lowercased.
    #[serde(default)]
    pub case_insensitive: bool,
    /// E-mail address, if the backend knows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Group identifiers (LDAP DNs, SAML/OIDC group values, `org/team` slugs).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Further attributes, each with one or more values.
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// A value this login must be the first to present while it lives (a
    /// SAML assertion ID): the daemon claims it in its store, shared by
    /// every host of the store, under the scope `"<type>:<authenticator>"`,
    /// and refuses the login as a replay (401 `invalid_credentials`,
    /// reason `replay`) when it was claimed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once: Option<OnceKey>,
}

/// A single-use value and how long its claim lasts (see [`Identity::once`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct OnceKey {
    /// The value (at most 256 bytes).
    pub key: String,
    /// Unix seconds until which a second use is a replay.
    pub expires_at: i64,
}

impl OnceKey {
    /// A single-use `key`, claimed until `expires_at` (Unix seconds).
    pub fn new(key: impl Into<String>, expires_at: i64) -> Self {
        Self {
            key: key.into(),
            expires_at,
        }
    }
}

impl Identity {
    /// An identity with a uid and a username and nothing else.
    pub fn new(uid: impl Into<String>, username: impl Into<String>) -> Self {
        Self {
            uid: uid.into(),
            username: username.into(),
            ..Self::default()
        }
    }

    /// Marks the backend's usernames as case-insensitive.
    pub fn case_insensitive(mut self, yes: bool) -> Self {
        self.case_insensitive = yes;
        self
    }

    /// Sets the e-mail address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the given and family names.
    pub fn with_name(mut self, first: impl Into<String>, last: impl Into<String>) -> Self {
        self.first_name = Some(first.into());
        self.last_name = Some(last.into());
        self
    }

    /// Adds a group.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Makes the login single-use: `key` may be presented once until
    /// `expires_at` (see [`Identity::once`]).
    pub fn with_once(mut self, key: impl Into<String>, expires_at: i64) -> Self {
        self.once = Some(OnceKey::new(key, expires_at));
        self
    }

    /// Adds one value to an attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.entry(name.into()).or_default().push(value.into());
        self
    }
}
