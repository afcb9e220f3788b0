//! Card JSON 2.0 for a run (feishu.md §4). Every worker-supplied string is
//! bounded before it enters the card, and the card as a whole is measured
//! after it is built: if it is over a budget, the next degrade level drops
//! detail until it fits.

use fcx_proto::v1::{QueueReason, Sandbox, ToolKind};
use serde_json::{Value, json};

use super::state::{Phase, RunState, ToolCall, ToolDisplay, ToolState};
use super::text::{
    Piece, defuse_mentions, escape_md, fenced, inline_code, one_line, split_pieces, truncate_head,
    truncate_tail,
};
use super::{
    ANSWER_ELEMENT_ID, CALLBACK_VALUE_KEY, RenderMode, RenderOptions, RenderedCard, STOP_ELEMENT_ID,
};

/// Per-level limits. Level 0 is what the options ask for; each later level
/// keeps less.
#[derive(Debug, Clone, Copy)]
struct Limits {
    output: usize,
    reasoning: usize,
    panels: usize,
    files: usize,
    command: usize,
    folded_lines: usize,
    /// Calls listed in the one panel of `ToolDisplay::Summary`.
    summary_lines: usize,
    warnings: usize,
}

const LEVELS: u8 = 6;

fn limits(o: &RenderOptions, level: u8) -> Limits {
    let base = Limits {
        output: o.tool_output_chars,
        reasoning: o.reasoning_chars,
        panels: o.max_tool_panels,
        files: 30,
        command: 600,
        folded_lines: 20,
        summary_lines: 40,
        warnings: 3,
    };
    match level {
        0 => base,
        1 => Limits {
            output: base.output / 2,
            reasoning: base.reasoning / 2,
            ..base
        },
        2 => Limits {
            output: base.output / 4,
            reasoning: base.reasoning / 4,
            panels: base.panels.min(4),
            files: 15,
            folded_lines: 10,
            summary_lines: 20,
            ..base
        },
        3 => Limits {
            output: base.output.min(200),
            reasoning: base.reasoning.min(300),
            panels: base.panels.min(2),
            files: 8,
            command: 200,
            folded_lines: 5,
            summary_lines: 10,
            warnings: 2,
        },
        4 => Limits {
            output: 0,
            reasoning: 0,
            panels: base.panels.min(1),
            files: 3,
            command: 120,
            folded_lines: 0,
            summary_lines: 3,
            warnings: 1,
        },
        _ => Limits {
            output: 0,
            reasoning: 0,
            panels: 0,
            files: 0,
            command: 80,
            folded_lines: 0,
            summary_lines: 0,
            warnings: 0,
        },
    }
}

/// Renders `state` as the card `opts.mode` asks for. Always returns a card;
/// `fits` says whether it met the budgets.
pub(crate) fn render(state: &RunState, opts: &RenderOptions) -> RenderedCard {
    let answer = state.answer();
    let pieces = split_pieces(&answer, opts.effective_answer_budget());
    let piece = match opts.mode {
        RenderMode::Main => 0,
        RenderMode::Continuation { piece } => piece,
    };
    let shown = pieces
        .get(piece)
        .map(|p: &Piece| defuse_mentions(&p.render(&answer)).into_owned())
        .unwrap_or_default();
    let more = pieces.len().saturating_sub(1) > piece;
    let answer_text = if shown.is_empty() {
        placeholder(state).to_string()
    } else {
        shown
    };
    let build = |level: u8| {
        let l = limits(opts, level);
        let card = match opts.mode {
            RenderMode::Main => main_card(state, opts, &l, &answer_text, more),
            RenderMode::Continuation { piece } => {
                continuation_card(state, opts, piece, &answer_text, more)
            }
        };
        let json = card.to_string();
        let elements = count_elements(&card);
        let fits = json.len() <= opts.budget_bytes && elements <= opts.max_elements;
        RenderedCard {
            bytes: json.len(),
            card,
            json,
            elements,
            answer: answer_text.clone(),
            piece,
            pieces: pieces.len(),
            streaming: !state.is_finished(),
            degrade_level: level,
            fits,
        }
    };
    for level in 0..LEVELS - 1 {
        let out = build(level);
        if out.fits {
            return out;
        }
    }
    let out = build(LEVELS - 1);
    if !out.fits {
        tracing::warn!(
            bytes = out.bytes,
            elements = out.elements,
            "run card exceeds its budget even at the lowest detail"
        );
    }
    out
}

