//! Event ids a channel has accepted, remembered for a while so a
//! redelivery is answered without asking the worker.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// Accepted event ids remembered in memory at most (a safety bound; the
/// age below is what empties the table under steady traffic).
pub(crate) const RECENT_IDS: usize = 4096;
/// How long an accepted event id is remembered: past the platform's first
/// two redeliveries of an event whose ACK it did not get (15 s and 5 min
/// after the push, feishu.md §2). A later one (1 h, 6 h) reaches the
/// worker, whose journal is the durable de-duplication of messages; this
/// only spares it the round trip.
pub(crate) const RECENT_FOR: Duration = Duration::from_secs(6 * 60);
/// How long a message whose sender was told fcx cannot store it is
/// remembered: the platform's whole redelivery window (15 s, 5 min, 1 h,
/// 6 h: about 7.1 h), so each message is told once.
pub(crate) const TOLD_FOR: Duration = Duration::from_secs(8 * 3600);

/// Ids accepted within the last `keep_for`, at most [`RECENT_IDS`]: the
/// set answers `seen` in O(1) on every event (a scan of thousands of ids
/// was a tenth of fcxd's CPU under load), the queue says which id to forget
/// first. Under steady traffic it holds `keep_for` of it, then stays flat.
pub(crate) struct RecentIds {
    keep_for: Duration,
    order: VecDeque<(Instant, String)>,
    set: HashSet<String>,
}

impl RecentIds {
    pub(crate) fn new(keep_for: Duration) -> Self {
        RecentIds {
            keep_for,
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// False when `id` was already there.
    pub(crate) fn insert(&mut self, id: &str, now: Instant) -> bool {
        while let Some((at, old)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.keep_for && self.order.len() < RECENT_IDS {
                break;
            }
            self.set.remove(old);
            self.order.pop_front();
        }
        if self.set.contains(id) {
            return false;
        }
        self.order.push_back((now, id.to_string()));
        self.set.insert(id.to_string());
        true
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
#[path = "recent_tests.rs"]
mod tests;
