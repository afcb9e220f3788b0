//! The `codex app-server` runner, spoken to over stdio JSON-RPC. Unlike
//! `exec` it streams answer text, reasoning and command output as they
//! come, stops a turn with `turn/interrupt`, and can steer a running turn.
//!
//! A run's child is spawned by the same helper as the exec child (same
//! environment, process group, parent-death signal). When its turn
//! completed (not stopped, not failed) the child is kept
//! by the [`pool`] for the scope's next run, which then skips the spawn,
//! the handshake and the thread load, and keeps the thread's "approved for
//! this session" commands; otherwise, and when the kept child is not
//! wanted, it is shut down by closing its stdin, then SIGTERM, then SIGKILL
//! — never SIGINT, which app-server does not handle and which can orphan
//! its commands (codex.md §5.5).

pub(crate) mod fuzzing;
mod live;
mod mapping;
pub(crate) mod pool;
pub(crate) mod protocol;
mod rpc;
mod session;
pub(crate) mod threads;

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::exec::child::{merge, snapshot};
use super::exec::stderr::StderrState;
use super::{Outcome, RunIo, RunResult, RunSpec, Runner, RunnerCaps, RunnerEvent};
use crate::util::truncate_chars;
use live::Live;
use mapping::{Mapper, TurnEnd};
use pool::Pool;
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

#[derive(Clone)]
pub(crate) struct AppServerRunner {
    max_line: usize,
    request_timeout: Duration,
    /// Children kept between a scope's runs; `None`: one child per run.
    pool: Option<Arc<Pool>>,
}

impl AppServerRunner {
    pub(crate) fn new() -> Self {
        AppServerRunner {
            max_line: MAX_LINE,
            request_timeout: REQUEST_TIMEOUT,
            pool: None,
        }
    }

    /// Keeps each scope's child after its run, in `pool`.
    pub(crate) fn with_pool(pool: Arc<Pool>) -> Self {
        AppServerRunner {
            pool: Some(pool),
            ..Self::new()
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

    fn release(&self, key: &str) {
        if let Some(p) = &self.pool {
            p.release(key);
        }
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let pool = self.pool.clone();
        Box::pin(async move {
            if let Some(p) = pool {
                p.shutdown().await;
            }
        })
    }
}

/// `codex app-server`, nothing more: the config overrides, workspace,
/// sandbox, model and approval policy go into `thread/start` (over stdin,
/// not on argv where `ps` shows them).
fn build_args(_spec: &RunSpec) -> Vec<std::ffi::OsString> {
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
        let grace = spec.stop_grace.max(MIN_STEP);
        let kept = match (&self.pool, &spec.warm_key) {
            (Some(pool), Some(key)) => {
                pool.take(key, live::launch_of(&spec), spec.resume_thread.as_deref())
                    .await
            }
            _ => None,
        };
        let reused = kept.is_some();
        let mut live = match kept {
            Some(l) => {
                l.reset_stderr();
                l
            }
            None => match Live::spawn(&spec, grace, self.max_line).await {
                Ok(l) => l,
                Err(message) => return failed(message),
            },
        };
        let pid = live.pid;
        tracing::info!(
            run_id,
            pid,
            reused,
            resume = spec.resume_thread.is_some(),
            sandbox = spec.sandbox.as_str(),
            "codex app-server started"
        );
        let mut session = Session::new(
            live.reader,
            live.writer,
            Mapper::new(spec.cwd.clone()),
            events.clone(),
            control,
            cancel.clone(),
            self.request_timeout,
            grace,
            run_id.clone(),
        )
        .continuing(if reused { live.thread.clone() } else { None });

        let mut exit: Option<ExitStatus> = None;
        // Codex setsid()s some children (its shell snapshot, commands under
        // danger-full-access); if it dies they reparent to init and can only
        // be found from this record, kept fresh while it runs.
        let end = if events.send(RunnerEvent::Spawned { pid }).await.is_err() {
            End::Detached
        } else {
            let drive = session.drive(&spec);
            tokio::pin!(drive);
            let mut tick = tokio::time::interval(TREE_SNAPSHOT_EVERY);
            loop {
                tokio::select! {
                    end = &mut drive => break end,
                    status = live.child.wait() => {
                        exit = status.ok();
                        break End::ChildGone;
                    }
                    _ = tick.tick() => merge(&mut live.recorded, snapshot(pid).await),
                }
            }
        };
        // Only a child whose turn completed is kept: a stopped turn's child
        // goes with whatever its interrupted commands left (the stop's
        // promise), a failed or crashed one is not trusted again.
        let healthy = exit.is_none()
            && !cancel.is_cancelled()
            && session.is_quiet()
            && end == End::TurnEnded
            && session.map.turn_end == Some(TurnEnd::Completed);
        let (reader, writer, mut map) = session.into_parts();
        live.reader = reader;
        live.writer = writer;
        live.thread = map.thread_id.clone();
        let stderr = Arc::clone(&live.stderr);
        let left = match (&self.pool, &spec.warm_key, healthy) {
            (Some(pool), Some(key), true) => pool.put(key, live),
            _ => Some(live),
        };
        let kept = left.is_none();
        if let Some(mut live) = left {
            live.shutdown(&mut exit, Some(&mut map), &run_id).await;
        }
        let st = std::mem::take(
            &mut *stderr
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let outcome = if cancel.is_cancelled() || matches!(end, End::Detached) {
            Outcome::Interrupted
        } else {
            classify(&end, &map, exit, &st, spec.resume_thread.as_deref())
        };
        let result = RunResult {
            outcome,
            thread_id: map.thread_id.clone(),
            final_text: map.final_text.clone(),
            usage: map.usage,
            stderr_tail: st.tail_string(),
            exit_code: exit.and_then(|s| s.code()),
        };
        tracing::info!(run_id, pid, outcome = ?result.outcome, kept, "codex app-server finished");
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

#[cfg(test)]
#[cfg(unix)]
#[path = "app_server_tests.rs"]
mod tests;
