//! Idle app-server children, kept per scope between runs (issue 11 point 2:
//! one child per active scope, not one per profile, which cannot keep each
//! child's own environment, mount namespace and process group; figures in
//! `fcx-bench --only warm`).
//!
//! The pool owns every idle child: one watcher task each, on the pool's
//! tracker, under the pool's token. A watcher hands its child back to the
//! scope's next run ([`Pool::take`]) when that run's launch parameters and
//! thread are the same, and otherwise shuts it down (stdin EOF → SIGTERM →
//! SIGKILL, then the sweep): at its idle timeout, when it is evicted
//! (oldest first, beyond `max_idle`), when the scope starts a new session
//! ([`Pool::release`]), when the pool shuts down, or when the child dies
//! or closes its output (then it is only reaped). While idle it is listed
//! in the process registry as `idle:PID` (not a run: `fcxctl kill r:RUN`
//! names runs only).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fcx_config::Home;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::live::Live;
use super::rpc::Incoming;

/// Where idle children are listed for `fcxctl ps` / `kill`.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub(crate) home: Home,
    pub(crate) profile: String,
}

pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Parked>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    idle_for: Duration,
    max_idle: usize,
    listing: Option<Listing>,
    next_gen: std::sync::atomic::AtomicU64,
}

/// One idle child, as the pool's map sees it (its watcher has the child).
struct Parked {
    generation: u64,
    launch: u64,
    thread: Option<String>,
    since: Instant,
    take: oneshot::Sender<oneshot::Sender<Live>>,
    stop: CancellationToken,
}

