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

/// A JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(|s| json!(s)),
        prop::sample::select(APP_KEYS).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((prop::sample::select(APP_KEYS), inner), 0..6).prop_map(|kv| {
                serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// Method names the server sends (codex.md §5), and the field names and
/// values fcx reads, so random messages reach the mapper's branches.
const APP_METHODS: &[&str] = &[
    "turn/started",
    "turn/completed",
    "item/started",
    "item/completed",
    "item/agentMessage/delta",
    "item/reasoning/summaryTextDelta",
    "item/reasoning/summaryPartAdded",
    "item/commandExecution/outputDelta",
    "thread/tokenUsage/updated",
    "error",
    "warning",
    "configWarning",
    "thread/started",
    "item/commandExecution/requestApproval",
    "item/fileChange/requestApproval",
    "execCommandApproval",
    "applyPatchApproval",
    "item/permissions/requestApproval",
    "mcpServer/elicitation/request",
    "bogus/method",
    "",
];
const APP_KEYS: &[&str] = &[
    "turn",
    "id",
    "status",
    "error",
    "message",
    "item",
    "type",
    "text",
    "itemId",
    "delta",
    "turnId",
    "threadId",
    "tokenUsage",
    "total",
    "inputTokens",
    "willRetry",
    "additionalDetails",
    "summary",
    "command",
    "aggregatedOutput",
    "exitCode",
    "changes",
    "path",
    "kind",
    "server",
    "tool",
    "result",
    "query",
    "agentMessage",
    "reasoning",
    "commandExecution",
    "fileChange",
    "mcpToolCall",
    "webSearch",
    "completed",
    "failed",
    "interrupted",
    "declined",
    "thread",
    "msg_1",
    "call_1",
];

/// One line as the server might print it: a JSON-RPC message (notification,
/// request or response, our ids 1–4 likely) with random params, or junk.
fn app_line() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        (1i64..5).prop_map(|n| json!(n)),
        Just(json!(null)),
        Just(json!("x")),
        any::<i64>().prop_map(|n| json!(n)),
    ];
    prop_oneof![
        (prop::sample::select(APP_METHODS), any_json())
            .prop_map(|(m, p)| json!({"method": m, "params": p, "emittedAtMs": 1}).to_string()),
        (prop::sample::select(APP_METHODS), id.clone(), any_json())
            .prop_map(|(m, id, p)| json!({"method": m, "id": id, "params": p}).to_string()),
        (id.clone(), any_json()).prop_map(|(id, r)| json!({"id": id, "result": r}).to_string()),
        (id, any_json()).prop_map(|(id, e)| json!({"id": id, "error": e}).to_string()),
        (1i64..5, "[a-z0-9-]{0,8}").prop_map(|(id, t)| {
            json!({"id": id, "result": {"thread": {"id": t}, "turn": {"id": t}}}).to_string()
        }),
        any_json().prop_map(|v| v.to_string()),
        "\\PC{0,40}",
        Just(String::new()),
    ]
}

/// `lines` joined, each maybe cut short (as a crash would leave it), with
/// maybe one overlong line (beyond the reader's limit) in the middle.
fn app_stream(lines: &[(String, Option<usize>)], overlong: Option<(usize, usize)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (l, cut)) in lines.iter().enumerate() {
        if overlong.is_some_and(|(at, _)| at == i) {
            let n = overlong.map_or(0, |(_, n)| n);
            out.extend_from_slice(
                b"{\"method\":\"item/agentMessage/delta\",\"params\":{\"delta\":\"",
            );
            out.extend(std::iter::repeat_n(b'a', n));
            out.extend_from_slice(b"\"}}\n");
        }
        let b = l.as_bytes();
        out.extend_from_slice(&b[..cut.map_or(b.len(), |c| c.min(b.len()))]);
        out.push(b'\n');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_app_server_parser_survives_random_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz_app_server(&data);
    }

    #[test]
    fn the_app_server_parser_survives_random_messages(
        lines in prop::collection::vec((app_line(), prop::option::weighted(0.1, 0usize..64)), 0..24),
        overlong in prop::option::weighted(0.2, (0usize..24, 4000usize..20_000)),
    ) {
        fuzz_app_server(&app_stream(&lines, overlong));
    }
}

/// The kept seeds (real turns' stdout, codex.md §5) must reach the turn
/// loop, or fuzzing from them only ever exercises the handshake.
#[test]
fn the_app_server_seeds_reach_the_turn_and_its_requests() {
    use crate::runner::app_server::fuzzing::{drive_session, map_lines};
    let basic = include_bytes!("../../fuzz/seeds/app_server/basic");
    // TurnStarted, two TextDeltas, AgentMessage, Usage; the session adds
    // ThreadStarted, once per turn (new thread, resumed thread).
    assert_eq!(map_lines(basic), 5);
    assert_eq!(drive_session(basic), 12);
    let approval = include_bytes!("../../fuzz/seeds/app_server/approval");
    // Two tools started and completed, plus TurnStarted.
    assert_eq!(map_lines(approval), 5);
    // Per turn: ThreadStarted, TurnStarted, 4 tool events, and 4 requests
    // said (approvals off: 4 warnings; on: 2 ApprovalRequested, 2 warnings).
    assert_eq!(drive_session(approval), 20);
    // Output cut short anywhere (a crash mid-line) is still no panic.
    for cut in (0..basic.len()).step_by(61) {
        fuzz_app_server(&basic[..cut]);
    }
}
