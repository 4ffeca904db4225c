//! The process tier: the real `gatehoused` binary in a temporary
//! directory, driven through its socket, signals and exit code.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gatehouse_daemon::client::Client;
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
        // Outside the config's directory, which the daemon watches: a log
        // write there would wake its watcher on every line (as it would for
        // any busy file an operator keeps beside the config).
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).expect("logs dir");
        let log = logs.join("daemon.log");
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

    /// Starts a prepared daemon (files can be added to [`Self::dir`]
    /// between [`Self::prepare`] and this).
    pub fn spawn(mut self, setup: &Setup) -> Self {
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
                // The socket is bound (and the kernel queues connections)
                // before the daemon logs its start-up line: tests that read
                // the log right away wait for that line too (a daemon that
                // logs elsewhere just costs the wait).
                let logged = Instant::now() + Duration::from_secs(5);
                while !self.logs().contains("listening") && Instant::now() < logged {
                    std::thread::sleep(Duration::from_millis(10));
                }
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

    /// Polls the log until it holds `needle` (at most 10 s): for a line
    /// written by work the daemon does in the background, after the
    /// request that set it off has been answered.
    pub async fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.logs().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
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

/// True when running as root (tests that need a second uid skip otherwise).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
