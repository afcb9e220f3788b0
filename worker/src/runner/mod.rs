//! Codex child runners behind one trait.
//!
//! The trait is shaped after the richer `codex app-server` semantics (live
//! deltas, item lifecycle, approvals that wait for a decision, interrupt,
//! steering a running turn); the exec runner is the simpler implementation and
//! answers "not supported" where it cannot. The orchestrator only ever talks to
//! this trait, so it does not change when the app-server runner lands.

pub(crate) mod app_server;
pub(crate) mod codex_home;
pub(crate) mod deny;
pub(crate) mod exec;
pub(crate) mod overrides;
pub(crate) mod process;

use std::path::PathBuf;

use fcx_config::Secret;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Codex sandbox modes, as passed to `--sandbox` (or, with fcx's deny
/// entries, the built-in permissions profile each stands for: [`deny`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sandbox {
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
}

impl Sandbox {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Sandbox::ReadOnly => "read-only",
            Sandbox::WorkspaceWrite => "workspace-write",
            Sandbox::DangerFullAccess => "danger-full-access",
        }
    }
}

/// The environment a Codex child gets on top of the worker's own.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChildEnv {
    /// `CODEX_HOME` for the child (the scope's own); `None` leaves it
    /// unset (auth = inherit-user).
    pub(crate) codex_home: Option<PathBuf>,
    /// The profile's Codex home, whose login and config `codex_home` links
    /// to ([`codex_home::SHARED`]), and where the threads from before
    /// per-scope homes are ([`codex_home::adopt`]).
    pub(crate) shared_home: Option<PathBuf>,
    /// Set as `CODEX_API_KEY` in the child's environment only.
    pub(crate) api_key: Option<Secret>,
    /// Variables removed from the inherited environment (the variable an
    /// `env:` secret reference read, fcx internals).
    pub(crate) remove: Vec<String>,
    /// Extra variables (tests use this for mock provider keys).
    pub(crate) set: Vec<(String, String)>,
    /// fcx's own files to keep from the child's commands: denied by Codex's
    /// sandbox ([`deny`]) and, when `namespace`, hidden by the mount
    /// namespace too.
    pub(crate) hide: Option<exec::confine::Hide>,
    /// Start the child in the namespace that hides `hide` (Linux, where
    /// user namespaces work).
    pub(crate) namespace: bool,
}

/// Everything a runner needs to run one turn.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec {
    pub(crate) run_id: String,
    /// The full prompt, written to the child's stdin (then stdin is closed).
    pub(crate) prompt: String,
    /// Workspace (already validated by policy): the child's working directory.
    pub(crate) cwd: PathBuf,
    pub(crate) sandbox: Sandbox,
    /// `sandbox_workspace_write.network_access`; off unless policy allows.
    pub(crate) network: bool,
    pub(crate) model: Option<String>,
    /// Continue this Codex thread instead of starting a new one.
    pub(crate) resume_thread: Option<String>,
    pub(crate) images: Vec<PathBuf>,
    /// Config overrides `(dotted.key, toml-literal)`; never on argv (see
    /// [`overrides`]).
    pub(crate) overrides: Vec<(String, String)>,
    /// The codex binary (resolved path or a name on PATH).
    pub(crate) binary: PathBuf,
    pub(crate) env: ChildEnv,
    /// Grace after SIGINT before SIGTERM, and after SIGTERM before SIGKILL.
    pub(crate) stop_grace: std::time::Duration,
    /// When Codex asks before acting; anything but `Never` makes its
    /// requests [`RunnerEvent::ApprovalRequested`] (app-server only).
    pub(crate) approval: fcx_config::ApprovalPolicy,
    /// What a child kept after the run is filed under (the scope's
    /// continuity), so that scope's next run may reuse it; `None`: the
    /// child ends with the run.
    pub(crate) warm_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolKind {
    Command,
    FileChange,
    Mcp,
    WebSearch,
    Todo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolStatus {
    Ok,
    Failed,
    Declined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileChange {
    pub(crate) path: String,
    /// "add" | "delete" | "update"
    pub(crate) kind: String,
}

/// Token counts as Codex reports them: **cumulative for the thread**, not per
/// turn. The orchestrator subtracts to get per-run figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenUsage {
    pub(crate) input_tokens: u64,
    pub(crate) cached_input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) reasoning_output_tokens: u64,
}

