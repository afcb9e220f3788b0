//! The child's stderr: only a bounded tail is kept, plus the line that best
//! explains a failure and whether codex said the thread has no rollout.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::lines::{BoundedLines, Line};
use crate::util::truncate_chars;

/// Longest stderr line we keep (the rest of it is discarded).
const STDERR_MAX_LINE: usize = 64 << 10;
pub(crate) const TAIL_LINES: usize = 20;
pub(crate) const TAIL_BYTES: usize = 8 << 10;
const TAIL_LINE_CHARS: usize = 2048;

#[derive(Debug, Default)]
pub(crate) struct StderrState {
    pub(crate) tail: VecDeque<String>,
    pub(crate) tail_bytes: usize,
    /// Last `Error: …` line (codex's fatal error from main).
    pub(crate) last_error: Option<String>,
    pub(crate) last_line: Option<String>,
    pub(crate) no_rollout: bool,
    pub(crate) in_backtrace: bool,
}

impl StderrState {
    pub(crate) fn push(&mut self, raw: &str) {
        let cleaned = strip_ansi(raw);
        let line = cleaned.trim_end();
        if line.trim().is_empty() {
            return;
        }
        if line.contains("no rollout found for thread id") {
            self.no_rollout = true;
        }
        // anyhow backtraces of a release build are dozens of "N: <unknown>"
        // frames that would push the actual error out of the tail.
        if line.trim() == "Stack backtrace:" {
            self.in_backtrace = true;
            return;
        }
        if self.in_backtrace {
            if is_backtrace_frame(line) {
                return;
            }
            self.in_backtrace = false;
        }
        let kept = truncate_chars(line, TAIL_LINE_CHARS);
        self.tail_bytes += kept.len();
        self.tail.push_back(kept.clone());
        while self.tail.len() > TAIL_LINES || (self.tail_bytes > TAIL_BYTES && self.tail.len() > 1)
        {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len();
            }
        }
        if is_noise(line) {
            return;
        }
        if let Some(rest) = line.strip_prefix("Error:") {
            self.last_error = Some(truncate_chars(rest.trim(), TAIL_LINE_CHARS));
        } else {
            self.last_line = Some(kept);
        }
    }

    /// The line that best explains a failure.
    pub(crate) fn meaningful(&self) -> Option<&str> {
        self.last_error.as_deref().or(self.last_line.as_deref())
    }

    pub(crate) fn tail_string(&self) -> String {
        self.tail
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub(crate) fn is_backtrace_frame(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with("at ") {
        return true;
    }
    match t.split_once(':') {
        Some((n, _)) => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// stderr lines codex prints on every run that explain nothing.
pub(crate) fn is_noise(line: &str) -> bool {
    line.starts_with("Reading prompt from stdin")
        || line.starts_with("Reading additional input from stdin")
        || line.starts_with("WARNING: proceeding, even though we could not create PATH aliases")
}

pub(crate) fn strip_ansi(s: &str) -> String {
    if !s.contains('\u{1b}') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters until a final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    state: Arc<Mutex<StderrState>>,
    run_id: String,
) {
    let mut lines = BoundedLines::new(stderr, STDERR_MAX_LINE);
    loop {
        match lines.next().await {
            Ok(Some(Line::Text(bytes))) => {
                let text = String::from_utf8_lossy(&bytes);
                tracing::debug!(run_id, line = %text, "codex stderr");
                state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(&text);
            }
            Ok(Some(Line::TooLong(n))) => {
                tracing::debug!(run_id, bytes = n, "dropped an overlong codex stderr line");
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(run_id, error = %e, "reading codex stderr failed");
                return;
            }
        }
    }
}
