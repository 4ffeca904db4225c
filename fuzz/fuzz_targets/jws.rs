//! The compact-JWS parser behind every token check: never panics, and a
//! token it accepts names an allowed algorithm.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use gatehouse_sdk::jose::jws;
use libfuzzer_sys::fuzz_target;

fn allowed() -> &'static BTreeSet<String> {
    static A: OnceLock<BTreeSet<String>> = OnceLock::new();
    A.get_or_init(|| jws::allowed_algorithms(&["RS256", "ES256", "EdDSA"]).expect("allow-list"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = jws::parse(token, allowed()) {
        let alg = format!("{:?}", parsed.alg);
        assert!(allowed().contains(&alg), "accepted {alg}");
        let _ = jws::check_times(&parsed.claims, 1_800_000_000, 30);
    }
});
