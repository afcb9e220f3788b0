//! The card-callback token parser against arbitrary input.
//!
//! Inputs are tried two ways: as token text, as an attacker would send it,
//! and as a validly signed arbitrary payload, so the strict decoder behind
//! the MAC is reached too. Properties: nothing panics, and a payload that
//! decodes is exactly the canonical encoding of what it decoded to
//! (signing the decoded claims again gives the same token).
#![no_main]

use fcx_gateway::ingress::callback::{self, Expected, KeyRing};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let Ok(ring) = KeyRing::new(1, KEY.to_vec()) else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let expected = Expected {
                operator: "ou_fuzz",
                scope: "chat:oc_fuzz",
                chat_id: "oc_fuzz",
                ..Default::default()
            };
            let _ = callback::verify(text, &ring, 0, &expected);
        }
        return;
    }
    // Key version 1 in the header, so the MAC check passes.
    let mut payload = rest.to_vec();
    if payload.len() >= 5 {
        payload[1..5].copy_from_slice(&1u32.to_be_bytes());
    }
    let Some(token) = callback::sign_raw_for_fuzzing(&payload, &KEY) else {
        return;
    };
    if let Some(claims) = callback::decode_for_fuzzing(&token, &ring) {
        let again = callback::sign(&claims, &KEY, 1).expect("decoded claims sign again");
        assert_eq!(again, token, "the decode is not canonical");
    }
});
