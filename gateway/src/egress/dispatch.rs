//! The worker-event loop of one channel: it pulls the worker's events from
//! the resume cursor, hands each event to its scope's lane, and moves the
//! cursor past what the lanes have handled. Nothing else runs in it (work
//! for the ingress handler is in [`super::deferred`]), so it never waits on
//! the platform or the worker.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::link::supervisor::WorkerHandle;

/// How often the cursor follows what the lanes have handled.
const COMMIT_EVERY: Duration = Duration::from_millis(50);

/// What the outbound task owns.
pub(crate) struct Out {
    pub profile: String,
    pub worker: Arc<WorkerHandle>,
    pub lanes: crate::egress::lanes::Lanes,
}

pub(crate) async fn outbound(out: Out, stop: CancellationToken) {
    let Out {
        profile,
        worker,
        mut lanes,
    } = out;
    // Pulled from the cursor only now that the lanes can take them: events
    // the worker said earlier waited in its log.
    let mut feed = worker.feed();
    let mut commit = tokio::time::interval(COMMIT_EVERY);
    commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // On stop, keep going until the worker is down: the runs it interrupts
    // while stopping must still reach their cards and chats.
    let mut stopping: Option<std::time::Instant> = None;
    loop {
        if let Some(since) = stopping
            && since.elapsed() > Duration::from_secs(40)
        {
            tracing::warn!(%profile, "the worker did not stop in time; closing the lanes");
            break;
        }
        tokio::select! {
            ev = feed.next() => match ev {
                Some(ev) => {
                    crate::metrics::RUNS.observe(&profile, &ev);
                    lanes.dispatch(ev).await
                }
                None => {
                    tracing::debug!(%profile, "worker stopped; sending what it said last");
                    break;
                }
            },
            _ = commit.tick() => {
                if let Some(at) = lanes.resume_at() {
                    worker.cursor().commit(at);
                }
            }
            _ = stop.cancelled(), if stopping.is_none() => {
                stopping = Some(std::time::Instant::now());
            }
            _ = tokio::time::sleep(Duration::from_millis(50)), if stopping.is_some() => {}
        }
    }
    let commits = lanes.commits();
    lanes.close().await;
    if let Some(at) = commits.resume_at() {
        worker.cursor().commit(at);
    }
    worker.cursor().flush();
}
