//! The plugin side of the ABI: what [`export_plugin!`](crate::export_plugin)
//! expands to. Every entry point catches panics and turns them into
//! [`PluginError::Internal`]; futures run on a multi-threaded tokio runtime
//! the plugin library owns.

use std::ffi::{CString, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use super::{
    ContinueLogin, CreateConfig, Descriptor, HostV1, KIND_AUTHENTICATOR, KIND_VERIFIER, PluginV1,
    STATUS_ERROR, STATUS_OK, copy_bytes, method,
};
use crate::{
    Authenticator, AuthenticatorFactory, Context, Level, Logger, Plugin, PluginConfig, PluginError, Verifier,
    VerifierFactory,
};

struct State {
    authenticators: Vec<Box<dyn AuthenticatorFactory>>,
    verifiers: Vec<Box<dyn VerifierFactory>>,
    host: Option<HostV1>,
    runtime: tokio::runtime::Runtime,
}

static STATE: OnceLock<State> = OnceLock::new();
static VTABLE: OnceLock<PluginV1> = OnceLock::new();
static DESCRIPTOR: OnceLock<CString> = OnceLock::new();

enum Instance {
    Authenticator(Arc<dyn Authenticator>, Context),
    Verifier(Arc<dyn Verifier>, Context),
}

/// A pointer that may cross threads (the daemon's `user_data`).
struct UserData(*mut c_void);
// SAFETY: the ABI contract allows `complete` to be called from any thread
// with the `user_data` the daemon passed.
unsafe impl Send for UserData {}

/// Entry point behind [`export_plugin!`](crate::export_plugin).
///
/// # Safety
/// `host` must be null or point to a valid [`HostV1`] for the duration of
/// the call.
#[doc(hidden)]
pub unsafe fn entry(host: *const HostV1, make: fn() -> Box<dyn Plugin>) -> *const PluginV1 {
    // SAFETY: the caller guarantees `host` is null or valid.
    let host = unsafe { host.as_ref() }.copied();
    let built = catch_unwind(AssertUnwindSafe(|| {
        let state = STATE.get_or_init(|| {
            let plugin = make();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("gatehouse-plugin")
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("cannot start the plugin runtime: {e}"));
            let descriptor = Descriptor {
                sdk_version: crate::SDK_VERSION.to_owned(),
                name: plugin.name().to_owned(),
                authenticators: plugin
                    .authenticators()
                    .iter()
                    .map(|f| super::AuthenticatorType {
                        type_name: f.type_name().to_owned(),
                        flow: f.flow(),
                        config_schema: f.config_schema(),
                        secret_settings: f.secret_settings().iter().map(|s| (*s).to_owned()).collect(),
                    })
                    .collect(),
                verifiers: plugin
                    .verifiers()
                    .iter()
                    .map(|f| super::VerifierType {
                        type_name: f.type_name().to_owned(),
                        config_schema: f.config_schema(),
                        secret_settings: f.secret_settings().iter().map(|s| (*s).to_owned()).collect(),
                    })
                    .collect(),
            };
            let json = serde_json::to_string(&descriptor).unwrap_or_else(|_| "{}".into());
            let _ = DESCRIPTOR.set(CString::new(json).unwrap_or_default());
            State {
                authenticators: plugin.authenticators(),
                verifiers: plugin.verifiers(),
                host,
                runtime,
            }
        });
        let _ = state;
        VTABLE.get_or_init(|| PluginV1 {
            abi_major: super::ABI_MAJOR,
            abi_minor: super::ABI_MINOR,
            descriptor: DESCRIPTOR.get().map_or(std::ptr::null(), |c| c.as_ptr()),
            create,
            call,
            destroy,
        }) as *const PluginV1
    }));
    built.unwrap_or(std::ptr::null())
}

struct HostLogger {
    instance: String,
}

impl Logger for HostLogger {
    fn log(&self, level: Level, message: &str) {
        if let Some(host) = STATE.get().and_then(|s| s.host) {
            let level = match level {
                Level::Trace => 0,
                Level::Debug => 1,
                Level::Info => 2,
                Level::Warn => 3,
                Level::Error => 4,
            };
            // SAFETY: the daemon's log function is valid for the life of
            // the process and copies both buffers during the call.
            unsafe {
                (host.log)(
                    level,
                    self.instance.as_ptr(),
                    self.instance.len(),
                    message.as_ptr(),
                    message.len(),
                );
            }
        }
    }
}

