//! Worker events out to the chats, one lane per scope.
//!
//! A lane is a task that handles its scope's events in order: run cards,
//! messages, and the gateway work a command asks for. Scopes run side by
//! side, so a card whose final write is retried for a minute, or a chat
//! rate-limited by the platform, holds up only its own scope. A lane that
//! has been idle for a while (no open run) ends; the next event for its
//! scope starts a new one after the old one has finished, so per-scope
//! order survives the hand-over.
//!
//! Within a lane, events that are waiting are taken as a batch and a run's
//! cards are touched once per batch instead of once per delta; the cards
//! themselves are rendered by their writers, once per operation sent, so
//! under a burst the cards stay current while the rendering cost stays
//! flat.
//!
//! What waits in memory is bounded, per lane and across the lanes: when a
//! chat's lane is full (the platform holds it back), or all lanes together
//! hold [`TOTAL_QUEUE`] events, the dispatcher waits and the rest stays in
//! the worker's event log, on disk, until there is room: nothing is
//! dropped, and a chat that cannot be written to only costs a bounded
//! amount of memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, gateway_request};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::egress::cards::CardSurface;
use crate::egress::comment::CommentSurface;
use crate::egress::reply::{self, Format};
use crate::egress::surface::{CardOutput, Folded, Messages, Surface};
use crate::feishu::drive::Drive;
use crate::feishu::http::{CreateChat, OpenApiClient, OutgoingMessage, ReceiveIdType};
use crate::link::feed::Commits;
use crate::link::supervisor::WorkerHandle;

/// A lane with no open run ends after this long without events.
const LANE_IDLE: Duration = Duration::from_secs(60);
/// Events taken at once by a lane.
const MAX_BATCH: usize = 512;
/// One `act` call to the worker (a lane must not wait forever).
const ACT_LIMIT: Duration = Duration::from_secs(15);
/// Finished lanes are swept from the map every this many dispatches.
const SWEEP_EVERY: u64 = 1024;
/// Events waiting in one lane at most: a streamed answer's deltas fit many
/// times over, so a busy chat rarely makes the others wait.
const LANE_QUEUE: usize = 8192;
/// Events waiting across all lanes of a channel at most.
const TOTAL_QUEUE: usize = 65536;

/// What every lane of one channel shares.
pub(crate) struct LaneCtx {
    pub(crate) http: OpenApiClient,
    pub(crate) worker: Arc<WorkerHandle>,
    pub(crate) cards: CardSurface,
    /// Short, stable per profile: part of every idempotency key.
    pub(crate) tag: String,
    pub(crate) reconnect: Arc<Notify>,
    /// The profile's reply mode, for scopes that have not chosen one.
    pub(crate) default_mode: String,
    /// What the lanes have handled: the cursor follows it.
    pub(crate) commits: Commits,
    /// The bot's open_id (comment answers recognise its earlier replies).
    pub(crate) bot: String,
    /// The profile's `outgoing/` directory, where the worker stages files.
    pub(crate) outgoing: std::path::PathBuf,
}

/// An event waiting in a lane, with its share of the channel's budget
/// (given back when the lane has handled it).
pub(crate) struct Queued<T> {
    pub(crate) ev: T,
    _slot: Option<OwnedSemaphorePermit>,
}

/// The bounded queues between the dispatcher and the lanes: `per_lane`
/// events in one lane, `total` across all of them.
pub(crate) struct Budget {
    per_lane: usize,
    total: Arc<Semaphore>,
}

impl Budget {
    pub(crate) fn new(per_lane: usize, total: usize) -> Self {
        Budget {
            per_lane,
            total: Arc::new(Semaphore::new(total)),
        }
    }

    /// A new lane's queue.
    pub(crate) fn lane<T>(&self) -> (mpsc::Sender<Queued<T>>, mpsc::Receiver<Queued<T>>) {
        mpsc::channel(self.per_lane.max(1))
    }

