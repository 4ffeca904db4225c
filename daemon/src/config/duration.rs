//! Durations: see [`gatehouse_sdk::parse_duration`].

pub use gatehouse_sdk::parse_duration;
