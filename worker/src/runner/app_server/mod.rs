//! The `codex app-server` runner: one app-server child per run, spoken to
//! over stdio JSON-RPC. Unlike `exec` it streams answer text, reasoning and
//! command output as they come, stops a turn with `turn/interrupt`, and can
//! steer a running turn.
//!
//! The child is spawned by the same helper as the exec child (same
//! environment, process group, parent-death signal) and shut down by closing
//! its stdin, then SIGTERM, then SIGKILL — never SIGINT, which app-server
//! does not handle and which can orphan its commands (codex.md §5.5).

mod mapping;
mod protocol;
mod rpc;
mod session;
pub(crate) mod threads;

use std::ffi::OsString;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::task::AbortOnDropHandle;

use super::exec::child::{
    TreeGuard, merge, prepare_codex_command, snapshot, spawn_error_message, spawn_with_retry,
};
use super::exec::stderr::{StderrState, read_stderr};
use super::process::{self, ProcId, StopSignal};
use super::{Outcome, RunIo, RunResult, RunSpec, Runner, RunnerCaps, RunnerEvent};
use crate::util::truncate_chars;
use mapping::{Mapper, TurnEnd};
use rpc::{Reader, Writer};
use session::{End, Session};

/// Longest stdout line we buffer: a completed command item carries its
/// whole output.
const MAX_LINE: usize = 8 << 20;
/// A request (initialize, thread/start, turn/start) unanswered this long
/// means the server hangs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long stderr may stay open after the child is gone.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// After SIGKILL the child should be reapable at once.
const REAP_AFTER_KILL: Duration = Duration::from_secs(10);
/// Shortest wait for each shutdown step, whatever `stop_grace` says:
/// app-server needs about 65 ms to exit on EOF (codex.md §5.5).
const MIN_STEP: Duration = Duration::from_millis(300);
const FAILURE_DETAIL_CHARS: usize = 300;
/// How often the child's process tree is recorded while it runs.
const TREE_SNAPSHOT_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub(crate) struct AppServerRunner {
    max_line: usize,
    request_timeout: Duration,
}

impl AppServerRunner {
    pub(crate) fn new() -> Self {
        AppServerRunner {
            max_line: MAX_LINE,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

impl Default for AppServerRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl Runner for AppServerRunner {
    fn name(&self) -> &'static str {
        "app-server"
    }

    fn caps(&self) -> RunnerCaps {
        RunnerCaps {
            live_deltas: true,
            approvals: true,
            steer: true,
        }
    }

    fn run(&self, spec: RunSpec, io: RunIo) -> BoxFuture<'static, RunResult> {
        let this = self.clone();
        Box::pin(async move { this.run_turn(spec, io).await })
    }
}

/// `codex app-server`, nothing more: the config overrides, workspace,
/// sandbox, model and approval policy go into `thread/start` (over stdin,
/// not on argv where `ps` shows them).
fn build_args(_spec: &RunSpec) -> Vec<OsString> {
    vec!["app-server".into()]
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

impl AppServerRunner {
    async fn run_turn(self, spec: RunSpec, io: RunIo) -> RunResult {
        let RunIo {
            events,
            control,
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
            && t.trim().is_empty()
        {
            return failed(format!(
                "The stored thread id {t:?} is not a valid Codex thread id."
            ));
        }
        let mut cmd = match prepare_codex_command(&spec, build_args(&spec)).await {
            Ok(c) => c,
            Err(message) => return failed(message),
        };
        let mut child = match spawn_with_retry(&mut cmd).await {
            Ok(c) => c,
            Err(e) => return failed(spawn_error_message(&spec.binary, &e)),
        };
        let Some(pid) = child.id() else {
            return failed("codex app-server exited before it could be watched.");
        };
        // Declared after `child`, so dropped first while the pid is ours.
        let mut guard = TreeGuard { pid: Some(pid) };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return failed("codex app-server was started without its stdio pipes.");
        };
        tracing::info!(
            run_id,
            pid,
            resume = spec.resume_thread.is_some(),
            sandbox = spec.sandbox.as_str(),
            "codex app-server started"
        );
        let stderr_state = Arc::new(Mutex::new(StderrState::default()));
        let mut stderr_task = AbortOnDropHandle::new(tokio::spawn(read_stderr(
            stderr,
            Arc::clone(&stderr_state),
            run_id.clone(),
        )));
        let grace = spec.stop_grace.max(MIN_STEP);
        let mut session = Session::new(
            Reader::new(stdout, self.max_line),
            Writer::new(stdin),
            Mapper::new(spec.cwd.clone()),
            events.clone(),
            control,
            cancel.clone(),
            self.request_timeout,
            grace,
            run_id.clone(),
        );

        let mut exit: Option<ExitStatus> = None;
        // Codex setsid()s some children (its shell snapshot, commands under
        // danger-full-access); if it dies they reparent to init and can only
        // be found from this record, kept fresh while it runs.
        let mut recorded: Vec<ProcId> = Vec::new();
        let end = if events.send(RunnerEvent::Spawned { pid }).await.is_err() {
            End::Detached
        } else {
            let drive = session.drive(&spec);
            tokio::pin!(drive);
            let mut tick = tokio::time::interval(TREE_SNAPSHOT_EVERY);
            loop {
                tokio::select! {
                    end = &mut drive => break end,
                    status = child.wait() => {
                        exit = status.ok();
                        break End::ChildGone;
                    }
                    _ = tick.tick() => merge(&mut recorded, snapshot(pid).await),
                }
            }
        };
        merge(
            &mut recorded,
            shutdown(&mut child, pid, &mut exit, &mut session, grace, &run_id).await,
        );
        if exit.is_some() {
            guard.pid = None;
        }
        sweep(pid, recorded, &run_id).await;
        if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut stderr_task)
            .await
            .is_err()
        {
            stderr_task.abort();
            let _ = stderr_task.await;
        }

        let st = stderr_state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let map = &session.map;
        let outcome = if cancel.is_cancelled() || matches!(end, End::Detached) {
            Outcome::Interrupted
        } else {
            classify(&end, map, exit, &st, spec.resume_thread.as_deref())
        };
        let result = RunResult {
            outcome,
            thread_id: map.thread_id.clone(),
            final_text: map.final_text.clone(),
            usage: map.usage,
            stderr_tail: st.tail_string(),
            exit_code: exit.and_then(|s| s.code()),
        };
        tracing::info!(run_id, pid, outcome = ?result.outcome, "codex app-server finished");
        result
    }
}

fn classify(
    end: &End,
    map: &Mapper,
    exit: Option<ExitStatus>,
    st: &StderrState,
    resume: Option<&str>,
) -> Outcome {
    match end {
        End::TurnEnded => match &map.turn_end {
            Some(TurnEnd::Completed) => Outcome::Completed,
            Some(TurnEnd::Interrupted) => Outcome::Interrupted,
            Some(TurnEnd::Failed(message)) => Outcome::Failed {
                message: message.clone(),
            },
            None => Outcome::Failed {
                message: "codex app-server ended the turn in an unknown state".into(),
            },
        },
        End::Cancelled | End::Detached => Outcome::Interrupted,
        End::ThreadGone(m) => Outcome::ThreadNotFound {
            message: format!(
                "Codex cannot resume thread {} ({m}).",
                resume.unwrap_or("?")
            ),
        },
        End::Refused { method, message } => Outcome::Failed {
            message: format!(
                "codex app-server refused {method}: {}",
                truncate_chars(message, FAILURE_DETAIL_CHARS)
            ),
        },
        End::Failed(m) => Outcome::Failed { message: m.clone() },
        End::ChildGone => Outcome::Failed {
            message: crash_sentence(exit, map.last_error.as_deref().or(st.meaningful())),
        },
    }
}

/// "codex app-server stopped before the turn ended: …" with how it ended.
fn crash_sentence(status: Option<ExitStatus>, detail: Option<&str>) -> String {
    let how = match status {
        None => "it closed its output".to_string(),
        Some(s) => exit_words(s),
    };
    let mut m = format!("codex app-server stopped before the turn ended: {how}");
    if let Some(d) = detail {
        m.push_str(": ");
        m.push_str(&truncate_chars(d, FAILURE_DETAIL_CHARS));
    }
    m
}

fn exit_words(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| format!(" ({})", s.as_str()))
                .unwrap_or_default();
            return format!("it was killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(c) => format!("it exited with code {c}"),
        None => "it exited".into(),
    }
}

