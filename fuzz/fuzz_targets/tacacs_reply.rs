//! TACACS+ replies as a server (or anyone on the path) sends them, into
//! the `tacacs` plugin's parser: the header checks, the reveal with the
//! key and the REPLY body (RFC 8907 §4.1, §4.5, §5.2). Never a panic; a
//! parsed reply's fields fill its body exactly; a cleartext-flagged or
//! oversized packet is never parsed; and a body parsed once parses the
//! same when obfuscated and revealed again.
#![no_main]

use gatehouse_plugin_tacacs::packet::{self, FLAG_UNENCRYPTED, HEADER_LEN, Header, MAX_REPLY_BODY, Reply};
use gatehouse_plugin_tacacs::session::{SessionError, parse_reply_packet};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"fuzz-key";

fuzz_target!(|data: &[u8]| {
    // the raw body parser on its own
    if let Ok(r) = Reply::decode(data) {
        assert_eq!(6 + r.server_msg.len() + r.data.len(), data.len());
    }
    // whole packets, for the session and step the header itself names
    // (so the header checks pass often enough to reach the body)
    let Some(head) = data.get(..HEADER_LEN) else { return };
    let mut hb = [0u8; HEADER_LEN];
    hb.copy_from_slice(head);
    let h = Header::decode(&hb);
    match parse_reply_packet(data, KEY, h.session_id, h.seq_no) {
        Ok(r) => {
            assert_eq!(h.flags & FLAG_UNENCRYPTED, 0, "a cleartext reply was parsed");
            assert!(h.length as usize <= MAX_REPLY_BODY);
            assert_eq!(6 + r.server_msg.len() + r.data.len(), h.length as usize);
            // obfuscation round trip: reveal, obfuscate, reveal again
            let mut body = data[HEADER_LEN..HEADER_LEN + h.length as usize].to_vec();
            packet::obfuscate(&mut body, h.session_id, KEY, h.version, h.seq_no);
            let again = Reply::decode(&body).expect("revealed body parses");
            assert_eq!(again, r);
        }
        Err(SessionError::Unencrypted) => assert_ne!(h.flags & FLAG_UNENCRYPTED, 0),
        Err(SessionError::Oversized) => assert!(h.length as usize > MAX_REPLY_BODY),
        Err(_) => {}
    }
});
