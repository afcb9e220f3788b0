//! One `fcx-worker` per profile: reattach to the one already serving (a
//! previous fcxd crashed or was upgraded; workers outlive fcxd) or spawn one,
//! `Hello`, and restart it when it exits or is killed (at once when killed
//! from outside, else with exponential backoff, reset after a healthy
//! period).
//!
//! The resume cursor (`cursor`) lives with the handle, outside the worker,
//! and is persisted, but only the consumer moves it, once it has handled
//! the events: a crash of fcxd at any moment resumes at the first event not
//! yet handled.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fcx_config::Home;
use fcx_ipc::SocketAddr;
use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::v1::{
    Ack, ActResult, Action, Inbound, PlatformInfo, ShutdownRequest, StatusRequest, WorkerStatus,
};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::caps::WorkerCaps;
use super::cursor::ResumeCursor;
use super::feed::EventFeed;
use super::liveness::Liveness;
pub(crate) use super::liveness::Phase;
use super::process::{ConnectError, Hello, WorkerProcess, connect, connect_and_hello};

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A worker killed from outside while serving is restarted after this.
const RESTART_KILLED: Duration = Duration::from_millis(10);
/// A worker that ran this long was healthy: its next crash starts the
/// backoff from the beginning again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a ready worker is called, so it knows its gateway lives, and
/// how long each call may take.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Overrides [`HEARTBEAT`] (milliseconds); for tests and operators.
pub(crate) const HEARTBEAT_ENV: &str = "FCX_WORKER_HEARTBEAT_MS";
/// Heartbeats in a row a worker leaves unanswered before it is taken for
/// frozen (stopped, deadlocked, swapped out for good) and replaced: with
/// the defaults about 30 s, well past any pause of a busy worker.
const HEARTBEAT_MISSES: u32 = 3;

/// What the supervisor tells surfaces about the worker itself.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    Ready,
    Exited { what: String, retry_in: Duration },
    StartFailed { error: String, retry_in: Duration },
}

#[derive(Debug, Clone)]
pub(crate) struct WorkerView {
    pub(crate) profile: String,
    pub(crate) phase: Phase,
    pub(crate) pid: Option<u32>,
    pub(crate) restarts: u32,
    pub(crate) last_error: String,
    pub(crate) started_at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliverError {
    #[error("the worker for profile {0} is not running right now")]
    Unavailable(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Busy(String),
    /// The worker could not store it (disk full, state directory not
    /// writable): not taken, to be delivered again.
    #[error("{0}")]
    Storage(String),
}

pub(crate) struct WorkerHandle {
    profile: String,
    home: Home,
    worker_bin: PathBuf,
    /// Phase, client and wake-ups; the supervision writes it.
    pub(super) liveness: Liveness,
    notices: broadcast::Sender<Notice>,
    cursor: ResumeCursor,
    /// What the channel learned about the platform; sent to every worker
    /// incarnation right after Hello.
    platform: Mutex<Option<PlatformInfo>>,
    /// What the worker announced at its last Hello.
    caps: WorkerCaps,
    restart: Notify,
    stop: CancellationToken,
}

impl WorkerHandle {
    pub(crate) fn new(
        profile: &str,
        home: &Home,
        worker_bin: PathBuf,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let (notices, _) = broadcast::channel(64);
        Arc::new(WorkerHandle {
            profile: profile.to_string(),
            home: home.clone(),
            worker_bin,
            liveness: Liveness::new(),
            notices,
            cursor: ResumeCursor::load(home.profile(profile).dir(), profile),
            platform: Mutex::new(None),
            caps: WorkerCaps::default(),
            restart: Notify::new(),
            stop,
        })
    }

    pub(crate) fn profile(&self) -> &str {
        &self.profile
    }

    /// What the worker can do, as its last Hello said (kept current).
    pub(crate) fn caps(&self) -> WorkerCaps {
        self.caps.clone()
    }

    pub(crate) fn view(&self) -> WorkerView {
        let s = self.liveness.snapshot();
        WorkerView {
            profile: self.profile.clone(),
            phase: s.phase,
            pid: s.pid,
            restarts: s.restarts,
            last_error: s.last_error,
            started_at_ms: s.started_at_ms,
        }
    }

    pub(crate) fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Wait until the worker is ready (or `timeout` passes).
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> bool {
        self.liveness.wait_ready(timeout).await
    }

    /// Hand a message to the worker. `Ok` means it is durably accepted.
    pub(crate) async fn deliver(&self, inbound: Inbound) -> Result<Ack, DeliverError> {
        let Some(mut c) = self.liveness.client() else {
            return Err(DeliverError::Unavailable(self.profile.clone()));
        };
        match c.deliver(inbound).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => match s.code() {
                tonic::Code::InvalidArgument => Err(DeliverError::Refused(s.message().to_string())),
                tonic::Code::ResourceExhausted => Err(DeliverError::Busy(s.message().to_string())),
                tonic::Code::FailedPrecondition => {
                    Err(DeliverError::Storage(s.message().to_string()))
                }
                _ => Err(DeliverError::Unavailable(self.profile.clone())),
            },
        }
    }

    /// A verified action (card button, a group the gateway created).
    pub(crate) async fn act(&self, action: Action) -> Result<ActResult, DeliverError> {
        let Some(mut c) = self.liveness.client() else {
            return Err(DeliverError::Unavailable(self.profile.clone()));
        };
        c.act(action)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| DeliverError::Refused(s.message().to_string()))
    }

