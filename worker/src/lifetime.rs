//! How long the worker process lives. It outlives fcxd on purpose (a gateway
//! crash or upgrade must not end the runs in flight: the next fcxd reattaches
//! by the socket), but a worker whose gateway is gone for good must not live
//! forever: after a long grace period with no gateway call and nothing to
//! do, it exits on its own.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::scheduler::Scheduler;

/// Default orphan grace: long enough for any restart or upgrade of fcxd.
const ORPHAN_GRACE: Duration = Duration::from_secs(15 * 60);
/// Overrides [`ORPHAN_GRACE`] (milliseconds); for tests and operators.
pub(crate) const ORPHAN_GRACE_ENV: &str = "FCX_WORKER_ORPHAN_GRACE_MS";

/// When a gateway last called; every RPC refreshes it (fcxd's supervisor
/// calls `Status` as a heartbeat). On the monotonic clock: a wall clock
/// stepped ahead must not read as an hour of silence and end the worker.
#[derive(Clone)]
pub(crate) struct Contact(Arc<AtomicI64>);

/// Milliseconds on the monotonic clock since the first use in this process.
fn mono_ms() -> i64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    i64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(i64::MAX)
}

impl Default for Contact {
    fn default() -> Self {
        Contact(Arc::new(AtomicI64::new(mono_ms())))
    }
}

impl Contact {
    pub(crate) fn touch(&self) {
        self.0.store(mono_ms(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let ms = mono_ms().saturating_sub(self.0.load(Ordering::Relaxed));
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

pub(crate) fn orphan_grace() -> Duration {
    std::env::var(ORPHAN_GRACE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(ORPHAN_GRACE)
}

/// Returns once no gateway has called for `grace` while no run was active or
/// queued (or when `stop` is cancelled).
pub(crate) async fn orphaned(
    contact: Contact,
    scheduler: Arc<Scheduler>,
    grace: Duration,
    stop: CancellationToken,
) {
    let tick = (grace / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.cancelled() => return,
        }
        let s = scheduler.snapshot();
        if !s.active.is_empty() || s.queued > 0 {
            // Work in hand keeps the worker; the grace starts after it.
            contact.touch();
            continue;
        }
        if contact.idle_for() >= grace {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "no gateway has called for the whole grace period and nothing is running; exiting"
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_resets_the_idle_time() {
        let c = Contact(Arc::new(AtomicI64::new(mono_ms() - 60_000)));
        assert!(c.idle_for() >= Duration::from_secs(59));
        c.touch();
        assert!(c.idle_for() < Duration::from_secs(5));
    }
}
