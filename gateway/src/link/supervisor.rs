//! One `fcx-worker` per profile: spawn, connect, `Hello`, follow its events,
//! and restart it when it exits or is killed (exponential backoff with a cap,
//! reset after a healthy period).
//!
//! The event cursor lives here, outside the worker, and is persisted, so a
//! worker restart or a reconnect resumes exactly where the gateway left off.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fcx_config::Home;
use fcx_ipc::SocketAddr;
use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::v1::{
    Ack, ActResult, Action, EventsRequest, HelloRequest, Inbound, PlatformInfo, ShutdownRequest,
    StatusRequest, WorkerEvent, WorkerStatus,
};
use fcx_proto::{BUILD_VERSION, PROTOCOL_VERSION, version_mismatch_message};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A worker that ran this long was healthy: its next crash starts the
/// backoff from the beginning again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Ready,
    Backoff,
    /// Shutting down: runs are ending and their final events still flow.
    Stopping,
    Stopped,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Backoff => "backoff",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

/// What the supervisor tells surfaces about the worker itself.
#[derive(Debug, Clone)]
pub enum Notice {
    Ready { pid: u32 },
    Exited { what: String, retry_in: Duration },
    StartFailed { error: String, retry_in: Duration },
}

#[derive(Debug, Clone)]
pub struct WorkerView {
    pub profile: String,
    pub phase: Phase,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub last_error: String,
    pub started_at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("the worker for profile {0} is not running right now")]
    Unavailable(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Busy(String),
}

struct Shared {
    phase: Phase,
    pid: Option<u32>,
    restarts: u32,
    last_error: String,
    started_at_ms: i64,
    client: Option<WorkerClient<Channel>>,
}

pub struct WorkerHandle {
    profile: String,
    home: Home,
    worker_bin: PathBuf,
    shared: Mutex<Shared>,
    events: broadcast::Sender<WorkerEvent>,
    notices: broadcast::Sender<Notice>,
    /// Next event seq to ask for.
    cursor: AtomicU64,
    /// What the channel learned about the platform; sent to every worker
    /// incarnation right after Hello.
    platform: Mutex<Option<PlatformInfo>>,
    ready: Notify,
    restart: Notify,
    stop: CancellationToken,
}

