//! One door for a scope's worker events: every way fcx shows a chat what a
//! worker said (a streamed card, markdown or plain-text messages, and next a
//! document comment) is a [`Surface`].
//!
//! Two shapes fit it: a surface that streams a run as it goes (the run
//! card, [`CardOutput`]), and a surface that is only shown a run's final
//! state ([`FinalSurface`], wrapped in [`Folded`], which folds the run's
//! events into a [`RunState`] and hands over the result once it is done).
//! Messages in reply mode markdown and text are the second kind; so is a
//! document comment, which needs nothing but [`FinalSurface`].

use std::collections::HashMap;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb};
use futures::future::BoxFuture;

use crate::egress::cards::ScopeCards;
use crate::egress::render::{self, RunState};
use crate::egress::reply::{self, Format};
use crate::feishu::http::OpenApiClient;

/// Shows one scope's worker events, in order. Owned by the scope's lane.
pub(crate) trait Surface: Send {
    /// Shows `ev`. `draw`: bring a streamed view up to date now; a lane
    /// that holds more events of the same run passes `false` for all but
    /// the last (a surface that does not stream ignores it).
    fn show<'a>(&'a mut self, ev: &'a pb::WorkerEvent, draw: bool) -> BoxFuture<'a, ()>;

    /// Runs this surface still has open (the lane stays while there are
    /// any, so no run's final state is lost).
    fn open_runs(&self) -> usize;
}

/// A surface that is shown a run only once it ended: no streaming.
pub(crate) trait FinalSurface: Send + Sync {
    /// A run this surface saw start has ended; `state` is all of it, and
    /// `done` its `Done` event (where to answer, the key for idempotency).
    fn post_final<'a>(
        &'a self,
        done: &'a pb::WorkerEvent,
        state: &'a RunState,
    ) -> BoxFuture<'a, ()>;

    /// Any other event a user should see on its own: notices, command
    /// replies, the end of a run this surface never saw start.
    fn post_event<'a>(&'a self, ev: &'a pb::WorkerEvent) -> BoxFuture<'a, ()>;

    /// A message for Codex was accepted (`Queued`): show at once that it
    /// was heard. Returns what to take back once the run's answer is
    /// posted (`None`: nothing shown, or nothing to take back).
    fn acknowledge<'a>(&'a self, _queued: &'a pb::Queued) -> BoxFuture<'a, Option<Acknowledged>> {
        Box::pin(async { None })
    }

    /// The run answered: take back what [`FinalSurface::acknowledge`]
    /// showed.
    fn withdraw(&self, _acks: Vec<Acknowledged>) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A reaction fcx put on a user's message while its run was pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acknowledged {
    pub(crate) message_id: String,
    pub(crate) reaction_id: String,
}

/// The reaction that says "Codex is on it" in reply modes markdown and text
/// (feishu.md §3.6).
pub(crate) const ACK_EMOJI: &str = "Typing";

/// A [`FinalSurface`] as a [`Surface`]: folds each run it saw start, so its
/// final answer can show the whole run (files, warnings, footer), not just
/// the answer text.
pub(crate) struct Folded<S> {
    sink: S,
    runs: HashMap<String, RunState>,
    /// What each open run showed at accept, taken back once it answered.
    acks: HashMap<String, Vec<Acknowledged>>,
}

impl<S: FinalSurface> Folded<S> {
    pub(crate) fn new(sink: S) -> Self {
        Folded {
            sink,
            runs: HashMap::new(),
            acks: HashMap::new(),
        }
    }
}

