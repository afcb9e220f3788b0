//! The per-card writer: one serialized writer per card entity, owning its
//! sequence counter, coalescing and pacing its updates.

use super::*;

#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    /// Operations per second on this card (the platform allows 10).
    pub(crate) max_ops_per_sec: u32,
    /// Consecutive failed operations (after the client's own retries)
    /// before the card is given up.
    pub(crate) max_transient_failures: u32,
    /// Pause after a failed operation.
    pub(crate) failure_backoff: Duration,
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
pub(crate) enum FailureKind {
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
pub(crate) struct CardFailure {
    pub(crate) card_id: String,
    pub(crate) kind: FailureKind,
    pub(crate) code: Option<i64>,
    pub(crate) message: String,
    /// The highest sequence the writer used (some may have been consumed
    /// by attempts that failed), so a new writer on the same card can start
    /// above it.
    pub(crate) last_sequence: u32,
}

/// What a finished writer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriterReport {
    /// Operations the platform accepted.
    pub(crate) ops: u64,
    /// The last sequence used (the next writer on this card must start
    /// above it).
    pub(crate) last_sequence: u32,
    /// The shortest time between two operations this writer started: the
    /// pacing as the writer kept it (arrival times at the platform jitter).
    pub(crate) min_op_gap: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Op {
    Content { element_id: String, content: String },
    Card(String),
    Settings(String),
}

/// An update a [`CardSource`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LiveUpdate {
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
pub(crate) trait CardSource: Send + Sync {
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
    #[cfg(test)]
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
pub(crate) struct CardWriter {
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
    pub(crate) fn spawn(
        kit: CardKit,
        card_id: String,
        last_sequence: u32,
        cfg: WriterConfig,
    ) -> Self {
        Self::start(kit, card_id, last_sequence, cfg, None)
    }

    /// Like [`CardWriter::spawn`], for a live card: after
    /// [`CardWriter::mark_dirty`] the writer asks `source` for the update
    /// when it is about to send.
    pub(crate) fn spawn_live(
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

    /// Sets an element's full text. Coalesced: only the latest text per
    /// element is sent. (Live cards pull their content instead.)
    #[cfg(test)]
    pub(crate) fn set_content(&self, element_id: &str, content: impl Into<String>) {
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
    pub(crate) fn update_card(&self, card_json: impl Into<String>) {
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
    pub(crate) fn mark_dirty(&self) {
        if self.shared.source.is_none() {
            return;
        }
        self.shared.lock().dirty = true;
        self.shared.wake.notify_one();
    }

    /// Queues a settings change (e.g. [`close_streaming_settings`]); applied
    /// after everything queued so far.
    pub(crate) fn update_settings(&self, settings: impl Into<String>) {
        self.shared.lock().settings.push_back(settings.into());
        self.shared.wake.notify_one();
    }

    /// The permanent failure, if the card was given up.
    pub(crate) fn failure(&self) -> Option<CardFailure> {
        self.failure.borrow().clone()
    }

    /// A receiver that changes once, when the card is given up.
    #[cfg(test)]
    pub(crate) fn watch_failure(&self) -> watch::Receiver<Option<CardFailure>> {
        self.failure.clone()
    }

    /// Waits until everything queued so far was sent.
    #[cfg(test)]
    pub(crate) async fn flush(&self) -> Result<(), CardFailure> {
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
    pub(crate) async fn finish(mut self) -> Result<WriterReport, CardFailure> {
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
    pub(crate) fn last_sequence(&self) -> u32 {
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
    let mut min_op_gap: Option<Duration> = None;
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
                min_op_gap,
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
        let now = Instant::now();
        if let Some(prev) = last_op {
            let gap = now - prev;
            min_op_gap = Some(min_op_gap.map_or(gap, |m| m.min(gap)));
        }
        last_op = Some(now);
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
