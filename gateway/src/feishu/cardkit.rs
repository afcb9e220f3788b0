//! CardKit v1 (feishu.md §3.7): card entities and their streaming updates,
//! on top of [`OpenApiClient`].
//!
//! - [`CardKit`]: the raw calls (create entity, stream element content,
//!   settings, full update) and [`card_message`], the IM content that sends
//!   an entity;
//! - [`CardWriter`]: one serialized writer per card. It owns the card's
//!   `sequence` counter (strictly increasing across *all* operations on a
//!   card, else 300317), coalesces content updates (the latest full text per
//!   element wins), paces itself under the platform's 10 ops/s per card, and
//!   reports a permanent failure so the caller can fall back to a plain
//!   markdown message. A live card's writer can instead *pull* its updates
//!   from a [`CardSource`] right before each send
//!   ([`CardWriter::spawn_live`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::budget;
use super::http::{ApiError, OpenApiClient, OutgoingMessage, new_uuid};

const CARDS_PATH: &str = "/open-apis/cardkit/v1/cards";
/// Streamed text limit per element (characters; counted here in UTF-16
/// units, the stricter reading).
pub const MAX_CONTENT_CHARS: usize = 100_000;

/// Codes after which this card cannot be written any more (§3.7).
pub const PERMANENT_CODES: [i64; 9] = [
    200740, // entity missing
    200750, // entity expired
    200850, // streaming timed out
    200860, // card too large
    300302, // update_multi false
    300309, // streaming closed
    300310, // only text elements can stream
    300311, // another app's card
    300317, // sequence not increasing
];
/// Codes worth another try with the next sequence.
const TRANSIENT_CODES: [i64; 4] = [
    200810,   // an interaction is in progress
    300120,   // internal error
    99991400, // rate limit beyond the client's wait
    230020,   // rate limit
];

/// The raw CardKit calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CardKit {
    client: OpenApiClient,
}

/// `msg_type: interactive` content that sends card entity `card_id`.
pub fn card_message(card_id: &str) -> OutgoingMessage {
    OutgoingMessage::new(
        "interactive",
        json!({"type": "card", "data": {"card_id": card_id}}).to_string(),
    )
}

/// Settings that turn streaming mode on again after the platform closed it
/// (it does so 10 minutes after it was last enabled).
pub fn open_streaming_settings() -> String {
    json!({"config": {"streaming_mode": true}}).to_string()
}

/// Settings that end streaming mode and set the chat-list preview, so the
/// preview stops saying "generating" and the card can be forwarded.
pub fn close_streaming_settings(summary: &str) -> String {
    json!({"config": {"streaming_mode": false, "summary": {"content": summary}}}).to_string()
}

fn card_id_ok(s: &str) -> Result<&str, ApiError> {
    if !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
    {
        Ok(s)
    } else {
        Err(ApiError::InvalidArgument("not a valid card id".into()))
    }
}

/// Element ids: letters, digits, underscore; a letter first; ≤ 20 chars.
pub fn element_id_ok(s: &str) -> bool {
    s.len() <= 20
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn sequence_ok(sequence: u32) -> Result<i32, ApiError> {
    i32::try_from(sequence)
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| ApiError::InvalidArgument("sequence must be 1..2147483647".into()))
}

impl CardKit {
    pub fn new(client: OpenApiClient) -> Self {
        CardKit { client }
    }

    /// `POST /open-apis/cardkit/v1/cards` → the new entity's `card_id`.
    /// Not resent after a timeout: a second entity would be orphaned, not
    /// harmful, but the caller decides.
    pub async fn create_card(&self, card_json: &str) -> Result<String, ApiError> {
        let data = self
            .client
            .call_json_budgeted(
                Method::POST,
                CARDS_PATH,
                Some(json!({"type": "card_json", "data": card_json})),
                false,
                vec![
                    ("cardkit".into(), budget::CARDKIT_OPS),
                    ("cardkit.create".into(), budget::CARDKIT_CREATE),
                ],
            )
            .await?;
        data.get("card_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ApiError::Decode {
                path: CARDS_PATH.into(),
                reason: "answer has no card_id".into(),
                log_id: None,
            })
    }

    /// `PUT …/cards/{card_id}/elements/{element_id}/content`: the element's
    /// full text (the platform animates the part that extends the old
    /// text).
    pub async fn stream_content(
        &self,
        card_id: &str,
        element_id: &str,
        content: &str,
        sequence: u32,
        uuid: &str,
    ) -> Result<(), ApiError> {
        if !element_id_ok(element_id) {
            return Err(ApiError::InvalidArgument("not a valid element id".into()));
        }
        let units: usize = content.chars().map(char::len_utf16).sum();
        if units == 0 || units > MAX_CONTENT_CHARS {
            return Err(ApiError::InvalidArgument(
                "content must be 1-100000 characters".into(),
            ));
        }
        let path = format!(
            "{CARDS_PATH}/{}/elements/{element_id}/content",
            card_id_ok(card_id)?
        );
        let body = json!({"content": content, "sequence": sequence_ok(sequence)?, "uuid": uuid});
        self.sequenced(Method::PUT, &path, body).await
    }

    /// `PATCH …/cards/{card_id}/settings` with `settings` (a JSON string
    /// holding `config` and/or `card_link`).
    pub async fn update_settings(
        &self,
        card_id: &str,
        settings: &str,
        sequence: u32,
        uuid: &str,
    ) -> Result<(), ApiError> {
        let path = format!("{CARDS_PATH}/{}/settings", card_id_ok(card_id)?);
        let body = json!({"settings": settings, "sequence": sequence_ok(sequence)?, "uuid": uuid});
        self.sequenced(Method::PATCH, &path, body).await
    }

    /// `PUT …/cards/{card_id}`: replaces the whole card.
    pub async fn update_card(
        &self,
        card_id: &str,
        card_json: &str,
        sequence: u32,
        uuid: &str,
    ) -> Result<(), ApiError> {
        let path = format!("{CARDS_PATH}/{}", card_id_ok(card_id)?);
        let body = json!({
            "card": {"type": "card_json", "data": card_json},
            "sequence": sequence_ok(sequence)?,
            "uuid": uuid,
        });
        self.sequenced(Method::PUT, &path, body).await
    }

    async fn sequenced(&self, method: Method, path: &str, body: Value) -> Result<(), ApiError> {
        if body
            .get("uuid")
            .and_then(Value::as_str)
            .is_none_or(|u| u.is_empty() || u.len() > 64)
        {
            return Err(ApiError::InvalidArgument(
                "uuid must be 1-64 characters".into(),
            ));
        }
        // Not resent after a timeout: the first attempt may have consumed
        // the sequence, and a resend would then fail with 300317. The
        // writer retries with the next sequence instead.
        self.client
            .call_json(method, path, Some(body), false)
            .await?;
        Ok(())
    }
}

