//! Plain text for reply mode "text": markdown reduced to what a reader of
//! the rendered markdown would see, and a run's final state.
//!
//! Only syntax is removed (fences, emphasis markers, heading hashes, link
//! brackets, escapes); every word of the text is kept, and code keeps its
//! exact content because people copy it.

use super::card::{footer_parts, phase_label};
use super::state::{Phase, ReplyMode, RunState};
use super::text::{Fence, escape_md, next_fence, one_line};

/// Files listed in a run's text; the rest are counted.
const MAX_FILES: usize = 50;
/// Warnings listed (the newest), as on the card.
const MAX_WARNINGS: usize = 3;
/// Nesting of links inside link text followed before `[` reads literally;
/// bounds recursion on hostile input.
const MAX_LINK_DEPTH: usize = 4;
/// Chars looked ahead for a link's or autolink's end.
const MAX_LINK_SCAN: usize = 2048;

/// `md` as plain text: code blocks keep their content without fences,
/// emphasis and heading markers go, links become "text (url)", list
/// bullets become "•", quotes "│", rules a line, table rows "a | b".
pub(crate) fn markdown_to_plain(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    let mut lines = PlainLines::default();
    for line in md.split_inclusive('\n') {
        lines.push(line, &mut out);
    }
    out
}

/// [`markdown_to_plain`] a line at a time, for text that arrives in pieces
/// (the console's streamed answers): it keeps whether a code block is open.
#[derive(Default)]
pub(crate) struct PlainLines {
    fence: Option<Fence>,
}

impl PlainLines {
    /// Appends one line (with its line ending, if any) to `out` as plain
    /// text; a line that is only syntax (a fence) adds nothing.
    pub(crate) fn push(&mut self, line: &str, out: &mut String) {
        let after = next_fence(self.fence.as_ref(), line);
        let fence_line = self.fence.is_some() != after.is_some();
        let in_code = self.fence.is_some() && after.is_some();
        self.fence = after;
        if fence_line {
            return;
        }
        if in_code {
            out.push_str(line);
            return;
        }
        let (body, nl) = split_eol(line);
        if let Some(text) = block_line(body) {
            out.push_str(&text);
            out.push_str(nl);
        }
    }
}

/// A run as the final plain-text message shows it: the state line, the
/// answer (complete), files changed, warnings and a footer.
pub(crate) fn run_text(state: &RunState) -> String {
    let mut out = state_line(state);
    out.push_str("\n\n");
    let answer = state.answer();
    if answer.trim().is_empty() {
        out.push_str(if state.phase.is_terminal() {
            "(no answer)"
        } else {
            "…"
        });
    } else {
        out.push_str(markdown_to_plain(&answer).trim_end());
    }
    if let Some(skipped) = fallback_skipped(state) {
        out.push_str("\n\n");
        out.push_str(&skipped.join("\n"));
    }
    if let Some(files) = files_text(state) {
        out.push_str("\n\n");
        out.push_str(&files);
    }
    let skip = state.errors.len().saturating_sub(MAX_WARNINGS);
    let warnings: Vec<String> = state
        .errors
        .iter()
        .skip(skip)
        .map(|e| format!("⚠ {}", one_line(e, 200)))
        .collect();
    if !warnings.is_empty() {
        out.push_str("\n\n");
        out.push_str(&warnings.join("\n"));
    }
    let footer = footer_parts(state, None, |s| s.to_string());
    if !footer.is_empty() {
        out.push_str("\n\n");
        out.push_str(&footer.join(" · "));
    }
    out
}

/// What reply mode `markdown` posts when a run ends: the answer exactly as
/// Codex wrote it, then (only when there is something to say) how the run
/// ended, the files changed, the last warnings, and the footer line.
pub(crate) fn run_markdown(state: &RunState) -> String {
    let answer = state.answer();
    let mut parts: Vec<String> = Vec::new();
    if !answer.trim().is_empty() {
        parts.push(answer.clone());
    }
    if state.phase != Phase::Done || answer.trim().is_empty() {
        parts.push(format!("**{}**", escape_md(&state_line(state))));
    }
    if let Some(skipped) = fallback_skipped(state) {
        let lines: Vec<String> = skipped.iter().map(|l| escape_md(l)).collect();
        parts.push(lines.join("\n"));
    }
    if let Some(files) = files_text(state) {
        // Paths read literally: each line is escaped, the list shape kept.
        let lines: Vec<String> = files
            .lines()
            .map(|l| match l.strip_prefix("- ") {
                Some(rest) => format!("- {}", escape_md(rest)),
                None => escape_md(l),
            })
            .collect();
        parts.push(lines.join("\n"));
    }
    let skip = state.errors.len().saturating_sub(MAX_WARNINGS);
    let warnings: Vec<String> = state
        .errors
        .iter()
        .skip(skip)
        .map(|e| format!("⚠ {}", escape_md(&one_line(e, 200))))
        .collect();
    if !warnings.is_empty() {
        parts.push(warnings.join("\n"));
    }
    let footer = footer_parts(state, None, escape_md);
    if !footer.is_empty() {
        parts.push(format!("*{}*", footer.join(" · ")));
    }
    parts.join("\n\n")
}

