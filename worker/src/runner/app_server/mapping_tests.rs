//! Mapping tests, on notification shapes from codex.md §5 (0.169.0).

use serde_json::{Value, json};

use super::*;

fn mapper() -> Mapper {
    let mut m = Mapper::new(PathBuf::from("/w"));
    m.thread_id = Some("th".into());
    m.turn_id = Some("tu".into());
    m
}

fn feed(m: &mut Mapper, lines: &[Value]) -> Vec<RunnerEvent> {
    lines
        .iter()
        .flat_map(|l| {
            let method = l["method"].as_str().expect("method").to_string();
            m.notification(&method, &l["params"])
        })
        .collect()
}

fn item(method: &str, item: Value) -> Value {
    json!({"method": method, "params": {"item": item, "threadId": "th", "turnId": "tu"}, "emittedAtMs": 1})
}

fn delta(method: &str, item_id: &str, d: &str) -> Value {
    json!({"method": method, "params": {"threadId": "th", "turnId": "tu", "itemId": item_id, "delta": d}})
}

fn turn_completed(status: &str, error: Value) -> Value {
    json!({"method": "turn/completed", "params": {"threadId": "th", "turn": {"id": "tu", "items": [], "status": status, "error": error}}})
}

#[test]
fn an_answer_streams_as_deltas_then_completes_once() {
    let mut m = mapper();
    let evs = feed(
        &mut m,
        &[
            json!({"method": "turn/started", "params": {"threadId": "th", "turn": {"id": "tu", "status": "inProgress"}}}),
            item(
                "item/started",
                json!({"type": "userMessage", "id": "u1", "content": []}),
            ),
            item(
                "item/started",
                json!({"type": "agentMessage", "id": "msg_13", "text": ""}),
            ),
            delta("item/agentMessage/delta", "msg_13", "hi from moc"),
            delta("item/agentMessage/delta", "msg_13", "k (turn 13)"),
            item(
                "item/completed",
                json!({"type": "agentMessage", "id": "msg_13", "text": "hi from mock (turn 13)"}),
            ),
            json!({"method": "thread/tokenUsage/updated", "params": {"threadId": "th", "turnId": "tu", "tokenUsage": {
                "total": {"totalTokens": 18, "inputTokens": 11, "cachedInputTokens": 3, "cacheWriteInputTokens": 0, "outputTokens": 7, "reasoningOutputTokens": 2},
                "last": {}, "modelContextWindow": 258400}}}),
            turn_completed("completed", Value::Null),
        ],
    );
    assert_eq!(
        evs,
        vec![
            RunnerEvent::TurnStarted,
            RunnerEvent::TextDelta {
                item_id: "msg_13".into(),
                delta: "hi from moc".into()
            },
            RunnerEvent::TextDelta {
                item_id: "msg_13".into(),
                delta: "k (turn 13)".into()
            },
            RunnerEvent::AgentMessage {
                item_id: "msg_13".into(),
                text: "hi from mock (turn 13)".into()
            },
            RunnerEvent::Usage(TokenUsage {
                input_tokens: 11,
                cached_input_tokens: 3,
                output_tokens: 7,
                reasoning_output_tokens: 2
            }),
        ]
    );
    assert_eq!(m.final_text.as_deref(), Some("hi from mock (turn 13)"));
    assert_eq!(m.turn_end, Some(TurnEnd::Completed));
}

