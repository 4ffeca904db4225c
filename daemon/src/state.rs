//! [`Daemon`]: the state every request handler shares, and the
//! transactional reload that replaces its generation.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use gatehouse_sdk::proto::{ConfigErrorEntry, ErrorCode};

use crate::registry::Spec;

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
    /// The audit trail.
    pub audit: crate::audit::Audit,
    /// Logins waiting for a challenge answer.
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
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    Ok(config)
}

fn hashing_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

impl Trigger {
    /// The stable name in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FileChange => "file_change",
            Self::Signal => "signal",
            Self::Api => "api",
        }
    }
}

impl Daemon {
    /// Audits a reload (the daemon itself is the peer: triggers other than
    /// the API have no caller).
    fn audit_reload(&self, trigger: Trigger, generation: u64, ok: bool) {
        let me = crate::access::Peer {
            uid: self.daemon_uid,
            gid: 0,
            pid: i32::try_from(std::process::id()).ok(),
        };
        self.audit.record(&crate::audit::Event {
            target: Some(format!("generation {generation}")),
            reason: Some(trigger.as_str().to_owned()),
            ..crate::audit::Event::new(
                "reload",
                &me,
                "",
                if ok {
                    "success"
                } else {
                    ErrorCode::InvalidConfig.as_str()
                },
            )
        });
    }

    /// Reopens the audit file (SIGHUP: logrotate moved it).
    pub fn reopen_logs(&self) {
        self.audit.reopen();
    }