/// The chat-list preview (`config.summary`); also what the caller passes
/// when it closes streaming mode.
pub(crate) fn summary(state: &RunState) -> String {
    match state.phase {
        Phase::Queued => "[Queued]".to_string(),
        Phase::Running => "[Generating…]".to_string(),
        _ => {
            let a = state.answer();
            let first = a.lines().map(str::trim).find(|l| !l.is_empty());
            match first {
                Some(l) => one_line(l, 60),
                None => phase_label(state.phase).to_string(),
            }
        }
    }
}

fn placeholder(state: &RunState) -> &'static str {
    match state.phase {
        Phase::Queued => "…",
        Phase::Running => "…",
        _ => "*(no answer)*",
    }
}

pub(super) fn phase_label(p: Phase) -> &'static str {
    match p {
        Phase::Queued => "Queued",
        Phase::Running => "Running…",
        Phase::Done => "Done",
        Phase::Interrupted => "Interrupted",
        Phase::TimedOut => "Timed out",
        Phase::Failed => "Failed",
    }
}

fn phase_colour(p: Phase) -> &'static str {
    match p {
        Phase::Queued => "grey",
        Phase::Running => "blue",
        Phase::Done => "green",
        Phase::Interrupted => "orange",
        Phase::TimedOut => "yellow",
        Phase::Failed => "red",
    }
}

fn plain(s: &str) -> Value {
    json!({"tag": "plain_text", "content": s})
}

fn header(state: &RunState, opts: &RenderOptions, suffix: &str) -> Value {
    let label = phase_label(state.phase);
    let prefix = one_line(&opts.title, 40);
    let title = if prefix.is_empty() {
        format!("{label}{suffix}")
    } else {
        format!("{prefix} · {label}{suffix}")
    };
    let mut h = json!({
        "title": plain(&title),
        "template": phase_colour(state.phase),
    });
    let ws = one_line(&state.workspace, 120);
    if let Some(o) = h.as_object_mut() {
        if !ws.is_empty() {
            o.insert("subtitle".into(), plain(&ws));
        }
        // Full access is the owner's alone and lifts the sandbox: every card
        // of such a run says so where it cannot be missed.
        if state.sandbox == Sandbox::DangerFullAccess.word() {
            o.insert(
                "text_tag_list".into(),
                json!([{"tag": "text_tag", "text": plain(FULL_ACCESS_TAG), "color": "red"}]),
            );
        }
    }
    h
}

/// The header tag of a run with full access (`danger-full-access`).
const FULL_ACCESS_TAG: &str = "access: full";

fn config(state: &RunState) -> Value {
    let streaming = !state.is_finished();
    let mut c = json!({
        "update_multi": true,
        "streaming_mode": streaming,
        "summary": {"content": summary(state)},
    });
    if streaming && let Some(o) = c.as_object_mut() {
        o.insert(
            "streaming_config".into(),
            json!({
                "print_frequency_ms": {"default": 70},
                "print_step": {"default": 1},
                "print_strategy": "fast",
            }),
        );
    }
    c
}

fn md(id: Option<&str>, content: String) -> Value {
    let mut v = json!({"tag": "markdown", "content": content});
    if let (Some(id), Some(o)) = (id, v.as_object_mut()) {
        o.insert("element_id".into(), json!(id));
    }
    v
}

fn panel(id: &str, title: String, failed: bool, elements: Vec<Value>) -> Value {
    json!({
        "tag": "collapsible_panel",
        "element_id": id,
        "expanded": false,
        "header": {"title": plain(&title)},
        "border": {"color": if failed { "red" } else { "grey" }, "corner_radius": "5px"},
        "vertical_spacing": "8px",
        "elements": elements,
    })
}

