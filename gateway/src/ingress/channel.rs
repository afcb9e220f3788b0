//! One profile's Feishu/Lark channel: the long connection in, normalized
//! messages to the profile's worker, worker events back out as replies.
//!
//! ACK discipline: an event is acknowledged only after the worker has
//! durably accepted it (or it is something we deliberately drop). When the
//! worker cannot accept in time (restarting, busy committing) no ACK is sent
//! and the platform redelivers; the worker's journal de-duplicates by message
//! id, so a redelivery after any restart still runs once.
//!
//! Order: one scope's messages are committed in the order they arrived
//! (`ingress::order`); a message is not committed ahead of an earlier one of
//! its scope that the platform will bring back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fcx_config::{AppConfig, Profile};
use fcx_proto::v1::{self as pb, Actor, PlatformInfo, QuotedMessage};
use futures::future::BoxFuture;
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::egress::deferred::{self, Deferred, DeferredCtx};
use crate::egress::dispatch::{Out, outbound};
use crate::feishu::frame::AckReply;
use crate::feishu::http::{ApiError, OpenApiClient, RetryPolicy};
use crate::feishu::ws::{EventHandler, InboundEvent, WsClient, WsOptions, WsState, WsStatus};
use crate::ingress::normalize::{self, BotIdentity, Normalized, Options};
use crate::ingress::order::{Refused, ScopeOrder, Ticket};
use crate::ingress::recent::{RECENT_FOR, RecentIds, TOLD_FOR};
use crate::ingress::secrets::{off_thread, webhook_keys};
use crate::ingress::webhook::Reply;
use crate::link::supervisor::{WorkerHandle, now_ms};

mod deliver;

/// How long a quoted parent may take to fetch inside the ACK window.
const QUOTE_BUDGET: Duration = Duration::from_millis(700);
/// How long a mentioning comment (and its document's title) may take to
/// fetch inside the ACK window.
const COMMENT_BUDGET: Duration = Duration::from_millis(1500);
/// How long a merge-forward's children may take to fetch inside the ACK
/// window.
const FORWARD_BUDGET: Duration = Duration::from_millis(1500);

/// Deliver calls one channel keeps in flight to its worker. The worker
/// commits one message at a time, so more buys no throughput; it only moves
/// the queue from here (where a waiting event costs nothing) into the gRPC
/// connection, where an event whose ACK window has already closed would
/// still be committed, and a burst could keep the worker busy with such
/// events while fresh ones time out behind them. One scope has at most one
/// call in flight (its events go in arrival order, `ingress::order`); a
/// scope's event waiting for its turn takes no slot.
const DELIVER_IN_FLIGHT: usize = 64;

/// How long a click waits (within the ACK window) for a restarting worker
/// before the user is told to try again.
const CLICK_READY_WAIT: Duration = Duration::from_millis(500);

/// An ACK answer that shows the clicking user a toast.
fn toast(kind: &str, content: &str) -> AckReply {
    AckReply::OkWithData(json!({"toast": {"type": kind, "content": content}}))
}

/// What `fcxctl status` shows about a channel.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChannelView {
    /// "starting" | "connecting" | "connected" | "backoff" | "stopped: <why>"
    pub(crate) state: String,
    pub(crate) last_frame_at_ms: i64,
    pub(crate) last_event_at_ms: i64,
    pub(crate) reconnects: u64,
    pub(crate) bot: String,
}

#[derive(Clone, Default)]
pub(crate) struct ChannelStatus(Arc<Mutex<ChannelView>>);

