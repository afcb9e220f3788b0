//! A consumer's pull of one worker's events. The worker keeps every event in
//! its log; the consumer (the channel's outbound lanes, or the console)
//! reads from the resume cursor whenever it is ready to handle them, and
//! moves the cursor only once it has handled them ([`Commits`]). So nothing
//! is consumed before anyone listens, a slow consumer is never skipped
//! (it simply reads later), and after a crash the next fcxd resumes at the
//! first event not yet handled.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fcx_proto::v1::{EventsRequest, WorkerEvent};
use tonic::Streaming;

use super::supervisor::WorkerHandle;

/// Consecutive failures to read from one ready worker before it is
/// restarted (following again from the cursor).
const GIVE_UP_AFTER: u32 = 20;

/// The events of one worker, across its restarts, in seq order.
pub(crate) struct EventFeed {
    worker: Arc<WorkerHandle>,
    /// Next seq to ask for; taken from the cursor at the first connect.
    next: Option<u64>,
    /// The cursor generation `next` was taken from (a reset bumps it).
    generation: u64,
    stream: Option<Streaming<WorkerEvent>>,
    /// The worker incarnation `failures` counts for.
    incarnation: u64,
    failures: u32,
}

impl EventFeed {
    pub(crate) fn new(worker: Arc<WorkerHandle>) -> Self {
        EventFeed {
            worker,
            next: None,
            generation: 0,
            stream: None,
            incarnation: 0,
            failures: 0,
        }
    }

    /// The next event; `None` once the worker has stopped for good (fcxd is
    /// shutting down) and everything it said has been read. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Option<WorkerEvent> {
        loop {
            if let Some(stream) = self.stream.as_mut() {
                match stream.message().await {
                    Ok(Some(ev)) => {
                        self.failures = 0;
                        if ev.seq < self.next.unwrap_or(0) {
                            continue;
                        }
                        self.next = Some(ev.seq + 1);
                        return Some(ev);
                    }
                    // A clean end: the worker is stopping and has said all.
                    Ok(None) => self.stream = None,
                    Err(e) => {
                        tracing::debug!(profile = %self.worker.profile(), error = %e, "event stream broke");
                        self.stream = None;
                        self.failed().await;
                    }
                }
            }
            let (client, incarnation) = self.worker.liveness.wait_client().await?;
            if incarnation != self.incarnation {
                self.incarnation = incarnation;
                self.failures = 0;
            }
            let (cursor, generation) = self.worker.cursor().position();
            if self.next.is_none() || generation != self.generation {
                self.next = Some(cursor);
                self.generation = generation;
            }
            let from_seq = self.next.unwrap_or(cursor);
            let mut client = client;
            match client.events(EventsRequest { from_seq }).await {
                Ok(s) => self.stream = Some(s.into_inner()),
                Err(e) => {
                    tracing::debug!(profile = %self.worker.profile(), error = %e, "cannot open the event stream");
                    self.failed().await;
                }
            }
        }
    }

    /// One more failure with this worker: wait a little, and after too many
    /// restart it (its runs would go on with no answer reaching anyone).
    async fn failed(&mut self) {
        self.failures += 1;
        if self.failures > GIVE_UP_AFTER {
            tracing::error!(profile = %self.worker.profile(), "the worker's events cannot be followed; restarting it");
            self.failures = 0;
            self.worker.request_restart();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which events a consumer has handled: the cursor may pass an event only
/// once it and every earlier one are handled (lanes finish out of order).
#[derive(Clone, Default)]
pub(crate) struct Commits(Arc<Mutex<Pending>>);

#[derive(Default)]
struct Pending {
    in_flight: BTreeSet<u64>,
    /// One past the last event taken.
    after_last: Option<u64>,
}

impl Commits {
    /// `seq` was taken and is being handled.
    pub(crate) fn taken(&self, seq: u64) {
        if let Ok(mut p) = self.0.lock() {
            p.in_flight.insert(seq);
            p.after_last = Some(seq + 1);
        }
    }

    /// `seq` is handled (posted, or durably queued for a retry).
    pub(crate) fn handled(&self, seq: u64) {
        if let Ok(mut p) = self.0.lock() {
            p.in_flight.remove(&seq);
        }
    }

    /// The first seq not yet handled: where a restart resumes. `None` before
    /// anything was taken.
    pub(crate) fn resume_at(&self) -> Option<u64> {
        let p = self.0.lock().ok()?;
        p.in_flight.first().copied().or(p.after_last)
    }
}

// Its fake worker process is a Linux `sleep` child.
#[cfg(all(test, target_os = "linux"))]
#[path = "feed_tests.rs"]
mod feed_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_waits_for_the_oldest_unhandled_event() {
        let c = Commits::default();
        assert_eq!(c.resume_at(), None);
        c.taken(5);
        c.taken(6);
        c.taken(7);
        assert_eq!(c.resume_at(), Some(5));
        c.handled(6);
        c.handled(7);
        assert_eq!(c.resume_at(), Some(5), "6 and 7 are done, 5 is not");
        c.handled(5);
        assert_eq!(c.resume_at(), Some(8));
    }
}
