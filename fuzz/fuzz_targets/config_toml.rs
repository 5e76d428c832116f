//! `tether.toml` parsing on arbitrary text: the loader either returns a project or an
//! error naming file:line:col, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(tether::config::FILE_NAME);
    std::fs::write(&path, text).expect("the file is written");
    match tether::config::load(&path) {
        Ok(_) => {}
        Err(e) => {
            // Every message must render.
            let _ = e.to_string();
        }
    }
});
