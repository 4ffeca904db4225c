//! The JSON bodies of every socket route: parsing never panics, and what
//! parses survives a round trip.
#![no_main]

use gatehouse_sdk::proto::{
    ContinueRequest, CreateUser, FinishLoginRequest, LoginRequest, SetPassword, StartLoginRequest,
    VerifyTokenRequest,
};
use gatehouse_sdk::serde::Serialize;
use gatehouse_sdk::serde::de::DeserializeOwned;
use libfuzzer_sys::fuzz_target;

fn round_trip<T: DeserializeOwned + Serialize>(body: &[u8]) {
    match serde_json::from_slice::<T>(body) {
        Ok(v) => {
            let again = serde_json::to_vec(&v).expect("a parsed body serializes");
            serde_json::from_slice::<T>(&again).expect("a serialized body parses");
        }
        Err(e) => {
            // what the daemon answers with
            let _ = gatehouse_sdk::redact_input_values(&e.to_string());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => round_trip::<LoginRequest>(body),
        1 => round_trip::<ContinueRequest>(body),
        2 => round_trip::<StartLoginRequest>(body),
        3 => round_trip::<FinishLoginRequest>(body),
        4 => round_trip::<VerifyTokenRequest>(body),
        5 => round_trip::<CreateUser>(body),
        6 => round_trip::<SetPassword>(body),
        _ => round_trip::<gatehouse_sdk::Identity>(body),
    }
});
