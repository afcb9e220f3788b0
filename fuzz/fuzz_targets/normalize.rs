//! The event normaliser against an arbitrary event payload.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fcx_gateway::fuzzing::fuzz_normalize(data));
