//! The daemon side of the ABI: loading plugin libraries with libloading
//! (cached, never unloaded) and calling their instances as ordinary
//! [`Authenticator`]s and [`Verifier`]s.

use std::collections::HashMap;
use std::ffi::{CStr, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;

use super::{
    ABI_MAJOR, ABI_MINOR, ContinueLogin, CreateConfig, Descriptor, ENTRY_SYMBOL, HostV1, KIND_AUTHENTICATOR,
    KIND_VERIFIER, PluginV1, STATUS_OK, copy_bytes, method,
};
use crate::{
    Authenticator, Context, FinishRequest, Level, LoginStep, Metadata, PasswordLogin, PluginError, Redirect,
    Secret, StartRequest, VerifiedToken, Verifier, VerifyRequest,
};

/// Why a library cannot be used.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// `dlopen` failed.
    Open(String),
    /// The library does not export `gatehouse_plugin_entry`.
    MissingSymbol,
    /// The entry point returned null.
    NullEntry,
    /// The library speaks another ABI major version.
    AbiMismatch {
        /// The library's major.
        found: u32,
    },
    /// The descriptor is not valid JSON of the expected shape.
    BadDescriptor(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open(e) => write!(f, "cannot load: {e}"),
            Self::MissingSymbol => write!(f, "not a gatehouse plugin: the symbol {ENTRY_SYMBOL} is missing"),
            Self::NullEntry => write!(
                f,
                "{ENTRY_SYMBOL} returned null (the plugin failed to initialise)"
            ),
            Self::AbiMismatch { found } => write!(
                f,
                "plugin ABI version {found} is not supported (this gatehouse speaks ABI {ABI_MAJOR}.x)"
            ),
            Self::BadDescriptor(e) => write!(f, "invalid plugin descriptor: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// A loaded plugin library.
pub struct Library {
    /// The canonical path.
    pub path: PathBuf,
    /// What it provides.
    pub descriptor: Descriptor,
    vtable: &'static PluginV1,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path)
            .field("descriptor", &self.descriptor)
            .finish_non_exhaustive()
    }
}

type LogSink = fn(Level, &str, &str);
static LOG_SINK: OnceLock<LogSink> = OnceLock::new();
/// A library file: (device, inode).
type FileId = (u64, u64);

/// Libraries by the file they were loaded from: loaded ones, and refused
/// ones that had to stay loaded (their code ran).
static LIBRARIES: OnceLock<Mutex<HashMap<FileId, Result<&'static Library, LoadError>>>> = OnceLock::new();

/// Sets where plugin log lines go: `sink(level, instance, message)`.
pub fn set_log_sink(sink: LogSink) {
    let _ = LOG_SINK.set(sink);
}

unsafe extern "C" fn host_log(
    level: u32,
    instance: *const u8,
    instance_len: usize,
    message: *const u8,
    message_len: usize,
) {
    let _ = catch_unwind(|| {
        // SAFETY: the plugin passes buffers valid for this call.
        let (instance, message) = unsafe {
            (
                copy_bytes(instance, instance_len),
                copy_bytes(message, message_len),
            )
        };
        let level = match level {
            0 => Level::Trace,
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            _ => Level::Error,
        };
        if let Some(sink) = LOG_SINK.get() {
            sink(
                level,
                &String::from_utf8_lossy(&instance),
                &String::from_utf8_lossy(&message),
            );
        }
    });
}

static HOST: HostV1 = HostV1 {
    abi_major: ABI_MAJOR,
    abi_minor: ABI_MINOR,
    log: host_log,
};

type EntryFn = unsafe extern "C" fn(*const HostV1) -> *const PluginV1;

/// Loads a plugin library (or returns the already loaded one). Libraries
/// are never unloaded: instances and in-flight calls may outlive any
/// configuration generation.
///
/// A library is known by its file, not its path: a file replaced at the
/// same path (a new version renamed into place, as package managers do) is
/// loaded anew on the next call, while the old version stays loaded for
/// the instances still using it. (A file rewritten in place keeps its
/// identity, and the version already loaded is returned.)
pub fn load(path: &Path) -> Result<&'static Library, LoadError> {
    use std::os::unix::fs::MetadataExt as _;

    let canonical = std::fs::canonicalize(path).map_err(|e| LoadError::Open(e.to_string()))?;
    let file = std::fs::File::open(&canonical).map_err(|e| LoadError::Open(e.to_string()))?;
    let meta = file.metadata().map_err(|e| LoadError::Open(e.to_string()))?;
    let id: FileId = (meta.dev(), meta.ino());
    let cache = LIBRARIES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .map_err(|_| LoadError::Open("loader lock poisoned".into()))?;
    if let Some(known) = cache.get(&id) {
        return known.clone();
    }
    let result = open_new(file, canonical);
    if matches!(
        result,
        Ok(_) | Err(LoadError::AbiMismatch { .. } | LoadError::BadDescriptor(_))
    ) {
        cache.insert(id, result.clone());
    }
    result
}

/// Loads the library in `file`, which no loaded library came from.
fn open_new(file: std::fs::File, canonical: PathBuf) -> Result<&'static Library, LoadError> {
    use std::os::unix::io::AsRawFd as _;
    // Through the open descriptor, not the path: the dynamic loader would
    // hand back an older library loaded under the same path name. While
    // the library stays loaded its descriptor stays open, so the number
    // (and with it the name the loader records) is not reused.
    // (Without /proc, as in some containers, the path it is; a replaced
    // file is then only picked up by a restart.)
    let through_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let name = if through_fd.exists() {
        through_fd.as_path()
    } else {
        canonical.as_path()
    };
    // SAFETY: loading a library runs its initialisers. Plugin libraries
    // come from the administrator's configuration (plugin_dirs, library);
    // running their code is the point.
    let lib = unsafe { libloading::Library::new(name) }.map_err(|e| LoadError::Open(e.to_string()))?;
    // SAFETY: the symbol's type is fixed by the ABI (gatehouse_plugin.h).
    let entry: EntryFn = unsafe { lib.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }
        .map(|s| *s)
        .map_err(|_| LoadError::MissingSymbol)?;
    // SAFETY: `HOST` lives forever; the entry point may only read it.
    let vtable = unsafe { entry(&HOST) };
    // SAFETY: a non-null result points to a table that lives as long as the
    // library, which is never unloaded; `abi_major` is its first field in
    // every ABI version.
    let vtable: &'static PluginV1 = unsafe { vtable.as_ref() }.ok_or(LoadError::NullEntry)?;
    // From here on the library's code has run: it stays loaded (with its
    // descriptor open) whether it is accepted or not.
    std::mem::forget(lib);
    std::mem::forget(file);
    if vtable.abi_major != ABI_MAJOR {
        return Err(LoadError::AbiMismatch {
            found: vtable.abi_major,
        });
    }
    if vtable.descriptor.is_null() {
        return Err(LoadError::BadDescriptor("null".into()));
    }
    // SAFETY: checked non-null; the ABI requires a NUL-terminated string
    // valid forever.
    let text = unsafe { CStr::from_ptr(vtable.descriptor) }
        .to_string_lossy()
        .into_owned();
    let descriptor: Descriptor =
        serde_json::from_str(&text).map_err(|e| LoadError::BadDescriptor(e.to_string()))?;
    Ok(Box::leak(Box::new(Library {
        path: canonical,
        descriptor,
        vtable,
    })))
}