/// The skipped attachments for a run whose card could not be shown (the
/// worker told the other reply modes at once, in a notice of its own).
fn fallback_skipped(state: &RunState) -> Option<Vec<String>> {
    Some(state.skipped_lines())
        .filter(|l| !l.is_empty() && state.reply_mode == Some(ReplyMode::Card))
}

fn state_line(state: &RunState) -> String {
    let icon = match state.phase {
        Phase::Queued => "…",
        Phase::Running => "⏳",
        Phase::Done => "✓",
        Phase::Interrupted => "⏹",
        Phase::TimedOut => "⏱",
        Phase::Failed => "✗",
    };
    let mut line = format!("{icon} {}", phase_label(state.phase));
    let detail = one_line(&state.detail, 300);
    if state.phase.is_terminal() && !detail.is_empty() {
        line.push_str(": ");
        line.push_str(&detail);
    }
    line
}

fn files_text(state: &RunState) -> Option<String> {
    if state.files.is_empty() {
        return None;
    }
    let n = state.files.len();
    let mut text = format!("Files changed ({n}):");
    for f in state.files.iter().take(MAX_FILES) {
        let kind = match f.kind.as_str() {
            "add" => "added",
            "delete" => "deleted",
            "update" => "modified",
            other => other,
        };
        text.push_str(&format!(
            "\n- {} ({})",
            one_line(&f.path, 300),
            one_line(kind, 20)
        ));
        if f.failed {
            text.push_str(" failed");
        }
    }
    if n > MAX_FILES {
        text.push_str(&format!("\n- … and {} more", n - MAX_FILES));
    }
    Some(text)
}

/// `line` without its line ending, and the ending.
fn split_eol(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\n', '\r']);
    (body, &line[body.len()..])
}

/// One line outside code; `None` drops a line that is only syntax (a
/// table's delimiter row).
fn block_line(line: &str) -> Option<String> {
    let rest = line.trim_start_matches([' ', '\t']);
    let indent = &line[..line.len() - rest.len()];
    // Quote markers, possibly nested; a loop, not recursion, so a line of
    // thousands of '>' cannot exhaust the stack.
    let mut quotes = 0usize;
    let mut rest = rest;
    while let Some(r) = rest.strip_prefix('>') {
        quotes += 1;
        rest = r.strip_prefix(' ').unwrap_or(r);
    }
    let prefix = format!("{indent}{}", "│ ".repeat(quotes));
    let body = if is_rule(rest) {
        "────────".to_string()
    } else if let Some(h) = heading(rest) {
        inline(h)
    } else if rest.starts_with('|') {
        table_row(rest)?
    } else if let Some(item) = bullet(rest) {
        format!("• {}", inline(item))
    } else {
        inline(rest)
    };
    Some(format!("{prefix}{body}"))
}

/// `---`, `***`, `___` (spaces allowed between).
fn is_rule(s: &str) -> bool {
    let marks: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    marks.len() >= 3 && matches!(marks[0], '-' | '*' | '_') && marks.iter().all(|&c| c == marks[0])
}

