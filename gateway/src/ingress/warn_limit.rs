//! Warn lines that outsiders can cause (denied card clicks, refused webhook
//! requests) are rate-limited per kind, so a flood of them cannot flood the
//! log; the next line that gets through says how many were held back.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Lines of one kind let through per window.
const PER_WINDOW: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct WarnLimit(Mutex<HashMap<&'static str, Window>>);

struct Window {
    start: Instant,
    sent: u32,
    held: u64,
}

impl WarnLimit {
    /// `Some(held back since the last line)` when a line of `kind` may be
    /// written at `now`, else `None` (and it is counted).
    pub(crate) fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let w = m.entry(kind).or_insert(Window {
            start: now,
            sent: 0,
            held: 0,
        });
        if now.saturating_duration_since(w.start) >= WINDOW {
            w.start = now;
            w.sent = 0;
        }
        if w.sent >= PER_WINDOW {
            w.held += 1;
            return None;
        }
        w.sent += 1;
        Some(std::mem::take(&mut w.held))
    }
}

/// The process-wide limiter.
pub(crate) fn admit(kind: &'static str) -> Option<u64> {
    static LIMIT: OnceLock<WarnLimit> = OnceLock::new();
    LIMIT
        .get_or_init(WarnLimit::default)
        .admit(kind, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_one_kind_is_held_back_and_counted() {
        let l = WarnLimit::default();
        let t = Instant::now();
        let passed = (0..1000).filter(|_| l.admit("click", t).is_some()).count();
        assert_eq!(passed, PER_WINDOW as usize);
        // Another kind is not affected.
        assert_eq!(l.admit("webhook", t), Some(0));
        // The next window's first line reports what was held back.
        assert_eq!(l.admit("click", t + WINDOW), Some(1000 - PER_WINDOW as u64));
        assert_eq!(l.admit("click", t + WINDOW), Some(0));
    }
}