    /// Remember the platform identity and tell the worker (now, if it is
    /// up, and after every restart).
    pub(crate) async fn set_platform(&self, info: PlatformInfo) {
        if let Ok(mut p) = self.platform.lock() {
            *p = Some(info.clone());
        }
        if let Some(c) = self.liveness.client() {
            send_platform(c, &self.profile, info).await;
        }
    }

    pub(crate) async fn status(&self) -> Option<WorkerStatus> {
        let mut c = self.liveness.client()?;
        tokio::time::timeout(Duration::from_secs(2), c.status(StatusRequest {}))
            .await
            .ok()?
            .ok()
            .map(|r| r.into_inner())
    }

    pub(crate) fn request_restart(&self) {
        self.restart.notify_one();
    }

    /// The resume cursor: where the consumer resumes, moved only by it.
    pub(crate) fn cursor(&self) -> &ResumeCursor {
        &self.cursor
    }

    /// A pull of this worker's events from the cursor (see [`EventFeed`]).
    pub(crate) fn feed(self: &Arc<Self>) -> EventFeed {
        EventFeed::new(self.clone())
    }

    /// The supervision loop; returns when `stop` is cancelled and the worker
    /// has been shut down.
    pub(crate) async fn supervise(self: Arc<Self>) {
        Supervision { h: self }.run().await
    }
}

/// The supervision of one worker: the process side of [`WorkerHandle`]
/// (reattach or spawn, Hello, watch, restart or stop), apart from the
/// handle the surfaces call.
struct Supervision {
    h: Arc<WorkerHandle>,
}

impl Supervision {
    fn stderr_path(&self) -> PathBuf {
        self.h
            .home
            .run_dir()
            .join(format!("worker-{}.stderr", self.h.profile))
    }

    /// The loop; returns when `stop` is cancelled and the worker has been
    /// shut down.
    async fn run(self) {
        let mut backoff = BACKOFF_START;
        let sock = SocketAddr::new(self.h.home.worker_socket(&self.h.profile));
        loop {
            if self.h.stop.is_cancelled() {
                break;
            }
            self.h.liveness.set_phase(Phase::Starting);
            let started = Instant::now();
            let end = match self.attach_or_spawn(&sock).await {
                Ok((process, hello)) => self.run_one(process, hello).await,
                Err(e) => End::StartFailed(e),
            };
            if started.elapsed() >= HEALTHY_AFTER {
                backoff = BACKOFF_START;
            }
            let retry_in = match end {
                End::Stopped => break,
                End::Restart => {
                    backoff = BACKOFF_START;
                    continue;
                }
                // Killed from outside while serving: back at once (its runs
                // are re-queued by the next one, and a user is waiting).
                End::Exited { what, killed: true } => {
                    backoff = BACKOFF_START;
                    self.exited(what, RESTART_KILLED)
                }
                End::Exited {
                    what,
                    killed: false,
                } => self.exited(what, backoff),
                End::StartFailed(error) => {
                    tracing::error!(profile = %self.h.profile, %error, retry_in_ms = backoff.as_millis() as u64, "worker failed to start");
                    self.h.liveness.failed(error.clone());
                    let _ = self.h.notices.send(Notice::StartFailed {
                        error,
                        retry_in: backoff,
                    });
                    backoff
                }
            };
            self.h.liveness.count_restart();
            self.h.liveness.set_phase(Phase::Backoff);
            tokio::select! {
                _ = tokio::time::sleep(retry_in) => {}
                _ = self.h.stop.cancelled() => break,
                _ = self.h.restart.notified() => {}
            }
            if retry_in == backoff {
                backoff = (backoff * 2).min(BACKOFF_CAP);
            }
        }
        self.h.cursor.flush();
        self.h.liveness.stopped();
    }

