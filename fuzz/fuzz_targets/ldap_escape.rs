//! LDAP filter (RFC 4515) and DN (RFC 4514) escaping, as the ldap plugin
//! uses them on usernames: against a reference decoder, every value comes
//! back whole, and no character that changes a filter's or a DN's
//! structure is left bare.
#![no_main]

use ldap3::{dn_escape, ldap_escape};
use libfuzzer_sys::fuzz_target;

/// Undoes `\XX` hex escapes (the one form RFC 4515 has).
fn unescape_filter(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Undoes RFC 4514 escapes: `\` + special character, or `\XX`.
fn unescape_dn(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let next = *b.get(i + 1)?;
            if let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
            } else {
                out.push(next);
                i += 2;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let f = ldap_escape(s);
    assert!(
        !f.contains(['*', '(', ')', '\0']),
        "bare filter metacharacter in {f:?}"
    );
    assert_eq!(
        unescape_filter(&f).as_deref(),
        Some(s.as_bytes()),
        "filter round trip of {s:?}"
    );
    let d = dn_escape(s);
    assert_eq!(
        unescape_dn(&d).as_deref(),
        Some(s.as_bytes()),
        "DN round trip of {s:?}"
    );
    // no unescaped separator: every , + " < > ; = is preceded by a backslash
    let db = d.as_bytes();
    let mut i = 0;
    while i < db.len() {
        if db[i] == b'\\' {
            i += 2;
            continue;
        }
        assert!(!b",+\"<>;=\0".contains(&db[i]), "bare DN separator in {d:?}");
        i += 1;
    }
});
