//! Run cards: one CardKit card per run, streamed while Codex works, with a
//! signed stop button; and the fallbacks that never leave a user without the
//! final state.
//!
//! Per run: create the card entity, reply with it (in thread for topics),
//! then one serialized [`CardWriter`] owns the card's sequence counter. The
//! lane only folds events into the run's state and marks its cards dirty;
//! each writer renders its card when it is about to send (a [`LiveCard`]
//! source), so an update carries every event up to that instant and a burst
//! of deltas costs one render per operation, not one per delta. An update
//! is element content when only the answer text changed, else the whole
//! card. At the end the final card is
//! written and streaming is closed with a summary. If the card cannot be
//! created or its writer fails for good, the final state goes out as a
//! markdown message instead; an answer longer than one card continues in
//! markdown messages, so it is always delivered complete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb};

use crate::egress::render::{self, ANSWER_ELEMENT_ID, RenderMode, RenderOptions, RunState};
use crate::egress::reply;
use crate::feishu::cardkit::{
    self, CardKit, CardSource, CardWriter, FailureKind, LiveUpdate, WriterConfig,
};
use crate::feishu::http::{OpenApiClient, OutgoingMessage};
use crate::ingress::callback::Claims;
use crate::ingress::click::{
    ACTION_APPROVAL, ACTION_COMMAND, ACTION_CONFIG, ACTION_RESUME, ACTION_RUN_LATE, ACTION_STOP,
    FormTokens,
};
use crate::ingress::keys::SharedKeys;
use crate::link::caps::WorkerCaps;
use crate::link::supervisor::now_ms;

/// How long a stop button stays valid (a run rarely outlives it; `/stop`
/// always works).
const BUTTON_TTL_SECS: i64 = 6 * 3600;
/// How long the final card write keeps being retried through transient
/// failures: a card left showing "running" misleads more than a short
/// delay, but the final state must still reach the user as a message if
/// the platform stays down.
const FINAL_WRITE_WINDOW: Duration = Duration::from_secs(60);
const FINAL_RETRY_BACKOFF_START: Duration = Duration::from_millis(500);
const FINAL_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Fresh writers a run may start after transient failures mid-run; beyond
/// that the card waits for the final write.
const MAX_WRITER_RESTARTS: u32 = 3;

struct ActiveCard {
    card_id: String,
    /// The chat message that shows the card.
    message_id: String,
    writer: CardWriter,
    source: Arc<LiveCard>,
    /// Writers started after the first one failed transiently.
    restarts: u32,
    /// The writer failed for good; the card waits for the final write.
    stalled: bool,
}

/// A run's state, shared by its lane (which folds events in) and its cards'
/// writers (which render it when they send).
struct LiveRun {
    state: RunState,
    stop_token: Option<String>,
    /// False once `Done` arrived: from then on the final write alone says
    /// what the cards show.
    open: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The critical sections cannot panic halfway; a poisoned lock still
    // holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A card as the platform shows it (or will, once an update is accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    /// The card JSON without the answer text (see [`chrome`]).
    chrome: String,
    answer: String,
    /// The answer could be cut out of the JSON; if not, `chrome` is the
    /// whole JSON and only full updates are safe.
    cut: bool,
}

impl Shown {
    fn of(rendered: &render::RenderedCard) -> Self {
        let chrome = chrome(rendered);
        Shown {
            cut: chrome.len() != rendered.json.len(),
            chrome,
            answer: rendered.answer.clone(),
        }
    }
}

#[derive(Default)]
struct Sent {
    /// What the platform last accepted; `None`: unknown, send the whole
    /// card.
    accepted: Option<Shown>,
    /// The last accepted update was a whole card.
    card_last: bool,
    /// What the update in flight will show once accepted, and whether it
    /// is a whole card.
    in_flight: Option<(Shown, bool)>,
}

/// One live card of a run, rendered on its writer's demand.
struct LiveCard {
    run: Arc<Mutex<LiveRun>>,
    mode: RenderMode,
    sent: Mutex<Sent>,
}

impl LiveCard {
    /// `created`: what the card entity was created with.
    fn new(run: Arc<Mutex<LiveRun>>, mode: RenderMode, created: Option<Shown>) -> Self {
        LiveCard {
            run,
            mode,
            sent: Mutex::new(Sent {
                card_last: created.is_some(),
                accepted: created,
                in_flight: None,
            }),
        }
    }