    fn exited(&self, what: String, retry_in: Duration) -> Duration {
        tracing::warn!(profile = %self.h.profile, %what, retry_in_ms = retry_in.as_millis() as u64, "worker exited; restarting");
        self.h.liveness.failed(what.clone());
        let _ = self.h.notices.send(Notice::Exited { what, retry_in });
        retry_in
    }

    /// Reattaches to a worker that is already serving (a previous fcxd left
    /// it running: its runs go on), else spawns one.
    async fn attach_or_spawn(&self, sock: &SocketAddr) -> Result<(WorkerProcess, Hello), String> {
        if fcx_ipc::is_live(sock).await {
            match connect_and_hello(sock, &self.h.profile, Instant::now()).await {
                Ok(hello) => {
                    tracing::info!(profile = %self.h.profile, pid = hello.pid, "reattached to a running worker");
                    let p = WorkerProcess::adopted(hello.pid, self.stderr_path());
                    return Ok((p, hello));
                }
                Err(ConnectError::Mismatch(why)) => {
                    // An upgrade changed the protocol: that worker cannot be
                    // used; ask it to stop (its runs end as interrupted and
                    // are re-queued) and start ours.
                    tracing::warn!(profile = %self.h.profile, %why, "a running worker speaks another protocol; stopping it");
                    self.stop_foreign(sock).await?;
                }
                Err(e) => return Err(e.into_message()),
            }
        }
        let mut process = WorkerProcess::spawn(
            &self.h.worker_bin,
            &self.h.profile,
            &self.h.home,
            self.stderr_path(),
        )?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        tokio::select! {
            r = connect_and_hello(sock, &self.h.profile, deadline) => match r {
                Ok(hello) => Ok((process, hello)),
                Err(e) => {
                    process.kill();
                    let _ = process.exited().await;
                    Err(e.into_message())
                }
            },
            exit = process.exited() => Err(exit.what),
            _ = self.h.stop.cancelled() => {
                process.kill();
                let _ = process.exited().await;
                Err("fcxd is stopping".to_string())
            }
        }
    }