// ---- the per-card writer ------------------------------------------------

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Operations per second on this card (the platform allows 10).
    pub max_ops_per_sec: u32,
    /// Consecutive failed operations (after the client's own retries)
    /// before the card is given up.
    pub max_transient_failures: u32,
    /// Pause after a failed operation.
    pub failure_backoff: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_ops_per_sec: 5,
            max_transient_failures: 3,
            failure_backoff: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The entity is gone or expired (200740, 200750).
    Gone,
    /// Streaming mode ended (300309, 200850); content can no longer stream.
    StreamingClosed,
    /// The card outgrew the platform's limit (200860).
    TooLarge,
    /// The sequence was refused (300317) or ran out.
    Sequence,
    /// Server errors, transport failures or rate limits, repeatedly.
    Unavailable,
    /// Any other refusal (bad request, permission).
    Rejected,
}

/// Why a card cannot be written any more. The caller falls back to a
/// markdown message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card {card_id}: {kind:?} ({message})")]
pub struct CardFailure {
    pub card_id: String,
    pub kind: FailureKind,
    pub code: Option<i64>,
    pub message: String,
    /// The highest sequence the writer used (some may have been consumed
    /// by attempts that failed), so a new writer on the same card can start
    /// above it.
    pub last_sequence: u32,
}

/// What a finished writer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterReport {
    /// Operations the platform accepted.
    pub ops: u64,
    /// The last sequence used (the next writer on this card must start
    /// above it).
    pub last_sequence: u32,
}

#[derive(Debug, Clone)]
enum Op {
    Content { element_id: String, content: String },
    Card(String),
    Settings(String),
}

/// An update a [`CardSource`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveUpdate {
    /// Only this element's text changed.
    Content { element_id: String, content: String },
    /// The whole card.
    Card(String),
}

/// Where a live card's writer gets its updates. The writer asks only when
/// it is about to send (after pacing and the app-wide slot), so each
/// operation carries everything that happened up to that instant and the
/// card is rendered at most once per operation, however fast its run
/// changes.
pub trait CardSource: Send + Sync {
    /// The update that brings the card from what the platform last accepted
    /// to now; `None` when there is nothing to send.
    fn pull(&self) -> Option<LiveUpdate>;
    /// Whether the platform accepted the update the last `pull` returned.
    fn settle(&self, accepted: bool);
}

/// What the writer takes on next.
enum Work {
    Queued(Op),
    /// Ask the source (it was marked dirty).
    Pull,
}

