//! Narrow entries for the fuzz targets in `fuzz/` and the in-tree
//! proptests (`fuzzing_tests.rs`): bytes in, nothing out, and a panic is the
//! only failure. Not an API.

use std::time::Duration;

use tokio::time::Instant;

use crate::feishu::frame::{self, Reassembler, ReassemblerConfig};
use crate::ingress::normalize::{self, BotIdentity, Options};

/// Small caps, so a fuzzer reaches the limits quickly.
fn small_reassembler() -> Reassembler {
    Reassembler::new(ReassemblerConfig {
        max_fragments: 8,
        max_message_bytes: 4096,
        ttl: Duration::from_secs(10),
        max_pending: 4,
        max_pending_bytes: 8192,
    })
}

/// One binary WebSocket message through the frame decoder, header parsers
/// and ACK builder. A frame that decodes must survive an encode/decode round
/// trip unchanged.
#[doc(hidden)]
pub fn fuzz_frame(data: &[u8]) {
    let Ok(f) = frame::decode(data) else {
        return;
    };
    let again = frame::decode(&frame::encode(&f));
    assert!(
        again.is_ok_and(|g| g == f),
        "a decoded frame does not round-trip"
    );
    let _ = frame::parse_control(&f);
    if let Ok(h) = frame::parse_data_headers(&f) {
        let _ = small_reassembler().push(&h, f.payload.clone().unwrap_or_default(), Instant::now());
        let _ = frame::ack(&f, &frame::AckReply::Ok, 1);
    }
}

/// A stream of binary WebSocket messages, each `[len u16 BE][bytes]`, fed
/// through one reassembler in order; the clock advances one second per
/// frame so the TTL is reached too. Whatever completes stays within the
/// size cap.
#[doc(hidden)]
pub fn fuzz_frame_stream(mut data: &[u8]) {
    let mut r = small_reassembler();
    let start = Instant::now();
    let mut tick = 0u64;
    while data.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
        let (msg, rest) = data[2..].split_at(len);
        data = rest;
        tick += 1;
        let now = start + Duration::from_secs(tick);
        let Ok(f) = frame::decode(msg) else {
            continue;
        };
        if let Ok(h) = frame::parse_data_headers(&f)
            && let Ok(Some(done)) = r.push(&h, f.payload.unwrap_or_default(), now)
        {
            assert!(done.len() <= 4096, "a reassembled message exceeds the cap");
        }
        r.expire(now);
    }
}

/// Fragments given directly as `(message id, sum, seq, payload)`, so the
/// reassembler's bookkeeping is reached without protobuf in the way. A
/// completed message is exactly its fragments in `seq` order when each
/// fragment was sent once.
#[doc(hidden)]
pub fn fuzz_reassembly(fragments: &[(u8, u32, u32, Vec<u8>)]) {
    let mut r = small_reassembler();
    let now = Instant::now();
    for (id, sum, seq, payload) in fragments {
        let h = frame::DataHeaders {
            kind: "event".into(),
            message_id: format!("m{id}"),
            sum: *sum,
            seq: *seq,
            trace_id: None,
            timestamp_ms: None,
        };
        if let Ok(Some(done)) = r.push(&h, payload.clone(), now) {
            assert!(done.len() <= 4096, "a reassembled message exceeds the cap");
        }
    }
}

/// One event payload (a reassembled frame or a decrypted webhook body)
/// through the normaliser.
#[doc(hidden)]
pub fn fuzz_normalize(payload: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let bot = BotIdentity {
        open_id: "ou_bot".into(),
        name: "fcx".into(),
    };
    let opts = Options {
        stale_after_ms: 60_000,
        platform_now_ms: None,
        now_ms: 1_700_000_000_000,
    };
    let _ = normalize::normalize_value(&v, &bot, &opts);
    if let (Some(t), Some(c)) = (
        v.pointer("/event/message/message_type")
            .and_then(|t| t.as_str()),
        v.pointer("/event/message/content").and_then(|c| c.as_str()),
    ) {
        let _ = normalize::message_text(t, c);
    }
}

#[cfg(test)]
#[path = "fuzzing_tests.rs"]
mod tests;

/// The card-callback token parser against arbitrary input, tried two ways:
/// as token text, as an attacker would send it, and as a validly signed
/// arbitrary payload, so the strict decoder behind the MAC is reached too.
/// A payload that decodes must be exactly the canonical encoding of what
/// it decoded to (signing the decoded claims again gives the same token).
#[doc(hidden)]
pub fn fuzz_callback_token(data: &[u8]) {
    use crate::ingress::callback::{self, Expected, KeyRing};
    const KEY: [u8; 32] = [7; 32];
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
        let again = callback::sign(&claims, &KEY, 1);
        assert!(
            again.as_deref() == Ok(token.as_str()),
            "the decode is not canonical"
        );
    }
}
