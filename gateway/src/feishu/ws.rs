//! The long-connection client (feishu.md §1): request the endpoint, connect,
//! ping, read frames, reassemble, dispatch complete events to an
//! [`EventHandler`], send the ACK it decides on within the 3 s window, and
//! reconnect (re-requesting the endpoint) with jittered exponential backoff
//! until a fatal error or cancellation. State is published through a
//! [`tokio::sync::watch`] channel of [`WsStatus`].
//!
//! The URL carries a ticket: only its scheme/host/path is ever logged.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fcx_proto::pbbp2::Frame;
use futures::future::BoxFuture;
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::frame::{self, AckReply, ClientConfig, Control, Reassembler, ReassemblerConfig};
#[cfg(test)]
use super::http::redact_url;
use super::http::{EndpointError, OpenApiClient, WsEndpoint};

/// `Handshake-Autherrcode` meaning "more than 50 connections for this app".
pub(crate) const EXCEED_CONN_LIMIT: &str = "1000040350";

/// ACKs written per flush at most, so a long burst still lets the loop
/// read, ping and watch the clock in between.
const ACK_BATCH: usize = 64;

/// One complete event delivered over the long connection.
#[derive(Debug, Clone)]
pub(crate) struct InboundEvent {
    /// The frame's `message_id` header (not the IM message id).
    pub(crate) message_id: String,
    /// The event envelope (`{"schema":"2.0","header":{…},"event":{…}}`),
    /// including `card.action.trigger` callbacks.
    pub(crate) payload: serde_json::Value,
    /// The platform's clock at the push (the frame's `timestamp` header).
    pub(crate) pushed_at_ms: Option<i64>,
}

/// Decides the ACK for one event. The returned future must resolve before
/// `deadline` (a tokio instant within the platform's 3 s window); if it does
/// not, it is dropped and no ACK is sent, so the platform redelivers. It may
/// also be dropped when the connection dies: do slow or must-finish work on
/// your own task (hand it over through a channel) and answer quickly.
/// `handle` itself is called on the connection's read loop, in push order:
/// its synchronous part must be short.
pub(crate) trait EventHandler: Send + Sync + 'static {
    fn handle(&self, event: InboundEvent, deadline: Instant) -> BoxFuture<'static, AckReply>;
}

impl<F, Fut> EventHandler for F
where
    F: Fn(InboundEvent, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AckReply> + Send + 'static,
{
    fn handle(&self, event: InboundEvent, deadline: Instant) -> BoxFuture<'static, AckReply> {
        Box::pin(self(event, deadline))
    }
}

/// Where the client gets a fresh URL for each (re)connection.
pub(crate) trait EndpointSource: Send + Sync + 'static {
    fn endpoint(&self) -> BoxFuture<'_, Result<WsEndpoint, EndpointError>>;
}

impl EndpointSource for OpenApiClient {
    fn endpoint(&self) -> BoxFuture<'_, Result<WsEndpoint, EndpointError>> {
        Box::pin(self.ws_endpoint())
    }
}

/// Knobs; defaults suit production, tests shrink them.
#[derive(Debug, Clone)]
pub(crate) struct WsOptions {
    /// Time a handler has to decide, from the event's arrival (the platform
    /// allows 3 s).
    pub(crate) ack_budget: Duration,
    /// Reconnect when nothing at all arrives for this many ping intervals.
    pub(crate) watchdog_factor: u32,
    /// Overrides the server's `PingInterval` (tests).
    pub(crate) ping_interval_override: Option<Duration>,
    /// First retry delay after a failed attempt; doubles per failure.
    pub(crate) backoff_initial: Duration,
    /// Upper bound of the backoff (the server's `ReconnectInterval`, when
    /// smaller, bounds it too).
    pub(crate) backoff_max: Duration,
    /// Upper bound of the random delay before the first reconnect (the
    /// server's `ReconnectNonce`, when smaller, bounds it too).
    pub(crate) max_reconnect_nonce: Duration,
    pub(crate) connect_timeout: Duration,
    /// Bound on one write (ACK, ping); exceeding it drops the connection.
    pub(crate) write_timeout: Duration,
    pub(crate) reassembly: ReassemblerConfig,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            ack_budget: Duration::from_millis(2500),
            watchdog_factor: 3,
            ping_interval_override: None,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            // One gateway per app: a short jitter is enough, and every
            // second of it is a second of missed messages (the server's
            // ReconnectNonce, 30 s by default, only caps it further).
            max_reconnect_nonce: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(10),
            reassembly: ReassemblerConfig::default(),
        }
    }
}