fn main_card(
    state: &RunState,
    opts: &RenderOptions,
    l: &Limits,
    answer: &str,
    more: bool,
) -> Value {
    let mut els: Vec<Value> = Vec::new();

    if l.reasoning > 0 && !state.reasoning().trim().is_empty() {
        let mut text =
            defuse_mentions(&truncate_tail(state.reasoning().trim(), l.reasoning)).into_owned();
        if state.reasoning_dropped > 0 && !text.starts_with('…') {
            text.insert_str(0, "… (earlier reasoning omitted)\n");
        }
        els.push(panel(
            "reasoning",
            "Reasoning".to_string(),
            false,
            vec![json!({"tag": "markdown", "content": text, "text_size": "notation"})],
        ));
    }

    tool_elements(state, opts.tool_display, l, &mut els);

    if let Some(line) = queue_line(state) {
        let mut q = md(Some("queue"), line);
        if let Some(o) = q.as_object_mut() {
            o.insert("text_size".into(), json!("notation"));
        }
        els.push(q);
    }
    let skipped = state.skipped_lines();
    if !skipped.is_empty() {
        let mut lines: Vec<String> = skipped.iter().map(|l| escape_md(l)).collect();
        lines[0] = format!("**{}**", lines[0]);
        els.push(md(Some("skipped"), lines.join("\n")));
    }
    els.push(md(Some(ANSWER_ELEMENT_ID), answer.to_string()));
    if more {
        els.push(md(
            Some("answer_more"),
            "*… continued in the next card*".to_string(),
        ));
    }

    if let Some(f) = files_element(state, l) {
        els.push(f);
    }
    if let Some(s) = status_element(state, l) {
        els.push(s);
    }

    els.push(json!({"tag": "hr", "element_id": "footer_hr"}));
    let mut footer = md(Some("footer"), footer_text(state, opts));
    if let Some(o) = footer.as_object_mut() {
        o.insert("text_size".into(), json!("notation"));
    }
    els.push(footer);

    if state.is_finished() {
        els.extend(super::thread_elements::final_elements(state));
    } else if let Some(token) = &opts.stop_token {
        els.push(json!({
            "tag": "button",
            "element_id": STOP_ELEMENT_ID,
            "text": plain("Stop"),
            "type": "danger",
            "size": "small",
            "behaviors": [{"type": "callback", "value": {CALLBACK_VALUE_KEY: token}}],
        }));
    }

    json!({
        "schema": "2.0",
        "config": config(state),
        "header": header(state, opts, ""),
        "body": {"elements": els},
    })
}

fn continuation_card(
    state: &RunState,
    opts: &RenderOptions,
    piece: usize,
    answer: &str,
    more: bool,
) -> Value {
    let mut els = vec![md(Some(ANSWER_ELEMENT_ID), answer.to_string())];
    if more {
        els.push(md(
            Some("answer_more"),
            "*… continued in the next card*".to_string(),
        ));
    }
    json!({
        "schema": "2.0",
        "config": config(state),
        "header": header(state, opts, &format!(" (part {})", piece.saturating_add(1))),
        "body": {"elements": els},
    })
}

fn tool_label(t: &ToolCall, max: usize) -> String {
    let title = one_line(&t.title, max);
    match t.kind {
        ToolKind::Command => format!("$ {title}"),
        ToolKind::Mcp => format!("tool: {title}"),
        ToolKind::WebSearch => format!("search: {title}"),
        ToolKind::Todo => "plan update".to_string(),
        ToolKind::FileChange => format!("edit: {title}"),
        ToolKind::Unspecified => title,
    }
}

fn state_icon(s: ToolState) -> &'static str {
    match s {
        ToolState::Running => "⏳",
        ToolState::Ok => "✓",
        ToolState::Failed => "✗",
        ToolState::Declined => "⊘",
        ToolState::Abandoned => "■",
    }
}

fn tool_summary(t: &ToolCall) -> String {
    match (t.state, t.exit_code) {
        (ToolState::Running, _) => " · running".to_string(),
        (ToolState::Declined, _) => " · declined".to_string(),
        (ToolState::Abandoned, _) => " · stopped".to_string(),
        (_, Some(code)) => format!(" · exit {code}"),
        (ToolState::Failed, None) => " · failed".to_string(),
        (ToolState::Ok, None) => String::new(),
    }
}

fn tool_body(t: &ToolCall, l: &Limits) -> String {
    let mut parts = Vec::new();
    if t.kind == ToolKind::Command && !t.title.trim().is_empty() {
        parts.push(fenced(&truncate_head(t.title.trim(), l.command), "bash"));
    } else if !t.title.trim().is_empty() {
        parts.push(format!("**{}**", escape_md(&one_line(&t.title, l.command))));
    }
    let status = match t.state {
        ToolState::Running => "running",
        ToolState::Ok => "ok",
        ToolState::Failed => "failed",
        ToolState::Declined => "declined",
        ToolState::Abandoned => "stopped before it finished",
    };
    match t.exit_code {
        Some(c) => parts.push(format!("exit code **{c}** · {status}")),
        None => parts.push(status.to_string()),
    }
    if l.output > 0 && !t.output_tail.trim().is_empty() {
        parts.push(fenced(&truncate_tail(&t.output_tail, l.output), ""));
    }
    if !t.error.trim().is_empty() {
        parts.push(format!(
            "error: {}",
            escape_md(&one_line(&t.error, l.command.max(80)))
        ));
    }
    parts.join("\n")
}

