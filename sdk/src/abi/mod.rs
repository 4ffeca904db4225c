//! The C ABI v1 (`sdk/include/gatehouse_plugin.h`): the `#[repr(C)]`
//! structs both sides share, the JSON messages they exchange, and the two
//! sides — [`export`] (inside a plugin library, behind
//! [`export_plugin!`](crate::export_plugin)) and [`host`] (the daemon's
//! loader, feature `host`).
//!
//! Messages are JSON: self-describing, so either side can add fields in a
//! minor version without breaking the other, and writable from C or any
//! other language without a Rust toolchain. A login is dominated by network
//! and hashing time; JSON's cost per call is measured in
//! `docs/benchmarks.md`.
//!
//! This module is the only place in gatehouse where `unsafe` is allowed.

#![allow(unsafe_code)]

#[cfg(feature = "export")]
pub mod export;
#[cfg(feature = "host")]
pub mod host;
pub mod manifest;

use std::ffi::{c_char, c_void};

use serde::{Deserialize, Serialize};

use crate::Flow;

/// The ABI major version. A library with another major is refused.
pub const ABI_MAJOR: u32 = 1;
/// The ABI minor version (fields appended at the end of the structs).
pub const ABI_MINOR: u32 = 0;
/// The one symbol a plugin library exports.
pub const ENTRY_SYMBOL: &str = "gatehouse_plugin_entry";

/// `GH_KIND_AUTHENTICATOR`.
pub const KIND_AUTHENTICATOR: u32 = 0;
/// `GH_KIND_VERIFIER`.
pub const KIND_VERIFIER: u32 = 1;
/// `GH_OK`.
pub const STATUS_OK: i32 = 0;
/// `GH_ERROR`.
pub const STATUS_ERROR: i32 = 1;

/// `gh_complete_fn`.
pub type CompleteFn = unsafe extern "C" fn(user_data: *mut c_void, status: i32, data: *const u8, len: usize);

/// `gh_host_v1`: what the daemon offers a plugin.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HostV1 {
    /// [`ABI_MAJOR`].
    pub abi_major: u32,
    /// [`ABI_MINOR`].
    pub abi_minor: u32,
    /// Forwards a log line.
    pub log: unsafe extern "C" fn(
        level: u32,
        instance: *const u8,
        instance_len: usize,
        message: *const u8,
        message_len: usize,
    ),
}

/// `gh_plugin_v1`: what a plugin offers the daemon.
#[repr(C)]
pub struct PluginV1 {
    /// [`ABI_MAJOR`] of the plugin.
    pub abi_major: u32,
    /// [`ABI_MINOR`] of the plugin.
    pub abi_minor: u32,
    /// NUL-terminated [`Descriptor`] JSON, valid forever.
    pub descriptor: *const c_char,
    /// Creates an instance.
    pub create: unsafe extern "C" fn(
        kind: u32,
        type_name: *const u8,
        type_len: usize,
        config: *const u8,
        config_len: usize,
        on_error: CompleteFn,
        user_data: *mut c_void,
    ) -> *mut c_void,
    /// Runs a method.
    pub call: unsafe extern "C" fn(
        instance: *mut c_void,
        method: *const u8,
        method_len: usize,
        request: *const u8,
        request_len: usize,
        complete: CompleteFn,
        user_data: *mut c_void,
    ),
    /// Releases an instance.
    pub destroy: unsafe extern "C" fn(instance: *mut c_void),
}

// SAFETY: the struct holds only function pointers and a pointer to an
// immutable, never-freed descriptor string.
unsafe impl Sync for PluginV1 {}
// SAFETY: as above.
unsafe impl Send for PluginV1 {}

/// The plugin's self-description.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Descriptor {
    /// The SDK version the plugin was built with.
    pub sdk_version: String,
    /// A name for logs (the crate name for Rust plugins).
    #[serde(default)]
    pub name: String,
    /// Authenticator types.
    #[serde(default)]
    pub authenticators: Vec<AuthenticatorType>,
    /// Verifier types.
    #[serde(default)]
    pub verifiers: Vec<VerifierType>,
}

impl Descriptor {
    /// The authenticator type called `type_name`.
    pub fn authenticator(&self, type_name: &str) -> Option<&AuthenticatorType> {
        self.authenticators.iter().find(|t| t.type_name == type_name)
    }

    /// The verifier type called `type_name`.
    pub fn verifier(&self, type_name: &str) -> Option<&VerifierType> {
        self.verifiers.iter().find(|t| t.type_name == type_name)
    }
}

/// One authenticator type of a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct AuthenticatorType {
    /// `type = "…"`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Login shape.
    pub flow: Flow,
    /// JSON Schema of the settings.
    #[serde(default)]
    pub config_schema: serde_json::Value,
    /// Settings that hold secrets.
    #[serde(default)]
    pub secret_settings: Vec<String>,
}

/// One verifier type of a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct VerifierType {
    /// `type = "…"`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// JSON Schema of the settings.
    #[serde(default)]
    pub config_schema: serde_json::Value,
    /// Settings that hold secrets.
    #[serde(default)]
    pub secret_settings: Vec<String>,
}

/// The `config` document of `create`. Its `Debug` shows setting names
/// only: the settings hold resolved secrets.
#[derive(Clone, Deserialize, Serialize)]
pub struct CreateConfig {
    /// Instance name.
    pub name: String,
    /// Settings.
    pub settings: serde_json::Value,
    /// Private state directory.
    #[serde(default)]
    pub state_dir: Option<String>,
    /// Directory of the configuration file (for relative paths).
    #[serde(default)]
    pub config_dir: Option<String>,
    /// The daemon's `[http]` settings (defaults when absent: documents of
    /// older daemons still parse).
    #[serde(default)]
    pub http: crate::HttpSettings,
}

impl std::fmt::Debug for CreateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateConfig")
            .field("name", &self.name)
            .field("settings", &crate::SettingNames(&self.settings))
            .field("state_dir", &self.state_dir)
            .field("config_dir", &self.config_dir)
            .field("http", &self.http)
            .finish()
    }
}

/// The request of `continue_login`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ContinueLogin {
    /// The challenge's state.
    pub state: serde_json::Value,
    /// The user's answer.
    pub response: crate::Secret,
}

/// Method names of `call`.
pub mod method {
    /// `Authenticator::login`.
    pub const LOGIN: &str = "login";
    /// `Authenticator::continue_login`.
    pub const CONTINUE_LOGIN: &str = "continue_login";
    /// `Authenticator::start`.
    pub const START: &str = "start";
    /// `Authenticator::finish`.
    pub const FINISH: &str = "finish";
    /// `Authenticator::metadata`.
    pub const METADATA: &str = "metadata";
    /// `Verifier::verify`.
    pub const VERIFY: &str = "verify";
}

/// Copies `(ptr, len)` into a `Vec`; empty for a null pointer.
///
/// # Safety
/// `ptr` must be null or valid for reads of `len` bytes.
#[cfg(any(feature = "export", feature = "host"))]
pub(crate) unsafe fn copy_bytes(ptr: *const u8, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller guarantees `ptr` is valid for `len` bytes.
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}
