//! `gatehoused`: the daemon binary. Parses flags, sets up logging and calls
//! [`gatehouse_daemon::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gatehouse_daemon::config::DEFAULT_CONFIG_PATH;
use gatehouse_daemon::server::Listener;
use gatehouse_daemon::state::{Daemon, Options, load_config};

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
        return check_config(file);
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
    gatehouse_daemon::logging::init(&config.daemon.log_level);
    gatehouse_daemon::logging::forward_plugin_logs();
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
        let daemon = match Daemon::start(options).await {
            Ok(d) => d,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("configuration: {e}");
                }
                return ExitCode::from(1);
            }
        };
        let listener = match Listener::open(&config.daemon.socket, config.daemon.socket_mode) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        };
        match gatehouse_daemon::run(daemon, listener).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::from(1)
            }
        }
    })
}

/// Offline validation: load, resolve and construct every plugin, without
/// binding the socket. The store is opened (and migrated) in a scratch copy
/// of nothing: validation builds against a temporary directory when the
/// state directory does not exist yet.
fn check_config(file: PathBuf) -> ExitCode {
    let options = Options {
        config_path: file.clone(),
        socket_override: None,
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        eprintln!("cannot start the async runtime");
        return ExitCode::from(1);
    };
    let result = load_config(&options).and_then(|mut config| {
        // Never create or migrate the real store while validating.
        let scratch = tempdir_for_check();
        config.store.url = gatehouse_daemon::config::StoreUrl::Sqlite(scratch.join("check.db"));
        let hashing = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
        // Plugins are constructed for real (on a blocking thread, as the
        // daemon does), so their own setting checks run too.
        let task = rt
            .spawn_blocking(move || gatehouse_daemon::runtime::build(config, 1, None, &hashing).map(|_| ()));
        let built = rt.block_on(task).unwrap_or_else(|e| {
            Err(gatehouse_daemon::config::ConfigErrors::one(
                gatehouse_daemon::config::Location {
                    file: file.clone(),
                    line: None,
                }
                .error("", format!("validation failed: {e}")),
            ))
        });
        let _ = std::fs::remove_dir_all(&scratch);
        built
    });
    match result {
        Ok(()) => {
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

fn tempdir_for_check() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehoused-check-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