#[test]
fn an_answer_without_deltas_is_sent_whole_and_a_partial_one_completed() {
    let mut m = mapper();
    let evs = feed(
        &mut m,
        &[
            item(
                "item/completed",
                json!({"type": "agentMessage", "id": "a", "text": "whole"}),
            ),
            delta("item/agentMessage/delta", "b", "par"),
            item(
                "item/completed",
                json!({"type": "agentMessage", "id": "b", "text": "partial"}),
            ),
        ],
    );
    let deltas: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            RunnerEvent::TextDelta { item_id, delta } => Some((item_id.as_str(), delta.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, vec![("a", "whole"), ("b", "par"), ("b", "tial")]);
    assert_eq!(m.final_text.as_deref(), Some("partial"));
}

#[test]
fn a_command_opens_streams_output_and_closes() {
    let mut m = mapper();
    let evs = feed(
        &mut m,
        &[
            item(
                "item/started",
                json!({"type": "commandExecution", "id": "call_mock_14",
                "command": "/bin/bash -lc 'echo from-app-server; ls'", "cwd": "/w", "processId": "9743",
                "source": "unifiedExecStartup", "status": "inProgress", "commandActions": [],
                "aggregatedOutput": null, "exitCode": null, "durationMs": null}),
            ),
            delta(
                "item/commandExecution/outputDelta",
                "call_mock_14",
                "from-app-server\n",
            ),
            delta(
                "item/commandExecution/outputDelta",
                "call_mock_14",
                "a.txt\n",
            ),
            item(
                "item/completed",
                json!({"type": "commandExecution", "id": "call_mock_14",
                "command": "/bin/bash -lc 'echo from-app-server; ls'", "status": "completed",
                "aggregatedOutput": "from-app-server\na.txt\n", "exitCode": 0, "durationMs": 24}),
            ),
        ],
    );
    let title = "/bin/bash -lc 'echo from-app-server; ls'".to_string();
    assert_eq!(
        evs,
        vec![
            RunnerEvent::ToolStarted {
                item_id: "call_mock_14".into(),
                kind: ToolKind::Command,
                title: title.clone(),
                changes: vec![]
            },
            RunnerEvent::ToolOutputDelta {
                item_id: "call_mock_14".into(),
                delta: "from-app-server\n".into()
            },
            RunnerEvent::ToolOutputDelta {
                item_id: "call_mock_14".into(),
                delta: "a.txt\n".into()
            },
            RunnerEvent::ToolCompleted {
                item_id: "call_mock_14".into(),
                kind: ToolKind::Command,
                title,
                status: ToolStatus::Ok,
                exit_code: Some(0),
                output: "from-app-server\na.txt\n".into(),
                changes: vec![],
                error: None
            },
        ]
    );
}

#[test]
fn failed_declined_and_file_change_items() {
    let mut m = mapper();
    let evs = feed(
        &mut m,
        &[
            item(
                "item/completed",
                json!({"type": "commandExecution", "id": "c1", "command": "false",
                "status": "failed", "aggregatedOutput": "", "exitCode": 1}),
            ),
            item(
                "item/completed",
                json!({"type": "commandExecution", "id": "c2", "command": "touch x",
                "status": "declined", "aggregatedOutput": null, "exitCode": null}),
            ),
            item(
                "item/completed",
                json!({"type": "fileChange", "id": "call_patch_18",
                "changes": [{"path": "/w/hello.txt", "kind": {"type": "add"}, "diff": "hello\n"}], "status": "completed"}),
            ),
        ],
    );
    let ends: Vec<(String, ToolStatus, String, Vec<FileChange>)> = evs
        .into_iter()
        .filter_map(|e| match e {
            RunnerEvent::ToolCompleted {
                item_id,
                status,
                title,
                changes,
                ..
            } => Some((item_id, status, title, changes)),
            _ => None,
        })
        .collect();
    assert_eq!(ends[0].1, ToolStatus::Failed);
    assert_eq!(ends[1].1, ToolStatus::Declined);
    assert_eq!(ends[2].1, ToolStatus::Ok);
    assert_eq!(ends[2].2, "add hello.txt");
    assert_eq!(
        ends[2].3,
        vec![FileChange {
            path: "/w/hello.txt".into(),
            kind: "add".into()
        }]
    );
}

#[test]
fn reasoning_streams_or_comes_whole_once() {
    let mut m = mapper();
    let evs = feed(
        &mut m,
        &[
            // Not streamed (what the mock produces): the summary, once.
            item(
                "item/started",
                json!({"type": "reasoning", "id": "rs_1", "summary": ["**Thinking** about the mock"], "content": []}),
            ),
            item(
                "item/completed",
                json!({"type": "reasoning", "id": "rs_1", "summary": ["**Thinking** about the mock"], "content": []}),
            ),
            // Streamed: only the deltas, with a paragraph break between parts.
            delta("item/reasoning/summaryTextDelta", "rs_2", "one"),
            json!({"method": "item/reasoning/summaryPartAdded", "params": {"threadId": "th", "turnId": "tu", "itemId": "rs_2", "summaryIndex": 1}}),
            delta("item/reasoning/summaryTextDelta", "rs_2", "two"),
            item(
                "item/completed",
                json!({"type": "reasoning", "id": "rs_2", "summary": ["one", "two"], "content": []}),
            ),
        ],
    );
    let got: Vec<(String, String)> = evs
        .into_iter()
        .filter_map(|e| match e {
            RunnerEvent::ReasoningDelta { item_id, delta } => Some((item_id, delta)),
            _ => None,
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("rs_1", "**Thinking** about the mock"),
        ("rs_2", "one"),
        ("rs_2", "\n\n"),
        ("rs_2", "two"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn a_failed_turn_keeps_the_error_and_interrupted_is_told_apart() {
    let mut m = mapper();
    let evs = feed(
        &mut m,
        &[
            json!({"method": "error", "params": {"error": {"message": "stream disconnected before completion: mock says the model failed", "codexErrorInfo": "other"}, "willRetry": false, "threadId": "th", "turnId": "tu"}}),
            turn_completed(
                "failed",
                json!({"message": "stream disconnected before completion: mock says the model failed"}),
            ),
        ],
    );
    assert!(matches!(&evs[..], [RunnerEvent::Warning { .. }]), "{evs:?}");
    assert_eq!(
        m.turn_end,
        Some(TurnEnd::Failed(
            "stream disconnected before completion: mock says the model failed".into()
        ))
    );

    let mut m = mapper();
    feed(&mut m, &[turn_completed("interrupted", Value::Null)]);
    assert_eq!(m.turn_end, Some(TurnEnd::Interrupted));

    // A failed turn without its own error uses the last error notification.
    let mut m = mapper();
    m.last_error = Some("earlier".into());
    feed(&mut m, &[turn_completed("failed", Value::Null)]);
    assert_eq!(m.turn_end, Some(TurnEnd::Failed("earlier".into())));
}

#[test]
fn other_turns_and_noise_are_ignored() {
    let mut m = mapper();
    let evs = feed(
        &mut m,
        &[
            json!({"method": "turn/completed", "params": {"threadId": "th", "turn": {"id": "other", "status": "completed"}}}),
            json!({"method": "item/agentMessage/delta", "params": {"threadId": "th", "turnId": "other", "itemId": "x", "delta": "no"}}),
            json!({"method": "configWarning", "params": {"summary": "Codex could not find bubblewrap on PATH.", "details": null}}),
            json!({"method": "remoteControl/status/changed", "params": {"status": "disabled"}}),
            json!({"method": "thread/status/changed", "params": {"threadId": "th", "status": {"type": "idle"}}}),
            json!({"method": "account/rateLimits/updated", "params": {"rateLimits": {}}}),
            item("item/started", json!({"type": "bogus", "id": "?"})),
            item("item/started", json!("not an item")),
        ],
    );
    assert!(evs.is_empty(), "{evs:?}");
    assert_eq!(m.turn_end, None);
}

#[test]
fn an_error_codex_will_retry_is_a_retry_with_its_cause() {
    // Recorded from codex 0.169 app-server with its base URL on a closed port.
    let mut m = mapper();
    let evs = feed(
        &mut m,
        &[
            json!({"method": "error", "params": {"error": {"message": "Reconnecting... waiting for network", "codexErrorInfo": {"responseStreamDisconnected": {"httpStatusCode": null}}, "additionalDetails": "Connection failed: error sending request", "misalignment": null}, "willRetry": true, "threadId": "th", "turnId": "tu"}}),
        ],
    );
    match &evs[..] {
        [RunnerEvent::Retrying { message }] => assert_eq!(
            message,
            "Reconnecting... waiting for network (Connection failed: error sending request)"
        ),
        other => panic!("{other:?}"),
    }
    // A retry is not the turn's error.
    assert_eq!(m.last_error, None);
}