/// Closes stdin (app-server exits cleanly on EOF, killing its commands),
/// then SIGTERM, then SIGKILL to the process group, each after `grace`,
/// reading stdout meanwhile so a full pipe cannot hold it up. Returns the
/// descendants seen while it lived, for the sweep.
async fn shutdown(
    child: &mut Child,
    pid: u32,
    exit: &mut Option<ExitStatus>,
    session: &mut Session<ChildStdout, ChildStdin>,
    grace: Duration,
    run_id: &str,
) -> Vec<ProcId> {
    let mut recorded: Vec<ProcId> = Vec::new();
    if exit.is_none() {
        merge(&mut recorded, snapshot(pid).await);
    }
    session.writer.close();
    for step in [None, Some(StopSignal::Terminate), Some(StopSignal::Kill)] {
        if exit.is_some() {
            break;
        }
        if let Some(sig) = step {
            merge(&mut recorded, snapshot(pid).await);
            tracing::debug!(run_id, pid, signal = ?sig, "stopping codex app-server");
            if !process::signal_group(pid, sig) && sig == StopSignal::Kill {
                let _ = child.start_kill();
            }
        }
        let limit = if step == Some(StopSignal::Kill) {
            REAP_AFTER_KILL
        } else {
            grace
        };
        let waited = tokio::time::timeout(limit, async {
            let drain = session.drain();
            tokio::pin!(drain);
            let mut drained = false;
            loop {
                tokio::select! {
                    s = child.wait() => return s,
                    _ = &mut drain, if !drained => drained = true,
                }
            }
        })
        .await;
        match waited {
            Ok(Ok(s)) => *exit = Some(s),
            Ok(Err(e)) => {
                tracing::warn!(run_id, pid, error = %e, "waiting for codex app-server failed");
                break;
            }
            Err(_) => {}
        }
    }
    if exit.is_none() {
        tracing::error!(run_id, pid, "codex app-server did not exit after SIGKILL");
    }
    recorded
}

/// Kills what is left of the child's group and the descendants recorded
/// while it lived (commands codex `setsid()`s leave the group).
async fn sweep(pid: u32, recorded: Vec<ProcId>, run_id: &str) {
    let swept = tokio::task::spawn_blocking(move || {
        process::signal_group(pid, StopSignal::Kill);
        process::kill_tree(&recorded);
    });
    if let Err(e) = swept.await {
        tracing::warn!(run_id, error = %e, "sweeping codex app-server's commands failed");
    }
}

#[cfg(test)]
#[cfg(unix)]
#[path = "app_server_tests.rs"]
mod tests;
