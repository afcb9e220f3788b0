//! Run cards: one CardKit card per run, streamed while Codex works, with a
//! signed stop button; and the fallbacks that never leave a user without the
//! final state.
//!
//! Per run: create the card entity, reply with it (in thread for topics),
//! then one serialized [`CardWriter`] owns the card's sequence counter: text
//! deltas become element-content updates (coalesced), anything that changes
//! the card's structure becomes a full update. At the end the final card is
//! written and streaming is closed with a summary. If the card cannot be
//! created or its writer fails for good, the final state goes out as a
//! markdown message instead; an answer longer than one card continues in
//! markdown messages, so it is always delivered complete.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb};
use serde_json::Value;

use crate::callback::{self, Claims, Denied, Expected, KeyRing, MemoryNonceStore, NonceStore};
use crate::feishu::cardkit::{self, CardKit, CardWriter, FailureKind, WriterConfig};
use crate::feishu::http::{OpenApiClient, OutgoingMessage};
pub use crate::keys::load_keys;
use crate::keys::{hex_decode, hex_encode};
use crate::render::{self, ANSWER_ELEMENT_ID, CALLBACK_VALUE_KEY, RenderOptions, RunState};
use crate::reply;
use crate::supervisor::now_ms;

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

/// Who asked for each message, so a run's stop button is signed for them.
#[derive(Clone, Default)]
pub struct Requesters(Arc<Mutex<HashMap<String, String>>>);

impl Requesters {
    pub fn remember(&self, message_id: &str, open_id: &str) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(message_id.to_string(), open_id.to_string());
        }
    }
    fn get(&self, message_id: &str) -> Option<String> {
        self.0.lock().ok().and_then(|m| m.get(message_id).cloned())
    }
}

/// Card messages this gateway sent: carrier message id → (scope, chat id).
#[derive(Clone, Default)]
pub struct Carriers(Arc<Mutex<HashMap<String, (String, String)>>>);

impl Carriers {
    fn insert(&self, message_id: &str, scope: &str, chat_id: &str) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(
                message_id.to_string(),
                (scope.to_string(), chat_id.to_string()),
            );
        }
    }
    fn get(&self, message_id: &str) -> Option<(String, String)> {
        self.0.lock().ok().and_then(|m| m.get(message_id).cloned())
    }
}

/// Used button nonces, kept until their token expires and persisted, so a
/// click replayed after an fcxd restart is still refused. An append-only
/// log (`used-nonces`, one `hex expiry` line each), compacted on open.
pub struct FileNonceStore {
    memory: MemoryNonceStore,
    log: Mutex<Option<std::fs::File>>,
}

impl FileNonceStore {
    pub fn open(path: &Path, now: i64) -> std::io::Result<Self> {
        let memory = MemoryNonceStore::default();
        let mut live = Vec::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                let mut it = line.split_whitespace();
                let (Some(n), Some(exp)) = (it.next(), it.next()) else {
                    continue;
                };
                let (Some(bytes), Ok(exp)) = (hex_decode(n), exp.parse::<i64>()) else {
                    continue;
                };
                let Ok(nonce) = <[u8; 16]>::try_from(bytes.as_slice()) else {
                    continue;
                };
                if exp > now && memory.consume(&nonce, exp, now).is_ok() {
                    live.push(format!("{n} {exp}\n"));
                }
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, live.concat())?;
        std::fs::rename(&tmp, path)?;
        let log = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(FileNonceStore {
            memory,
            log: Mutex::new(Some(log)),
        })
    }
}

impl NonceStore for FileNonceStore {
    fn consume(&self, nonce: &[u8; 16], expires_at: i64, now: i64) -> Result<(), Denied> {
        self.memory.consume(nonce, expires_at, now)?;
        // Written before the click is answered; if the disk refuses, the
        // in-memory record still blocks a replay until fcxd restarts.
        if let Ok(mut log) = self.log.lock()
            && let Some(f) = log.as_mut()
        {
            use std::io::Write as _;
            if let Err(e) = writeln!(f, "{} {expires_at}", hex_encode(nonce)) {
                tracing::error!(error = %e, "cannot persist a used button nonce");
            }
        }
        Ok(())
    }
}

/// Verifies card clicks (in the ACK path: pure and fast).
pub struct Callbacks {
    pub keys: KeyRing,
    pub nonces: Box<dyn NonceStore>,
    pub carriers: Carriers,
}