#[derive(Default)]
struct Pending {
    /// Latest text per element, in first-request order.
    content: Vec<(String, String)>,
    card: Option<String>,
    /// Settings apply in order, after the updates queued before them.
    settings: VecDeque<String>,
    /// The source has something newer than what was sent.
    dirty: bool,
    closing: bool,
    busy: bool,
    flushers: Vec<oneshot::Sender<Result<(), CardFailure>>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.content.is_empty() && self.card.is_none() && self.settings.is_empty() && !self.dirty
    }

    /// Full card first (it is structural and drops older content), then
    /// content, then the source's update, then settings (usually "close
    /// streaming", which must come after the last text).
    fn next(&mut self) -> Option<Work> {
        if let Some(c) = self.card.take() {
            return Some(Work::Queued(Op::Card(c)));
        }
        if !self.content.is_empty() {
            let (element_id, content) = self.content.remove(0);
            return Some(Work::Queued(Op::Content {
                element_id,
                content,
            }));
        }
        if std::mem::take(&mut self.dirty) {
            return Some(Work::Pull);
        }
        self.settings
            .pop_front()
            .map(|s| Work::Queued(Op::Settings(s)))
    }

    /// The newest version of `op`, taken when it is about to be sent:
    /// updates that came in while it waited replace it (coalescing).
    fn newest(&mut self, op: Op) -> Op {
        match op {
            Op::Content {
                element_id,
                content,
            } => {
                match self.content.iter().position(|(e, _)| *e == element_id) {
                    Some(i) => {
                        let (element_id, content) = self.content.remove(i);
                        Op::Content {
                            element_id,
                            content,
                        }
                    }
                    None if self.card.is_some() => {
                        // A full card arrived meanwhile; it supersedes.
                        match self.card.take() {
                            Some(c) => Op::Card(c),
                            None => Op::Content {
                                element_id,
                                content,
                            },
                        }
                    }
                    None => Op::Content {
                        element_id,
                        content,
                    },
                }
            }
            Op::Card(c) => Op::Card(self.card.take().unwrap_or(c)),
            s @ Op::Settings(_) => s,
        }
    }

    /// Puts a failed op back unless something newer replaced it.
    fn requeue(&mut self, op: Op) {
        match op {
            Op::Card(c) => {
                if self.card.is_none() {
                    self.card = Some(c);
                }
            }
            Op::Content {
                element_id,
                content,
            } => {
                if !self.content.iter().any(|(e, _)| *e == element_id) {
                    self.content.insert(0, (element_id, content));
                }
            }
            Op::Settings(s) => self.settings.push_front(s),
        }
    }
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    source: Option<Arc<dyn CardSource>>,
    /// The last sequence handed to an operation, readable after the task
    /// ended.
    sequence: AtomicU32,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // The critical sections cannot panic halfway; a poisoned lock
        // still holds consistent data.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The one writer of a card entity. Dropping it flushes what is pending in
/// the background; [`CardWriter::finish`] flushes and waits.
pub struct CardWriter {
    card_id: String,
    shared: Arc<Shared>,
    failure: watch::Receiver<Option<CardFailure>>,
    task: Option<JoinHandle<Result<WriterReport, CardFailure>>>,
}

impl std::fmt::Debug for CardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardWriter")
            .field("card_id", &self.card_id)
            .finish_non_exhaustive()
    }
}

impl CardWriter {
    /// Starts the writer for `card_id`. `last_sequence` is the highest
    /// sequence already used on the card (0 for a new entity).
    pub fn spawn(kit: CardKit, card_id: String, last_sequence: u32, cfg: WriterConfig) -> Self {
        Self::start(kit, card_id, last_sequence, cfg, None)
    }

    /// Like [`CardWriter::spawn`], for a live card: after
    /// [`CardWriter::mark_dirty`] the writer asks `source` for the update
    /// when it is about to send.
    pub fn spawn_live(
        kit: CardKit,
        card_id: String,
        last_sequence: u32,
        cfg: WriterConfig,
        source: Arc<dyn CardSource>,
    ) -> Self {
        Self::start(kit, card_id, last_sequence, cfg, Some(source))
    }

    fn start(
        kit: CardKit,
        card_id: String,
        last_sequence: u32,
        cfg: WriterConfig,
        source: Option<Arc<dyn CardSource>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            source,
            sequence: AtomicU32::new(last_sequence),
        });
        let (fail_tx, failure) = watch::channel(None);
        let task = tokio::spawn(run(
            kit,
            card_id.clone(),
            last_sequence,
            cfg,
            shared.clone(),
            fail_tx,
        ));
        CardWriter {
            card_id,
            shared,
            failure,
            task: Some(task),
        }
    }

    pub fn card_id(&self) -> &str {
        &self.card_id
    }

    /// Sets an element's full text. Coalesced: only the latest text per
    /// element is sent.
    pub fn set_content(&self, element_id: &str, content: impl Into<String>) {
        let content = content.into();
        {
            let mut p = self.shared.lock();
            match p.content.iter_mut().find(|(e, _)| e == element_id) {
                Some((_, c)) => *c = content,
                None => p.content.push((element_id.to_string(), content)),
            }
        }
        self.shared.wake.notify_one();
    }

    /// Replaces the whole card. Pending content updates are dropped: they
    /// are older than the card that was just rendered; so is a pending pull
    /// (the caller's card now says what the card should show).
    pub fn update_card(&self, card_json: impl Into<String>) {
        {
            let mut p = self.shared.lock();
            p.card = Some(card_json.into());
            p.content.clear();
            p.dirty = false;
        }
        self.shared.wake.notify_one();
    }

    /// The source has changed: ask it for an update at the next send. A
    /// writer without a source ignores this.
    pub fn mark_dirty(&self) {
        if self.shared.source.is_none() {
            return;
        }
        self.shared.lock().dirty = true;
        self.shared.wake.notify_one();
    }

    /// Queues a settings change (e.g. [`close_streaming_settings`]); applied
    /// after everything queued so far.
    pub fn update_settings(&self, settings: impl Into<String>) {
        self.shared.lock().settings.push_back(settings.into());
        self.shared.wake.notify_one();
    }

    /// The permanent failure, if the card was given up.
    pub fn failure(&self) -> Option<CardFailure> {
        self.failure.borrow().clone()
    }

    /// A receiver that changes once, when the card is given up.
    pub fn watch_failure(&self) -> watch::Receiver<Option<CardFailure>> {
        self.failure.clone()
    }

    /// Waits until everything queued so far was sent.
    pub async fn flush(&self) -> Result<(), CardFailure> {
        if let Some(f) = self.failure() {
            return Err(f);
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.lock();
            if p.is_empty() && !p.busy {
                return Ok(());
            }
            p.flushers.push(tx);
        }
        self.shared.wake.notify_one();
        match rx.await {
            Ok(r) => r,
            Err(_) => self.failure().map_or(Ok(()), Err),
        }
    }

    /// Sends everything pending, then stops.
    pub async fn finish(mut self) -> Result<WriterReport, CardFailure> {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        let Some(task) = self.task.take() else {
            return Err(self.gone("writer already finished"));
        };
        match task.await {
            Ok(r) => r,
            Err(e) => Err(self.gone(&format!("writer task ended: {e}"))),
        }
    }

    fn gone(&self, why: &str) -> CardFailure {
        CardFailure {
            card_id: self.card_id.clone(),
            kind: FailureKind::Unavailable,
            code: None,
            message: why.to_string(),
            last_sequence: self.last_sequence(),
        }
    }

    /// The highest sequence used on the card so far (including attempts
    /// that failed).
    pub fn last_sequence(&self) -> u32 {
        self.shared.sequence.load(Ordering::SeqCst)
    }
}

