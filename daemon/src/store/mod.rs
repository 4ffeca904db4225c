//! The store: users and their links to authenticators, behind one trait.
//!
//! SQLite ([`sqlite::SqliteStore`]) is the default; the trait is shaped so a
//! PostgreSQL implementation (many hosts sharing users) fits beside it: no
//! SQLite types leak, every call is async, ids are opaque strings on the
//! wire.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_sdk::Secret;

pub use sqlite::SqliteStore;

use crate::config::StoreUrl;

/// A user row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Store id.
    pub id: i64,
    /// Normalised (lowercased) username.
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Superuser status.
    pub is_superuser: bool,
    /// Argon2id PHC string, for users of the local authenticator.
    pub password_hash: Option<Secret>,
}

impl UserRecord {
    /// The wire form (no password hash).
    pub fn to_wire(&self) -> gatehouse_sdk::proto::User {
        gatehouse_sdk::proto::User {
            id: self.id.to_string(),
            username: self.username.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            is_superuser: self.is_superuser,
        }
    }
}

/// A user to create.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    /// Normalised username.
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Superuser status.
    pub is_superuser: bool,
    /// Password hash, for local users.
    pub password_hash: Option<Secret>,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint (username) would be violated.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database failed.
    #[error("store error: {0}")]
    Backend(String),
}

/// The persistent state of the daemon.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a user.
    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError>;
    /// Looks a user up by normalised username.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError>;
    /// Every user, by username.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Replaces a user's password hash; false when there is no such user.
    async fn set_password_hash(&self, username: &str, hash: Secret) -> Result<bool, StoreError>;
    /// Deletes a user and its links; false when there is no such user.
    async fn delete_user(&self, username: &str) -> Result<bool, StoreError>;
    /// The user linked to `(authenticator, uid)`.
    async fn linked_user(&self, authenticator: &str, uid: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Links `(authenticator, uid)` to a user (replacing an earlier link).
    async fn link_user(&self, authenticator: &str, uid: &str, user_id: i64) -> Result<(), StoreError>;
    /// Records a successful login and refreshes profile fields.
    async fn touch_login(&self, user_id: i64, profile: Profile) -> Result<(), StoreError>;
    /// The id of an organization, creating it when `create` (the bool:
    /// whether it was created now); `None` when missing and not created.
    async fn organization(&self, name: &str, create: bool) -> Result<Option<(i64, bool)>, StoreError>;
    /// The id of a team of an organization, as [`Store::organization`].
    async fn team(
        &self,
        organization_id: i64,
        name: &str,
        create: bool,
    ) -> Result<Option<(i64, bool)>, StoreError>;
    /// Every grant a user holds.
    async fn grants(&self, user_id: i64) -> Result<Vec<GrantRecord>, StoreError>;
    /// Grants a role (idempotent; records the granting authenticator).
    async fn grant(
        &self,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
        authenticator: &str,
    ) -> Result<bool, StoreError>;
    /// Revokes a role; false when the user did not hold it.
    async fn revoke(
        &self,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
    ) -> Result<bool, StoreError>;
    /// Sets superuser status.
    async fn set_superuser(&self, user_id: i64, value: bool) -> Result<(), StoreError>;
    /// Moves the link `(from, uid)` to `(to, uid)` with the grants `from`
    /// made; returns the user id when there was such a link.
    async fn move_link(&self, from: &str, to: &str, uid: &str) -> Result<Option<i64>, StoreError>;
    /// Stores a new static-object token (its SHA-256 digest only).
    async fn create_static_token(
        &self,
        user_id: i64,
        name: &str,
        digest: [u8; 32],
    ) -> Result<StaticToken, StoreError>;
    /// The token with this digest and its user.
    async fn static_token_user(
        &self,
        digest: [u8; 32],
    ) -> Result<Option<(StaticToken, UserRecord)>, StoreError>;
    /// A user's static-object tokens.
    async fn static_tokens(&self, user_id: i64) -> Result<Vec<StaticToken>, StoreError>;
    /// Revokes a token; false when there is no such active token.
    async fn revoke_static_token(&self, id: i64) -> Result<bool, StoreError>;
    /// The schema version, for `status`.
    async fn schema_version(&self) -> Result<u32, StoreError>;
}

/// A role a user holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    /// Organization id (none: a global role).
    pub organization_id: Option<i64>,
    /// Organization name.
    pub organization: Option<String>,
    /// Team id.
    pub team_id: Option<i64>,
    /// Team name.
    pub team: Option<String>,
    /// Role name.
    pub role: String,
    /// The authenticator whose maps granted it.
    pub authenticator: String,
}

/// A static-object token (the secret itself is never stored).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StaticToken {
    /// Id (for revocation).
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// A label.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Revoked tokens never verify.
    pub revoked: bool,
}

/// Profile fields an authenticator may refresh at login (`None` keeps).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// E-mail address.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
}

/// Opens the store a URL names.
pub fn open(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
    }
}