/// Receives one completion.
type Slot = tokio::sync::oneshot::Sender<(i32, Vec<u8>)>;

unsafe extern "C" fn complete_async(user_data: *mut c_void, status: i32, data: *const u8, len: usize) {
    let _ = catch_unwind(|| {
        if user_data.is_null() {
            return;
        }
        // SAFETY: `user_data` is the `Box<Slot>` leaked in `invoke`; the
        // ABI calls `complete` exactly once, so it is reclaimed once.
        let slot = unsafe { Box::from_raw(user_data.cast::<Slot>()) };
        // SAFETY: the plugin passes a buffer valid during this call.
        let bytes = unsafe { copy_bytes(data, len) };
        let _ = slot.send((status, bytes));
    });
}

unsafe extern "C" fn complete_sync(user_data: *mut c_void, _status: i32, data: *const u8, len: usize) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `user_data` points to the `Option<Vec<u8>>` on the stack of
        // `create`, which waits for this synchronous callback.
        if let Some(slot) = unsafe { user_data.cast::<Option<Vec<u8>>>().as_mut() } {
            // SAFETY: the plugin passes a buffer valid during this call.
            *slot = Some(unsafe { copy_bytes(data, len) });
        }
    }));
}

fn decode_error(bytes: &[u8]) -> PluginError {
    serde_json::from_slice(bytes).unwrap_or_else(|_| {
        PluginError::Internal(format!(
            "the plugin returned an unreadable error: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ))
    })
}

/// An instance handle inside a library.
struct Handle {
    lib: &'static Library,
    ptr: *mut c_void,
}

// SAFETY: the ABI requires `call` to be callable from any thread,
// concurrently, on one instance.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `create` and is destroyed once, here.
        unsafe { (self.lib.vtable.destroy)(self.ptr) };
    }
}

