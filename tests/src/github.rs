//! A stand-in for GitHub (github.com or a GitHub Enterprise Server) for
//! the `github*` authenticator tests: GitHub itself cannot be reached from
//! the test machines. It serves HTTPS on 127.0.0.1 with its own throwaway
//! CA ([`StandIn::ca`], for `[http] ca_file`) and follows the request and
//! response shapes of GitHub's public documentation (docs.github.com),
//! which it was written from (no code copied):
//!
//! - "Authorizing OAuth apps" (web application flow):
//!   `GET /login/oauth/authorize` answers `302` to the app's callback with
//!   `code` and the client's `state` for the signed-in user ([`StandIn::sign_in`]);
//!   a `redirect_uri` outside the registered callback sends
//!   `error=redirect_uri_mismatch` back instead.
//!   `POST /login/oauth/access_token` takes `client_id`, `client_secret`,
//!   `code`, `redirect_uri` (form body or query) and always answers `200`:
//!   form-encoded (`access_token=…&scope=…&token_type=bearer`) unless the
//!   `Accept` header asks for `application/json`; refusals are the
//!   documented `error` members ("Troubleshooting OAuth app access token
//!   request errors"): `incorrect_client_credentials` (unknown client or
//!   wrong secret), `bad_verification_code` (unknown or already used code:
//!   codes are single use), `redirect_uri_mismatch`.
//! - REST API (served at the root like `api.github.com` and under
//!   `/api/v3` like GitHub Enterprise Server): "Getting started with the
//!   REST API" and "API versions" — a request without `User-Agent` is
//!   refused with 403, an unsupported `X-GitHub-Api-Version` with 400,
//!   answers carry `X-RateLimit-Limit/Remaining/Used/Reset/Resource`;
//!   `Authorization: Bearer <token>` (or `token <token>`), else
//!   401 `{"message":"Bad credentials","documentation_url":…}` ("Requires
//!   authentication" without one). This stand-in is stricter than GitHub
//!   in one place, on purpose: an API request whose `Accept` is not
//!   `application/vnd.github+json` (or `application/json`) gets 415, so the
//!   tests prove the plugin sends the recommended media type.
//! - "Users": `GET /user` (`id`, `login`, `name`, `email` — the public
//!   address or `null`), "Emails": `GET /user/emails` (needs the `user` or
//!   `user:email` scope, else 404).
//! - "Organizations": `GET /user/orgs` (private memberships only with the
//!   `read:org` scope), "Organization members": `GET
//!   /user/memberships/orgs/{org}` (`state` `active`/`pending`; 404 when the
//!   user is not a member or the organization is not visible).
//! - "Teams": `GET /user/teams` (teams with their `organization`).
//! - "Using pagination in the REST API": `per_page` (default 30, at most
//!   100, here lowered further with [`StandIn::max_per_page`]) and `page`;
//!   a `Link` header with `rel="next"`, `"last"`, `"first"`, `"prev"`.
//! - "Rate limits for the REST API": an exhausted limit is 403 with
//!   `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset` (Unix seconds) and a
//!   `message` ([`Fault::RateLimited`]).
//!
//! Faults ([`StandIn::fault`]) inject rate limits, error statuses, bad
//! credentials, slow answers and a pagination link to another host.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

/// A user of the stand-in.
#[derive(Clone, Debug, Default)]
pub struct GhUser {
    /// The numeric id (the stable uid).
    pub id: u64,
    /// The login.
    pub login: String,
    /// The display name.
    pub name: Option<String>,
    /// The public e-mail address `/user` shows.
    pub public_email: Option<String>,
    /// `/user/emails`: (address, primary, verified).
    pub emails: Vec<(String, bool, bool)>,
    /// Organization memberships: (org login, state `active`/`pending`,
    /// public).
    pub orgs: Vec<(String, String, bool)>,
    /// Team memberships.
    pub teams: Vec<GhTeam>,
}

impl GhUser {
    /// A user with an id and a login.
    pub fn new(id: u64, login: &str) -> Self {
        Self {
            id,
            login: login.to_owned(),
            ..Self::default()
        }
    }

    /// Adds an active membership of `org` (private unless `public`).
    pub fn member_of(mut self, org: &str, public: bool) -> Self {
        self.orgs.push((org.to_owned(), "active".into(), public));
        self
    }

