//! The chat command parser against arbitrary message text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        fcx_worker::fuzzing::fuzz_command(text);
    }
});