impl Drop for CardWriter {
    fn drop(&mut self) {
        // Let the task drain what is queued and exit on its own.
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
    }
}

fn classify(card_id: &str, e: &ApiError) -> Option<CardFailure> {
    let fail = |kind, code| {
        Some(CardFailure {
            card_id: card_id.to_string(),
            kind,
            code,
            message: e.to_string(),
            last_sequence: 0,
        })
    };
    match e {
        ApiError::Api { code, status, .. } => {
            let code = *code;
            match code {
                200740 | 200750 => fail(FailureKind::Gone, Some(code)),
                200850 | 300309 | 300310 => fail(FailureKind::StreamingClosed, Some(code)),
                200860 => fail(FailureKind::TooLarge, Some(code)),
                300317 => fail(FailureKind::Sequence, Some(code)),
                c if TRANSIENT_CODES.contains(&c) || *status >= 500 => None,
                _ => fail(FailureKind::Rejected, Some(code)),
            }
        }
        ApiError::InvalidArgument(_) | ApiError::Secret(_) | ApiError::Client(_) => {
            fail(FailureKind::Rejected, None)
        }
        ApiError::TooLarge { .. } => fail(FailureKind::Rejected, None),
        ApiError::RateLimited { .. }
        | ApiError::Http { .. }
        | ApiError::Transport { .. }
        | ApiError::Decode { .. } => None,
    }
}

