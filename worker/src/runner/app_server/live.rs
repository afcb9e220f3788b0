//! One `codex app-server` child with its pipes: spawned for a run, and
//! either shut down at the run's end or kept by the [`super::pool`] for the
//! scope's next run. Shutdown is always the same: stdin EOF, then SIGTERM,
//! then SIGKILL to the group, then a sweep of what it started.

use std::hash::{Hash as _, Hasher as _};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::task::AbortOnDropHandle;

use super::mapping::Mapper;
use super::rpc::{Incoming, Reader, Writer};
use super::{DRAIN_AFTER_EXIT, MIN_STEP, REAP_AFTER_KILL};
use crate::runner::RunSpec;
use crate::runner::exec::child::{
    TreeGuard, merge, prepare_codex_command, snapshot, spawn_error_message, spawn_with_retry,
};
use crate::runner::exec::stderr::{StderrState, read_stderr};
use crate::runner::process::{self, ProcId, StopSignal};

pub(crate) struct Live {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    /// Kills the group and tree if this is dropped without a shutdown.
    pub(crate) guard: TreeGuard,
    pub(crate) reader: Reader<ChildStdout>,
    pub(crate) writer: Writer<ChildStdin>,
    pub(crate) stderr: Arc<Mutex<StderrState>>,
    stderr_task: AbortOnDropHandle<()>,
    /// The grace of each shutdown step.
    pub(crate) grace: Duration,
    /// Everything it was started with ([`launch_of`]).
    pub(crate) launch: u64,
    /// The thread its last turn ran on, loaded in the child.
    pub(crate) thread: Option<String>,
    /// Descendants seen while it lived, for the sweep.
    pub(crate) recorded: Vec<ProcId>,
}

/// What the child was started with, and what its threads were opened with:
/// a kept child serves a run only when this is the same (binary, workspace,
/// sandbox, network, model, overrides, approval policy, CODEX_HOME, key,
/// environment, what is hidden). Compared in this process only.
pub(crate) fn launch_of(spec: &RunSpec) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    spec.binary.hash(&mut h);
    spec.cwd.hash(&mut h);
    spec.sandbox.hash(&mut h);
    spec.network.hash(&mut h);
    spec.model.hash(&mut h);
    spec.overrides.hash(&mut h);
    format!("{:?}", spec.approval).hash(&mut h);
    spec.env.codex_home.hash(&mut h);
    spec.env.api_key.as_ref().map(|k| k.expose()).hash(&mut h);
    spec.env.remove.hash(&mut h);
    spec.env.set.hash(&mut h);
    format!("{:?}", spec.env.hide).hash(&mut h);
    spec.env.namespace.hash(&mut h);
    h.finish()
}

impl Live {
    pub(crate) async fn spawn(
        spec: &RunSpec,
        grace: Duration,
        max_line: usize,
    ) -> Result<Live, String> {
        let mut cmd = prepare_codex_command(spec, super::build_args(spec)).await?;
        let mut child = spawn_with_retry(&mut cmd)
            .await
            .map_err(|e| spawn_error_message(&spec.binary, &e))?;
        let Some(pid) = child.id() else {
            return Err("codex app-server exited before it could be watched.".into());
        };
        let guard = TreeGuard { pid: Some(pid) };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("codex app-server was started without its stdio pipes.".into());
        };
        let state = Arc::new(Mutex::new(StderrState::default()));
        let stderr_task = AbortOnDropHandle::new(tokio::spawn(read_stderr(
            stderr,
            Arc::clone(&state),
            spec.run_id.clone(),
        )));
        Ok(Live {
            child,
            pid,
            guard,
            reader: Reader::new(stdout, max_line),
            writer: Writer::new(stdin),
            stderr: state,
            stderr_task,
            grace,
            launch: launch_of(spec),
            thread: None,
            recorded: Vec::new(),
        })
    }

    /// A new run starts with an empty stderr tail.
    pub(crate) fn reset_stderr(&self) {
        *self
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = StderrState::default();
    }

    /// Closes stdin (app-server exits cleanly on EOF, killing its
    /// commands), then SIGTERM, then SIGKILL to the process group, each
    /// after the grace, reading stdout meanwhile so a full pipe cannot hold
    /// it up (notifications update `map`, when given); then kills what is
    /// left of its group and the descendants recorded while it lived, and
    /// waits (bounded) for stderr to close.
    pub(crate) async fn shutdown(
        &mut self,
        exit: &mut Option<ExitStatus>,
        mut map: Option<&mut Mapper>,
        label: &str,
    ) {
        let pid = self.pid;
        if exit.is_none() {
            merge(&mut self.recorded, snapshot(pid).await);
        }
        self.writer.close();
        for step in [None, Some(StopSignal::Terminate), Some(StopSignal::Kill)] {
            if exit.is_some() {
                break;
            }
            if let Some(sig) = step {
                merge(&mut self.recorded, snapshot(pid).await);
                tracing::debug!(label, pid, signal = ?sig, "stopping codex app-server");
                if !process::signal_group(pid, sig) && sig == StopSignal::Kill {
                    let _ = self.child.start_kill();
                }
            }
            let limit = if step == Some(StopSignal::Kill) {
                REAP_AFTER_KILL
            } else {
                self.grace.max(MIN_STEP)
            };
            let (child, reader) = (&mut self.child, &mut self.reader);
            let waited = tokio::time::timeout(limit, async {
                let drain = drain(reader, map.as_deref_mut());
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
                    tracing::warn!(label, pid, error = %e, "waiting for codex app-server failed");
                    break;
                }
                Err(_) => {}
            }
        }
        if exit.is_some() {
            self.guard.pid = None;
        } else {
            tracing::error!(label, pid, "codex app-server did not exit after SIGKILL");
        }
        let recorded = std::mem::take(&mut self.recorded);
        let swept = tokio::task::spawn_blocking(move || {
            process::signal_group(pid, StopSignal::Kill);
            process::kill_tree(&recorded);
        });
        if let Err(e) = swept.await {
            tracing::warn!(label, error = %e, "sweeping codex app-server's commands failed");
        }
        if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut self.stderr_task)
            .await
            .is_err()
        {
            self.stderr_task.abort();
        }
    }
}

/// Reads (and maps, without sending) whatever the server still prints.
pub(crate) async fn drain(reader: &mut Reader<ChildStdout>, mut map: Option<&mut Mapper>) {
    while let Some(m) = reader.next().await {
        if let (Incoming::Notification { method, params }, Some(map)) = (m, map.as_deref_mut()) {
            let _ = map.notification(&method, &params);
        }
    }
}
