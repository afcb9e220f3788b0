//! The ids a channel accepted lately: the worker's journal is the durable
//! de-duplication, this only spares it the round trip.

use std::collections::{HashSet, VecDeque};

/// Message ids remembered in memory.
const RECENT_IDS: usize = 4096;

/// The last [`RECENT_IDS`] accepted ids: the set answers `seen` in O(1) on
/// every event (a scan of thousands of ids was a tenth of fcxd's CPU under
/// load), the queue says which id to forget first.
#[derive(Default)]
pub(crate) struct RecentIds {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl RecentIds {
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// False when `id` was already there.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= RECENT_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(id.to_string());
        self.set.insert(id.to_string());
        true
    }
}
