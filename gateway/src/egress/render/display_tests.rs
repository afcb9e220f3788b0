use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, DoneReason, ToolKind, ToolStatus};
use serde_json::Value;

use super::tests::{
    FINAL, XorShift, assert_valid, by_id, done, elements, ev, ids, scripted, started, text,
    tool_end, tool_start,
};
use super::*;

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn finished() -> RunState {
    let mut st = RunState::new("run-1");
    for e in scripted() {
        st.apply(&e);
    }
    st.apply(&ev(100, done(DoneReason::Completed, FINAL)));
    st
}

fn with(display: ToolDisplay) -> RenderOptions {
    RenderOptions {
        tool_display: display,
        ..Default::default()
    }
}

fn panels(card: &Value) -> Vec<Value> {
    elements(card)
        .into_iter()
        .filter(|e| s(e, "/tag") == "collapsible_panel")
        .collect()
}

#[test]
fn tool_display_and_reply_mode_parse_the_wire_values() {
    assert_eq!(ToolDisplay::parse("full"), ToolDisplay::Full);
    assert_eq!(ToolDisplay::parse("summary"), ToolDisplay::Summary);
    assert_eq!(ToolDisplay::parse(" OFF "), ToolDisplay::Off);
    assert_eq!(ToolDisplay::parse(""), ToolDisplay::Full);
    assert_eq!(ToolDisplay::parse("compact"), ToolDisplay::Full);
    assert_eq!(ToolDisplay::default(), ToolDisplay::Full);
    assert_eq!(RenderOptions::default().tool_display, ToolDisplay::Full);
    assert_eq!(ReplyMode::parse("card"), Some(ReplyMode::Card));
    assert_eq!(ReplyMode::parse("Markdown"), Some(ReplyMode::Markdown));
    assert_eq!(ReplyMode::parse("text"), Some(ReplyMode::Text));
    assert_eq!(ReplyMode::parse(""), None);
    assert_eq!(ReplyMode::parse("voice"), None);
}

#[test]
fn run_state_remembers_reply_mode_and_tool_display() {
    let mut st = RunState::new("run-1");
    assert_eq!(st.reply_mode, None);
    assert_eq!(st.tool_display, ToolDisplay::Full);
    let mut k = started();
    if let Kind::RunStarted(s) = &mut k {
        s.reply_mode = pb::ReplyMode::Text as i32;
        s.tool_display = pb::ToolDisplay::Summary as i32;
    }
    st.apply(&ev(1, k));
    assert_eq!(st.reply_mode, Some(ReplyMode::Text));
    assert_eq!(st.tool_display, ToolDisplay::Summary);
    // An older worker's RunStarted (fields empty) means the defaults.
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started()));
    assert_eq!(st.reply_mode, None);
    assert_eq!(st.tool_display, ToolDisplay::Full);
}

#[test]
fn full_display_is_the_default_rendering() {
    let st = finished();
    let a = render(&st, &RenderOptions::default());
    let b = render(&st, &with(ToolDisplay::Full));
    assert_eq!(a.json, b.json);
    let ids = ids(&a.card);
    assert!(ids.contains(&"tool_1".to_string()), "{ids:?}");
}

#[test]
fn summary_display_folds_every_call_into_one_panel_without_output() {
    let st = finished();
    let opts = with(ToolDisplay::Summary);
    let c = render(&st, &opts);
    assert_valid(&c, &opts);
    let ps = panels(&c.card);
    let folded: Vec<&Value> = ps
        .iter()
        .filter(|p| s(p, "/element_id") == "tools_folded")
        .collect();
    assert_eq!(folded.len(), 1);
    assert!(
        ps.iter().all(|p| !s(p, "/element_id").starts_with("tool_")),
        "no per-call panels"
    );
    let p = folded[0];
    assert_eq!(s(p, "/header/title/content"), "3 tool calls (1 failed)");
    assert_eq!(s(p, "/border/color"), "red");
    let list = s(p, "/elements/0/content");
    assert_eq!(
        list,
        "✓ $ rg -n parse src · exit 0\n✗ $ cargo test · exit 101\n✓ $ cargo test · exit 0"
    );
    assert!(!c.json.contains("test result: ok"), "no output in summary");
    assert!(!c.json.contains("FAILED"), "no output in summary");
    let els = elements(&c.card);
    assert!(s(by_id(&els, "files").expect("files"), "/content").contains("src/parse.rs"));
    assert_eq!(c.answer, FINAL);
}

