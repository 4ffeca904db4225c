//! Error-message redaction: whatever the message, every double-quoted span
//! left is `"…"`, so no quoted input value survives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let out = gatehouse_sdk::redact_input_values(s);
    let mut rest = out.as_str();
    while let Some(i) = rest.find('"') {
        let after = &rest[i + 1..];
        assert!(after.starts_with('…'), "a quoted value survived in {out:?}");
        let after = &after['…'.len_utf8()..];
        // the closing quote, or the end of a message cut short
        match after.find('"') {
            Some(0) => rest = &after[1..],
            None if after.is_empty() => break,
            _ => panic!("text inside quotes survived in {out:?}"),
        }
    }
});
