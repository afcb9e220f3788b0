//! The card-callback token parser against arbitrary input.
//!
//! Inputs are tried two ways: as token text, as an attacker would send it,
//! and as a validly signed arbitrary payload, so the strict decoder behind
//! the MAC is reached too. Properties: nothing panics, and a payload that
//! decodes is exactly the canonical encoding of what it decoded to
//! (signing the decoded claims again gives the same token).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fcx_gateway::fuzzing::fuzz_callback_token(data));