fn heading(s: &str) -> Option<&str> {
    let hashes = s.chars().take_while(|&c| c == '#').count();
    if hashes == 0 || hashes > 6 {
        return None;
    }
    let rest = &s[hashes..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    // An optional closing run of '#' is syntax too.
    let t = rest.trim();
    let closed = t.trim_end_matches('#');
    Some(if closed.ends_with([' ', '\t']) || closed.is_empty() {
        closed.trim_end()
    } else {
        t
    })
}

fn bullet(s: &str) -> Option<&str> {
    ["- ", "* ", "+ "]
        .iter()
        .find_map(|m| s.strip_prefix(m))
        .map(|r| r.trim_start_matches(' '))
}

fn table_row(s: &str) -> Option<String> {
    let mut cells = split_cells(s);
    if cells.first().is_some_and(|c| c.trim().is_empty()) {
        cells.remove(0);
    }
    if cells.last().is_some_and(|c| c.trim().is_empty()) {
        cells.pop();
    }
    let delimiter = !cells.is_empty()
        && cells.iter().all(|c| {
            let c = c.trim();
            c.contains('-') && c.chars().all(|ch| matches!(ch, '-' | ':' | ' '))
        });
    if delimiter {
        return None;
    }
    Some(
        cells
            .iter()
            .map(|c| inline(c.trim()))
            .collect::<Vec<_>>()
            .join(" | "),
    )
}

/// Cells split on '|' that is not escaped.
fn split_cells(s: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                push_to_last(&mut cells, '|');
            }
            '|' => cells.push(String::new()),
            c => push_to_last(&mut cells, c),
        }
    }
    cells
}

fn push_to_last(cells: &mut [String], c: char) {
    if let Some(last) = cells.last_mut() {
        last.push(c);
    }
}

/// Inline text of one line, syntax removed.
fn inline(s: &str) -> String {
    inline_at(s, 0)
}

enum Tok {
    Text(String),
    /// A run of `*`, `_` or `~`; `len` shrinks as pairs are matched.
    Delim {
        ch: char,
        len: usize,
        open: bool,
        close: bool,
    },
}

fn inline_at(s: &str, depth: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    // No "](" means no inline link: skip the bracket matching entirely.
    let may_link = depth < MAX_LINK_DEPTH && s.contains("](");
    let mut toks = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\\' if next.is_some_and(|n| n.is_ascii_punctuation()) => {
                text.extend(next);
                i += 2;
            }
            '`' => i += code_span(&chars, i, &mut text),
            '[' | '!' if may_link => match link(&chars, i, depth) {
                Some((used, plain)) => {
                    text.push_str(&plain);
                    i += used;
                }
                None => {
                    text.push(c);
                    i += 1;
                }
            },
            '<' => i += autolink(&chars, i, &mut text),
            '*' | '_' | '~' => {
                let n = chars[i..].iter().take_while(|&&x| x == c).count();
                let (open, close) = flanking(&chars, i, n, c);
                if c == '~' && n < 2 {
                    text.push(c);
                } else {
                    toks.push(Tok::Text(std::mem::take(&mut text)));
                    toks.push(Tok::Delim {
                        ch: c,
                        len: n,
                        open,
                        close,
                    });
                }
                i += n;
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    toks.push(Tok::Text(text));
    pair_delims(&mut toks);
    let mut out = String::with_capacity(s.len());
    for t in &toks {
        match t {
            Tok::Text(t) => out.push_str(t),
            Tok::Delim { ch, len, .. } => out.extend(std::iter::repeat_n(*ch, *len)),
        }
    }
    out
}

/// A code span at `i`: its content verbatim (one padding space trimmed
/// each side), or the backticks as text when nothing closes it. Returns
/// the chars consumed.
fn code_span(chars: &[char], i: usize, out: &mut String) -> usize {
    let n = chars[i..].iter().take_while(|&&c| c == '`').count();
    let mut j = i + n;
    while j < chars.len() {
        let run = chars[j..].iter().take_while(|&&c| c == '`').count();
        if run == n {
            let inner: String = chars[i + n..j].iter().collect();
            let trimmed = if inner.len() >= 2
                && inner.starts_with(' ')
                && inner.ends_with(' ')
                && !inner.trim().is_empty()
            {
                &inner[1..inner.len() - 1]
            } else {
                inner.as_str()
            };
            out.push_str(trimmed);
            return j + n - i;
        }
        j += run.max(1);
    }
    out.extend(std::iter::repeat_n('`', n));
    n
}

