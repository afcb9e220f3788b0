use std::collections::HashSet;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, DoneReason, ToolKind, ToolStatus};
use serde_json::Value;

use super::text::{json_escaped_len, truncate_head, truncate_tail, utf16_len};
use super::*;

pub(super) fn ev(seq: u64, kind: Kind) -> pb::WorkerEvent {
    pb::WorkerEvent {
        seq,
        scope: "chat:oc_1".into(),
        run_id: "run-1".into(),
        at_ms: 1_000_000 + seq as i64 * 250,
        reply_to: "om_1".into(),
        kind: Some(kind),
    }
}

pub(super) fn started() -> Kind {
    Kind::RunStarted(pb::RunStarted {
        thread_id: "th-1".into(),
        resumed: false,
        workspace: "/home/me/project".into(),
        sandbox: pb::Sandbox::WorkspaceWrite as i32,
        model: "gpt-5-codex".into(),
        message_count: 1,
        message_ids: vec!["om_1".into()],
        fingerprint: "fp".into(),
        ..Default::default()
    })
}

pub(super) fn text(item: &str, d: &str) -> Kind {
    Kind::TextDelta(pb::TextDelta {
        item_id: item.into(),
        delta: d.into(),
    })
}

pub(super) fn reasoning(item: &str, d: &str) -> Kind {
    Kind::ReasoningDelta(pb::ReasoningDelta {
        item_id: item.into(),
        delta: d.into(),
    })
}

pub(super) fn tool_start(item: &str, kind: ToolKind, title: &str) -> Kind {
    Kind::ToolStart(pb::ToolStart {
        item_id: item.into(),
        kind: kind as i32,
        title: title.into(),
        changes: vec![],
    })
}

pub(super) fn tool_end(
    item: &str,
    kind: ToolKind,
    title: &str,
    status: ToolStatus,
    exit: i32,
    out: &str,
) -> Kind {
    Kind::ToolEnd(pb::ToolEnd {
        item_id: item.into(),
        kind: kind as i32,
        title: title.into(),
        status: status as i32,
        has_exit_code: kind == ToolKind::Command,
        exit_code: exit,
        output_tail: out.into(),
        changes: vec![],
        error: String::new(),
    })
}

pub(super) fn done(reason: DoneReason, final_text: &str) -> Kind {
    Kind::Done(pb::Done {
        reason: reason as i32,
        detail: String::new(),
        final_text: final_text.into(),
        elapsed_ms: 65_400,
        usage: Some(pb::Usage {
            input_tokens: 12_345,
            cached_input_tokens: 2_000,
            output_tokens: 678,
            reasoning_output_tokens: 100,
        }),
        ..Default::default()
    })
}

pub(super) const FINAL: &str = "Fixed the bug in `parse()`.\n\n```rust\nfn main() { println!(\"你好, \\\"world\\\"\"); }\n```\n\n- 中文列表 😀\n- <b>not html</b> & \"quotes\"\n";

/// The scripted run from the brief: text, reasoning, three tool calls (one
/// failing), a file change.
pub(super) fn scripted() -> Vec<pb::WorkerEvent> {
    let file_change = Kind::ToolEnd(pb::ToolEnd {
        item_id: "p1".into(),
        kind: ToolKind::FileChange as i32,
        title: "apply patch".into(),
        status: ToolStatus::Ok as i32,
        changes: vec![
            pb::FileChange {
                path: "src/parse.rs".into(),
                kind: pb::FileChangeKind::Update as i32,
            },
            pb::FileChange {
                path: "src/new_file.rs".into(),
                kind: pb::FileChangeKind::Add as i32,
            },
        ],
        ..Default::default()
    });
    let kinds = vec![
        started(),
        reasoning("r1", "Let me look at the parser first."),
        tool_start("c1", ToolKind::Command, "rg -n parse src"),
        tool_end(
            "c1",
            ToolKind::Command,
            "rg -n parse src",
            ToolStatus::Ok,
            0,
            "src/parse.rs:10: fn parse()",
        ),
        tool_start("c2", ToolKind::Command, "cargo test"),
        tool_end(
            "c2",
            ToolKind::Command,
            "cargo test",
            ToolStatus::Failed,
            101,
            "test parse::tests::empty ... FAILED\nerror: test failed",
        ),
        file_change,
        tool_start("c3", ToolKind::Command, "cargo test"),
        tool_end(
            "c3",
            ToolKind::Command,
            "cargo test",
            ToolStatus::Ok,
            0,
            "test result: ok. 12 passed",
        ),
        text("m1", "Fixed the bug"),
        text("m1", " in `parse()`."),
        Kind::Usage(pb::Usage {
            input_tokens: 100,
            output_tokens: 10,
            ..Default::default()
        }),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, k)| ev(i as u64 + 1, k))
        .collect()
}

