//! The store: users and their links to authenticators, behind one trait.
//!
//! SQLite ([`SqliteStore`]) is the default; [`PostgresStore`] lets many
//! hosts share one identity. No backend's types leak, every call is async,
//! ids are opaque strings on the wire. `suite.rs` runs one test suite
//! against both.

pub mod copy;
mod postgres;
mod sqlite;
#[cfg(test)]
mod suite;

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_sdk::Secret;

pub use postgres::{PostgresSettings, PostgresStore, redacted_url};
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
    /// Something the request names does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database failed.
    #[error("store error: {0}")]
    Backend(String),
}

/// The persistent state of the daemon.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes a consistent copy of the whole store to the new file `to`
    /// while the daemon keeps serving (`gatehouse store backup`).
    async fn backup(&self, to: &std::path::Path) -> Result<(), StoreError> {
        let _ = to;
        Err(StoreError::Backend(
            "this store has no backup; use its own tools".into(),
        ))
    }
    /// Creates a user.
    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError>;
    /// Looks a user up by normalised username.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Every user, by username.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Replaces a user's password hash; false when there is no such user.
    async fn set_password_hash(&self, username: &str, hash: Secret) -> Result<bool, StoreError>;
    /// Deletes a user and its links; false when there is no such user.
    async fn delete_user(&self, username: &str) -> Result<bool, StoreError>;
    /// The user linked to `(authenticator, uid)`.
    async fn linked_user(&self, authenticator: &str, uid: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Every grant a user holds.
    async fn grants(&self, user_id: i64) -> Result<Vec<GrantRecord>, StoreError>;
    /// Looks a user up by store id (the host's name service asks by uid).
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError>;
    /// Every organization and team with its members, for the host's name
    /// service (`crate::nss`).
    async fn host_groups(&self) -> Result<HostGroups, StoreError>;
    /// One organization or team with its members, for the host's name
    /// service's lookups by name or id.
    async fn host_group(&self, key: HostGroupKey) -> Result<Option<HostGroup>, StoreError>;
    /// Runs `work` in one transaction: every write it makes is committed
    /// together, or none is (an error from `work` rolls back). Transactions
    /// are serialised against each other, so two concurrent first logins
    /// of one new user make one user. `work` may be run again when the
    /// backend reports a serialisation conflict; it must not have effects
    /// outside the transaction.
    async fn transaction(&self, work: TransactionWork) -> Result<(), StoreError>;
    /// Stores a pending login (a challenge or a redirect flow's state),
    /// unless [`MAX_PENDING`] live ones exist (`Ok(false)`).
    async fn put_pending(&self, pending: PendingLogin) -> Result<bool, StoreError>;
    /// Takes a pending login: single use, before its expiry, and (when it
    /// is bound to a peer) by that peer only; an attempt by another peer
    /// consumes nothing and reads as unknown.
    async fn take_pending(
        &self,
        kind: PendingKind,
        id: &str,
        peer_uid: u32,
        now: i64,
    ) -> Result<Taken, StoreError>;
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
    /// Creates or moves a namespace (`parent` must exist and must not
    /// descend from it).
    async fn put_namespace(&self, name: &str, parent: Option<&str>) -> Result<(), StoreError>;

    /// Deletes a namespace and its purchases (children lose their parent).
    async fn delete_namespace(&self, name: &str) -> Result<bool, StoreError>;

    /// Records that `add_on` was bought, with `seats` seats, for a
    /// namespace (which must exist) or, with `None`, the whole instance.
    async fn put_purchase(&self, namespace: Option<&str>, add_on: &str, seats: u32)
    -> Result<(), StoreError>;

    /// Removes a purchase; true when there was one.
    async fn delete_purchase(&self, namespace: Option<&str>, add_on: &str) -> Result<bool, StoreError>;

    /// Assigns (or, with `assigned = false`, takes back) a seat of
    /// `add_on`; true when something changed.
    async fn set_seat(&self, user_id: i64, add_on: &str, assigned: bool) -> Result<bool, StoreError>;

    /// What the issuer needs to decide: the user's seats, and the add-ons
    /// bought for the namespace and its ancestors (`None`: the instance's).
    /// `None` when the namespace is unknown.
    async fn entitlement_facts(
        &self,
        user_id: Option<i64>,
        namespace: Option<&str>,
    ) -> Result<Option<Facts>, StoreError>;

    /// Every namespace, purchase and seat.
    async fn list_entitlements(&self) -> Result<Entitlements, StoreError>;

    /// The schema version, for `status`.
    async fn schema_version(&self) -> Result<u32, StoreError>;

    /// Claims `key` within `scope` until `expires_at` (Unix seconds). True when this is the
    /// first live claim; false when an unexpired claim exists (a replay). Expired claims may be
    /// swept by any call.
    async fn claim_once(&self, scope: &str, key: &str, expires_at: i64) -> Result<bool, StoreError>;

    /// Records one failed login at `at_ms` (Unix milliseconds) under each
    /// lockout counter key, keeping at most its cap of the newest failures
    /// and none older than `since_ms` (see [`crate::lockout`]).
    async fn lockout_record(&self, keys: &[LockoutKey], at_ms: i64, since_ms: i64) -> Result<(), StoreError>;

    /// The failure times (Unix milliseconds, oldest first) of each key at or
    /// after `since_ms`, in the order of `keys`.
    async fn lockout_failures(&self, keys: &[LockoutKey], since_ms: i64)
    -> Result<Vec<Vec<i64>>, StoreError>;

    /// Forgets every failure of one key.
    async fn lockout_clear(&self, key: &[u8]) -> Result<(), StoreError>;

    /// Every key with failures at or after `since_ms`: its label and its
    /// failure times (oldest first), for `GET /v1/lockout`.
    async fn lockout_list(&self, since_ms: i64) -> Result<Vec<LockoutRow>, StoreError>;

    /// The named document (state read and replaced whole, such as the
    /// issuer's keyring), with its version; `None` when it was never put.
    async fn document(&self, name: &str) -> Result<Option<Document>, StoreError>;

    /// Replaces the named document when its version is still `expected`
    /// (`None`: when there is none yet), making the version one higher.
    /// False when another writer (another host) got there first: read it
    /// again and redo the change.
    async fn put_document(
        &self,
        name: &str,
        expected: Option<i64>,
        value: &Secret,
    ) -> Result<bool, StoreError>;

    /// The offline-login verifier kept for `username` (normalised) at
    /// `authenticator`, if any.
    async fn offline_verifier(
        &self,
        authenticator: &str,
        username: &str,
    ) -> Result<Option<OfflineVerifier>, StoreError>;

    /// Keeps (or replaces) the offline-login verifier of `username` at
    /// `authenticator`.
    async fn put_offline_verifier(
        &self,
        authenticator: &str,
        username: &str,
        verifier: &OfflineVerifier,
    ) -> Result<(), StoreError>;

    /// Forgets the offline-login verifier of `username` at `authenticator`;
    /// true when there was one.
    async fn delete_offline_verifier(&self, authenticator: &str, username: &str) -> Result<bool, StoreError>;
}