/// `[text](url)` or `![alt](url)` at `i` as "text (url)"; `None` when it
/// is not a complete inline link.
fn link(chars: &[char], i: usize, depth: usize) -> Option<(usize, String)> {
    let start = if chars[i] == '!' { i + 1 } else { i };
    if chars.get(start) != Some(&'[') {
        return None;
    }
    let close = matching(chars, start, '[', ']')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = matching(chars, close + 1, '(', ')')?;
    let label: String = chars[start + 1..close].iter().collect();
    let label = inline_at(&label, depth + 1);
    let target: String = chars[close + 2..end].iter().collect();
    let target = target.trim();
    // A title is words the author wrote; it stays after the URL.
    let (url, title) = target
        .split_once(char::is_whitespace)
        .map_or((target, ""), |(u, t)| (u, t.trim()));
    let url = url.trim_start_matches('<').trim_end_matches('>');
    let dest = if title.is_empty() {
        url.to_string()
    } else {
        format!("{url} {title}")
    };
    let plain = if dest.is_empty() || dest == label {
        label
    } else if label.trim().is_empty() {
        dest
    } else {
        format!("{label} ({dest})")
    };
    Some((end + 1 - i, plain))
}

/// Index of the bracket closing the one at `open_at` (nesting counted,
/// escapes skipped), looking at most [`MAX_LINK_SCAN`] chars ahead so a
/// line of brackets costs linear time.
fn matching(chars: &[char], open_at: usize, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = open_at;
    let stop = chars.len().min(open_at.saturating_add(MAX_LINK_SCAN));
    while j < stop {
        match chars[j] {
            '\\' => j += 1,
            c if c == open => depth += 1,
            c if c == close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// `<https://…>` as the bare URL; anything else keeps its '<'.
fn autolink(chars: &[char], i: usize, out: &mut String) -> usize {
    let rest = &chars[i + 1..];
    // Stopping at whitespace or another '<' keeps a line of '<' linear.
    let end = rest
        .iter()
        .take(MAX_LINK_SCAN)
        .position(|&c| c == '>' || c == '<' || c.is_whitespace());
    if let Some(end) = end.filter(|&e| rest[e] == '>') {
        let inner: String = rest[..end].iter().collect();
        let scheme = ["http://", "https://", "mailto:"]
            .iter()
            .any(|s| inner.starts_with(s));
        if scheme {
            out.push_str(&inner);
            return end + 2;
        }
    }
    out.push('<');
    1
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace())
}

/// Whether the delimiter run `chars[i..i + n]` may open and close
/// emphasis (CommonMark's flanking rules, simplified).
fn flanking(chars: &[char], i: usize, n: usize, c: char) -> (bool, bool) {
    let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
    let next = chars.get(i + n).copied();
    let ws = |x: Option<char>| x.is_none_or(char::is_whitespace);
    let punct = |x: Option<char>| x.is_some_and(is_punct);
    let left = !ws(next) && (!punct(next) || ws(prev) || punct(prev));
    let right = !ws(prev) && (!punct(prev) || ws(next) || punct(next));
    if c == '_' {
        // Intraword underscores (snake_case) are never emphasis.
        (
            left && (!right || punct(prev)),
            right && (!left || punct(next)),
        )
    } else {
        (left, right)
    }
}

/// Matches closers with the nearest opener of the same character; matched
/// markers are removed, unmatched ones stay as literal text. One stack per
/// character keeps this linear on hostile input.
fn pair_delims(toks: &mut [Tok]) {
    let mut openers: [Vec<usize>; 3] = Default::default();
    for i in 0..toks.len() {
        let Tok::Delim {
            ch, open, close, ..
        } = toks[i]
        else {
            continue;
        };
        let stack = &mut openers[stack_of(ch)];
        if close {
            close_with(toks, stack, i, ch);
        }
        if open && delim_len(&toks[i]) > 0 {
            stack.push(i);
        }
    }
}

fn stack_of(ch: char) -> usize {
    match ch {
        '*' => 0,
        '_' => 1,
        _ => 2,
    }
}

fn close_with(toks: &mut [Tok], openers: &mut Vec<usize>, i: usize, ch: char) {
    while delim_len(&toks[i]) > 0 {
        let Some(&o) = openers.last() else {
            return;
        };
        let (ol, cl) = (delim_len(&toks[o]), delim_len(&toks[i]));
        let used = if ol >= 2 && cl >= 2 { 2 } else { 1 };
        if ch == '~' && used < 2 {
            return;
        }
        shrink(&mut toks[o], used);
        shrink(&mut toks[i], used);
        if delim_len(&toks[o]) == 0 {
            openers.pop();
        }
    }
}

fn delim_len(t: &Tok) -> usize {
    match t {
        Tok::Delim { len, .. } => *len,
        Tok::Text(_) => 0,
    }
}

fn shrink(t: &mut Tok, by: usize) {
    if let Tok::Delim { len, .. } = t {
        *len = len.saturating_sub(by);
    }
}