#[test]
fn summary_display_lists_the_latest_calls_of_a_long_run() {
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started()));
    for i in 0..100u64 {
        let id = format!("c{i}");
        st.apply(&ev(
            2 + 2 * i,
            tool_start(&id, ToolKind::Command, &format!("echo {i}")),
        ));
        st.apply(&ev(
            3 + 2 * i,
            tool_end(
                &id,
                ToolKind::Command,
                &format!("echo {i}"),
                ToolStatus::Ok,
                0,
                "x",
            ),
        ));
    }
    let opts = with(ToolDisplay::Summary);
    let c = render(&st, &opts);
    assert_valid(&c, &opts);
    let els = elements(&c.card);
    let p = by_id(&els, "tools_folded").expect("panel");
    assert_eq!(s(p, "/header/title/content"), "100 tool calls");
    let list = s(p, "/elements/0/content");
    assert!(list.starts_with("… and 60 more\n"), "{list}");
    assert!(list.ends_with("echo 99 · exit 0"), "{list}");
}

#[test]
fn off_display_shows_no_tool_panels_but_still_lists_files() {
    let st = finished();
    let opts = with(ToolDisplay::Off);
    let c = render(&st, &opts);
    assert_valid(&c, &opts);
    let els = elements(&c.card);
    let order: Vec<&str> = els.iter().map(|e| s(e, "/element_id")).collect();
    assert_eq!(
        order,
        ["reasoning", "answer", "files", "footer_hr", "footer"]
    );
    assert!(!c.json.contains("cargo test"));
}

#[test]
fn every_display_mode_fits_over_random_runs() {
    let mut rng = XorShift(0x5EED_0FD1_5A1A_0007);
    for run in 0..30 {
        let display = [ToolDisplay::Full, ToolDisplay::Summary, ToolDisplay::Off][run % 3];
        let opts = RenderOptions {
            tool_display: display,
            stop_token: Some("tok".into()),
            ..Default::default()
        };
        let mut st = RunState::new("run-1");
        st.apply(&ev(1, started()));
        for seq in 2..120u64 {
            let item = format!("i{}", rng.below(200));
            let k = match rng.below(3) {
                0 => tool_start(&item, ToolKind::Command, &rng.string(2_000)),
                1 => tool_end(
                    &item,
                    ToolKind::Command,
                    &rng.string(2_000),
                    ToolStatus::Failed,
                    1,
                    &rng.string(20_000),
                ),
                _ => text("m", &rng.string(500)),
            };
            st.apply(&ev(seq, k));
        }
        let c = render(&st, &opts);
        assert_valid(&c, &opts);
        if display == ToolDisplay::Off {
            assert!(panels(&c.card).is_empty());
        }
        let t = run_text(&st);
        assert!(t.starts_with("⏳ Running"), "{t:.40}");
    }
}

#[test]
fn run_text_shows_state_answer_files_and_footer() {
    let t = run_text(&finished());
    assert_eq!(
        t,
        "✓ Done\n\nFixed the bug in parse().\n\nfn main() { println!(\"你好, \\\"world\\\"\"); }\n\n• 中文列表 😀\n• <b>not html</b> & \"quotes\"\n\nFiles changed (2):\n- src/parse.rs (modified)\n- src/new_file.rs (added)\n\n⏱ 1m 05s · tokens 12.3k in · 678 out · 2.0k cached · sandbox workspace-write · gpt-5-codex"
    );
}

#[test]
fn run_text_reports_why_a_run_ended() {
    let mut st = RunState::new("run-1");
    st.apply(&ev(1, started()));
    st.apply(&ev(
        2,
        Kind::Error(pb::RunError {
            message: "rate limited".into(),
            fatal: false,
        }),
    ));
    let mut d = done(DoneReason::Interrupted, "");
    if let Kind::Done(d) = &mut d {
        d.detail = "stopped by Ada".into();
    }
    st.apply(&ev(3, d));
    let t = run_text(&st);
    assert!(
        t.starts_with("⏹ Interrupted: stopped by Ada\n\n(no answer)\n\n⚠ rate limited\n\n⏱ "),
        "{t}"
    );
}

