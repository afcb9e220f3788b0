//! The worker-event loop of one channel: it follows the worker's event
//! broadcast and hands each event to its scope's lane. Nothing else runs
//! in it (work for the ingress handler is in [`super::deferred`]), so it
//! never waits on the platform or the worker.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::link::supervisor::WorkerHandle;

/// What the outbound task owns.
pub struct Out {
    pub profile: String,
    pub worker: Arc<WorkerHandle>,
    pub lanes: crate::egress::lanes::Lanes,
}

pub async fn outbound(out: Out, stop: CancellationToken) {
    let Out {
        profile,
        worker,
        mut lanes,
    } = out;
    let mut events = worker.subscribe();
    // On stop, keep going until the worker is down: the runs it interrupts
    // while stopping must still reach their cards and chats.
    let mut stopping: Option<std::time::Instant> = None;
    loop {
        if let Some(since) = stopping
            && (worker.view().phase == crate::link::supervisor::Phase::Stopped
                || since.elapsed() > Duration::from_secs(40))
        {
            tracing::debug!(%profile, "worker stopped; sending what it said last");
            while let Ok(ev) = events.try_recv() {
                lanes.dispatch(ev);
            }
            lanes.close().await;
            return;
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => lanes.dispatch(ev),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(%profile, skipped = n, "outbound fell behind; events skipped");
                }
                Err(_) => {
                    lanes.close().await;
                    return;
                }
            },
            _ = stop.cancelled(), if stopping.is_none() => {
                stopping = Some(std::time::Instant::now());
            }
            _ = tokio::time::sleep(Duration::from_millis(50)), if stopping.is_some() => {}
        }
    }
}