    /// Builds generation 1 from `config`, the configuration the caller
    /// loaded with [`load_config`] (the files are read once at start-up:
    /// the log level and worker count the caller took from `config` are
    /// the ones this generation serves with). Plugins are constructed on a
    /// blocking thread: construction may wait for child processes.
    pub async fn start(options: Options, config: Config) -> Result<Arc<Self>, ConfigErrors> {
        crate::statedir::secure(&config.daemon.state_dir)
            .map_err(|e| ConfigErrors::one(Location::file(&config.main_file).error("daemon.state_dir", e)))?;
        let hashing = Arc::new(tokio::sync::Semaphore::new(hashing_permits()));
        let h = Arc::clone(&hashing);
        let runtime = tokio::task::spawn_blocking(move || runtime::build(config, 1, None, &h))
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
        metrics.started(1);
        let (reload_notify, _) = tokio::sync::watch::channel(1);
        let audit = match runtime.config.log.audit {
            config::log::AuditSink::File => crate::audit::Audit::new(&runtime.config.daemon.state_dir),
            config::log::AuditSink::Log => crate::audit::Audit::log_only(),
        };
        Ok(Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            metrics,
            daemon_uid: current_uid(),
            hashing,
            audit,
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
                self.audit_reload(trigger, generation, true);
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
                self.audit_reload(trigger, current.generation, false);
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
    if old.log.format != new.log.format {
        errors.push(loc.error("log.format", restart));
    }
    if old.log.audit != new.log.audit {
        errors.push(loc.error("log.audit", restart));
    }
    if old.forward_auth.as_ref().map(|f| f.listen) != new.forward_auth.as_ref().map(|f| f.listen) {
        errors.push(loc.error("forward_auth.listen", restart));
    }
    let nss_socket = |c: &Config| c.host.as_ref().and_then(|h| h.nss_socket.clone());
    if nss_socket(old) != nss_socket(new) {
        errors.push(loc.error("host.nss_socket", restart));
    }
    let issuer_listener = |c: &Config| c.issuer.as_ref().map(|i| (i.listen, i.tls.clone()));
    if issuer_listener(old) != issuer_listener(new) {
        errors.push(loc.error("issuer.listen", restart));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Offline validation (`gatehoused --check-config`): loads and resolves
/// the configuration at `path` and constructs every plugin, without binding
/// a socket or touching the configured state directory. The store and the
/// plugins' state live in a private temporary directory (random name, mode
/// 0700, created exclusively) that is removed afterwards.
///
/// Blocking: call it on a blocking thread of a tokio runtime (plugins may
/// spawn tasks while they are built).
pub fn check_config(
    path: &std::path::Path,
    credentials_dir: Option<&std::path::Path>,
) -> Result<Vec<ConfigErrorEntry>, ConfigErrors> {
    let credentials = match credentials_dir {
        Some(dir) => config::secrets::Credentials::Directory(dir.to_owned()),
        None if std::env::var_os("CREDENTIALS_DIRECTORY").is_some() => {
            config::secrets::Credentials::FromEnvironment
        }
        None => config::secrets::Credentials::Unchecked,
    };
    let mut config = config::load_with(path, &credentials)?;
    config.http.warn_if_dangerous();
    let mut notes = std::mem::take(&mut config.warnings);
    // What start-up would refuse before building anything.
    crate::statedir::check(&config.daemon.state_dir)
        .map_err(|e| ConfigErrors::one(Location::file(&config.main_file).error("daemon.state_dir", e)))?;
    config.credentials = match credentials {
        checked @ (config::secrets::Credentials::Directory(_)
        | config::secrets::Credentials::FromEnvironment) => checked,
        config::secrets::Credentials::Unchecked => {
            let unchecked = config
                .authenticators
                .iter()
                .map(|a| {
                    (
                        format!("authenticators[{:?}]", a.name),
                        a.settings(),
                        a.setting_location(""),
                    )
                })
                .chain(config.verifiers.iter().map(|v| {
                    (
                        format!("verifiers[{:?}]", v.name),
                        v.settings(),
                        v.setting_location(""),
                    )
                }))
                .collect::<Vec<_>>();
            let lines = config
                .authenticators
                .iter()
                .map(|a| &a.setting_lines)
                .chain(config.verifiers.iter().map(|v| &v.setting_lines));
            for ((key, settings, mut location), lines) in unchecked.into_iter().zip(lines) {
                for k in config::secrets::credential_keys(settings) {
                    location.line = lines.get(&k).copied().or(location.line);
                    notes.push(location.error(
                        format!("{key}.settings.{k}"),
                        "not checked outside the unit (a systemd credential); the instance was not built: \
                         pass --credentials-dir DIR to check it",
                    ));
                }
            }
            config::secrets::Credentials::Unchecked
        }
    };
    let scratch = tempfile::Builder::new()
        .prefix("gatehoused-check-")
        .tempdir()
        .map_err(|e| {
            ConfigErrors::one(
                Location::file(path).error("", format!("cannot create a scratch directory: {e}")),
            )
        })?;
    // Never create or migrate the real store, nor write plugin state
    // (persisted keys …) into the real state directory, while validating.
    config.store.url = config::StoreUrl::Sqlite(scratch.path().join("check.db"));
    config.daemon.state_dir = scratch.path().join("state");
    if let Some(issuer) = &mut config.issuer {
        issuer.key_file = scratch.path().join("issuer-keys.json");
    }
    let hashing = Arc::new(tokio::sync::Semaphore::new(1));
    let built = runtime::build(config, 1, None, &hashing).map(drop);
    drop(scratch);
    built.map(|()| notes)
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by the process's effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration is read once at start-up: `start` builds from the
    /// `Config` the caller loaded (which set the log level and worker
    /// count), not from a second read that could see another file.
    #[tokio::test(flavor = "multi_thread")]
    async fn start_builds_from_the_configuration_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("g.toml");
        std::fs::write(
            &main,
            "[daemon]\nstate_dir = \"st\"\n[[authenticators]]\nname = \"First\"\ntype = \"local\"\n",
        )
        .unwrap();
        let options = Options {
            config_path: main.clone(),
            socket_override: None,
        };
        let config = load_config(&options).unwrap();
        // the file changes between the read and the build
        std::fs::write(&main, "[[authenticators]]\nname = \"Second\"\ntype = \"local\"\n").unwrap();
        let daemon = Daemon::start(options, config).await.unwrap();
        let rt = daemon.runtime();
        assert_eq!(rt.generation, 1);
        let names: Vec<&str> = rt.authenticators.iter().map(|a| a.spec.name.as_str()).collect();
        assert_eq!(names, ["First"]);
        assert_eq!(rt.config.daemon.state_dir, dir.path().join("st"));
    }

    /// `--check-config` used `$TMPDIR/gatehoused-check-<pid>`: anyone who
    /// guessed the pid could plant a symlink there and have the check
    /// create (and then delete) files wherever it pointed.
    #[tokio::test(flavor = "multi_thread")]
    async fn check_config_ignores_a_planted_predictable_scratch_path() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("keep"), "precious").unwrap();
        let predictable = std::env::temp_dir().join(format!("gatehoused-check-{}", std::process::id()));
        let _ = std::fs::remove_file(&predictable);
        std::os::unix::fs::symlink(&victim, &predictable).unwrap();

        let main = dir.path().join("g.toml");
        std::fs::write(
            &main,
            "[daemon]\nstate_dir = \"st\"\n[[authenticators]]\nname = \"L\"\ntype = \"local\"\n",
        )
        .unwrap();
        let result = tokio::task::spawn_blocking(move || check_config(&main, None))
            .await
            .unwrap();
        let _ = std::fs::remove_file(&predictable);
        assert_eq!(result, Ok(Vec::new()));
        let names: Vec<_> = std::fs::read_dir(&victim)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keep"], "nothing written through the planted link");
        assert_eq!(std::fs::read_to_string(victim.join("keep")).unwrap(), "precious");
        assert!(
            !dir.path().join("st").exists(),
            "the real state directory is untouched"
        );
    }

    /// `--check-config` passed a state directory that start-up refuses.
    #[tokio::test(flavor = "multi_thread")]
    async fn check_config_refuses_what_start_up_refuses_about_the_state_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        for state_dir in ["shared", "file/st"] {
            let main = dir.path().join("g.toml");
            std::fs::write(&main, format!("[daemon]\nstate_dir = \"{state_dir}\"\n")).unwrap();
            let config = load_config(&Options {
                config_path: main.clone(),
                socket_override: None,
            })
            .unwrap();
            let start = Daemon::start(
                Options {
                    config_path: main.clone(),
                    socket_override: None,
                },
                config,
            )
            .await
            .map(drop)
            .unwrap_err();
            let check = tokio::task::spawn_blocking(move || check_config(&main, None))
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(start.0[0].key.as_deref(), Some("daemon.state_dir"), "{start}");
            assert_eq!(
                check.0[0].key.as_deref(),
                Some("daemon.state_dir"),
                "{state_dir}: {check}"
            );
        }
    }