/// What offline login keeps of a password an authenticator accepted
/// online (see [`crate::offline`]). Deleted with its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineVerifier {
    /// The user the login reached.
    pub user_id: i64,
    /// The user's uid at the authenticator.
    pub uid: String,
    /// A salted Argon2id hash of the password (PHC string).
    pub verifier: Secret,
    /// When the authenticator last accepted this password (Unix seconds).
    pub verified_at: i64,
}

/// A named document and its version (see [`Store::document`]). The value
/// may hold keys, so it is a [`Secret`] and never printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The content.
    pub value: Secret,
    /// Bumped by every [`Store::put_document`].
    pub version: i64,
}

/// One live lockout counter as the store lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockoutRow {
    /// The counter's key.
    pub key: Vec<u8>,
    /// What it stands for (see [`LockoutKey::label`]).
    pub label: String,
    /// Failure times, Unix milliseconds, oldest first.
    pub times: Vec<i64>,
}

/// Groups `(key, label, at_ms)` rows sorted by key then time.
pub(crate) fn group_lockout_rows(rows: impl IntoIterator<Item = (Vec<u8>, String, i64)>) -> Vec<LockoutRow> {
    let mut out: Vec<LockoutRow> = Vec::new();
    for (key, label, at) in rows {
        match out.last_mut() {
            Some(last) if last.key == key => last.times.push(at),
            _ => out.push(LockoutRow {
                key,
                label,
                times: vec![at],
            }),
        }
    }
    out
}

