//! The scheduler's state, with no I/O and no clock of its own: per-scope
//! queues, which scope runs next, and the active run of each scope. Kept
//! pure so ordering, merging and fairness are tested directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::run::RunSlot;
use crate::store::QueuedMessage;

#[derive(Default)]
struct ScopeQueue {
    queued: Vec<QueuedMessage>,
    last_arrival: Option<Instant>,
    /// When the oldest waiting message arrived: a burst may hold it for at
    /// most a few debounce windows, so a chat that never pauses still runs.
    first_arrival: Option<Instant>,
    /// Global arrival order of the oldest waiting message, for fairness.
    order: u64,
    active: Option<Arc<RunSlot>>,
}

#[derive(Default)]
pub(crate) struct Queues {
    scopes: HashMap<String, ScopeQueue>,
    active: usize,
    queued: usize,
    next_order: u64,
    pub(crate) draining: bool,
}

impl Queues {
    /// Queue one message. `arrived` is `None` for a message that already
    /// waited once (re-queued after a restart): no second debounce.
    pub(crate) fn push(&mut self, m: QueuedMessage, arrived: Option<Instant>) {
        let order = self.next_order;
        self.next_order += 1;
        let sc = self.scopes.entry(m.scope.clone()).or_default();
        if sc.queued.is_empty() {
            sc.order = order;
        }
        sc.last_arrival = arrived;
        if let Some(at) = arrived {
            sc.first_arrival.get_or_insert(at);
        }
        // In journal order, not push order: a message whose steer was
        // refused (the turn had just ended) comes back after messages that
        // arrived meanwhile, and the next prompt must keep the chat's order.
        let at = sc.queued.partition_point(|q| q.inbox_id <= m.inbox_id);
        sc.queued.insert(at, m);
        self.queued += 1;
    }

    pub(crate) fn waiting_in(&self, scope: &str) -> usize {
        self.scopes.get(scope).map_or(0, |s| s.queued.len())
    }

    pub(crate) fn waiting(&self) -> usize {
        self.queued
    }

    /// The first message of `scope`'s waiting batch (it names the run the
    /// batch becomes) and how many messages the batch holds.
    pub(crate) fn batch(&self, scope: &str) -> Option<(&QueuedMessage, usize)> {
        let sc = self.scopes.get(scope)?;
        sc.queued.first().map(|m| (m, sc.queued.len()))
    }

    /// Runs active across all scopes.
    pub(crate) fn active_count(&self) -> usize {
        self.active
    }

    /// The scopes that may start a run now, oldest waiting message first and
    /// at most as many as free slots of `max`, and when to look again for
    /// the ones still in their quiet window (`None`: only a wake helps).
    #[cfg(test)]
    pub(crate) fn ready(
        &self,
        now: Instant,
        debounce: Duration,
        max: usize,
    ) -> (Vec<String>, Option<Instant>) {
        self.ready_holding(now, debounce, Duration::ZERO, max)
    }

    /// [`Queues::ready`], where a batch whose last message is attachments
    /// only is held until `attachment_wait` after it arrived (the text that
    /// follows a screenshot joins it; a restart's re-queued batch is never
    /// held).
    pub(crate) fn ready_holding(
        &self,
        now: Instant,
        debounce: Duration,
        attachment_wait: Duration,
        max: usize,
    ) -> (Vec<String>, Option<Instant>) {
        // Every slot busy: nothing can start and no timer is useful (a
        // finishing run wakes us). During a burst this is the common case,
        // and it must not cost a scan of every waiting scope.
        if self.draining || self.active >= max {
            return (Vec::new(), None);
        }
        // This runs on every accepted message, under the lock Deliver needs:
        // only scopes that may start now are copied and sorted; the ones
        // still in their debounce just contribute their time (cloning and
        // sorting every waiting scope was a quarter of the worker's CPU
        // with a thousand chats waiting).
        let free = max - self.active;
        let mut ready: Vec<(u64, &String)> = Vec::new();
        let mut waiting: Vec<(u64, Instant)> = Vec::new();
        for (k, sc) in &self.scopes {
            if sc.active.is_some() || sc.queued.is_empty() {
                continue;
            }
            let quiet = sc.last_arrival.map(|t| t + debounce);
            let held = sc.first_arrival.map(|t| t + max_hold(debounce));
            let mut at = quiet.zip(held).map(|(q, h)| q.min(h)).or(quiet);
            if sc
                .queued
                .last()
                .is_some_and(|m| crate::media::attachments_only(&m.inbound))
                && let Some(t) = sc.last_arrival
            {
                at = Some(at.map_or(t + attachment_wait, |a| a.max(t + attachment_wait)));
            }
            match at {
                Some(at) if at > now => waiting.push((sc.order, at)),
                _ => ready.push((sc.order, k)),
            }
        }
        // Only the `free` oldest ready scopes start: select them instead of
        // sorting every ready scope. The first one left behind marks where
        // waiting scopes stop mattering for the timer.
        let mut blocked_at = u64::MAX;
        if ready.len() > free {
            ready.select_nth_unstable(free);
            blocked_at = ready[free].0;
            ready.truncate(free);
        }
        ready.sort_unstable();
        let next = waiting
            .into_iter()
            .filter(|(order, _)| *order < blocked_at)
            .map(|(_, at)| at)
            .min();
        (ready.into_iter().map(|(_, s)| s.clone()).collect(), next)
    }

    /// Take every waiting message of `scope`: they become one run.
    pub(crate) fn take(&mut self, scope: &str) -> Vec<QueuedMessage> {
        let Some(sc) = self.scopes.get_mut(scope) else {
            return Vec::new();
        };
        sc.last_arrival = None;
        sc.first_arrival = None;
        std::mem::take(&mut sc.queued)
    }

    /// Give back messages a run could not be recorded for; they are retried
    /// on the next pass.
    pub(crate) fn put_back(&mut self, scope: &str, messages: Vec<QueuedMessage>) {
        if let Some(sc) = self.scopes.get_mut(scope) {
            sc.queued = messages;
        }
    }

    /// `slot` now runs the `n` messages taken from `scope`.
    pub(crate) fn started(&mut self, scope: &str, slot: Arc<RunSlot>, n: usize) {
        if let Some(sc) = self.scopes.get_mut(scope) {
            sc.active = Some(slot);
        }
        self.active += 1;
        self.queued = self.queued.saturating_sub(n);
    }

    /// The run of `scope` ended.
    pub(crate) fn finished(&mut self, scope: &str) {
        if let Some(sc) = self.scopes.get_mut(scope) {
            sc.active = None;
            if sc.queued.is_empty() {
                self.scopes.remove(scope);
            }
        }
        self.active = self.active.saturating_sub(1);
    }

    pub(crate) fn active(&self, scope: &str) -> Option<&Arc<RunSlot>> {
        self.scopes.get(scope).and_then(|s| s.active.as_ref())
    }

    /// Every active run with its scope.
    pub(crate) fn actives(&self) -> impl Iterator<Item = (&String, &Arc<RunSlot>)> {
        self.scopes
            .iter()
            .filter_map(|(k, s)| s.active.as_ref().map(|a| (k, a)))
    }
}

/// The longest a burst may keep its first message waiting for a quiet
/// window: five windows, at least two seconds.
pub(crate) fn max_hold(debounce: Duration) -> Duration {
    (debounce * 5).max(Duration::from_secs(2))
}
