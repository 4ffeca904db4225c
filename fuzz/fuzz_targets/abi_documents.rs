//! The plugin ABI's JSON documents (both directions) and the manifest
//! reader the daemon runs on every file of plugin_dirs before loading it:
//! never a panic, whatever the bytes.
#![no_main]

use gatehouse_sdk::abi::{ContinueLogin, CreateConfig, Descriptor, manifest};
use gatehouse_sdk::{
    FinishRequest, LoginStep, PasswordLogin, PluginError, Redirect, StartRequest, VerifiedToken,
    VerifyRequest,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 11 {
        0 => drop(serde_json::from_slice::<Descriptor>(rest)),
        1 => drop(serde_json::from_slice::<CreateConfig>(rest)),
        2 => drop(serde_json::from_slice::<PasswordLogin>(rest)),
        3 => drop(serde_json::from_slice::<StartRequest>(rest)),
        4 => drop(serde_json::from_slice::<FinishRequest>(rest)),
        5 => drop(serde_json::from_slice::<ContinueLogin>(rest)),
        6 => drop(serde_json::from_slice::<VerifyRequest>(rest)),
        7 => drop(serde_json::from_slice::<LoginStep>(rest)),
        8 => drop(serde_json::from_slice::<Redirect>(rest)),
        9 => match serde_json::from_slice::<PluginError>(rest) {
            Ok(e) => drop(e.to_string()),
            Err(_) => drop(serde_json::from_slice::<VerifiedToken>(rest)),
        },
        _ => drop(manifest::from_elf(rest)),
    }
});