    /// A `*_credential` setting checked outside the unit gave a false
    /// "$CREDENTIALS_DIRECTORY is not set" plus the plugin's follow-on
    /// "required" error. Now: a note without a directory, a real check
    /// with `--credentials-dir`, and a missing credential one error only.
    #[tokio::test(flavor = "multi_thread")]
    async fn credentials_are_noted_outside_the_unit_and_checked_with_a_directory() {
        if std::env::var_os("CREDENTIALS_DIRECTORY").is_some() {
            return; // running inside a unit: the environment decides
        }
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("g.toml");
        std::fs::write(
            &main,
            "[daemon]\nstate_dir = \"st\"\n[[verifiers]]\nname = \"S\"\ntype = \"static_object\"\n\
             [verifiers.settings]\nstorage_token_credential = \"tok\"\n",
        )
        .unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        let check = |creds: Option<std::path::PathBuf>| {
            let main = main.clone();
            tokio::task::spawn_blocking(move || check_config(&main, creds.as_deref()))
        };
        let notes = check(None).await.unwrap().unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(
            notes[0].key.as_deref(),
            Some("verifiers[\"S\"].settings.storage_token_credential")
        );
        assert_eq!(notes[0].line, Some(7));
        assert!(
            notes[0].message.contains("not checked outside the unit"),
            "{notes:?}"
        );
        // a directory without the credential: one error, no follow-on
        let e = check(Some(creds.clone())).await.unwrap().unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].message.contains("cannot read secret file"), "{e}");
        // with it: checked, valid, nothing to note
        std::fs::write(creds.join("tok"), "a-long-enough-storage-token\n").unwrap();
        assert_eq!(check(Some(creds)).await.unwrap(), Ok(Vec::new()));
    }
}