    /// Adds a team membership.
    pub fn in_team(mut self, id: u64, org: &str, slug: &str) -> Self {
        self.teams.push(GhTeam {
            id,
            org: org.to_owned(),
            slug: slug.to_owned(),
        });
        self
    }
}

/// A team of the stand-in.
#[derive(Clone, Debug)]
pub struct GhTeam {
    /// The numeric id.
    pub id: u64,
    /// The organization's login.
    pub org: String,
    /// The slug.
    pub slug: String,
}

/// An injected failure.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 403 with `X-RateLimit-Remaining: 0` and this `X-RateLimit-Reset`.
    RateLimited {
        /// Unix seconds.
        reset: u64,
    },
    /// This status with a `message` body.
    Status(u16),
    /// 401 Bad credentials whatever the token.
    BadCredentials,
    /// Answers only after this long.
    Delay(Duration),
    /// A `rel="next"` link to another host.
    ForeignNextLink,
}

/// One request the stand-in saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `Accept`.
    pub accept: Option<String>,
    /// `X-GitHub-Api-Version`.
    pub api_version: Option<String>,
    /// The `Authorization` scheme (`Bearer`, `token`), never the token.
    pub auth_scheme: Option<String>,
}

struct Grant {
    client_id: String,
    login: String,
    redirect_uri: Option<String>,
    scope: String,
    used: bool,
}

#[derive(Default)]
struct World {
    apps: HashMap<String, (String, String)>,
    users: BTreeMap<String, GhUser>,
    session: Option<String>,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, (String, String)>,
    max_per_page: usize,
    faults: Vec<(String, Fault)>,
    seen: Vec<Seen>,
}

/// The running stand-in.
pub struct StandIn {
    /// `https://127.0.0.1:<port>` (no trailing slash).
    pub base: String,
    /// The CA certificate (PEM) that signed its certificate.
    pub ca: PathBuf,
    world: Arc<Mutex<World>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

fn lock(w: &Mutex<World>) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Random hex of `n` bytes.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let mut f = std::fs::File::open("/dev/urandom").expect("urandom");
    std::io::Read::read_exact(&mut f, &mut buf).expect("read urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A server certificate for 127.0.0.1 signed by a throwaway CA: (CA, chain, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = crate::throwaway_ca(dir, "github-standin-ca");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl req (server) failed");
    let ok = Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(dir.join("github-standin-ca.key"))
        .args(["-CAcreateserial", "-extfile"])
        .arg(&ext)
        .arg("-out")
        .arg(&cert)
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl x509 (server) failed");
    (ca, cert, key)
}

