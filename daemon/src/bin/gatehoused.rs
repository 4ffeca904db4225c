//! `gatehoused`: the daemon binary. Parses flags, reads the configuration
//! once, sets up logging and signals, and calls [`gatehouse_daemon::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gatehouse_daemon::config::DEFAULT_CONFIG_PATH;
use gatehouse_daemon::server::Listener;
use gatehouse_daemon::state::{Daemon, Options, Trigger, load_config};
use tokio::signal::unix::{SignalKind, signal};

/// mimalloc: the request path allocates small, short-lived buffers on every
/// worker thread; glibc's allocator spent about 12 % of the daemon's CPU on
/// them (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gatehouse local authentication daemon.
#[derive(Parser, Debug)]
#[command(name = "gatehoused", version, about)]
struct Args {
    /// The main configuration file.
    #[arg(long, short, env = "GATEHOUSE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Listen on this socket instead of `[daemon] socket`.
    #[arg(long, env = "GATEHOUSE_SOCKET")]
    socket: Option<PathBuf>,
    /// Validate FILE (and its includes and secret files) and exit: 0 when
    /// valid, 1 with the error list otherwise.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// With --check-config: read `*_credential` secrets from DIR (as
    /// systemd's `$CREDENTIALS_DIRECTORY` would be). Without it, outside
    /// the unit, they are reported as not checked.
    #[arg(long, value_name = "DIR", requires = "check_config")]
    credentials_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Internal: host a plugin library for `isolation = "process"`
    /// (started by the daemon; speaks JSON frames on stdin/stdout).
    #[command(hide = true)]
    PluginHost {
        /// The plugin library.
        library: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::PluginHost { library }) = &args.command {
        let code = gatehouse_daemon::isolation::child::run(library);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if let Some(file) = args.check_config {
        return check_config(file, args.credentials_dir);
    }
    let options = Options {
        config_path: args.config,
        socket_override: args.socket,
    };
    // Read the configuration first: it sets the log level.
    let config = match load_config(&options) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("gatehoused: invalid configuration:");
            eprint!("{errors}");
            return ExitCode::from(1);
        }
    };
    gatehouse_daemon::logging::init(&config.daemon.log_level, config.log.format);
    gatehouse_daemon::logging::forward_plugin_logs();
    // Connections are bounded by [daemon] max_connections, not by the
    // usual soft limit of 1,024 descriptors.
    match gatehouse_daemon::conn::raise_descriptor_limit() {
        Ok((before, after)) if before != after => tracing::info!(
            "descriptor limit raised from {} to {}",
            before.map_or("unlimited".into(), |n| n.to_string()),
            after.map_or("unlimited".into(), |n| n.to_string())
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the descriptor limit to its hard limit: {e}"),
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.daemon.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let socket = config.daemon.socket.clone();
        let socket_mode = config.daemon.socket_mode;
        let daemon = match Daemon::start(options, config).await {
            Ok(d) => d,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("configuration: {e}");
                }
                return ExitCode::from(1);
            }
        };
        let listener = match Listener::open(&socket, socket_mode) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        };
        let (shutdown, reloader) = match signals(&daemon) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let result = gatehouse_daemon::run(daemon, listener, shutdown).await;
        reloader.abort();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::from(1)
            }
        }
    })
}

/// SIGHUP reloads (the returned task); SIGTERM and SIGINT resolve the
/// returned shutdown future.
fn signals(
    daemon: &std::sync::Arc<Daemon>,
) -> std::io::Result<(impl Future<Output = ()> + use<>, tokio::task::JoinHandle<()>)> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let reloader = {
        let daemon = std::sync::Arc::clone(daemon);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                // logrotate's postrotate sends SIGHUP: reopen, then reload
                daemon.reopen_logs();
                let _ = daemon.reload(Trigger::Signal).await;
            }
        })
    };
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        gatehouse_daemon::systemd::stopping();
    };
    Ok((shutdown, reloader))
}

/// Offline validation: load, resolve and construct every plugin, without
/// binding the socket, in a private scratch directory
/// ([`gatehouse_daemon::state::check_config`]).
fn check_config(file: PathBuf, credentials_dir: Option<PathBuf>) -> ExitCode {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        eprintln!("cannot start the async runtime");
        return ExitCode::from(1);
    };
    // Plugins are constructed for real (on a blocking thread, as the
    // daemon does), so their own setting checks run too.
    let path = file.clone();
    let task =
        rt.spawn_blocking(move || gatehouse_daemon::state::check_config(&path, credentials_dir.as_deref()));
    let result = rt.block_on(task).unwrap_or_else(|e| {
        Err(gatehouse_daemon::config::ConfigErrors::one(
            gatehouse_daemon::config::Location {
                file: file.clone(),
                line: None,
            }
            .error("", format!("validation failed: {e}")),
        ))
    });
    match result {
        Ok(notes) => {
            for note in &notes {
                eprintln!("warning: {note}");
            }
            println!("{}: configuration is valid", file.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            eprintln!("{} error(s)", errors.0.len());
            ExitCode::from(1)
        }
    }
}
