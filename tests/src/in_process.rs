//! The in-process tier: the daemon booted inside the test process with
//! [`gatehouse_daemon::run`] on a temporary socket, stopped through the
//! shutdown future `run` takes. Same configuration text and socket API as
//! the process tier ([`crate::Daemon`]), without building or starting the
//! binary: for API tests that need neither signals nor exit codes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse_daemon::client::Client;
use gatehouse_daemon::server::Listener;
use gatehouse_daemon::state::{self, Options};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::process::{Daemon, Setup};

/// A daemon running on tasks of the test's own tokio runtime.
pub struct InProcess {
    dir: TempDir,
    /// The socket.
    pub socket: PathBuf,
    /// The main configuration file.
    pub config: PathBuf,
    daemon: Arc<state::Daemon>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl InProcess {
    /// Writes the configuration of `setup` (as [`Daemon::config_text`])
    /// into a new temporary directory, loads it, builds generation 1 and
    /// serves it. Panics with the configuration errors when it is invalid.
    /// `setup.env` is not applied (it would change the whole test process).
    pub async fn start(setup: Setup) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gh-inproc")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let config = dir.path().join("gatehouse.toml");
        std::fs::write(&config, Daemon::config_text(&setup)).expect("write config");
        let options = Options {
            config_path: config.clone(),
            socket_override: None,
        };
        let loaded = state::load_config(&options).unwrap_or_else(|e| panic!("invalid configuration:\n{e}"));
        let socket = loaded.daemon.socket.clone();
        let mode = loaded.daemon.socket_mode;
        let daemon = state::Daemon::start(options, loaded)
            .await
            .unwrap_or_else(|e| panic!("the daemon did not start:\n{e}"));
        let listener = Listener::open(&socket, mode).expect("listen");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gatehouse_daemon::run(Arc::clone(&daemon), listener, async {
            let _ = rx.await;
        }));
        Self {
            dir,
            socket,
            config,
            daemon,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A new connection.
    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await.expect("connect")
    }

    /// The daemon's shared state (generation, metrics …), for assertions
    /// the socket API does not expose.
    pub fn state(&self) -> &Arc<state::Daemon> {
        &self.daemon
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// (Re)writes the main configuration file in place.
    pub fn write_config(&self, setup: &Setup) {
        std::fs::write(&self.config, Daemon::config_text(setup)).expect("write config");
    }

    /// Resolves the shutdown future and waits for `run` to return (in-flight
    /// requests finish; the socket file is removed).
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("the run task panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // `run` stops accepting at once; its task ends with the runtime.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
