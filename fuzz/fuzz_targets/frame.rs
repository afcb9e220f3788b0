//! The long-connection frame decoder, header parsers and ACK builder
//! against one arbitrary binary WebSocket message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fcx_gateway::fuzzing::fuzz_frame(data));