fn error_json(e: &PluginError) -> Vec<u8> {
    serde_json::to_vec(e)
        .unwrap_or_else(|_| br#"{"kind":"internal","message":"unserializable error"}"#.to_vec())
}

fn build_instance(kind: u32, type_name: &str, config: &[u8]) -> Result<Instance, PluginError> {
    let state = STATE
        .get()
        .ok_or_else(|| PluginError::Internal("plugin not initialised".into()))?;
    let config: CreateConfig = serde_json::from_slice(config)
        .map_err(|e| PluginError::Misconfigured(format!("invalid create config: {e}")))?;
    let mut ctx = Context::new(config.name.clone())
        .with_logger(Arc::new(HostLogger {
            instance: config.name.clone(),
        }))
        .with_http(config.http.clone());
    if let Some(dir) = &config.state_dir {
        ctx = ctx.with_state_dir(dir);
    }
    if let Some(dir) = &config.config_dir {
        ctx = ctx.with_config_dir(dir);
    }
    let plugin_config = PluginConfig::new(config.name, config.settings).with_context(ctx.clone());
    // Factories may spawn tasks or create I/O objects: run them inside the
    // plugin's runtime.
    let _guard = state.runtime.enter();
    match kind {
        KIND_AUTHENTICATOR => {
            let f = state
                .authenticators
                .iter()
                .find(|f| f.type_name() == type_name)
                .ok_or_else(|| PluginError::Misconfigured(format!("no authenticator type {type_name:?}")))?;
            Ok(Instance::Authenticator(f.build(plugin_config)?, ctx))
        }
        KIND_VERIFIER => {
            let f = state
                .verifiers
                .iter()
                .find(|f| f.type_name() == type_name)
                .ok_or_else(|| PluginError::Misconfigured(format!("no verifier type {type_name:?}")))?;
            Ok(Instance::Verifier(f.build(plugin_config)?, ctx))
        }
        other => Err(PluginError::Misconfigured(format!(
            "unknown instance kind {other}"
        ))),
    }
}

unsafe extern "C" fn create(
    kind: u32,
    type_name: *const u8,
    type_len: usize,
    config: *const u8,
    config_len: usize,
    on_error: super::CompleteFn,
    user_data: *mut c_void,
) -> *mut c_void {
    // SAFETY: the daemon passes buffers valid for the call.
    let (type_name, config) = unsafe { (copy_bytes(type_name, type_len), copy_bytes(config, config_len)) };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let type_name = String::from_utf8_lossy(&type_name).into_owned();
        build_instance(kind, &type_name, &config)
    }))
    .unwrap_or_else(|_| {
        Err(PluginError::Internal(
            "the plugin panicked while building an instance".into(),
        ))
    });
    match result {
        Ok(instance) => Box::into_raw(Box::new(instance)).cast::<c_void>(),
        Err(e) => {
            let bytes = error_json(&e);
            // SAFETY: `on_error` is the daemon's callback; it copies the
            // buffer before returning.
            unsafe { on_error(user_data, STATUS_ERROR, bytes.as_ptr(), bytes.len()) };
            std::ptr::null_mut()
        }
    }
}

async fn dispatch(instance: Instance, method: String, request: Vec<u8>) -> Result<Vec<u8>, PluginError> {
    fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PluginError> {
        serde_json::from_slice(bytes).map_err(|e| PluginError::BadRequest(format!("invalid request: {e}")))
    }
    fn out<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, PluginError> {
        serde_json::to_vec(v).map_err(|e| PluginError::Internal(format!("unserializable result: {e}")))
    }
    match (instance, method.as_str()) {
        (Instance::Authenticator(a, ctx), method::LOGIN) => out(&a.login(&ctx, parse(&request)?).await?),
        (Instance::Authenticator(a, ctx), method::CONTINUE_LOGIN) => {
            let r: ContinueLogin = parse(&request)?;
            out(&a.continue_login(&ctx, r.state, r.response).await?)
        }
        (Instance::Authenticator(a, ctx), method::START) => out(&a.start(&ctx, parse(&request)?).await?),
        (Instance::Authenticator(a, ctx), method::FINISH) => out(&a.finish(&ctx, parse(&request)?).await?),
        (Instance::Authenticator(a, ctx), method::METADATA) => out(&a.metadata(&ctx).await?),
        (Instance::Verifier(v, ctx), method::VERIFY) => out(&v.verify(&ctx, &parse(&request)?).await?),
        (_, other) => Err(PluginError::Unsupported(format!(
            "no method {other:?} on this instance"
        ))),
    }
}

