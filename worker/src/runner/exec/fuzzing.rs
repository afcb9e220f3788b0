//! The JSONL translator's entry for `crate::fuzzing`: it stays private to
//! `exec` otherwise.

use std::path::PathBuf;

use super::translate::Translator;

/// Every `\n`-separated line of `data` through one translator, as codex's
/// stdout would arrive.
pub(crate) fn translate_lines(data: &[u8]) -> usize {
    let mut t = Translator::new(PathBuf::from("/ws/project"));
    data.split(|b| *b == b'\n')
        .map(|line| t.line(line.strip_suffix(b"\r").unwrap_or(line)).len())
        .sum()
}
