//! Adding a message to a running turn (`during_run = steer`): who may,
//! the wait for Codex's answer (and, for a message with files, for their
//! downloads first), and the fallback to the next run when the turn ended.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, Inbound};
use tokio_util::task::TaskTracker;

use super::board::Board;
use crate::context::Ctx;
use crate::run::{RunSlot, SteerAttempt};
use crate::store::QueuedMessage;

pub(super) struct Steerer {
    ctx: Arc<Ctx>,
    /// Where a message goes when its turn ended first.
    board: Arc<Board>,
    /// The scheduler's tasks: shutdown waits for these too.
    tasks: TaskTracker,
    /// Scopes already told that their steer falls back to queue.
    told_no_steer: Mutex<HashSet<String>>,
}

impl Steerer {
    pub(super) fn new(ctx: Arc<Ctx>, board: Arc<Board>, tasks: TaskTracker) -> Self {
        Steerer {
            ctx,
            board,
            tasks,
            told_no_steer: Mutex::new(HashSet::new()),
        }
    }

    /// Whether the profile's owner sent `m`.
    pub(super) fn owner_sent(&self, m: &Inbound) -> bool {
        let actor = m.actor.as_ref().map_or("", |a| a.id.as_str());
        let chat = crate::access::Chat::from_pb(m.chat_type());
        self.ctx.access_lists().role(actor, chat) == crate::access::Role::Owner
    }

    /// Waits (in a task of its own) for Codex to take a message into the
    /// running turn: then the message is that run's, and its card says so;
    /// if the turn ended first, the message queues for the next run.
    pub(super) fn await_steer(
        self: &Arc<Self>,
        active: Arc<RunSlot>,
        message: QueuedMessage,
        answer: tokio::sync::oneshot::Receiver<Result<(), crate::runner::ControlError>>,
        reply_mode: &'static str,
    ) {
        let me = self.clone();
        self.tasks
            .spawn(async move { me.settle_steer(active, message, answer, reply_mode).await });
    }

    /// Steers a message with attachments once fcxd's downloads are placed
    /// in the turn's workspace (bounded, and ended by the run's stop), like
    /// a run does with its own: images go as images, the rest to the inbox,
    /// and every skipped one is named. If the turn ended meanwhile, the
    /// message queues for the next run.
    pub(super) fn steer_after_download(
        self: &Arc<Self>,
        active: Arc<RunSlot>,
        message: QueuedMessage,
        workspace: String,
        reply_mode: &'static str,
    ) {
        let me = self.clone();
        self.tasks.spawn(async move {
            let mut inbounds = vec![message.inbound.clone()];
            let media = crate::media::prepare(
                &me.ctx.home.profile(&me.ctx.profile.name).media_dir(),
                std::path::Path::new(&workspace),
                &mut inbounds,
                crate::media::FETCH_WAIT,
                &active.cancel,
            )
            .await;
            if !media.skipped.is_empty() {
                let lines: Vec<String> = media.skipped.iter().map(|l| format!("• {l}")).collect();
                me.ctx.emit(
                    &message.scope,
                    &active.run_id,
                    &active.reply_to(),
                    Kind::Notice(pb::Notice {
                        text: format!("Not passed to Codex:\n{}", lines.join("\n")),
                    }),
                );
            }
            let annotated = inbounds.pop().unwrap_or_else(|| message.inbound.clone());
            match active.steering.steer(&annotated, media.images) {
                SteerAttempt::Sent(answer) => {
                    me.settle_steer(active, message, answer, reply_mode).await;
                }
                SteerAttempt::Unsupported | SteerAttempt::Closed => {
                    me.board.requeue(message, reply_mode);
                }
            }
        });
    }

    /// What Codex's answer to a steer means: the message is the running
    /// run's, or (the turn ended first) it queues for the next run.
    async fn settle_steer(
        self: Arc<Self>,
        active: Arc<RunSlot>,
        message: QueuedMessage,
        answer: tokio::sync::oneshot::Receiver<Result<(), crate::runner::ControlError>>,
        reply_mode: &'static str,
    ) {
        let me = self;
        {
            let taken = matches!(answer.await, Ok(Ok(())));
            let scope = message.scope.clone();
            if taken {
                if let Err(e) = me
                    .ctx
                    .store
                    .runs()
                    .steer_into_run(&active.run_id, message.inbox_id)
                {
                    // Codex has it; at worst a crash runs it once more.
                    tracing::error!(run_id = %active.run_id, error = %e, "cannot record a steered message");
                }
                let count = active.add_message();
                tracing::info!(scope, run_id = %active.run_id, "message added to the running turn");
                me.ctx.emit(
                    &scope,
                    &active.run_id,
                    &active.reply_to(),
                    Kind::Queued(pb::Queued {
                        message_id: message.inbound.message_id.clone(),
                        message_count: count,
                        reason: pb::QueueReason::Steered as i32,
                        reply_mode: pb::ReplyMode::from_word(reply_mode).unwrap_or_default() as i32,
                    }),
                );
                return;
            }
            tracing::info!(scope, run_id = %active.run_id, "the turn ended before the message could join it; queued");
            me.board.requeue(message, reply_mode);
        }
    }

    /// Once per scope (and worker): this runner queues what the chat asked
    /// to steer.
    pub(super) fn tell_no_steer(&self, scope: &str) {
        let first = self
            .told_no_steer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_string());
        if first {
            self.ctx.emit(
                scope,
                "",
                "",
                Kind::Notice(pb::Notice {
                    text: "Codex runs with the exec runner here, which cannot add a message to a running turn: messages sent while it works are answered in the next run (during_run = steer needs runner = \"app-server\").".into(),
                }),
            );
        }
    }
}
