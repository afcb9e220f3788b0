//! Work the ingress handler must not do inside the ACK window: a welcome
//! when the bot joins a chat, a notice answering a message the worker could
//! not take, and verified card clicks for the worker.
//!
//! It runs beside the worker-event loop, never inside it: each piece is its
//! own task with every await bounded, so a slow platform (a budget wait, a
//! hanging request) or a worker that does not answer holds up only that
//! piece, never the events of the runs. Nothing a user did is dropped
//! silently: a click the worker could not carry out, or refused without an
//! answer of its own, is answered in the chat.

use std::sync::Arc;
use std::time::Duration;

use fcx_proto::v1 as pb;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::egress::reply;
use crate::feishu::http::{OpenApiClient, OutgoingMessage, ReceiveIdType};
use crate::ingress::normalize::BotIdentity;
use crate::link::supervisor::{DeliverError, WorkerHandle};

/// Pieces of work in flight at once; beyond that the queue waits (and the
/// ingress handler answers clicks with "busy, try again").
const IN_FLIGHT: usize = 64;
/// One message to the platform, retries and rate-limit waits included.
const SEND_LIMIT: Duration = Duration::from_secs(90);
/// How long a click waits for a restarting worker.
const ACT_READY_WAIT: Duration = Duration::from_secs(20);
/// One `act` call to the worker.
const ACT_LIMIT: Duration = Duration::from_secs(15);
/// On shutdown, how long work in flight may still take.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Work that must not run inside the ACK window.
pub(crate) enum Deferred {
    Welcome {
        chat_id: String,
    },
    /// A message the worker did not take (busy, or refused), answered with
    /// `text`.
    Notice {
        message_id: String,
        text: String,
    },
    /// A verified card click for the worker.
    Act(Box<pb::Action>),
}

/// What the deferred work needs.
pub(crate) struct DeferredCtx {
    pub(crate) profile: String,
    pub(crate) http: OpenApiClient,
    pub(crate) worker: Arc<WorkerHandle>,
    pub(crate) bot: BotIdentity,
}

/// Runs deferred work from `rx` until it closes or `stop`; work in flight
/// then gets [`DRAIN_LIMIT`] to finish.
pub(crate) async fn run(
    ctx: DeferredCtx,
    mut rx: mpsc::Receiver<Deferred>,
    stop: CancellationToken,
) {
    let ctx = Arc::new(ctx);
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut work = JoinSet::new();
    loop {
        tokio::select! {
            d = rx.recv() => {
                let Some(d) = d else { break };
                // Never closed.
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                let ctx = ctx.clone();
                work.spawn(async move {
                    do_work(&ctx, d).await;
                    drop(slot);
                });
            }
            Some(r) = work.join_next(), if !work.is_empty() => {
                if let Err(e) = r {
                    tracing::error!(profile = %ctx.profile, error = %e, "deferred work failed");
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    let drained = tokio::time::timeout(DRAIN_LIMIT, async {
        while work.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(profile = %ctx.profile, left = work.len(), "deferred work still running at shutdown; abandoned");
    }
}

async fn do_work(ctx: &DeferredCtx, d: Deferred) {
    let profile = &ctx.profile;
    match d {
        Deferred::Welcome { chat_id } => {
            let text = format!(
                "👋 Hi, I'm {}. Mention me with a request and I'll run Codex on it. Send /help for commands.",
                if ctx.bot.name.is_empty() {
                    "fcx"
                } else {
                    &ctx.bot.name
                }
            );
            let msg = OutgoingMessage::new("post", reply::post_content(&text));
            let sent = ctx
                .http
                .im()
                .send_message(ReceiveIdType::ChatId, &chat_id, &msg);
            match tokio::time::timeout(SEND_LIMIT, sent).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(%profile, error = %e, "cannot post the welcome"),
                Err(_) => tracing::warn!(%profile, "posting the welcome timed out"),
            }
        }
        Deferred::Notice { message_id, text } => {
            answer(ctx, &message_id, "", &text).await;
        }
        Deferred::Act(action) => act(ctx, *action).await,
    }
}

/// Carries out a verified click. The worker answers under the card what it
/// refuses for a command, a form or a resume; a stop it refuses, or a
/// click it never got, is answered here.
async fn act(ctx: &DeferredCtx, action: pb::Action) {
    let profile = &ctx.profile;
    let kind = action.action_kind();
    let (message_id, chat_id) = (action.message_id.clone(), pb::Scope::chat_of(&action.scope));
    let failed = if !ctx.worker.wait_ready(ACT_READY_WAIT).await {
        Some("fcx is restarting".to_string())
    } else {
        match tokio::time::timeout(ACT_LIMIT, ctx.worker.act(action)).await {
            Ok(Ok(r)) if r.ok => None,
            Ok(Ok(r)) => {
                tracing::info!(%profile, message = %r.message, "card action not carried out");
                if kind == pb::ActionKind::Stop {
                    let text = format!("⚠️ Not stopped: {}.", r.message);
                    answer(ctx, &message_id, &chat_id, &text).await;
                }
                return;
            }
            Ok(Err(
                DeliverError::Busy(why) | DeliverError::Refused(why) | DeliverError::Storage(why),
            )) => Some(why),
            Ok(Err(DeliverError::Unavailable(_))) => Some("fcx is restarting".to_string()),
            Err(_) => Some("fcx did not answer in time".to_string()),
        }
    };
    if let Some(why) = failed {
        tracing::warn!(%profile, %why, "card action could not reach the worker");
        let retry = if kind == pb::ActionKind::Stop {
            "send /stop to stop the run"
        } else {
            "please send the command again"
        };
        let text = format!("⚠️ That click could not be carried out ({why}); {retry}.");
        answer(ctx, &message_id, &chat_id, &text).await;
    }
}

/// A short notice under `message_id` (else into `chat_id`), bounded; a
/// document comment's carrier is answered in its comment thread.
async fn answer(ctx: &DeferredCtx, message_id: &str, chat_id: &str, text: &str) {
    if let Some(target) = crate::egress::comment::Target::parse(message_id) {
        let drive = crate::feishu::drive::Drive::new(ctx.http.clone());
        let sent = crate::egress::comment::post(&drive, &ctx.bot.open_id, &target, text);
        if tokio::time::timeout(SEND_LIMIT, sent).await.is_err() {
            tracing::warn!(profile = %ctx.profile, "posting a notice in a comment timed out");
        }
        return;
    }
    let msg = OutgoingMessage::new("post", reply::post_content(text));
    let sent = async {
        if message_id.is_empty() {
            ctx.http
                .im()
                .send_message(ReceiveIdType::ChatId, chat_id, &msg)
                .await
                .map(|_| ())
        } else {
            ctx.http
                .im()
                .reply_message(message_id, &msg, false)
                .await
                .map(|_| ())
        }
    };
    match tokio::time::timeout(SEND_LIMIT, sent).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(profile = %ctx.profile, error = %e, "cannot post a notice"),
        Err(_) => tracing::warn!(profile = %ctx.profile, "posting a notice timed out"),
    }
}