/// One lockout counter: an opaque digest key and the most failures kept
/// for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockoutKey {
    /// The counter's key (a digest: never a username in clear).
    pub key: Vec<u8>,
    /// The most failures kept for it.
    pub cap: u32,
    /// What the key stands for, for operators (`gatehouse lockout list`):
    /// the username or address as logged (cut, control characters
    /// escaped), or the peer uid.
    pub label: String,
}

/// The work of one transaction (see [`Store::transaction`]).
pub type TransactionWork = Arc<dyn Fn(&mut dyn Transaction) -> Result<(), StoreError> + Send + Sync>;

impl dyn Store {
    /// Runs `work` in one transaction and returns what it returned (see
    /// [`Store::transaction`]).
    pub async fn atomically<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut dyn Transaction) -> Result<T, StoreError> + Send + Sync + 'static,
    {
        let out = Arc::new(std::sync::Mutex::new(None));
        let slot = Arc::clone(&out);
        self.transaction(Arc::new(move |tx| {
            let value = work(tx)?;
            if let Ok(mut s) = slot.lock() {
                *s = Some(value);
            }
            Ok(())
        }))
        .await?;
        let value = out.lock().ok().and_then(|mut s| s.take());
        value.ok_or_else(|| StoreError::Backend("the transaction produced no result".into()))
    }
}

/// The reads and writes available inside [`Store::transaction`]. They run
/// synchronously on the transaction's connection; each backend implements
/// them with its own SQL.
pub trait Transaction {
    /// The user linked to `(authenticator, uid)`.
    fn linked_user(&mut self, authenticator: &str, uid: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Looks a user up by id.
    fn user_by_id(&mut self, id: i64) -> Result<Option<UserRecord>, StoreError>;
    /// Looks a user up by normalised username.
    fn user_by_username(&mut self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Creates a user.
    fn create_user(&mut self, user: &NewUser) -> Result<UserRecord, StoreError>;
    /// Links `(authenticator, uid)` to a user (replacing an earlier link).
    fn link_user(&mut self, authenticator: &str, uid: &str, user_id: i64) -> Result<(), StoreError>;
    /// Moves the link `(from, uid)` to `(to, uid)` with the grants `from`
    /// made; returns the user id when there was such a link.
    fn move_link(&mut self, from: &str, to: &str, uid: &str) -> Result<Option<i64>, StoreError>;
    /// Records a successful login and refreshes profile fields.
    fn touch_login(&mut self, user_id: i64, profile: &Profile) -> Result<(), StoreError>;
    /// The id of an organization, creating it when `create` (the bool:
    /// whether this call created it); `None` when missing and not created.
    fn organization(&mut self, name: &str, create: bool) -> Result<Option<(i64, bool)>, StoreError>;
    /// The id of a team of an organization, as [`Transaction::organization`].
    fn team(
        &mut self,
        organization_id: i64,
        name: &str,
        create: bool,
    ) -> Result<Option<(i64, bool)>, StoreError>;
    /// Every grant a user holds.
    fn grants(&mut self, user_id: i64) -> Result<Vec<GrantRecord>, StoreError>;
    /// Grants a role, recording the granting authenticator; true when the
    /// user did not hold the role before.
    fn grant(
        &mut self,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
        authenticator: &str,
    ) -> Result<bool, StoreError>;
    /// Revokes a role; false when the user did not hold it.
    fn revoke(
        &mut self,
        user_id: i64,
        organization_id: Option<i64>,
        team_id: Option<i64>,
        role: &str,
    ) -> Result<bool, StoreError>;
    /// Sets superuser status.
    fn set_superuser(&mut self, user_id: i64, value: bool) -> Result<(), StoreError>;
    /// Forgets every failure counted under a lockout key (see
    /// [`Store::lockout_clear`]): a successful login resets its counter in
    /// the transaction that records it.
    fn lockout_clear(&mut self, key: &[u8]) -> Result<(), StoreError>;
}

/// The most live pending logins kept; more are refused.
pub const MAX_PENDING: usize = 10_000;

/// What a pending login waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingKind {
    /// The answer to a challenge (`/v1/login/continue`).
    Challenge,
    /// The identity provider's callback (`/v1/login/finish`).
    Redirect,
}

impl PendingKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Challenge => "challenge",
            Self::Redirect => "redirect",
        }
    }
}

