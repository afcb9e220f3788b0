//! The app's request budget, shared by every caller of one app's client.
//!
//! The platform limits per app and per target (feishu.md §3.9): IM
//! send/reply 50/s and 1000/min per app and 5/s per chat; CardKit 50/s and
//! 1000/min per API. Waiting for a 429 and its reset header works, but it
//! costs a whole window and delays everyone behind it; pacing requests
//! below the limits in the first place keeps a burst of runs from ever
//! seeing one. Each request reserves a slot in every window it belongs to
//! and sleeps until that slot, so waiting callers are served in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One limit: at most `max` requests in any `per` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) max: usize,
    pub(crate) per: Duration,
}

/// Added to every window: requests reserved exactly a window apart can
/// reach the platform closer together than that (scheduling and network
/// jitter), and its count is what matters.
const MARGIN: Duration = Duration::from_millis(100);

impl Window {
    pub(crate) const fn per_second(max: usize) -> Self {
        Window {
            max,
            per: Duration::from_millis(1000 + MARGIN.as_millis() as u64),
        }
    }
    pub(crate) const fn per_minute(max: usize) -> Self {
        Window {
            max,
            per: Duration::from_millis(60_000 + MARGIN.as_millis() as u64),
        }
    }
}

/// IM send and reply, per app.
pub(crate) const IM_SEND: &[Window] = &[Window::per_second(50), Window::per_minute(1000)];
/// Messages into one chat (the platform's 5 QPS per group / per user).
pub(crate) const IM_CHAT: &[Window] = &[Window::per_second(5)];
/// Drive comment and metadata calls: the platform quotes 5 to 10 per second
/// per app for most Drive/Docs APIs (feishu.md §3.8); the lower bound.
pub(crate) const DRIVE: &[Window] = &[Window::per_second(5)];
/// Image and file uploads (`im/v1/images`, `im/v1/files`), per app. The
/// reference gives no figure for them; the IM APIs' documented 50/s and
/// 1000/min is assumed (unverified).
pub(crate) const IM_UPLOAD: &[Window] = &[Window::per_second(50), Window::per_minute(1000)];
/// Every CardKit operation of the app. The platform exempts operations on
/// cards in streaming mode from its app QPS; we budget them anyway, so
/// that many runs at once stay within the documented app limit even if
/// that exemption is narrower than documented. Each card's writer is paced
/// separately below its own 10 ops/s.
pub(crate) const CARDKIT_OPS: &[Window] = &[Window::per_second(50)];
/// Card entity creation, per app (counts toward the API's minute window).
pub(crate) const CARDKIT_CREATE: &[Window] = &[Window::per_minute(1000)];

/// Reservations per key, oldest first.
#[derive(Default)]
pub(crate) struct Budget {
    slots: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").finish_non_exhaustive()
    }
}

