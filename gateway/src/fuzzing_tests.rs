//! The fuzz targets' properties, run briefly on every test run: random
//! input, 0 panics. The coverage-guided versions live in `fuzz/`.

use proptest::prelude::*;

use super::*;
use fcx_proto::pbbp2::{Frame, Header};

fn header() -> impl Strategy<Value = Header> {
    (
        prop_oneof![
            Just("type".to_string()),
            Just("message_id".to_string()),
            Just("sum".to_string()),
            Just("seq".to_string()),
            Just("trace_id".to_string()),
            ".{0,8}",
        ],
        prop_oneof![
            Just("event".to_string()),
            Just("ping".to_string()),
            Just("pong".to_string()),
            "[0-9]{1,3}",
            "-?[0-9]{1,12}",
            ".{0,12}",
        ],
    )
        .prop_map(|(key, value)| Header { key, value })
}

/// Frames that decode, so the header parsers and the reassembler are
/// reached; random bytes mostly stop at the protobuf decoder.
fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u64>(),
        0i32..3,
        prop::collection::vec(header(), 0..6),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(seq_id, method, headers, payload)| Frame {
            seq_id,
            log_id: 1,
            service: 1,
            method,
            headers,
            payload: Some(payload),
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_frame_decoder_survives_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz_frame(&data);
    }

    #[test]
    fn the_frame_parsers_survive_random_frames(f in frame()) {
        fuzz_frame(&frame::encode(&f));
    }

    #[test]
    fn reassembly_survives_random_frame_streams(frames in prop::collection::vec(frame(), 0..24)) {
        let mut stream = Vec::new();
        for f in &frames {
            let bytes = frame::encode(f);
            stream.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            stream.extend_from_slice(&bytes);
        }
        fuzz_frame_stream(&stream);
    }

    #[test]
    fn reassembly_survives_random_fragments(
        fragments in prop::collection::vec(
            (0u8..6, 0u32..10, 0u32..10, prop::collection::vec(any::<u8>(), 0..1500)),
            0..40,
        )
    ) {
        fuzz_reassembly(&fragments);
    }

    #[test]
    fn the_normaliser_survives_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz_normalize(&data);
    }

    #[test]
    fn the_normaliser_survives_random_messages(
        event_type in prop_oneof![
            Just("im.message.receive_v1"),
            Just("im.chat.member.bot.added_v1"),
            Just("card.action.trigger"),
        ],
        msg_type in prop_oneof![
            Just("text"), Just("post"), Just("image"), Just("file"),
            Just("audio"), Just("media"), Just("sticker"), Just("interactive"),
            Just("merge_forward"), Just("share_chat"),
        ],
        content in prop_oneof![
            ".{0,40}",
            r#"\{"text":"[^"\\]{0,40}"\}"#,
            r#"\{"title":"[^"\\]{0,10}","content":\[\[\{"tag":"(text|at|img|a|media|code_block|md)","(text|user_id|image_key|href|file_key)":"[^"\\]{0,10}"\}\]\]\}"#,
        ],
        chat_type in prop_oneof![Just("p2p"), Just("group"), Just("topic"), Just("")],
        mention_key in "@_user_[0-9]",
        create_time in prop_oneof![Just("1700000000000".to_string()), "-?[0-9]{0,20}"],
    ) {
        let v = serde_json::json!({
            "schema": "2.0",
            "header": { "event_id": "ev", "event_type": event_type, "create_time": create_time },
            "event": {
                "sender": { "sender_id": { "open_id": "ou_u" }, "sender_type": "user" },
                "message": {
                    "message_id": "om_1", "chat_id": "oc_1", "chat_type": chat_type,
                    "message_type": msg_type, "content": content, "create_time": create_time,
                    "mentions": [{ "key": mention_key, "id": { "open_id": "ou_bot" }, "name": "fcx" }],
                },
                "chat_id": "oc_1",
            },
        });
        fuzz_normalize(v.to_string().as_bytes());
    }
}