    /// `ev` with a slot of the total, waiting for one while all are taken.
    pub(crate) async fn slot<T>(&self, ev: T) -> Queued<T> {
        // The semaphore is never closed; were it, the event still goes on
        // (unbounded) rather than being lost.
        let slot = self.total.clone().acquire_owned().await.ok();
        Queued { ev, _slot: slot }
    }
}

struct Lane {
    tx: mpsc::Sender<Queued<pb::WorkerEvent>>,
    task: JoinHandle<()>,
}

/// The lanes of one channel; owned by its outbound task.
pub(crate) struct Lanes {
    ctx: Arc<LaneCtx>,
    lanes: HashMap<String, Lane>,
    dispatched: u64,
    budget: Budget,
}

impl Lanes {
    pub(crate) fn new(ctx: LaneCtx) -> Self {
        Lanes {
            ctx: Arc::new(ctx),
            lanes: HashMap::new(),
            dispatched: 0,
            budget: Budget::new(LANE_QUEUE, TOTAL_QUEUE),
        }
    }

    /// Hands `ev` to its scope's lane, starting one if needed. Waits while
    /// that lane, or all lanes together, are full (see the module doc).
    pub(crate) async fn dispatch(&mut self, ev: pb::WorkerEvent) {
        self.ctx.commits.taken(ev.seq);
        self.dispatched += 1;
        if self.dispatched.is_multiple_of(SWEEP_EVERY) {
            self.lanes.retain(|_, l| !l.task.is_finished());
        }
        let scope = ev.scope.clone();
        let item = self.budget.slot(ev).await;
        let (item, before) = match self.lanes.remove(&scope) {
            Some(lane) => match lane.tx.send(item).await {
                Ok(()) => {
                    self.lanes.insert(scope, lane);
                    return;
                }
                // The lane is ending (idle): the new one waits for it.
                Err(mpsc::error::SendError(item)) => (item, Some(lane.task)),
            },
            None => (item, None),
        };
        let (tx, rx) = self.budget.lane();
        // Cannot fail: the queue is new and its receiver alive.
        let _ = tx.try_send(item);
        let task = tokio::spawn(run_lane(self.ctx.clone(), rx, before));
        self.lanes.insert(scope, Lane { tx, task });
    }

    /// The first event not yet handled by every lane.
    pub(crate) fn resume_at(&self) -> Option<u64> {
        self.ctx.commits.resume_at()
    }

    pub(crate) fn commits(&self) -> Commits {
        self.ctx.commits.clone()
    }

    /// Lets every lane finish what it was given (final cards included),
    /// then returns.
    pub(crate) async fn close(self) {
        let tasks: Vec<JoinHandle<()>> = self
            .lanes
            .into_values()
            .map(|l| {
                drop(l.tx);
                l.task
            })
            .collect();
        for t in tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "an outbound lane failed");
            }
        }
    }
}

/// What a lane remembers about its scope.
struct LaneState {
    /// Reply mode per open run (from its RunStarted).
    modes: HashMap<String, String>,
    /// The scope's mode as last stated by the worker.
    scope_mode: Option<String>,
    /// One surface per reply mode; a run stays on the one it started on.
    card: CardOutput,
    markdown: Folded<Messages>,
    text: Folded<Messages>,
    /// Document-comment runs: answered in the comment thread.
    comment: Folded<CommentSurface>,
    /// The first seq of each open run (its Queued or RunStarted): the
    /// cursor stays there until
    /// the run's end is handled, so a restart replays the whole run (its
    /// card is continued, its folded answer complete).
    started: HashMap<String, u64>,
}

