//! Where one profile's worker is in its life (starting, ready, backing off,
//! stopping, stopped), its client while it is ready, and the wake-up of
//! whoever waits for it. The supervision writes it; the handle's callers
//! and the event feeds read and wait on it.

use std::sync::Mutex;
use std::time::Duration;

use fcx_proto::v1::worker_client::WorkerClient;
use tokio::sync::Notify;
use tonic::transport::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Starting,
    Ready,
    Backoff,
    /// Shutting down: runs are ending and their final events still flow.
    Stopping,
    Stopped,
}

impl Phase {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Backoff => "backoff",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

/// The figures a view of the worker shows.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) phase: Phase,
    pub(crate) pid: Option<u32>,
    pub(crate) restarts: u32,
    pub(crate) last_error: String,
    pub(crate) started_at_ms: i64,
}

struct State {
    phase: Phase,
    pid: Option<u32>,
    restarts: u32,
    last_error: String,
    started_at_ms: i64,
    client: Option<WorkerClient<Channel>>,
    /// Bumped each time a worker becomes ready.
    incarnation: u64,
}

pub(crate) struct Liveness {
    state: Mutex<State>,
    /// Woken when a worker becomes ready and when it has stopped for good.
    ready: Notify,
}

impl Liveness {
    pub(crate) fn new() -> Self {
        Liveness {
            state: Mutex::new(State {
                phase: Phase::Starting,
                pid: None,
                restarts: 0,
                last_error: String::new(),
                started_at_ms: 0,
                client: None,
                incarnation: 0,
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        Snapshot {
            phase: s.phase,
            pid: s.pid,
            restarts: s.restarts,
            last_error: s.last_error.clone(),
            started_at_ms: s.started_at_ms,
        }
    }

    /// The client, while the worker is ready.
    pub(crate) fn client(&self) -> Option<WorkerClient<Channel>> {
        let s = self.lock();
        if s.phase == Phase::Ready {
            s.client.clone()
        } else {
            None
        }
    }

    /// Wait until the worker is ready (or `timeout` passes).
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.ready.notified();
            if self.client().is_some() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.client().is_some();
            }
        }
    }

    /// The client of a ready worker and its incarnation number, waiting
    /// while it starts or restarts; `None` once it has stopped for good.
    pub(crate) async fn wait_client(&self) -> Option<(WorkerClient<Channel>, u64)> {
        loop {
            let changed = self.ready.notified();
            {
                let s = self.lock();
                if s.phase == Phase::Ready
                    && let Some(c) = &s.client
                {
                    return Some((c.clone(), s.incarnation));
                }
                if s.phase == Phase::Stopped {
                    return None;
                }
            }
            changed.await;
        }
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        {
            let mut s = self.lock();
            s.phase = phase;
            if phase != Phase::Ready {
                s.client = None;
            }
        }
        if phase == Phase::Stopped {
            self.ready.notify_waiters();
        }
    }

    /// A new incarnation serves as `pid` through `client`. Waiters are woken
    /// by [`Self::announce_ready`], once the worker has been told what it
    /// needs before anyone uses it.
    pub(crate) fn ready(&self, pid: u32, started_at_ms: i64, client: WorkerClient<Channel>) {
        let mut s = self.lock();
        s.pid = Some(pid);
        s.started_at_ms = started_at_ms;
        s.client = Some(client);
        s.phase = Phase::Ready;
        s.incarnation += 1;
        s.last_error.clear();
    }

    pub(crate) fn announce_ready(&self) {
        self.ready.notify_waiters();
    }

    /// The worker failed or exited with `error`; it will be restarted.
    pub(crate) fn failed(&self, error: String) {
        self.lock().last_error = error;
    }

    pub(crate) fn count_restart(&self) {
        self.lock().restarts += 1;
    }

    /// Supervision is over: no worker, no client, and every waiter told.
    pub(crate) fn stopped(&self) {
        self.set_phase(Phase::Stopped);
        self.lock().pid = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> WorkerClient<Channel> {
        WorkerClient::new(Channel::from_static("http://127.0.0.1:9").connect_lazy())
    }

    #[tokio::test]
    async fn waiters_get_the_client_once_ready_and_nothing_once_stopped() {
        let l = std::sync::Arc::new(Liveness::new());
        assert!(l.client().is_none());
        assert!(!l.wait_ready(Duration::from_millis(1)).await);

        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.wait_client().await.map(|(_, n)| n) }
        });
        l.ready(42, 7, client());
        l.announce_ready();
        assert_eq!(waiter.await.expect("join"), Some(1));
        assert!(l.wait_ready(Duration::from_millis(1)).await);
        let s = l.snapshot();
        assert_eq!(
            (s.phase, s.pid, s.started_at_ms),
            (Phase::Ready, Some(42), 7)
        );

        // Leaving Ready drops the client; an error and a restart are kept.
        l.set_phase(Phase::Backoff);
        l.failed("exit status 1".into());
        l.count_restart();
        assert!(l.client().is_none());
        let s = l.snapshot();
        assert_eq!((s.restarts, s.last_error.as_str()), (1, "exit status 1"));

        // A new incarnation clears the error and counts on.
        l.ready(43, 8, client());
        assert_eq!(l.wait_client().await.map(|(_, n)| n), Some(2));
        assert!(l.snapshot().last_error.is_empty());

        l.set_phase(Phase::Starting);
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.wait_client().await.is_none() }
        });
        l.stopped();
        assert!(
            waiter.await.expect("join"),
            "a stopped worker ends the wait"
        );
        assert_eq!(l.snapshot().pid, None);
    }
}