async fn run(
    kit: CardKit,
    card_id: String,
    mut sequence: u32,
    cfg: WriterConfig,
    shared: Arc<Shared>,
    fail_tx: watch::Sender<Option<CardFailure>>,
) -> Result<WriterReport, CardFailure> {
    let interval = Duration::from_secs(1) / cfg.max_ops_per_sec.max(1);
    let mut last_op: Option<Instant> = None;
    let mut ops = 0u64;
    let mut failures = 0u32;
    let give_up = |mut f: CardFailure| {
        f.last_sequence = shared.sequence.load(Ordering::SeqCst);
        tracing::warn!(card_id = %f.card_id, kind = ?f.kind, code = f.code, "card writer gave up");
        let mut p = shared.lock();
        *p = Pending {
            closing: true,
            ..Pending::default()
        };
        for w in std::mem::take(&mut p.flushers) {
            let _ = w.send(Err(f.clone()));
        }
        drop(p);
        let _ = fail_tx.send(Some(f.clone()));
        Err(f)
    };
    loop {
        // Wait for work (or the end).
        let work = loop {
            let notified = shared.wake.notified();
            {
                let mut p = shared.lock();
                if let Some(w) = p.next() {
                    p.busy = true;
                    break Some(w);
                }
                p.busy = false;
                for w in std::mem::take(&mut p.flushers) {
                    let _ = w.send(Ok(()));
                }
                if p.closing {
                    break None;
                }
            }
            notified.await;
        };
        let Some(work) = work else {
            return Ok(WriterReport {
                ops,
                last_sequence: sequence,
            });
        };
        // Pace, then take the newest version of this op: updates that came
        // in while waiting replace it (coalescing).
        if let Some(t) = last_op {
            tokio::time::sleep_until(t + interval).await;
        }
        // The app-wide slot is taken before the newest version of the op is
        // picked, so whatever arrived while waiting for it goes out too.
        kit.client
            .budget()
            .acquire(&[("cardkit", budget::CARDKIT_OPS)])
            .await;
        let queued = {
            let mut p = shared.lock();
            match work {
                // Whatever arrived while waiting is in this pull; a full
                // card queued meanwhile supersedes it.
                Work::Pull => {
                    p.dirty = false;
                    p.card.take().map(Op::Card)
                }
                Work::Queued(op) => Some(p.newest(op)),
            }
        };
        let (op, pulled) = match queued {
            Some(op) => (op, false),
            None => {
                let update = shared.source.as_ref().and_then(|s| s.pull());
                match update {
                    Some(LiveUpdate::Content {
                        element_id,
                        content,
                    }) => (
                        Op::Content {
                            element_id,
                            content,
                        },
                        true,
                    ),
                    Some(LiveUpdate::Card(c)) => (Op::Card(c), true),
                    // Nothing changed after all: no operation, no pacing.
                    None => continue,
                }
            }
        };
        let settle = |accepted: bool| {
            if pulled && let Some(s) = &shared.source {
                s.settle(accepted);
            }
        };
        let Some(next) = sequence.checked_add(1).filter(|s| *s <= i32::MAX as u32) else {
            settle(false);
            return give_up(CardFailure {
                card_id: card_id.clone(),
                kind: FailureKind::Sequence,
                code: None,
                message: "sequence exhausted".into(),
                last_sequence: 0,
            });
        };
        sequence = next;
        shared.sequence.store(sequence, Ordering::SeqCst);
        last_op = Some(Instant::now());
        let uuid = new_uuid();
        let res = match &op {
            Op::Content {
                element_id,
                content,
            } => {
                kit.stream_content(&card_id, element_id, content, sequence, &uuid)
                    .await
            }
            Op::Card(c) => kit.update_card(&card_id, c, sequence, &uuid).await,
            Op::Settings(s) => kit.update_settings(&card_id, s, sequence, &uuid).await,
        };
        match res {
            Ok(()) => {
                ops += 1;
                failures = 0;
                settle(true);
            }
            Err(e) => {
                settle(false);
                if let Some(f) = classify(&card_id, &e) {
                    return give_up(f);
                }
                failures += 1;
                tracing::info!(card_id = %card_id, error = %e, failures, "card operation failed; will retry");
                if failures >= cfg.max_transient_failures {
                    return give_up(CardFailure {
                        card_id: card_id.clone(),
                        kind: FailureKind::Unavailable,
                        code: e.code(),
                        message: e.to_string(),
                        last_sequence: 0,
                    });
                }
                {
                    let mut p = shared.lock();
                    if pulled {
                        // The next pull starts again from what the
                        // platform last accepted.
                        p.dirty = true;
                    } else {
                        p.requeue(op);
                    }
                }
                tokio::time::sleep(cfg.failure_backoff).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex as StdMutex;

    use fcx_config::Secret;
    use serde_json::json;

    use super::*;
    use crate::feishu::http::RetryPolicy;
    use crate::feishu::testkit::{FakeHttp, Recorded, Reply};

    const TOKEN: &str = "/open-apis/auth/v3/tenant_access_token/internal";

    fn kit(fake: &FakeHttp) -> CardKit {
        let policy = RetryPolicy {
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            max_server_retries: 1,
            request_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let c = OpenApiClient::new(&fake.base, "cli_test", Secret::new("s3cr3t"), policy)
            .expect("client");
        CardKit::new(c)
    }

    fn ok(data: Value) -> Reply {
        Reply::json(200, json!({"code": 0, "msg": "success", "data": data}))
    }

    fn token() -> Reply {
        Reply::json(
            200,
            json!({"code": 0, "msg": "ok", "tenant_access_token": "t-1", "expire": 7200}),
        )
    }

    /// A CardKit fake that enforces the per-card sequence rule and keeps the
    /// latest content per element.
    #[derive(Default)]
    struct Cards {
        last_seq: HashMap<String, i64>,
        content: HashMap<String, String>,
        at: Vec<Instant>,
    }

    fn cardkit_route(
        cards: Arc<StdMutex<Cards>>,
    ) -> impl Fn(&Recorded, &[Recorded]) -> Reply + Send + Sync + 'static {
        move |r, _| {
            if r.path == TOKEN {
                return token();
            }
            let b = r.json();
            let mut c = cards.lock().expect("lock");
            if r.method == "POST" && r.path == CARDS_PATH {
                assert_eq!(b["type"], "card_json");
                assert!(b["data"].as_str().is_some_and(|d| d.contains("\"2.0\"")));
                return ok(json!({"card_id": "7355000000000000001"}));
            }
            let parts: Vec<&str> = r.path.trim_start_matches(CARDS_PATH).split('/').collect();
            let card = parts.get(1).copied().unwrap_or_default().to_string();
            c.at.push(Instant::now());
            let seq = b["sequence"].as_i64().unwrap_or(0);
            assert!(
                b["uuid"]
                    .as_str()
                    .is_some_and(|u| !u.is_empty() && u.len() <= 64)
            );
            let last = c.last_seq.get(&card).copied().unwrap_or(0);
            if seq <= last {
                return Reply::json(400, json!({"code": 300317, "msg": "sequence"}));
            }
            c.last_seq.insert(card, seq);
            if let (Some(&"elements"), Some(el)) = (parts.get(2), parts.get(3)) {
                let content = b["content"].as_str().unwrap_or_default().to_string();
                c.content.insert((*el).to_string(), content);
            }
            ok(json!({}))
        }
    }

    fn ops(fake: &FakeHttp) -> Vec<Recorded> {
        fake.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(CARDS_PATH) && r.path != CARDS_PATH)
            .collect()
    }

    #[tokio::test]
    async fn raw_calls_have_the_documented_shapes() {
        let cards = Arc::new(StdMutex::new(Cards::default()));
        let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
        let k = kit(&fake);
        let card = json!({"schema": "2.0", "body": {"elements": []}}).to_string();
        let id = k.create_card(&card).await.expect("create");
        assert_eq!(id, "7355000000000000001");
        k.stream_content(&id, "answer", "hi", 1, "u-1")
            .await
            .expect("content");
        k.update_settings(&id, &close_streaming_settings("done"), 2, "u-2")
            .await
            .expect("settings");
        k.update_card(&id, &card, 3, "u-3").await.expect("update");
        let reqs = ops(&fake);
        assert_eq!(reqs[0].method, "PUT");
        assert_eq!(
            reqs[0].path,
            format!("{CARDS_PATH}/{id}/elements/answer/content")
        );
        assert_eq!(
            reqs[0].json(),
            json!({"content": "hi", "sequence": 1, "uuid": "u-1"})
        );
        assert_eq!(reqs[1].method, "PATCH");
        assert_eq!(reqs[1].path, format!("{CARDS_PATH}/{id}/settings"));
        let settings: Value =
            serde_json::from_str(reqs[1].json()["settings"].as_str().unwrap_or("")).expect("json");
        assert_eq!(
            settings,
            json!({"config": {"streaming_mode": false, "summary": {"content": "done"}}})
        );
        assert_eq!(reqs[2].method, "PUT");
        assert_eq!(reqs[2].path, format!("{CARDS_PATH}/{id}"));
        assert_eq!(reqs[2].json()["card"]["type"], "card_json");
        assert_eq!(reqs[2].json()["card"]["data"], card.as_str());
        // Bad input never reaches the wire.
        assert!(k.stream_content(&id, "1bad", "x", 4, "u").await.is_err());
        assert!(k.stream_content(&id, "answer", "", 4, "u").await.is_err());
        assert!(
            k.stream_content("../x", "answer", "x", 4, "u")
                .await
                .is_err()
        );
        assert!(k.stream_content(&id, "answer", "x", 0, "u").await.is_err());
        assert!(
            k.stream_content(&id, "answer", "x", u32::MAX, "u")
                .await
                .is_err()
        );
        assert_eq!(ops(&fake).len(), 3);
        let m = card_message(&id);
        assert_eq!(m.msg_type, "interactive");
        let content: Value = serde_json::from_str(&m.content).expect("json");
        assert_eq!(content, json!({"type": "card", "data": {"card_id": id}}));
    }

    #[tokio::test]
    async fn sequence_is_strictly_increasing_across_mixed_ops() {
        let cards = Arc::new(StdMutex::new(Cards::default()));
        let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
        let cfg = WriterConfig {
            max_ops_per_sec: 100,
            ..Default::default()
        };
        let w = CardWriter::spawn(kit(&fake), "c1".into(), 5, cfg);
        w.set_content("answer", "a");
        w.flush().await.expect("flush");
        w.update_card(json!({"schema": "2.0"}).to_string());
        w.flush().await.expect("flush");
        w.set_content("answer", "ab");
        w.set_content("reasoning", "r");
        w.update_settings(close_streaming_settings("x"));
        let report = w.finish().await.expect("finish");
        let seqs: Vec<i64> = ops(&fake)
            .iter()
            .map(|r| r.json()["sequence"].as_i64().unwrap_or(0))
            .collect();
        assert_eq!(seqs.len(), 5, "{seqs:?}");
        assert!(seqs[0] > 5, "starts above the given sequence: {seqs:?}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(report.ops, 5);
        assert_eq!(i64::from(report.last_sequence), seqs[4]);
        // Settings came last, after the text.
        assert!(ops(&fake)[4].path.ends_with("/settings"));
        assert_eq!(cards.lock().expect("lock").content["answer"], "ab");
    }

    #[tokio::test]
    async fn a_burst_of_updates_is_coalesced() {
        let cards = Arc::new(StdMutex::new(Cards::default()));
        let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
        let cfg = WriterConfig {
            max_ops_per_sec: 40,
            ..Default::default()
        };
        let w = CardWriter::spawn(kit(&fake), "c2".into(), 0, cfg);
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("词{i} "));
            w.set_content("answer", text.clone());
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let report = w.finish().await.expect("finish");
        let n = ops(&fake).len();
        assert!((2..100).contains(&n), "{n} ops for 1000 updates");
        assert_eq!(report.ops as usize, n);
        let c = cards.lock().expect("lock");
        assert_eq!(c.content["answer"], text);
        // Paced: no two operations closer than half the interval.
        let min_gap = Duration::from_secs(1) / 40 / 2;
        assert!(
            c.at.windows(2).all(|p| p[1] - p[0] >= min_gap),
            "{:?}",
            c.at
        );
    }

    #[tokio::test]
    async fn a_permanent_error_is_surfaced() {
        for (code, kind) in [
            (300309, FailureKind::StreamingClosed),
            (200740, FailureKind::Gone),
            (200860, FailureKind::TooLarge),
            (300317, FailureKind::Sequence),
        ] {
            let fake = FakeHttp::start(move |r, _| {
                if r.path == TOKEN {
                    token()
                } else {
                    Reply::json(400, json!({"code": code, "msg": "no"}))
                }
            })
            .await;
            let w = CardWriter::spawn(kit(&fake), "c3".into(), 0, WriterConfig::default());
            let mut watch = w.watch_failure();
            w.set_content("answer", "x");
            let f = watch
                .wait_for(Option::is_some)
                .await
                .expect("watch")
                .clone()
                .expect("failure");
            assert_eq!(f.kind, kind);
            assert_eq!(f.code, Some(code));
            assert_eq!(w.failure().map(|f| f.kind), Some(kind));
            assert!(w.flush().await.is_err());
            w.set_content("answer", "more");
            let e = w.finish().await.expect_err("finish reports the failure");
            assert_eq!(e.kind, kind);
            assert_eq!(ops(&fake).len(), 1, "no retries after a permanent error");
        }
    }

    #[tokio::test]
    async fn repeated_server_errors_give_up() {
        let fake = FakeHttp::start(|r, _| {
            if r.path == TOKEN {
                token()
            } else {
                Reply::json(503, json!({"code": 1, "msg": "unavailable"}))
            }
        })
        .await;
        let cfg = WriterConfig {
            max_transient_failures: 2,
            failure_backoff: Duration::from_millis(5),
            max_ops_per_sec: 100,
        };
        let w = CardWriter::spawn(kit(&fake), "c4".into(), 0, cfg);
        w.set_content("answer", "x");
        let e = w.finish().await.expect_err("gives up");
        assert_eq!(e.kind, FailureKind::Unavailable);
        // 2 writer attempts × (1 + 1 client retry).
        assert_eq!(ops(&fake).len(), 4);
    }

    /// A fake platform whose first `n` card operations fail as server
    /// errors after consuming their sequence; the rest succeed.
    async fn failing_first(n: usize) -> (FakeHttp, Arc<StdMutex<Cards>>) {
        let cards = Arc::new(StdMutex::new(Cards::default()));
        let inner = cardkit_route(cards.clone());
        let fake = FakeHttp::start(move |r, earlier| {
            let seen = earlier
                .iter()
                .filter(|e| e.path.starts_with(CARDS_PATH))
                .count();
            let answer = inner(r, earlier);
            if r.path.starts_with(CARDS_PATH) && seen < n {
                return Reply::json(503, json!({"code": 1, "msg": "unavailable"}));
            }
            answer
        })
        .await;
        (fake, cards)
    }

    #[tokio::test]
    async fn a_new_writer_continues_above_a_failed_ones_sequence() {
        // The first four card operations fail as server errors, after the
        // platform consumed their sequence (the worst case).
        let (fake, cards) = failing_first(4).await;
        let cfg = WriterConfig {
            max_transient_failures: 2,
            failure_backoff: Duration::from_millis(5),
            max_ops_per_sec: 100,
        };
        let w = CardWriter::spawn(kit(&fake), "c6".into(), 3, cfg.clone());
        w.set_content("answer", "x");
        let f = w.finish().await.expect_err("gives up");
        assert_eq!(f.kind, FailureKind::Unavailable);
        assert_eq!(f.last_sequence, 5, "two attempts above 3");
        let w = CardWriter::spawn(kit(&fake), "c6".into(), f.last_sequence, cfg);
        w.set_content("answer", "final");
        let report = w.finish().await.expect("the next writer succeeds");
        assert_eq!(report.last_sequence, 6);
        assert_eq!(cards.lock().expect("lock").content["answer"], "final");
    }

    #[tokio::test]
    async fn rate_limit_waits_and_succeeds() {
        let cards = Arc::new(StdMutex::new(Cards::default()));
        let inner = cardkit_route(cards.clone());
        let fake = FakeHttp::start(move |r, earlier| {
            let limited = earlier
                .iter()
                .filter(|e| e.path.contains("/elements/"))
                .count()
                == 0;
            if r.path.contains("/elements/") && limited {
                return Reply::json(429, json!({"code": 99991400, "msg": "frequency limit"}))
                    .header("x-ogw-ratelimit-reset", "1");
            }
            inner(r, earlier)
        })
        .await;
        let started = Instant::now();
        let w = CardWriter::spawn(kit(&fake), "c5".into(), 0, WriterConfig::default());
        w.set_content("answer", "hello");
        let report = w.finish().await.expect("succeeds after waiting");
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(report.ops, 1);
        assert_eq!(ops(&fake).len(), 2);
        assert_eq!(cards.lock().expect("lock").content["answer"], "hello");
    }

    /// A source whose state is one text; records its pulls and settles.
    #[derive(Default)]
    struct TextSource {
        text: StdMutex<String>,
        sent: StdMutex<String>,
        pulls: AtomicU32,
        settles: StdMutex<Vec<bool>>,
    }

    impl TextSource {
        fn set(&self, t: &str) {
            *self.text.lock().expect("lock") = t.to_string();
        }
    }

    impl CardSource for TextSource {
        fn pull(&self) -> Option<LiveUpdate> {
            self.pulls.fetch_add(1, Ordering::SeqCst);
            let text = self.text.lock().expect("lock").clone();
            (text != *self.sent.lock().expect("lock")).then(|| LiveUpdate::Content {
                element_id: "answer".into(),
                content: text,
            })
        }

        fn settle(&self, accepted: bool) {
            self.settles.lock().expect("lock").push(accepted);
            if accepted {
                *self.sent.lock().expect("lock") = self.text.lock().expect("lock").clone();
            }
        }
    }

    #[tokio::test]
    async fn a_live_writer_pulls_once_per_operation_and_sends_the_newest_state() {
        let cards = Arc::new(StdMutex::new(Cards::default()));
        let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
        let cfg = WriterConfig {
            max_ops_per_sec: 20,
            ..Default::default()
        };
        let src = Arc::new(TextSource::default());
        let w = CardWriter::spawn_live(kit(&fake), "c7".into(), 2, cfg, src.clone());
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(&format!("{i} "));
            src.set(&text);
            w.mark_dirty();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        w.flush().await.expect("flush");
        let n = ops(&fake).len();
        assert!((1..40).contains(&n), "{n} ops for 300 changes");
        assert_eq!(
            src.pulls.load(Ordering::SeqCst) as usize,
            n,
            "one render per op"
        );
        assert_eq!(cards.lock().expect("lock").content["answer"], text);
        // Nothing changed: marked dirty, pulled, nothing sent.
        w.mark_dirty();
        let report = w.finish().await.expect("finish");
        assert_eq!(report.ops as usize, n);
        assert_eq!(ops(&fake).len(), n);
        let seqs: Vec<i64> = ops(&fake)
            .iter()
            .map(|r| r.json()["sequence"].as_i64().unwrap_or(0))
            .collect();
        assert!(
            seqs[0] > 2 && seqs.windows(2).all(|w| w[0] < w[1]),
            "{seqs:?}"
        );
        assert!(src.settles.lock().expect("lock").iter().all(|a| *a));
    }

    #[tokio::test]
    async fn a_pulled_update_that_failed_is_pulled_again() {
        let (fake, cards) = failing_first(2).await;
        let cfg = WriterConfig {
            max_transient_failures: 3,
            failure_backoff: Duration::from_millis(5),
            max_ops_per_sec: 100,
        };
        let src = Arc::new(TextSource::default());
        let w = CardWriter::spawn_live(kit(&fake), "c8".into(), 0, cfg, src.clone());
        src.set("first");
        w.mark_dirty();
        let report = w.finish().await.expect("the retry succeeds");
        assert_eq!(report.ops, 1);
        assert_eq!(*src.settles.lock().expect("lock"), vec![false, true]);
        assert_eq!(cards.lock().expect("lock").content["answer"], "first");
    }

    #[tokio::test]
    async fn a_queued_card_supersedes_a_pending_pull() {
        let cards = Arc::new(StdMutex::new(Cards::default()));
        let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
        let cfg = WriterConfig {
            max_ops_per_sec: 5,
            ..Default::default()
        };
        let src = Arc::new(TextSource::default());
        let w = CardWriter::spawn_live(kit(&fake), "c9".into(), 0, cfg, src.clone());
        src.set("live");
        w.mark_dirty();
        w.flush().await.expect("flush");
        assert_eq!(src.pulls.load(Ordering::SeqCst), 1);
        // The writer now waits out its pacing with a pull in hand; the
        // final card arrives meanwhile and goes out instead.
        src.set("live, more");
        w.mark_dirty();
        tokio::time::sleep(Duration::from_millis(20)).await;
        w.update_card(json!({"schema": "2.0"}).to_string());
        w.update_settings(close_streaming_settings("done"));
        w.finish().await.expect("finish");
        assert_eq!(
            src.pulls.load(Ordering::SeqCst),
            1,
            "no pull after the card"
        );
        let reqs = ops(&fake);
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[1].path, format!("{CARDS_PATH}/c9"));
        assert!(reqs[2].path.ends_with("/settings"));
    }

    #[tokio::test]
    async fn a_writer_without_a_source_ignores_dirty_marks() {
        let fake = FakeHttp::start(cardkit_route(Arc::new(StdMutex::new(Cards::default())))).await;
        let w = CardWriter::spawn(kit(&fake), "c10".into(), 0, WriterConfig::default());
        w.mark_dirty();
        w.flush().await.expect("nothing to flush");
        let report = w.finish().await.expect("finish");
        assert_eq!(report.ops, 0);
        assert!(ops(&fake).is_empty());
    }
}
