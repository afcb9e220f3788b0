//! The `codex exec --json` runner: one Codex child process per turn.
//!
//! The prompt goes to the child's stdin (then stdin is closed: codex blocks
//! until EOF), JSONL events come from stdout and are translated into
//! [`RunnerEvent`]s, stderr is only kept as a bounded tail for error reports.
//! `exec` has no live deltas, approvals or steering; a stop is a SIGINT to the
//! child's process group, escalated to SIGTERM and SIGKILL, followed by a
//! sweep of the commands codex started (see [`super::process`]).

mod allow_env;
pub(super) mod child;
pub(crate) mod confine;
pub(crate) mod fuzzing;
mod jsonl;
pub(super) mod lines;
pub(super) mod stderr;
pub(super) mod translate;

use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::process::{Child, ChildStdout};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::{
    ControlError, Outcome, RunControl, RunIo, RunResult, RunSpec, Runner, RunnerCaps, RunnerEvent,
};
use crate::util::truncate_chars;
use child::{
    TreeGuard, prepare_command, spawn_error_message, spawn_with_retry, stop_child, write_prompt,
};
use lines::{BoundedLines, Line};
use stderr::{StderrState, read_stderr};
use translate::Translator;

/// Longest stdout line we buffer. A command's whole output can sit in one
/// JSONL line, so this is generous; anything longer is dropped, not buffered
/// without end.
const MAX_LINE: usize = 8 << 20;
/// How long to keep reading stdout and stderr once codex has exited. Only a
/// leftover process that inherited the pipes keeps them open that long.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
const FAILURE_DETAIL_CHARS: usize = 300;

/// Runs one turn as `codex exec --json [...] -`.
#[derive(Debug, Clone)]
pub(crate) struct ExecRunner {
    max_line: usize,
    drain: Duration,
}

impl ExecRunner {
    pub(crate) fn new() -> Self {
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

#[cfg(test)]
#[cfg(unix)]
#[path = "exec_tests.rs"]
mod tests;