/// Why the client stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    Cancelled,
    /// Bad credentials, forbidden, connection limit: needs an operator.
    Fatal(String),
    /// The server's `ReconnectCount` was exhausted.
    GaveUp {
        attempts: u64,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Cancelled => f.write_str("cancelled"),
            StopReason::Fatal(r) => write!(f, "fatal: {r}"),
            StopReason::GaveUp { attempts } => {
                write!(f, "gave up after {attempts} failed attempts")
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum WsState {
    #[default]
    Idle,
    Connecting,
    Connected,
    /// Waiting before the next attempt.
    Backoff {
        retry_in: Duration,
    },
    Stopped(StopReason),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct WsStatus {
    pub(crate) state: WsState,
    /// `device_id` from the URL (the SDKs' "conn_id").
    pub(crate) conn_id: Option<String>,
    pub(crate) service_id: Option<i32>,
    pub(crate) connected_since: Option<SystemTime>,
    /// Last protocol (binary) frame of any kind, pongs included.
    pub(crate) last_frame_at: Option<SystemTime>,
    /// Last complete event handed to the handler.
    pub(crate) last_event_at: Option<SystemTime>,
    /// Successful connections after the first.
    pub(crate) reconnects: u64,
    /// Failed attempts since the last successful connection.
    pub(crate) consecutive_failures: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) events: u64,
    pub(crate) acks_sent: u64,
    /// The server's current settings (seconds).
    pub(crate) client_config: ClientConfig,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum SessionEnd {
    Cancelled,
    Fatal(String),
    /// Never got connected.
    Failed(String),
    /// Was connected, then lost it.
    Lost(String),
}

/// The long-connection client. Build it, keep the status receiver, and
/// own the future of [`WsClient::run`] (spawn it on a task you join).
pub(crate) struct WsClient {
    source: Arc<dyn EndpointSource>,
    handler: Arc<dyn EventHandler>,
    opts: WsOptions,
    status: watch::Sender<WsStatus>,
}

impl WsClient {
    pub(crate) fn new(
        source: Arc<dyn EndpointSource>,
        handler: Arc<dyn EventHandler>,
        opts: WsOptions,
    ) -> (WsClient, watch::Receiver<WsStatus>) {
        let (status, rx) = watch::channel(WsStatus::default());
        (
            WsClient {
                source,
                handler,
                opts,
                status,
            },
            rx,
        )
    }

    fn set(&self, f: impl FnOnce(&mut WsStatus)) {
        self.status.send_modify(f);
    }

    /// Runs until cancelled or a fatal error; reconnects otherwise.
    pub(crate) async fn run(self, cancel: CancellationToken) -> StopReason {
        let mut cfg = ClientConfig::SDK_DEFAULT;
        let mut failures: u64 = 0;
        let mut ever_connected = false;
        let reason = loop {
            if cancel.is_cancelled() {
                break StopReason::Cancelled;
            }
            self.set(|s| s.state = WsState::Connecting);
            let end = self.session(&mut cfg, &cancel, &mut ever_connected).await;
            match end {
                SessionEnd::Cancelled => break StopReason::Cancelled,
                SessionEnd::Fatal(r) => {
                    tracing::error!(reason = %r, "Feishu long connection stopped");
                    break StopReason::Fatal(r);
                }
                SessionEnd::Failed(r) => {
                    failures += 1;
                    tracing::warn!(reason = %r, failures, "Feishu long connection attempt failed");
                    self.set(|s| {
                        s.consecutive_failures = failures;
                        s.last_error = Some(r);
                    });
                }
                SessionEnd::Lost(r) => {
                    failures = 0;
                    tracing::warn!(reason = %r, "Feishu long connection lost; reconnecting");
                    self.set(|s| {
                        s.consecutive_failures = 0;
                        s.last_error = Some(r);
                    });
                }
            }
            if let Some(limit) = cfg.reconnect_limit()
                && failures > limit
            {
                break StopReason::GaveUp { attempts: failures };
            }
            let delay = self.reconnect_delay(&cfg, failures);
            self.set(|s| s.state = WsState::Backoff { retry_in: delay });
            tokio::select! {
                _ = cancel.cancelled() => break StopReason::Cancelled,
                _ = tokio::time::sleep(delay) => {}
            }
        };
        self.set(|s| s.state = WsState::Stopped(reason.clone()));
        reason
    }

    /// 0 failures (just lost a good connection): a random delay up to the
    /// nonce; otherwise jittered exponential backoff bounded by the server's
    /// `ReconnectInterval` and `backoff_max`.
    fn reconnect_delay(&self, cfg: &ClientConfig, failures: u64) -> Duration {
        let o = &self.opts;
        if failures == 0 {
            let nonce = cfg
                .reconnect_nonce()
                .unwrap_or(o.max_reconnect_nonce)
                .min(o.max_reconnect_nonce);
            return jitter(Duration::ZERO, nonce);
        }
        let cap = cfg
            .reconnect_interval()
            .unwrap_or(o.backoff_max)
            .min(o.backoff_max)
            .max(o.backoff_initial);
        let exp = o
            .backoff_initial
            .saturating_mul(2u32.saturating_pow((failures - 1).min(20) as u32))
            .min(cap);
        jitter(exp / 2, exp)
    }

    fn ping_interval(&self, cfg: &ClientConfig) -> Duration {
        self.opts
            .ping_interval_override
            .or(cfg.ping_interval())
            .unwrap_or(Duration::from_secs(120))
    }

    async fn session(
        &self,
        cfg: &mut ClientConfig,
        cancel: &CancellationToken,
        ever_connected: &mut bool,
    ) -> SessionEnd {
        let ep = tokio::select! {
            _ = cancel.cancelled() => return SessionEnd::Cancelled,
            r = self.source.endpoint() => r,
        };
        let ep = match ep {
            Ok(ep) => ep,
            Err(EndpointError::Fatal { code, msg }) => {
                return SessionEnd::Fatal(format!(
                    "the platform refused the app credentials (code {code}: {msg})"
                ));
            }
            Err(e) => return SessionEnd::Failed(e.to_string()),
        };
        cfg.merge(&ep.client_config);
        let q = parse_query(ep.url());
        let Some(service_id) = q.service_id else {
            return SessionEnd::Failed(format!(
                "endpoint URL {} has no integer service_id",
                ep.redacted()
            ));
        };
        tracing::info!(url = %ep.redacted(), conn_id = q.device_id.as_deref(), service_id, "connecting the Feishu long connection");
        let connect = tokio::time::timeout(
            self.opts.connect_timeout,
            tokio_tungstenite::connect_async(ep.url()),
        );
        let ws = tokio::select! {
            _ = cancel.cancelled() => return SessionEnd::Cancelled,
            r = connect => r,
        };
        let ws = match ws {
            Err(_) => return SessionEnd::Failed("connect timed out".into()),
            Ok(Err(tungstenite::Error::Http(resp))) => return classify_handshake(&resp),
            Ok(Err(e)) => return SessionEnd::Failed(format!("connect failed: {e}")),
            Ok(Ok((ws, _))) => ws,
        };
        let now = SystemTime::now();
        let reconnected = *ever_connected;
        *ever_connected = true;
        let cfg_now = *cfg;
        self.set(|s| {
            s.state = WsState::Connected;
            s.conn_id = q.device_id.clone();
            s.service_id = Some(service_id);
            s.connected_since = Some(now);
            s.consecutive_failures = 0;
            s.client_config = cfg_now;
            if reconnected {
                s.reconnects += 1;
            }
        });
        tracing::info!(
            conn_id = q.device_id.as_deref(),
            "Feishu long connection up"
        );
        self.connected(ws, service_id, cfg, cancel).await
    }

    async fn send(&self, ws: &mut Ws, f: &Frame) -> Result<(), String> {
        let bytes = frame::encode(f);
        match tokio::time::timeout(
            self.opts.write_timeout,
            ws.send(Message::Binary(bytes.into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err("write timed out".into()),
        }
    }

    /// Writes `frames` and flushes once, all within one write timeout.
    async fn send_all(&self, ws: &mut Ws, frames: &[Frame]) -> Result<(), String> {
        let write = async {
            for f in frames {
                ws.feed(Message::Binary(frame::encode(f).into())).await?;
            }
            ws.flush().await
        };
        match tokio::time::timeout(self.opts.write_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err("write timed out".into()),
        }
    }

    async fn connected(
        &self,
        mut ws: Ws,
        service_id: i32,
        cfg: &mut ClientConfig,
        cancel: &CancellationToken,
    ) -> SessionEnd {
        let mut ping_every = self.ping_interval(cfg);
        let mut ping_timer = tokio::time::interval(ping_every);
        ping_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let sweep_every = (self.opts.reassembly.ttl / 2).max(Duration::from_millis(10));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut reasm = Reassembler::new(self.opts.reassembly.clone());
        let mut handlers: JoinSet<(Frame, AckReply, Duration)> = JoinSet::new();
        let mut last_inbound = Instant::now();

        let end = loop {
            let watchdog_at =
                last_inbound + ping_every.saturating_mul(self.opts.watchdog_factor.max(1));
            tokio::select! {
                _ = cancel.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    break SessionEnd::Cancelled;
                }
                _ = tokio::time::sleep_until(watchdog_at) => {
                    break SessionEnd::Lost(format!(
                        "no frame for {:?}; assuming a half-open connection",
                        watchdog_at.saturating_duration_since(last_inbound)
                    ));
                }
                _ = ping_timer.tick() => {
                    if let Err(e) = self.send(&mut ws, &frame::ping(service_id)).await {
                        break SessionEnd::Lost(e);
                    }
                }
                _ = sweep.tick() => {
                    for id in reasm.expire(Instant::now()) {
                        tracing::warn!(message_id = %id, "incomplete fragmented message expired (no ACK)");
                    }
                }
                Some(done) = handlers.join_next(), if !handlers.is_empty() => {
                    // Under a burst handlers finish together: write every ACK
                    // that is ready and flush once, rather than a syscall and
                    // a loop turn per ACK while events queue up unread.
                    let mut acks = Vec::new();
                    let mut next = Some(done);
                    while let Some(done) = next {
                        match done {
                            Ok((req, reply, took)) => {
                                let rt = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
                                acks.extend(frame::ack(&req, &reply, rt));
                            }
                            Err(e) => tracing::error!(error = %e, "event handler panicked; no ACK"),
                        }
                        next = if acks.len() < ACK_BATCH { handlers.try_join_next() } else { None };
                    }
                    if acks.is_empty() {
                        continue;
                    }
                    if let Err(e) = self.send_all(&mut ws, &acks).await {
                        break SessionEnd::Lost(e);
                    }
                    let n = acks.len() as u64;
                    self.set(|s| s.acks_sent += n);
                }
                msg = ws.next() => {
                    last_inbound = Instant::now();
                    let bytes = match msg {
                        None => break SessionEnd::Lost("the server closed the stream".into()),
                        Some(Err(e)) => break SessionEnd::Lost(format!("read failed: {e}")),
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(c))) => {
                            let why = c.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default();
                            break SessionEnd::Lost(format!("the server closed the connection {why}"));
                        }
                        // WS-level pings are answered by tungstenite on the next poll/flush.
                        Some(Ok(_)) => continue,
                    };
                    self.set(|s| s.last_frame_at = Some(SystemTime::now()));
                    let f = match frame::decode(&bytes) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, len = bytes.len(), "skipping an undecodable frame");
                            continue;
                        }
                    };
                    match f.method {
                        frame::METHOD_CONTROL => match frame::parse_control(&f) {
                            Ok(Control::Pong(Some(c))) => {
                                cfg.merge(&c);
                                let cfg_now = *cfg;
                                self.set(|s| s.client_config = cfg_now);
                                let p = self.ping_interval(cfg);
                                if p != ping_every {
                                    tracing::info!(ping_interval_s = p.as_secs(), "server changed the ping interval");
                                    ping_every = p;
                                    ping_timer = tokio::time::interval_at(Instant::now() + p, p);
                                    ping_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
                                }
                            }
                            Ok(Control::Pong(None) | Control::Ping) => {}
                            Ok(Control::Other(t)) => tracing::debug!(kind = %t, "ignoring control frame"),
                            Err(e) => tracing::warn!(error = %e, "skipping a bad control frame"),
                        },
                        frame::METHOD_DATA => self.on_data(f, &mut reasm, &mut handlers),
                        m => tracing::warn!(method = m, "skipping a frame with an unknown method"),
                    }
                }
            }
        };
        // In-flight handlers are dropped: their events get no ACK and are
        // redelivered.
        handlers.abort_all();
        end
    }

    fn on_data(
        &self,
        f: Frame,
        reasm: &mut Reassembler,
        handlers: &mut JoinSet<(Frame, AckReply, Duration)>,
    ) {
        let arrived = Instant::now();
        let h = match frame::parse_data_headers(&f) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a data frame with bad headers");
                return;
            }
        };
        let mut f = f;
        let payload = f.payload.take().unwrap_or_default();
        let full = match reasm.push(&h, payload, arrived) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, trace_id = h.trace_id.as_deref(), "dropping a fragment");
                return;
            }
        };
        if h.kind != frame::types::EVENT {
            // Legacy `card` callbacks: the SDKs return without ACK.
            tracing::debug!(kind = %h.kind, message_id = %h.message_id, "ignoring a non-event data frame (no ACK)");
            return;
        }
        let payload: serde_json::Value = match serde_json::from_slice(&full) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, message_id = %h.message_id, trace_id = h.trace_id.as_deref(), "skipping an event whose payload is not JSON (no ACK)");
                return;
            }
        };
        let now = SystemTime::now();
        self.set(|s| {
            s.last_event_at = Some(now);
            s.events += 1;
        });
        tracing::debug!(message_id = %h.message_id, trace_id = h.trace_id.as_deref(), "event received");
        let ev = InboundEvent {
            message_id: h.message_id,
            payload,
            pushed_at_ms: h.timestamp_ms,
        };
        let deadline = arrived + self.opts.ack_budget;
        let started = Instant::now();
        let id = ev.message_id.clone();
        // Called here, in push order, not on the task: what the handler does
        // before its future (taking the event's place in its chat) follows
        // the order frames came in.
        let work = self.handler.handle(ev, deadline);
        handlers.spawn(async move {
            let reply = match tokio::time::timeout_at(deadline, work).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(message_id = %id, "event handler missed the ACK deadline; no ACK (the platform will redeliver)");
                    AckReply::NoAck
                }
            };
            (f, reply, started.elapsed())
        });
    }
}

