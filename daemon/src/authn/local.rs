//! The `local` authenticator: users and Argon2id password hashes in the
//! daemon's own store.

use std::sync::Arc;

use gatehouse_sdk::{
    Authenticator, Context, Identity, LoginStep, PasswordLogin, PluginConfig, PluginError, Secret,
    async_trait,
};
use serde::Deserialize;

use crate::password::{HashParams, Hasher, Verdict};
use crate::registry::Resources;
use crate::store::Store;

/// `[authenticators.settings]` of `type = "local"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Shortest password accepted when one is set.
    #[serde(default = "default_min_length")]
    pub min_password_length: usize,
    /// Argon2id memory cost in KiB.
    #[serde(default = "default_memory")]
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    #[serde(default = "default_iterations")]
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    #[serde(default = "default_parallelism")]
    pub argon2_parallelism: u32,
}

fn default_min_length() -> usize {
    8
}
fn default_memory() -> u32 {
    HashParams::default().memory_kib
}
fn default_iterations() -> u32 {
    HashParams::default().iterations
}
fn default_parallelism() -> u32 {
    HashParams::default().parallelism
}

impl Default for LocalSettings {
    fn default() -> Self {
        Self {
            min_password_length: default_min_length(),
            argon2_memory_kib: default_memory(),
            argon2_iterations: default_iterations(),
            argon2_parallelism: default_parallelism(),
        }
    }
}

impl LocalSettings {
    /// The hashing parameters.
    pub fn hash_params(&self) -> HashParams {
        HashParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), PluginError> {
        self.hash_params()
            .validate()
            .map_err(|e| PluginError::Misconfigured(format!("argon2 parameters: {e}")))?;
        if self.argon2_memory_kib > 4 * 1024 * 1024 {
            return Err(PluginError::Misconfigured(
                "argon2_memory_kib: at most 4194304 (4 GiB)".into(),
            ));
        }
        if !(1..=1024).contains(&self.min_password_length) {
            return Err(PluginError::Misconfigured(
                "min_password_length: between 1 and 1024".into(),
            ));
        }
        Ok(())
    }
}

/// Password rules and hashing shared by the local authenticator and the
/// user-admin endpoints.
#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    /// The hasher.
    pub hasher: Hasher,
    /// Shortest password accepted.
    pub min_length: usize,
}

impl PasswordPolicy {
    /// The policy of some settings.
    pub fn new(settings: &LocalSettings) -> Result<Self, PluginError> {
        settings.validate()?;
        Ok(Self {
            hasher: Hasher::new(settings.hash_params()).map_err(PluginError::Misconfigured)?,
            min_length: settings.min_password_length,
        })
    }

    /// Checks a new password against the rules.
    pub fn check_new(&self, password: &Secret) -> Result<(), String> {
        let n = password.expose().chars().count();
        if n < self.min_length {
            return Err(format!(
                "password must have at least {} characters",
                self.min_length
            ));
        }
        if n > 4096 {
            return Err("password must have at most 4096 characters".into());
        }
        Ok(())
    }

    /// Hashes on a blocking thread, under the daemon's hashing limit.
    pub async fn hash(&self, password: Secret, limit: &tokio::sync::Semaphore) -> Result<Secret, String> {
        let _permit = limit.acquire().await.map_err(|_| "shutting down".to_owned())?;
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(|e| format!("hashing task failed: {e}"))?
    }

    /// Verifies on a blocking thread, under the daemon's hashing limit.
    pub async fn verify(
        &self,
        password: Secret,
        stored: Option<Secret>,
        limit: &tokio::sync::Semaphore,
    ) -> Result<Verdict, String> {
        let _permit = limit.acquire().await.map_err(|_| "shutting down".to_owned())?;
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || hasher.verify(&password, stored.as_ref()))
            .await
            .map_err(|e| format!("hashing task failed: {e}"))
    }
}

/// Normalises a local username the PRECIS way (`UsernameCaseMapped`:
/// trimmed, width-mapped, lowercased, NFC), without refusing anything; see
/// [`check_username`].
pub fn normalize_username(name: &str) -> String {
    super::username::map_case_mapped(name)
}