/// An indexed tool call (the index gives a stable element id).
type Indexed<'a> = (usize, &'a ToolCall);

fn tool_elements(state: &RunState, display: ToolDisplay, l: &Limits, els: &mut Vec<Value>) {
    if display == ToolDisplay::Off {
        return;
    }
    // File changes are listed on their own; panels are for commands/tools.
    let tools: Vec<Indexed<'_>> = state
        .tools
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind != ToolKind::FileChange)
        .collect();
    let total = tools.len() + state.tools_dropped;
    if total == 0 {
        return;
    }
    let summary = display == ToolDisplay::Summary;
    let split = if summary {
        tools.len()
    } else if total <= l.panels {
        0
    } else {
        tools.len() - l.panels.saturating_sub(1).min(tools.len())
    };
    let (folded, shown) = tools.split_at(split);
    let n_folded = folded.len() + state.tools_dropped;
    if n_folded > 0 {
        let lines = if summary {
            l.summary_lines
        } else {
            l.folded_lines
        };
        let bare = lines == 0 && (summary || l.panels == 0);
        els.push(folded_panel(
            folded,
            n_folded,
            !shown.is_empty(),
            lines,
            bare,
        ));
    }
    for (i, t) in shown {
        let title = format!(
            "{} {}{}",
            state_icon(t.state),
            tool_label(t, 60),
            tool_summary(t)
        );
        els.push(panel(
            &format!("tool_{i}"),
            title,
            t.state.is_failure(),
            vec![md(None, tool_body(t, l))],
        ));
    }
}

