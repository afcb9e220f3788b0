//! The `codex exec --json` runner: one Codex child process per turn.
//!
//! The prompt goes to the child's stdin (then stdin is closed: codex blocks
//! until EOF), JSONL events come from stdout and are translated into
//! [`RunnerEvent`]s, stderr is only kept as a bounded tail for error reports.
//! `exec` has no live deltas, approvals or steering; a stop is a SIGINT to the
//! child's process group, escalated to SIGTERM and SIGKILL, followed by a
//! sweep of the commands codex started (see [`super::process`]).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::process::{self, ProcId, StopSignal};
use super::{
    ControlError, FileChange, Outcome, RunControl, RunIo, RunResult, RunSpec, Runner, RunnerCaps,
    RunnerEvent, Sandbox, TokenUsage, ToolKind, ToolStatus,
};

/// Longest stdout line we buffer. A command's whole output can sit in one
/// JSONL line, so this is generous; anything longer is dropped, not buffered
/// without end.
const MAX_LINE: usize = 8 << 20;
/// Longest stderr line we keep (the rest of it is discarded).
const STDERR_MAX_LINE: usize = 64 << 10;
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 8 << 10;
const TAIL_LINE_CHARS: usize = 2048;
/// How long to keep reading stdout and stderr once codex has exited. Only a
/// leftover process that inherited the pipes keeps them open that long.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// After SIGKILL the child should be reapable at once; this only bounds a
/// child stuck in the kernel.
const REAP_AFTER_KILL: Duration = Duration::from_secs(10);
const LOG_SNIPPET_CHARS: usize = 200;
const FAILURE_DETAIL_CHARS: usize = 300;

/// Runs one turn as `codex exec --json [...] -`.
#[derive(Debug, Clone)]
pub struct ExecRunner {
    max_line: usize,
    drain: Duration,
}

impl ExecRunner {
    pub fn new() -> Self {
        ExecRunner {
            max_line: MAX_LINE,
            drain: DRAIN_AFTER_EXIT,
        }
    }
}

impl Default for ExecRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl Runner for ExecRunner {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn caps(&self) -> RunnerCaps {
        RunnerCaps {
            live_deltas: false,
            approvals: false,
            steer: false,
        }
    }

    fn run(&self, spec: RunSpec, io: RunIo) -> BoxFuture<'static, RunResult> {
        let this = self.clone();
        Box::pin(async move { this.run_turn(spec, io).await })
    }
}

/// The argv after the binary, in the order the official SDK uses. Flags go
/// before `resume` because `exec resume` has no `--sandbox`/`--cd` of its
/// own; images use `--image=` because the spaced form is greedy and would
/// swallow the trailing `-`; `-` makes codex read the prompt from stdin
/// (verified with 0.169.0 both for new threads and after `resume <id>`).
pub fn build_args(spec: &RunSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["exec".into(), "--json".into()];
    for (k, v) in &spec.overrides {
        a.push("-c".into());
        a.push(format!("{k}={v}").into());
    }
    if spec.sandbox == Sandbox::WorkspaceWrite {
        a.push("-c".into());
        a.push(format!("sandbox_workspace_write.network_access={}", spec.network).into());
    }
    if let Some(m) = &spec.model {
        a.push("-m".into());
        a.push(m.into());
    }
    a.push("--sandbox".into());
    a.push(spec.sandbox.as_str().into());
    a.push("--cd".into());
    a.push(spec.cwd.clone().into_os_string());
    a.push("--skip-git-repo-check".into());
    if let Some(t) = &spec.resume_thread {
        a.push("resume".into());
        a.push(t.into());
    }
    for img in &spec.images {
        let mut s = OsString::from("--image=");
        s.push(img);
        a.push(s);
    }
    a.push("-".into());
    a
}

/// Why the main loop ended.
enum End {
    /// Codex exited (and stdout ended or was given up on).
    Natural,
    Cancelled,
    /// The orchestrator dropped the event receiver: nobody is listening, so
    /// the child is stopped rather than left running unowned.
    Detached,
    WaitFailed(String),
}

enum Sent {
    Ok,
    Cancelled,
    Closed,
}

async fn send(
    events: &mpsc::Sender<RunnerEvent>,
    cancel: &CancellationToken,
    ev: RunnerEvent,
) -> Sent {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Sent::Cancelled,
        r = events.send(ev) => if r.is_ok() { Sent::Ok } else { Sent::Closed },
    }
}

