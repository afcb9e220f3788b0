//! One scope's events reach the worker in the order they arrived.
//!
//! The channel handles events concurrently (a quoted parent or a forward's
//! children are fetched inside the ACK window, and one chat's slow worker
//! call must not hold up another chat), so two messages a user sends back to
//! back could be committed in either order, and the worker runs a merged
//! burst in journal order. A [`Ticket`] is taken when the event arrives
//! (before any fetch) and is waited on just before the worker is called:
//! one scope's calls go one after another, in arrival order, while fetches
//! and other scopes stay concurrent.
//!
//! An event that is not committed (no ACK: the platform pushes it again)
//! takes the events queued behind it in its scope down with it: they are not
//! acknowledged either, so the redeliveries come back in their first order
//! instead of the later ones being committed ahead of the earlier one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Events one scope may have waiting or in flight; past it an event is not
/// acknowledged (the platform redelivers it). Each waits at most the ACK
/// window and a commit takes milliseconds, so no person's chat reaches it.
pub(crate) const SCOPE_WAITING: usize = 64;

/// Why an event may not go to the worker now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its scope has [`SCOPE_WAITING`] events already.
    Full,
    /// An earlier event of its scope was not committed and comes back.
    Behind,
}

struct Entry {
    n: u64,
    wake: Arc<Notify>,
    behind: bool,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    scopes: HashMap<String, Queue>,
}

/// The per-scope queues of one channel. Scopes with nothing waiting take no
/// memory.
#[derive(Clone)]
pub(crate) struct ScopeOrder {
    inner: Arc<Mutex<Inner>>,
    limit: usize,
}

impl Default for ScopeOrder {
    fn default() -> Self {
        Self::with_limit(SCOPE_WAITING)
    }
}

impl ScopeOrder {
    /// Queues of at most `limit` events per scope.
    pub(crate) fn with_limit(limit: usize) -> Self {
        Self {
            inner: Arc::default(),
            limit,
        }
    }

    /// Takes `scope`'s next place. Synchronous on purpose: called as the
    /// event arrives, the place is the arrival order.
    pub(crate) fn ticket(&self, scope: &str) -> Result<Ticket, Refused> {
        let mut inner = self.inner.lock().map_err(|_| Refused::Full)?;
        if inner.scopes.get(scope).map_or(0, |q| q.entries.len()) >= self.limit.max(1) {
            return Err(Refused::Full);
        }
        inner.next += 1;
        let n = inner.next;
        let q = inner.scopes.entry(scope.to_string()).or_default();
        let wake = Arc::new(Notify::new());
        q.entries.push_back(Entry {
            n,
            wake: wake.clone(),
            behind: false,
        });
        Ok(Ticket {
            order: self.inner.clone(),
            scope: scope.to_string(),
            n,
            wake,
            committed: false,
        })
    }

    /// Scopes with an event waiting or in flight.
    #[cfg(test)]
    pub(crate) fn busy_scopes(&self) -> usize {
        self.inner.lock().map(|i| i.scopes.len()).unwrap_or(0)
    }
}

/// One event's place in its scope. Dropped without [`Ticket::committed`]
/// (not acknowledged, timed out, its connection gone), it refuses the
/// events queued behind it.
pub(crate) struct Ticket {
    order: Arc<Mutex<Inner>>,
    scope: String,
    n: u64,
    wake: Arc<Notify>,
    committed: bool,
}

impl Ticket {
    /// Waits until every earlier event of the scope is done. Cancel-safe:
    /// dropping the future keeps the place (dropping the ticket gives it up).
    pub(crate) async fn turn(&self) -> Result<(), Refused> {
        loop {
            {
                let inner = self.order.lock().map_err(|_| Refused::Behind)?;
                let q = inner.scopes.get(&self.scope).ok_or(Refused::Behind)?;
                let front = q.entries.front().map(|e| e.n);
                let me = q.entries.iter().find(|e| e.n == self.n);
                match me {
                    None => return Err(Refused::Behind),
                    Some(e) if e.behind => return Err(Refused::Behind),
                    Some(_) if front == Some(self.n) => return Ok(()),
                    Some(_) => {}
                }
            }
            // A wake-up sent between the check and here is kept as a permit.
            self.wake.notified().await;
        }
    }

    /// The worker committed the event, or it was answered for good (the
    /// sender was told why not): the next one may go.
    pub(crate) fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Ok(mut inner) = self.order.lock() else {
            return;
        };
        let Some(q) = inner.scopes.get_mut(&self.scope) else {
            return;
        };
        let Some(pos) = q.entries.iter().position(|e| e.n == self.n) else {
            return;
        };
        // One refused because of an earlier event is no new gap: those
        // behind it were refused with it, later arrivals are not.
        let gap = !self.committed && !q.entries[pos].behind;
        let _ = q.entries.remove(pos);
        if gap {
            for e in q.entries.iter_mut().skip(pos) {
                e.behind = true;
                e.wake.notify_one();
            }
        }
        match q.entries.front() {
            Some(next) if pos == 0 => next.wake.notify_one(),
            Some(_) => {}
            None => {
                inner.scopes.remove(&self.scope);
            }
        }
    }
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