    /// Forget what the platform shows (a new writer after a failure), so
    /// the next update is the whole card.
    fn reset(&self) {
        *lock(&self.sent) = Sent::default();
    }
}

impl CardSource for LiveCard {
    fn pull(&self) -> Option<LiveUpdate> {
        let rendered = {
            let run = lock(&self.run);
            if !run.open {
                return None;
            }
            render::render(&run.state, &live_options(&run, self.mode.clone()))
        };
        let now = Shown::of(&rendered);
        let mut sent = lock(&self.sent);
        let content = |shown: Shown| {
            let update = LiveUpdate::Content {
                element_id: ANSWER_ELEMENT_ID.to_string(),
                content: shown.answer.clone(),
            };
            (update, shown, false)
        };
        let (update, shown, card) = match &sent.accepted {
            Some(a) if *a == now => {
                sent.in_flight = None;
                return None;
            }
            Some(a) if a.chrome == now.chrome => content(now),
            // Whole-card updates do not animate the text: right after one,
            // a grown answer streams first and the rest of the card follows
            // with the next operation (as when updates were pushed).
            Some(a) if sent.card_last && a.cut && now.cut && a.answer != now.answer => {
                content(Shown {
                    chrome: a.chrome.clone(),
                    ..now
                })
            }
            _ => (LiveUpdate::Card(rendered.json), now, true),
        };
        sent.in_flight = Some((shown, card));
        Some(update)
    }

    fn settle(&self, accepted: bool) {
        let mut sent = lock(&self.sent);
        if let Some((shown, card)) = sent.in_flight.take()
            && accepted
        {
            sent.accepted = Some(shown);
            sent.card_last = card;
        }
    }
}

/// Render options for a live card.
fn live_options(run: &LiveRun, mode: RenderMode) -> RenderOptions {
    RenderOptions {
        stop_token: if mode == RenderMode::Main {
            run.stop_token.clone()
        } else {
            None
        },
        // A live clock would make every render differ and turn each text
        // delta into a full card update; the final card shows the time.
        now_ms: None,
        mode,
        tool_display: run.state.tool_display,
        ..Default::default()
    }
}

/// Render options for a final card.
fn final_options(state: &RunState, mode: RenderMode) -> RenderOptions {
    RenderOptions {
        now_ms: Some(now_ms()),
        mode,
        tool_display: state.tool_display,
        ..Default::default()
    }
}

/// Cards a run may use: the main card and continuation cards for the
/// answer pieces that do not fit it. Beyond that the answer continues in
/// messages, so a runaway answer cannot flood a chat with cards.
const MAX_CARDS_PER_RUN: usize = 8;

struct CardRun {
    live: Arc<Mutex<LiveRun>>,
    scope: String,
    reply_to: String,
    /// The run's first event's seq (Queued, else RunStarted): card sends
    /// are keyed by it, so a replay after a restart is de-duplicated by the
    /// platform.
    seq: u64,
    /// `cards[0]` is the run's card; `cards[i]` carries answer piece `i`.
    cards: Vec<ActiveCard>,
    /// No card could be created or sent: the final state goes out as a
    /// message.
    fallback: bool,
    /// A continuation card could not be opened: later pieces go out as
    /// messages at the end.
    no_more_cards: bool,
}

/// What every lane shares to draw run cards: the CardKit client, the keys
/// that sign buttons, and the form tokens the click handler falls back on.
#[derive(Clone)]
pub(crate) struct CardSurface {
    kit: CardKit,
    http: OpenApiClient,
    keys: SharedKeys,
    forms: FormTokens,
    tag: String,
    journal: Arc<CardJournal>,
    /// What the worker can carry out: no button for anything else.
    caps: WorkerCaps,
}

/// One scope's run cards (owned by the scope's lane, so a slow card in one
/// chat never holds up another).
pub(crate) struct ScopeCards {
    surface: CardSurface,
    runs: HashMap<String, CardRun>,
}

