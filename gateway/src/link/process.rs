//! A worker process as fcxd sees it: one it spawned (its child) or one it
//! found already serving on the profile's socket (left running by a previous
//! fcxd that crashed or was upgraded). Workers outlive fcxd on purpose, so
//! everything here works for both: the exit is watched through the child
//! when there is one, else by polling the pid (with its start time, so a
//! reused pid is not mistaken for the worker); the worker's stderr goes to a
//! file either fcxd can read.
//!
//! Every connection to a worker goes through [`connect_and_hello`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fcx_ipc::SocketAddr;
use fcx_proto::v1::HelloRequest;
use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::{BUILD_VERSION, PROTOCOL_VERSION, version_mismatch_message};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// How often a worker fcxd did not spawn is checked for life.
const POLL_EXIT: Duration = Duration::from_millis(20);

/// What a successful `Hello` told us.
pub(crate) struct Hello {
    pub(crate) client: WorkerClient<Channel>,
    pub(crate) last_seq: u64,
    pub(crate) pid: u32,
    /// What the worker can do (`fcx_proto::caps`).
    pub(crate) caps: Vec<String>,
    /// The worker's attachment limits (`None`: it takes no attachments).
    pub(crate) media: Option<fcx_proto::v1::MediaLimits>,
}

/// Why a connection was not made.
pub(crate) enum ConnectError {
    /// Nothing serves on the socket (yet).
    NoSocket(String),
    /// Something serves but speaks another protocol version.
    Mismatch(String),
    /// Something serves but did not answer `Hello` properly.
    Failed(String),
}

impl ConnectError {
    pub(crate) fn into_message(self) -> String {
        match self {
            ConnectError::NoSocket(m) | ConnectError::Mismatch(m) | ConnectError::Failed(m) => m,
        }
    }
}