#[test]
fn markdown_to_plain_drops_syntax_and_keeps_words() {
    let cases = [
        (
            "**bold** and *it* and __b__ and _i_ and ~~gone~~",
            "bold and it and b and i and gone",
        ),
        (
            "snake_case_name and 2 * 3 and *.rs files",
            "snake_case_name and 2 * 3 and *.rs files",
        ),
        ("a `**not bold**` b ``x ` y``", "a **not bold** b x ` y"),
        (
            "see [the docs](https://d.example/x \"Title\") now",
            "see the docs (https://d.example/x \"Title\") now",
        ),
        (
            "[https://a.example](https://a.example)",
            "https://a.example",
        ),
        ("![diagram](img_v2_abc)", "diagram (img_v2_abc)"),
        ("<https://auto.example/p?q=1>", "https://auto.example/p?q=1"),
        ("a < b > c <b>html</b>", "a < b > c <b>html</b>"),
        ("## Heading ##", "Heading"),
        ("# C#", "C#"),
        ("#hashtag", "#hashtag"),
        (
            "- item\n* star\n+ plus\n1. one",
            "• item\n• star\n• plus\n1. one",
        ),
        ("> quoted **text**\n>> nested", "│ quoted text\n│ │ nested"),
        ("---\n* * *", "────────\n────────"),
        (
            "| a | b |\n|---|:-:|\n| `x\\|y` | **z** |",
            "a | b\nx|y | z",
        ),
        ("\\*literal\\* \\_x\\_", "*literal* _x_"),
        ("这是**加粗**文字，还有*斜体*。", "这是加粗文字，还有斜体。"),
        ("unclosed **bold and `code", "unclosed **bold and `code"),
        ("~/src and ~one~", "~/src and ~one~"),
    ];
    for (md, want) in cases {
        assert_eq!(markdown_to_plain(md), want, "{md:?}");
    }
}

#[test]
fn markdown_to_plain_keeps_code_blocks_verbatim() {
    let md = "Run:\n\n```bash\ncargo test -- **not** _emphasis_\n# not a heading\n```\n\n~~~\n| a |\n~~~\nafter";
    assert_eq!(
        markdown_to_plain(md),
        "Run:\n\ncargo test -- **not** _emphasis_\n# not a heading\n\n| a |\nafter"
    );
    // An unclosed fence keeps everything after it.
    assert_eq!(markdown_to_plain("```\n**x**\n"), "**x**\n");
    assert_eq!(markdown_to_plain("a\r\n**b**\r\n"), "a\r\nb\r\n");
}

#[test]
fn markdown_to_plain_never_loses_a_letter() {
    // Backticks and tildes only ever follow a space or sit alone on a
    // fence line, so no fence gets an info string (a language tag is
    // syntax, dropped).
    const TOKENS: [&str; 29] = [
        "word", "中文", "x1", "😀", " ", " ", "\n", "**", "*", "_", "__", " ~~", " `", " ``", "[",
        "]", "(", ")", "](", "\\", "# ", "> ", "- ", "|", "<", ">", "\n```\n", "<http://", "---",
    ];
    let letters = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
    };
    let mut rng = XorShift(0xFACE_B00C_0000_0001);
    for _ in 0..2_000 {
        let mut md = String::new();
        for _ in 0..rng.below(60) {
            md.push_str(TOKENS[rng.below(TOKENS.len() as u64) as usize]);
        }
        let plain = markdown_to_plain(&md);
        assert_eq!(letters(&plain), letters(&md), "{md:?} → {plain:?}");
    }
    // Deep nesting is handled without recursion blowing the stack.
    let deep = format!("{}x{}", "[".repeat(50_000), "]".repeat(50_000));
    assert!(markdown_to_plain(&deep).contains('x'));
    let quotes = format!("{}x", ">".repeat(100_000));
    assert!(markdown_to_plain(&quotes).ends_with('x'));
}
