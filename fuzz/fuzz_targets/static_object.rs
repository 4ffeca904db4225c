//! Static-object token parsing: the per-user token from the query string
//! is percent-decoded exactly (what was encoded comes back) and never
//! panics on any URI.
#![no_main]

use gatehouse_daemon::client::encode_segment as encode;
use gatehouse_daemon::verifiers::static_object::query_param;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // any URI
    let _ = query_param(s, "token");
    // a value encoded the way a client does comes back whole
    let uri = format!("/group/project/-/raw/main/file?x=1&token={}&y=2", encode(s));
    assert_eq!(query_param(&uri, "token").as_deref(), Some(s));
});