fn jitter(lo: Duration, hi: Duration) -> Duration {
    let lo_ms = u64::try_from(lo.as_millis()).unwrap_or(u64::MAX);
    let hi_ms = u64::try_from(hi.as_millis()).unwrap_or(u64::MAX);
    if hi_ms <= lo_ms {
        return hi;
    }
    Duration::from_millis(rand::random_range(lo_ms..=hi_ms))
}

fn classify_handshake(resp: &tungstenite::http::Response<Option<Vec<u8>>>) -> SessionEnd {
    let h = |k: &str| {
        resp.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    let status = h("handshake-status");
    let auth = h("handshake-autherrcode");
    let msg = h("handshake-msg").unwrap_or_default();
    match (status.as_deref(), auth.as_deref()) {
        (Some("514"), Some(EXCEED_CONN_LIMIT)) => SessionEnd::Fatal(format!(
            "connection limit exceeded (more than 50 long connections for this app) {msg}"
        )),
        (Some("403"), _) => SessionEnd::Fatal(format!("handshake forbidden (403) {msg}")),
        _ => SessionEnd::Failed(format!(
            "handshake refused: HTTP {} handshake-status {} autherrcode {} {msg}",
            resp.status().as_u16(),
            status.as_deref().unwrap_or("-"),
            auth.as_deref().unwrap_or("-"),
        )),
    }
}

struct UrlQuery {
    service_id: Option<i32>,
    device_id: Option<String>,
}

fn parse_query(url: &str) -> UrlQuery {
    let mut q = UrlQuery {
        service_id: None,
        device_id: None,
    };
    let Some((_, query)) = url.split_once('?') else {
        return q;
    };
    let query = query.split('#').next().unwrap_or_default();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "service_id" => q.service_id = v.parse().ok(),
            "device_id" => q.device_id = Some(v.to_string()),
            _ => {}
        }
    }
    q
}

/// Safe-to-log form of a URL.
#[cfg(test)]
pub(crate) fn redacted(url: &str) -> String {
    redact_url(url)
}

#[cfg(test)]
mod tests;