impl CardSurface {
    pub(crate) fn new(
        http: OpenApiClient,
        keys: SharedKeys,
        forms: FormTokens,
        tag: String,
        caps: WorkerCaps,
    ) -> Self {
        CardSurface {
            kit: CardKit::new(http.clone()),
            http,
            keys,
            forms,
            tag,
            journal: Arc::new(CardJournal::in_memory()),
            caps,
        }
    }

    /// Keeps the open run cards in `path`, so the next fcxd continues them.
    pub(crate) fn with_journal(mut self, path: std::path::PathBuf) -> Self {
        self.journal = Arc::new(CardJournal::open(path));
        self
    }

    pub(crate) fn scope(&self) -> ScopeCards {
        ScopeCards {
            surface: self.clone(),
            runs: HashMap::new(),
        }
    }
}

impl ScopeCards {
    /// Runs whose card is still open (the lane stays while there are any).
    /// The card surface these cards are drawn with (command cards too).
    pub(crate) fn surface(&self) -> &CardSurface {
        &self.surface
    }

    pub(crate) fn open_runs(&self) -> usize {
        self.runs.len()
    }

    /// Handle a run event; `false` when the event is not a card's (the
    /// caller answers it as a message). `render`: bring the cards up to date
    /// now (mark them dirty, open a continuation card the answer outgrew);
    /// a lane that holds more events of the same run passes `false` for all
    /// but the last.
    pub(crate) async fn on_event(&mut self, ev: &pb::WorkerEvent, render: bool) -> bool {
        if ev.run_id.is_empty() || matches!(ev.kind, Some(Kind::Notice(_) | Kind::CommandReply(_)))
        {
            return false;
        }
        if !self.runs.contains_key(&ev.run_id) {
            // Only a run's first event opens a card: its announcement at
            // accept (the card shows "Queued" at once and the run streams
            // into it later), or its start when this gateway missed that. A
            // late event of a run this gateway never saw (a replay) gets a
            // plain answer.
            if !matches!(ev.kind, Some(Kind::RunStarted(_) | Kind::Queued(_))) {
                return false;
            }
            let mut state = RunState::new(&ev.run_id);
            state.apply(ev);
            let mut run = CardRun {
                live: Arc::new(Mutex::new(LiveRun {
                    state,
                    stop_token: self.surface.sign_stop(ev),
                    open: true,
                })),
                scope: ev.scope.clone(),
                reply_to: ev.reply_to.clone(),
                seq: ev.seq,
                cards: Vec::new(),
                fallback: false,
                no_more_cards: false,
            };
            self.surface.open_main(&mut run).await;
            self.runs.insert(ev.run_id.clone(), run);
            return true;
        }
        let Some(mut run) = self.runs.remove(&ev.run_id) else {
            return false;
        };
        let done = matches!(ev.kind, Some(Kind::Done(_)));
        // A card opened at accept gets its stop button once the run starts.
        let stop_token = self.surface.sign_stop(ev);
        {
            let mut live = lock(&run.live);
            if stop_token.is_some() {
                live.stop_token = stop_token;
            }
            // Closed with the same lock: no writer renders the ended run as
            // a live card.
            live.open &= !done;
            live.state.apply(ev);
            if done {
                live.state.final_buttons = self.surface.sign_final(ev, &live.state);
            }
        }
        if done {
            self.surface.finish(run).await;
            return true;
        }
        // A run without a card (fallback) only needs its final state.
        if render && !run.cards.is_empty() {
            self.surface.draw(&mut run).await;
        }
        self.runs.insert(ev.run_id.clone(), run);
        true
    }
}

impl CardSurface {
    /// Brings every open card of a live run up to date: their writers
    /// render them when they next send; a piece of the answer no card
    /// carries yet gets its continuation card now (opening one is HTTP, so
    /// it stays here, not in a writer).
    async fn draw(&self, run: &mut CardRun) {
        // Only the piece count, not a render: cheap enough per batch.
        let pieces = {
            let live = lock(&run.live);
            let budget = live_options(&live, RenderMode::Main).effective_answer_budget();
            render::split_pieces(&live.state.answer(), budget).len()
        };
        if let Some(card) = run.cards.first_mut() {
            self.touch(card);
        }
        if pieces <= 1 {
            return;
        }
        // Every piece but the last is final; only the last one or two cards
        // can change.
        let from = run.cards.len().saturating_sub(1).max(1);
        for piece in from..pieces.min(MAX_CARDS_PER_RUN) {
            if let Some(card) = run.cards.get_mut(piece) {
                self.touch(card);
            } else if !run.no_more_cards {
                let mode = RenderMode::Continuation { piece };
                let r = {
                    let live = lock(&run.live);
                    render::render(&live.state, &live_options(&live, mode))
                };
                match self.open_card(run, &r, piece).await {
                    Some(card) => {
                        // The run may have moved on while the card was
                        // being created.
                        card.writer.mark_dirty();
                        run.cards.push(card);
                    }
                    None => run.no_more_cards = true,
                }
            }
        }
    }

