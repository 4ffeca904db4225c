//! Real peer servers on 127.0.0.1, started by the idempotent scripts in
//! `tests/peers/` and shared across test processes: slapd, oidc-provider
//! (plain or HTTPS with its own CA) and nginx; and `curl` to reach them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::repo_root;

/// Connection details of the shared test slapd (`tests/peers/ldap`).
#[derive(Clone, Debug)]
pub struct LdapPeer {
    /// `ldap://127.0.0.1:<port>` (StartTLS available).
    pub uri: String,
    /// `ldaps://127.0.0.1:<port>`.
    pub ldaps_uri: String,
    /// The throwaway CA's certificate (PEM).
    pub ca: String,
    /// The base DN.
    pub base: String,
}

/// What a peer's `start.sh` printed: `KEY=value` lines.
struct Started(String);

impl Started {
    /// Runs `tests/peers/<script>` with `args`. Panics with the script's
    /// output when it fails: peer tests never skip silently.
    fn run(what: &str, script: &str, args: &[&str]) -> Self {
        Self::run_with(what, script, args, &[])
    }

    /// [`Started::run`] with environment variables.
    fn run_with(what: &str, script: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let out = Command::new("bash")
            .arg(repo_root().join("tests/peers").join(script))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap_or_else(|e| panic!("run tests/peers/{script}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{what} did not start ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Self(stdout)
    }

    /// The value of `KEY=`.
    fn get(&self, k: &str) -> String {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing from start.sh output:\n{}", self.0))
            .to_owned()
    }
}

/// Starts the shared slapd once (idempotent across test processes) and
/// returns how to reach it. Panics with the script's output when it cannot
/// start: LDAP tests never skip silently.
pub fn ldap_peer() -> LdapPeer {
    static PEER: std::sync::OnceLock<LdapPeer> = std::sync::OnceLock::new();
    PEER.get_or_init(|| {
        let started = Started::run("slapd", "ldap/start.sh", &[]);
        let get = |k: &str| started.get(k);
        LdapPeer {
            uri: get("GH_LDAP_URI"),
            ldaps_uri: get("GH_LDAPS_URI"),
            ca: get("GH_LDAP_CA"),
            base: get("GH_LDAP_BASE"),
        }
    })
    .clone()
}

/// A slapd of one test's own (its own state directory and ports), for a
/// test that stops it; stopped and wiped when dropped.
pub struct PrivateLdap {
    /// How to reach it.
    pub peer: LdapPeer,
    env: Vec<(&'static str, String)>,
}

impl PrivateLdap {
    /// Starts one under `run` (a fresh directory) on `port` (LDAP) and
    /// `tls_port` (LDAPS), with the shared peer's directory.
    pub fn start(run: &Path, port: u16, tls_port: u16) -> Self {
        let env = vec![
            ("GH_PEERS_RUN", run.display().to_string()),
            ("GH_LDAP_PORT", port.to_string()),
            ("GH_LDAPS_PORT", tls_port.to_string()),
        ];
        let started = Started::run_with("private slapd", "ldap/start.sh", &[], &env);
        let get = |k: &str| started.get(k);
        Self {
            peer: LdapPeer {
                uri: get("GH_LDAP_URI"),
                ldaps_uri: get("GH_LDAPS_URI"),
                ca: get("GH_LDAP_CA"),
                base: get("GH_LDAP_BASE"),
            },
            env,
        }
    }

    /// Starts it again after [`PrivateLdap::stop`] (same data).
    pub fn restart(&self) {
        Started::run_with("private slapd", "ldap/start.sh", &[], &self.env);
    }

    /// Stops it (the data stays).
    pub fn stop(&self) {
        Started::run_with("private slapd stop", "ldap/stop.sh", &[], &self.env);
    }
}

impl Drop for PrivateLdap {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("tests/peers/ldap/stop.sh"))
            .arg("--wipe")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output();
    }
}

/// Runs a `tests/peers/oidc` script and returns its stdout (panics with the
/// output on failure: OIDC tests never skip silently).
fn oidc_script(script: &str, args: &[&str]) -> String {
    let path = repo_root().join("tests/peers/oidc").join(script);
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .expect("run an oidc peer script");
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Starts (or finds) OpenID provider instance `name` on `port`; its issuer URL.
pub fn oidc_start(name: &str, port: u16) -> String {
    let out = oidc_script("start.sh", &[name, &port.to_string()]);
    out.lines()
        .find_map(|l| l.strip_prefix("GH_OIDC_ISSUER="))
        .unwrap_or_else(|| panic!("no GH_OIDC_ISSUER in {out}"))
        .to_owned()
}

/// Starts (or finds) OpenID provider instance `name` serving HTTPS on
/// `port` with a certificate from its own test CA: (issuer URL, CA file).
pub fn oidc_start_tls(name: &str, port: u16) -> (String, PathBuf) {
    let out = oidc_script("start.sh", &[name, &port.to_string(), "--tls"]);
    let get = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_owned()
    };
    (get("GH_OIDC_ISSUER="), PathBuf::from(get("GH_OIDC_CA=")))
}

/// A signed access token from instance `name` (`token.sh` options).
pub fn oidc_token(name: &str, options: &[&str]) -> String {
    let mut args = vec![name];
    args.extend_from_slice(options);
    oidc_script("token.sh", &args)
}

/// The RS256 public key (PEM) of running instance `name`: what a
/// Keycloak realm shows as its public key.
pub fn oidc_public_key(name: &str) -> String {
    let run = std::env::var("GH_PEERS_RUN").unwrap_or_else(|_| "/tmp/gatehouse-peers".into());
    let out = Command::new("node")
        .arg(repo_root().join("tests/peers/oidc/keys.mjs"))
        .arg("pem")
        .arg(format!("{run}/oidc/{name}/jwks.private.json"))
        .output()
        .expect("run keys.mjs");
    assert!(
        out.status.success(),
        "keys.mjs pem: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Gives instance `name` new keys (new kids) and restarts it.
pub fn oidc_rotate(name: &str) {
    oidc_script("rotate.sh", &[name]);
}

/// Stops instance `name` and deletes its state.
pub fn oidc_stop(name: &str) {
    oidc_script("stop.sh", &[name, "--wipe"]);
}

/// Starts (or finds) nginx instance `name` on `port`, protecting every
/// location with `auth_request` to `auth_socket`; its base URL.
pub fn nginx_start(name: &str, port: u16, auth_socket: &Path) -> String {
    let script = repo_root().join("tests/peers/nginx/start.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(name)
        .arg(port.to_string())
        .arg(auth_socket)
        .output()
        .expect("run tests/peers/nginx/start.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "nginx did not start:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("GH_NGINX_URL="))
        .unwrap_or_else(|| panic!("no GH_NGINX_URL in {stdout}"))
        .to_owned()
}

/// Stops nginx instance `name`.
pub fn nginx_stop(name: &str) {
    let _ = Command::new("bash")
        .arg(repo_root().join("tests/peers/nginx/stop.sh"))
        .arg(name)
        .arg("--wipe")
        .output();
}

/// `curl` a URL with headers: (status, body).
pub fn curl(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The project's TACACS+ test server (`tests/peers/tacacs/server.py`,
/// RFC 8907, Python standard library only) on 127.0.0.1, owned by one
/// test: started on a port of the caller's choosing and killed on drop.
/// Users: alice/alicepass, Bob.Smith/bobpass, juergen/jürgenpass.
#[derive(Debug)]
pub struct TacacsServer {
    child: std::process::Child,
    /// The port it listens on.
    pub port: u16,
}

impl TacacsServer {
    /// Starts the server with key `key` and extra `server.py` options
    /// (`--getuser-always`, `--otp USER=CODE`, `--require-rem-addr A`);
    /// returns once it listens. Panics when it cannot start: TACACS+
    /// tests never skip.
    pub fn start(port: u16, key: &str, options: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(repo_root().join("tests/peers/tacacs/server.py"))
            .args(["--port", &port.to_string(), "--key", key])
            .args(options)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run python3 tests/peers/tacacs/server.py");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        if !line.starts_with("GH_TACACS_READY ") {
            let _ = child.kill();
            let status = child.wait();
            panic!("the TACACS+ test server did not start on port {port} ({status:?}): {line:?}");
        }
        Self { child, port }
    }
}

impl Drop for TacacsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PyPI reference client `tacacs_client` (tacacs_plus, pinned in
/// `tests/peers/tacacs/install.sh`), installed into its venv on first use.
/// Panics when the venv cannot be made.
pub fn tacacs_reference_client() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("tests/peers/tacacs/install.sh"))
        .output()
        .expect("run tests/peers/tacacs/install.sh");
    assert!(
        out.status.success(),
        "tests/peers/tacacs/install.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo_root().join("tests/peers/tacacs/venv/bin/tacacs_client")
}

/// Connection details of a test FreeRADIUS instance (`tests/peers/radius`).
#[derive(Clone, Debug)]
pub struct RadiusPeer {
    /// `127.0.0.1:<port>` (authentication).
    pub addr: String,
    /// The shared secret of client 127.0.0.1.
    pub secret: String,
    /// The server's log file.
    pub log: PathBuf,
}

/// Starts (or finds) FreeRADIUS instance `name` on UDP `port` (accounting
/// on `port + 1`). Panics with the script's output when it cannot start:
/// RADIUS tests never skip silently.
pub fn radius_start(name: &str, port: u16) -> RadiusPeer {
    let port = port.to_string();
    let started = Started::run("freeradius", "radius/start.sh", &[name, &port]);
    let get = |k: &str| started.get(k);
    RadiusPeer {
        addr: get("GH_RADIUS_ADDR"),
        secret: get("GH_RADIUS_SECRET"),
        log: PathBuf::from(get("GH_RADIUS_LOG")),
    }
}

/// The shared SimpleSAMLphp IdP (`tests/peers/saml`): users alice,
/// Bob.Smith and juergen; service providers registered by writing their
/// metadata into [`SamlIdp::sp_dir`].
#[derive(Clone, Debug)]
pub struct SamlIdp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The IdP's entity ID.
    pub entity_id: String,
    /// The SSO endpoint (HTTP-Redirect binding).
    pub sso_url: String,
    /// The IdP's signing certificate (PEM file).
    pub cert: PathBuf,
    /// The IdP's signing key (PEM file): the tests sign edited responses
    /// with it.
    pub key: PathBuf,
    /// Where SP metadata files go (`*.xml`, read at every request).
    pub sp_dir: PathBuf,
}

/// The answer of a scripted login at the IdP: what its auto-submitting
/// form would POST to the ACS.
#[derive(Clone, Debug)]
pub struct SamlPost {
    /// The form's action (the SP's ACS URL from its metadata).
    pub acs: String,
    /// `RelayState` (empty when none).
    pub relay_state: String,
    /// The base64 `SAMLResponse`.
    pub response: String,
}

/// Starts the shared IdP once (on port 19400, idempotent across test
/// processes). Panics with the script's output when it cannot start: SAML
/// tests never skip silently.
pub fn saml_idp() -> SamlIdp {
    static PEER: std::sync::OnceLock<SamlIdp> = std::sync::OnceLock::new();
    PEER.get_or_init(|| {
        let started = Started::run("simplesamlphp", "saml/start.sh", &["19400"]);
        let get = |k: &str| started.get(k);
        SamlIdp {
            base: get("GH_SAML_IDP"),
            entity_id: get("GH_SAML_IDP_ENTITY"),
            sso_url: get("GH_SAML_IDP_SSO"),
            cert: PathBuf::from(get("GH_SAML_IDP_CERT")),
            key: PathBuf::from(get("GH_SAML_IDP_KEY")),
            sp_dir: PathBuf::from(get("GH_SAML_SP_DIR")),
        }
    })
    .clone()
}

impl SamlIdp {
    /// Registers (or replaces) a service provider from its metadata XML,
    /// as the IdP's admin would import it.
    pub fn register_sp(&self, file_stem: &str, metadata: &str) {
        let tmp = self.sp_dir.join(format!(".{file_stem}.tmp"));
        std::fs::write(&tmp, metadata).expect("write SP metadata");
        std::fs::rename(&tmp, self.sp_dir.join(format!("{file_stem}.xml"))).expect("register SP metadata");
    }

    /// The IdP's signing certificate (PEM).
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("read the IdP certificate")
    }

    /// The URL of an IdP-initiated login for SP `sp_entity_id`.
    pub fn unsolicited_url(&self, sp_entity_id: &str, relay_state: &str) -> String {
        let mut url = url::Url::parse(&self.sso_url).expect("SSO URL");
        url.query_pairs_mut()
            .append_pair("spentityid", sp_entity_id)
            .append_pair("RelayState", relay_state);
        url.into()
    }

    /// Logs `user` in at the IdP's form, starting at `url` (an SP's
    /// redirect or [`SamlIdp::unsolicited_url`]); `None` when the IdP
    /// shows the form again (a wrong password).
    pub fn login(&self, url: &str, user: &str, password: &str) -> Option<SamlPost> {
        let out = Command::new("bash")
            .arg(repo_root().join("tests/peers/saml/login.sh"))
            .args([url, user, password])
            .output()
            .expect("run tests/peers/saml/login.sh");
        if !out.status.success() {
            return None;
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} missing from login.sh output:\n{stdout}"))
                .to_owned()
        };
        Some(SamlPost {
            acs: get("ACS"),
            relay_state: get("RELAY_STATE"),
            response: get("SAML_RESPONSE"),
        })
    }
}

/// Re-signs a SAML response (XML) with `key`/`cert` (PEM files), as the
/// IdP signs (`tests/peers/saml/sign.py`): existing signatures removed,
/// then the Assertion (`"--assertion"`) and the Response (`"--response"`)
/// signed.
pub fn saml_sign(xml: &str, key: &Path, cert: &Path, flags: &[&str]) -> String {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(repo_root().join("tests/peers/saml/sign.py"))
        .arg(key)
        .arg(cert)
        .args(flags);
    let out = crate::process::run_with_stdin(&mut cmd, xml);
    assert!(
        out.status.success(),
        "sign.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("sign.py output is UTF-8")
}
