//! Small helpers shared by the worker's modules.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A short random id with a one-letter prefix, e.g. `r3f9a1c2e`: short enough
/// to type in `/exit`, random enough not to collide within a profile.
pub(crate) fn short_id(prefix: char) -> String {
    let n: u32 = rand::random();
    format!("{prefix}{n:08x}")
}

/// At most `max` bytes from the end of `s`, cut on a char boundary, with a
/// marker when something was dropped.
pub(crate) fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…(truncated)…\n{}", &s[start..])
}

/// The first line of `s`, at most `max` chars.
pub(crate) fn first_line(s: &str, max: usize) -> String {
    truncate_chars(s.lines().next().unwrap_or(""), max)
}

/// At most `max` chars of `s`, with a marker when something was cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_respects_char_boundaries() {
        let s = "好".repeat(100);
        let t = tail(&s, 10);
        assert!(t.ends_with('好'));
        assert!(t.starts_with("…(truncated)…"));
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(first_line("héllo\nworld", 3), "hél…");
        assert_eq!(first_line("abc\ndef", 3), "abc");
        assert_eq!(truncate_chars("好好好好", 2), "好好…");
    }
}