/// A login waiting for its next step. The id is a random bearer value; the
/// store keeps only its SHA-256 digest.
#[derive(Clone, Debug)]
pub struct PendingLogin {
    /// What it waits for.
    pub kind: PendingKind,
    /// The random id (login id or redirect `state`).
    pub id: String,
    /// The authenticator it belongs to.
    pub authenticator: String,
    /// The username as given (password logins).
    pub username: Option<String>,
    /// The peer uid that may take it (none: any peer).
    pub peer_uid: Option<u32>,
    /// The plugin's state (challenge state or redirect flow state).
    pub state: serde_json::Value,
    /// The callback URL a redirect start used.
    pub callback_url: Option<String>,
    /// Where the application wants the browser to end up.
    pub return_to: Option<String>,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

/// The answer of [`Store::take_pending`].
#[derive(Clone, Debug)]
pub enum Taken {
    /// Found, live, and now used up.
    Found(Box<PendingLogin>),
    /// No such id (or bound to another peer).
    Unknown,
    /// Past its expiry.
    Expired,
    /// Already used.
    Replayed,
}

impl Taken {
    /// Why nothing was taken, as logged and explained.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Found(_) => "found",
            Self::Unknown => "unknown_state",
            Self::Expired => "expired_state",
            Self::Replayed => "replayed_state",
        }
    }
}

/// The SHA-256 digest of a pending login id, hex (what the store keeps).
pub fn pending_digest(id: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
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

/// Organizations, teams and who holds a grant on each (see
/// [`Store::host_groups`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostGroups {
    /// `(id, name)` of every organization.
    pub organizations: Vec<(i64, String)>,
    /// `(id, organization name, team name)` of every team.
    pub teams: Vec<(i64, String, String)>,
    /// `(user id, username, organization id, team id)` of every distinct
    /// grant on an organization (team id `None`) or a team.
    pub members: Vec<(i64, String, i64, Option<i64>)>,
}

/// Which organization or team [`Store::host_group`] looks up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostGroupKey {
    /// An organization by id.
    OrganizationId(i64),
    /// A team by id.
    TeamId(i64),
    /// An organization by name.
    Organization(String),
    /// A team by organization name and team name.
    Team(String, String),
}

/// An organization (`team: None`) or a team, with the users holding a
/// grant on it (any role; for an organization, a grant on the
/// organization itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostGroup {
    /// The organization's or the team's id.
    pub id: i64,
    /// The organization's name (the team's organization).
    pub organization: String,
    /// The team's name.
    pub team: Option<String>,
    /// `(user id, username)` of each member, by id.
    pub members: Vec<(i64, String)>,
}

/// A static-object token (the secret itself is never stored).
pub use crate::issuer::entitlements::Facts;

/// Every entitlement the store holds (for `GET /v1/entitlements`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Entitlements {
    /// Namespaces with their parents.
    pub namespaces: Vec<(String, Option<String>)>,
    /// Purchases: namespace (`None`: the instance), add-on, seats.
    pub purchases: Vec<(Option<String>, String, u32)>,
    /// Seats: username, add-on.
    pub seats: Vec<(String, String)>,
}

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

/// Opens the store a URL names (creating and migrating it as needed).
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreUrl::Postgres(settings) => {
            let settings = settings.clone();
            let store = tokio::task::spawn_blocking(move || PostgresStore::open(&settings))
                .await
                .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))??;
            Ok(Arc::new(store))
        }
    }
}
