//! The end-to-end test harness: starts the real `gatehoused` binary on a
//! temporary socket and state directory and talks to it only through the
//! socket (with [`gatehouse_daemon::client`]) or the real `gatehouse` CLI.
//!
//! The binaries are found next to the test executable's `target/<profile>/`
//! directory, or in `$GATEHOUSE_BIN_DIR`. Build them first
//! (`cargo build --workspace --bins`; `scripts/test.sh` does).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use gatehouse_daemon::client::{Answer, Client};
use tempfile::TempDir;

/// A cheap local authenticator for tests (Argon2id at minimum cost).
pub const LOCAL_AUTH: &str = r#"
[[authenticators]]
name = "Local Database"
type = "local"
[authenticators.settings]
min_password_length = 8
argon2_memory_kib = 64
argon2_iterations = 1
argon2_parallelism = 1
"#;

/// The directory holding `gatehoused` and `gatehouse`.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GATEHOUSE_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned();
    assert!(
        dir.join("gatehoused").exists(),
        "{}/gatehoused is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// Path of a binary of this workspace.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The repository root (for `etc/` files).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_owned()
}

/// How to start a daemon.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Extra lines for the `[daemon]` table.
    pub daemon_extra: String,
    /// The rest of the main file (authenticators, access …).
    pub body: String,
    /// Extra environment for the daemon.
    pub env: Vec<(String, String)>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            daemon_extra: String::new(),
            body: LOCAL_AUTH.to_owned(),
            env: Vec::new(),
        }
    }
}

impl Setup {
    /// The default setup with another body.
    pub fn with_body(body: &str) -> Self {
        Self {
            body: body.to_owned(),
            ..Self::default()
        }
    }
}

/// A running daemon in its own temporary directory.
pub struct Daemon {
    child: Option<Child>,
    dir: TempDir,
    /// The socket.
    pub socket: PathBuf,
    /// The main configuration file.
    pub config: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Writes the configuration and starts the daemon; waits until it
    /// answers `/v1/health`.
    pub fn start(setup: Setup) -> Self {
        let d = Self::prepare(&setup);
        d.spawn(&setup)
    }

