//! The configuration loader (TOML → raw → resolved, maps, routes, [http]):
//! any text gives a configuration or errors that name a key, never a
//! panic; a loaded configuration's `Debug` shows no setting value.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // no includes of the host's files
    if text.contains("include") {
        return;
    }
    let path = dir().path().join("gatehouse.toml");
    std::fs::write(&path, text).expect("write");
    match gatehouse_daemon::config::load(&path) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(errors) => {
            for e in &errors.0 {
                assert!(!e.message.is_empty(), "an error without a message");
            }
        }
    }
});