/// What a runner reports while a turn runs, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunnerEvent {
    /// The Codex child is running (pid, for stop and crash cleanup).
    Spawned {
        pid: u32,
    },
    /// The thread id is known (new or resumed).
    ThreadStarted {
        thread_id: String,
    },
    TurnStarted,
    /// A piece of answer text. The exec runner sends a whole agent message as
    /// one delta when the item completes (exec has no live deltas).
    TextDelta {
        item_id: String,
        delta: String,
    },
    /// An agent message is complete: its full text.
    AgentMessage {
        item_id: String,
        text: String,
    },
    ReasoningDelta {
        item_id: String,
        delta: String,
    },
    /// Live output of a running command (app-server only; exec reports the
    /// output once, in [`RunnerEvent::ToolCompleted`]).
    ToolOutputDelta {
        item_id: String,
        delta: String,
    },
    ToolStarted {
        item_id: String,
        kind: ToolKind,
        title: String,
        changes: Vec<FileChange>,
    },
    ToolCompleted {
        item_id: String,
        kind: ToolKind,
        title: String,
        status: ToolStatus,
        exit_code: Option<i32>,
        /// Full output as Codex reported it; the orchestrator bounds it.
        output: String,
        changes: Vec<FileChange>,
        error: Option<String>,
    },
    /// Thread-cumulative usage (see [`TokenUsage`]).
    Usage(TokenUsage),
    /// Non-fatal warning or error line from Codex.
    Warning {
        message: String,
    },
    /// Codex could not reach the model API and is trying again (exec's
    /// `Reconnecting...` errors, app-server's `error` with `willRetry`).
    /// Not progress: Codex retries an unreachable endpoint without end
    /// ("waiting for network"), so the run driver bounds how long these may
    /// go on without anything else happening.
    Retrying {
        message: String,
    },
    /// Codex waits for a decision (answer with [`RunControl::Approve`]).
    ApprovalRequested {
        /// Opaque, unique within the run.
        approval_id: String,
        /// The tool item it is about.
        item_id: String,
        kind: ToolKind,
        /// The command line (commands only).
        command: String,
        cwd: String,
        /// Codex's justification, when it gave one.
        reason: String,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Completed,
    /// Stopped through [`RunIo::cancel`].
    Interrupted,
    /// The turn or the child failed; one sentence for the user.
    Failed {
        message: String,
    },
    /// `resume` named a thread Codex no longer has. The orchestrator starts a
    /// new thread explicitly and says so; it never drops the stored id on any
    /// other failure.
    ThreadNotFound {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunResult {
    pub(crate) outcome: Outcome,
    pub(crate) thread_id: Option<String>,
    /// Text of the last completed agent message.
    pub(crate) final_text: Option<String>,
    /// Last thread-cumulative usage seen.
    pub(crate) usage: Option<TokenUsage>,
    /// Last lines of the child's stderr, for error reports and logs.
    pub(crate) stderr_tail: String,
    pub(crate) exit_code: Option<i32>,
}

/// A decision for an approval request (app-server only).
#[allow(
    dead_code,
    reason = "Cancel is part of the protocol; fcx declines instead"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApprovalDecision {
    Accept,
    AcceptForSession,
    Decline,
    Cancel,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ControlError {
    #[error("the {runner} runner does not support {what}")]
    NotSupported {
        runner: &'static str,
        what: &'static str,
    },
    #[error("the run has already ended")]
    #[allow(
        dead_code,
        reason = "for runners that take control requests (app-server)"
    )]
    Ended,
}

/// Requests into a running turn.
#[allow(
    dead_code,
    reason = "the control surface the app-server runner uses (DESIGN.md §4); exec answers NotSupported"
)]
#[derive(Debug)]
pub(crate) enum RunControl {
    /// Add input to the running turn (app-server `turn/steer`); images
    /// (from `media::prepare`) ride along as `localImage` items.
    Steer {
        text: String,
        images: Vec<PathBuf>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    Approve {
        request_id: String,
        decision: ApprovalDecision,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
}

/// The channels between the orchestrator and one running turn.
pub(crate) struct RunIo {
    pub(crate) events: mpsc::Sender<RunnerEvent>,
    pub(crate) control: mpsc::Receiver<RunControl>,
    /// Cancelling stops the run: the runner interrupts it, escalates to
    /// signals, leaves no child behind, and returns `Outcome::Interrupted`.
    pub(crate) cancel: CancellationToken,
}

#[allow(
    dead_code,
    reason = "live_deltas and approvals are informational; steer is consulted by the run driver"
)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunnerCaps {
    pub(crate) live_deltas: bool,
    pub(crate) approvals: bool,
    pub(crate) steer: bool,
}

pub(crate) trait Runner: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn caps(&self) -> RunnerCaps;
    /// Run one turn to its end. Never panics on anything Codex prints; every
    /// failure becomes an [`Outcome`].
    fn run(&self, spec: RunSpec, io: RunIo) -> BoxFuture<'static, RunResult>;
    /// `key` (a [`RunSpec::warm_key`]) starts over: a child kept for it
    /// is not wanted any more.
    fn release(&self, _key: &str) {}
    /// Ends what the runner keeps between runs (after the last run ended).
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
