//! The worker's event log: every event is committed with a sequence number
//! before it is broadcast, so `Events(from_seq)` can replay what a gateway
//! missed (a reconnect, a gateway restart) and then follow live events with no
//! gap and no duplicate.

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
    order: Mutex<()>,
    shutdown: CancellationToken,
}

impl EventBus {
    pub(crate) fn new(store: Arc<Store>, shutdown: CancellationToken) -> Self {
        let (live, _) = broadcast::channel(4096);
        EventBus {
            inner: Arc::new(Inner {
                store,
                live,
                order: Mutex::new(()),
                shutdown,
            }),
        }
    }

    /// Commit and publish one event. Returns its seq.
    pub(crate) fn emit(
        &self,
        scope: &str,
        run_id: &str,
        reply_to: &str,
        kind: Kind,
    ) -> Result<u64, StoreError> {
        let mut ev = WorkerEvent {
            seq: 0,
            scope: scope.to_string(),
            run_id: run_id.to_string(),
            at_ms: now_ms(),
            reply_to: reply_to.to_string(),
            kind: Some(kind),
        };
        let _g = self.inner.order.lock().map_err(|_| StoreError::Poisoned)?;
        ev.seq = self.inner.store.events().append_event(&ev)?;
        // No subscriber is fine: the event is in the log for later replay.
        let _ = self.inner.live.send(ev.clone());
        Ok(ev.seq)
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
