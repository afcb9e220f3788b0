//! The worker-event loop of one channel: it follows the worker's event
//! broadcast and hands each event to its scope's lane, and it carries out
//! the work the ingress handler must not do inside the ACK window
//! (welcomes, busy answers, verified card clicks).

use std::sync::Arc;
use std::time::Duration;

use fcx_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::egress::reply;
use crate::feishu::http::{OpenApiClient, OutgoingMessage, ReceiveIdType};
use crate::ingress::normalize::BotIdentity;
use crate::link::supervisor::WorkerHandle;

/// Work that must not run inside the ACK window.
pub enum Outbound {
    Welcome {
        chat_id: String,
    },
    Busy {
        message_id: String,
        text: String,
    },
    /// A verified card click for the worker.
    Act(Box<pb::Action>),
}

/// Worker events → chat messages, one at a time (in order per profile; the
/// HTTP client waits out rate limits).
/// What the outbound task owns.
pub struct Out {
    pub profile: String,
    pub http: OpenApiClient,
    pub worker: Arc<WorkerHandle>,
    pub bot: BotIdentity,
    pub lanes: crate::egress::lanes::Lanes,
}

pub async fn outbound(out: Out, mut rx: mpsc::Receiver<Outbound>, stop: CancellationToken) {
    let Out {
        profile,
        http,
        worker,
        bot,
        mut lanes,
    } = out;
    let mut events = worker.subscribe();
    // On stop, keep going until the worker is down: the runs it interrupts
    // while stopping must still reach their cards and chats.
    let mut stopping: Option<std::time::Instant> = None;
    // The handler holding the sender goes away with the long connection;
    // that ends the commands, not the worker's events.
    let mut commands_open = true;
    loop {
        if let Some(since) = stopping
            && (worker.view().phase == crate::link::supervisor::Phase::Stopped
                || since.elapsed() > Duration::from_secs(40))
        {
            tracing::debug!(%profile, "worker stopped; sending what it said last");
            while let Ok(ev) = events.try_recv() {
                lanes.dispatch(ev);
            }
            lanes.close().await;
            return;
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => lanes.dispatch(ev),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(%profile, skipped = n, "outbound fell behind; events skipped");
                }
                Err(_) => {
                    lanes.close().await;
                    return;
                }
            },
            o = rx.recv(), if commands_open => match o {
                Some(Outbound::Welcome { chat_id }) => {
                    let text = format!(
                        "👋 Hi, I'm {}. Mention me with a request and I'll run Codex on it. Send /help for commands.",
                        if bot.name.is_empty() { "fcx" } else { &bot.name }
                    );
                    let msg = OutgoingMessage::new("post", reply::post_content(&text));
                    if let Err(e) = http.send_message(ReceiveIdType::ChatId, &chat_id, &msg).await {
                        tracing::warn!(%profile, error = %e, "cannot post the welcome");
                    }
                }
                // The worker answers refusals under the card itself (a
                // stranger gets silence); here they are only logged.
                Some(Outbound::Act(action)) => match worker.act(*action).await {
                    Ok(r) if !r.ok => tracing::info!(%profile, message = %r.message, "card action not carried out"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%profile, error = %e, "card action could not reach the worker"),
                },
                Some(Outbound::Busy { message_id, text }) => {
                    let msg = OutgoingMessage::new("post", reply::post_content(&format!("⏳ {text}")));
                    if let Err(e) = http.reply_message(&message_id, &msg, false).await {
                        tracing::warn!(%profile, error = %e, "cannot post the busy answer");
                    }
                }
                None => commands_open = false,
            },
            _ = stop.cancelled(), if stopping.is_none() => {
                stopping = Some(std::time::Instant::now());
            }
            _ = tokio::time::sleep(Duration::from_millis(50)), if stopping.is_some() => {}
        }
    }
}