fn answer_control(ctl: RunControl) {
    // The requester may have given up; a dropped reply receiver is fine.
    match ctl {
        RunControl::Steer { reply, .. } => {
            let _ = reply.send(Err(ControlError::NotSupported {
                runner: "exec",
                what: "steering",
            }));
        }
        RunControl::Approve { reply, .. } => {
            let _ = reply.send(Err(ControlError::NotSupported {
                runner: "exec",
                what: "approvals",
            }));
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn failed(message: impl Into<String>) -> RunResult {
    RunResult {
        outcome: Outcome::Failed {
            message: message.into(),
        },
        thread_id: None,
        final_text: None,
        usage: None,
        stderr_tail: String::new(),
        exit_code: None,
    }
}

impl ExecRunner {
    async fn run_turn(self, mut spec: RunSpec, io: RunIo) -> RunResult {
        let RunIo {
            events,
            mut control,
            cancel,
        } = io;
        let run_id = spec.run_id.clone();

        if cancel.is_cancelled() {
            return RunResult {
                outcome: Outcome::Interrupted,
                ..failed("")
            };
        }
        if let Some(t) = &spec.resume_thread
            && (t.is_empty() || t.starts_with('-'))
        {
            // codex would parse it as a flag (or as "no id") and do something else.
            return failed(format!(
                "The stored thread id {t:?} is not a valid Codex thread id."
            ));
        }

        let mut cmd = match prepare_command(&spec).await {
            Ok(c) => c,
            Err(message) => return failed(message),
        };
        let mut child = match spawn_with_retry(&mut cmd).await {
            Ok(c) => c,
            Err(e) => return failed(spawn_error_message(&spec.binary, &e)),
        };
        let Some(pid) = child.id() else {
            return failed("codex exited before it could be watched.");
        };
        // Declared after `child` so it is dropped first, while the pid still
        // belongs to our unreaped child.
        let mut guard = TreeGuard { pid: Some(pid) };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return failed("codex was started without its stdio pipes.");
        };
        tracing::info!(
            run_id,
            pid,
            resume = spec.resume_thread.is_some(),
            sandbox = spec.sandbox.as_str(),
            "codex exec started"
        );

        // A task, so a prompt larger than the pipe buffer cannot deadlock
        // against stdout we are not reading yet.
        let prompt = std::mem::take(&mut spec.prompt);
        let stdin_task =
            AbortOnDropHandle::new(tokio::spawn(write_prompt(stdin, prompt, run_id.clone())));
        let stderr_state = Arc::new(Mutex::new(StderrState::default()));
        let mut stderr_task = AbortOnDropHandle::new(tokio::spawn(read_stderr(
            stderr,
            Arc::clone(&stderr_state),
            run_id.clone(),
        )));

        let mut stdout = BoundedLines::new(stdout, self.max_line);
        let mut tr = Translator::new(spec.cwd.clone());
        let mut exit: Option<ExitStatus> = None;
        let mut end = match send(&events, &cancel, RunnerEvent::Spawned { pid }).await {
            Sent::Ok => End::Natural,
            Sent::Cancelled => End::Cancelled,
            Sent::Closed => End::Detached,
        };

        if matches!(end, End::Natural) {
            end = self
                .main_loop(
                    &mut child,
                    &mut stdout,
                    &mut tr,
                    &mut exit,
                    &events,
                    &mut control,
                    &cancel,
                    &run_id,
                )
                .await;
        }
        if !matches!(end, End::Natural) {
            stop_child(
                &mut child,
                pid,
                &mut exit,
                &mut stdout,
                &mut tr,
                spec.stop_grace,
                &run_id,
            )
            .await;
        }
        if exit.is_some() {
            guard.pid = None;
        }

        // codex is gone; anything still writing into the stdin pipe has no reader.
        stdin_task.abort();
        let _ = stdin_task.await;
        if tokio::time::timeout(self.drain, &mut stderr_task)
            .await
            .is_err()
        {
            tracing::debug!(
                run_id,
                "codex stderr still open after exit; not waiting longer"
            );
            stderr_task.abort();
            let _ = stderr_task.await;
        }

        let st = stderr_state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outcome = match end {
            End::Cancelled | End::Detached => Outcome::Interrupted,
            End::WaitFailed(m) => Outcome::Failed { message: m },
            End::Natural => classify(exit, &tr, &st, spec.resume_thread.as_deref()),
        };
        let result = RunResult {
            outcome,
            thread_id: tr.thread_id,
            final_text: tr.final_text,
            usage: tr.usage,
            stderr_tail: st.tail_string(),
            exit_code: exit.and_then(|s| s.code()),
        };
        tracing::info!(
            run_id,
            pid,
            outcome = ?result.outcome,
            exit_code = ?result.exit_code,
            "codex exec finished"
        );
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn main_loop(
        &self,
        child: &mut Child,
        stdout: &mut BoundedLines<ChildStdout>,
        tr: &mut Translator,
        exit: &mut Option<ExitStatus>,
        events: &mpsc::Sender<RunnerEvent>,
        control: &mut mpsc::Receiver<RunControl>,
        cancel: &CancellationToken,
        run_id: &str,
    ) -> End {
        let mut control_open = true;
        let mut drain_deadline: Option<Instant> = None;
        loop {
            if stdout.done() && exit.is_some() {
                return End::Natural;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return End::Cancelled,
                ctl = control.recv(), if control_open => match ctl {
                    Some(c) => answer_control(c),
                    None => control_open = false,
                },
                status = child.wait(), if exit.is_none() => match status {
                    Ok(s) => {
                        *exit = Some(s);
                        drain_deadline = Some(Instant::now() + self.drain);
                    }
                    Err(e) => return End::WaitFailed(format!("Could not wait for codex: {e}.")),
                },
                line = stdout.next(), if !stdout.done() => match line {
                    Ok(Some(Line::Text(bytes))) => {
                        for ev in tr.line(&bytes) {
                            match send(events, cancel, ev).await {
                                Sent::Ok => {}
                                Sent::Cancelled => return End::Cancelled,
                                Sent::Closed => return End::Detached,
                            }
                        }
                    }
                    Ok(Some(Line::TooLong(n))) => {
                        tracing::warn!(run_id, bytes = n, limit = self.max_line, "dropped an overlong line from codex stdout");
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(run_id, error = %e, "reading codex stdout failed"),
                },
                _ = sleep_until_opt(drain_deadline), if drain_deadline.is_some() && !stdout.done() => {
                    tracing::warn!(run_id, "codex exited but its stdout is still held open by another process; not reading further");
                    stdout.give_up();
                }
            }
        }
    }
}

/// Stops the child: SIGINT (codex exec handles it cleanly and kills its
/// commands), then SIGTERM, then SIGKILL to the process group, each after
/// `grace`; finally sweeps the descendants recorded while codex was alive,
/// which catches `setsid()`'d commands that no group signal reaches.
async fn stop_child(
    child: &mut Child,
    pid: u32,
    exit: &mut Option<ExitStatus>,
    stdout: &mut BoundedLines<ChildStdout>,
    tr: &mut Translator,
    grace: Duration,
    run_id: &str,
) {
    if exit.is_some() {
        // Exited on its own; only stragglers left in its group remain.
        process::signal_group(pid, StopSignal::Kill);
        return;
    }
    let mut recorded: Vec<ProcId> = Vec::new();
    for sig in [
        StopSignal::Interrupt,
        StopSignal::Terminate,
        StopSignal::Kill,
    ] {
        // Re-snapshot at each step: codex may have started commands since.
        merge(&mut recorded, snapshot(pid).await);
        tracing::debug!(run_id, pid, signal = ?sig, "stopping codex");
        if !process::signal_group(pid, sig) && sig == StopSignal::Kill {
            // No process groups on this platform (or the group is gone).
            let _ = child.start_kill();
        }
        let limit = if sig == StopSignal::Kill {
            REAP_AFTER_KILL
        } else {
            grace
        };
        match wait_exit(child, stdout, tr, limit).await {
            Some(Ok(s)) => {
                *exit = Some(s);
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(run_id, pid, error = %e, "waiting for codex failed");
                break;
            }
            None => {}
        }
    }
    if exit.is_none() {
        tracing::error!(run_id, pid, "codex did not exit after SIGKILL");
    }
    // The group id cannot be reused while any member is left, so one more
    // group SIGKILL right after reaping only hits our stragglers.
    let sweep = tokio::task::spawn_blocking(move || {
        process::signal_group(pid, StopSignal::Kill);
        process::kill_tree(&recorded);
    });
    if let Err(e) = sweep.await {
        tracing::warn!(run_id, error = %e, "sweeping codex's commands failed");
    }
}

/// Waits up to `limit` for the child to exit, meanwhile reading stdout so a
/// full pipe cannot keep codex from exiting. Events seen now are not sent: the
/// run is being stopped, but the state (thread id, usage) is still updated.
async fn wait_exit(
    child: &mut Child,
    stdout: &mut BoundedLines<ChildStdout>,
    tr: &mut Translator,
    limit: Duration,
) -> Option<io::Result<ExitStatus>> {
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            s = child.wait() => return Some(s),
            line = stdout.next(), if !stdout.done() => {
                if let Ok(Some(Line::Text(bytes))) = line {
                    let _ = tr.line(&bytes);
                }
            }
            _ = &mut deadline => return None,
        }
    }
}

async fn snapshot(pid: u32) -> Vec<ProcId> {
    tokio::task::spawn_blocking(move || process::descendants(pid))
        .await
        .unwrap_or_default()
}

fn merge(into: &mut Vec<ProcId>, more: Vec<ProcId>) {
    for p in more {
        if !into.contains(&p) {
            into.push(p);
        }
    }
}

/// Kills the child's group and tree if the run future is dropped before it
/// could stop the child itself (the orchestrator aborted the task). Blocking,
/// but it only runs on that abnormal path.
struct TreeGuard {
    pid: Option<u32>,
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let tree = process::descendants(pid);
            process::signal_group(pid, StopSignal::Kill);
            process::kill_tree(&tree);
        }
    }
}

fn classify(
    exit: Option<ExitStatus>,
    tr: &Translator,
    st: &StderrState,
    resume: Option<&str>,
) -> Outcome {
    if let Some(message) = &tr.turn_failed {
        return Outcome::Failed {
            message: message.clone(),
        };
    }
    let Some(status) = exit else {
        return Outcome::Failed {
            message: "codex ended in an unknown state.".into(),
        };
    };
    if status.success() {
        return if tr.turn_completed {
            Outcome::Completed
        } else {
            Outcome::Failed {
                message: "codex ended without finishing the turn".into(),
            }
        };
    }
    if st.no_rollout {
        let message = match resume {
            Some(id) => format!(
                "Codex has no saved thread {id} (no rollout found), so it cannot be resumed."
            ),
            None => "Codex has no saved rollout for this thread, so it cannot be resumed.".into(),
        };
        return Outcome::ThreadNotFound { message };
    }
    Outcome::Failed {
        message: exit_sentence(status, st.meaningful()),
    }
}

fn exit_sentence(status: ExitStatus, detail: Option<&str>) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| format!(" ({})", s.as_str()))
                .unwrap_or_default();
            return format!("codex was killed by signal {sig}{name}");
        }
    }
    let code = status
        .code()
        .map_or_else(|| "unknown".to_string(), |c| c.to_string());
    match detail {
        Some(d) => format!(
            "codex exited with code {code}: {}",
            truncate_chars(d, FAILURE_DETAIL_CHARS)
        ),
        None => format!("codex exited with code {code}"),
    }
}

// ---------------------------------------------------------------------------
// Spawning

