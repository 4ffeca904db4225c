//! The daemon side: one child per isolated authenticator, restarted with
//! backoff after a crash.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use gatehouse_sdk::abi::{CreateConfig, KIND_AUTHENTICATOR, KIND_VERIFIER, method};
use gatehouse_sdk::{
    Authenticator, Context, FinishRequest, LoginStep, Metadata, PasswordLogin, PluginError, Redirect, Secret,
    StartRequest, VerifiedToken, Verifier, VerifyRequest, async_trait,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use super::{Reply, Request};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the child may take to load the library and build the instance.
const START_TIMEOUT: Duration = Duration::from_secs(15);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<serde_json::Value, PluginError>>>>>;

/// A running child.
struct Conn {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Pending,
    /// Kept so dropping the connection kills the child.
    _child: Child,
}

enum State {
    Running(Arc<Conn>),
    Down { until: Instant },
}

struct Inner {
    exe: PathBuf,
    library: PathBuf,
    kind: u32,
    type_name: String,
    config: CreateConfig,
    state: tokio::sync::Mutex<State>,
    backoff: Mutex<Duration>,
    next_id: AtomicU64,
    starts: AtomicU64,
}

/// An authenticator or verifier hosted in a child process.
pub struct Isolated {
    inner: Arc<Inner>,
}

impl Isolated {
    /// Starts the child and creates the instance; a construction error is
    /// returned as the plugin reported it (e.g. `Misconfigured`).
    pub async fn start(
        library: PathBuf,
        type_name: String,
        config: CreateConfig,
    ) -> Result<Self, PluginError> {
        let exe = std::env::current_exe()
            .map_err(|e| PluginError::Internal(format!("cannot find the gatehoused binary: {e}")))?;
        Self::start_with(exe, library, type_name, config).await
    }

    /// Starts a child hosting a verifier.
    pub async fn start_verifier(
        library: PathBuf,
        type_name: String,
        config: CreateConfig,
    ) -> Result<Self, PluginError> {
        let exe = std::env::current_exe()
            .map_err(|e| PluginError::Internal(format!("cannot find the gatehoused binary: {e}")))?;
        Self::launch(exe, library, KIND_VERIFIER, type_name, config).await
    }

    /// As [`Isolated::start`], with the `gatehoused` binary to run as host.
    pub async fn start_with(
        exe: PathBuf,
        library: PathBuf,
        type_name: String,
        config: CreateConfig,
    ) -> Result<Self, PluginError> {
        Self::launch(exe, library, KIND_AUTHENTICATOR, type_name, config).await
    }

    async fn launch(
        exe: PathBuf,
        library: PathBuf,
        kind: u32,
        type_name: String,
        config: CreateConfig,
    ) -> Result<Self, PluginError> {
        let inner = Arc::new(Inner {
            exe,
            library,
            kind,
            type_name,
            config,
            state: tokio::sync::Mutex::new(State::Down {
                until: Instant::now(),
            }),
            backoff: Mutex::new(FIRST_BACKOFF),
            next_id: AtomicU64::new(1),
            starts: AtomicU64::new(0),
        });
        let conn = Inner::spawn(&inner).await?;
        *inner.state.lock().await = State::Running(conn);
        Ok(Self { inner })
    }

    /// How many times a child was started (1 + restarts).
    pub fn starts(&self) -> u64 {
        self.inner.starts.load(Ordering::Relaxed)
    }

    async fn call<Req: serde::Serialize, Res: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        request: &Req,
    ) -> Result<Res, PluginError> {
        let request = serde_json::to_value(request).map_err(|e| PluginError::Internal(e.to_string()))?;
        let conn = Inner::conn(&self.inner).await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let value = Inner::roundtrip(
            &conn,
            &Request::Call {
                id,
                method: method.to_owned(),
                request,
            },
            id,
        )
        .await?;
        serde_json::from_value(value)
            .map_err(|e| PluginError::Internal(format!("unreadable {method} result: {e}")))
    }
}

