//! The fuzz targets' properties, run briefly on every test run: random
//! input, 0 panics. The coverage-guided versions live in `fuzz/`.

use proptest::prelude::*;
use serde_json::json;

use super::*;

const WORDS: &[&str] = &[
    "new",
    "reset",
    "resume",
    "cd",
    "ws",
    "stop",
    "timeout",
    "status",
    "help",
    "invite",
    "remove",
    "ps",
    "exit",
    "reconnect",
    "doctor",
    "config",
    "use",
    "save",
    "group",
    "admin",
    "all",
    "off",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_string),
        "[A-Za-z]{1,8}",
        "\\PC{0,6}",
        "[0-9smh]{1,6}",
        Just("@_user_1".to_string()),
        Just("..".to_string()),
    ]
}

fn sep() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("\n".to_string()),
        Just("\u{3000}".to_string()),
        Just("  ".to_string()),
    ]
}

fn tool_item() -> impl Strategy<Value = serde_json::Value> {
    (
        prop_oneof![
            Just("agent_message"), Just("reasoning"), Just("command_execution"),
            Just("file_change"), Just("mcp_tool_call"), Just("web_search"),
            Just("todo_list"), Just("error"), Just("weird"),
        ],
        "[a-z0-9_]{0,4}",
        prop_oneof![Just(json!(null)), any::<i64>().prop_map(|n| json!(n)), ".{0,20}".prop_map(|s| json!(s))],
        prop_oneof![Just(json!("completed")), Just(json!("failed")), Just(json!("in_progress")), Just(json!(7))],
        prop_oneof![
            Just(json!(null)),
            Just(json!([{"path": "/ws/project/a.rs", "kind": "add"}, {"path": "../../etc", "kind": {"x": 1}}])),
            Just(json!("not a list")),
        ],
    )
        .prop_map(|(kind, id, text, status, changes)| {
            json!({
                "id": id, "type": kind, "text": text, "message": text, "command": text,
                "aggregated_output": text, "exit_code": text, "status": status,
                "changes": changes, "items": [{"text": text, "completed": true}],
                "result": {"content": [{"type": "text", "text": text}]}, "query": text,
            })
        })
}

fn codex_line() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop_oneof![
                Just("thread.started"),
                Just("turn.started"),
                Just("turn.completed"),
                Just("turn.failed"),
                Just("item.started"),
                Just("item.updated"),
                Just("item.completed"),
                Just("error"),
                Just("other"),
            ],
            tool_item(),
            prop_oneof![
                Just(json!({"input_tokens": 10, "cached_input_tokens": 2, "output_tokens": 5})),
                Just(json!({"input_tokens": -1, "output_tokens": "many"})),
                Just(json!(null)),
            ],
            ".{0,12}",
        )
            .prop_map(|(t, item, usage, s)| {
                json!({"type": t, "thread_id": s, "item": item, "usage": usage,
                       "error": {"message": s}, "message": s})
                .to_string()
            }),
        ".{0,40}",
        Just("{\"type\":".to_string()),
        Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_command_parser_survives_random_text(text in "\\PC{0,40}") {
        fuzz_command(&text);
    }

    #[test]
    fn the_command_parser_survives_command_like_text(
        lead in prop_oneof![Just(""), Just(" "), Just("\u{3000}"), Just("\n")],
        words in prop::collection::vec((word(), sep()), 1..5),
    ) {
        let mut text = format!("{lead}/");
        for (w, s) in &words {
            text.push_str(w);
            text.push_str(s);
        }
        fuzz_command(&text);
    }

    #[test]
    fn the_jsonl_translator_survives_random_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz_codex_jsonl(&data);
    }

    #[test]
    fn the_jsonl_translator_survives_random_events(lines in prop::collection::vec(codex_line(), 0..16)) {
        fuzz_codex_jsonl(lines.join("\n").as_bytes());
    }
}