impl ChannelStatus {
    pub(crate) fn view(&self) -> ChannelView {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
    fn set(&self, f: impl FnOnce(&mut ChannelView)) {
        if let Ok(mut v) = self.0.lock() {
            f(&mut v);
        }
    }
}

fn ms(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Run the channel until `stop`. Errors that end it (an unreadable secret,
/// bad credentials, a refused connection) are reported in `status` and the
/// log; they never take other profiles down.
pub(crate) async fn run(
    profile: Profile,
    app: AppConfig,
    profile_dir: std::path::PathBuf,
    worker: Arc<WorkerHandle>,
    status: ChannelStatus,
    stop: CancellationToken,
) {
    status.set(|v| v.state = "starting".into());
    let client = {
        let app = app.clone();
        off_thread(&stop, move || {
            OpenApiClient::from_app(&app, RetryPolicy::default()).map_err(|e| e.to_string())
        })
        .await
    };
    let http = match client {
        None => return,
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            let why = format!("cannot read the app secret ({}): {e}", app.app_secret);
            tracing::error!(profile = %profile.name, "{why}");
            status.set(|v| v.state = format!("stopped: {why}"));
            return;
        }
    };
    let bot = match bot_identity(&http, &profile.name, &status, &stop).await {
        Some(b) => b,
        None => return,
    };
    status.set(|v| v.bot = bot.name.clone());
    tracing::info!(profile = %profile.name, bot = %bot.name, "channel identity known");
    // Events that arrive before the worker can accept them are not
    // acknowledged and wait for a redelivery: open the connection once it can.
    tokio::select! {
        _ = worker.wait_ready(Duration::from_secs(30)) => {}
        _ = stop.cancelled() => return,
    }

    // Best effort: without the app-info scope the platform refuses, and the
    // configured owner (which wins anyway) is used.
    let owner_id = match http.app_owner().await {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => {
            tracing::info!(profile = %profile.name, error = %e, "the app owner could not be learned from the platform");
            String::new()
        }
    };
    worker
        .set_platform(PlatformInfo {
            platform: pb::Platform::from_word(app.tenant.as_str()).unwrap_or_default() as i32,
            app_id: app.app_id.clone(),
            owner_id,
            bot_id: bot.open_id.clone(),
            bot_name: bot.name.clone(),
        })
        .await;

    let keys = match crate::ingress::keys::SharedKeys::open(&profile_dir) {
        Ok(k) => k,
        Err(e) => {
            let why = format!("cannot read or create the card signing keys: {e}");
            tracing::error!(profile = %profile.name, "{why}");
            status.set(|v| v.state = format!("stopped: {why}"));
            return;
        }
    };
    let forms = crate::ingress::click::FormTokens::default();
    let cards = crate::egress::cards::CardSurface::new(
        http.clone(),
        keys.clone(),
        forms.clone(),
        idempotency_tag(&profile.name, worker.cursor().position().1),
        worker.caps(),
    )
    .with_journal(profile_dir.join("open-cards.json"));
    let nonces: Box<dyn crate::ingress::callback::NonceStore> =
        match crate::ingress::click::FileNonceStore::open(
            &profile_dir.join("used-nonces"),
            now_ms() / 1000,
        ) {
            Ok(f) => Box::new(f),
            Err(e) => {
                // Still single-use within this process; say what is lost.
                tracing::error!(profile = %profile.name, error = %e, "cannot persist used button nonces; a restart forgets them (tokens still expire)");
                Box::new(crate::ingress::callback::MemoryNonceStore::default())
            }
        };
    let callbacks = crate::ingress::click::Callbacks {
        profile: profile.name.clone(),
        keys,
        nonces,
        forms,
    };
    let (out_tx, out_rx) = mpsc::channel::<Deferred>(1024);
    // Without a store, attachments are not downloaded; the worker tells the
    // user their download did not finish.
    let media = match crate::media::store::MediaStore::open(profile_dir.join(fcx_config::MEDIA_DIR))
    {
        Ok(store) => Some((crate::media::Fetcher::new(store.clone()), store)),
        Err(e) => {
            tracing::error!(profile = %profile.name, error = %e, "cannot open the media store; attachments will not be downloaded");
            None
        }
    };
    let handler = Arc::new(SharedHandler(Arc::new(Handler {
        profile: profile.name.clone(),
        worker: worker.clone(),
        http: http.clone(),
        bot: bot.clone(),
        deferred: out_tx,
        recent: Mutex::new(RecentIds::new(RECENT_FOR)),
        told_storage: Mutex::new(RecentIds::new(TOLD_FOR)),
        deliver_slots: tokio::sync::Semaphore::new(DELIVER_IN_FLIGHT),
        order: ScopeOrder::default(),
        stale_after: Duration::from_secs(app.stale_after_secs),
        callbacks,
        drive: crate::feishu::drive::Drive::new(http.clone()),
        fetcher: media.as_ref().map(|((f, _), _)| f.clone()),
    })));
    let reconnect = Arc::new(Notify::new());
    let tasks = tokio_util::task::TaskTracker::new();
    if let Some(((_, rx), store)) = media {
        tasks.spawn(crate::media::run(
            store,
            crate::feishu::resources::Resources::new(http.clone()),
            rx,
            stop.clone(),
        ));
    }
    match &app.webhook {
        // The platform delivers by one subscription mode at a time.
        Some(hook) => {
            let keys = {
                let hook = hook.clone();
                off_thread(&stop, move || webhook_keys(&hook)).await
            };
            let keys = match keys {
                None => return,
                Some(Ok(k)) => k,
                Some(Err(why)) => {
                    tracing::error!(profile = %profile.name, "{why}");
                    status.set(|v| v.state = format!("stopped: {why}"));
                    return;
                }
            };
            status.set(|v| v.state = format!("webhook on {}", hook.listen));
            let h = handler.clone();
            let on_event: crate::ingress::webhook::Handler =
                Arc::new(move |payload: Vec<u8>, stamped_ms: Option<i64>| {
                    let h = h.clone();
                    Box::pin(async move { webhook_event(h, payload, stamped_ms).await })
                });
            let listen = hook.listen;
            // Older events are dropped as stale anyway; the same window
            // bounds how long a signed request is remembered.
            let freshness = app.stale_after_secs;
            let stop = stop.clone();
            let status = status.clone();
            tasks.spawn(async move {
                if let Err(e) =
                    crate::ingress::webhook::serve(listen, keys, freshness, on_event, stop).await
                {
                    tracing::error!(%listen, error = %e, "the webhook listener failed");
                    status.set(|v| v.state = format!("stopped: cannot listen on {listen}: {e}"));
                }
            });
        }
        None => {
            tasks.spawn(long_connection(
                profile.name.clone(),
                http.clone(),
                handler,
                status.clone(),
                reconnect.clone(),
                stop.clone(),
            ));
        }
    }
    let lanes = crate::egress::lanes::Lanes::new(crate::egress::lanes::LaneCtx {
        http: http.clone(),
        worker: worker.clone(),
        cards,
        tag: idempotency_tag(&profile.name, worker.cursor().position().1),
        reconnect,
        default_mode: app.reply_mode.as_str().to_string(),
        commits: Default::default(),
        bot: bot.open_id.clone(),
        outgoing: fcx_config::outgoing_in(&profile_dir),
    });
    tasks.spawn(deferred::run(
        DeferredCtx {
            profile: profile.name.clone(),
            http,
            worker: worker.clone(),
            bot,
        },
        out_rx,
        stop.clone(),
    ));
    tasks.spawn(outbound(
        Out {
            profile: profile.name.clone(),
            worker,
            lanes,
        },
        stop.clone(),
    ));
    tasks.close();
    tasks.wait().await;
}

/// A webhook event takes the long connection's path, its signed timestamp as
/// the frame's; the ACK is the HTTP answer (an error makes the platform retry).
async fn webhook_event(h: Arc<SharedHandler>, payload: Vec<u8>, stamped_ms: Option<i64>) -> Reply {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&payload) else {
        return Reply::Ack(json!({"msg": "success"}));
    };
    let ev = InboundEvent {
        message_id: "webhook".into(),
        payload: value,
        pushed_at_ms: stamped_ms,
    };
    let deadline = Instant::now() + Duration::from_millis(2500);
    match tokio::time::timeout_at(deadline, h.handle(ev, deadline)).await {
        Ok(AckReply::Ok) => Reply::Ack(json!({"msg": "success"})),
        Ok(AckReply::OkWithData(v)) => Reply::Ack(v),
        Ok(AckReply::Error | AckReply::NoAck) | Err(_) => Reply::Retry,
    }
}

/// The long connection, restarted as a fresh session on `/reconnect`
/// (runs are unaffected: replies go over HTTP).
async fn long_connection(
    profile: String,
    http: OpenApiClient,
    handler: Arc<SharedHandler>,
    status: ChannelStatus,
    reconnect: Arc<Notify>,
    stop: CancellationToken,
) {
    let source = Arc::new(http);
    loop {
        let session = stop.child_token();
        let (ws, ws_status) = WsClient::new(source.clone(), handler.clone(), WsOptions::default());
        let mirror = tokio::spawn(mirror_status(ws_status, status.clone(), session.clone()));
        let run = ws.run(session.clone());
        tokio::pin!(run);
        let ended = tokio::select! {
            r = &mut run => Some(r),
            _ = reconnect.notified() => {
                tracing::info!(%profile, "reconnecting the long connection on request");
                session.cancel();
                let _ = (&mut run).await;
                None
            }
        };
        session.cancel();
        let _ = mirror.await;
        if let Some(reason) = ended {
            tracing::warn!(%profile, %reason, "long connection stopped");
            status.set(|v| v.state = format!("stopped: {reason}"));
            return;
        }
    }
}

async fn bot_identity(
    http: &OpenApiClient,
    profile: &str,
    status: &ChannelStatus,
    stop: &CancellationToken,
) -> Option<BotIdentity> {
    let mut wait = Duration::from_secs(1);
    loop {
        match http.bot_info().await {
            Ok(b) if !b.open_id.is_empty() => {
                return Some(BotIdentity {
                    open_id: b.open_id,
                    name: b.app_name,
                });
            }
            Ok(_) => tracing::warn!(profile, "bot info has no open_id; retrying"),
            // Credentials the platform refuses will not get better.
            Err(e @ ApiError::Api { .. }) if e.code().is_some_and(is_credential_error) => {
                let why = format!("the app credentials were refused: {e}");
                tracing::error!(profile, "{why}");
                status.set(|v| v.state = format!("stopped: {why}"));
                return None;
            }
            Err(e) => tracing::warn!(profile, error = %e, "cannot read the bot info; retrying"),
        }
        status.set(|v| v.state = "backoff".into());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return None,
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

fn is_credential_error(code: i64) -> bool {
    // 10003 invalid app_id, 10014 app secret invalid, 99991543 app not
    // found / disabled (feishu.md §3.1 and the fake's documented guesses).
    matches!(code, 10003 | 10014 | 99991543)
}

async fn mirror_status(
    mut rx: watch::Receiver<WsStatus>,
    status: ChannelStatus,
    stop: CancellationToken,
) {
    loop {
        {
            let s = rx.borrow_and_update().clone();
            status.set(|v| {
                if !v.state.starts_with("stopped") {
                    v.state = match &s.state {
                        WsState::Idle | WsState::Connecting => "connecting".into(),
                        WsState::Connected => "connected".into(),
                        WsState::Backoff { .. } => "backoff".into(),
                        WsState::Stopped(r) => format!("stopped: {r}"),
                    };
                }
                v.last_frame_at_ms = ms(s.last_frame_at);
                v.last_event_at_ms = ms(s.last_event_at);
                v.reconnects = s.reconnects;
            });
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = stop.cancelled() => return,
        }
    }
}

struct Handler {
    profile: String,
    worker: Arc<WorkerHandle>,
    http: OpenApiClient,
    bot: BotIdentity,
    deferred: mpsc::Sender<Deferred>,
    recent: Mutex<RecentIds>,
    /// Messages whose sender was told fcx cannot save them: every
    /// redelivery meets the same full disk, one notice is enough.
    told_storage: Mutex<RecentIds>,
    deliver_slots: tokio::sync::Semaphore,
    /// One scope's messages go to the worker in the order they arrived.
    order: ScopeOrder,
    /// Replays older than this are dropped (the platform retries for hours).
    stale_after: Duration,
    callbacks: crate::ingress::click::Callbacks,
    drive: crate::feishu::drive::Drive,
    /// Downloads attachments after the ACK (`None`: no media store).
    fetcher: Option<crate::media::Fetcher>,
}

impl Handler {
    fn seen(&self, id: &str) -> bool {
        self.recent.lock().map(|r| r.contains(id)).unwrap_or(false)
    }

    fn remember(&self, id: &str) {
        if let Ok(mut r) = self.recent.lock() {
            let _ = r.insert(id, Instant::now());
        }
    }

    /// Normalises `ev` and, for a message, takes its place in its scope's
    /// order: done as the event arrives, the rest runs concurrently.
    fn admit(&self, ev: &InboundEvent) -> Option<(Normalized, Option<Place>)> {
        let opts = Options {
            stale_after_ms: self.stale_after.as_millis() as i64,
            now_ms: now_ms(),
            platform_now_ms: ev.pushed_at_ms,
        };
        match normalize::normalize_value(&ev.payload, &self.bot, &opts) {
            Ok(n) => {
                let place = match &n {
                    Normalized::Message { inbound, .. } if !self.seen(&inbound.event_id) => {
                        Some(self.order.ticket(&inbound.scope))
                    }
                    _ => None,
                };
                Some((n, place))
            }
            Err(e) => {
                // Garbage is acknowledged so it is not pushed again for hours.
                tracing::warn!(profile = %self.profile, frame = %ev.message_id, error = %e, "unreadable event skipped");
                None
            }
        }
    }

    async fn on_event(
        self: Arc<Self>,
        admitted: Option<(Normalized, Option<Place>)>,
        deadline: Instant,
    ) -> AckReply {
        let Some((n, place)) = admitted else {
            return AckReply::Ok;
        };
        match n {
            Normalized::Ignored { event_id, reason } => {
                tracing::info!(profile = %self.profile, %event_id, %reason, "event ignored");
                AckReply::Ok
            }
            Normalized::BotAdded { event_id, chat_id } => {
                if self.seen(&event_id) {
                    return AckReply::Ok;
                }
                // No room to queue the welcome in time: not acknowledged,
                // so the platform delivers the event again.
                if !self.defer(Deferred::Welcome { chat_id }, deadline).await {
                    return AckReply::NoAck;
                }
                self.remember(&event_id);
                AckReply::Ok
            }
            // Verified here, in the ACK window; the action itself runs
            // after the ACK (deferred work asks the worker, which re-checks
            // policy).
            Normalized::CardAction { event, .. } => {
                // Room for the action first: checking burns the button's
                // single use, so "busy, try again" must come before it.
                let Ok(permit) = self.deferred.try_reserve() else {
                    return toast("warning", "Busy; please try again.");
                };
                // And a worker to act: a click on a worker that is down
                // would burn the button and do nothing.
                let budget =
                    CLICK_READY_WAIT.min(deadline.saturating_duration_since(Instant::now()) / 3);
                if !self.worker.wait_ready(budget).await {
                    return toast(
                        "warning",
                        "fcx is restarting; please try again in a moment.",
                    );
                }
                match self.callbacks.check(&event) {
                    Ok(click) => {
                        let Some(action) = click.action(&event) else {
                            return AckReply::OkWithData(
                                crate::ingress::callback::Denied::WrongAction.answer(),
                            );
                        };
                        let text = match action.action_kind() {
                            pb::ActionKind::Stop => "Stopping…",
                            pb::ActionKind::Config => "Saving…",
                            pb::ActionKind::Approval => "Sending your decision to Codex…",
                            _ => "On it…",
                        };
                        permit.send(Deferred::Act(Box::new(action)));
                        toast("info", text)
                    }
                    Err(answer) => AckReply::OkWithData(answer),
                }
            }
            Normalized::Comment(ev) => {
                if self.seen(&ev.dedup_key()) {
                    return AckReply::Ok;
                }
                // Fetching leaves at least half the window for delivery.
                let budget =
                    COMMENT_BUDGET.min(deadline.saturating_duration_since(Instant::now()) / 2);
                let fetched = tokio::time::timeout(
                    budget,
                    crate::ingress::comment::fetch(&self.drive, &ev, &self.bot),
                )
                .await;
                match fetched {
                    Ok(Ok(Some(inbound))) => self.deliver(inbound, deadline, None).await,
                    Ok(Ok(None)) => {
                        tracing::info!(profile = %self.profile, comment = %ev.comment_id, "a comment mention with no question left (the reply is gone); ignored");
                        AckReply::Ok
                    }
                    Ok(Err(e)) if e.transient() => {
                        tracing::warn!(profile = %self.profile, comment = %ev.comment_id, error = %e, "cannot read a comment that mentions the bot; not acknowledging so the platform redelivers");
                        AckReply::NoAck
                    }
                    // The platform refused (no permission, comment gone,
                    // a kind of document the API does not take): a
                    // redelivery would be refused again.
                    // The asker still hears of it (best effort: posting
                    // may be refused too), never silence.
                    Ok(Err(e)) => {
                        tracing::warn!(profile = %self.profile, comment = %ev.comment_id, error = %e, "cannot read a comment that mentions the bot (does the app have the docs:document.comment:read scope and access to the document?)");
                        self.remember(&ev.dedup_key());
                        let notice = Deferred::Notice {
                            message_id: crate::ingress::comment::unread_target(&ev).carrier(),
                            text: crate::ingress::comment::unread_text(&e),
                        };
                        let _ = self.defer(notice, deadline).await;
                        AckReply::Ok
                    }
                    Err(_) => {
                        tracing::warn!(profile = %self.profile, comment = %ev.comment_id, "reading a comment took too long; not acknowledging so the platform redelivers");
                        AckReply::NoAck
                    }
                }
            }
            Normalized::Message {
                inbound,
                parent_id,
                merge_forward,
            } => {
                let mut inbound = *inbound;
                // No place: it had been taken when it arrived.
                let Some(place) = place else {
                    return AckReply::Ok;
                };
                let Ok(ticket) = place else {
                    tracing::warn!(profile = %self.profile, scope = %inbound.scope, "too many messages of one chat at once; not acknowledging so the platform redelivers");
                    return AckReply::NoAck;
                };
                if self.seen(&inbound.event_id) {
                    ticket.committed();
                    return AckReply::Ok;
                }
                let unread = if merge_forward {
                    // Fetching leaves at least half the window for delivery.
                    let budget =
                        FORWARD_BUDGET.min(deadline.saturating_duration_since(Instant::now()) / 2);
                    crate::ingress::forward::expand(&self.http, &mut inbound, budget).await
                } else {
                    None
                };
                let mut notes: Vec<String> = unread.into_iter().collect();
                if let Some(parent) = parent_id {
                    let budget =
                        QUOTE_BUDGET.min(deadline.saturating_duration_since(Instant::now()) / 3);
                    // A quote the platform could not show in time (a rate
                    // limit, an outage, a slow answer) is said, as an
                    // unread forward is: the run goes on without the text
                    // the user pointed at. One it refuses (recalled, not
                    // visible to the bot; a topic's root is read this way
                    // too) has no text to give: said nothing, as before.
                    match tokio::time::timeout(budget, self.quote(&parent)).await {
                        Ok(Ok(Some(q))) => inbound.quoted.push(q),
                        Ok(Ok(None)) => {}
                        Ok(Err(e)) if e.transient() => {
                            notes.push(quote_unread_text(Some(&e)));
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(profile = %self.profile, error = %e, "the quoted message cannot be read");
                        }
                        Err(_) => notes.push(quote_unread_text(None)),
                    }
                }
                let message_id = inbound.message_id.clone();
                let reply = self.deliver(inbound, deadline, Some(ticket)).await;
                // Only once the message is taken: a redelivery fetches again.
                if matches!(reply, AckReply::Ok) && !notes.is_empty() {
                    let text = notes.join("\n");
                    let _ = self
                        .defer(Deferred::Notice { message_id, text }, deadline)
                        .await;
                }
                reply
            }
        }
    }

    fn fetch(&self, message_id: String, attachments: Vec<pb::Attachment>) {
        let (Some(f), Some(limits)) = (&self.fetcher, self.worker.caps().media()) else {
            tracing::warn!(profile = %self.profile, %message_id, "attachments not downloaded: no media store or no worker limits");
            return;
        };
        f.submit(crate::media::FetchJob {
            message_id,
            attachments,
            limits,
        });
    }

    /// Queues work for after the ACK, waiting for room until shortly
    /// before `deadline`; `false` if there was none.
    async fn defer(&self, work: Deferred, deadline: Instant) -> bool {
        let until = deadline - Duration::from_millis(150);
        matches!(
            tokio::time::timeout_at(until, self.deferred.send(work)).await,
            Ok(Ok(()))
        )
    }

    async fn quote(&self, message_id: &str) -> Result<Option<QuotedMessage>, ApiError> {
        let msgs = self.http.im().get_message(message_id).await?;
        let Some(m) = msgs.into_iter().next() else {
            return Ok(None);
        };
        let text = normalize::message_text(
            m.msg_type.as_deref().unwrap_or(""),
            m.body.as_ref().map(|b| b.content.as_str()).unwrap_or(""),
        );
        Ok(Some(QuotedMessage {
            message_id: m.message_id,
            author: Some(Actor {
                id: m.sender.and_then(|s| s.id).unwrap_or_default(),
                name: String::new(),
            }),
            text,
        }))
    }
}

/// The one line a user reads when the message they replied to could not
/// be read (`None`: it took too long).
fn quote_unread_text(e: Option<&ApiError>) -> String {
    let why = match e {
        None => "reading it took too long".to_string(),
        Some(ApiError::RateLimited { .. }) => "the platform's rate limit".to_string(),
        Some(_) => "the platform could not be reached".to_string(),
    };
    format!(
        "⚠️ fcx could not read the message you replied to ({why}); Codex sees your reply without it. Quote the text if it matters."
    )
}

/// The handler's future outlives the call, so it owns an `Arc`.
struct SharedHandler(Arc<Handler>);

impl EventHandler for SharedHandler {
    fn handle(&self, event: InboundEvent, deadline: Instant) -> BoxFuture<'static, AckReply> {
        let admitted = self.0.admit(&event);
        Box::pin(self.0.clone().on_event(admitted, deadline))
    }
}

/// A message's place in its scope, or why it has none.
type Place = Result<Ticket, Refused>;

/// Part of every idempotency key sent with the worker's event seqs. A
/// worker whose event log was recreated counts from 1 again: the log's
/// epoch keeps its keys apart from the old log's, which the platform still
/// remembers for an hour (a collision would silently drop an answer).
fn idempotency_tag(profile: &str, log_epoch: u64) -> String {
    if log_epoch == 0 {
        short_hash(profile)
    } else {
        format!("{}e{log_epoch}", short_hash(profile))
    }
}

fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}