    /// Tells a card's writer the run changed; restarts a writer that failed
    /// transiently.
    fn touch(&self, card: &mut ActiveCard) {
        if let Some(f) = card.writer.failure() {
            // The platform ends streaming 10 minutes after it was last
            // enabled: a long run turns it on again (each time, however
            // long the run) instead of freezing its card.
            let reopen = f.kind == FailureKind::StreamingClosed;
            let transient =
                f.kind == FailureKind::Unavailable && card.restarts < MAX_WRITER_RESTARTS;
            if reopen || transient {
                // Carry on with a fresh writer above every sequence the old
                // one may have used, starting from the whole current card.
                if transient {
                    card.restarts += 1;
                }
                tracing::info!(card = %card.card_id, code = ?f.code, restarts = card.restarts, reopen, "card writer stopped; starting a new one");
                card.source.reset();
                card.writer = CardWriter::spawn_live(
                    self.kit.clone(),
                    card.card_id.clone(),
                    f.last_sequence,
                    WriterConfig::default(),
                    card.source.clone(),
                );
                if reopen {
                    card.writer
                        .update_settings(cardkit::open_streaming_settings());
                }
                card.writer.mark_dirty();
            } else if !card.stalled {
                tracing::warn!(card = %card.card_id, code = ?f.code, kind = ?f.kind, "card writer failed; the card waits for the final write");
                card.stalled = true;
            }
            return;
        }
        card.writer.mark_dirty();
    }