    /// Creates the directory and configuration without starting.
    pub fn prepare(setup: &Setup) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gh-e2e")
            .tempdir_in("/tmp")
            .expect("tempdir");
        // Reachable by other uids (the `nobody` peer tests).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let socket = dir.path().join("gh.sock");
        let config = dir.path().join("gatehouse.toml");
        let log = dir.path().join("daemon.log");
        let d = Self {
            child: None,
            socket,
            config,
            log,
            dir,
        };
        d.write_config(setup);
        d
    }

    /// The configuration text a setup produces.
    pub fn config_text(setup: &Setup) -> String {
        format!(
            "[daemon]\nsocket = \"gh.sock\"\nsocket_mode = \"0666\"\nstate_dir = \"state\"\nreload_debounce = \"50ms\"\nshutdown_timeout = \"5s\"\nlog_level = \"info\"\n{}\n{}\n",
            setup.daemon_extra, setup.body
        )
    }

    /// (Re)writes the main configuration file in place.
    pub fn write_config(&self, setup: &Setup) {
        std::fs::write(&self.config, Self::config_text(setup)).expect("write config");
    }

    /// Replaces the main file the way editors do: write a temporary file,
    /// rename it over.
    pub fn replace_config(&self, setup: &Setup) {
        let tmp = self.dir.path().join(".gatehouse.toml.swp");
        std::fs::write(&tmp, Self::config_text(setup)).expect("write tmp");
        std::fs::rename(&tmp, &self.config).expect("rename");
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(mut self, setup: &Setup) -> Self {
        let log = std::fs::File::create(&self.log).expect("log file");
        let mut cmd = Command::new(bin("gatehoused"));
        cmd.arg("--config")
            .arg(&self.config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        for (k, v) in &setup.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn gatehoused"));
        self.wait_ready();
        self
    }

    /// Starts the daemon with a prepared directory and an arbitrary command
    /// line (for socket activation wrappers).
    pub fn spawn_with(mut self, mut cmd: Command) -> Self {
        let log = std::fs::File::create(&self.log).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn"));
        self.wait_ready();
        self
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("gatehoused exited early ({status}):\n{}", self.logs());
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gatehoused did not start:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A new connection.
    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await.expect("connect")
    }

    /// Sends a signal with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit (at most `timeout`); returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                self.child = None;
                return s.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the daemon logged so far.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Runs the CLI against this daemon with `stdin` as its input.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            Command::new(bin("gatehouse"))
                .arg("--socket")
                .arg(&self.socket)
                .args(args),
            stdin,
        )
    }

    /// Runs the CLI as another user (with runuser, as root).
    pub fn cli_as(&self, user: &str, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            Command::new("runuser")
                .arg("-u")
                .arg(user)
                .arg("--")
                .arg(bin("gatehouse"))
                .arg("--socket")
                .arg(&self.socket)
                .args(args),
            stdin,
        )
    }

    /// Polls `/v1/health` until the generation is at least `n`.
    pub async fn wait_generation(&self, n: u64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let h = self
                .client()
                .await
                .get("/v1/health")
                .await
                .expect("health")
                .value();
            if h["generation"].as_u64().unwrap_or(0) >= n {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "generation {n} not reached: {h}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command, feeding `stdin`.
pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("wait")
}

/// `openssl ARGS` fed `input` (a PEM text, or nothing): its output; panics
/// when openssl fails. For the benches' keys: `openssl(&["genpkey", …], "")`,
/// `openssl(&["pkey", "-pubout"], &private_pem)`.
pub fn openssl(args: &[&str], input: &str) -> Vec<u8> {
    let out = run_with_stdin(Command::new("openssl").args(args), input);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// True when running as root (tests that need a second uid skip otherwise).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Creates a user through the API.
pub async fn add_user(client: &mut Client, username: &str, password: &str) -> Answer {
    client
        .post(
            "/v1/users",
            &serde_json::json!({"username": username, "password": password}),
        )
        .await
        .expect("create user")
}

/// Logs in through the API.
pub async fn login(client: &mut Client, username: &str, password: &str) -> Answer {
    client
        .post(
            "/v1/login",
            &serde_json::json!({"username": username, "password": password}),
        )
        .await
        .expect("login")
}

/// Path of a plugin library of this workspace (`cargo build` puts cdylibs
/// next to the binaries), e.g. `plugin_library("gatehouse_plugin_testkit")`.
pub fn plugin_library(crate_name: &str) -> PathBuf {
    let p = bin_dir().join(format!("lib{crate_name}.so"));
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace`",
        p.display()
    );
    p
}

/// Compiles `tests/c/static_plugin.c` into `out` with extra `-D` defines.
pub fn build_c_plugin(out: &Path, defines: &[&str]) {
    let defines: Vec<String> = defines.iter().map(|d| format!("-D{d}")).collect();
    let flags: Vec<&str> = defines.iter().map(String::as_str).collect();
    build_c_library(&repo_root().join("tests/c/static_plugin.c"), out, &flags);
}

/// Compiles one C file of a plugin into the shared library `out`, against
/// `sdk/include`, warnings as errors, with extra compiler flags.
pub fn build_c_library(source: &Path, out: &Path, flags: &[&str]) {
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-Wall", "-Werror", "-shared", "-fPIC", "-I"])
        .arg(repo_root().join("sdk/include"))
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(source);
    let status = cmd.status().expect("run cc");
    assert!(status.success(), "cc failed for {}", out.display());
}

/// Copies (a symlink would do, but a copy survives the build dir changing)
/// a library into `dir`.
pub fn install_plugin(dir: &Path, library: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("plugin dir");
    let dest = dir.join(library.file_name().expect("file name"));
    std::fs::copy(library, &dest).expect("copy plugin");
    dest
}

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

/// Starts the shared slapd once (idempotent across test processes) and
/// returns how to reach it. Panics with the script's output when it cannot
/// start: LDAP tests never skip silently.
pub fn ldap_peer() -> LdapPeer {
    static PEER: std::sync::OnceLock<LdapPeer> = std::sync::OnceLock::new();
    PEER.get_or_init(|| {
        let script = repo_root().join("tests/peers/ldap/start.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("run tests/peers/ldap/start.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "slapd did not start ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} missing from start.sh output:\n{stdout}"))
                .to_owned()
        };
        LdapPeer {
            uri: get("GH_LDAP_URI"),
            ldaps_uri: get("GH_LDAPS_URI"),
            ca: get("GH_LDAP_CA"),
            base: get("GH_LDAP_BASE"),
        }
    })
    .clone()
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

/// Gives instance `name` new keys (new kids) and restarts it.
pub fn oidc_rotate(name: &str) {
    oidc_script("rotate.sh", &[name]);
}

/// Stops instance `name` and deletes its state.
pub fn oidc_stop(name: &str) {
    oidc_script("stop.sh", &[name, "--wipe"]);
}

impl Daemon {
    /// Stops the daemon with SIGTERM and starts it again on the same
    /// directory and configuration.
    pub fn restart(&mut self) {
        self.signal("TERM");
        assert_eq!(
            self.wait_exit(Duration::from_secs(10)),
            Some(0),
            "{}",
            self.logs()
        );
        let mut cmd = Command::new(bin("gatehoused"));
        cmd.arg("--config").arg(&self.config);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("log");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn"));
        self.wait_ready();
    }
}

/// The external storage token of [`forward_auth_daemon`].
pub const STORAGE: &str = "storage-token-0123456789abcdef";

/// The configuration of [`forward_auth_daemon`]: a token verifier (the
/// testkit fixture), the static-object verifier and three routes.
pub fn forward_auth_body() -> String {
    format!(
        r#"{LOCAL_AUTH}
[[verifiers]]
name = "test tokens"
type = "testkit_tokens"
[verifiers.settings]
audience = "gitlab-ai-gateway"
revoked = ["tok-revoked"]
[verifiers.settings.tokens]
tok-good = {{ subject = "alice", audience = ["gitlab-ai-gateway"], scopes = ["duo_chat"] }}
tok-admin = {{ subject = "root", audience = ["gitlab-ai-gateway"], scopes = ["duo_chat"] }}

[[verifiers]]
name = "static-objects"
type = "static_object"
[verifiers.settings]
storage_token_file = "storage-token"

[[routes]]
name = "static objects"
path_regex = '^(.+)(/raw/|/-/archive/)'
verifier = "static-objects"

[[routes]]
name = "admin"
path_prefix = "/ai/admin/"
verifier = "test tokens"
require_superuser = true

[[routes]]
name = "ai endpoints"
path_prefix = "/ai/"
methods = ["GET", "POST"]
verifier = "test tokens"
unit_primitive = "duo_chat"
[routes.headers]
X-Backend = "ai-gateway"
"#
    )
}

/// A daemon with [`forward_auth_body`], the testkit plugin and the storage
/// token file in place.
pub fn forward_auth_daemon() -> Daemon {
    let setup = Setup {
        daemon_extra: "plugin_dirs = [\"plugins\"]".into(),
        body: forward_auth_body(),
        ..Setup::default()
    };
    let d = Daemon::prepare(&setup);
    install_plugin(
        &d.dir().join("plugins"),
        &plugin_library("gatehouse_plugin_testkit"),
    );
    std::fs::write(d.dir().join("storage-token"), format!("{STORAGE}\n")).expect("storage token");
    let mut cmd = Command::new(bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    d.spawn_with(cmd)
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

/// The `p` quantile (0..=1) of sorted latencies; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// CPU time (ns) the threads of process `pid` have run, from the
/// scheduler's own accounting (finer than the 10 ms ticks of
/// /proc/PID/stat). Threads that have exited are not counted.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// User and kernel CPU ticks (1/100 s) of process `pid`, from
/// /proc/PID/stat: coarse, for the user/kernel split of a long run.
pub fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (field(11), field(12))
}

/// A load generator's connection: writes prepared HTTP/1.1 requests on one
/// keep-alive connection and reads each answer, with none of a full
/// client's per-request work (so a benchmark measures the daemon, not its
/// client).
pub struct RawConnection {
    stream: tokio::net::UnixStream,
    buf: Vec<u8>,
}

impl RawConnection {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            stream: tokio::net::UnixStream::connect(path).await?,
            buf: Vec::with_capacity(8192),
        })
    }

    /// `POST path` of a JSON body, as request bytes to send with
    /// [`RawConnection::roundtrip`].
    pub fn post_json(path: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nhost: gatehouse\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    /// `GET path`, as request bytes.
    pub fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nhost: gatehouse\r\n\r\n").into_bytes()
    }

    /// Sends one request and reads its answer (a `Content-Length` body);
    /// returns the status.
    pub async fn roundtrip(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::AsyncWriteExt as _;
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("head is not UTF-8"))?;
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("no status"))?;
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())
                            .flatten()
                    })
                    .ok_or_else(|| bad("no content-length"))?;
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt as _;
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}
