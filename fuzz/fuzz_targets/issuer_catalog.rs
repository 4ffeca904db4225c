//! The issuer's catalog (both YAML shapes, anchors and merge keys) and the
//! date and version parsers behind it: never a panic, whatever the bytes;
//! every accepted catalog's services have names the checks allow.
#![no_main]

use gatehouse_daemon::issuer::catalog::{Catalog, Version, parse_date};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    drop(parse_date(text));
    drop(Version::parse(text));
    if let Ok(c) = Catalog::from_str("fuzz.yml", text, "production") {
        for s in c.services() {
            assert!(!s.name.is_empty() && s.name.len() <= 128);
        }
    }
});