pub(super) fn elements(card: &Value) -> Vec<Value> {
    card.pointer("/body/elements")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub(super) fn by_id<'a>(els: &'a [Value], id: &str) -> Option<&'a Value> {
    els.iter()
        .find(|e| e.get("element_id").and_then(Value::as_str) == Some(id))
}

pub(super) fn ids(card: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(id) = m.get("element_id").and_then(Value::as_str) {
                    out.push(id.to_string());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(card, &mut out);
    out
}

pub(super) fn assert_valid(c: &RenderedCard, opts: &RenderOptions) {
    assert!(
        c.fits,
        "card does not fit: {} bytes, {} elements",
        c.bytes, c.elements
    );
    assert!(c.bytes <= opts.budget_bytes, "{} bytes", c.bytes);
    assert_eq!(c.bytes, c.json.len());
    assert!(c.elements <= MAX_ELEMENTS);
    assert_eq!(c.card.get("schema").and_then(Value::as_str), Some("2.0"));
    let all = ids(&c.card);
    let mut seen = HashSet::new();
    for id in &all {
        assert!(id.len() <= 20, "element_id too long: {id}");
        assert!(
            id.chars().next().is_some_and(|c| c.is_ascii_alphabetic()),
            "element_id must start with a letter: {id}"
        );
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad element_id {id}"
        );
        assert!(seen.insert(id.clone()), "duplicate element_id {id}");
    }
    // The top level knows only the 2.0 properties.
    let top: Vec<&String> = c
        .card
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    for k in top {
        assert!(
            ["schema", "config", "card_link", "header", "body"].contains(&k.as_str()),
            "{k}"
        );
    }
    let answer = by_id(&elements(&c.card), ANSWER_ELEMENT_ID)
        .and_then(|e| e.get("content"))
        .and_then(Value::as_str)
        .map(str::to_string);
    assert_eq!(answer.as_deref(), Some(c.answer.as_str()));
    assert!(utf16_len(&c.answer) <= 100_000);
}

