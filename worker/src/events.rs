//! The worker's event log: every event is committed with a sequence number
//! before it is broadcast, so `Events(from_seq)` can replay what a gateway
//! missed (a reconnect, a gateway restart) and then follow live events with no
//! gap and no duplicate.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use fcx_proto::v1::WorkerEvent;
use fcx_proto::v1::worker_event::Kind;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};
use crate::util::now_ms;

const BACKLOG_BATCH: usize = 512;

#[derive(Clone)]
pub(crate) struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    live: broadcast::Sender<WorkerEvent>,
    // Held across append + broadcast so live order equals seq order.
    order: Mutex<Unwritten>,
    shutdown: CancellationToken,
}

/// Events the log refused (a full disk, a state directory turned
/// read-only), oldest first. They wait here, in order, and every later
/// event queues behind them, until the log takes them again: a run's end
/// is then delivered late rather than never (its card left running).
#[derive(Default)]
struct Unwritten {
    events: VecDeque<WorkerEvent>,
    /// The task writing them again; owned here, it ends once they are
    /// written or the worker shuts down.
    retry: Option<tokio::task::JoinHandle<()>>,
}

/// Why an event is not out yet. Either way it is kept and goes out, in
/// order, once the log takes events again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EmitError {
    #[error("the event log refused it (kept, written when it can be): {0}")]
    Refused(StoreError),
    #[error("{0} events wait for the event log; this one is kept behind them")]
    Waiting(usize),
    #[error("the event order lock is poisoned")]
    Poisoned,
}

/// How often the refused events are tried again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl Inner {
    /// Writes and publishes the waiting events in order, up to the first
    /// the disk refuses. Returns the seq of the last one written. An event
    /// the log can never take (not a disk refusal) is dropped, said, so it
    /// cannot hold up every later one.
    fn flush(&self, u: &mut Unwritten) -> Result<u64, StoreError> {
        let mut last = 0;
        while let Some(ev) = u.events.front_mut() {
            match self.store.events().append_event(ev) {
                Ok(seq) => {
                    ev.seq = seq;
                    last = seq;
                    if let Some(ev) = u.events.pop_front() {
                        // No subscriber is fine: the event is in the log for later replay.
                        let _ = self.live.send(ev);
                    }
                }
                Err(e) if e.is_storage_unavailable() => return Err(e),
                Err(e) => {
                    tracing::error!(scope = %ev.scope, run_id = %ev.run_id, error = %e, "cannot record an event; dropped");
                    u.events.pop_front();
                }
            }
        }
        Ok(last)
    }
}

async fn retry(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETRY_EVERY) => {}
            _ = inner.shutdown.cancelled() => return,
        }
        let Ok(mut u) = inner.order.lock() else {
            return;
        };
        match inner.flush(&mut u) {
            Ok(_) => {
                tracing::info!("the event log takes events again; the waiting ones are written");
                u.retry = None;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, waiting = u.events.len(), "the event log still refuses events")
            }
        }
    }
}

impl EventBus {
    pub(crate) fn new(store: Arc<Store>, shutdown: CancellationToken) -> Self {
        let (live, _) = broadcast::channel(4096);
        EventBus {
            inner: Arc::new(Inner {
                store,
                live,
                order: Mutex::new(Unwritten::default()),
                shutdown,
            }),
        }
    }

    /// Commit and publish one event. Returns its seq. When the log refuses
    /// it, it is kept and written (then published) as soon as the log takes
    /// events again, in order with every event emitted meanwhile; the error
    /// says it is late.
    pub(crate) fn emit(
        &self,
        scope: &str,
        run_id: &str,
        reply_to: &str,
        kind: Kind,
    ) -> Result<u64, EmitError> {
        let ev = WorkerEvent {
            seq: 0,
            scope: scope.to_string(),
            run_id: run_id.to_string(),
            at_ms: now_ms(),
            reply_to: reply_to.to_string(),
            kind: Some(kind),
        };
        let mut u = self.inner.order.lock().map_err(|_| EmitError::Poisoned)?;
        u.events.push_back(ev);
        if u.retry.is_some() {
            // Behind the refused ones; the retry writes it in its turn.
            return Err(EmitError::Waiting(u.events.len()));
        }
        match self.inner.flush(&mut u) {
            Ok(seq) => Ok(seq),
            Err(e) => {
                // Inside the worker's runtime (every emitter is); without
                // one the events wait for the next emit.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    u.retry = Some(rt.spawn(retry(self.inner.clone())));
                }
                Err(EmitError::Refused(e))
            }
        }
    }

    /// Cancelled when the worker shuts down.
    pub(crate) fn stopping(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    pub(crate) fn last_seq(&self) -> Result<u64, StoreError> {
        self.inner.store.events().last_seq()
    }

    /// Every event with seq >= `from_seq`, then live ones. The feeding task is
    /// owned by the returned stream: it ends when the stream is dropped or the
    /// worker shuts down.
    pub(crate) fn subscribe_from(
        &self,
        from_seq: u64,
    ) -> ReceiverStream<Result<WorkerEvent, tonic::Status>> {
        let (tx, rx) = mpsc::channel(256);
        let inner = self.inner.clone();
        // Subscribe before reading the backlog so nothing falls in between.
        let live = inner.live.subscribe();
        // Owned by the stream: it ends when the receiver is dropped, or after
        // a final flush when the worker shuts down.
        tokio::spawn(feed(inner, live, from_seq.max(1), tx));
        ReceiverStream::new(rx)
    }
}

async fn feed(
    inner: Arc<Inner>,
    mut live: broadcast::Receiver<WorkerEvent>,
    mut next: u64,
    tx: mpsc::Sender<Result<WorkerEvent, tonic::Status>>,
) {
    // Replay from the log until caught up, then follow live events; fall back
    // to the log whenever the live channel lags or skips.
    loop {
        loop {
            let batch = match inner.store.events().events_from(next, BACKLOG_BATCH) {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx
                        .send(Err(tonic::Status::internal(format!(
                            "cannot read the event log: {e}"
                        ))))
                        .await;
                    return;
                }
            };
            if batch.is_empty() {
                break;
            }
            for ev in batch {
                next = ev.seq + 1;
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
        }
        loop {
            let got = tokio::select! {
                r = live.recv() => r,
                _ = inner.shutdown.cancelled() => {
                    // Shutting down: hand over what is in the log, then end
                    // the stream so the gateway sees a clean close.
                    while let Ok(batch) = inner.store.events().events_from(next, BACKLOG_BATCH) {
                        if batch.is_empty() {
                            return;
                        }
                        for ev in batch {
                            next = ev.seq + 1;
                            if tx.send(Ok(ev)).await.is_err() {
                                return;
                            }
                        }
                    }
                    return;
                }
            };
            match got {
                Ok(ev) if ev.seq < next => continue,
                Ok(ev) if ev.seq == next => {
                    next += 1;
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                // A gap (pruned between reads) or lag: go back to the log.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
