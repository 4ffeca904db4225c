//! [`Daemon`]: the state every request handler shares, and the
//! transactional reload that replaces its generation.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use gatehouse_sdk::proto::ConfigErrorEntry;

use crate::config::{self, Config, ConfigErrors, Location};
use crate::metrics::Metrics;
use crate::runtime::{self, Runtime};
use crate::systemd;

/// What set off a reload (for logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A watched file changed.
    FileChange,
    /// SIGHUP.
    Signal,
    /// `POST /v1/reload`.
    Api,
}

/// Options fixed for the daemon's lifetime.
#[derive(Clone, Debug)]
pub struct Options {
    /// The main configuration file.
    pub config_path: PathBuf,
    /// `--socket`, overriding `[daemon] socket`.
    pub socket_override: Option<PathBuf>,
}

/// The shared daemon state.
pub struct Daemon {
    runtime: ArcSwap<Runtime>,
    /// Metrics.
    pub metrics: Metrics,
    /// The uid the daemon runs as.
    pub daemon_uid: u32,
    /// Limits concurrent password hashing.
    pub hashing: Arc<tokio::sync::Semaphore>,
    /// Failed-login counters (outlive generations).
    pub lockout: crate::lockout::Lockout,
    /// The audit trail.
    pub audit: crate::audit::Audit,
    /// Logins waiting for a challenge answer.
    pub challenges: crate::challenges::Challenges,
    options: Options,
    reload_lock: tokio::sync::Mutex<()>,
    last_reload_error: Mutex<Option<String>>,
    reload_notify: tokio::sync::watch::Sender<u64>,
}

/// Loads the configuration for `options` (applying `--socket`).
pub fn load_config(options: &Options) -> Result<Config, ConfigErrors> {
    let mut config = config::load(&options.config_path)?;
    if let Some(s) = &options.socket_override {
        config.daemon.socket = s.clone();
    }
    config.http.warn_if_dangerous();
    Ok(config)
}

fn hashing_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

impl Daemon {
    /// Loads the configuration and builds generation 1 (on a blocking
    /// thread: plugin construction may wait for child processes).
    pub async fn start(options: Options) -> Result<Arc<Self>, ConfigErrors> {
        let hashing = Arc::new(tokio::sync::Semaphore::new(hashing_permits()));
        let h = Arc::clone(&hashing);
        let o = options.clone();
        let runtime = tokio::task::spawn_blocking(move || {
            let config = load_config(&o)?;
            runtime::build(config, 1, None, &h)
        })
        .await
        .map_err(|e| {
            ConfigErrors::one(ConfigErrorEntry {
                file: options.config_path.display().to_string(),
                line: None,
                key: None,
                message: format!("startup task failed: {e}"),
            })
        })??;
        let metrics = Metrics::default();
        metrics.reload(true, 1);
        let (reload_notify, _) = tokio::sync::watch::channel(1);
        let audit = crate::audit::Audit::new(&runtime.config.daemon.state_dir);
        Ok(Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            metrics,
            daemon_uid: current_uid(),
            hashing,
            lockout: crate::lockout::Lockout::default(),
            audit,
            challenges: crate::challenges::Challenges::default(),
            options,
            reload_lock: tokio::sync::Mutex::new(()),
            last_reload_error: Mutex::new(None),
            reload_notify,
        }))
    }

    /// The generation serving now. Hold the `Arc` for a whole request.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Why the last reload failed, if it did.
    pub fn last_reload_error(&self) -> Option<String> {
        self.last_reload_error.lock().ok().and_then(|g| g.clone())
    }

    /// Changes of the serving generation (for the file watcher).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reload_notify.subscribe()
    }

    /// Reloads: parse → validate → construct every plugin → swap. On any
    /// error the running generation stays and the error is recorded.
    pub async fn reload(&self, trigger: Trigger) -> Result<u64, ConfigErrors> {
        let _guard = self.reload_lock.lock().await;
        systemd::reloading();
        let current = self.runtime();
        let options = self.options.clone();
        let hashing = Arc::clone(&self.hashing);
        let next = current.generation + 1;
        let prev = Arc::clone(&current);
        let result = tokio::task::spawn_blocking(move || {
            let config = load_config(&options)?;
            check_restart_only(&prev.config, &config)?;
            runtime::build(config, next, Some(&prev), &hashing)
        })
        .await
        .unwrap_or_else(|e| {
            Err(ConfigErrors::one(ConfigErrorEntry {
                file: self.options.config_path.display().to_string(),
                line: None,
                key: None,
                message: format!("reload task failed: {e}"),
            }))
        });
        match result {
            Ok(runtime) => {
                let generation = runtime.generation;
                let names: Vec<&str> = runtime
                    .authenticators
                    .iter()
                    .map(|a| a.spec.name.as_str())
                    .collect();
                tracing::info!(?trigger, generation, authenticators = ?names, "configuration reloaded");
                self.runtime.store(Arc::new(runtime));
                if let Ok(mut e) = self.last_reload_error.lock() {
                    *e = None;
                }
                self.metrics.reload(true, generation);
                self.reload_notify.send_replace(generation);
                systemd::ready(&format!("serving generation {generation}"));
                Ok(generation)
            }
            Err(errors) => {
                let summary = errors.summary();
                tracing::error!(
                    ?trigger,
                    generation = current.generation,
                    "reload refused, keeping the running configuration: {summary}"
                );
                if let Ok(mut e) = self.last_reload_error.lock() {
                    *e = Some(summary.clone());
                }
                self.metrics.reload(false, current.generation);
                systemd::ready(&format!(
                    "serving generation {}; last reload failed: {summary}",
                    current.generation
                ));
                Err(errors)
            }
        }
    }

    /// How long a graceful shutdown may take.
    pub fn shutdown_timeout(&self) -> Duration {
        self.runtime().config.daemon.shutdown_timeout
    }

    /// When the serving generation was loaded, as RFC 3339.
    pub fn reloaded_at(&self) -> String {
        rfc3339(self.runtime().loaded_at)
    }
}

/// Formats a time as RFC 3339 (UTC, seconds).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Settings that only a restart can change. A reload that changes one is
/// refused whole rather than applied in part.
fn check_restart_only(old: &Config, new: &Config) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let loc = Location::file(&new.main_file);
    let restart = "cannot change on reload; restart gatehoused to apply it";
    if old.daemon.socket != new.daemon.socket {
        errors.push(loc.error("daemon.socket", restart));
    }
    if old.daemon.socket_mode != new.daemon.socket_mode {
        errors.push(loc.error("daemon.socket_mode", restart));
    }
    if old.daemon.state_dir != new.daemon.state_dir {
        errors.push(loc.error("daemon.state_dir", restart));
    }
    if old.daemon.worker_threads != new.daemon.worker_threads {
        errors.push(loc.error("daemon.worker_threads", restart));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by the process's effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}