impl Budget {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Wait until a request may go out under every `(key, windows)` given;
    /// the slot is taken when this returns.
    pub(crate) async fn acquire(&self, keys: &[(&str, &[Window])]) {
        let now = Instant::now();
        let at = self.reserve(keys, now);
        // A free slot costs no trip through the timer wheel.
        if at > now {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Reserve the earliest instant ≥ `now` that every window of every key
    /// admits, and record it. Each key keeps its own slots in time order, so
    /// a chat at its limit, or the minute window, delays only requests that
    /// share that key.
    pub(crate) fn reserve(&self, keys: &[(&str, &[Window])], now: Instant) -> Instant {
        let Ok(mut slots) = self.slots.lock() else {
            return now;
        };
        let mut at = now;
        // Each pass can only move `at` later; it settles once every key
        // admits it (at most one move per blocking slot).
        loop {
            let mut moved = false;
            for (key, windows) in keys {
                let Some(q) = slots.get(*key) else {
                    continue;
                };
                for w in windows.iter() {
                    let t = earliest(q, *w, at);
                    if t > at {
                        at = t;
                        moved = true;
                    }
                }
            }
            if !moved {
                break;
            }
        }
        for (key, windows) in keys {
            let keep = windows.iter().map(|w| w.per).max().unwrap_or_default();
            let q = slots.entry((*key).to_string()).or_default();
            let i = q.partition_point(|t| *t <= at);
            q.insert(i, at);
            // Slots matter only within the longest window of their key.
            while q.front().is_some_and(|t| *t + keep < now) {
                q.pop_front();
            }
        }
        // Keys idle for a minute (chats, mostly) are dropped so the map
        // does not grow with every chat ever answered.
        if slots.len() > 1024 {
            slots.retain(|_, q| {
                q.back()
                    .is_some_and(|t| *t + Duration::from_secs(60) >= now)
            });
        }
        at
    }
}

/// The earliest instant ≥ `from` at which one more slot fits window `w`
/// among the reserved `q` (sorted). A slot at `t` is admitted when fewer
/// than `max` slots lie within one window on either side of it: stricter
/// than needed when slots were reserved ahead, exact when they were not.
fn earliest(q: &VecDeque<Instant>, w: Window, from: Instant) -> Instant {
    if w.max == 0 {
        return from;
    }
    let mut t = from;
    loop {
        let lo = q.partition_point(|s| *s + w.per <= t);
        let hi = q.partition_point(|s| *s < t + w.per);
        if hi - lo < w.max {
            return t;
        }
        // Past the oldest slot in the way; every step passes one slot.
        match q.get(lo) {
            Some(s) => t = *s + w.per,
            None => return t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_any_window(times: &[Instant], w: Window) -> usize {
        times
            .iter()
            .map(|t| {
                times
                    .iter()
                    .filter(|u| **u >= *t && **u < *t + w.per)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_burst_is_spread_over_the_windows() {
        let b = Budget::new();
        let now = Instant::now();
        let times: Vec<Instant> = (0..120)
            .map(|_| b.reserve(&[("im", IM_SEND)], now))
            .collect();
        assert!(in_any_window(&times, Window::per_second(50)) <= 50);
        assert_eq!(times[49], now, "the first 50 go at once");
        let w = Window::per_second(50).per;
        assert_eq!(times[50], now + w);
        assert_eq!(times[119], now + w * 2);
    }

    #[test]
    fn the_minute_window_holds_after_the_second_windows_clear() {
        let b = Budget::new();
        let now = Instant::now();
        let times: Vec<Instant> = (0..1001)
            .map(|_| b.reserve(&[("im", IM_SEND)], now))
            .collect();
        assert!(in_any_window(&times, Window::per_minute(1000)) <= 1000);
        assert_eq!(times[1000], now + Window::per_minute(1000).per);
    }

    #[test]
    fn every_key_of_a_request_is_respected_and_keys_do_not_hold_each_other_up() {
        let b = Budget::new();
        let now = Instant::now();
        // Five to one chat take its whole second; a sixth waits although
        // the app budget has room.
        for _ in 0..5 {
            assert_eq!(b.reserve(&[("im", IM_SEND), ("chat:a", IM_CHAT)], now), now);
        }
        let second = Window::per_second(5).per;
        assert_eq!(
            b.reserve(&[("im", IM_SEND), ("chat:a", IM_CHAT)], now),
            now + second
        );
        // Another chat does not wait behind chat a's reservation.
        assert_eq!(b.reserve(&[("im", IM_SEND), ("chat:b", IM_CHAT)], now), now);
        // A creation held back by the minute window does not hold back the
        // per-second key it shares with every card update.
        let create = [("cardkit", CARDKIT_OPS), ("cardkit.create", CARDKIT_CREATE)];
        let mut last = now;
        for _ in 0..1001 {
            last = b.reserve(&create, now);
        }
        assert!(
            last >= now + Duration::from_secs(59),
            "the minute window held"
        );
        let update = b.reserve(&[("cardkit", CARDKIT_OPS)], now + Duration::from_secs(30));
        assert!(
            update < now + Duration::from_secs(31),
            "an update waited for a creation's minute slot"
        );
    }
}
