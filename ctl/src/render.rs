//! Small helpers for terminal output: ages, aligned tables, and cleaning text
//! that came from another process before it reaches the terminal.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the unit every timestamp in `fcx.v1` uses.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whole seconds elapsed since `at_ms`, or `None` when the timestamp is unset
/// (proto3 sends 0 for "never").
pub(crate) fn age_secs(at_ms: i64, now_ms: i64) -> Option<u64> {
    if at_ms <= 0 {
        return None;
    }
    // A peer whose clock is slightly ahead would give a negative age; "0s" is
    // the honest reading of that.
    Some(u64::try_from(now_ms.saturating_sub(at_ms) / 1000).unwrap_or(0))
}

/// A compact duration: `42s`, `3m07s`, `2h05m`, `4d03h`.
pub(crate) fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Replace control characters (terminal escapes, newlines) in text from
/// fcxd, which may carry chat-derived strings such as a scope or a run detail.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `s`, or `-` when it is empty, cleaned for the terminal.
pub(crate) fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { clean(s) }
}

/// Write `rows` under `headers` in left-aligned columns two spaces apart. The
/// last column is not padded, so long details do not leave trailing blanks.
pub(crate) fn table(out: &mut dyn Write, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| (*h).to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_compact() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(187), "3m07s");
        assert_eq!(duration(2 * 3600 + 5 * 60 + 9), "2h05m");
        assert_eq!(duration(4 * 86_400 + 3 * 3600), "4d03h");
    }

    #[test]
    fn ages_handle_unset_and_skew() {
        assert_eq!(age_secs(0, 10_000), None);
        assert_eq!(age_secs(4_000, 10_500), Some(6));
        assert_eq!(age_secs(20_000, 10_000), Some(0));
    }

    #[test]
    fn control_characters_do_not_reach_the_terminal() {
        assert_eq!(clean("a\u{1b}[2Jb\nc"), "a?[2Jb?c");
        assert_eq!(or_dash(""), "-");
    }

    #[test]
    fn table_aligns_columns() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["g".to_string(), "fcxd".to_string(), "x".to_string()],
            vec!["w:work".to_string(), "worker".to_string(), String::new()],
        ];
        table(&mut out, &["ID", "KIND", "DETAIL"], &rows).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "ID      KIND    DETAIL\ng       fcxd    x\nw:work  worker\n"
        );
    }
}