unsafe extern "C" fn call(
    instance: *mut c_void,
    method: *const u8,
    method_len: usize,
    request: *const u8,
    request_len: usize,
    complete: super::CompleteFn,
    user_data: *mut c_void,
) {
    let user_data = UserData(user_data);
    // SAFETY: the daemon passes buffers valid for the call.
    let (method, request) = unsafe { (copy_bytes(method, method_len), copy_bytes(request, request_len)) };
    let finish = move |result: Result<Vec<u8>, PluginError>| {
        let user_data = user_data;
        let (status, bytes) = match result {
            Ok(b) => (STATUS_OK, b),
            Err(e) => (STATUS_ERROR, error_json(&e)),
        };
        // SAFETY: `complete` is the daemon's callback, called exactly once;
        // it copies the buffer before returning.
        unsafe { complete(user_data.0, status, bytes.as_ptr(), bytes.len()) };
    };
    let started = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the daemon passes a handle from `create` that it has not
        // destroyed; we only clone the Arcs out of it.
        let inst = unsafe { instance.cast::<Instance>().as_ref() }
            .ok_or_else(|| PluginError::Internal("null instance".into()))?;
        let inst = match inst {
            Instance::Authenticator(a, c) => Instance::Authenticator(Arc::clone(a), c.clone()),
            Instance::Verifier(v, c) => Instance::Verifier(Arc::clone(v), c.clone()),
        };
        let state = STATE
            .get()
            .ok_or_else(|| PluginError::Internal("plugin not initialised".into()))?;
        let method = String::from_utf8_lossy(&method).into_owned();
        Ok::<_, PluginError>((state, inst, method))
    }));
    match started {
        Ok(Ok((state, inst, method))) => {
            // Poll once on the caller's thread: a call that needs no I/O
            // (a cache hit, a rejected input) completes without a thread
            // hop. Otherwise the runtime takes over; its first poll
            // registers a real waker.
            let _guard = state.runtime.enter();
            let mut fut = Box::pin(dispatch(inst, method, request));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let fut = match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
                Ok(std::task::Poll::Ready(result)) => return finish(result),
                Ok(std::task::Poll::Pending) => fut,
                Err(_) => return finish(Err(PluginError::Internal("the plugin panicked".into()))),
            };
            let work = state.runtime.spawn(fut);
            state.runtime.spawn(async move {
                let result = match work.await {
                    Ok(r) => r,
                    Err(e) if e.is_panic() => Err(PluginError::Internal("the plugin panicked".into())),
                    Err(e) => Err(PluginError::Internal(format!("plugin task failed: {e}"))),
                };
                finish(result);
            });
        }
        Ok(Err(e)) => finish(Err(e)),
        Err(_) => finish(Err(PluginError::Internal("the plugin panicked".into()))),
    }
}

unsafe extern "C" fn destroy(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the handle came from `Box::into_raw` in `create` and the
        // daemon destroys it once.
        drop(unsafe { Box::from_raw(instance.cast::<Instance>()) });
    }));
}

/// Exports a [`Plugin`] from a `cdylib`: writes the one entry symbol of the
/// C ABI v1 (`gatehouse_plugin_entry`) and embeds the library's
/// [manifest](crate::abi::manifest), which the daemon reads before it
/// loads the library.
///
/// ```ignore
/// // The manifest names the crate (package name and version) and the SDK:
/// gatehouse_sdk::export_plugin!(MyPlugin);
///
/// // … and also the types the plugin provides and what it needs; the
/// // daemon then checks after loading that the plugin provides exactly
/// // these types, and `gatehouse plugins` shows them:
/// gatehouse_sdk::export_plugin!(
///     MyPlugin,
///     authenticators = ["my_type"],
///     verifiers = [],
///     capabilities = ["network"],
/// );
/// ```
///
/// `MyPlugin` is an expression that builds the plugin (a unit struct, or
/// `MyPlugin::new()`); it runs once, when the daemon loads the library.
/// Types are listed by hand because a Rust plugin's types come from trait
/// objects built at run time, which a compile-time manifest cannot call.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:expr $(,)?) => {
        $crate::export_plugin!(@entry $plugin, ::core::option::Option::None, ::core::option::Option::None, &[]);
    };
    (
        $plugin:expr,
        authenticators = [$($a:expr),* $(,)?],
        verifiers = [$($v:expr),* $(,)?],
        capabilities = [$($c:expr),* $(,)?] $(,)?
    ) => {
        $crate::export_plugin!(
            @entry $plugin,
            ::core::option::Option::Some(&[$($a),*]),
            ::core::option::Option::Some(&[$($v),*]),
            &[$($c),*]
        );
    };
    (@entry $plugin:expr, $auths:expr, $verifiers:expr, $caps:expr) => {
        /// The gatehouse plugin ABI entry point.
        ///
        /// # Safety
        /// `host` must be null or a valid `gh_host_v1`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn gatehouse_plugin_entry(
            host: *const $crate::abi::HostV1,
        ) -> *const $crate::abi::PluginV1 {
            const PARTS: $crate::abi::manifest::Parts<'static> = $crate::abi::manifest::Parts {
                name: ::core::env!("CARGO_PKG_NAME"),
                version: ::core::env!("CARGO_PKG_VERSION"),
                sdk_version: $crate::SDK_VERSION,
                authenticators: $auths,
                verifiers: $verifiers,
                capabilities: $caps,
            };
            const LEN: usize = $crate::abi::manifest::encoded_len(&PARTS);
            /// The manifest, in the section the daemon reads before loading.
            // SAFETY: a plain byte array in a section of its own name;
            // nothing else is placed there.
            #[used]
            #[unsafe(link_section = ".gatehouse_manifest")]
            static MANIFEST: [u8; LEN] = $crate::abi::manifest::encode(&PARTS);
            // Referenced from the exported entry point, so the linker keeps
            // the section however aggressively it drops unused ones.
            ::core::hint::black_box(&MANIFEST);
            fn make() -> ::std::boxed::Box<dyn $crate::Plugin> {
                ::std::boxed::Box::new($plugin)
            }
            // SAFETY: the daemon passes a valid host table (or null).
            unsafe { $crate::abi::export::entry(host, make) }
        }
    };
}