impl Pool {
    /// `idle_for` zero or `max_idle` zero: nothing is kept.
    pub(crate) fn new(
        idle_for: Duration,
        max_idle: usize,
        listing: Option<Listing>,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            cancel,
            idle_for,
            max_idle,
            listing,
            next_gen: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Idle children now (for the tests, which are Linux-only).
    #[cfg(all(test, target_os = "linux"))]
    pub(crate) fn idle_count(&self) -> usize {
        self.lock().len()
    }

    /// The child `key`'s last run left, if it was started with `launch`
    /// and has `thread` loaded; a kept child that does not match is shut
    /// down (the run then starts its own).
    pub(crate) async fn take(&self, key: &str, launch: u64, thread: Option<&str>) -> Option<Live> {
        let parked = self.lock().remove(key)?;
        if parked.launch != launch || thread.is_none() || parked.thread.as_deref() != thread {
            tracing::info!(
                scope = key,
                launch_changed = parked.launch != launch,
                "the kept codex app-server does not fit this run; shutting it down"
            );
            parked.stop.cancel();
            return None;
        }
        let (tx, rx) = oneshot::channel();
        // A watcher that already decided to end (timeout, crash) has
        // dropped its receiver: the run starts a child of its own.
        parked.take.send(tx).ok()?;
        rx.await.ok()
    }

    /// Keeps `live` for `key`'s next run; gives it back when nothing may be
    /// kept (then the caller shuts it down).
    #[must_use]
    pub(crate) fn put(self: &Arc<Self>, key: &str, live: Live) -> Option<Live> {
        if self.idle_for.is_zero() || self.max_idle == 0 || self.cancel.is_cancelled() {
            return Some(live);
        }
        let generation = self
            .next_gen
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (take_tx, take_rx) = oneshot::channel();
        let stop = self.cancel.child_token();
        {
            let mut idle = self.lock();
            if let Some(old) = idle.remove(key) {
                old.stop.cancel();
            }
            while idle.len() >= self.max_idle {
                let Some(oldest) = idle
                    .iter()
                    .min_by_key(|(_, p)| p.since)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                if let Some(p) = idle.remove(&oldest) {
                    tracing::info!(scope = %oldest, "too many idle codex app-server children; shutting down the oldest");
                    p.stop.cancel();
                }
            }
            idle.insert(
                key.to_string(),
                Parked {
                    generation,
                    launch: live.launch,
                    thread: live.thread.clone(),
                    since: Instant::now(),
                    take: take_tx,
                    stop: stop.clone(),
                },
            );
        }
        // Listed before the run that parked it ends, not whenever the
        // watcher first runs.
        let listed = self.listing.as_ref().and_then(|l| list_idle(l, live.pid));
        let me = Arc::clone(self);
        let key = key.to_string();
        self.tracker.spawn(async move {
            me.watch(key, generation, live, listed, take_rx, stop).await;
        });
        None
    }

    /// `key` starts over (`/new`, `/cd`, a setting that changes the run):
    /// its kept child goes now rather than at the next run.
    pub(crate) fn release(&self, key: &str) {
        if let Some(p) = self.lock().remove(key) {
            tracing::info!(
                scope = key,
                "new session; shutting down the kept codex app-server"
            );
            p.stop.cancel();
        }
    }

    /// Shuts every idle child down and waits until they are gone.
    pub(crate) async fn shutdown(&self) {
        self.cancel.cancel();
        self.lock().clear();
        self.tracker.close();
        self.tracker.wait().await;
    }

    async fn watch(
        self: Arc<Self>,
        key: String,
        generation: u64,
        mut live: Live,
        mut listed: Option<fcx_config::registry::Registration>,
        mut take: oneshot::Receiver<oneshot::Sender<Live>>,
        stop: CancellationToken,
    ) {
        let pid = live.pid;
        let deadline = tokio::time::sleep(self.idle_for);
        tokio::pin!(deadline);
        let mut exit = None;
        let why = loop {
            tokio::select! {
                biased;
                asked = &mut take => match asked {
                    Ok(reply) => {
                        // Died since it was last looked at: not handed out
                        // (the run starts its own, as if nothing was kept).
                        match live.child.try_wait() {
                            Ok(None) => {}
                            Ok(Some(status)) => {
                                exit = Some(status);
                                break "it exited";
                            }
                            Err(_) => break "it cannot be waited for",
                        }
                        // The run lists it as `r:RUN` from here on.
                        listed = None;
                        match reply.send(live) {
                            Ok(()) => {
                                tracing::debug!(scope = %key, pid, "reusing the kept codex app-server");
                                return;
                            }
                            // The run that asked is gone: nobody wants it.
                            Err(back) => {
                                live = back;
                                break "its run went away";
                            }
                        }
                    }
                    Err(_) => break "released",
                },
                _ = stop.cancelled() => break "released",
                _ = &mut deadline => break "idle timeout",
                status = live.child.wait() => {
                    exit = status.ok();
                    break "it exited";
                }
                m = live.reader.next() => match m {
                    None => break "it closed its output",
                    // Nothing should come between turns; a request gets
                    // an error so the server never waits on us.
                    Some(Incoming::Request { id, method, .. }) => {
                        tracing::info!(scope = %key, pid, method, "codex app-server asked something while idle; refusing");
                        if live.writer.respond_error(id, -32601, "no turn is running").await.is_err() {
                            break "it stopped reading";
                        }
                    }
                    Some(_) => {}
                },
            }
        };
        {
            let mut idle = self.lock();
            if idle.get(&key).is_some_and(|p| p.generation == generation) {
                idle.remove(&key);
            }
        }
        tracing::info!(scope = %key, pid, why, "ending the kept codex app-server");
        live.shutdown(&mut exit, None, &key).await;
        drop(listed.take());
    }
}

fn list_idle(l: &Listing, pid: u32) -> Option<fcx_config::registry::Registration> {
    let entry = fcx_config::registry::Entry {
        id: format!("idle:{pid}"),
        kind: "codex".into(),
        pid,
        profile: l.profile.clone(),
        started_at_ms: crate::util::now_ms(),
        start_ticks: fcx_config::registry::start_ticks(pid),
    };
    fcx_config::registry::register(&l.home, &entry)
        .map_err(|e| tracing::warn!(pid, error = %e, "cannot list the idle codex child"))
        .ok()
}

#[cfg(test)]
#[cfg(target_os = "linux")]
#[path = "pool_tests.rs"]
mod tests;