/// Checks a (normalised) username for user creation.
pub fn check_username(name: &str) -> Result<(), String> {
    super::username::check(name).map_err(|e| e.to_string())?;
    if name.chars().count() > 150 {
        return Err("username must have at most 150 characters".into());
    }
    if name.contains([' ', '/']) {
        return Err("username must not contain spaces or '/'".into());
    }
    Ok(())
}

struct Local {
    store: Arc<dyn Store>,
    policy: PasswordPolicy,
    hashing: Arc<tokio::sync::Semaphore>,
}

/// Builds a `local` authenticator.
pub fn build(config: PluginConfig, resources: &Resources) -> Result<Arc<dyn Authenticator>, PluginError> {
    Ok(Arc::new(Local::new(&config, resources)?))
}

impl Local {
    fn new(config: &PluginConfig, resources: &Resources) -> Result<Self, PluginError> {
        let settings: LocalSettings = config.parse()?;
        let policy = PasswordPolicy::new(&settings)?;
        // Before the generation is published: no first-login timing tell.
        policy.hasher.prepare();
        Ok(Self {
            store: Arc::clone(&resources.store),
            policy,
            hashing: Arc::clone(&resources.hashing),
        })
    }
}

#[async_trait]
impl Authenticator for Local {
    async fn login(&self, ctx: &Context, request: PasswordLogin) -> Result<LoginStep, PluginError> {
        if request.password.is_empty() || request.password.len() > 4096 * 4 {
            return Err(PluginError::InvalidCredentials);
        }
        // A name the rules refuse cannot be an account (none is created
        // with one); refusing it costs no hash, but tells nothing about
        // which accounts exist either.
        let username =
            super::username::case_mapped(&request.username).map_err(|_| PluginError::InvalidCredentials)?;
        let mut user = self
            .store
            .user_by_username(&username)
            .await
            .map_err(|e| PluginError::Unavailable(e.to_string()))?;
        // Accounts created before the PRECIS rules were stored merely
        // trimmed and lowercased; reach them by that form too.
        let legacy = request.username.trim().to_lowercase();
        if user.is_none() && legacy != username {
            user = self
                .store
                .user_by_username(&legacy)
                .await
                .map_err(|e| PluginError::Unavailable(e.to_string()))?;
        }
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        // Unknown users and users without a password go through a dummy
        // verification of the same cost, so timing does not tell them apart.
        let verdict = self
            .policy
            .verify(request.password.clone(), stored, &self.hashing)
            .await
            .map_err(PluginError::Internal)?;
        let user = match (verdict, user) {
            (Verdict::Reject, _) | (_, None) => return Err(PluginError::InvalidCredentials),
            (_, Some(user)) => user,
        };
        if verdict == Verdict::AcceptRehash {
            match self.policy.hash(request.password, &self.hashing).await {
                Ok(h) => {
                    if let Err(e) = self.store.set_password_hash(&user.username, h).await {
                        ctx.warn(&format!(
                            "could not store rehashed password of {}: {e}",
                            user.username
                        ));
                    } else {
                        ctx.info(&format!(
                            "rehashed password of {} with current parameters",
                            user.username
                        ));
                    }
                }
                Err(e) => ctx.warn(&format!("rehash failed: {e}")),
            }
        }
        let mut identity = Identity::new(user.username.clone(), user.username.clone()).case_insensitive(true);
        identity.email = user.email;
        identity.first_name = user.first_name;
        identity.last_name = user.last_name;
        Ok(LoginStep::Authenticated(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_ready_before_the_first_login() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::SqliteStore::open(&dir.path().join("g.db")).expect("store");
        let resources = Resources {
            store: Arc::new(store),
            hashing: Arc::new(tokio::sync::Semaphore::new(1)),
        };
        let config = PluginConfig::new(
            "Local",
            serde_json::json!({"argon2_memory_kib": 64, "argon2_iterations": 1}),
        );
        let local = Local::new(&config, &resources).expect("build");
        assert!(local.policy.hasher.is_prepared());
    }
}