/// A verified click: what to ask the worker.
pub struct Click {
    pub claims: Claims,
    pub operator: String,
}

impl Callbacks {
    /// Check a `card.action.trigger` event. `Err` carries the ACK answer (a
    /// low-detail toast); the reason is logged once.
    pub fn check(&self, event: &Value) -> Result<Click, Value> {
        let deny = |d: Denied| {
            tracing::warn!(reason = ?d, "card action denied");
            Err(d.answer())
        };
        let token = event["action"]["value"][CALLBACK_VALUE_KEY]
            .as_str()
            .unwrap_or("");
        let operator = event["operator"]["open_id"].as_str().unwrap_or("");
        let message_id = event["context"]["open_message_id"].as_str().unwrap_or("");
        let chat_id = event["context"]["open_chat_id"].as_str().unwrap_or("");
        // Only cards this gateway sent can carry a live button.
        let Some((scope, carrier_chat)) = self.carriers.get(message_id) else {
            return deny(Denied::WrongScope);
        };
        if !chat_id.is_empty() && chat_id != carrier_chat {
            return deny(Denied::WrongChat);
        }
        let expected = Expected {
            operator,
            scope: &scope,
            chat_id: &carrier_chat,
            action: Some("stop"),
            run_id: None,
            fingerprint: None,
        };
        match callback::verify_once(
            token,
            &self.keys,
            now_ms() / 1000,
            &expected,
            self.nonces.as_ref(),
        ) {
            Ok(claims) => Ok(Click {
                claims,
                operator: operator.to_string(),
            }),
            Err(d) => deny(d),
        }
    }
}

struct ActiveCard {
    card_id: String,
    writer: CardWriter,
    /// Structure already written, to send content-only updates when only
    /// the answer text changed.
    last_json: String,
    /// Writers started after the first one failed transiently.
    restarts: u32,
}

struct CardRun {
    state: RunState,
    scope: String,
    reply_to: String,
    stop_token: Option<String>,
    card: Option<ActiveCard>,
    /// The card could not be created or written: the final state goes out
    /// as a markdown message.
    fallback: bool,
}

/// Turns one profile's run events into cards (called from the channel's
/// single outbound task, so runs are handled in event order).
pub struct CardSurface {
    kit: CardKit,
    http: OpenApiClient,
    keys: KeyRing,
    requesters: Requesters,
    carriers: Carriers,
    tag: String,
    runs: HashMap<String, CardRun>,
}

impl CardSurface {
    pub fn new(
        http: OpenApiClient,
        keys: KeyRing,
        requesters: Requesters,
        carriers: Carriers,
        tag: String,
    ) -> Self {
        CardSurface {
            kit: CardKit::new(http.clone()),
            http,
            keys,
            requesters,
            carriers,
            tag,
            runs: HashMap::new(),
        }
    }

