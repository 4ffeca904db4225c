//! Authenticators built into the daemon (they need the store). The
//! [`registry`](crate::registry) lists them beside linked and library types.

pub mod local;
pub mod username;