/// Connects to the worker's socket (retrying until `deadline` while nothing
/// listens) and says `Hello`: the one path every connection takes.
pub(crate) async fn connect_and_hello(
    sock: &SocketAddr,
    profile: &str,
    deadline: Instant,
) -> Result<Hello, ConnectError> {
    let channel = loop {
        match connect(sock).await {
            Ok(c) => break c,
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(ConnectError::NoSocket(format!(
                        "the worker for profile {profile} did not open its socket in time: {e}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let mut client = WorkerClient::new(channel)
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(16 * 1024 * 1024);
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(2));
    let hello = tokio::time::timeout(
        left,
        client.hello(HelloRequest {
            protocol_version: PROTOCOL_VERSION,
            gateway_version: BUILD_VERSION.into(),
            capabilities: fcx_proto::caps::GATEWAY
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }),
    )
    .await
    .map_err(|_| {
        ConnectError::Failed(format!(
            "the worker for profile {profile} did not answer Hello in time"
        ))
    })?
    .map_err(|s| {
        if s.code() == tonic::Code::FailedPrecondition {
            ConnectError::Mismatch(s.message().to_string())
        } else {
            ConnectError::Failed(format!(
                "the worker for profile {profile} did not answer Hello: {}",
                s.message()
            ))
        }
    })?
    .into_inner();
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(ConnectError::Mismatch(version_mismatch_message(
            PROTOCOL_VERSION,
            hello.protocol_version,
            "worker",
        )));
    }
    Ok(Hello {
        client,
        last_seq: hello.last_seq,
        pid: hello.pid,
        caps: hello.capabilities,
        media: hello.media,
    })
}

/// The socket connection every call to a worker goes through (the place
/// for peer checks).
pub(crate) async fn connect(sock: &SocketAddr) -> Result<Channel, fcx_ipc::IpcError> {
    fcx_ipc::connect(sock).await
}

/// A running worker: spawned by this fcxd or found serving.
pub(crate) struct WorkerProcess {
    pid: u32,
    /// `Some` when this fcxd spawned it (then it is reaped here).
    child: Option<Child>,
    /// The pid's start time, to tell the worker from a later process that
    /// got its pid.
    started: Option<u64>,
    stderr: PathBuf,
}

impl WorkerProcess {
    /// Spawns the worker. It gets its own process group (a Ctrl-C in the
    /// console reaches fcxd only, which then stops runs in order), no stdin
    /// (its life is not tied to fcxd's) and a stderr file that outlives us.
    pub(crate) fn spawn(
        worker_bin: &Path,
        profile: &str,
        home: &fcx_config::Home,
        stderr: PathBuf,
    ) -> Result<WorkerProcess, String> {
        let err = std::fs::File::create(&stderr)
            .map_err(|e| format!("cannot create {}: {e}", stderr.display()))?;
        let mut cmd = Command::new(worker_bin);
        // An allow-list, not fcxd's environment: `env:` secrets fcxd read
        // must not reach the worker (nor, through it, Codex).
        cmd.env_clear()
            .envs(super::env::for_worker(home, profile))
            .arg("--profile")
            .arg(profile)
            .arg("--home")
            .arg(home.root())
            .arg("--socket")
            .arg(home.worker_socket(profile))
            // The worker starts under our private umask; Codex gets this one.
            .envs(
                fcx_config::inherited_umask()
                    .map(|m| (fcx_config::INHERITED_UMASK_ENV, format!("{m:o}"))),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .kill_on_drop(false);
        #[cfg(unix)]
        cmd.process_group(0);
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {}: {e}; build it with `cargo build` or set FCX_WORKER_BIN",
                worker_bin.display()
            )
        })?;
        let pid = child.id().unwrap_or(0);
        Ok(WorkerProcess {
            pid,
            child: Some(child),
            started: start_time(pid),
            stderr,
        })
    }

    /// A worker found serving (its pid from `Hello`).
    pub(crate) fn adopted(pid: u32, stderr: PathBuf) -> WorkerProcess {
        WorkerProcess {
            pid,
            child: None,
            started: start_time(pid),
            stderr,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn spawned(&self) -> bool {
        self.child.is_some()
    }

    /// Resolves when the process is gone, with how it ended. Cancel-safe.
    pub(crate) async fn exited(&mut self) -> Exit {
        if let Some(child) = self.child.as_mut() {
            let status = child.wait().await;
            // A signal sent from outside (a kill, the OOM killer), not a
            // failure of its own.
            let killed = status
                .as_ref()
                .ok()
                .and_then(signal_of)
                .is_some_and(|s| s == 9 || s == 15);
            return Exit {
                what: self.describe(Some(status)),
                killed,
            };
        }
        while self.alive() {
            tokio::time::sleep(POLL_EXIT).await;
        }
        // Not ours: how it ended is unknown; it had been serving.
        Exit {
            what: self.describe(None),
            killed: true,
        }
    }

    fn alive(&self) -> bool {
        match (start_time(self.pid), self.started) {
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// SIGKILL (the process group's leader only: codex children die with
    /// the worker through their parent-death signal); TerminateProcess on
    /// Windows.
    pub(crate) fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        } else {
            // An adopted worker (it outlived an earlier fcxd) is no child of
            // ours: killed by pid, and only while the pid is still the
            // process adopted (its start time).
            #[cfg(unix)]
            if self.alive()
                && let Ok(pid) = i32::try_from(self.pid)
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            // The creation time is compared on the handle that is then
            // terminated: a recycled pid is never killed.
            #[cfg(windows)]
            if let Some(started) = self.started
                && let Err(e) = fcx_config::registry::terminate(self.pid, started)
            {
                tracing::warn!(pid = self.pid, error = %e, "cannot kill the adopted worker");
            }
        }
    }

    fn describe(&self, status: Option<std::io::Result<std::process::ExitStatus>>) -> String {
        let last = last_line(&self.stderr);
        let how = match status {
            None => "ended".to_string(),
            Some(Ok(s)) => match s.code() {
                Some(c) => format!("exited with code {c}"),
                None => signal_of(&s)
                    .map(|sig| format!("was killed by signal {sig}"))
                    .unwrap_or_else(|| "ended".to_string()),
            },
            Some(Err(e)) => format!("could not be waited for: {e}"),
        };
        if last.is_empty() {
            format!("the worker {how}")
        } else {
            format!("the worker {how}: {last}")
        }
    }
}

/// How a worker process ended.
pub(crate) struct Exit {
    pub(crate) what: String,
    /// Killed from outside rather than failing by itself: restarted at once.
    pub(crate) killed: bool,
}

#[cfg(unix)]
fn signal_of(s: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

/// The process's start time (clock ticks after boot on Linux, creation
/// time on Windows), `None` when it does not exist, is a zombie or (Windows)
/// has exited. Elsewhere only existence is checked.
fn start_time(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields start
        // after the last ')'.
        let rest = stat.rsplit_once(')')?.1;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        if state == "Z" || state == "X" {
            return None;
        }
        // Field 22 overall; 20 after the state.
        fields.nth(18)?.parse().ok()
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let pid = i32::try_from(pid).ok()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            .ok()
            .map(|_| 0)
    }
    #[cfg(windows)]
    {
        fcx_config::registry::running_since(pid)
    }
    #[cfg(not(any(unix, windows)))]
    {
        Some(0)
    }
}

/// The last non-empty line of the worker's stderr file (its one-sentence
/// fatal error), bounded.
fn last_line(path: &Path) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    String::from_utf8_lossy(tail)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
#[path = "hello_tests.rs"]
mod hello_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_stderr_line_is_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("e");
        std::fs::write(&p, "first\nfcx-worker: cannot open the state\n\n").expect("write");
        assert_eq!(last_line(&p), "fcx-worker: cannot open the state");
        assert_eq!(last_line(&dir.path().join("missing")), "");
    }

    #[cfg(any(target_os = "linux", windows))]
    #[test]
    fn this_process_is_alive_and_a_made_up_pid_is_not() {
        let me = WorkerProcess::adopted(std::process::id(), PathBuf::from("/nonexistent"));
        assert!(me.alive());
        let gone = WorkerProcess::adopted(u32::MAX - 1, PathBuf::from("/nonexistent"));
        assert!(!gone.alive());
    }
}
