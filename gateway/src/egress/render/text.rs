//! Text measurement, truncation and answer splitting.
//!
//! The platform counts card size as bytes of the card JSON (so escapes
//! count) and text lengths in characters as JavaScript sees them (UTF-16
//! units), so both measures live here. Every cut falls on a `char`
//! boundary, so CJK text and emoji are never split inside a code point.

use std::ops::Range;

/// Length in UTF-16 code units (how the platform counts characters).
pub(crate) fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Bytes `s` occupies inside a JSON string literal as serde_json writes
/// it (quotes excluded).
pub(crate) fn json_escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The longest prefix of `s` of at most `max` UTF-16 units, plus a marker
/// when something was cut. The result (marker included) stays within
/// `max` units.
pub(crate) fn truncate_head(s: &str, max: usize) -> String {
    if utf16_len(s) <= max {
        return s.to_string();
    }
    const MARK: &str = " …";
    let room = max.saturating_sub(utf16_len(MARK));
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let l = c.len_utf16();
        if used + l > room {
            break;
        }
        used += l;
        out.push(c);
    }
    out.push_str(MARK);
    out
}

/// The longest suffix of `s` of at most `max` UTF-16 units, behind a
/// visible marker saying how much was dropped. Tails matter more than
/// heads for command output and reasoning: the end is where the outcome
/// is.
pub(crate) fn truncate_tail(s: &str, max: usize) -> String {
    let total = utf16_len(s);
    if total <= max {
        return s.to_string();
    }
    // The marker's length depends on the count it prints; reserve for the
    // widest count so the result never exceeds `max`.
    let reserve = utf16_len(&omitted_marker(total));
    // Too tight for the wordy marker: a bare ellipsis still shows the cut.
    let short = reserve >= max;
    let room = max.saturating_sub(if short { 1 } else { reserve });
    let mut start = s.len();
    let mut used = 0;
    for (i, c) in s.char_indices().rev() {
        let l = c.len_utf16();
        if used + l > room {
            break;
        }
        used += l;
        start = i;
    }
    let mut out = if short {
        "…".to_string()
    } else {
        omitted_marker(total - used)
    };
    out.push_str(&s[start..]);
    out
}

fn omitted_marker(n: usize) -> String {
    format!("… ({n} earlier characters omitted)\n")
}

/// One line for headers and lists: control characters and newlines become
/// spaces, then the text is cut to `max` UTF-16 units.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_head(&flat, max)
}

/// A fenced code block whose fence is longer than any backtick run in
/// `body`, so output containing ``` cannot close it early.
pub(crate) fn fenced(body: &str, lang: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    let nl = if body.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{lang}\n{body}{nl}{fence}")
}

/// Breaks `<at …>` tags in text that did not come from fcx (Codex's answer
/// and reasoning), so a model that writes `<at id=all></at>` (because a
/// prompt asked it to) cannot make the bot mention everyone in a group. A
/// zero-width space after `<` keeps the text readable and inert in cards,
/// posts and text messages alike. Everything else is left byte for byte.
pub(crate) fn defuse_mentions(s: &str) -> std::borrow::Cow<'_, str> {
    let bytes = s.as_bytes();
    let is_tag = |i: usize| {
        bytes
            .get(i + 1)
            .is_some_and(|b| b.eq_ignore_ascii_case(&b'a'))
            && bytes
                .get(i + 2)
                .is_some_and(|b| b.eq_ignore_ascii_case(&b't'))
            && bytes
                .get(i + 3)
                .is_none_or(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
    };
    if !bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'<' && is_tag(i))
    {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.char_indices() {
        out.push(c);
        if c == '<' && is_tag(i) {
            out.push('\u{200B}');
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Markdown's own specials in text that must read literally (file paths,
/// names), so `a_b_c` or `*.rs` do not turn into emphasis.
pub(crate) fn escape_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` as inline code (literal on every client), or escaped text when it
/// holds a backtick and cannot be wrapped.
pub(crate) fn inline_code(s: &str) -> String {
    if s.is_empty() || s.contains('`') {
        escape_md(s)
    } else {
        format!("`{s}`")
    }
}

/// One piece of a split answer: `range` of the original text, plus the
/// fence lines added so the piece renders on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) range: Range<usize>,
    /// Opening fence line (without newline) that re-opens a code block the
    /// previous piece had to close.
    pub(crate) reopen: Option<String>,
    /// Fence that closes a code block still open at the cut.
    pub(crate) close: Option<String>,
}

impl Piece {
    /// The piece as displayed: re-opened fence, text, closing fence.
    pub(crate) fn render(&self, text: &str) -> String {
        let body = text.get(self.range.clone()).unwrap_or("");
        let mut s = String::with_capacity(body.len() + 16);
        if let Some(open) = &self.reopen {
            s.push_str(open);
            s.push('\n');
        }
        s.push_str(body);
        if let Some(close) = &self.close {
            if !body.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(close);
        }
        s
    }
}

/// An open code fence: its marker run (e.g. "```") and full opening line.
#[derive(Debug, Clone)]
pub(super) struct Fence {
    marker: String,
    line: String,
}

