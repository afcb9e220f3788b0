//! Fragment reassembly over a stream of arbitrary binary WebSocket
//! messages (`[len u16 BE][frame bytes]`…), with small caps and a clock
//! that reaches the TTL.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fcx_gateway::fuzzing::fuzz_frame_stream(data));
