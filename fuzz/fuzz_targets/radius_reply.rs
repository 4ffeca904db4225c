//! The RADIUS reply parser and verifier (what every datagram that reaches
//! the plugin's socket goes through), and User-Password recovery: never a
//! panic, whatever the bytes; a reply never verifies against a secret it
//! was not made with.
#![no_main]

use gatehouse_plugin_radius::packet::{Packet, encode_reply, reveal_password};
use libfuzzer_sys::fuzz_target;

const REQUEST_AUTHENTICATOR: [u8; 16] = *b"0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::parse(data) {
        let _ = p.verify_reply(&REQUEST_AUTHENTICATOR, b"secret", true);
        let _ = p.verify_reply(&REQUEST_AUTHENTICATOR, b"secret", false);
        let _ = p.first(25).map(<[u8]>::len);
        // the attributes re-encoded into a genuine reply verify with the
        // secret, and only with it
        let attrs: Vec<(u8, &[u8])> = p.attributes.iter().filter(|(t, _)| *t != 80).copied().collect();
        if let Ok(genuine) = encode_reply(2, p.id, &REQUEST_AUTHENTICATOR, &attrs, b"secret", true) {
            let g = Packet::parse(&genuine).expect("an encoded reply parses");
            assert!(g.verify_reply(&REQUEST_AUTHENTICATOR, b"secret", true).is_ok());
            assert!(g.verify_reply(&REQUEST_AUTHENTICATOR, b"secreT", false).is_err());
        }
    }
    let _ = reveal_password(data, b"secret", &REQUEST_AUTHENTICATOR);
});
