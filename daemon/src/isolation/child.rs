//! The child side: `gatehoused plugin-host LIBRARY`.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gatehouse_sdk::abi::{KIND_AUTHENTICATOR, host};
use gatehouse_sdk::{Authenticator, Context, PluginError, Verifier};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Reply, Request};

/// Runs the host until stdin closes. Returns the process exit code.
pub fn run(library: &Path) -> i32 {
    // Frames go to the original stdout; anything the plugin prints goes to
    // stderr instead, so it cannot corrupt the protocol.
    let frames: OwnedFd = match rustix::io::dup(std::io::stdout()) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("plugin-host: cannot dup stdout: {e}");
            return 2;
        }
    };
    if let Err(e) = rustix::stdio::dup2_stdout(std::io::stderr()) {
        eprintln!("plugin-host: cannot redirect stdout: {e}");
        return 2;
    }
    let out = Arc::new(Mutex::new(std::fs::File::from(frames)));
    host::set_log_sink(|level, instance, message| {
        eprintln!(
            "plugin-host[{}] {level:?} {instance}: {message}",
            std::process::id()
        );
    });
    let lib = if library == Path::new(super::LINKED) {
        None
    } else {
        match host::load(library) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("plugin-host: {}: {e}", library.display());
                return 3;
            }
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plugin-host: {e}");
            return 2;
        }
    };
    rt.block_on(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut instance: Option<Instance> = None;
        let mut ctx = Context::new("plugin-host");
        while let Ok(Some(line)) = lines.next_line().await {
            let req: Request = match serde_json::from_str(&line) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("plugin-host: bad frame: {e}");
                    continue;
                }
            };
            match req {
                Request::Create {
                    id,
                    kind,
                    type_name,
                    config,
                } => {
                    let created = match &lib {
                        Some(lib) if kind == KIND_AUTHENTICATOR => lib
                            .create_authenticator(&type_name, &config)
                            .map(Instance::Authenticator),
                        Some(lib) => lib.create_verifier(&type_name, &config).map(Instance::Verifier),
                        None => {
                            ctx = linked_context(&config);
                            create_linked(kind, &type_name, &config, &ctx)
                        }
                    };
                    let result = created.map(|i| {
                        instance = Some(i);
                        serde_json::Value::Null
                    });
                    send(&out, &Reply { id, result });
                }
                Request::Call { id, method, request } => {
                    let Some(target) = instance.clone() else {
                        send(
                            &out,
                            &Reply {
                                id,
                                result: Err(PluginError::Internal("no instance".into())),
                            },
                        );
                        continue;
                    };
                    let out = Arc::clone(&out);
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let result = match target {
                            Instance::Authenticator(a) => dispatch(a.as_ref(), &ctx, &method, request).await,
                            Instance::Verifier(v) => verify(v.as_ref(), &ctx, &method, request).await,
                        };
                        send(&out, &Reply { id, result });
                    });
                }
            }
        }
    });
    0
}

/// The context of a linked plugin's instance in the child: the settings
/// of the `create` document, log lines to stderr (the daemon's log).
fn linked_context(config: &gatehouse_sdk::abi::CreateConfig) -> Context {
    struct StderrLogger(String);
    impl gatehouse_sdk::Logger for StderrLogger {
        fn log(&self, level: gatehouse_sdk::Level, message: &str) {
            eprintln!(
                "plugin-host[{}] {level:?} {}: {message}",
                std::process::id(),
                self.0
            );
        }
    }
    let mut ctx = Context::new(config.name.clone())
        .with_logger(Arc::new(StderrLogger(config.name.clone())))
        .with_http(config.http.clone());
    if let Some(dir) = &config.state_dir {
        ctx = ctx.with_state_dir(dir);
    }
    if let Some(dir) = &config.config_dir {
        ctx = ctx.with_config_dir(dir);
    }
    ctx
}

/// Builds an instance of one of the daemon's linked plugins.
fn create_linked(
    kind: u32,
    type_name: &str,
    config: &gatehouse_sdk::abi::CreateConfig,
    ctx: &Context,
) -> Result<Instance, PluginError> {
    use crate::registry::linked;
    let plugin_config = gatehouse_sdk::PluginConfig::new(config.name.clone(), config.settings.clone())
        .with_context(ctx.clone());
    let unknown = || PluginError::Misconfigured(format!("no linked plugin of type {type_name:?}"));
    if kind == KIND_AUTHENTICATOR {
        let f = linked::authenticators()
            .iter()
            .find(|f| f.type_name() == type_name)
            .ok_or_else(unknown)?;
        f.build(plugin_config).map(Instance::Authenticator)
    } else {
        let f = linked::verifiers()
            .iter()
            .find(|f| f.type_name() == type_name)
            .ok_or_else(unknown)?;
        f.build(plugin_config).map(Instance::Verifier)
    }
}

/// The instance a child hosts.
#[derive(Clone)]
enum Instance {
    Authenticator(Arc<dyn Authenticator>),
    Verifier(Arc<dyn Verifier>),
}

async fn verify(
    v: &dyn Verifier,
    ctx: &Context,
    method: &str,
    request: serde_json::Value,
) -> Result<serde_json::Value, PluginError> {
    if method != gatehouse_sdk::abi::method::VERIFY {
        return Err(PluginError::Unsupported(format!(
            "no method {method:?} on a verifier"
        )));
    }
    let req = serde_json::from_value(request).map_err(|e| PluginError::BadRequest(e.to_string()))?;
    serde_json::to_value(v.verify(ctx, &req).await?).map_err(|e| PluginError::Internal(e.to_string()))
}

async fn dispatch(
    auth: &dyn Authenticator,
    ctx: &Context,
    method: &str,
    request: serde_json::Value,
) -> Result<serde_json::Value, PluginError> {
    use gatehouse_sdk::abi::method as m;
    fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, PluginError> {
        serde_json::from_value(v).map_err(|e| PluginError::BadRequest(e.to_string()))
    }
    fn out<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, PluginError> {
        serde_json::to_value(v).map_err(|e| PluginError::Internal(e.to_string()))
    }
    match method {
        m::LOGIN => out(&auth.login(ctx, parse(request)?).await?),
        m::CONTINUE_LOGIN => {
            let r: gatehouse_sdk::abi::ContinueLogin = parse(request)?;
            out(&auth.continue_login(ctx, r.state, r.response).await?)
        }
        m::START => out(&auth.start(ctx, parse(request)?).await?),
        m::FINISH => out(&auth.finish(ctx, parse(request)?).await?),
        m::METADATA => out(&auth.metadata(ctx).await?),
        other => Err(PluginError::Unsupported(format!("no method {other:?}"))),
    }
}

fn send(out: &Mutex<std::fs::File>, reply: &Reply) {
    let Ok(mut line) = serde_json::to_vec(reply) else {
        return;
    };
    line.push(b'\n');
    if let Ok(mut f) = out.lock() {
        let _ = f.write_all(&line);
        let _ = f.flush();
    }
}