    /// Handle a run event; `false` when the event is not a run event (the
    /// caller answers it as a message).
    pub async fn on_event(&mut self, ev: &pb::WorkerEvent) -> bool {
        // Command replies and notices are messages, in any mode.
        if ev.run_id.is_empty() || matches!(ev.kind, Some(Kind::Notice(_) | Kind::CommandReply(_)))
        {
            return false;
        }
        let done = matches!(ev.kind, Some(Kind::Done(_)));
        if !self.runs.contains_key(&ev.run_id) {
            // Only a run's first event opens a card; a late event of a run
            // this gateway never saw (a replay) gets a plain answer.
            if !matches!(ev.kind, Some(Kind::RunStarted(_))) {
                return false;
            }
            let mut run = CardRun {
                state: RunState::new(&ev.run_id),
                scope: ev.scope.clone(),
                reply_to: ev.reply_to.clone(),
                stop_token: None,
                card: None,
                fallback: false,
            };
            run.state.apply(ev);
            run.stop_token = self.sign_stop(ev);
            self.open_card(&mut run, ev.seq).await;
            self.runs.insert(ev.run_id.clone(), run);
            return true;
        }
        let Some(mut run) = self.runs.remove(&ev.run_id) else {
            return false;
        };
        run.state.apply(ev);
        if done {
            self.finish(run).await;
            return true;
        }
        // A run without a card (fallback) only needs its final state: no
        // render per event for it.
        if run.card.is_none() {
            self.runs.insert(ev.run_id.clone(), run);
            return true;
        }
        let rendered = render::render(&run.state, &self.options(&run, true));
        if let Some(card) = &mut run.card {
            if let Some(f) = card.writer.failure() {
                if f.kind == FailureKind::Unavailable && card.restarts < MAX_WRITER_RESTARTS {
                    // The platform had a bad moment: carry on with a fresh
                    // writer above every sequence the old one may have used,
                    // starting from the whole current card.
                    card.restarts += 1;
                    tracing::info!(card = %card.card_id, code = ?f.code, restarts = card.restarts, "card writer failed transiently; starting a new one");
                    card.writer = CardWriter::spawn(
                        self.kit.clone(),
                        card.card_id.clone(),
                        f.last_sequence,
                        WriterConfig::default(),
                    );
                    card.writer.update_card(rendered.json.clone());
                    card.last_json = rendered.json;
                } else if !run.fallback {
                    tracing::warn!(card = %card.card_id, code = ?f.code, kind = ?f.kind, "card writer failed; the card waits for the final write");
                    run.fallback = true;
                }
            } else {
                if rendered.json != card.last_json {
                    if matches!(ev.kind, Some(Kind::TextDelta(_)))
                        && same_but_answer(&card.last_json, &rendered)
                    {
                        card.writer
                            .set_content(ANSWER_ELEMENT_ID, rendered.answer.clone());
                    } else {
                        card.writer.update_card(rendered.json.clone());
                    }
                    card.last_json = rendered.json;
                }
            }
        }
        self.runs.insert(ev.run_id.clone(), run);
        true
    }

    fn options(&self, run: &CardRun, live: bool) -> RenderOptions {
        RenderOptions {
            stop_token: if live { run.stop_token.clone() } else { None },
            // A live clock would make every render differ and turn each text
            // delta into a full card update; the final card shows the time.
            now_ms: if live { None } else { Some(now_ms()) },
            ..Default::default()
        }
    }