#[test]
fn scripted_run_renders_the_expected_structure() {
    let opts = RenderOptions {
        stop_token: Some("TOKEN.MAC".into()),
        ..Default::default()
    };
    let mut st = RunState::new("run-1");
    assert_eq!(st.phase, Phase::Queued);
    let q = render(&st, &opts);
    assert_valid(&q, &opts);
    assert_eq!(
        q.card.pointer("/header/template").and_then(Value::as_str),
        Some("grey")
    );

    for e in scripted() {
        st.apply(&e);
    }
    // Running: streaming on, stop button carries the caller's token.
    let running = render(&st, &opts);
    assert_valid(&running, &opts);
    assert!(running.streaming);
    assert_eq!(
        running.card.pointer("/config/streaming_mode"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        running
            .card
            .pointer("/header/template")
            .and_then(Value::as_str),
        Some("blue")
    );
    let els = elements(&running.card);
    let stop = by_id(&els, STOP_ELEMENT_ID).expect("stop button while running");
    assert_eq!(stop.get("tag").and_then(Value::as_str), Some("button"));
    assert_eq!(
        stop.pointer("/behaviors/0/type").and_then(Value::as_str),
        Some("callback")
    );
    assert_eq!(
        stop.pointer("/behaviors/0/value/fcx")
            .and_then(Value::as_str),
        Some("TOKEN.MAC")
    );
    assert_eq!(running.answer, "Fixed the bug in `parse()`.");

    st.apply(&ev(100, done(DoneReason::Completed, FINAL)));
    let c = render(&st, &opts);
    assert_valid(&c, &opts);
    assert!(!c.streaming);
    assert_eq!(
        c.card.pointer("/config/streaming_mode"),
        Some(&Value::Bool(false))
    );
    assert_eq!(
        c.card.pointer("/header/template").and_then(Value::as_str),
        Some("green")
    );
    let title = c
        .card
        .pointer("/header/title/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(title.contains("Done"), "{title}");
    assert_eq!(
        c.card
            .pointer("/header/subtitle/content")
            .and_then(Value::as_str),
        Some("/home/me/project")
    );
    let els = elements(&c.card);
    let order: Vec<&str> = els
        .iter()
        .filter_map(|e| e.get("element_id").and_then(Value::as_str))
        .collect();
    assert_eq!(
        order,
        [
            "reasoning",
            "tool_0",
            "tool_1",
            "tool_3",
            "answer",
            "files",
            "footer_hr",
            "footer"
        ],
        "no stop button once done; the file change is listed, not a panel"
    );
    let r = by_id(&els, "reasoning").expect("reasoning");
    assert_eq!(
        r.get("tag").and_then(Value::as_str),
        Some("collapsible_panel")
    );
    assert_eq!(r.get("expanded"), Some(&Value::Bool(false)));

    let failed = by_id(&els, "tool_1").expect("failed tool");
    assert_eq!(
        failed.pointer("/border/color").and_then(Value::as_str),
        Some("red")
    );
    let ft = failed
        .pointer("/header/title/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(ft.contains("cargo test") && ft.contains("exit 101"), "{ft}");
    let body = failed
        .pointer("/elements/0/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(body.contains("```bash\ncargo test\n```"), "{body}");
    assert!(body.contains("exit code **101**"), "{body}");
    assert!(body.contains("error: test failed"), "{body}");
    for ok in ["tool_0", "tool_3"] {
        let p = by_id(&els, ok).expect("tool");
        assert_eq!(
            p.pointer("/border/color").and_then(Value::as_str),
            Some("grey")
        );
    }
    let files = by_id(&els, "files")
        .and_then(|e| e.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(files.contains("- `src/parse.rs` · modified"), "{files}");
    assert!(files.contains("- `src/new_file.rs` · added"), "{files}");
    let footer = by_id(&els, "footer")
        .and_then(|e| e.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(footer.contains("1m 05s"), "{footer}");
    assert!(footer.contains("12.3k in"), "{footer}");
    assert!(
        footer.contains("workspace-write") && footer.contains("gpt-5-codex"),
        "{footer}"
    );

    // Byte-identical final answer.
    assert_eq!(c.answer, FINAL);
    let shown = by_id(&els, "answer")
        .and_then(|e| e.get("content"))
        .and_then(Value::as_str);
    assert_eq!(shown, Some(FINAL));
    assert!(!summary(&st).is_empty());
}

#[test]
fn a_full_access_run_says_so_in_the_header_of_every_card() {
    let tag = |st: &RunState, mode: RenderMode| {
        let opts = RenderOptions {
            mode,
            ..RenderOptions::default()
        };
        render(st, &opts)
            .card
            .pointer("/header/text_tag_list/0/text/content")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut capped = RunState::new("");
    capped.apply(&ev(1, started()));
    assert_eq!(tag(&capped, RenderMode::Main), None);
    let mut full = RunState::new("");
    let mut s = started();
    if let Kind::RunStarted(r) = &mut s {
        r.sandbox = pb::Sandbox::DangerFullAccess as i32;
    }
    full.apply(&ev(1, s));
    for mode in [RenderMode::Main, RenderMode::Continuation { piece: 1 }] {
        assert_eq!(tag(&full, mode).as_deref(), Some("access: full"));
    }
}

#[test]
fn terminal_states_have_their_own_header() {
    for (reason, label, colour) in [
        (DoneReason::Completed, "Done", "green"),
        (DoneReason::Interrupted, "Interrupted", "orange"),
        (DoneReason::TimedOut, "Timed out", "yellow"),
        (DoneReason::Failed, "Failed", "red"),
    ] {
        let mut st = RunState::new("");
        st.apply(&ev(1, started()));
        let mut d = done(reason, "");
        if let Kind::Done(d) = &mut d {
            d.detail = "worker restarted".into();
        }
        st.apply(&ev(2, d));
        let c = render(&st, &RenderOptions::default());
        assert_valid(&c, &RenderOptions::default());
        let t = c
            .card
            .pointer("/header/title/content")
            .and_then(Value::as_str)
            .unwrap_or("");
        assert!(t.contains(label), "{t}");
        assert_eq!(
            c.card.pointer("/header/template").and_then(Value::as_str),
            Some(colour)
        );
        let els = elements(&c.card);
        let status = by_id(&els, "status")
            .and_then(|e| e.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("");
        assert!(status.contains("worker restarted"), "{status}");
        assert_eq!(c.answer, "*(no answer)*");
    }
}

#[test]
fn many_tools_fold_into_one_panel() {
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started()));
    let mut seq = 2;
    for i in 0..40 {
        let id = format!("c{i}");
        let status = if i % 7 == 0 {
            ToolStatus::Failed
        } else {
            ToolStatus::Ok
        };
        st.apply(&ev(
            seq,
            tool_start(&id, ToolKind::Command, &format!("echo {i}")),
        ));
        st.apply(&ev(
            seq + 1,
            tool_end(&id, ToolKind::Command, &format!("echo {i}"), status, i, "x"),
        ));
        seq += 2;
    }
    let opts = RenderOptions::default();
    let c = render(&st, &opts);
    assert_valid(&c, &opts);
    let els = elements(&c.card);
    let folded = by_id(&els, "tools_folded").expect("fold panel");
    let t = folded
        .pointer("/header/title/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(t.starts_with("35 earlier tool calls"), "{t}");
    assert!(t.contains("failed"), "{t}");
    assert_eq!(
        folded.pointer("/border/color").and_then(Value::as_str),
        Some("red")
    );
    let panels = els
        .iter()
        .filter(|e| e.get("tag").and_then(Value::as_str) == Some("collapsible_panel"))
        .count();
    assert_eq!(panels, opts.max_tool_panels);
    assert!(by_id(&els, "tool_39").is_some());
    assert!(by_id(&els, "tool_34").is_none());
}

#[test]
fn tool_output_and_reasoning_are_truncated_with_a_marker() {
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started()));
    let out = format!("{}THE END", "噪".repeat(20_000));
    st.apply(&ev(2, tool_start("c", ToolKind::Command, "make")));
    st.apply(&ev(
        3,
        tool_end("c", ToolKind::Command, "make", ToolStatus::Ok, 0, &out),
    ));
    st.apply(&ev(4, reasoning("r", &"思考 ".repeat(30_000))));
    st.apply(&ev(5, reasoning("r", "final thought")));
    let opts = RenderOptions::default();
    let c = render(&st, &opts);
    assert_valid(&c, &opts);
    let els = elements(&c.card);
    let body = by_id(&els, "tool_0")
        .and_then(|p| p.pointer("/elements/0/content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(body.contains("earlier characters omitted"), "{body}");
    assert!(body.contains("THE END"));
    let r = by_id(&els, "reasoning")
        .and_then(|p| p.pointer("/elements/0/content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(r.contains("omitted"), "{r}");
    assert!(r.ends_with("final thought"));
    assert!(utf16_len(r) <= opts.reasoning_chars + 40);
}

#[test]
fn output_containing_fences_gets_a_longer_fence() {
    let f = text::fenced("a\n```\nb", "");
    assert!(f.starts_with("````\n") && f.ends_with("\n````"), "{f}");
    let f = text::fenced("plain", "bash");
    assert_eq!(f, "```bash\nplain\n```");
}

#[test]
fn utf16_truncation_counts_like_the_platform() {
    assert_eq!(utf16_len("a😀中"), 4);
    let s = "😀".repeat(10);
    let h = truncate_head(&s, 7);
    assert!(utf16_len(&h) <= 7, "{h}");
    assert!(h.ends_with('…'));
    for max in [0, 1, 5, 10, 50] {
        let long = "😀".repeat(100);
        let t = truncate_tail(&long, max);
        assert!(utf16_len(&t) <= max.max(1), "{max}: {t}");
        assert!(t.starts_with('…'));
        if max >= 3 {
            assert!(t.ends_with('😀'));
        }
    }
    let t = truncate_tail(&"x".repeat(1000), 60);
    assert!(
        t.starts_with("… (") && t.contains("omitted") && utf16_len(&t) <= 60,
        "{t}"
    );
    assert_eq!(truncate_tail("short", 50), "short");
}

fn big_answer(bytes: usize, fences: bool) -> String {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut s = String::new();
    let mut in_code = false;
    while s.len() < bytes {
        match rng.below(10) {
            0 if fences => {
                s.push_str(if in_code { "```\n" } else { "```rust\n" });
                in_code = !in_code;
            }
            1 => s.push_str("这是一段很长的中文文本，用来测试按字符边界拆分。\n"),
            2 => s.push_str("emoji 😀🎉 and \"quotes\" \\ backslashes\t tabs\n"),
            3 => s.push('\n'),
            4 => {
                // A line longer than a whole piece.
                if rng.below(40) == 0 {
                    s.push_str(&"长".repeat(9_000));
                    s.push('\n');
                }
            }
            _ => s.push_str("Plain markdown text with **bold** and `code` words.\n"),
        }
    }
    s
}

#[test]
fn a_200kb_answer_splits_into_pieces_that_fit_and_rejoin() {
    let budget = ANSWER_BUDGET_BYTES;
    // Without fences the displayed pieces are the original, cut.
    let a = big_answer(200 * 1024, false);
    let pieces = split_answer(&a, budget);
    assert!(pieces.len() >= 200 * 1024 / budget);
    for p in &pieces {
        assert!(json_escaped_len(p) <= budget, "{}", json_escaped_len(p));
        assert!(!p.is_empty());
    }
    assert_eq!(pieces.concat(), a);

    // With fences: every piece fits and balances its fences; the ranges
    // rejoin to the original.
    let a = big_answer(200 * 1024, true);
    let spans = split_pieces(&a, budget);
    let mut joined = String::new();
    let mut next = 0;
    for sp in &spans {
        assert_eq!(sp.range.start, next);
        next = sp.range.end;
        joined.push_str(&a[sp.range.clone()]);
        let shown = sp.render(&a);
        assert!(
            json_escaped_len(&shown) <= budget,
            "{}",
            json_escaped_len(&shown)
        );
    }
    assert_eq!(joined, a);
    assert_eq!(next, a.len());
    let rendered = split_answer(&a, budget);
    for (i, p) in rendered.iter().enumerate().take(rendered.len() - 1) {
        let fences = p
            .lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .count();
        assert!(fences % 2 == 0, "piece {i} leaves a fence open");
    }
    assert!(
        spans.iter().any(|s| s.reopen.is_some()),
        "the test should cross a fence"
    );
}

#[test]
fn split_is_stable_as_the_answer_grows() {
    let full = big_answer(60 * 1024, true);
    let budget = 4 * 1024;
    let final_pieces = split_answer(&full, budget);
    let mut cut = 0;
    while cut < full.len() {
        cut = (cut + 777).min(full.len());
        while !full.is_char_boundary(cut) {
            cut += 1;
        }
        let now = split_answer(&full[..cut], budget);
        // Every piece but the last is final.
        for (i, p) in now.iter().enumerate().take(now.len().saturating_sub(1)) {
            assert_eq!(p, &final_pieces[i], "piece {i} changed at {cut}");
        }
    }
}

#[test]
fn an_answer_longer_than_a_card_continues() {
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started()));
    let answer = big_answer(100 * 1024, false);
    st.apply(&ev(2, done(DoneReason::Completed, &answer)));
    let opts = RenderOptions::default();
    let main = render(&st, &opts);
    assert_valid(&main, &opts);
    assert!(main.overflows());
    assert!(by_id(&elements(&main.card), "answer_more").is_some());
    let mut joined = main.answer.clone();
    for piece in 1..main.pieces {
        let o = RenderOptions {
            mode: RenderMode::Continuation { piece },
            ..Default::default()
        };
        let c = render(&st, &o);
        assert_valid(&c, &o);
        assert_eq!(c.overflows(), piece + 1 < main.pieces);
        joined.push_str(&c.answer);
    }
    assert_eq!(joined, answer);
}

#[test]
fn late_unknown_and_foreign_events_never_panic() {
    let mut st = RunState::new("run-1");
    // Before RunStarted, with no kind, from another run, unknown enums.
    st.apply(&pb::WorkerEvent::default());
    st.apply(&ev(
        1,
        tool_end("ghost", ToolKind::Command, "x", ToolStatus::Ok, 0, ""),
    ));
    let mut foreign = ev(2, text("m", "NOT MINE"));
    foreign.run_id = "run-2".into();
    st.apply(&foreign);
    st.apply(&ev(
        3,
        Kind::ToolEnd(pb::ToolEnd {
            status: 99,
            kind: 42,
            ..Default::default()
        }),
    ));
    st.apply(&ev(
        4,
        Kind::Notice(pb::Notice {
            text: "queued".into(),
        }),
    ));
    st.apply(&ev(5, text("m", "mine")));
    st.apply(&ev(5, text("m", " DUPLICATE")));
    st.apply(&ev(
        6,
        Kind::Done(pb::Done {
            reason: 77,
            ..Default::default()
        }),
    ));
    assert!(st.is_finished());
    assert_eq!(st.answer(), "mine");
    let before = st.clone();
    st.apply(&ev(7, text("m", " late")));
    st.apply(&ev(8, started()));
    st.apply(&ev(9, done(DoneReason::Failed, "other")));
    assert_eq!(st, before);
    let c = render(&st, &RenderOptions::default());
    assert_valid(&c, &RenderOptions::default());
    assert!(!c.answer.contains("NOT MINE"));
    // Absurd option values still give a card.
    let tiny = RenderOptions {
        budget_bytes: 0,
        answer_budget_bytes: 0,
        max_tool_panels: 0,
        reasoning_chars: 0,
        tool_output_chars: 0,
        mode: RenderMode::Continuation { piece: usize::MAX },
        ..Default::default()
    };
    let c = render(&st, &tiny);
    assert!(!c.fits);
}

pub(super) struct XorShift(pub(super) u64);

impl XorShift {
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(super) fn string(&mut self, max: usize) -> String {
        const ALPHABET: [&str; 14] = [
            "a",
            "Z",
            " ",
            "\n",
            "```",
            "\"",
            "\\",
            "中",
            "文",
            "😀",
            "\u{1}",
            "<at id=all>",
            "_",
            "\r\n",
        ];
        let len = match self.below(20) {
            0 => max,
            1..=3 => self.below(max as u64) as usize,
            _ => self.below(40) as usize,
        };
        let mut s = String::new();
        while s.len() < len {
            s.push_str(ALPHABET[self.below(ALPHABET.len() as u64) as usize]);
        }
        s
    }
}

fn random_event(rng: &mut XorShift, seq: u64) -> pb::WorkerEvent {
    let item = format!("i{}", rng.below(30));
    let kind = match rng.below(12) {
        0 => started(),
        1 => Kind::ThreadBound(pb::ThreadBound {
            thread_id: rng.string(50),
            resumed: true,
        }),
        2 | 3 => text(&item, &rng.string(3_000)),
        4 => reasoning(&item, &rng.string(3_000)),
        5 => tool_start(
            &item,
            ToolKind::try_from(rng.below(6) as i32).unwrap_or_default(),
            &rng.string(400),
        ),
        6 | 7 => Kind::ToolEnd(pb::ToolEnd {
            item_id: item,
            kind: rng.below(8) as i32,
            title: rng.string(2_000),
            status: rng.below(6) as i32,
            has_exit_code: rng.below(2) == 0,
            exit_code: rng.below(300) as i32 - 150,
            output_tail: rng.string(20_000),
            changes: (0..rng.below(4))
                .map(|_| pb::FileChange {
                    path: rng.string(300),
                    kind: rng.below(6) as i32,
                })
                .collect(),
            error: rng.string(500),
        }),
        8 => Kind::Usage(pb::Usage {
            input_tokens: rng.next() >> 20,
            cached_input_tokens: rng.next() >> 40,
            output_tokens: rng.next() >> 30,
            reasoning_output_tokens: 0,
        }),
        9 => Kind::Error(pb::RunError {
            message: rng.string(5_000),
            fatal: rng.below(10) == 0,
        }),
        10 => Kind::Notice(pb::Notice {
            text: rng.string(100),
        }),
        _ if rng.below(8) == 0 => Kind::Done(pb::Done {
            reason: rng.below(6) as i32,
            detail: rng.string(2_000),
            final_text: rng.string(60_000),
            elapsed_ms: rng.next() >> 30,
            usage: None,
            terminal_line: rng.string(300),
            ..Default::default()
        }),
        _ => text(&item, &rng.string(200)),
    };
    let mut e = ev(seq, kind);
    if rng.below(25) == 0 {
        e.run_id = "other".into();
    }
    if rng.below(25) == 0 {
        e.seq = rng.below(seq.max(1));
    }
    if rng.below(30) == 0 {
        e.kind = None;
    }
    e
}

#[test]
fn every_card_fits_over_random_event_sequences() {
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    let mut cards = 0;
    let mut max_level = 0;
    for run in 0..60 {
        let mut st = RunState::new(if run % 2 == 0 { "run-1" } else { "" });
        let opts = RenderOptions {
            stop_token: Some("t".repeat(rng.below(300) as usize)),
            max_tool_panels: rng.below(12) as usize,
            now_ms: Some(2_000_000),
            ..Default::default()
        };
        let steps = 20 + rng.below(120);
        for seq in 1..=steps {
            let e = random_event(&mut rng, seq);
            st.apply(&e);
            if seq % 3 == 0 || seq == steps {
                let c = render(&st, &opts);
                assert_valid(&c, &opts);
                cards += 1;
                max_level = max_level.max(c.degrade_level);
                for piece in 1..c.pieces {
                    let o = RenderOptions {
                        mode: RenderMode::Continuation { piece },
                        ..opts.clone()
                    };
                    let cc = render(&st, &o);
                    assert_valid(&cc, &o);
                }
            }
        }
    }
    assert!(cards > 500);
    assert!(max_level >= 1, "the sequences should force some degrading");
}

fn queued(message_id: &str, count: u32, reason: pb::QueueReason) -> Kind {
    Kind::Queued(pb::Queued {
        message_id: message_id.into(),
        message_count: count,
        reason: reason as i32,
        reply_mode: pb::ReplyMode::Card as i32,
    })
}

/// The text of the card element `id`, if the card has one.
fn element_text(card: &Value, id: &str) -> Option<String> {
    card.pointer("/body/elements")?
        .as_array()?
        .iter()
        .find(|e| e["element_id"] == id)?["content"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn a_card_opened_at_accept_says_what_holds_the_run_and_counts_added_messages() {
    let opts = RenderOptions::default();
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, queued("om_1", 1, pb::QueueReason::ScopeBusy)));
    assert_eq!(st.phase, Phase::Queued);
    assert_eq!(st.reply_mode, Some(state::ReplyMode::Card));
    let c = render(&st, &opts);
    assert_valid(&c, &opts);
    assert_eq!(
        c.card.pointer("/header/template").and_then(Value::as_str),
        Some("grey")
    );
    let line = element_text(&c.card, "queue").expect("a queue line");
    assert!(line.contains("current run"), "{line}");
    assert!(!line.contains("added"), "{line}");

    st.apply(&ev(2, queued("om_2", 2, pb::QueueReason::ScopeBusy)));
    st.apply(&ev(3, queued("om_3", 3, pb::QueueReason::ScopeBusy)));
    let line = element_text(&render(&st, &opts).card, "queue").expect("a queue line");
    assert!(line.contains("+2 messages added"), "{line}");

    // Started: no longer queued, the count stays on the card to the end.
    st.apply(&ev(
        4,
        Kind::RunStarted(pb::RunStarted {
            message_count: 3,
            ..Default::default()
        }),
    ));
    assert_eq!(st.phase, Phase::Running);
    let line = element_text(&render(&st, &opts).card, "queue").expect("a count");
    assert_eq!(line, "+2 messages added");
    // A late announcement never takes a started run back to Queued.
    st.apply(&ev(5, queued("om_4", 4, pb::QueueReason::ScopeBusy)));
    assert_eq!(st.phase, Phase::Running);
    assert_eq!(st.message_count, 4);
    st.apply(&ev(6, done(DoneReason::Completed, "ok")));
    let line = element_text(&render(&st, &opts).card, "queue").expect("a count");
    assert_eq!(line, "+3 messages added");
}

#[test]
fn a_lone_message_shows_no_queue_line_once_it_runs() {
    let opts = RenderOptions::default();
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, queued("om_1", 1, pb::QueueReason::None)));
    let line = element_text(&render(&st, &opts).card, "queue").expect("starting");
    assert!(line.contains("Starting"), "{line}");
    st.apply(&ev(2, started()));
    assert_eq!(element_text(&render(&st, &opts).card, "queue"), None);
}

#[test]
fn the_card_says_what_the_run_waits_for_until_it_is_decided_or_ends() {
    let opts = RenderOptions::default();
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started()));
    let wait = |id: &str, what: &str, waiting: bool| {
        Kind::ApprovalWait(pb::ApprovalWait {
            approval_id: id.into(),
            what: what.into(),
            waiting,
        })
    };
    st.apply(&ev(2, wait("0", "run `rm *x*`", true)));
    let line = element_text(&render(&st, &opts).card, "queue").expect("waiting");
    assert!(line.contains("Waiting for approval"), "{line}");
    assert!(line.contains("rm"), "{line}");
    st.apply(&ev(3, wait("1", "change a.txt", true)));
    let line = element_text(&render(&st, &opts).card, "queue").expect("waiting");
    assert!(line.contains("+1 more"), "{line}");
    st.apply(&ev(4, wait("0", "", false)));
    st.apply(&ev(5, wait("1", "", false)));
    assert_eq!(element_text(&render(&st, &opts).card, "queue"), None);
    st.apply(&ev(6, wait("2", "run `ls`", true)));
    st.apply(&ev(7, done(DoneReason::Interrupted, "stopped")));
    assert_eq!(element_text(&render(&st, &opts).card, "queue"), None);
}

#[test]
fn a_finished_card_shows_the_terminal_line_and_its_signed_thread_buttons() {
    let opts = RenderOptions::default();
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started()));
    st.final_buttons = vec![("Fork".into(), "tok-f".into())];
    // Not while it runs.
    assert!(!render(&st, &opts).json.contains("tok-f"));
    st.apply(&ev(
        2,
        Kind::Done(pb::Done {
            reason: DoneReason::Completed as i32,
            final_text: "ok".into(),
            terminal_line: "cd /w && CODEX_HOME=/h codex resume t-1".into(),
            ..Default::default()
        }),
    ));
    st.final_buttons = vec![
        ("Fork".into(), "tok-f".into()),
        ("Archive".into(), "tok-a".into()),
    ];
    let card = render(&st, &opts).card;
    let line = element_text(&card, "terminal_line").expect("the line");
    assert!(line.contains("codex resume t-1"), "{line}");
    let json = card.to_string();
    assert!(json.contains("tok-f") && json.contains("tok-a"), "{json}");
}

#[test]
fn skipped_attachments_are_named_on_the_card_and_in_a_card_runs_fallback_only() {
    let started = |mode: pb::ReplyMode| {
        Kind::RunStarted(pb::RunStarted {
            reply_mode: mode as i32,
            skipped_attachments: (0..12)
                .map(|i| format!("shot_{i}.png: too many attachments (at most 8 per run)"))
                .collect(),
            ..Default::default()
        })
    };
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started(pb::ReplyMode::Card)));
    st.apply(&ev(2, done(DoneReason::Completed, "ok")));
    let card = render(&st, &RenderOptions::default()).card;
    let shown = element_text(&card, "skipped").expect("a skipped element");
    assert!(shown.starts_with("**Not passed to Codex:**"), "{shown}");
    // Names escaped for the card's markdown; ten listed, the rest counted.
    assert!(
        shown.contains("shot\\_0.png: too many attachments"),
        "{shown}"
    );
    assert!(
        shown.contains("shot\\_9.png") && !shown.contains("shot\\_10"),
        "{shown}"
    );
    assert!(shown.contains("… and 2 more"), "{shown}");
    // A card that could not be shown falls back to a message: it says it.
    assert!(run_markdown(&st).contains("Not passed to Codex"));
    assert!(run_text(&st).contains("• shot_1.png: too many attachments"));

    // Other reply modes were told at once by the worker: not twice.
    let mut md = RunState::new("run-1");
    md.apply(&ev(1, started(pb::ReplyMode::Markdown)));
    md.apply(&ev(2, done(DoneReason::Completed, "ok")));
    assert!(!run_markdown(&md).contains("Not passed"));
    assert!(!run_text(&md).contains("Not passed"));
    // Nothing skipped: no element.
    let mut none = RunState::new("run-1");
    none.apply(&ev(1, super::tests::started()));
    let card = render(&none, &RenderOptions::default()).card;
    assert_eq!(element_text(&card, "skipped"), None);
}