/// Fence state after `line`, given the state before it (CommonMark-ish:
/// up to three spaces of indent, a run of ≥ 3 backticks or tildes; a
/// closing run is at least as long and carries no info string).
pub(super) fn next_fence(state: Option<&Fence>, line: &str) -> Option<Fence> {
    let t = line.trim_end_matches(['\n', '\r']);
    let indent = t.len() - t.trim_start_matches(' ').len();
    let rest = &t[indent..];
    let ch = match rest.chars().next() {
        Some(c @ ('`' | '~')) if indent <= 3 => c,
        _ => return state.cloned(),
    };
    let run = rest.chars().take_while(|&c| c == ch).count();
    if run < 3 {
        return state.cloned();
    }
    let info = &rest[run..];
    match state {
        Some(open) => {
            let closes =
                open.marker.starts_with(ch) && run >= open.marker.len() && info.trim().is_empty();
            if closes { None } else { Some(open.clone()) }
        }
        None => {
            if ch == '`' && info.contains('`') {
                return None;
            }
            let marker = ch.to_string().repeat(run);
            // A re-opened fence repeats this line in every later piece, so
            // a huge info string is dropped rather than repeated.
            let line = t.trim_start_matches(' ');
            let line = if line.len() <= 64 {
                line.to_string()
            } else {
                marker.clone()
            };
            Some(Fence { marker, line })
        }
    }
}

/// Smallest budget `split_answer` honours; below it, fence lines alone
/// could exhaust a piece.
pub(crate) const MIN_PIECE_BUDGET: usize = 256;

/// Splits `answer` into pieces whose displayed form (see [`Piece::render`])
/// takes at most `budget` bytes as a JSON string. Cuts prefer line ends,
/// fall back to `char` boundaries inside an over-long line, and close and
/// re-open code fences across a cut. Concatenating the ranges gives the
/// original back.
///
/// Stable under growth: once a later piece exists, appending to the answer
/// never changes an earlier piece, so a continuation card can freeze it.
pub(crate) fn split_pieces(answer: &str, budget: usize) -> Vec<Piece> {
    let budget = budget.max(MIN_PIECE_BUDGET);
    let mut pieces = Vec::new();
    if answer.is_empty() {
        return vec![Piece {
            range: 0..0,
            reopen: None,
            close: None,
        }];
    }
    // The piece under construction.
    let mut start = 0usize;
    let mut reopen: Option<String> = None;
    let mut used = 0usize;
    let mut fence: Option<Fence> = None;
    let close_cost = |f: Option<&Fence>| f.map_or(0, |f| 2 + json_escaped_len(&f.marker));
    let open_cost = |f: Option<&Fence>| f.map_or(0, |f| json_escaped_len(&f.line) + 2);

    let mut pos = 0usize;
    for line in answer.split_inclusive('\n') {
        let after = next_fence(fence.as_ref(), line);
        let l = json_escaped_len(line);
        if used + l + close_cost(after.as_ref()) <= budget {
            used += l;
            pos += line.len();
            fence = after;
            continue;
        }
        // Cut before this line, unless the piece is still empty.
        if pos > start {
            pieces.push(Piece {
                range: start..pos,
                reopen: reopen.take(),
                close: fence.as_ref().map(|f| f.marker.clone()),
            });
            start = pos;
            reopen = fence.as_ref().map(|f| f.line.clone());
            used = open_cost(fence.as_ref());
            if used + l + close_cost(after.as_ref()) <= budget {
                used += l;
                pos += line.len();
                fence = after;
                continue;
            }
        }
        // A line longer than a whole piece: cut it between chars. Fence
        // state is taken as before the line; a fence line that long is not
        // a fence anyone can render anyway.
        let close = close_cost(fence.as_ref()).max(close_cost(after.as_ref()));
        for (i, c) in line.char_indices() {
            let cl = escaped_char_len(c);
            if used + cl + close > budget && pos + i > start {
                pieces.push(Piece {
                    range: start..pos + i,
                    reopen: reopen.take(),
                    close: fence.as_ref().map(|f| f.marker.clone()),
                });
                start = pos + i;
                reopen = fence.as_ref().map(|f| f.line.clone());
                used = open_cost(fence.as_ref());
            }
            used += cl;
        }
        pos += line.len();
        fence = after;
    }
    pieces.push(Piece {
        range: start..answer.len(),
        reopen,
        close: None,
    });
    pieces
}

/// [`split_pieces`], rendered: each string is what one card shows.
pub(crate) fn split_answer(answer: &str, budget: usize) -> Vec<String> {
    split_pieces(answer, budget)
        .iter()
        .map(|p| p.render(answer))
        .collect()
}

#[cfg(test)]
mod mention_tests {
    use super::defuse_mentions;

    #[test]
    fn at_tags_are_defused_and_nothing_else_changes() {
        for (input, inert) in [
            ("ping <at id=all></at> now", true),
            ("<AT user_id=\"all\">everyone</AT>", true),
            ("<at>", true),
            ("a <attribute> and <atom> and a<b", false),
            ("plain text, no tags", false),
            ("ends with <", false),
            ("<a", false),
        ] {
            let out = defuse_mentions(input);
            assert_eq!(out.replace('\u{200B}', ""), input);
            if inert {
                let lower = out.to_ascii_lowercase();
                assert!(
                    !lower.contains("<at ") && !lower.contains("<at>"),
                    "{out:?}"
                );
            } else {
                assert_eq!(out, input);
            }
        }
    }
}