impl WorkerHandle {
    pub fn new(
        profile: &str,
        home: &Home,
        worker_bin: PathBuf,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(8192);
        let (notices, _) = broadcast::channel(64);
        let h = Arc::new(WorkerHandle {
            profile: profile.to_string(),
            home: home.clone(),
            worker_bin,
            shared: Mutex::new(Shared {
                phase: Phase::Starting,
                pid: None,
                restarts: 0,
                last_error: String::new(),
                started_at_ms: 0,
                client: None,
            }),
            events,
            notices,
            cursor: AtomicU64::new(0),
            platform: Mutex::new(None),
            ready: Notify::new(),
            restart: Notify::new(),
            stop,
        });
        if let Some(c) = h.load_cursor() {
            h.cursor.store(c, Ordering::SeqCst);
        }
        h
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn view(&self) -> WorkerView {
        let s = self.lock();
        WorkerView {
            profile: self.profile.clone(),
            phase: s.phase,
            pid: s.pid,
            restarts: s.restarts,
            last_error: s.last_error.clone(),
            started_at_ms: s.started_at_ms,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WorkerEvent> {
        self.events.subscribe()
    }

    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    fn client(&self) -> Option<WorkerClient<Channel>> {
        let s = self.lock();
        if s.phase == Phase::Ready {
            s.client.clone()
        } else {
            None
        }
    }

    /// Wait until the worker is ready (or `timeout` passes).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
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

    /// Hand a message to the worker. `Ok` means it is durably accepted.
    pub async fn deliver(&self, inbound: Inbound) -> Result<Ack, DeliverError> {
        let Some(mut c) = self.client() else {
            return Err(DeliverError::Unavailable(self.profile.clone()));
        };
        match c.deliver(inbound).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => match s.code() {
                tonic::Code::InvalidArgument => Err(DeliverError::Refused(s.message().to_string())),
                tonic::Code::ResourceExhausted => Err(DeliverError::Busy(s.message().to_string())),
                _ => Err(DeliverError::Unavailable(self.profile.clone())),
            },
        }
    }

    /// A verified action (card button, a group the gateway created).
    pub async fn act(&self, action: Action) -> Result<ActResult, DeliverError> {
        let Some(mut c) = self.client() else {
            return Err(DeliverError::Unavailable(self.profile.clone()));
        };
        c.act(action)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| DeliverError::Refused(s.message().to_string()))
    }

    /// Remember the platform identity and tell the worker (now, if it is
    /// up, and after every restart).
    pub async fn set_platform(&self, info: PlatformInfo) {
        if let Ok(mut p) = self.platform.lock() {
            *p = Some(info.clone());
        }
        if let Some(c) = self.client() {
            send_platform(c, &self.profile, info).await;
        }
    }

    pub async fn status(&self) -> Option<WorkerStatus> {
        let mut c = self.client()?;
        tokio::time::timeout(Duration::from_secs(2), c.status(StatusRequest {}))
            .await
            .ok()?
            .ok()
            .map(|r| r.into_inner())
    }

    pub fn request_restart(&self) {
        self.restart.notify_one();
    }

    fn cursor_path(&self) -> PathBuf {
        self.home.profile_dir(&self.profile).join("gateway.cursor")
    }

    fn load_cursor(&self) -> Option<u64> {
        std::fs::read_to_string(self.cursor_path())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn save_cursor(&self) {
        let c = self.cursor.load(Ordering::SeqCst);
        let path = self.cursor_path();
        let tmp = path.with_extension("tmp");
        let r = std::fs::create_dir_all(self.home.profile_dir(&self.profile))
            .and_then(|_| std::fs::write(&tmp, c.to_string()))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            tracing::warn!(profile = %self.profile, error = %e, "cannot save the event cursor");
        }
    }

    fn set_phase(&self, phase: Phase) {
        let mut s = self.lock();
        s.phase = phase;
        if phase != Phase::Ready {
            s.client = None;
        }
    }

    /// The supervision loop; returns when `stop` is cancelled and the worker
    /// has been shut down.
    pub async fn supervise(self: Arc<Self>) {
        let mut backoff = BACKOFF_START;
        let sock = SocketAddr::new(self.home.worker_socket(&self.profile));
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            self.set_phase(Phase::Starting);
            let started = Instant::now();
            let end = match self.spawn() {
                Ok(child) => self.run_one(child, &sock).await,
                Err(e) => End::StartFailed(e),
            };
            let lived = started.elapsed();
            if lived >= HEALTHY_AFTER {
                backoff = BACKOFF_START;
            }
            match end {
                End::Stopped => break,
                End::Restart => {
                    backoff = BACKOFF_START;
                    continue;
                }
                End::Exited(what) => {
                    tracing::warn!(profile = %self.profile, %what, retry_in_ms = backoff.as_millis() as u64, "worker exited; restarting");
                    self.lock().last_error = what.clone();
                    let _ = self.notices.send(Notice::Exited {
                        what,
                        retry_in: backoff,
                    });
                }
                End::StartFailed(error) => {
                    tracing::error!(profile = %self.profile, %error, retry_in_ms = backoff.as_millis() as u64, "worker failed to start");
                    self.lock().last_error = error.clone();
                    let _ = self.notices.send(Notice::StartFailed {
                        error,
                        retry_in: backoff,
                    });
                }
            }
            self.lock().restarts += 1;
            self.set_phase(Phase::Backoff);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.cancelled() => break,
                _ = self.restart.notified() => {}
            }
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
        self.save_cursor();
        self.set_phase(Phase::Stopped);
        self.lock().pid = None;
    }

