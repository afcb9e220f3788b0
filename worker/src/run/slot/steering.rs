//! Adding a message to a run's running turn: open while the runner can take
//! one, with what the steered prompt must say about where it runs.

use std::path::PathBuf;
use std::sync::Mutex;

use fcx_proto::v1::Inbound;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::prompt::{self, PromptContext};
use crate::runner::{ControlError, RunControl};

/// Whether a message can be added to the running turn.
#[derive(Debug, Default)]
enum SteerState {
    /// The run has not reached its runner yet, or has left it.
    #[default]
    Closed,
    /// The runner cannot take input into a running turn (exec).
    Unsupported,
    Open {
        control: mpsc::Sender<RunControl>,
        /// What the steered message's prompt says about where it runs, as
        /// for the run's own prompt.
        context: SteerContext,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct SteerContext {
    pub(crate) scope: String,
    pub(crate) workspace: String,
    pub(crate) sandbox: &'static str,
    pub(crate) network: bool,
}

/// What became of an attempt to add a message to the running turn.
#[derive(Debug)]
pub(crate) enum SteerAttempt {
    /// Handed to the runner; the answer says whether Codex took it.
    Sent(oneshot::Receiver<Result<(), ControlError>>),
    /// The runner cannot steer (the exec runner).
    Unsupported,
    /// Not now: the run is starting or ending.
    Closed,
}

/// Whether, and how, a message can join the run's running turn.
#[derive(Debug)]
pub(crate) struct Steering {
    state: Mutex<SteerState>,
    /// The run's: a stopped run takes nothing more.
    cancel: CancellationToken,
}

impl Steering {
    pub(super) fn new(cancel: CancellationToken) -> Self {
        Steering {
            state: Mutex::new(SteerState::Closed),
            cancel,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SteerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runner takes steering requests through `control`.
    pub(crate) fn open(&self, control: mpsc::Sender<RunControl>, context: SteerContext) {
        *self.state() = SteerState::Open { control, context };
    }

    /// The runner cannot steer.
    pub(crate) fn unsupported(&self) {
        *self.state() = SteerState::Unsupported;
    }

    /// The runner returned: nothing more can join the turn.
    pub(super) fn close(&self) {
        *self.state() = SteerState::Closed;
    }

    /// Whether the running turn has full access: only the owner's text may
    /// join it (see `access::run_cap`).
    pub(crate) fn full_access(&self) -> bool {
        matches!(
            &*self.state(),
            SteerState::Open { context, .. }
                if context.sandbox == crate::runner::Sandbox::DangerFullAccess.as_str()
        )
    }

    /// Try to add `message` to the running turn, as a prompt of its own
    /// (built like the run's, so chat text cannot pose as the bridge).
    pub(crate) fn steer(&self, message: &Inbound, images: Vec<PathBuf>) -> SteerAttempt {
        let state = self.state();
        let (control, context) = match &*state {
            SteerState::Closed => return SteerAttempt::Closed,
            SteerState::Unsupported => return SteerAttempt::Unsupported,
            SteerState::Open { control, context } => (control, context),
        };
        if self.cancel.is_cancelled() {
            return SteerAttempt::Closed;
        }
        let text = prompt::build(
            &PromptContext {
                scope: &context.scope,
                workspace: &context.workspace,
                sandbox: context.sandbox,
                network: context.network,
                // The turn's first prompt said how to hand back files.
                files_out: false,
                outbox: "",
            },
            std::slice::from_ref(message),
        );
        let (reply, answer) = oneshot::channel();
        match control.try_send(RunControl::Steer {
            text,
            images,
            reply,
        }) {
            Ok(()) => SteerAttempt::Sent(answer),
            Err(_) => SteerAttempt::Closed,
        }
    }

    /// Whether this run's runner cannot steer at all (the exec runner).
    pub(crate) fn cannot_steer(&self) -> bool {
        matches!(*self.state(), SteerState::Unsupported)
    }

    /// The workspace of the turn a message can be steered into now (its
    /// attachments are placed there before the steer); `None` when the
    /// turn cannot take one.
    pub(crate) fn workspace(&self) -> Option<String> {
        match &*self.state() {
            SteerState::Open { context, .. } if !self.cancel.is_cancelled() => {
                Some(context.workspace.clone())
            }
            _ => None,
        }
    }
}
