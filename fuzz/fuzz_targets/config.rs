//! The config loader (`config.toml`) and the callback-key file loader
//! against arbitrary text; the first byte picks which.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        let home = fcx_config::Home::new("/nonexistent/fcx-home");
        let _ = fcx_config::Config::parse(Path::new("/nonexistent/config.toml"), text, &home);
    } else {
        let _ = fcx_config::callback_keys::KeyFile::parse(
            text,
            Path::new("/nonexistent/callback-keys.json"),
        );
    }
});