impl Inner {
    /// Starts a child, creates the instance in it.
    async fn spawn(this: &Arc<Self>) -> Result<Arc<Conn>, PluginError> {
        let mut child = Command::new(&this.exe)
            .arg("plugin-host")
            .arg(&this.library)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| PluginError::Unavailable(format!("cannot start the plugin host: {e}")))?;
        this.starts.fetch_add(1, Ordering::Relaxed);
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| PluginError::Internal("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| PluginError::Internal("no stdout".into()))?;
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let conn = Arc::new(Conn {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Arc::clone(&pending),
            _child: child,
        });
        let weak = Arc::downgrade(this);
        let weak_conn = Arc::downgrade(&conn);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Reply>(&line) {
                    Ok(reply) => {
                        let tx = pending.lock().ok().and_then(|mut p| p.remove(&reply.id));
                        if let Some(tx) = tx {
                            let _ = tx.send(reply.result);
                        }
                    }
                    Err(e) => tracing::warn!("plugin host sent a bad frame: {e}"),
                }
            }
            // The child is gone: fail what was in flight, schedule a restart.
            let drained: Vec<_> = pending
                .lock()
                .map(|mut p| p.drain().collect())
                .unwrap_or_default();
            for (_, tx) in drained {
                let _ = tx.send(Err(PluginError::Unavailable("the plugin host exited".into())));
            }
            Inner::crashed(weak, weak_conn).await;
        });
        let id = this.next_id.fetch_add(1, Ordering::Relaxed);
        let created = tokio::time::timeout(
            START_TIMEOUT,
            Self::roundtrip(
                &conn,
                &Request::Create {
                    id,
                    kind: this.kind,
                    type_name: this.type_name.clone(),
                    config: this.config.clone(),
                },
                id,
            ),
        )
        .await
        .map_err(|_| PluginError::Unavailable("the plugin host did not start in time".into()))?;
        created.map(|_| conn)
    }

    async fn crashed(this: Weak<Self>, conn: Weak<Conn>) {
        let Some(inner) = this.upgrade() else {
            return; // the authenticator was dropped on purpose
        };
        let backoff = {
            let mut b = inner
                .backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = *b;
            *b = (*b * 2).min(MAX_BACKOFF);
            now
        };
        {
            let mut state = inner.state.lock().await;
            let is_current =
                matches!(&*state, State::Running(c) if conn.upgrade().is_some_and(|cc| Arc::ptr_eq(c, &cc)));
            if !is_current {
                return;
            }
            tracing::error!(
                library = %inner.library.display(),
                "plugin host crashed; restarting in {}ms",
                backoff.as_millis()
            );
            *state = State::Down {
                until: Instant::now() + backoff,
            };
        }
        drop(inner);
        tokio::time::sleep(backoff).await;
        if let Some(inner) = this.upgrade() {
            let _ = Inner::conn(&inner).await;
        }
    }

    /// The running child, restarting it when its backoff has passed.
    /// (Boxed: a restart spawns a reader task that may call this again.)
    fn conn(
        this: &Arc<Self>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Arc<Conn>, PluginError>> + Send + '_>>
    {
        Box::pin(Self::conn_inner(this))
    }

    async fn conn_inner(this: &Arc<Self>) -> Result<Arc<Conn>, PluginError> {
        let mut state = this.state.lock().await;
        match &*state {
            State::Running(c) => Ok(Arc::clone(c)),
            State::Down { until } if Instant::now() < *until => {
                Err(PluginError::Unavailable("the plugin host is restarting".into()))
            }
            State::Down { .. } => match Self::spawn(this).await {
                Ok(c) => {
                    tracing::info!(library = %this.library.display(), "plugin host restarted");
                    *state = State::Running(Arc::clone(&c));
                    Ok(c)
                }
                Err(e) => {
                    let backoff = {
                        let mut b = this
                            .backoff
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let now = *b;
                        *b = (*b * 2).min(MAX_BACKOFF);
                        now
                    };
                    *state = State::Down {
                        until: Instant::now() + backoff,
                    };
                    Err(e)
                }
            },
        }
    }

    async fn roundtrip(conn: &Conn, request: &Request, id: u64) -> Result<serde_json::Value, PluginError> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = conn.pending.lock() {
            p.insert(id, tx);
        }
        let mut line = serde_json::to_vec(request).map_err(|e| PluginError::Internal(e.to_string()))?;
        line.push(b'\n');
        {
            let mut stdin = conn.stdin.lock().await;
            if let Err(e) = stdin.write_all(&line).await {
                if let Ok(mut p) = conn.pending.lock() {
                    p.remove(&id);
                }
                return Err(PluginError::Unavailable(format!("the plugin host is gone: {e}")));
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(PluginError::Unavailable("the plugin host exited".into())))
    }
}

#[async_trait]
impl Authenticator for Isolated {
    async fn login(&self, _ctx: &Context, request: PasswordLogin) -> Result<LoginStep, PluginError> {
        let r = self.call(method::LOGIN, &request).await;
        if r.is_ok() {
            *self
                .inner
                .backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = FIRST_BACKOFF;
        }
        r
    }

    async fn continue_login(
        &self,
        _ctx: &Context,
        state: serde_json::Value,
        response: Secret,
    ) -> Result<LoginStep, PluginError> {
        self.call(
            method::CONTINUE_LOGIN,
            &gatehouse_sdk::abi::ContinueLogin { state, response },
        )
        .await
    }

    async fn start(&self, _ctx: &Context, request: StartRequest) -> Result<Redirect, PluginError> {
        self.call(method::START, &request).await
    }

    async fn finish(&self, _ctx: &Context, request: FinishRequest) -> Result<LoginStep, PluginError> {
        self.call(method::FINISH, &request).await
    }

    async fn metadata(&self, _ctx: &Context) -> Result<Metadata, PluginError> {
        self.call(method::METADATA, &serde_json::json!({})).await
    }
}

#[async_trait]
impl Verifier for Isolated {
    async fn verify(&self, _ctx: &Context, request: &VerifyRequest) -> Result<VerifiedToken, PluginError> {
        self.call(method::VERIFY, request).await
    }
}
