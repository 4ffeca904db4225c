//! Connections: servers tried in order (a server that fails is skipped for
//! a while), TLS (ldaps:// or StartTLS) with an optional CA file, and a
//! small pool of connections bound as the service account.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_sdk::PluginError;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::settings::Settings;

/// How long a server that failed is skipped.
const DOWN_FOR: Duration = Duration::from_secs(30);

/// LDAP result code for invalid credentials.
pub(crate) const INVALID_CREDENTIALS: u32 = 49;

/// Servers, TLS and the service pool of one authenticator instance.
pub(crate) struct Connector {
    servers: Vec<String>,
    down_until: Mutex<Vec<Option<Instant>>>,
    tls: Option<Arc<ClientConfig>>,
    start_tls: bool,
    timeout: Duration,
    pool: Mutex<Vec<Ldap>>,
    /// Connections used to check user passwords: a bind replaces the
    /// connection's identity, so one connection serves many logins.
    bind_pool: Mutex<Vec<Ldap>>,
    pool_size: usize,
}

/// Builds the TLS client configuration: the system roots plus, with a
/// `ca_file`, that file's certificates (added, never instead: the same
/// meaning `ca_file` has everywhere in gatehouse).
fn tls_config(ca_file: Option<&str>) -> Result<Option<Arc<ClientConfig>>, PluginError> {
    let Some(path) = ca_file else {
        return Ok(None); // ldap3 uses the system roots
    };
    let roots = root_store(path)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PluginError::Misconfigured(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// The system's roots (as ldap3 itself loads them: `SSL_CERT_FILE`,
/// `SSL_CERT_DIR` or the platform store) and the CA file's certificates.
fn root_store(path: &str) -> Result<rustls::RootCertStore, PluginError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| PluginError::Misconfigured(format!("ca_file: cannot read {path}: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| PluginError::Misconfigured(format!("ca_file: {path}: {e}")))?;
    if certs.is_empty() {
        return Err(PluginError::Misconfigured(format!(
            "ca_file: {path} holds no certificate"
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    // Unparsable system certificates are skipped, as ldap3 does.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for c in certs {
        roots
            .add(c)
            .map_err(|e| PluginError::Misconfigured(format!("ca_file: {path}: {e}")))?;
    }
    Ok(roots)
}

impl Connector {
    pub(crate) fn new(s: &Settings) -> Result<Self, PluginError> {
        Ok(Self {
            servers: s.servers.clone(),
            down_until: Mutex::new(vec![None; s.servers.len()]),
            tls: tls_config(s.ca_file.as_deref())?,
            start_tls: s.start_tls,
            timeout: s.timeout,
            pool: Mutex::new(Vec::new()),
            bind_pool: Mutex::new(Vec::new()),
            pool_size: s.pool_size,
        })
    }

    /// A new connection to the first server that answers.
    pub(crate) async fn connect(&self) -> Result<Ldap, PluginError> {
        let now = Instant::now();
        let order: Vec<usize> = {
            let down = self
                .down_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (up, skipped): (Vec<usize>, Vec<usize>) =
                (0..self.servers.len()).partition(|i| down[*i].is_none_or(|t| t <= now));
            // When every server is marked down, try them anyway.
            if up.is_empty() { skipped } else { up }
        };
        let mut errors = Vec::new();
        for i in order {
            let uri = &self.servers[i];
            let mut settings = LdapConnSettings::new()
                .set_conn_timeout(self.timeout)
                .set_starttls(self.start_tls && uri.starts_with("ldap://"));
            if let Some(tls) = &self.tls {
                settings = settings.set_config(Arc::clone(tls));
            }
            match LdapConnAsync::with_settings(settings, uri).await {
                Ok((conn, mut ldap)) => {
                    ldap3::drive!(conn);
                    ldap.with_timeout(self.timeout);
                    if let Ok(mut d) = self.down_until.lock() {
                        d[i] = None;
                    }
                    return Ok(ldap);
                }
                Err(e) => {
                    if let Ok(mut d) = self.down_until.lock() {
                        d[i] = Some(now + DOWN_FOR);
                    }
                    errors.push(format!("{uri}: {e}"));
                }
            }
        }
        Err(PluginError::Unavailable(format!(
            "no LDAP server answered ({})",
            errors.join("; ")
        )))
    }

    /// A connection bound as the service account (pooled).
    pub(crate) async fn service(
        &self,
        bind_dn: &str,
        password: &gatehouse_sdk::Secret,
    ) -> Result<Ldap, PluginError> {
        if let Some(l) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(l);
        }
        let mut ldap = self.connect().await?;
        let r = ldap
            .simple_bind(bind_dn, password.expose())
            .await
            .map_err(|e| PluginError::Unavailable(format!("service bind failed: {e}")))?;
        match r.rc {
            0 => Ok(ldap),
            INVALID_CREDENTIALS => Err(PluginError::Unavailable(format!(
                "the service account {bind_dn:?} was refused (invalid bind_dn or bind_password)"
            ))),
            rc => Err(PluginError::Unavailable(format!(
                "service bind failed: result {rc} {}",
                r.text
            ))),
        }
    }

    /// A connection for a user bind (pooled; its previous bind identity is
    /// replaced by the next bind).
    pub(crate) async fn for_bind(&self) -> Result<Ldap, PluginError> {
        if let Some(l) = self.bind_pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(l);
        }
        self.connect().await
    }

    /// Empties both pools (their connections may be dead).
    pub(crate) fn drop_pools(&self) {
        for pool in [&self.pool, &self.bind_pool] {
            if let Ok(mut p) = pool.lock() {
                p.clear();
            }
        }
    }

    /// Returns a healthy bind connection to its pool.
    pub(crate) fn give_back_bind(&self, ldap: Ldap) {
        if let Ok(mut p) = self.bind_pool.lock()
            && p.len() < self.pool_size
        {
            p.push(ldap);
        }
    }

    /// Returns a healthy service connection to the pool.
    pub(crate) fn give_back(&self, ldap: Ldap) {
        if let Ok(mut p) = self.pool.lock()
            && p.len() < self.pool_size
        {
            p.push(ldap);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ca_file_adds_to_the_system_roots() {
        let dir = std::env::temp_dir().join(format!("gh-ldap-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args([
                "-subj",
                "/CN=gatehouse ldap unit test CA",
                "-days",
                "2",
                "-keyout",
            ])
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(&ca)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let system = rustls_native_certs::load_native_certs().certs.len();
        let roots = root_store(ca.to_str().unwrap()).unwrap();
        assert!(system > 0, "the test needs system roots");
        assert!(
            roots.len() > 1 && roots.len() <= system + 1,
            "{} roots, {system} from the system",
            roots.len()
        );
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "nothing\n").unwrap();
        let e = root_store(junk.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