impl LaneState {
    fn new(ctx: &LaneCtx) -> Self {
        let messages = |format| Messages {
            http: ctx.http.clone(),
            tag: ctx.tag.clone(),
            format,
        };
        LaneState {
            modes: HashMap::new(),
            scope_mode: None,
            card: CardOutput {
                cards: ctx.cards.scope(),
                fallback: messages(Format::of_mode("card")),
            },
            markdown: Folded::new(messages(Format::Markdown)),
            text: Folded::new(messages(Format::Text)),
            comment: Folded::new(CommentSurface {
                drive: Drive::new(ctx.http.clone()),
                bot: ctx.bot.clone(),
            }),
            started: HashMap::new(),
        }
    }

    /// The surface reply mode `mode` writes to.
    fn surface(&mut self, mode: &str) -> &mut dyn Surface {
        if mode == "card" {
            return &mut self.card;
        }
        match Format::of_mode(mode) {
            Format::Text => &mut self.text,
            Format::Markdown | Format::Plain => &mut self.markdown,
        }
    }

    fn open_runs(&self) -> usize {
        self.card.open_runs()
            + self.markdown.open_runs()
            + self.text.open_runs()
            + self.comment.open_runs()
    }
}

async fn run_lane(
    ctx: Arc<LaneCtx>,
    mut rx: mpsc::Receiver<Queued<pb::WorkerEvent>>,
    before: Option<JoinHandle<()>>,
) {
    if let Some(b) = before {
        let _ = b.await;
    }
    let mut st = LaneState::new(&ctx);
    let mut batch = Vec::with_capacity(16);
    loop {
        let first = match tokio::time::timeout(LANE_IDLE, rx.recv()).await {
            Ok(Some(q)) => q,
            Ok(None) => return,
            Err(_) if st.open_runs() == 0 && st.started.is_empty() => {
                // Refuse new events, then handle any that slipped in.
                rx.close();
                while let Ok(q) = rx.try_recv() {
                    handle(&ctx, &mut st, &q.ev, true).await;
                    settle(&ctx, &mut st, &q.ev);
                }
                return;
            }
            Err(_) => continue,
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        for i in 0..batch.len() {
            let draw = !defers(&batch[i].ev, batch.get(i + 1).map(|q| &q.ev));
            handle(&ctx, &mut st, &batch[i].ev, draw).await;
            settle(&ctx, &mut st, &batch[i].ev);
        }
        batch.clear();
    }
}

/// `ev` is handled: the cursor may pass it, except a run's start, which it
/// passes with the run's end.
fn settle(ctx: &LaneCtx, st: &mut LaneState, ev: &pb::WorkerEvent) {
    match &ev.kind {
        // A run's first event: its announcement at accept, or its start
        // when this gateway missed that. The card is keyed by that seq, so
        // a replay from it continues the same card.
        Some(Kind::RunStarted(_) | Kind::Queued(_))
            if !ev.run_id.is_empty() && !st.started.contains_key(&ev.run_id) =>
        {
            st.started.insert(ev.run_id.clone(), ev.seq);
        }
        Some(Kind::Done(_)) => {
            ctx.commits.handled(ev.seq);
            if let Some(seq) = st.started.remove(&ev.run_id) {
                ctx.commits.handled(seq);
            }
        }
        _ => ctx.commits.handled(ev.seq),
    }
}

/// Whether `ev`'s card drawing can wait for `next` (a later event of the
/// same run that draws, or finishes, the card anyway).
fn defers(ev: &pb::WorkerEvent, next: Option<&pb::WorkerEvent>) -> bool {
    let Some(next) = next else {
        return false;
    };
    !ev.run_id.is_empty()
        && next.run_id == ev.run_id
        && matches!(
            ev.kind,
            Some(
                Kind::TextDelta(_)
                    | Kind::ReasoningDelta(_)
                    | Kind::ToolOutputDelta(_)
                    | Kind::ToolStart(_)
                    | Kind::ToolEnd(_)
                    | Kind::Usage(_)
                    | Kind::ThreadBound(_)
                    | Kind::Error(_)
            )
        )
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

async fn handle(ctx: &LaneCtx, st: &mut LaneState, ev: &pb::WorkerEvent, draw: bool) {
    tracing::debug!(seq = ev.seq, scope = %ev.scope, run_id = %ev.run_id, "outbound event");
    gateway_work(ctx, ev).await;
    if let Some(Kind::CommandReply(c)) = &ev.kind
        && c.command() == pb::CommandName::Approval
        && !c.buttons.is_empty()
    {
        // Only a card carries its buttons, whatever the scope's mode.
        let posted = is_chat_scope(&ev.scope)
            && !pb::Scope::key_is_comment(&ev.scope)
            && st.card.cards.surface().command_card(ev, c).await;
        if !posted {
            crate::egress::approval_post::undeliverable(&ctx.worker, ev, c).await;
        }
        return;
    }
    if let Some(Kind::CommandReply(c)) = &ev.kind
        && c.command() == pb::CommandName::Late
        && !c.buttons.is_empty()
        && is_chat_scope(&ev.scope)
        && !pb::Scope::key_is_comment(&ev.scope)
        && st.card.cards.surface().command_card(ev, c).await
    {
        // The Run button exists only on a card, whatever the scope's
        // mode; a card that cannot be sent falls back to the mode's
        // message, whose body says to send the message again.
        return;
    }
    if pb::Scope::key_is_comment(&ev.scope) {
        st.comment.show(ev, draw).await;
        return;
    }
    if !is_chat_scope(&ev.scope) {
        return;
    }
    let opening = match &ev.kind {
        Some(Kind::RunStarted(rs)) => Some(rs.reply_mode().word()),
        Some(Kind::Queued(q)) => Some(q.reply_mode().word()),
        _ => None,
    };
    let known = st.modes.get(&ev.run_id).cloned();
    let mode = match (&ev.kind, opening, known) {
        // A run stays on the surface its first event (the announcement at
        // accept) chose, so it finishes on the card or reaction it began.
        (_, _, Some(m)) => m,
        (_, Some(mode), None) => {
            let m = nonempty(mode)
                .or_else(|| st.scope_mode.clone())
                .unwrap_or_else(|| ctx.default_mode.clone());
            st.scope_mode = Some(m.clone());
            st.modes.insert(ev.run_id.clone(), m.clone());
            m
        }
        (Some(Kind::CommandReply(c)), _, None) => {
            if let Some(m) = nonempty(c.reply_mode().word()) {
                st.scope_mode = Some(m);
            }
            st.scope_mode
                .clone()
                .unwrap_or_else(|| ctx.default_mode.clone())
        }
        _ => st
            .scope_mode
            .clone()
            .unwrap_or_else(|| ctx.default_mode.clone()),
    };
    if matches!(ev.kind, Some(Kind::Done(_))) {
        st.modes.remove(&ev.run_id);
    }
    if let Some(Kind::FileOut(f)) = &ev.kind {
        // A message of its own, whatever the surface.
        return crate::egress::files::send(ctx, ev, f, Format::of_mode(&mode)).await;
    }
    st.surface(&mode).show(ev, draw).await;
}

/// What a command asked of the gateway itself (`/new group`, `/reconnect`).
async fn gateway_work(ctx: &LaneCtx, ev: &pb::WorkerEvent) {
    let Some(Kind::CommandReply(c)) = &ev.kind else {
        return;
    };
    let Some(kind) = c.gateway_request.as_ref().and_then(|r| r.kind.as_ref()) else {
        return;
    };
    let http = &ctx.http;
    let tag = &ctx.tag;
    match kind {
        gateway_request::Kind::Reconnect(_) => ctx.reconnect.notify_one(),
        gateway_request::Kind::CreateGroup(cg) => {
            let requester = cg.requester.clone().unwrap_or_default();
            let req = CreateChat {
                name: Some(cg.name.clone()).filter(|n| !n.is_empty()),
                user_id_list: vec![requester.id.clone()],
                // The event log can replay after a gateway crash: the same
                // key makes a replay create no second group.
                uuid: Some(format!("fcxg{tag}-{}", ev.seq)),
                ..Default::default()
            };
            let outcome = match http.im().create_chat(&req).await {
                Ok(chat) if !chat.chat_id.is_empty() => {
                    let act = ctx.worker.act(pb::Action {
                        kind: Some(pb::action::Kind::GroupCreated(pb::GroupCreatedAction {
                            source_scope: cg.inherit_from_scope.clone(),
                            chat_id: chat.chat_id.clone(),
                        })),
                        scope: pb::Scope::chat(&chat.chat_id).key(),
                        actor: Some(requester),
                        ..Default::default()
                    });
                    match tokio::time::timeout(ACT_LIMIT, act).await {
                        Err(_) => Err("the worker did not answer in time".to_string()),
                        Ok(Ok(r)) if r.ok => {
                            let msg =
                                OutgoingMessage::new("post", reply::post_content(&cg.welcome))
                                    .with_uuid(format!("fcxw{tag}-{}", ev.seq));
                            if let Err(e) = http
                                .im()
                                .send_message(ReceiveIdType::ChatId, &chat.chat_id, &msg)
                                .await
                            {
                                tracing::warn!(error = %e, "cannot post the new group's welcome");
                            }
                            Ok(())
                        }
                        Ok(Ok(r)) => Err(r.message),
                        Ok(Err(e)) => Err(e.to_string()),
                    }
                }
                Ok(_) => Err("the platform returned no chat id".to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = outcome {
                tracing::warn!(scope = %ev.scope, %why, "cannot create the group");
                if !ev.reply_to.is_empty() {
                    let msg = OutgoingMessage::new(
                        "post",
                        reply::post_content(&format!("❌ The group could not be created: {why}")),
                    );
                    let _ = http.im().reply_message(&ev.reply_to, &msg, false).await;
                }
            }
        }
    }
}

/// Chat scopes this channel answers (the console has its own printer).
pub(crate) fn is_chat_scope(scope: &str) -> bool {
    pb::Scope::parse(scope).is_some() && scope != crate::ingress::console::SCOPE
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    #[tokio::test]
    async fn a_full_lane_or_a_spent_total_makes_the_dispatcher_wait() {
        let budget = Budget::new(2, 3);
        let (a_tx, mut a_rx) = budget.lane::<u32>();
        let (b_tx, mut b_rx) = budget.lane::<u32>();
        for i in 0..2 {
            let q = budget.slot(i).now_or_never().expect("a slot is free");
            a_tx.try_send(q).map_err(|_| ()).expect("room in lane a");
        }
        // Lane a is full: a third event for it has to wait.
        let q = budget.slot(2).now_or_never().expect("a slot is free");
        let mut send = Box::pin(a_tx.send(q));
        assert!((&mut send).now_or_never().is_none(), "lane a is full");
        // That event holds the last slot of the total: lane b waits too.
        let mut slot_b = Box::pin(budget.slot(10));
        assert!((&mut slot_b).now_or_never().is_none(), "total spent");
        // Lane a handles one event: its queue has room, and once that
        // event's slot is given back, lane b gets one.
        let first = a_rx.recv().await.expect("an event");
        assert_eq!(first.ev, 0);
        send.await
            .map_err(|_| ())
            .expect("sent once there was room");
        assert!((&mut slot_b).now_or_never().is_none(), "slot still held");
        drop(first);
        let q = slot_b.await;
        b_tx.try_send(q).map_err(|_| ()).expect("room in lane b");
        assert_eq!(b_rx.recv().await.map(|q| q.ev), Some(10));
        let rest: Vec<u32> = [a_rx.recv().await, a_rx.recv().await]
            .into_iter()
            .flatten()
            .map(|q| q.ev)
            .collect();
        assert_eq!(rest, [1, 2], "order kept");
    }
}