/// One panel listing `folded` calls (titles and status, no output); `bare`
/// gives just the count as a line of text.
fn folded_panel(
    folded: &[Indexed<'_>],
    n_folded: usize,
    earlier: bool,
    max_lines: usize,
    bare: bool,
) -> Value {
    let failed = folded.iter().filter(|(_, t)| t.state.is_failure()).count();
    let mut title = format!(
        "{n_folded} {}tool call{}",
        if earlier { "earlier " } else { "" },
        if n_folded == 1 { "" } else { "s" }
    );
    if failed > 0 {
        title.push_str(&format!(" ({failed} failed)"));
    }
    if bare {
        return md(Some("tools_folded"), escape_md(&title));
    }
    let mut lines: Vec<String> = folded
        .iter()
        .rev()
        .take(max_lines)
        .rev()
        .map(|(_, t)| {
            format!(
                "{} {}{}",
                state_icon(t.state),
                escape_md(&tool_label(t, 80)),
                tool_summary(t)
            )
        })
        .collect();
    let hidden = n_folded.saturating_sub(lines.len());
    if hidden > 0 {
        lines.insert(0, format!("… and {hidden} more"));
    }
    if lines.is_empty() {
        lines.push(escape_md(&title));
    }
    panel(
        "tools_folded",
        title,
        failed > 0,
        vec![json!({"tag": "markdown", "content": lines.join("\n"), "text_size": "notation"})],
    )
}

fn files_element(state: &RunState, l: &Limits) -> Option<Value> {
    if state.files.is_empty() {
        return None;
    }
    let n = state.files.len();
    let mut text = format!("**Files changed ({n})**");
    for f in state.files.iter().take(l.files) {
        let kind = match f.kind.as_str() {
            "add" => "added",
            "delete" => "deleted",
            "update" => "modified",
            other => other,
        };
        let kind = one_line(kind, 20);
        text.push_str(&format!(
            "\n- {} · {}",
            inline_code(&one_line(&f.path, 160)),
            kind
        ));
        if f.failed {
            text.push_str(" · <font color='red'>failed</font>");
        }
    }
    if n > l.files && l.files > 0 {
        text.push_str(&format!("\n- … and {} more", n - l.files));
    }
    Some(md(Some("files"), text))
}

/// What holds a queued run, and how many messages joined the first one
/// ("+N messages added"); `None` when there is nothing to say.
pub(crate) fn queue_line(state: &RunState) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if state.phase == Phase::Queued {
        parts.push(
            match state.queue_reason {
                QueueReason::ScopeBusy => {
                    "⏳ Queued: starts when the current run in this chat ends"
                }
                QueueReason::PoolFull => "⏳ Queued: waiting for a free run slot",
                QueueReason::QuietWindow => "⏳ Queued: waiting a moment for more messages",
                QueueReason::Interrupting => "⏳ Stopping the current run to answer this",
                QueueReason::Steered | QueueReason::None | QueueReason::Unspecified => {
                    "⏳ Starting…"
                }
            }
            .to_string(),
        );
    }
    if let Some((_, what)) = state.waiting.first()
        && !state.is_finished()
    {
        let more = match state.waiting.len() {
            1 => String::new(),
            n => format!(" (+{} more)", n - 1),
        };
        parts.push(format!(
            "✋ Waiting for approval: {}{more}",
            escape_md(&one_line(what, 120))
        ));
    }
    match state.message_count.saturating_sub(1) {
        0 => {}
        1 => parts.push("+1 message added".to_string()),
        n => parts.push(format!("+{n} messages added")),
    }
    match state.steered {
        0 => {}
        1 => parts.push("↪ 1 added to the running turn".to_string()),
        n => parts.push(format!("↪ {n} added to the running turn")),
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

fn status_element(state: &RunState, l: &Limits) -> Option<Value> {
    let mut lines = Vec::new();
    if state.phase.is_terminal() && !state.detail.trim().is_empty() {
        let d = escape_md(&one_line(&state.detail, 300));
        lines.push(match state.phase {
            Phase::Failed | Phase::TimedOut => format!("<font color='red'>{d}</font>"),
            _ => format!("<font color='grey'>{d}</font>"),
        });
    }
    let skip = state.errors.len().saturating_sub(l.warnings);
    for e in state.errors.iter().skip(skip) {
        lines.push(format!("⚠ {}", escape_md(&one_line(e, 200))));
    }
    if lines.is_empty() {
        None
    } else {
        Some(md(Some("status"), lines.join("\n")))
    }
}

fn footer_text(state: &RunState, opts: &RenderOptions) -> String {
    let parts = footer_parts(state, opts.now_ms, escape_md);
    if parts.is_empty() {
        phase_label(state.phase).to_string()
    } else {
        parts.join(" · ")
    }
}

/// Elapsed time, tokens, sandbox and model; `esc` makes worker strings
/// safe for the target format (markdown escaping, or none for plain text).
pub(super) fn footer_parts(
    state: &RunState,
    now_ms: Option<i64>,
    esc: fn(&str) -> String,
) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(ms) = state.elapsed(now_ms) {
        parts.push(format!("⏱ {}", fmt_duration(ms)));
    }
    if let Some(u) = &state.usage {
        let mut t = format!(
            "{} in · {} out",
            fmt_count(u.input_tokens),
            fmt_count(u.output_tokens)
        );
        if u.cached_input_tokens > 0 {
            t.push_str(&format!(" · {} cached", fmt_count(u.cached_input_tokens)));
        }
        parts.push(format!("tokens {t}"));
    }
    if !state.sandbox.is_empty() {
        parts.push(format!("sandbox {}", esc(&one_line(&state.sandbox, 40))));
    }
    if !state.model.is_empty() {
        parts.push(esc(&one_line(&state.model, 40)));
    }
    parts
}

pub(super) fn fmt_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{}.{}s", s, (ms % 1000) / 100),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub(super) fn fmt_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1_000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// Components in the card body, nested ones included (what the 200 limit
/// counts; text objects inside a component are not components).
pub(super) fn count_elements(card: &Value) -> usize {
    fn walk(els: &Value) -> usize {
        els.as_array().map_or(0, |a| {
            a.iter()
                .map(|e| {
                    1 + walk(e.get("elements").unwrap_or(&Value::Null))
                        + e.get("columns").map_or(0, |c| {
                            c.as_array().map_or(0, |cols| {
                                cols.iter()
                                    .map(|col| {
                                        1 + walk(col.get("elements").unwrap_or(&Value::Null))
                                    })
                                    .sum()
                            })
                        })
                })
                .sum()
        })
    }
    walk(card.pointer("/body/elements").unwrap_or(&Value::Null))
}
