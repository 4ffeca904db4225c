//! Turning an authenticator's [`Identity`] into a stored user.
//!
//! The link `(authenticator, uid) → user` is authoritative. A new identity
//! takes the user of the same username only when that user is the local
//! account of a `local` authenticator; otherwise a username already in use
//! yields a distinct, deterministic `<uid>-<hash>` username, so no
//! authenticator can silently take over another's account.

use gatehouse_sdk::Identity;

use crate::config::AuthenticatorSpec;
use crate::store::{NewUser, Profile, Store, StoreError, UserRecord};

/// Normalises a username the way the store keeps it.
pub fn normalize(identity: &Identity) -> String {
    let name = identity.username.trim();
    if identity.case_insensitive {
        name.to_lowercase()
    } else {
        name.to_owned()
    }
}

/// FNV-1a, 64 bits: a stable short hash for collision suffixes (not for
/// security).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The username given to an identity whose preferred name is taken.
pub fn collision_username(authenticator: &str, identity: &Identity) -> String {
    let mut key = authenticator.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(identity.uid.as_bytes());
    let uid = if identity.case_insensitive {
        identity.uid.to_lowercase()
    } else {
        identity.uid.clone()
    };
    format!("{}-{:08x}", uid, fnv1a(&key) & 0xffff_ffff)
}

/// Finds or creates the user for an identity and records the login.
pub async fn resolve_user(
    store: &dyn Store,
    spec: &AuthenticatorSpec,
    identity: &Identity,
) -> Result<UserRecord, StoreError> {
    let uid = if identity.case_insensitive {
        identity.uid.to_lowercase()
    } else {
        identity.uid.clone()
    };
    let profile = Profile {
        email: identity.email.clone(),
        first_name: identity.first_name.clone(),
        last_name: identity.last_name.clone(),
    };
    if let Some(user) = store.linked_user(&spec.name, &uid).await? {
        store.touch_login(user.id, profile).await?;
        return Ok(user);
    }
    let username = normalize(identity);
    let existing = store.user_by_username(&username).await?;
    let user = match existing {
        // The local authenticator vouches for the store's own account.
        Some(user) if spec.kind == "local" => user,
        Some(_) => {
            let alt = collision_username(&spec.name, identity);
            match store.user_by_username(&alt).await? {
                Some(u) => u,
                None => create(store, alt, identity).await?,
            }
        }
        None => create(store, username, identity).await?,
    };
    store.link_user(&spec.name, &uid, user.id).await?;
    store.touch_login(user.id, profile).await?;
    Ok(user)
}

async fn create(store: &dyn Store, username: String, identity: &Identity) -> Result<UserRecord, StoreError> {
    store
        .create_user(NewUser {
            username,
            email: identity.email.clone(),
            first_name: identity.first_name.clone(),
            last_name: identity.last_name.clone(),
            is_superuser: false,
            password_hash: None,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collision_names_are_deterministic_and_distinct() {
        let a = Identity::new("jdoe", "jdoe");
        assert_eq!(collision_username("LDAP", &a), collision_username("LDAP", &a));
        assert_ne!(collision_username("LDAP", &a), collision_username("SAML", &a));
        assert!(collision_username("LDAP", &a).starts_with("jdoe-"));
    }
}