    fn sign_stop(&self, ev: &pb::WorkerEvent) -> Option<String> {
        let Some(Kind::RunStarted(rs)) = &ev.kind else {
            return None;
        };
        if !self.caps.offers(pb::ActionKind::Stop) {
            return None;
        }
        let operator = rs.requester.as_ref().map(|a| a.id.clone())?;
        if operator.is_empty() {
            return None;
        }
        let chat_id = pb::Scope::chat_of(&ev.scope);
        let claims = Claims::new(
            ev.run_id.clone(),
            ev.scope.clone(),
            chat_id,
            operator,
            "stop",
            rs.fingerprint.clone(),
            now_ms() / 1000 + BUTTON_TTL_SECS,
        );
        match self.keys.sign(&claims) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "cannot sign the stop button; the card has none");
                None
            }
        }
    }

    async fn open_main(&self, run: &mut CardRun) {
        if run.reply_to.is_empty() {
            run.fallback = true;
            return;
        }
        let rendered = {
            let live = lock(&run.live);
            render::render(&live.state, &live_options(&live, RenderMode::Main))
        };
        match self.open_card(run, &rendered, 0).await {
            Some(card) => run.cards.push(card),
            None => run.fallback = true,
        }
    }

    /// Creates a card entity from `rendered`, sends it as a reply to the
    /// run's message and starts its writer (a card rendered final needs no
    /// writer, but one costs nothing until used). `None`: the platform
    /// refused; the caller falls back to messages.
    async fn open_card(
        &self,
        run: &CardRun,
        rendered: &render::RenderedCard,
        piece: usize,
    ) -> Option<ActiveCard> {
        let run_id = lock(&run.live).state.run_id.clone();
        // A run replayed after an fcxd restart continues the card it has.
        let adopted = (piece == 0).then(|| self.journal.get(&run_id)).flatten();
        let (card_id, sequence_from) = match adopted {
            Some(open) => {
                let from = open.next_sequence(now_ms());
                tracing::info!(run_id = %run_id, card = %open.card_id, from, "continuing the run's card after a restart");
                (open.card_id, from)
            }
            None => match self.kit.create_card(&rendered.json).await {
                Ok(id) => (id, 0),
                Err(e) => {
                    tracing::warn!(scope = %run.scope, piece, error = %e, "cannot create a run card; answering with messages");
                    return None;
                }
            },
        };
        if piece == 0 {
            // Before the card is sent: a crash in between replays into
            // this entity, the one the message will show.
            self.journal.insert(
                &run_id,
                OpenCard {
                    card_id: card_id.clone(),
                    since_ms: now_ms(),
                    sequence_from,
                },
            );
        }
        let uuid = if piece == 0 {
            format!("fcxc{}-{}", self.tag, run.seq)
        } else {
            format!("fcxc{}-{}-p{piece}", self.tag, run.seq)
        };
        let msg = cardkit::card_message(&card_id)
            .with_uuid(uuid)
            .in_chat(pb::Scope::chat_of(&run.scope));
        let in_thread = pb::Scope::key_is_topic(&run.scope);
        match self
            .http
            .im()
            .reply_message(&run.reply_to, &msg, in_thread)
            .await
        {
            Ok(m) => {
                let mode = if piece == 0 {
                    RenderMode::Main
                } else {
                    RenderMode::Continuation { piece }
                };
                // What an adopted card shows is unknown: its first write is
                // a whole card.
                let shown = (sequence_from == 0).then(|| Shown::of(rendered));
                let source = Arc::new(LiveCard::new(run.live.clone(), mode, shown));
                let writer = CardWriter::spawn_live(
                    self.kit.clone(),
                    card_id.clone(),
                    sequence_from,
                    WriterConfig::default(),
                    source.clone(),
                );
                Some(ActiveCard {
                    card_id,
                    message_id: m.message_id.clone(),
                    writer,
                    source,
                    restarts: 0,
                    stalled: false,
                })
            }
            Err(e) => {
                tracing::warn!(scope = %run.scope, piece, error = %e, "cannot send a run card; answering with messages");
                None
            }
        }
    }

    /// The final cards (no stop button), streaming closed; answer pieces no
    /// card carries, and every failure path, go out as markdown messages.
    async fn finish(&self, run: CardRun) {
        let run_id = lock(&run.live).state.run_id.clone();
        self.finish_cards(run).await;
        self.journal.remove(&run_id);
    }

    async fn finish_cards(&self, mut run: CardRun) {
        // The writers no longer read it (the run is closed), so a copy
        // serves the awaits below.
        let state = lock(&run.live).state.clone();
        let main_opts = final_options(&state, RenderMode::Main);
        let main = render::render(&state, &main_opts);
        let pieces = main.pieces;
        // An answer that arrived all at once (or grew since the last draw)
        // still gets its continuation cards, already final.
        if !run.cards.is_empty() {
            for piece in run.cards.len()..pieces.min(MAX_CARDS_PER_RUN) {
                if run.no_more_cards {
                    break;
                }
                let r = render::render(
                    &state,
                    &final_options(&state, RenderMode::Continuation { piece }),
                );
                match self.open_card(&run, &r, piece).await {
                    Some(card) => run.cards.push(card),
                    None => run.no_more_cards = true,
                }
            }
        }
        let summary = render::summary(&state);
        let settings = cardkit::close_streaming_settings(&summary);
        let shown: Vec<String> = run.cards.iter().map(|c| c.message_id.clone()).collect();
        let writes = std::mem::take(&mut run.cards)
            .into_iter()
            .enumerate()
            .map(|(piece, card)| {
                let json = if piece == 0 {
                    main.json.clone()
                } else {
                    render::render(
                        &state,
                        &final_options(&state, RenderMode::Continuation { piece }),
                    )
                    .json
                };
                let settings = settings.clone();
                async move {
                    let message_id = card.message_id.clone();
                    let ok = self.write_final(card, &json, &settings).await;
                    if !ok {
                        // A card that cannot be finished would show
                        // "Running" forever: take it back; its content
                        // follows as a message.
                        if let Err(e) = self.http.im().recall_message(&message_id).await {
                            tracing::warn!(message = %message_id, error = %e, "cannot recall an unfinished card; it stays as it was");
                        }
                    }
                    ok
                }
            });
        // Concurrently: a card stuck in retries must not hold back the
        // others' final state.
        let delivered: Vec<bool> = futures::future::join_all(writes).await;
        run.fallback = delivered.first() != Some(&true);
        if run.fallback {
            // The whole answer follows as a message: parts of it left on
            // continuation cards would show twice.
            for (id, _) in shown.iter().zip(&delivered).skip(1).filter(|(_, ok)| **ok) {
                if let Err(e) = self.http.im().recall_message(id).await {
                    tracing::warn!(message = %id, error = %e, "cannot recall a continuation card");
                }
            }
        }
        let answer = state.answer();
        let chat = pb::Scope::chat_of(&run.scope);
        let in_thread = pb::Scope::key_is_topic(&run.scope);
        let rest: Vec<String> = if run.fallback {
            // The whole final state, as reply mode markdown shows it.
            vec![render::run_markdown(&state)]
        } else {
            // The same budget the cards were cut with, so no text falls
            // between a card's piece and the messages.
            render::split_answer(&answer, main_opts.effective_answer_budget())
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !delivered.get(*i).copied().unwrap_or(false))
                .map(|(_, p)| p)
                .collect()
        };
        for (i, md) in rest.iter().enumerate() {
            let uuid = format!("fcxf{}-{}-{i}", self.tag, short(&state.run_id));
            reply::deliver_markdown(
                &self.http,
                &run.reply_to,
                &chat,
                in_thread,
                md,
                &uuid,
                reply::Format::Markdown,
            )
            .await;
        }
    }
}