async fn prepare_command(spec: &RunSpec) -> Result<Command, String> {
    let mut cmd = Command::new(&spec.binary);
    cmd.args(build_args(spec));
    for name in &spec.env.remove {
        if !name.is_empty() {
            cmd.env_remove(name);
        }
    }
    if let Some(home) = &spec.env.codex_home {
        ensure_codex_home(home).await.map_err(|e| {
            format!(
                "Could not create the Codex home directory {}: {e}.",
                home.display()
            )
        })?;
        cmd.env("CODEX_HOME", home);
    }
    if let Some(key) = &spec.env.api_key {
        cmd.env("CODEX_API_KEY", key.expose());
    }
    for (k, v) in &spec.env.set {
        cmd.env(k, v);
    }
    if let Some(dir) = codex_path_dir(&spec.binary).await {
        // The npm package ships rg there and the SDK puts it first on PATH.
        let current = child_path(spec);
        let parts = std::iter::once(dir.clone()).chain(
            current
                .as_deref()
                .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        match std::env::join_paths(parts) {
            Ok(p) => {
                cmd.env("PATH", p);
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "not adding codex-path to PATH")
            }
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Only a last resort if everything else is bypassed; it reaches the
        // direct child only.
        .kill_on_drop(true);
    #[cfg(unix)]
    {
        // Own group, so one killpg reaches codex and the commands it starts.
        cmd.process_group(0);
    }
    #[cfg(target_os = "linux")]
    set_parent_death_signal(&mut cmd);
    Ok(cmd)
}

/// Makes the kernel SIGKILL codex when the worker dies, even by SIGKILL.
///
/// Caveat: PR_SET_PDEATHSIG fires when the *thread* that forked the child
/// exits, not the process. tokio spawns from the runtime thread polling this
/// future; runtime worker threads live as long as the runtime, so this holds
/// for the worker, but a run driven from a short-lived thread (or a runtime
/// shut down while the process goes on) kills its codex when that thread ends.
/// It also reaches codex only: commands codex `setsid()`s survive a worker
/// SIGKILL, which `process::kill_leftover` can only partly repair.
#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The worker may have died before prctl took effect.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// PATH as the child will see it before the codex-path prefix.
fn child_path(spec: &RunSpec) -> Option<OsString> {
    if let Some((_, v)) = spec.env.set.iter().rev().find(|(k, _)| k == "PATH") {
        return Some(v.into());
    }
    if spec.env.remove.iter().any(|k| k == "PATH") {
        return None;
    }
    std::env::var_os("PATH")
}

/// `<vendor>/<triple>/codex-path` for a binary at `<vendor>/<triple>/bin/codex`.
async fn codex_path_dir(binary: &Path) -> Option<PathBuf> {
    let bin = binary.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let dir = bin.parent()?.join("codex-path");
    tokio::fs::metadata(&dir)
        .await
        .ok()
        .filter(|m| m.is_dir())
        .map(|_| dir)
}

async fn ensure_codex_home(home: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut b = tokio::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(home).await?;
        // It holds auth and history: tighten a directory someone created
        // more open. Not fatal if we cannot (not ours).
        let meta = tokio::fs::metadata(home).await?;
        if meta.permissions().mode() & 0o077 != 0
            && let Err(e) =
                tokio::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).await
        {
            tracing::warn!(dir = %home.display(), error = %e, "could not make CODEX_HOME private");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::fs::create_dir_all(home).await
    }
}

async fn spawn_with_retry(cmd: &mut Command) -> io::Result<Child> {
    // ETXTBSY: another thread of this process forked while the binary was
    // open for writing (a just-installed codex, test fakes). It clears as
    // soon as that fork execs.
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if is_text_busy(&e) && tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

fn is_text_busy(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ETXTBSY)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

fn spawn_error_message(binary: &Path, e: &io::Error) -> String {
    let b = binary.display();
    match e.kind() {
        io::ErrorKind::NotFound => format!(
            "The codex binary `{b}` was not found; set profiles.<name>.codex.binary in config.toml or install @openai/codex."
        ),
        io::ErrorKind::PermissionDenied => format!(
            "The codex binary `{b}` cannot be executed (permission denied); set profiles.<name>.codex.binary in config.toml to an executable codex or install @openai/codex."
        ),
        _ => format!("Could not start the codex binary `{b}`: {e}."),
    }
}

async fn write_prompt(mut stdin: ChildStdin, prompt: String, run_id: String) {
    if let Err(e) = stdin.write_all(prompt.as_bytes()).await {
        // codex exited (or was stopped) before reading it all; the exit
        // status tells the real story.
        tracing::debug!(run_id, error = %e, "writing the prompt to codex stdin failed");
        return;
    }
    if let Err(e) = stdin.shutdown().await {
        tracing::debug!(run_id, error = %e, "closing codex stdin failed");
    }
    // Dropping `stdin` closes the pipe: codex reads until EOF.
}

// ---------------------------------------------------------------------------
// Line reading

enum Line {
    Text(Vec<u8>),
    /// A line longer than the limit; only its length is kept.
    TooLong(usize),
}

/// Splits a byte stream into lines without ever buffering more than `max`
/// bytes of one line. Cancel-safe: all state lives in `self` and is only
/// changed after the single await point.
struct BoundedLines<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    max: usize,
    /// Bytes of the current line beyond what we kept (0 = not overlong).
    overflow: usize,
    done: bool,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    fn new(reader: R, max: usize) -> Self {
        BoundedLines {
            reader: BufReader::with_capacity(64 << 10, reader),
            buf: Vec::new(),
            max,
            overflow: 0,
            done: false,
        }
    }

    fn done(&self) -> bool {
        self.done
    }

    fn give_up(&mut self) {
        self.done = true;
        self.buf = Vec::new();
    }

    fn take_line(&mut self) -> Line {
        let line = if self.overflow > 0 {
            Line::TooLong(self.buf.len() + self.overflow)
        } else {
            let mut v = std::mem::take(&mut self.buf);
            if v.last() == Some(&b'\r') {
                v.pop();
            }
            Line::Text(v)
        };
        self.buf.clear();
        self.overflow = 0;
        line
    }

    fn append(&mut self, chunk: &[u8]) {
        if self.overflow > 0 || self.buf.len() + chunk.len() > self.max {
            // Keep counting, stop keeping.
            self.overflow += self.buf.len() + chunk.len();
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next line, `Ok(None)` at end of stream (after which `done()`).
    async fn next(&mut self) -> io::Result<Option<Line>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let avail = match self.reader.fill_buf().await {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            };
            if avail.is_empty() {
                self.done = true;
                if self.buf.is_empty() && self.overflow == 0 {
                    return Ok(None);
                }
                return Ok(Some(self.take_line()));
            }
            match avail.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let chunk = avail[..i].to_vec();
                    self.reader.consume(i + 1);
                    self.append(&chunk);
                    return Ok(Some(self.take_line()));
                }
                None => {
                    let n = avail.len();
                    let chunk = avail.to_vec();
                    self.reader.consume(n);
                    self.append(&chunk);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// stderr

#[derive(Debug, Default)]
struct StderrState {
    tail: VecDeque<String>,
    tail_bytes: usize,
    /// Last `Error: …` line (codex's fatal error from main).
    last_error: Option<String>,
    last_line: Option<String>,
    no_rollout: bool,
    in_backtrace: bool,
}

impl StderrState {
    fn push(&mut self, raw: &str) {
        let cleaned = strip_ansi(raw);
        let line = cleaned.trim_end();
        if line.trim().is_empty() {
            return;
        }
        if line.contains("no rollout found for thread id") {
            self.no_rollout = true;
        }
        // anyhow backtraces of a release build are dozens of "N: <unknown>"
        // frames that would push the actual error out of the tail.
        if line.trim() == "Stack backtrace:" {
            self.in_backtrace = true;
            return;
        }
        if self.in_backtrace {
            if is_backtrace_frame(line) {
                return;
            }
            self.in_backtrace = false;
        }
        let kept = truncate_chars(line, TAIL_LINE_CHARS);
        self.tail_bytes += kept.len();
        self.tail.push_back(kept.clone());
        while self.tail.len() > TAIL_LINES || (self.tail_bytes > TAIL_BYTES && self.tail.len() > 1)
        {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len();
            }
        }
        if is_noise(line) {
            return;
        }
        if let Some(rest) = line.strip_prefix("Error:") {
            self.last_error = Some(truncate_chars(rest.trim(), TAIL_LINE_CHARS));
        } else {
            self.last_line = Some(kept);
        }
    }

    /// The line that best explains a failure.
    fn meaningful(&self) -> Option<&str> {
        self.last_error.as_deref().or(self.last_line.as_deref())
    }

    fn tail_string(&self) -> String {
        self.tail
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn is_backtrace_frame(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with("at ") {
        return true;
    }
    match t.split_once(':') {
        Some((n, _)) => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// stderr lines codex prints on every run that explain nothing.
fn is_noise(line: &str) -> bool {
    line.starts_with("Reading prompt from stdin")
        || line.starts_with("Reading additional input from stdin")
        || line.starts_with("WARNING: proceeding, even though we could not create PATH aliases")
}

fn strip_ansi(s: &str) -> String {
    if !s.contains('\u{1b}') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters until a final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    state: Arc<Mutex<StderrState>>,
    run_id: String,
) {
    let mut lines = BoundedLines::new(stderr, STDERR_MAX_LINE);
    loop {
        match lines.next().await {
            Ok(Some(Line::Text(bytes))) => {
                let text = String::from_utf8_lossy(&bytes);
                tracing::debug!(run_id, line = %text, "codex stderr");
                state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(&text);
            }
            Ok(Some(Line::TooLong(n))) => {
                tracing::debug!(run_id, bytes = n, "dropped an overlong codex stderr line");
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(run_id, error = %e, "reading codex stderr failed");
                return;
            }
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// ---------------------------------------------------------------------------
// JSONL translation

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    thread_id: Option<String>,
    item: Option<Value>,
    /// Loose, so an odd usage field cannot cost us the turn's completion.
    usage: Option<Value>,
    error: Option<Value>,
    message: Option<Value>,
}

/// One flat shape for every item type; fields a type lacks stay `None`.
/// Loose types (`Value`) where codex versions have differed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawItem {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    message: Option<String>,
    command: Option<String>,
    aggregated_output: Option<String>,
    exit_code: Option<i64>,
    status: Option<String>,
    changes: Option<Vec<RawChange>>,
    server: Option<String>,
    tool: Option<String>,
    result: Option<Value>,
    error: Option<Value>,
    query: Option<String>,
    items: Option<Vec<RawTodo>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawChange {
    path: Option<String>,
    kind: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTodo {
    text: Option<String>,
    completed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Started,
    Updated,
    Completed,
}

/// A message from `{"message": ".."}`, a bare string, or the object itself.
fn message_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("message").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn snippet(bytes: &[u8]) -> String {
    truncate_chars(&String::from_utf8_lossy(bytes), LOG_SNIPPET_CHARS)
}

/// Turns `codex exec --json` lines into runner events and keeps what the
/// result needs. Never fails: what it cannot use it logs and skips.
#[derive(Debug)]
struct Translator {
    cwd: PathBuf,
    thread_id: Option<String>,
    final_text: Option<String>,
    usage: Option<TokenUsage>,
    turn_completed: bool,
    turn_failed: Option<String>,
    /// Tool items that already got a ToolStarted.
    started: HashSet<String>,
}

impl Translator {
    fn new(cwd: PathBuf) -> Self {
        Translator {
            cwd,
            thread_id: None,
            final_text: None,
            usage: None,
            turn_completed: false,
            turn_failed: None,
            started: HashSet::new(),
        }
    }

    fn line(&mut self, line: &[u8]) -> Vec<RunnerEvent> {
        let mut out = Vec::new();
        if line.iter().all(u8::is_ascii_whitespace) {
            return out;
        }
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                tracing::warn!(line = %snippet(line), "codex printed a line that is not JSON; skipping it");
                return out;
            }
        };
        let ev: RawEvent = match serde_json::from_value(value) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(line = %snippet(line), error = %e, "codex printed an event of unexpected shape; skipping it");
                return out;
            }
        };
        let kind = ev.kind.as_deref().unwrap_or("");
        match kind {
            "thread.started" => {
                if let Some(id) = ev.thread_id.filter(|t| !t.is_empty()) {
                    self.thread_id = Some(id.clone());
                    out.push(RunnerEvent::ThreadStarted { thread_id: id });
                }
            }
            "turn.started" => out.push(RunnerEvent::TurnStarted),
            "item.started" | "item.updated" | "item.completed" => {
                let phase = match kind {
                    "item.started" => Phase::Started,
                    "item.updated" => Phase::Updated,
                    _ => Phase::Completed,
                };
                match ev.item.map(serde_json::from_value::<RawItem>) {
                    Some(Ok(item)) => self.item(phase, item, &mut out),
                    Some(Err(e)) => {
                        tracing::warn!(line = %snippet(line), error = %e, "codex printed an item of unexpected shape; skipping it");
                    }
                    None => tracing::debug!(event = kind, "codex item event without an item"),
                }
            }
            "turn.completed" => {
                self.turn_completed = true;
                if let Some(u) = ev.usage.filter(Value::is_object) {
                    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                    let usage = TokenUsage {
                        input_tokens: n("input_tokens"),
                        cached_input_tokens: n("cached_input_tokens"),
                        output_tokens: n("output_tokens"),
                        reasoning_output_tokens: n("reasoning_output_tokens"),
                    };
                    self.usage = Some(usage);
                    out.push(RunnerEvent::Usage(usage));
                }
            }
            "turn.failed" => {
                let message = ev
                    .error
                    .as_ref()
                    .and_then(message_of)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "codex reported that the turn failed".into());
                self.turn_failed = Some(message);
            }
            "error" => {
                if let Some(message) = ev.message.as_ref().and_then(message_of) {
                    out.push(RunnerEvent::Warning { message });
                }
            }
            other => tracing::debug!(event = other, "skipping unknown codex event type"),
        }
        out
    }

    fn item(&mut self, phase: Phase, item: RawItem, out: &mut Vec<RunnerEvent>) {
        let item_id = item.id.clone().unwrap_or_default();
        match item.kind.as_deref().unwrap_or("") {
            "agent_message" => {
                if phase == Phase::Completed {
                    let text = item.text.unwrap_or_default();
                    out.push(RunnerEvent::TextDelta {
                        item_id: item_id.clone(),
                        delta: text.clone(),
                    });
                    out.push(RunnerEvent::AgentMessage {
                        item_id,
                        text: text.clone(),
                    });
                    self.final_text = Some(text);
                }
            }
            "reasoning" => {
                if phase == Phase::Completed
                    && let Some(text) = item.text.filter(|t| !t.is_empty())
                {
                    out.push(RunnerEvent::ReasoningDelta {
                        item_id,
                        delta: text,
                    });
                }
            }
            "error" => {
                if phase == Phase::Completed
                    && let Some(message) = item.message.or(item.text)
                {
                    out.push(RunnerEvent::Warning { message });
                }
            }
            "command_execution" | "file_change" | "mcp_tool_call" | "web_search" | "todo_list" => {
                self.tool(phase, item_id, item, out)
            }
            other => tracing::debug!(item_type = other, "skipping unknown codex item type"),
        }
    }

    fn tool(&mut self, phase: Phase, item_id: String, item: RawItem, out: &mut Vec<RunnerEvent>) {
        let changes: Vec<FileChange> = item
            .changes
            .iter()
            .flatten()
            .map(|c| FileChange {
                path: c.path.clone().unwrap_or_default(),
                kind: c
                    .kind
                    .as_ref()
                    .and_then(|k| match k {
                        Value::String(s) => Some(s.clone()),
                        Value::Object(m) => {
                            m.get("type").and_then(Value::as_str).map(str::to_string)
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| "update".into()),
            })
            .collect();
        let (kind, title) = match item.kind.as_deref().unwrap_or("") {
            "command_execution" => (ToolKind::Command, item.command.clone().unwrap_or_default()),
            "file_change" => (ToolKind::FileChange, self.changes_title(&changes)),
            "mcp_tool_call" => (
                ToolKind::Mcp,
                format!(
                    "{}.{}",
                    item.server.as_deref().unwrap_or("?"),
                    item.tool.as_deref().unwrap_or("?")
                ),
            ),
            "web_search" => (
                ToolKind::WebSearch,
                item.query
                    .clone()
                    .filter(|q| !q.is_empty())
                    .unwrap_or_else(|| "web search".into()),
            ),
            _ => (
                ToolKind::Todo,
                todo_title(item.items.as_deref().unwrap_or_default()),
            ),
        };
        let first_sight = self.started.insert(item_id.clone());
        if first_sight {
            // A completed item with no earlier start still opens first, so
            // consumers always see start before end.
            out.push(RunnerEvent::ToolStarted {
                item_id: item_id.clone(),
                kind,
                title: title.clone(),
                changes: changes.clone(),
            });
        }
        if phase != Phase::Completed {
            return;
        }
        let error = item.error.as_ref().and_then(message_of);
        let exit_code = item.exit_code.and_then(|c| i32::try_from(c).ok());
        let output = match kind {
            ToolKind::Command => item.aggregated_output.unwrap_or_default(),
            ToolKind::Mcp => item.result.as_ref().map(mcp_output).unwrap_or_default(),
            ToolKind::Todo => todo_output(item.items.as_deref().unwrap_or_default()),
            ToolKind::FileChange | ToolKind::WebSearch => String::new(),
        };
        out.push(RunnerEvent::ToolCompleted {
            item_id,
            kind,
            title,
            status: tool_status(item.status.as_deref(), exit_code, error.is_some()),
            exit_code,
            output,
            changes,
            error,
        });
    }

    fn changes_title(&self, changes: &[FileChange]) -> String {
        const SHOWN: usize = 3;
        if changes.is_empty() {
            return "file changes".into();
        }
        let mut t = changes
            .iter()
            .take(SHOWN)
            .map(|c| format!("{} {}", c.kind, self.relative(&c.path)))
            .collect::<Vec<_>>()
            .join(", ");
        if changes.len() > SHOWN {
            t.push_str(&format!(" and {} more", changes.len() - SHOWN));
        }
        t
    }

    /// Paths under the workspace read better without it.
    fn relative(&self, path: &str) -> String {
        match Path::new(path).strip_prefix(&self.cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.to_string(),
        }
    }
}

fn tool_status(status: Option<&str>, exit_code: Option<i32>, has_error: bool) -> ToolStatus {
    match status {
        Some("completed") => ToolStatus::Ok,
        Some("failed") => ToolStatus::Failed,
        Some("declined") => ToolStatus::Declined,
        _ if has_error || exit_code.is_some_and(|c| c != 0) => ToolStatus::Failed,
        _ => ToolStatus::Ok,
    }
}

fn todo_title(items: &[RawTodo]) -> String {
    let done = items.iter().filter(|t| t.completed).count();
    format!("todo list: {done}/{} done", items.len())
}

fn todo_output(items: &[RawTodo]) -> String {
    items
        .iter()
        .map(|t| {
            format!(
                "[{}] {}",
                if t.completed { "x" } else { " " },
                t.text.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text blocks of an MCP result, or the result as JSON if it has none.
fn mcp_output(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !texts.is_empty() {
        return texts.join("\n");
    }
    if result.is_null() {
        return String::new();
    }
    result.to_string()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use fcx_config::Secret;
    use tokio::sync::oneshot;

    use super::*;
    use crate::runner::ChildEnv;

    const NEW_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-3f3c-7380-b9c2-cfb0d5de89e4"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"hi from mock (turn 1)"}}
{"type":"turn.completed","usage":{"input_tokens":11,"cached_input_tokens":3,"cache_write_input_tokens":0,"output_tokens":7,"reasoning_output_tokens":2}}
"#;

    const COMMAND_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-4068-70f2-9551-650ddf186346"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'echo hello-from-codex && ls'","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'echo hello-from-codex && ls'","aggregated_output":"pyenv: cannot rehash: ~/.pyenv/shims isn't writable\nhello-from-codex\na.txt\nesc.txt\nhello.txt\nred.png\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Command done. Output: Chunk ID: cde089\nWall time: 0.0330 seconds\nProcess exited with code 0\nOriginal token count: 27\nOutput:\npyenv: cannot rehash: ~/.pyenv/shims isn't writable\nhello-from-codex\na.txt\nesc.txt\nhello.txt\nred.png\n"}}
{"type":"turn.completed","usage":{"input_tokens":22,"cached_input_tokens":6,"cache_write_input_tokens":0,"output_tokens":14,"reasoning_output_tokens":4}}
"#;

    const RESUME_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-4068-70f2-9551-650ddf186346"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"hi from mock (turn 4)"}}
{"type":"turn.completed","usage":{"input_tokens":33,"cached_input_tokens":9,"cache_write_input_tokens":0,"output_tokens":21,"reasoning_output_tokens":6}}
"#;

    const PATCH_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-4381-7432-ba4f-01cd855ee23c"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_0","type":"file_change","changes":[{"path":"/w/hello.txt","kind":"add"}],"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"/w/hello.txt","kind":"add"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Command done. Output: Exit code: 0\nWall time: 0.1 seconds\nOutput:\nSuccess. Updated the following files:\nA hello.txt\n"}}
{"type":"turn.completed","usage":{"input_tokens":22,"cached_input_tokens":6,"cache_write_input_tokens":0,"output_tokens":14,"reasoning_output_tokens":4}}
"#;

    const FAILED_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-44be-7813-96fc-18cff26cfeb1"}
{"type":"turn.started"}
{"type":"error","message":"stream disconnected before completion: mock says the model failed"}
{"type":"turn.failed","error":{"message":"stream disconnected before completion: mock says the model failed"}}
"#;

    const NO_ROLLOUT_STDERR: &str = "Error: thread/resume: thread/resume failed: no rollout found for thread id 01a215b8-0000-7000-8000-000000000000 (code -32600)\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>\n   2: <unknown>\n   3: <unknown>\n   4: <unknown>\n   5: <unknown>\n   6: <unknown>\n   7: <unknown>\n   8: <unknown>\n   9: <unknown>\n  10: <unknown>\n  11: <unknown>\n  12: <unknown>\n  13: <unknown>\n  14: <unknown>\n  15: <unknown>\n  16: <unknown>\n  17: <unknown>\n  18: <unknown>\n  19: <unknown>\n  20: <unknown>\n  21: <unknown>\n";

    fn translate(cwd: &str, jsonl: &str) -> (Translator, Vec<RunnerEvent>) {
        let mut tr = Translator::new(PathBuf::from(cwd));
        let mut out = Vec::new();
        for line in jsonl.lines() {
            out.extend(tr.line(line.as_bytes()));
        }
        (tr, out)
    }

    fn usage(i: u64, c: u64, o: u64, r: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: i,
            cached_input_tokens: c,
            output_tokens: o,
            reasoning_output_tokens: r,
        }
    }

    fn message(id: &str, text: &str) -> [RunnerEvent; 2] {
        [
            RunnerEvent::TextDelta {
                item_id: id.into(),
                delta: text.into(),
            },
            RunnerEvent::AgentMessage {
                item_id: id.into(),
                text: text.into(),
            },
        ]
    }

    fn new_turn_events() -> Vec<RunnerEvent> {
        let mut v = vec![
            RunnerEvent::ThreadStarted {
                thread_id: "01a21596-3f3c-7380-b9c2-cfb0d5de89e4".into(),
            },
            RunnerEvent::TurnStarted,
        ];
        v.extend(message("item_0", "hi from mock (turn 1)"));
        v.push(RunnerEvent::Usage(usage(11, 3, 7, 2)));
        v
    }

    #[test]
    fn translates_new_turn() {
        let (tr, events) = translate("/w", NEW_TURN);
        assert_eq!(events, new_turn_events());
        assert!(tr.turn_completed);
        assert_eq!(tr.final_text.as_deref(), Some("hi from mock (turn 1)"));
        assert_eq!(
            tr.thread_id.as_deref(),
            Some("01a21596-3f3c-7380-b9c2-cfb0d5de89e4")
        );
    }

    #[test]
    fn translates_command_turn() {
        let (tr, events) = translate("/w", COMMAND_TURN);
        let cmd = "/bin/bash -lc 'echo hello-from-codex && ls'";
        let output = "pyenv: cannot rehash: ~/.pyenv/shims isn't writable\nhello-from-codex\na.txt\nesc.txt\nhello.txt\nred.png\n";
        let answer = "Command done. Output: Chunk ID: cde089\nWall time: 0.0330 seconds\nProcess exited with code 0\nOriginal token count: 27\nOutput:\npyenv: cannot rehash: ~/.pyenv/shims isn't writable\nhello-from-codex\na.txt\nesc.txt\nhello.txt\nred.png\n";
        let mut want = vec![
            RunnerEvent::ThreadStarted {
                thread_id: "01a21596-4068-70f2-9551-650ddf186346".into(),
            },
            RunnerEvent::TurnStarted,
            RunnerEvent::ToolStarted {
                item_id: "item_0".into(),
                kind: ToolKind::Command,
                title: cmd.into(),
                changes: vec![],
            },
            RunnerEvent::ToolCompleted {
                item_id: "item_0".into(),
                kind: ToolKind::Command,
                title: cmd.into(),
                status: ToolStatus::Ok,
                exit_code: Some(0),
                output: output.into(),
                changes: vec![],
                error: None,
            },
        ];
        want.extend(message("item_1", answer));
        want.push(RunnerEvent::Usage(usage(22, 6, 14, 4)));
        assert_eq!(events, want);
        assert_eq!(tr.final_text.as_deref(), Some(answer));
    }

    #[test]
    fn translates_resume_with_cumulative_usage() {
        let (tr, events) = translate("/w", RESUME_TURN);
        let mut want = vec![
            RunnerEvent::ThreadStarted {
                thread_id: "01a21596-4068-70f2-9551-650ddf186346".into(),
            },
            RunnerEvent::TurnStarted,
        ];
        want.extend(message("item_0", "hi from mock (turn 4)"));
        want.push(RunnerEvent::Usage(usage(33, 9, 21, 6)));
        assert_eq!(events, want);
        // Passed on as given (thread-cumulative); the orchestrator subtracts.
        assert_eq!(tr.usage, Some(usage(33, 9, 21, 6)));
    }

    #[test]
    fn translates_patch_turn() {
        let (_, events) = translate("/w", PATCH_TURN);
        let changes = vec![FileChange {
            path: "/w/hello.txt".into(),
            kind: "add".into(),
        }];
        let answer = "Command done. Output: Exit code: 0\nWall time: 0.1 seconds\nOutput:\nSuccess. Updated the following files:\nA hello.txt\n";
        let mut want = vec![
            RunnerEvent::ThreadStarted {
                thread_id: "01a21596-4381-7432-ba4f-01cd855ee23c".into(),
            },
            RunnerEvent::TurnStarted,
            RunnerEvent::ToolStarted {
                item_id: "item_0".into(),
                kind: ToolKind::FileChange,
                title: "add hello.txt".into(),
                changes: changes.clone(),
            },
            RunnerEvent::ToolCompleted {
                item_id: "item_0".into(),
                kind: ToolKind::FileChange,
                title: "add hello.txt".into(),
                status: ToolStatus::Ok,
                exit_code: None,
                output: String::new(),
                changes,
                error: None,
            },
        ];
        want.extend(message("item_1", answer));
        want.push(RunnerEvent::Usage(usage(22, 6, 14, 4)));
        assert_eq!(events, want);
    }

    #[test]
    fn translates_failed_turn() {
        let (tr, events) = translate("/w", FAILED_TURN);
        let msg = "stream disconnected before completion: mock says the model failed";
        assert_eq!(
            events,
            vec![
                RunnerEvent::ThreadStarted {
                    thread_id: "01a21596-44be-7813-96fc-18cff26cfeb1".into(),
                },
                RunnerEvent::TurnStarted,
                RunnerEvent::Warning {
                    message: msg.into()
                },
            ]
        );
        assert_eq!(tr.turn_failed.as_deref(), Some(msg));
        assert!(!tr.turn_completed);
    }

    #[test]
    fn translates_other_items() {
        let lines = r#"{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Thinking** about the mock"}}
{"type":"item.completed","item":{"id":"item_1","type":"error","message":"Model metadata for `mock-model` not found."}}
{"type":"item.completed","item":{"id":"item_2","type":"command_execution","command":"false","aggregated_output":"","exit_code":3,"status":"failed"}}
{"type":"item.started","item":{"id":"item_3","type":"mcp_tool_call","server":"docs","tool":"lookup","arguments":{},"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_3","type":"mcp_tool_call","server":"docs","tool":"lookup","arguments":{},"result":null,"error":{"message":"server gone"},"status":"failed"}}
{"type":"item.completed","item":{"id":"item_4","type":"web_search","query":"rust tokio select"}}
{"type":"item.started","item":{"id":"item_5","type":"todo_list","items":[{"text":"a","completed":false},{"text":"b","completed":false}]}}
{"type":"item.updated","item":{"id":"item_5","type":"todo_list","items":[{"text":"a","completed":true},{"text":"b","completed":false}]}}
{"type":"item.completed","item":{"id":"item_5","type":"todo_list","items":[{"text":"a","completed":true},{"text":"b","completed":true}]}}
{"type":"item.completed","item":{"id":"item_6","type":"file_change","changes":[{"path":"/w/a","kind":"update"},{"path":"/w/b","kind":"add"},{"path":"/elsewhere/c","kind":"delete"},{"path":"/w/d","kind":"add"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_7","type":"mcp_tool_call","server":"s","tool":"t","result":{"content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},"status":"completed"}}
{"type":"item.completed","item":{"id":"item_8","type":"command_execution","command":"rm -rf /","aggregated_output":"","exit_code":null,"status":"declined"}}"#;
        let (_, events) = translate("/w", lines);
        let kinds: Vec<String> = events
            .iter()
            .map(|e| match e {
                RunnerEvent::ToolStarted { item_id, title, .. } => {
                    format!("start {item_id} {title}")
                }
                RunnerEvent::ToolCompleted {
                    item_id,
                    title,
                    status,
                    error,
                    output,
                    ..
                } => format!("done {item_id} {title} {status:?} {error:?} {output:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                r#"ReasoningDelta { item_id: "item_0", delta: "**Thinking** about the mock" }"#,
                r#"Warning { message: "Model metadata for `mock-model` not found." }"#,
                "start item_2 false",
                r#"done item_2 false Failed None """#,
                "start item_3 docs.lookup",
                r#"done item_3 docs.lookup Failed Some("server gone") """#,
                "start item_4 rust tokio select",
                r#"done item_4 rust tokio select Ok None """#,
                "start item_5 todo list: 0/2 done",
                r#"done item_5 todo list: 2/2 done Ok None "[x] a\n[x] b""#,
                "start item_6 update a, add b, delete /elsewhere/c and 1 more",
                r#"done item_6 update a, add b, delete /elsewhere/c and 1 more Ok None """#,
                "start item_7 s.t",
                r#"done item_7 s.t Ok None "one\ntwo""#,
                "start item_8 rm -rf /",
                r#"done item_8 rm -rf / Declined None """#,
            ]
        );
    }

    #[test]
    fn skips_garbage() {
        let lines = "not json at all\n\n   \n[1,2]\n\"str\"\n{\"type\":\"mystery.event\"}\n{\"type\":\"item.completed\",\"item\":{\"id\":\"x\",\"type\":\"hologram\"}}\n{\"type\":\"item.completed\",\"item\":\"not an object\"}\n{\"type\":\"thread.started\",\"thread_id\":42}\n{\"no_type\":true}\n\u{fffd}\u{0}";
        let (tr, events) = translate("/w", lines);
        assert!(events.is_empty(), "{events:?}");
        assert!(tr.thread_id.is_none());

        // A malformed usage still completes the turn.
        let (tr, events) = translate(
            "/w",
            "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":-1,\"output_tokens\":5}}",
        );
        assert!(tr.turn_completed);
        assert_eq!(events, vec![RunnerEvent::Usage(usage(0, 0, 5, 0))]);
    }

    #[test]
    fn stderr_tail_and_meaningful_line() {
        let mut st = StderrState::default();
        for line in NO_ROLLOUT_STDERR.lines() {
            st.push(line);
        }
        assert!(st.no_rollout);
        assert_eq!(
            st.meaningful(),
            Some(
                "thread/resume: thread/resume failed: no rollout found for thread id 01a215b8-0000-7000-8000-000000000000 (code -32600)"
            )
        );
        assert!(!st.tail_string().contains("<unknown>"));

        let mut st = StderrState::default();
        st.push("Reading prompt from stdin...");
        st.push(
            "\u{1b}[2m2026-11-26T01:58:06Z\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m codex_core: it broke",
        );
        assert_eq!(
            st.meaningful(),
            Some("2026-11-26T01:58:06Z ERROR codex_core: it broke")
        );
        for i in 0..100 {
            st.push(&format!("line {i} {}", "x".repeat(500)));
        }
        assert!(st.tail.len() <= TAIL_LINES);
        assert!(st.tail_string().len() <= TAIL_BYTES + TAIL_LINES);
        assert!(st.tail_string().ends_with(&"x".repeat(500)));
    }

    #[tokio::test]
    async fn bounded_lines_split_and_drop_overlong() {
        let data: &[u8] = b"short\r\nthis line is far too long\nok\nno-newline";
        let mut lines = BoundedLines::new(data, 10);
        let mut got = Vec::new();
        while let Some(l) = lines.next().await.expect("read") {
            got.push(match l {
                Line::Text(t) => String::from_utf8(t).expect("utf8"),
                Line::TooLong(n) => format!("<{n}>"),
            });
        }
        assert_eq!(got, vec!["short", "<25>", "ok", "no-newline"]);
        assert!(lines.done());
    }

    #[test]
    fn argv_for_new_thread() {
        let spec = spec_for(PathBuf::from("codex"), Path::new("/w"));
        let args: Vec<String> = build_args(&spec)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "exec",
                "--json",
                "--sandbox",
                "read-only",
                "--cd",
                "/w",
                "--skip-git-repo-check",
                "-"
            ]
        );
    }

    // --- end to end against fake binaries ---------------------------------

    /// A fake codex: dumps argv, stdin and env next to itself, then prints
    /// `stdout`/`stderr` files from its directory and exits with `code`.
    const FAKE: &str = r#"#!/bin/sh
d=$(dirname "$0")
for a in "$@"; do printf '%s\n' "$a"; done > "$d/argv"
cat > "$d/stdin"
env > "$d/env"
if [ -f "$d/stdout" ]; then cat "$d/stdout"; fi
if [ -f "$d/stderr" ]; then cat "$d/stderr" >&2; fi
if [ -f "$d/code" ]; then exit "$(cat "$d/code")"; fi
exit 0
"#;

    fn write_exe(path: &Path, body: &str) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, body).expect("write fake");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn fake(dir: &Path, stdout: &str, stderr: &str, code: i32) -> PathBuf {
        let bin = dir.join("codex");
        write_exe(&bin, FAKE);
        std::fs::write(dir.join("stdout"), stdout).expect("write stdout");
        std::fs::write(dir.join("stderr"), stderr).expect("write stderr");
        std::fs::write(dir.join("code"), code.to_string()).expect("write code");
        bin
    }

    fn spec_for(binary: PathBuf, cwd: &Path) -> RunSpec {
        RunSpec {
            run_id: "run-test".into(),
            prompt: "say hi".into(),
            cwd: cwd.to_path_buf(),
            sandbox: Sandbox::ReadOnly,
            network: false,
            model: None,
            resume_thread: None,
            images: vec![],
            overrides: vec![],
            binary,
            env: ChildEnv::default(),
            stop_grace: Duration::from_millis(200),
        }
    }

    struct Harness {
        cancel: CancellationToken,
        control: mpsc::Sender<RunControl>,
    }

    /// Runs one turn, collecting every event; `on_event` may cancel or send
    /// controls.
    async fn run_with(
        runner: &ExecRunner,
        spec: RunSpec,
        mut on_event: impl FnMut(&RunnerEvent, &Harness),
    ) -> (RunResult, Vec<RunnerEvent>) {
        let (tx, mut rx) = mpsc::channel(4);
        let (ctl_tx, ctl_rx) = mpsc::channel(4);
        let h = Harness {
            cancel: CancellationToken::new(),
            control: ctl_tx,
        };
        let fut = runner.run(
            spec,
            RunIo {
                events: tx,
                control: ctl_rx,
                cancel: h.cancel.clone(),
            },
        );
        let collect = async {
            let mut v = Vec::new();
            while let Some(e) = rx.recv().await {
                on_event(&e, &h);
                v.push(e);
            }
            v
        };
        tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(fut, collect)
        })
        .await
        .expect("run did not finish within 30 s")
    }

    async fn run(spec: RunSpec) -> (RunResult, Vec<RunnerEvent>) {
        run_with(&ExecRunner::new(), spec, |_, _| {}).await
    }

    fn without_spawned(events: Vec<RunnerEvent>) -> Vec<RunnerEvent> {
        assert!(
            matches!(events.first(), Some(RunnerEvent::Spawned { pid }) if *pid > 0),
            "first event must be Spawned: {events:?}"
        );
        events.into_iter().skip(1).collect()
    }

    #[tokio::test]
    async fn new_turn_end_to_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = fake(dir.path(), NEW_TURN, "Reading prompt from stdin...\n", 0);
        let (res, events) = run(spec_for(bin, dir.path())).await;
        assert_eq!(without_spawned(events), new_turn_events());
        assert_eq!(res.outcome, Outcome::Completed);
        assert_eq!(res.final_text.as_deref(), Some("hi from mock (turn 1)"));
        assert_eq!(
            res.thread_id.as_deref(),
            Some("01a21596-3f3c-7380-b9c2-cfb0d5de89e4")
        );
        assert_eq!(res.usage, Some(usage(11, 3, 7, 2)));
        assert_eq!(res.exit_code, Some(0));
        assert_eq!(res.stderr_tail, "Reading prompt from stdin...");
    }

    #[tokio::test]
    async fn argv_stdin_and_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The npm layout: <vendor>/<triple>/bin/codex next to codex-path/.
        let triple = dir.path().join("vendor/x86_64-unknown-linux-musl");
        let bin = triple.join("bin/codex");
        write_exe(&bin, FAKE);
        std::fs::create_dir_all(triple.join("codex-path")).expect("mkdir codex-path");
        std::fs::write(triple.join("bin/stdout"), RESUME_TURN).expect("write");
        let work = dir.path().join("work dir");
        std::fs::create_dir_all(&work).expect("mkdir");
        let home = dir.path().join("state/codex-home");

        let prompt = "line one\nline two with ünïcode and \"quotes\" and $HOME\n- not a flag\n";
        let mut spec = spec_for(bin.clone(), &work);
        spec.prompt = prompt.into();
        spec.sandbox = Sandbox::WorkspaceWrite;
        spec.network = true;
        spec.model = Some("gpt-5.5".into());
        spec.resume_thread = Some("01a21596-4068-70f2-9551-650ddf186346".into());
        spec.images = vec![dir.path().join("a b.png"), dir.path().join("c.png")];
        spec.overrides = vec![
            ("model_provider".into(), "\"mock\"".into()),
            ("model_providers.mock.stream_max_retries".into(), "0".into()),
        ];
        spec.env = ChildEnv {
            codex_home: Some(home.clone()),
            api_key: Some(Secret::new("sk-test-secret")),
            remove: vec!["HOME".into()],
            set: vec![("MOCK_API_KEY".into(), "sk-mock".into())],
        };

        let (res, _) = run(spec).await;
        assert_eq!(res.outcome, Outcome::Completed);

        let bin_dir = triple.join("bin");
        let argv = std::fs::read_to_string(bin_dir.join("argv")).expect("argv");
        let want = [
            "exec".to_string(),
            "--json".into(),
            "-c".into(),
            "model_provider=\"mock\"".into(),
            "-c".into(),
            "model_providers.mock.stream_max_retries=0".into(),
            "-c".into(),
            "sandbox_workspace_write.network_access=true".into(),
            "-m".into(),
            "gpt-5.5".into(),
            "--sandbox".into(),
            "workspace-write".into(),
            "--cd".into(),
            work.display().to_string(),
            "--skip-git-repo-check".into(),
            "resume".into(),
            "01a21596-4068-70f2-9551-650ddf186346".into(),
            format!("--image={}", dir.path().join("a b.png").display()),
            format!("--image={}", dir.path().join("c.png").display()),
            "-".into(),
        ];
        assert_eq!(argv.lines().collect::<Vec<_>>(), want);
        assert_eq!(
            std::fs::read_to_string(bin_dir.join("stdin")).expect("stdin"),
            prompt
        );

        let env = std::fs::read_to_string(bin_dir.join("env")).expect("env");
        let env: Vec<&str> = env.lines().collect();
        assert!(env.contains(&format!("CODEX_HOME={}", home.display()).as_str()));
        assert!(env.contains(&"CODEX_API_KEY=sk-test-secret"));
        assert!(env.contains(&"MOCK_API_KEY=sk-mock"));
        assert!(
            !env.iter().any(|l| l.starts_with("HOME=")),
            "HOME was not removed"
        );
        let path = env
            .iter()
            .find_map(|l| l.strip_prefix("PATH="))
            .expect("PATH inherited");
        assert!(
            path.starts_with(&format!("{}:", triple.join("codex-path").display())),
            "{path}"
        );
        let mode = std::fs::metadata(&home)
            .expect("codex home")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[tokio::test]
    async fn huge_prompt_does_not_deadlock() {
        // The fake floods stdout before it reads stdin: writing the prompt
        // inline before reading stdout would deadlock both pipes.
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("codex");
        write_exe(
            &bin,
            &format!(
                "#!/bin/sh\nyes '{{\"type\":\"noise\"}}' | head -n 50000\ncat > {d}/stdin\ncat {d}/stdout\n",
                d = dir.path().display()
            ),
        );
        std::fs::write(dir.path().join("stdout"), NEW_TURN).expect("write");
        let mut spec = spec_for(bin, dir.path());
        spec.prompt = "p".repeat(3 << 20);
        let (res, _) = run(spec).await;
        assert_eq!(res.outcome, Outcome::Completed);
        let got = std::fs::metadata(dir.path().join("stdin"))
            .expect("stdin")
            .len();
        assert_eq!(got, 3 << 20);
    }

    #[tokio::test]
    async fn garbage_and_overlong_lines_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = format!(
            "{{\"type\":\"error\",\"message\":\"{}\"}}\n",
            "x".repeat(5000)
        );
        let stdout = format!(
            "garbage before\n{{\"type\":\"mystery\"}}\n{long}{{\"type\":\"item.completed\",\"item\":{{\"id\":\"z\",\"type\":\"hologram\"}}}}\n{NEW_TURN}trailing garbage"
        );
        let bin = fake(dir.path(), &stdout, "", 0);
        let runner = ExecRunner {
            max_line: 1024,
            ..ExecRunner::new()
        };
        let (res, events) = run_with(&runner, spec_for(bin, dir.path()), |_, _| {}).await;
        assert_eq!(without_spawned(events), new_turn_events());
        assert_eq!(res.outcome, Outcome::Completed);
    }

    #[tokio::test]
    async fn failed_turn_end_to_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = fake(dir.path(), FAILED_TURN, "", 1);
        let (res, _) = run(spec_for(bin, dir.path())).await;
        assert_eq!(
            res.outcome,
            Outcome::Failed {
                message: "stream disconnected before completion: mock says the model failed".into()
            }
        );
        assert_eq!(res.exit_code, Some(1));
    }

    #[tokio::test]
    async fn nonzero_exit_names_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr = "Reading prompt from stdin...\nsome log line\nError: boom happened\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>\n";
        let bin = fake(dir.path(), "", stderr, 3);
        let (res, _) = run(spec_for(bin, dir.path())).await;
        assert_eq!(
            res.outcome,
            Outcome::Failed {
                message: "codex exited with code 3: boom happened".into()
            }
        );
        assert_eq!(res.exit_code, Some(3));
        assert!(res.stderr_tail.contains("Error: boom happened"));
        assert!(!res.stderr_tail.contains("<unknown>"));
    }

    #[tokio::test]
    async fn unknown_thread_is_thread_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = fake(dir.path(), "", NO_ROLLOUT_STDERR, 1);
        let mut spec = spec_for(bin, dir.path());
        spec.resume_thread = Some("01a215b8-0000-7000-8000-000000000000".into());
        let (res, _) = run(spec).await;
        match res.outcome {
            Outcome::ThreadNotFound { message } => {
                assert!(
                    message.contains("01a215b8-0000-7000-8000-000000000000"),
                    "{message}"
                )
            }
            other => panic!("expected ThreadNotFound, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn clean_exit_without_turn_end_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stdout =
            "{\"type\":\"thread.started\",\"thread_id\":\"t1\"}\n{\"type\":\"turn.started\"}\n";
        let bin = fake(dir.path(), stdout, "", 0);
        let (res, _) = run(spec_for(bin, dir.path())).await;
        assert_eq!(
            res.outcome,
            Outcome::Failed {
                message: "codex ended without finishing the turn".into()
            }
        );
        assert_eq!(res.thread_id.as_deref(), Some("t1"));
    }

    #[tokio::test]
    async fn killed_by_signal_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("codex");
        write_exe(&bin, "#!/bin/sh\ncat > /dev/null\nkill -9 $$\n");
        let (res, _) = run(spec_for(bin, dir.path())).await;
        assert_eq!(
            res.outcome,
            Outcome::Failed {
                message: "codex was killed by signal 9 (SIGKILL)".into()
            }
        );
        assert_eq!(res.exit_code, None);
    }

    #[tokio::test]
    async fn missing_binary_is_a_clear_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("nowhere/codex");
        let (res, events) = run(spec_for(bin.clone(), dir.path())).await;
        assert!(events.is_empty(), "{events:?}");
        let Outcome::Failed { message } = res.outcome else {
            panic!("expected Failed, got {:?}", res.outcome);
        };
        assert_eq!(
            message,
            format!(
                "The codex binary `{}` was not found; set profiles.<name>.codex.binary in config.toml or install @openai/codex.",
                bin.display()
            )
        );
    }

    #[tokio::test]
    async fn cancelled_before_start_spawns_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = fake(dir.path(), NEW_TURN, "", 0);
        let (tx, _rx) = mpsc::channel(4);
        let (_ctl_tx, ctl_rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let res = ExecRunner::new()
            .run(
                spec_for(bin, dir.path()),
                RunIo {
                    events: tx,
                    control: ctl_rx,
                    cancel,
                },
            )
            .await;
        assert_eq!(res.outcome, Outcome::Interrupted);
        assert!(!dir.path().join("argv").exists());
    }

    #[tokio::test]
    async fn steer_and_approve_are_not_supported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("codex");
        let d = dir.path().display();
        write_exe(
            &bin,
            &format!(
                "#!/bin/sh\ncat > /dev/null\necho '{{\"type\":\"thread.started\",\"thread_id\":\"t-ctl\"}}'\nwhile [ ! -f {d}/go ]; do sleep 0.01; done\ncat {d}/stdout\n"
            ),
        );
        std::fs::write(dir.path().join("stdout"), NEW_TURN).expect("write");
        let go = dir.path().join("go");
        let replies = Arc::new(Mutex::new(Vec::new()));
        let r2 = Arc::clone(&replies);
        let (res, _) = run_with(
            &ExecRunner::new(),
            spec_for(bin, dir.path()),
            move |e, h| {
                if matches!(e, RunnerEvent::ThreadStarted { thread_id } if thread_id == "t-ctl") {
                    let (steer_tx, steer_rx) = oneshot::channel();
                    let (approve_tx, approve_rx) = oneshot::channel();
                    h.control
                        .try_send(RunControl::Steer {
                            text: "also this".into(),
                            reply: steer_tx,
                        })
                        .expect("send steer");
                    h.control
                        .try_send(RunControl::Approve {
                            request_id: "0".into(),
                            decision: super::super::ApprovalDecision::Accept,
                            reply: approve_tx,
                        })
                        .expect("send approve");
                    let go = go.clone();
                    let r2 = Arc::clone(&r2);
                    // Owned by the test runtime; it ends when both replies are in.
                    tokio::spawn(async move {
                        let s = steer_rx.await.expect("steer reply");
                        let a = approve_rx.await.expect("approve reply");
                        r2.lock().expect("lock").extend([s, a]);
                        std::fs::write(go, "").expect("write go");
                    });
                }
            },
        )
        .await;
        assert_eq!(res.outcome, Outcome::Completed);
        assert_eq!(
            *replies.lock().expect("lock"),
            vec![
                Err(ControlError::NotSupported {
                    runner: "exec",
                    what: "steering"
                }),
                Err(ControlError::NotSupported {
                    runner: "exec",
                    what: "approvals"
                }),
            ]
        );
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().to_string())
            })
            .is_some_and(|rest| !rest.starts_with('Z'))
    }

    async fn gone_soon(pid: u32) -> bool {
        for _ in 0..200 {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn stop_escalates_past_ignored_sigint_and_sigterm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("codex");
        let d = dir.path().display();
        write_exe(
            &bin,
            &format!(
                "#!/bin/sh\ntrap '' INT TERM\necho $$ > {d}/pid\necho '{{\"type\":\"thread.started\",\"thread_id\":\"t-stop\"}}'\nwhile :; do sleep 0.05; done\n"
            ),
        );
        let started = std::time::Instant::now();
        let (res, events) = run_with(&ExecRunner::new(), spec_for(bin, dir.path()), |e, h| {
            if matches!(e, RunnerEvent::ThreadStarted { .. }) {
                h.cancel.cancel();
            }
        })
        .await;
        assert_eq!(res.outcome, Outcome::Interrupted);
        assert_eq!(res.thread_id.as_deref(), Some("t-stop"));
        let Some(RunnerEvent::Spawned { pid }) = events.first() else {
            panic!("no Spawned event: {events:?}");
        };
        let recorded: u32 = std::fs::read_to_string(dir.path().join("pid"))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        assert_eq!(recorded, *pid);
        assert!(!alive(*pid), "the fake survived the stop");
        // Two grace periods of 200 ms plus the kill; anything near this
        // bound means a hang, not a slow machine.
        assert!(started.elapsed() < Duration::from_secs(15));
    }

    #[tokio::test]
    async fn stop_kills_setsid_commands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("codex");
        let d = dir.path().display();
        // Like codex under danger-full-access: the command runs in its own
        // session, out of reach of any signal to our process group.
        write_exe(
            &bin,
            &format!(
                "#!/bin/sh\ncat > /dev/null\nsetsid sh -c 'echo $$ > {d}/detached; exec sleep 300' &\nwhile [ ! -s {d}/detached ]; do sleep 0.01; done\necho '{{\"type\":\"thread.started\",\"thread_id\":\"t-setsid\"}}'\nwait\n"
            ),
        );
        let detached = dir.path().join("detached");
        let seen_alive = Arc::new(Mutex::new(None));
        let s2 = Arc::clone(&seen_alive);
        let (res, _) = run_with(
            &ExecRunner::new(),
            spec_for(bin, dir.path()),
            move |e, h| {
                if matches!(e, RunnerEvent::ThreadStarted { .. }) {
                    let pid: u32 = std::fs::read_to_string(&detached)
                        .expect("detached pid")
                        .trim()
                        .parse()
                        .expect("pid");
                    *s2.lock().expect("lock") = Some((pid, alive(pid)));
                    h.cancel.cancel();
                }
            },
        )
        .await;
        assert_eq!(res.outcome, Outcome::Interrupted);
        let (pid, was_alive) = seen_alive
            .lock()
            .expect("lock")
            .take()
            .expect("saw the detached pid");
        assert!(
            was_alive,
            "the setsid sleep was not running before the stop"
        );
        assert!(
            gone_soon(pid).await,
            "the setsid sleep {pid} survived the stop"
        );
    }

    #[tokio::test]
    async fn dropped_event_receiver_stops_the_child() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("codex");
        let d = dir.path().display();
        write_exe(
            &bin,
            &format!("#!/bin/sh\necho $$ > {d}/pid\nwhile :; do sleep 0.05; done\n"),
        );
        let (tx, rx) = mpsc::channel(4);
        drop(rx);
        let (_ctl_tx, ctl_rx) = mpsc::channel(1);
        let res = tokio::time::timeout(
            Duration::from_secs(30),
            ExecRunner::new().run(
                spec_for(bin, dir.path()),
                RunIo {
                    events: tx,
                    control: ctl_rx,
                    cancel: CancellationToken::new(),
                },
            ),
        )
        .await
        .expect("finished");
        assert_eq!(res.outcome, Outcome::Interrupted);
        if let Ok(p) = std::fs::read_to_string(dir.path().join("pid")) {
            let pid: u32 = p.trim().parse().expect("pid");
            assert!(!alive(pid));
        }
    }
}
