//! `codex app-server` stdout through the JSON-RPC parser, the notification
//! mapper and whole turns of the session.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fcx_worker::fuzzing::fuzz_app_server(data);
});