impl CardSurface {
    /// Writes the final card and closes streaming; through transient
    /// failures it retries with fresh writers (continuing the sequence) and
    /// growing pauses for up to [`FINAL_WRITE_WINDOW`]. `false`: the card
    /// could not be finished and the caller sends the final state as a
    /// message.
    async fn write_final(&self, card: ActiveCard, json: &str, settings: &str) -> bool {
        let deadline = tokio::time::Instant::now() + FINAL_WRITE_WINDOW;
        let mut backoff = FINAL_RETRY_BACKOFF_START;
        let mut writer = card.writer;
        loop {
            writer.update_card(json.to_string());
            writer.update_settings(settings.to_string());
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let failure = match tokio::time::timeout(left, writer.finish()).await {
                Ok(Ok(_)) => return true,
                Ok(Err(f)) => f,
                Err(_) => {
                    tracing::warn!(card = %card.card_id, "the final card write timed out; sending the final state as a message");
                    return false;
                }
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // A closed stream does not stop a whole-card update: a fresh
            // writer sends the final card as it would after an outage.
            let retry = matches!(
                failure.kind,
                FailureKind::Unavailable | FailureKind::StreamingClosed
            );
            if !retry || left <= backoff {
                tracing::warn!(card = %card.card_id, code = ?failure.code, kind = ?failure.kind, "the final card could not be written; sending the final state as a message");
                return false;
            }
            tracing::info!(card = %card.card_id, code = ?failure.code, retry_in_ms = backoff.as_millis() as u64, "the final card write failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(FINAL_RETRY_BACKOFF_MAX);
            writer = CardWriter::spawn(
                self.kit.clone(),
                card.card_id.clone(),
                failure.last_sequence,
                WriterConfig::default(),
            );
        }
    }
}

fn short(s: &str) -> String {
    s.chars().take(12).collect()
}

/// The card's JSON without its answer text: equal chromes mean only the
/// answer changed. The answer element serializes as `"content":<text>,
/// "element_id":"answer"` (content is its first key in either map order);
/// that exact pair is cut. Not found: the whole JSON, so the caller sends a
/// full update, which is always correct.
fn chrome(rendered: &render::RenderedCard) -> String {
    let escaped = serde_json::Value::String(rendered.answer.clone()).to_string();
    let needle = format!("\"content\":{escaped},\"element_id\":\"{ANSWER_ELEMENT_ID}\"");
    match rendered.json.find(&needle) {
        Some(i) => {
            let mut out = String::with_capacity(rendered.json.len());
            out.push_str(&rendered.json[..i]);
            out.push_str(&rendered.json[i + needle.len()..]);
            out
        }
        None => rendered.json.clone(),
    }
}

mod command;
mod final_buttons;
mod journal;

use journal::{CardJournal, OpenCard};

#[cfg(test)]
#[path = "cards_tests.rs"]
mod tests;