    fn sign_stop(&self, ev: &pb::WorkerEvent) -> Option<String> {
        let Some(Kind::RunStarted(rs)) = &ev.kind else {
            return None;
        };
        let operator = self.requesters.get(&ev.reply_to)?;
        let chat_id = chat_of(&ev.scope);
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

    async fn open_card(&self, run: &mut CardRun, seq: u64) {
        if run.reply_to.is_empty() {
            run.fallback = true;
            return;
        }
        let rendered = render::render(&run.state, &self.options(run, true));
        let card_id = match self.kit.create_card(&rendered.json).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(scope = %run.scope, error = %e, "cannot create the run card; answering with messages");
                run.fallback = true;
                return;
            }
        };
        let msg = cardkit::card_message(&card_id).with_uuid(format!("fcxc{}-{seq}", self.tag));
        let in_thread = run.scope.starts_with("topic:");
        match self
            .http
            .reply_message(&run.reply_to, &msg, in_thread)
            .await
        {
            Ok(m) => {
                self.carriers
                    .insert(&m.message_id, &run.scope, &chat_of(&run.scope));
                let writer = CardWriter::spawn(
                    self.kit.clone(),
                    card_id.clone(),
                    0,
                    WriterConfig::default(),
                );
                run.card = Some(ActiveCard {
                    card_id,
                    writer,
                    last_json: rendered.json,
                    restarts: 0,
                });
            }
            Err(e) => {
                tracing::warn!(scope = %run.scope, error = %e, "cannot send the run card; answering with messages");
                run.fallback = true;
            }
        }
    }

    /// The final card (no stop button), streaming closed; the rest of a long
    /// answer and any failure path go out as markdown messages.
    async fn finish(&mut self, mut run: CardRun) {
        let opts = self.options(&run, false);
        let final_card = render::render(&run.state, &opts);
        let mut delivered_upto = 0usize;
        if let Some(card) = run.card.take() {
            let settings = cardkit::close_streaming_settings(&render::summary(&run.state));
            if self.write_final(card, &final_card.json, &settings).await {
                // The card holds the first piece of the answer; a writer
                // that failed mid-run no longer matters.
                delivered_upto = final_card.piece + 1;
                run.fallback = false;
            } else {
                run.fallback = true;
            }
        } else {
            run.fallback = true;
        }
        let answer = run.state.answer();
        // The same budget the card was cut with, so no text falls between
        // the card's piece and the continuation messages.
        let pieces = render::split_answer(&answer, opts.effective_answer_budget());
        let mut rest: Vec<String> = if run.fallback {
            Vec::new()
        } else {
            pieces.iter().skip(delivered_upto).cloned().collect()
        };
        if run.fallback {
            // The whole final state, as the message path shows it.
            let done = pb::WorkerEvent {
                kind: Some(Kind::Done(pb::Done {
                    reason: phase_reason(&run.state) as i32,
                    detail: run.state.detail.clone(),
                    final_text: answer.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            };
            if let Some(md) = reply::event_markdown(&done) {
                rest = vec![md];
            }
        }
        for (i, md) in rest.iter().enumerate() {
            for (j, piece) in reply::split_markdown(md, reply::POST_CONTENT_BUDGET)
                .into_iter()
                .enumerate()
            {
                let msg = OutgoingMessage::new("post", reply::post_content(&piece)).with_uuid(
                    format!("fcxf{}-{}-{i}-{j}", self.tag, short(&run.state_run_id())),
                );
                let r = self
                    .http
                    .reply_message(&run.reply_to, &msg, run.scope.starts_with("topic:"))
                    .await;
                if let Err(e) = r {
                    tracing::error!(scope = %run.scope, error = %e, "cannot deliver the final answer");
                }
            }
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
            if failure.kind != FailureKind::Unavailable || left <= backoff {
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

impl CardRun {
    fn state_run_id(&self) -> String {
        self.state.run_id.clone()
    }
}

fn short(s: &str) -> String {
    s.chars().take(12).collect()
}

/// Whether `rendered` differs from `last` only in the answer text (then a
/// streaming content update is enough).
fn same_but_answer(last: &str, rendered: &render::RenderedCard) -> bool {
    let Ok(mut a) = serde_json::from_str::<Value>(last) else {
        return false;
    };
    let mut b = rendered.card.clone();
    blank_answer(&mut a);
    blank_answer(&mut b);
    a == b
}

fn blank_answer(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("element_id").and_then(Value::as_str) == Some(ANSWER_ELEMENT_ID) {
                m.insert("content".into(), Value::String(String::new()));
            }
            for (_, x) in m.iter_mut() {
                blank_answer(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(blank_answer),
        _ => {}
    }
}

fn phase_reason(s: &RunState) -> pb::DoneReason {
    match s.phase {
        render::Phase::Done => pb::DoneReason::Completed,
        render::Phase::Interrupted => pb::DoneReason::Interrupted,
        render::Phase::TimedOut => pb::DoneReason::TimedOut,
        render::Phase::Failed => pb::DoneReason::Failed,
        render::Phase::Queued | render::Phase::Running => pb::DoneReason::Unspecified,
    }
}

/// The chat id inside a scope (`chat:<id>`, `topic:<id>:<thread>`).
pub fn chat_of(scope: &str) -> String {
    scope
        .strip_prefix("chat:")
        .or_else(|| scope.strip_prefix("topic:"))
        .and_then(|r| r.split(':').next())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_nonces_survive_a_restart_until_they_expire() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("used-nonces");
        let now = 1_000;
        {
            let s = FileNonceStore::open(&path, now).expect("open");
            s.consume(&[1; 16], now + 60, now).expect("first use");
            s.consume(&[2; 16], now + 5, now).expect("first use");
            assert_eq!(s.consume(&[1; 16], now + 60, now), Err(Denied::Replayed));
        }
        let s = FileNonceStore::open(&path, now + 10).expect("reopen");
        assert_eq!(
            s.consume(&[1; 16], now + 60, now + 10),
            Err(Denied::Replayed),
            "still refused after a restart"
        );
        // [2;16] expired: compacted away (its token is refused by expiry).
        assert!(s.consume(&[2; 16], now + 70, now + 10).is_ok());
        let text = std::fs::read_to_string(&path).expect("log");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn chat_of_scopes() {
        assert_eq!(chat_of("chat:oc_1"), "oc_1");
        assert_eq!(chat_of("topic:oc_1:omt_2"), "oc_1");
        assert_eq!(chat_of("chat:console"), "console");
        assert_eq!(chat_of("doc:x"), "");
    }
}