    /// Asks whatever serves on the socket to shut down, and waits until
    /// the socket is free.
    async fn stop_foreign(&self, sock: &SocketAddr) -> Result<(), String> {
        if let Ok(ch) = connect(sock).await {
            let mut c = WorkerClient::new(ch);
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                c.shutdown(ShutdownRequest {
                    reason: "fcxd was upgraded".into(),
                }),
            )
            .await;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while fcx_ipc::is_live(sock).await {
            if Instant::now() >= deadline {
                return Err(format!(
                    "a worker of another version still serves {sock}; stop it and try again"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn run_one(&self, mut process: WorkerProcess, hello: Hello) -> End {
        let pid = process.pid();
        let client = hello.client;
        self.h.cursor.reconcile(hello.last_seq);
        self.h.caps.set(hello.caps);
        self.h.caps.set_media(hello.media);
        self.h.liveness.ready(pid, now_ms(), client.clone());
        let platform = self.h.platform.lock().ok().and_then(|p| p.clone());
        if let Some(info) = platform {
            send_platform(client.clone(), &self.h.profile, info).await;
        }
        self.h.liveness.announce_ready();
        let _ = self.h.notices.send(Notice::Ready);
        tracing::info!(profile = %self.h.profile, pid, spawned = process.spawned(), "worker ready");

        let heartbeat = heartbeat(client.clone(), heartbeat_every());
        tokio::pin!(heartbeat);
        let end = tokio::select! {
            // The consumers resume from their cursor with the next
            // incarnation: nothing to drain here.
            exit = process.exited() => End::Exited { what: exit.what, killed: exit.killed },
            silent = &mut heartbeat => {
                // Alive but not answering: its queue and its runs are stuck
                // with it, and the messages sent to it are not acknowledged
                // (the platform keeps them). Killed, it is replaced, and its
                // successor resumes every run and message from the state.
                tracing::warn!(profile = %self.h.profile, pid, silent_ms = silent.as_millis() as u64, "worker stopped answering; killing it");
                process.kill();
                let _ = process.exited().await;
                // Restarted at once, as a worker killed from outside is:
                // it had been serving, and a worker that freezes again
                // takes three heartbeats to be found, so this cannot
                // become a tight loop; a backoff would only keep the
                // messages waiting (the platform gives up redelivering).
                End::Exited {
                    what: format!("stopped answering for {} s; killed", silent.as_secs()),
                    killed: true,
                }
            }
            _ = self.h.restart.notified() => {
                self.h.liveness.set_phase(Phase::Starting);
                self.shutdown_worker(&mut process, client, "restart requested").await;
                End::Restart
            }
            _ = self.h.stop.cancelled() => {
                self.h.liveness.set_phase(Phase::Stopping);
                self.shutdown_worker(&mut process, client, "fcxd is stopping").await;
                End::Stopped
            }
        };
        self.h.liveness.set_phase(Phase::Backoff);
        self.h.cursor.flush();
        end
    }

    /// Asks the worker to stop (runs end as interrupted; the consumers keep
    /// reading their final events until its streams close) and waits for
    /// it to exit, killing it if it does not in time.
    async fn shutdown_worker(
        &self,
        process: &mut WorkerProcess,
        mut client: WorkerClient<Channel>,
        reason: &str,
    ) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            client.shutdown(ShutdownRequest {
                reason: reason.into(),
            }),
        )
        .await;
        if tokio::time::timeout(STOP_TIMEOUT, process.exited())
            .await
            .is_err()
        {
            tracing::warn!(profile = %self.h.profile, "worker did not stop in time; killing it");
            process.kill();
            let _ = process.exited().await;
        }
    }
}

/// The heartbeat period ([`HEARTBEAT_ENV`] or [`HEARTBEAT`]).
fn heartbeat_every() -> Duration {
    std::env::var(HEARTBEAT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(HEARTBEAT, Duration::from_millis)
}

/// Keeps the worker's orphan clock from running out while fcxd lives.
/// Resolves (with how long the worker has been silent) only when
/// [`HEARTBEAT_MISSES`] calls in a row got no answer in time; an error
/// answer is an answer (a worker that cannot be reached at all has exited,
/// which the supervisor sees on its own).
async fn heartbeat(mut client: WorkerClient<Channel>, every: Duration) -> Duration {
    let mut missed = 0;
    let mut silent_since = None;
    loop {
        tokio::time::sleep(every).await;
        let asked = tokio::time::Instant::now();
        match tokio::time::timeout(every, client.status(StatusRequest {})).await {
            Ok(_) => {
                missed = 0;
                silent_since = None;
            }
            Err(_) => {
                missed += 1;
                let since = *silent_since.get_or_insert(asked);
                if missed >= HEARTBEAT_MISSES {
                    return since.elapsed();
                }
            }
        }
    }
}

async fn send_platform(mut c: WorkerClient<Channel>, profile: &str, info: PlatformInfo) {
    match tokio::time::timeout(Duration::from_secs(5), c.set_platform(info)).await {
        Ok(Ok(ack)) => {
            let ack = ack.into_inner();
            tracing::info!(profile, owner_source = %ack.owner_source, "platform identity sent to the worker");
        }
        Ok(Err(s)) => {
            tracing::warn!(profile, error = %s.message(), "the worker refused the platform identity")
        }
        Err(_) => tracing::warn!(
            profile,
            "the worker did not take the platform identity in time"
        ),
    }
}

enum End {
    Stopped,
    Restart,
    Exited { what: String, killed: bool },
    StartFailed(String),
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where `fcx-worker` is: `$FCX_WORKER_BIN`, else next to this executable.
pub(crate) fn worker_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FCX_WORKER_BIN").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate fcxd itself: {e}"))?;
    let name = if cfg!(windows) {
        "fcx-worker.exe"
    } else {
        "fcx-worker"
    };
    let dir = exe
        .parent()
        .ok_or_else(|| "cannot locate fcxd's directory".to_string())?;
    // `cargo test` puts binaries one level up from deps/.
    for cand in [dir.join(name), dir.join("..").join(name)] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(format!(
        "cannot find {name} next to {}; build it with `cargo build` or set FCX_WORKER_BIN",
        exe.display()
    ))
}
