//! Password hashing with Argon2id: hashing, constant-time verification,
//! rehash detection and the dummy hash that makes unknown users cost the
//! same as wrong passwords.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use gatehouse_sdk::Secret;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashParams {
    /// The OWASP-recommended minimum for Argon2id (19 MiB, 2 passes, 1 lane).
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl HashParams {
    fn params(self) -> Result<Params, String> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None).map_err(|e| e.to_string())
    }

    /// Checks the parameters are usable.
    pub fn validate(self) -> Result<(), String> {
        self.params().map(|_| ())
    }
}

/// The result of checking a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Wrong password, unknown user, or an unusable stored hash.
    Reject,
    /// Right password; the stored hash uses the current parameters.
    Accept,
    /// Right password; the stored hash should be replaced (other parameters
    /// or algorithm).
    AcceptRehash,
}

/// Hashes and verifies passwords with one set of parameters.
#[derive(Clone, Debug)]
pub struct Hasher {
    params: HashParams,
    argon: Argon2<'static>,
    dummy: Arc<OnceLock<String>>,
}

impl Hasher {
    /// A hasher with `params`.
    pub fn new(params: HashParams) -> Result<Self, String> {
        let p = params.params()?;
        Ok(Self {
            params,
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, p),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    /// The parameters.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes a password with a fresh random salt. CPU-heavy: call from a
    /// blocking thread.
    pub fn hash(&self, password: &Secret) -> Result<Secret, String> {
        self.argon
            .hash_password(password.expose().as_bytes())
            .map(|h| Secret::new(h.to_string()))
            .map_err(|e| format!("hashing failed: {e}"))
    }

    /// Checks `password` against `stored`; with no stored hash (unknown user)
    /// it checks against a dummy hash of the same cost and rejects, so the
    /// answer takes the same time. CPU-heavy: call from a blocking thread.
    pub fn verify(&self, password: &Secret, stored: Option<&Secret>) -> Verdict {
        let dummy;
        let (hash_text, real) = match stored {
            Some(h) => (h.expose(), true),
            None => {
                dummy = self.dummy_hash();
                (dummy, false)
            }
        };
        let Ok(parsed) = PasswordHash::new(hash_text) else {
            // Unparseable stored hash: still spend the time, then reject.
            let _ = self
                .argon
                .verify_password(password.expose().as_bytes(), self.dummy_hash());
            return Verdict::Reject;
        };
        let ok = self
            .argon
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        if !(ok && real) {
            return Verdict::Reject;
        }
        let current = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == self.params.memory_kib
                    && p.t_cost() == self.params.iterations
                    && p.p_cost() == self.params.parallelism
            });
        if current {
            Verdict::Accept
        } else {
            Verdict::AcceptRehash
        }
    }

    /// Computes the dummy hash now, so the first unknown-user login costs
    /// what every later one does (a prober timing logins right after a
    /// start or reload learns nothing). Called when an authenticator is
    /// built, before its generation serves. CPU-heavy.
    pub fn prepare(&self) {
        let _ = self.dummy_hash();
    }

    /// Whether [`Hasher::prepare`] (or a first use) computed the dummy hash.
    pub fn is_prepared(&self) -> bool {
        self.dummy.get().is_some()
    }

    fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            self.hash(&Secret::new("gatehouse-dummy-password"))
                .map(|s| s.expose().to_owned())
                .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashParams {
        HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn hash_verify_and_rehash() {
        let h = Hasher::new(cheap()).unwrap();
        let pw = Secret::new("correct horse");
        let stored = h.hash(&pw).unwrap();
        assert!(stored.expose().starts_with("$argon2id$"));
        assert_eq!(h.verify(&pw, Some(&stored)), Verdict::Accept);
        assert_eq!(h.verify(&Secret::new("wrong"), Some(&stored)), Verdict::Reject);
        assert_eq!(h.verify(&pw, None), Verdict::Reject);
        assert_eq!(h.verify(&pw, Some(&Secret::new("garbage"))), Verdict::Reject);

        let stronger = Hasher::new(HashParams {
            memory_kib: 128,
            ..cheap()
        })
        .unwrap();
        assert_eq!(stronger.verify(&pw, Some(&stored)), Verdict::AcceptRehash);
    }

    #[test]
    fn invalid_params_are_refused() {
        assert!(
            HashParams {
                memory_kib: 1,
                iterations: 1,
                parallelism: 1
            }
            .validate()
            .is_err()
        );
        assert!(
            HashParams {
                memory_kib: 64,
                iterations: 0,
                parallelism: 1
            }
            .validate()
            .is_err()
        );
    }
}
