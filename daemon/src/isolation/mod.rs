//! `isolation = "process"`: a plugin library, or a linked plugin
//! ([`LINKED`]), hosted in a child process (`gatehoused plugin-host LIBRARY`), spoken to over its stdin and stdout
//! with newline-delimited JSON frames that carry the same messages as the
//! C ABI. A plugin that crashes the child (abort, segfault) costs the
//! requests in flight a `backend_unavailable`; the daemon restarts the child
//! with backoff.

/// The library argument of a child that hosts one of the daemon's own
/// linked plugins (`registry/linked.rs`) instead of loading a library.
pub const LINKED: &str = "@linked";

pub mod child;
pub mod supervisor;

use serde::{Deserialize, Serialize};

/// A frame from the daemon to the child.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create the instance (once per child).
    Create {
        /// Frame id.
        id: u64,
        /// `GH_KIND_*`.
        kind: u32,
        /// Plugin type.
        type_name: String,
        /// The ABI create config.
        config: gatehouse_sdk::abi::CreateConfig,
    },
    /// Call a method on the instance.
    Call {
        /// Frame id.
        id: u64,
        /// ABI method name.
        method: String,
        /// Request JSON.
        request: serde_json::Value,
    },
}

/// A frame from the child to the daemon.
#[derive(Debug, Deserialize, Serialize)]
pub struct Reply {
    /// The request's frame id.
    pub id: u64,
    /// The result, or the plugin's error.
    pub result: Result<serde_json::Value, gatehouse_sdk::PluginError>,
}
