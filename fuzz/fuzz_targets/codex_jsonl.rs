//! The `codex exec --json` translator against arbitrary stdout.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fcx_worker::fuzzing::fuzz_codex_jsonl(data);
});