    fn spawn(&self) -> Result<Child, String> {
        let sock = self.home.worker_socket(&self.profile);
        let mut cmd = Command::new(&self.worker_bin);
        cmd.arg("--profile")
            .arg(&self.profile)
            .arg("--home")
            .arg(self.home.root())
            .arg("--socket")
            .arg(&sock)
            .arg("--exit-with-parent")
            // The worker starts under our private umask; Codex gets this one.
            .envs(
                fcx_config::inherited_umask()
                    .map(|m| (fcx_config::INHERITED_UMASK_ENV, format!("{m:o}"))),
            )
            // Our end of stdin: when fcxd dies, the worker sees EOF and exits.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: a Ctrl-C in the console reaches fcxd only,
        // which then stops runs in order.
        #[cfg(unix)]
        cmd.process_group(0);
        cmd.spawn().map_err(|e| {
            format!(
                "cannot start {}: {e}; build it with `cargo build` or set FCX_WORKER_BIN",
                self.worker_bin.display()
            )
        })
    }

    async fn run_one(self: &Arc<Self>, mut child: Child, sock: &SocketAddr) -> End {
        let pid = child.id();
        {
            let mut s = self.lock();
            s.pid = pid;
            s.started_at_ms = now_ms();
        }
        // The worker's stderr carries its one-sentence fatal error.
        let last_stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_task = child.stderr.take().map(|err| {
            let last = last_stderr.clone();
            let profile = self.profile.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = line.trim().to_string();
                    if line.is_empty() {
                        continue;
                    }
                    tracing::warn!(%profile, worker_stderr = %line);
                    if let Ok(mut l) = last.lock() {
                        *l = line;
                    }
                }
            })
        });
        let stdin = child.stdin.take();

        let connected = tokio::select! {
            r = connect_and_hello(sock, &self.profile) => Some(r),
            status = child.wait() => {
                // Read its last words before describing the exit.
                finish_stderr(stderr_task.take()).await;
                return End::StartFailed(describe_exit(status, &last_stderr));
            }
            _ = self.stop.cancelled() => None,
        };
        let (client, last_seq) = match connected {
            None => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return End::Stopped;
            }
            Some(Err(e)) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                finish_stderr(stderr_task.take()).await;
                return End::StartFailed(e);
            }
            Some(Ok(v)) => v,
        };
        if self.cursor.load(Ordering::SeqCst) == 0 {
            // First contact and no saved cursor: follow from now on.
            self.cursor.store(last_seq + 1, Ordering::SeqCst);
        }
        {
            let mut s = self.lock();
            s.client = Some(client.clone());
            s.phase = Phase::Ready;
            s.last_error.clear();
        }
        let platform = self.platform.lock().ok().and_then(|p| p.clone());
        if let Some(info) = platform {
            send_platform(client.clone(), &self.profile, info).await;
        }
        self.ready.notify_waiters();
        let _ = self.notices.send(Notice::Ready {
            pid: pid.unwrap_or(0),
        });
        tracing::info!(profile = %self.profile, pid = pid.unwrap_or(0), "worker ready");

        let follow = self.clone().follow_events(client.clone());
        tokio::pin!(follow);
        let end = tokio::select! {
            status = child.wait() => {
                // Let the event stream drain what the worker said last.
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut follow).await;
                finish_stderr(stderr_task.take()).await;
                End::Exited(describe_exit(status, &last_stderr))
            }
            _ = &mut follow => {
                // The stream only ends for good when the worker is going away.
                let status = child.wait().await;
                finish_stderr(stderr_task.take()).await;
                End::Exited(describe_exit(status, &last_stderr))
            }
            _ = self.restart.notified() => {
                self.set_phase(Phase::Starting);
                self.shutdown_child(&mut child, client.clone(), "restart requested", &mut follow).await;
                End::Restart
            }
            _ = self.stop.cancelled() => {
                self.set_phase(Phase::Stopping);
                self.shutdown_child(&mut child, client.clone(), "fcxd is stopping", &mut follow).await;
                End::Stopped
            }
        };
        drop(stdin);
        self.set_phase(Phase::Backoff);
        self.save_cursor();
        finish_stderr(stderr_task.take()).await;
        end
    }

    async fn shutdown_child(
        &self,
        child: &mut Child,
        mut client: WorkerClient<Channel>,
        reason: &str,
        follow: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            client.shutdown(ShutdownRequest {
                reason: reason.into(),
            }),
        )
        .await;
        // Keep forwarding events while runs end, so every final state reaches
        // the surfaces.
        let waited = tokio::time::timeout(STOP_TIMEOUT, async {
            let (status, _) = tokio::join!(child.wait(), follow.as_mut());
            status
        })
        .await;
        if waited.is_err() {
            tracing::warn!(profile = %self.profile, "worker did not stop in time; killing it");
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Follow the worker's events from the cursor, reconnecting the stream
    /// while the worker lives. Returns when the worker is gone.
    async fn follow_events(self: Arc<Self>, mut client: WorkerClient<Channel>) {
        let mut last_flush = Instant::now();
        let mut failures = 0u32;
        loop {
            let from = self.cursor.load(Ordering::SeqCst);
            let mut stream = match client.events(EventsRequest { from_seq: from }).await {
                Ok(s) => s.into_inner(),
                Err(e) => {
                    failures += 1;
                    if failures > 20 {
                        tracing::warn!(profile = %self.profile, error = %e, "event stream unavailable");
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(ev)) => {
                        failures = 0;
                        let seq = ev.seq;
                        if seq < self.cursor.load(Ordering::SeqCst) {
                            continue;
                        }
                        self.cursor.store(seq + 1, Ordering::SeqCst);
                        let _ = self.events.send(ev);
                        if last_flush.elapsed() > Duration::from_millis(500) {
                            self.save_cursor();
                            last_flush = Instant::now();
                        }
                    }
                    // A clean end: the worker is shutting down.
                    Ok(None) => {
                        self.save_cursor();
                        return;
                    }
                    Err(_) => break,
                }
            }
            self.save_cursor();
            failures += 1;
            if failures > 20 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
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
    Exited(String),
    StartFailed(String),
}

async fn finish_stderr(task: Option<tokio::task::JoinHandle<()>>) {
    if let Some(t) = task {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
}

fn describe_exit(
    status: std::io::Result<std::process::ExitStatus>,
    last_stderr: &Arc<Mutex<String>>,
) -> String {
    let last = last_stderr.lock().map(|l| l.clone()).unwrap_or_default();
    let how = match status {
        Ok(s) => match s.code() {
            Some(c) => format!("exited with code {c}"),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    match s.signal() {
                        Some(sig) => format!("was killed by signal {sig}"),
                        None => "ended".to_string(),
                    }
                }
                #[cfg(not(unix))]
                {
                    "ended".to_string()
                }
            }
        },
        Err(e) => format!("could not be waited for: {e}"),
    };
    if last.is_empty() {
        format!("the worker {how}")
    } else {
        format!("the worker {how}: {last}")
    }
}

async fn connect_and_hello(
    sock: &SocketAddr,
    profile: &str,
) -> Result<(WorkerClient<Channel>, u64), String> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let channel = loop {
        match fcx_ipc::connect(sock).await {
            Ok(c) => break c,
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the worker for profile {profile} did not open its socket in time: {e}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut client = WorkerClient::new(channel)
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(16 * 1024 * 1024);
    let hello = client
        .hello(HelloRequest {
            protocol_version: PROTOCOL_VERSION,
            gateway_version: BUILD_VERSION.into(),
            capabilities: vec!["events.resume".into()],
        })
        .await
        .map_err(|s| {
            if s.code() == tonic::Code::FailedPrecondition {
                s.message().to_string()
            } else {
                format!(
                    "the worker for profile {profile} did not answer Hello: {}",
                    s.message()
                )
            }
        })?
        .into_inner();
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(version_mismatch_message(
            PROTOCOL_VERSION,
            hello.protocol_version,
            "worker",
        ));
    }
    Ok((client, hello.last_seq))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where `fcx-worker` is: `$FCX_WORKER_BIN`, else next to this executable.
pub fn worker_binary() -> Result<PathBuf, String> {
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
