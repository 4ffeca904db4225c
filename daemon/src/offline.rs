//! Offline login (SSSD's `cache_credentials`): after an authenticator with
//! `offline_max_age` accepts a password online, the daemon keeps a salted
//! Argon2id verifier of it in the store. When every backend is unreachable
//! (never when one says no), a login within `offline_max_age` of that
//! online success is checked against the verifier instead; its answer and
//! its audit line say `offline`.
//!
//! A verifier goes with its user, is replaced by every online success, and
//! is dropped when the authenticator refuses the very password it holds
//! online (the password was changed or revoked at the backend).

use std::time::Duration;

use gatehouse_sdk::Secret;

use crate::authn::local::{PasswordPolicy, normalize_username};
use crate::password::Verdict;
use crate::runtime::AuthenticatorEntry;
use crate::store::{OfflineVerifier, Store, StoreError, UserRecord};

/// What an offline attempt found.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing is kept for this user at this authenticator (or offline
    /// login is off for it).
    NotKept,
    /// The last online success is older than `offline_max_age`.
    Expired,
    /// The password matches: the user it reached online.
    Accepted {
        /// The user.
        user: UserRecord,
        /// The user's uid at the authenticator.
        uid: String,
    },
    /// The password does not match.
    Rejected,
}

/// The parts of a generation offline login uses.
pub struct Offline<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The daemon's Argon2id parameters.
    pub passwords: &'a PasswordPolicy,
    /// The daemon's limit on concurrent hashing.
    pub hashing: &'a tokio::sync::Semaphore,
}

impl Offline<'_> {
    /// After `entry` accepted `password` online for `username` (reaching
    /// `user_id`, whose uid there is `uid`): keeps a fresh verifier.
    pub async fn remember(
        &self,
        entry: &AuthenticatorEntry,
        username: &str,
        uid: &str,
        user_id: i64,
        password: &Secret,
        now: i64,
    ) -> Result<(), String> {
        if entry.spec.offline_max_age.is_none() {
            return Ok(());
        }
        let verifier = self.passwords.hash(password.clone(), self.hashing).await?;
        let row = OfflineVerifier {
            user_id,
            uid: uid.to_owned(),
            verifier,
            verified_at: now,
        };
        self.store
            .put_offline_verifier(&entry.spec.name, &normalize_username(username), &row)
            .await
            .map_err(|e| e.to_string())
    }

    /// Checks `password` against what `entry` last accepted online for
    /// `username`.
    pub async fn attempt(
        &self,
        entry: &AuthenticatorEntry,
        username: &str,
        password: &Secret,
        now: i64,
    ) -> Result<Outcome, StoreError> {
        let Some(max_age) = entry.spec.offline_max_age else {
            return Ok(Outcome::NotKept);
        };
        let Some(kept) = self
            .store
            .offline_verifier(&entry.spec.name, &normalize_username(username))
            .await?
        else {
            return Ok(Outcome::NotKept);
        };
        if !within(kept.verified_at, max_age, now) {
            return Ok(Outcome::Expired);
        }
        let verdict = self
            .passwords
            .verify(password.clone(), Some(kept.verifier.clone()), self.hashing)
            .await
            .map_err(StoreError::Backend)?;
        if verdict == Verdict::Reject {
            return Ok(Outcome::Rejected);
        }
        // the user must still be the one the authenticator's uid links to
        match self.store.linked_user(&entry.spec.name, &kept.uid).await? {
            Some(user) if user.id == kept.user_id => Ok(Outcome::Accepted { user, uid: kept.uid }),
            _ => Ok(Outcome::NotKept),
        }
    }

    /// After `entry` refused `password` online for `username`: when it is
    /// the password the verifier holds, the backend no longer takes it, so
    /// neither does offline login.
    pub async fn forget_if_refused(
        &self,
        entry: &AuthenticatorEntry,
        username: &str,
        password: &Secret,
    ) -> Result<bool, String> {
        if entry.spec.offline_max_age.is_none() {
            return Ok(false);
        }
        let key = normalize_username(username);
        let kept = self
            .store
            .offline_verifier(&entry.spec.name, &key)
            .await
            .map_err(|e| e.to_string())?;
        let Some(kept) = kept else {
            return Ok(false);
        };
        let verdict = self
            .passwords
            .verify(password.clone(), Some(kept.verifier), self.hashing)
            .await?;
        if verdict == Verdict::Reject {
            return Ok(false);
        }
        self.store
            .delete_offline_verifier(&entry.spec.name, &key)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Whether an online success at `verified_at` is at most `max_age` before
/// `now` (a clock that went back counts as "just now", never as older).
fn within(verified_at: i64, max_age: Duration, now: i64) -> bool {
    let age = now.saturating_sub(verified_at).max(0);
    u64::try_from(age).is_ok_and(|a| a <= max_age.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_is_counted_from_the_last_online_success() {
        let day = Duration::from_secs(86_400);
        assert!(within(1_000, day, 1_000));
        assert!(within(1_000, day, 1_000 + 86_400));
        assert!(!within(1_000, day, 1_000 + 86_401));
        // a clock set back is not a reason to refuse, nor to extend
        assert!(within(5_000, day, 1_000));
        assert!(!within(i64::MIN, day, i64::MAX));
    }
}