impl Handle {
    async fn invoke(&self, method: &str, request: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let user_data = Box::into_raw(Box::new(tx)).cast::<c_void>();
        // SAFETY: the handle is live (owned by `self`); the buffers outlive
        // the call; `complete_async` reclaims `user_data` exactly once.
        unsafe {
            (self.lib.vtable.call)(
                self.ptr,
                method.as_ptr(),
                method.len(),
                request.as_ptr(),
                request.len(),
                complete_async,
                user_data,
            );
        }
        match rx.await {
            Ok((STATUS_OK, bytes)) => Ok(bytes),
            Ok((_, bytes)) => Err(decode_error(&bytes)),
            Err(_) => Err(PluginError::Internal("the plugin dropped the call".into())),
        }
    }

    async fn call<Req: serde::Serialize, Res: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        request: &Req,
    ) -> Result<Res, PluginError> {
        let bytes = serde_json::to_vec(request).map_err(|e| PluginError::Internal(e.to_string()))?;
        let out = self.invoke(method, bytes).await?;
        serde_json::from_slice(&out).map_err(|e| {
            PluginError::Internal(format!("the plugin returned an unreadable {method} result: {e}"))
        })
    }
}

impl Library {
    fn create(
        &'static self,
        kind: u32,
        type_name: &str,
        config: &CreateConfig,
    ) -> Result<Handle, PluginError> {
        let bytes = serde_json::to_vec(config).map_err(|e| PluginError::Internal(e.to_string()))?;
        let mut error: Option<Vec<u8>> = None;
        // SAFETY: the buffers outlive the call; `complete_sync` writes into
        // `error`, which outlives the call (create reports errors
        // synchronously).
        let ptr = unsafe {
            (self.vtable.create)(
                kind,
                type_name.as_ptr(),
                type_name.len(),
                bytes.as_ptr(),
                bytes.len(),
                complete_sync,
                (&raw mut error).cast::<c_void>(),
            )
        };
        if ptr.is_null() {
            return Err(error.map_or_else(
                || PluginError::Internal("the plugin failed to create an instance without saying why".into()),
                |b| decode_error(&b),
            ));
        }
        Ok(Handle { lib: self, ptr })
    }

    /// Creates an authenticator instance of `type_name`.
    pub fn create_authenticator(
        &'static self,
        type_name: &str,
        config: &CreateConfig,
    ) -> Result<Arc<dyn Authenticator>, PluginError> {
        self.descriptor.authenticator(type_name).ok_or_else(|| {
            PluginError::Misconfigured(format!(
                "{} has no authenticator type {type_name:?}",
                self.path.display()
            ))
        })?;
        let handle = self.create(KIND_AUTHENTICATOR, type_name, config)?;
        Ok(Arc::new(DynAuthenticator { handle }))
    }

    /// Creates a verifier instance of `type_name`.
    pub fn create_verifier(
        &'static self,
        type_name: &str,
        config: &CreateConfig,
    ) -> Result<Arc<dyn Verifier>, PluginError> {
        let handle = self.create(KIND_VERIFIER, type_name, config)?;
        Ok(Arc::new(DynVerifier { handle }))
    }
}

struct DynAuthenticator {
    handle: Handle,
}

#[async_trait]
impl Authenticator for DynAuthenticator {
    async fn login(&self, _ctx: &Context, request: PasswordLogin) -> Result<LoginStep, PluginError> {
        self.handle.call(method::LOGIN, &request).await
    }

    async fn continue_login(
        &self,
        _ctx: &Context,
        state: serde_json::Value,
        response: Secret,
    ) -> Result<LoginStep, PluginError> {
        self.handle
            .call(method::CONTINUE_LOGIN, &ContinueLogin { state, response })
            .await
    }

    async fn start(&self, _ctx: &Context, request: StartRequest) -> Result<Redirect, PluginError> {
        self.handle.call(method::START, &request).await
    }

    async fn finish(&self, _ctx: &Context, request: FinishRequest) -> Result<LoginStep, PluginError> {
        self.handle.call(method::FINISH, &request).await
    }

    async fn metadata(&self, _ctx: &Context) -> Result<Metadata, PluginError> {
        self.handle.call(method::METADATA, &serde_json::json!({})).await
    }
}

struct DynVerifier {
    handle: Handle,
}

#[async_trait]
impl Verifier for DynVerifier {
    async fn verify(&self, _ctx: &Context, request: &VerifyRequest) -> Result<VerifiedToken, PluginError> {
        self.handle.call(method::VERIFY, request).await
    }
}