impl<S: FinalSurface> Surface for Folded<S> {
    fn show<'a>(&'a mut self, ev: &'a pb::WorkerEvent, _draw: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !ev.run_id.is_empty() {
                // A run is followed from its announcement at accept, or from
                // its start when this gateway missed that.
                if matches!(ev.kind, Some(Kind::RunStarted(_) | Kind::Queued(_))) {
                    self.runs
                        .entry(ev.run_id.clone())
                        .or_insert_with(|| RunState::new(&ev.run_id));
                }
                if let Some(state) = self.runs.get_mut(&ev.run_id) {
                    state.apply(ev);
                }
                if let Some(Kind::Queued(q)) = &ev.kind {
                    if let Some(ack) = self.sink.acknowledge(q).await {
                        self.acks.entry(ev.run_id.clone()).or_default().push(ack);
                    }
                    return;
                }
                if matches!(ev.kind, Some(Kind::Done(_)))
                    && let Some(state) = self.runs.remove(&ev.run_id)
                {
                    self.sink.post_final(ev, &state).await;
                    if let Some(acks) = self.acks.remove(&ev.run_id) {
                        self.sink.withdraw(acks).await;
                    }
                    return;
                }
            }
            self.sink.post_event(ev).await;
        })
    }

    fn open_runs(&self) -> usize {
        self.runs.len()
    }
}

/// Chat messages: markdown `post`s or plain `text` (reply modes markdown
/// and text, and what a card falls back to).
pub(crate) struct Messages {
    pub(crate) http: OpenApiClient,
    /// Short, stable per profile: part of every idempotency key.
    pub(crate) tag: String,
    pub(crate) format: Format,
}

impl Messages {
    async fn deliver(&self, ev: &pb::WorkerEvent, body: &str, format: Format) {
        // Stable per event: a replay after a restart within the platform's
        // 1 h window is de-duplicated by the platform.
        let uuid = format!("fcx{}-{}", self.tag, ev.seq);
        reply::deliver_markdown(
            &self.http,
            &ev.reply_to,
            &pb::Scope::chat_of(&ev.scope),
            pb::Scope::key_is_topic(&ev.scope),
            body,
            &uuid,
            format,
        )
        .await;
    }
}

impl FinalSurface for Messages {
    fn post_final<'a>(
        &'a self,
        done: &'a pb::WorkerEvent,
        state: &'a RunState,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (body, format) = match self.format {
                // Already plain: converting again would strip what the text
                // renderer kept on purpose (a `#` line inside code).
                Format::Text | Format::Plain => (render::run_text(state), Format::Plain),
                Format::Markdown => (render::run_markdown(state), Format::Markdown),
            };
            self.deliver(done, &body, format).await;
        })
    }

    fn post_event<'a>(&'a self, ev: &'a pb::WorkerEvent) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(md) = reply::event_markdown(ev) else {
                return;
            };
            self.deliver(ev, &md, self.format).await;
        })
    }

    fn acknowledge<'a>(&'a self, queued: &'a pb::Queued) -> BoxFuture<'a, Option<Acknowledged>> {
        Box::pin(async move {
            if queued.message_id.is_empty() {
                return None;
            }
            match self
                .http
                .im()
                .add_reaction(&queued.message_id, ACK_EMOJI)
                .await
            {
                Ok(r) => Some(Acknowledged {
                    message_id: queued.message_id.clone(),
                    reaction_id: r.reaction_id,
                })
                .filter(|a| !a.reaction_id.is_empty()),
                Err(e) => {
                    // Only the early sign is lost; the answer still comes.
                    tracing::warn!(message = %queued.message_id, error = %e, "cannot react to an accepted message");
                    None
                }
            }
        })
    }

    fn withdraw(&self, acks: Vec<Acknowledged>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for a in acks {
                if let Err(e) = self
                    .http
                    .im()
                    .remove_reaction(&a.message_id, &a.reaction_id)
                    .await
                {
                    tracing::warn!(message = %a.message_id, error = %e, "cannot take back a reaction");
                }
            }
        })
    }
}

/// Reply mode card: a streamed CardKit card per run, command replies as
/// cards; what no card shows (notices, a run this gateway never saw start,
/// a card that could not be sent) goes out as a markdown message.
pub(crate) struct CardOutput {
    pub(crate) cards: ScopeCards,
    pub(crate) fallback: Messages,
}

impl Surface for CardOutput {
    fn show<'a>(&'a mut self, ev: &'a pb::WorkerEvent, draw: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(Kind::CommandReply(c)) = &ev.kind
                && self.cards.surface().command_card(ev, c).await
            {
                return;
            }
            if self.cards.on_event(ev, draw).await {
                return;
            }
            self.fallback.post_event(ev).await;
        })
    }

    fn open_runs(&self) -> usize {
        self.cards.open_runs()
    }
}