fn tls_config(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("server.pem")
        .map(|c| c.expect("certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("server.key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

impl StandIn {
    /// Starts the stand-in on 127.0.0.1:`port` (HTTPS) in its own thread.
    pub fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = certificates(dir.path());
        let tls = tokio_rustls::TlsAcceptor::from(tls_config(&cert, &key));
        let world = Arc::new(Mutex::new(World {
            max_per_page: 100,
            ..World::default()
        }));
        let base = format!("https://127.0.0.1:{port}");
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&world);
        let origin = base.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let conn = tokio::select! {
                        c = listener.accept() => c,
                        _ = &mut stopped => return,
                    };
                    let Ok((tcp, _)) = conn else { continue };
                    let tls = tls.clone();
                    let world = Arc::clone(&shared);
                    let origin = origin.clone();
                    tokio::spawn(async move {
                        let Ok(stream) = tls.accept(tcp).await else { return };
                        let service = hyper::service::service_fn(move |req| {
                            let world = Arc::clone(&world);
                            let origin = origin.clone();
                            async move { Ok::<_, Infallible>(serve(&world, &origin, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Self {
            base,
            ca,
            world,
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// Registers an OAuth app: client id, client secret, callback URL
    /// (a `redirect_uri` must lie under it).
    pub fn app(&self, client_id: &str, secret: &str, callback: &str) {
        lock(&self.world)
            .apps
            .insert(client_id.into(), (secret.into(), callback.into()));
    }

    /// Adds (or replaces) a user.
    pub fn user(&self, user: GhUser) {
        lock(&self.world).users.insert(user.login.clone(), user);
    }

    /// The user signed in in "the browser" that visits the authorize page.
    pub fn sign_in(&self, login: &str) {
        lock(&self.world).session = Some(login.into());
    }

    /// Lowers the largest `per_page` served (GitHub's is 100).
    pub fn max_per_page(&self, n: usize) {
        lock(&self.world).max_per_page = n.max(1);
    }

    /// Injects a fault on an API path (`/user/teams`, without `/api/v3`)
    /// or `/login/oauth/access_token`; until [`StandIn::clear_faults`].
    pub fn fault(&self, path: &str, fault: Fault) {
        lock(&self.world).faults.push((path.into(), fault));
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.world).faults.clear();
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.world).seen.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        lock(&self.world).seen.clear();
    }

    /// Every access token and code issued so far (to grep logs for).
    pub fn issued_secrets(&self) -> Vec<String> {
        let w = lock(&self.world);
        w.tokens.keys().chain(w.codes.keys()).cloned().collect()
    }

    /// "The browser": GETs an authorize URL the daemon handed out and
    /// returns the `Location` it is sent to (or the status and body when
    /// there is no redirect).
    pub async fn browse(&self, url: &str) -> Result<String, String> {
        let settings =
            gatehouse_sdk::HttpSettings::default().with_ca_file(Some(self.ca.display().to_string()));
        let client = gatehouse_sdk::http::HttpClient::new(&settings).map_err(|e| e.to_string())?;
        let r = client
            .get(url)
            .map_err(|e| e.to_string())?
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match r.headers().get("location") {
            Some(l) if r.status().is_redirection() => Ok(l.to_str().map_err(|e| e.to_string())?.to_owned()),
            _ => Err(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: u16, content_type: &str, body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn json_answer(status: u16, v: &Value) -> Answer {
    answer(status, "application/json; charset=utf-8", v.to_string())
}

fn message(status: u16, text: &str) -> Answer {
    json_answer(
        status,
        &json!({"message": text, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
    )
}

fn redirect(location: &str) -> Answer {
    let mut r = answer(302, "text/html; charset=utf-8", String::new());
    if let Ok(v) = location.parse() {
        r.headers_mut().insert("location", v);
    }
    r
}

/// Percent-decoding of one query or form component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pairs(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn serve(world: &Mutex<World>, origin: &str, req: Request<Incoming>) -> Answer {
    let uri = req.uri().clone();
    let path = uri.path().to_owned();
    let query = pairs(uri.query().unwrap_or(""));
    let seen = Seen {
        method: req.method().to_string(),
        uri: uri.path_and_query().map(ToString::to_string).unwrap_or_default(),
        user_agent: header(&req, "user-agent"),
        accept: header(&req, "accept"),
        api_version: header(&req, "x-github-api-version"),
        auth_scheme: header(&req, "authorization")
            .and_then(|a| a.split_whitespace().next().map(str::to_owned)),
    };
    lock(world).seen.push(seen.clone());
    let (prefix, api_path) = match path.strip_prefix("/api/v3") {
        Some(rest) if rest.starts_with('/') => ("/api/v3", rest.to_owned()),
        _ => ("", path.clone()),
    };
    let fault = lock(world)
        .faults
        .iter()
        .find(|(p, _)| *p == api_path)
        .map(|(_, f)| f.clone());
    if let Some(Fault::Delay(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    if path == "/login/oauth/authorize" {
        return authorize(world, &query);
    }
    if path == "/login/oauth/access_token" {
        let accept = seen.accept.clone().unwrap_or_default();
        let form = match req.into_body().collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        if let Some(Fault::Status(s)) = fault {
            return message(s, "injected failure");
        }
        let mut params = query;
        params.extend(pairs(&form));
        return access_token(world, &params, &accept);
    }
    let token = header(&req, "authorization").and_then(|a| {
        let (scheme, value) = a.split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
            .then(|| value.trim().to_owned())
    });
    api(world, origin, prefix, &api_path, &query, &seen, token, fault)
}

fn authorize(world: &Mutex<World>, q: &HashMap<String, String>) -> Answer {
    let mut w = lock(world);
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let Some((_, callback)) = w.apps.get(&client_id).cloned() else {
        return answer(404, "text/html", "<h1>404: no such OAuth app</h1>".into());
    };
    let Some(login) = w.session.clone() else {
        return answer(200, "text/html", "<form>Sign in to GitHub</form>".into());
    };
    let state = q.get("state").cloned().unwrap_or_default();
    let redirect_uri = q.get("redirect_uri").cloned();
    let target = redirect_uri.clone().unwrap_or_else(|| callback.clone());
    let join = |url: &str, query: &str| format!("{url}{}{query}", if url.contains('?') { '&' } else { '?' });
    if !target.starts_with(&callback) {
        return redirect(&join(
            &callback,
            &format!(
                "error=redirect_uri_mismatch&error_description={}&state={}",
                encode("The redirect_uri MUST match the registered callback URL for this application."),
                encode(&state)
            ),
        ));
    }
    let code = random_hex(10);
    w.codes.insert(
        code.clone(),
        Grant {
            client_id,
            login,
            redirect_uri,
            scope: q.get("scope").cloned().unwrap_or_default(),
            used: false,
        },
    );
    redirect(&join(&target, &format!("code={code}&state={}", encode(&state))))
}

fn access_token(world: &Mutex<World>, p: &HashMap<String, String>, accept: &str) -> Answer {
    let as_json = accept
        .split(',')
        .any(|a| a.trim().starts_with("application/json"));
    let reply = |fields: Vec<(&str, String)>| {
        if as_json {
            let map: serde_json::Map<String, Value> = fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v)))
                .collect();
            json_answer(200, &Value::Object(map))
        } else {
            let body = fields
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            answer(200, "application/x-www-form-urlencoded; charset=utf-8", body)
        }
    };
    let error = |code: &str, text: &str| {
        reply(vec![
            ("error", code.to_owned()),
            ("error_description", text.to_owned()),
            (
                "error_uri",
                "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors".into(),
            ),
        ])
    };
    let mut w = lock(world);
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let client_id = get("client_id");
    let secret_ok = w.apps.get(&client_id).is_some_and(|(secret, _)| {
        gatehouse_sdk::constant_time_eq(secret.as_bytes(), get("client_secret").as_bytes())
    });
    if !secret_ok {
        return error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    let code = get("code");
    let Some(grant) = w
        .codes
        .get_mut(&code)
        .filter(|g| !g.used && g.client_id == client_id)
    else {
        return error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    };
    grant.used = true;
    if let (Some(want), Some(given)) = (&grant.redirect_uri, p.get("redirect_uri"))
        && want != given
    {
        return error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    let (login, scope) = (grant.login.clone(), grant.scope.clone());
    let token = format!("gho_{}", random_hex(18));
    w.tokens.insert(token.clone(), (login, scope.clone()));
    reply(vec![
        ("access_token", token),
        ("scope", scope.replace(' ', ",")),
        ("token_type", "bearer".into()),
    ])
}

fn with_rate_headers(mut r: Answer, remaining: u32, reset: u64) -> Answer {
    let h = r.headers_mut();
    for (k, v) in [
        ("x-ratelimit-limit", "5000".to_owned()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-used", (5000 - remaining).to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", "core".to_owned()),
        ("x-github-api-version-selected", "2022-11-28".to_owned()),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    r
}

fn has_scope(scope: &str, any_of: &[&str]) -> bool {
    scope.split([' ', ',']).any(|s| any_of.contains(&s.trim()))
}

#[allow(clippy::too_many_arguments)]
fn api(
    world: &Mutex<World>,
    origin: &str,
    prefix: &str,
    path: &str,
    q: &HashMap<String, String>,
    seen: &Seen,
    token: Option<String>,
    fault: Option<Fault>,
) -> Answer {
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 3600)
        .unwrap_or(0);
    if seen.user_agent.as_deref().is_none_or(str::is_empty) {
        return answer(
            403,
            "text/plain; charset=utf-8",
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header \
             (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required)."
                .into(),
        );
    }
    let accept_ok = seen.accept.as_deref().is_some_and(|a| {
        a.split(',')
            .any(|m| matches!(m.trim(), "application/vnd.github+json" | "application/json"))
    });
    if !accept_ok {
        return message(
            415,
            "Unsupported 'Accept' header: expected application/vnd.github+json",
        );
    }
    if let Some(v) = &seen.api_version
        && v != "2022-11-28"
    {
        return message(400, &format!("API version '{v}' is not supported."));
    }
    match &fault {
        Some(Fault::RateLimited { reset }) => {
            return with_rate_headers(
                message(
                    403,
                    "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
                ),
                0,
                *reset,
            );
        }
        Some(Fault::Status(s)) => return with_rate_headers(message(*s, "injected failure"), 4999, reset),
        Some(Fault::BadCredentials) => {
            return with_rate_headers(message(401, "Bad credentials"), 4999, reset);
        }
        _ => {}
    }
    api_with_token(world, origin, prefix, path, q, token, fault, reset)
}

#[allow(clippy::too_many_arguments)]
fn api_with_token(
    world: &Mutex<World>,
    origin: &str,
    prefix: &str,
    path: &str,
    q: &HashMap<String, String>,
    token: Option<String>,
    fault: Option<Fault>,
    reset: u64,
) -> Answer {
    let w = lock(world);
    let Some(token) = token else {
        return with_rate_headers(message(401, "Requires authentication"), 4999, reset);
    };
    let Some((login, scope)) = w.tokens.get(&token).cloned() else {
        return with_rate_headers(message(401, "Bad credentials"), 4999, reset);
    };
    let Some(user) = w.users.get(&login).cloned() else {
        return with_rate_headers(message(401, "Bad credentials"), 4999, reset);
    };
    let max = w.max_per_page;
    drop(w);
    let ok = |v: Value| with_rate_headers(json_answer(200, &v), 4998, reset);
    let list = |items: Vec<Value>| {
        let per_page = q
            .get("per_page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 100)
            .min(max);
        let page = q
            .get("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let last = items.len().div_ceil(per_page).max(1);
        let chunk: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        let mut r = ok(Value::Array(chunk));
        let host = if matches!(fault, Some(Fault::ForeignNextLink)) {
            origin.replace("127.0.0.1", "127.0.0.2")
        } else {
            origin.to_owned()
        };
        let link = |host: &str, n: usize, rel: &str| {
            format!("<{host}{prefix}{path}?per_page={per_page}&page={n}>; rel=\"{rel}\"")
        };
        let mut links = Vec::new();
        if page < last {
            links.push(link(&host, page + 1, "next"));
            links.push(link(origin, last, "last"));
        }
        if page > 1 {
            links.push(link(origin, 1, "first"));
            links.push(link(origin, page - 1, "prev"));
        }
        if !links.is_empty()
            && let Ok(v) = links.join(", ").parse()
        {
            r.headers_mut().insert("link", v);
        }
        r
    };
    let read_org = has_scope(&scope, &["read:org", "write:org", "admin:org"]);
    match path {
        "/user" => ok(json!({
            "login": user.login, "id": user.id, "type": "User",
            "name": user.name, "email": user.public_email,
            "html_url": format!("{origin}/{}", user.login),
        })),
        "/user/emails" if has_scope(&scope, &["user", "user:email"]) => list(
            user.emails
                .iter()
                .map(|(e, p, v)| json!({"email": e, "primary": p, "verified": v, "visibility": null}))
                .collect(),
        ),
        "/user/orgs" => list(
            user.orgs
                .iter()
                .filter(|(_, state, public)| state == "active" && (*public || read_org))
                .map(|(o, _, _)| json!({"login": o, "id": o.len(), "url": format!("{origin}{prefix}/orgs/{o}")}))
                .collect(),
        ),
        "/user/teams" => list(
            user.teams
                .iter()
                .map(|t| {
                    json!({"id": t.id, "slug": t.slug, "name": t.slug,
                           "organization": {"login": t.org, "id": t.org.len()}})
                })
                .collect(),
        ),
        p if p.starts_with("/user/memberships/orgs/") => {
            let org = &p["/user/memberships/orgs/".len()..];
            match user.orgs.iter().find(|(o, _, _)| o.eq_ignore_ascii_case(org)) {
                Some((o, state, _)) => ok(json!({
                    "state": state, "role": "member",
                    "organization_url": format!("{origin}{prefix}/orgs/{o}"),
                    "organization": {"login": o}, "user": {"login": user.login},
                })),
                None => with_rate_headers(message(404, "Not Found"), 4998, reset),
            }
        }
        _ => with_rate_headers(message(404, "Not Found"), 4998, reset),
    }
}
