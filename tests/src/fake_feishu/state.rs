//! The fake platform's mutable state, shared by HTTP handlers, WebSocket
//! sessions and the test-facing handle.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{
    ClientConfig, EndpointRefusal, HandshakeRefusal, RecordedAck, RecordedCall, Redelivery,
};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test panicking while holding a lock must not turn every later
    // assertion into a poison error that hides the original failure.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Wall clock in ns since the epoch, comparable across processes on this
/// machine (benchmarks match it against times other processes logged).
pub(crate) fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub app_id: String,
    pub app_secret: String,
    pub bot_open_id: String,
    pub bot_name: String,
    pub verification_token: String,
    pub tenant_key: String,
    pub redelivery: Redelivery,
    pub client_config: ClientConfig,
    pub max_connections: usize,
    /// The app owner the application-info API names; `None` answers as if
    /// the app lacked the scope to read it.
    pub app_owner: Option<String>,
    /// `GET /open-apis/application/v6/scopes`: each scope the app asks for
    /// and whether the tenant granted it.
    pub scopes: Vec<(String, bool)>,
}

/// A message as the platform stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub message_id: String,
    pub chat_id: String,
    /// `receive_id_type` / `receive_id` used to send it (empty for replies
    /// and user messages).
    pub receive_id_type: String,
    pub receive_id: String,
    pub msg_type: String,
    /// The content JSON string as last sent or patched.
    pub content: String,
    pub root_id: String,
    pub parent_id: String,
    pub thread_id: String,
    /// `app` for the bot's messages, `user` for users'.
    pub sender_type: String,
    pub sender_id: String,
    pub create_time: String,
    pub update_time: String,
    pub updated: bool,
    pub deleted: bool,
    /// Set when the content is a CardKit entity reference.
    pub card_id: Option<String>,
    /// `uuid` the client sent, if any.
    pub uuid: Option<String>,
    /// Number of PATCHes applied.
    pub patches: usize,
    /// Inside a merged and forwarded message: its id (else empty).
    pub upper_message_id: String,
}

/// A CardKit card entity.
#[derive(Debug, Clone, PartialEq)]
pub struct CardState {
    pub card_id: String,
    /// The card JSON now (after settings, updates and streamed content).
    pub json: Value,
    /// Last accepted `sequence` (0 before any operation).
    pub sequence: i64,
    pub streaming_mode: bool,
    /// The message it was sent as (an entity can be sent once).
    pub message_id: Option<String>,
    /// Accepted operations (settings, update, element content…), in order.
    pub ops: Vec<String>,
    pub(crate) streaming_since: Option<Instant>,
}

impl CardState {
    /// The `content` of the element with this `element_id`, anywhere in the body.
    pub fn element_content(&self, element_id: &str) -> Option<String> {
        find_element(&self.json, element_id)
            .and_then(|e| e.get("content"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Its buttons and form fields as a user sees them now.
    pub fn view(&self) -> super::CardView {
        super::CardView::from_json(&self.json)
    }

    /// `config.summary.content`, the chat-list preview.
    pub fn summary(&self) -> Option<String> {
        self.json
            .pointer("/config/summary/content")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

pub(crate) fn find_element<'a>(v: &'a Value, element_id: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) => {
            if map.get("element_id").and_then(Value::as_str) == Some(element_id) {
                return Some(v);
            }
            map.values().find_map(|c| find_element(c, element_id))
        }
        Value::Array(items) => items.iter().find_map(|c| find_element(c, element_id)),
        _ => None,
    }
}

pub(crate) fn find_element_mut<'a>(v: &'a mut Value, element_id: &str) -> Option<&'a mut Value> {
    let is_it = v
        .as_object()
        .and_then(|m| m.get("element_id"))
        .and_then(Value::as_str)
        == Some(element_id);
    if is_it {
        return Some(v);
    }
    match v {
        Value::Object(map) => map
            .values_mut()
            .find_map(|c| find_element_mut(c, element_id)),
        Value::Array(items) => items
            .iter_mut()
            .find_map(|c| find_element_mut(c, element_id)),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatInfo {
    pub chat_id: String,
    pub name: String,
    pub description: String,
    /// `user_id_list` as sent.
    pub members: Vec<String>,
    pub bot_ids: Vec<String>,
    /// The full create body.
    pub body: Value,
}

/// An image or file the bot uploaded (`im/v1/images`, `im/v1/files`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// `image_key` or `file_key`.
    pub key: String,
    /// "image" or "file".
    pub kind: String,
    /// The file's `file_type` (empty for images).
    pub file_type: String,
    /// The `file_name` field (files) or the part's filename (images).
    pub file_name: String,
    /// The part's Content-Type.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub reaction_id: String,
    pub message_id: String,
    pub emoji_type: String,
    /// `app` or `user`.
    pub operator_type: String,
    pub operator_id: String,
    pub action_time: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentReply {
    pub reply_id: String,
    pub user_id: String,
    pub create_time: i64,
    /// `content.elements` as sent.
    pub elements: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub comment_id: String,
    pub file_token: String,
    pub user_id: String,
    pub is_whole: bool,
    pub is_solved: bool,
    pub create_time: i64,
    pub replies: Vec<CommentReply>,
    /// The document text the comment is anchored to ("" for whole).
    #[serde(default)]
    pub quote: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Status(u16),
    RateLimit(u64),
    Frequency,
    Delay(Duration),
    /// A business error: HTTP 400 with this body `code`.
    Code(i64),
}

#[derive(Debug, Clone)]
pub(crate) struct PathFault {
    pattern: String,
    remaining: usize,
    pub kind: FaultKind,
}

impl PathFault {
    pub(crate) fn new(pattern: &str, n: usize, kind: FaultKind) -> Self {
        Self {
            pattern: pattern.to_owned(),
            remaining: n,
            kind,
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.pattern,
        }
    }
}

/// A fault that strikes calls to a path at random, at a fixed rate, from a
/// seeded generator (so a failing run can be replayed).
#[derive(Debug, Clone)]
pub(crate) struct RandomFault {
    pub fault: PathFault,
    /// Chance per call, in thousandths.
    pub per_mille: u32,
    pub rng: u64,
}

impl RandomFault {
    fn strikes(&mut self, path: &str) -> bool {
        if !self.fault.matches(path) {
            return false;
        }
        // xorshift64*: plenty for spreading failures.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (r >> 33) % 1000 < u64::from(self.per_mille)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub http: Vec<PathFault>,
    /// (method, path prefix, uses left, delay): carried out at once,
    /// answered after the delay.
    pub late: Vec<(String, String, usize, Duration)>,
    pub random: Vec<RandomFault>,
    pub endpoint: VecDeque<EndpointRefusal>,
    pub handshake: VecDeque<HandshakeRefusal>,
}

impl Faults {
    /// The delay an armed late-answer fault puts on this call, consuming
    /// one use.
    pub(crate) fn take_late(&mut self, method: &str, path: &str) -> Option<Duration> {
        let f = self
            .late
            .iter_mut()
            .find(|(m, p, left, _)| *left > 0 && m == method && path.starts_with(p.as_str()))?;
        f.2 -= 1;
        Some(f.3)
    }

    /// Takes the first armed fault for `path`, consuming one use; else a
    /// random fault that strikes this call.
    pub(crate) fn take(&mut self, path: &str) -> Option<FaultKind> {
        let Some(idx) = self
            .http
            .iter()
            .position(|f| f.remaining > 0 && f.matches(path))
        else {
            return self
                .random
                .iter_mut()
                .find_map(|r| r.strikes(path).then(|| r.fault.kind.clone()));
        };
        let fault = &mut self.http[idx];
        fault.remaining -= 1;
        let kind = fault.kind.clone();
        if fault.remaining == 0 {
            self.http.remove(idx);
        }
        Some(kind)
    }
}

/// A pushed message awaiting ACK.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The encoded frames (one per fragment).
    pub frames: Vec<Vec<u8>>,
    /// The decoded frames, to check ACK echoes against.
    pub sent: Vec<fcx_proto::pbbp2::Frame>,
    pub acked: bool,
    pub sends: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub tokens: HashMap<String, Instant>,
    pub calls: Vec<RecordedCall>,
    pub acks: Vec<RecordedAck>,
    pub pings: usize,
    /// Client frames half-open sockets swallowed.
    pub unanswered_frames: usize,
    pub connects: usize,
    pub violations: Vec<String>,
    pub messages: Vec<StoredMessage>,
    /// (uuid) → (message_id, when) for the 1 h idempotency window.
    pub uuids: HashMap<String, (String, Instant)>,
    pub cards: HashMap<String, CardState>,
    pub chats: Vec<ChatInfo>,
    pub reactions: Vec<Reaction>,
    pub resources: HashMap<(String, String), (String, Vec<u8>)>,
    /// (message_id, key) → the business code the download is refused with.
    pub refused_resources: HashMap<(String, String), i64>,
    /// Images and files the bot uploaded, by key.
    pub uploads: HashMap<String, Upload>,
    pub comments: Vec<Comment>,
    /// Document titles by token (`drive/v1/metas/batch_query`).
    pub doc_titles: HashMap<String, String>,
    /// callback token → (open_message_id, issued, uses)
    pub callback_tokens: HashMap<String, (String, Instant, u32)>,
    pub faults: Faults,
    pub pong_config: Option<ClientConfig>,
    /// Endpoint tickets not yet used for a handshake.
    pub tickets: HashMap<String, Instant>,
    pub deliveries: HashMap<String, Delivery>,
    /// Sliding windows keyed by [`Bound::key`]: when each admitted event
    /// happened, oldest first.
    pub windows: HashMap<String, VecDeque<Instant>>,
    /// p2p chat id → the user at the other end, so sends to the user and
    /// to their p2p chat share the platform's "5 QPS to the same user".
    pub p2p_chats: HashMap<String, String>,
    pub round_robin: usize,
    /// Frame `message_id` → when it was first written and first ACKed.
    pub timings: HashMap<String, FrameTiming>,
    /// Messages with an `acked_at` (so a wait for N ACKs checks in O(1)).
    pub timed_acks: usize,
}

/// One rate limit: at most `limit` admitted events per sliding `window`
/// for one key (per API × app, per chat, per card…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bound {
    /// What is limited, e.g. `app:im.send` or `card:7355…`.
    pub name: String,
    pub limit: usize,
    pub window: Duration,
}

impl Bound {
    pub(crate) fn per_second(name: impl Into<String>, limit: usize) -> Self {
        Self {
            name: name.into(),
            limit,
            window: Duration::from_secs(1),
        }
    }

    pub(crate) fn per_minute(name: impl Into<String>, limit: usize) -> Self {
        Self {
            name: name.into(),
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// The window's map key: the same name may be bounded per second and
    /// per minute, and the two must not share a queue.
    fn key(&self) -> String {
        format!("{}/{}ms", self.name, self.window.as_millis())
    }

    /// How the fake labels a refusal by this bound in [`RecordedCall::rate_limit`].
    pub(crate) fn label(&self) -> String {
        format!("{} {}/{}s", self.name, self.limit, self.window.as_secs())
    }
}

/// A bound that refused an event, and how long until it admits one again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub bound: Bound,
    pub retry_after: Duration,
}

impl Inner {
    /// Admits one more event under every bound at once, or refuses it under
    /// the first full one. A refused event counts in none of the windows
    /// (the platform does not charge a refused call against other limits).
    pub(crate) fn admit_all(&mut self, bounds: &[Bound]) -> Result<(), Exceeded> {
        let now = Instant::now();
        for b in bounds {
            let window = self.windows.entry(b.key()).or_default();
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= b.window)
            {
                window.pop_front();
            }
            if window.len() >= b.limit {
                let oldest = window.front().copied().unwrap_or(now);
                return Err(Exceeded {
                    bound: b.clone(),
                    retry_after: (oldest + b.window).saturating_duration_since(now),
                });
            }
        }
        for b in bounds {
            self.windows.entry(b.key()).or_default().push_back(now);
        }
        Ok(())
    }

    /// Makes every rate-limit window look `by` older, as if that much time
    /// had passed for the limiter only (tests of minute windows).
    pub(crate) fn age_windows(&mut self, by: Duration) {
        for window in self.windows.values_mut() {
            // An instant that cannot be moved back that far is older than
            // any window anyway: drop it.
            *window = window.iter().filter_map(|t| t.checked_sub(by)).collect();
        }
    }

    /// The per-recipient IM bound for a message into `chat_id`: the user's
    /// for a p2p chat, the group's otherwise (both 5 QPS, code 230020).
    pub(crate) fn recipient_bound(&self, chat_id: &str) -> Bound {
        let name = match self.p2p_chats.get(chat_id) {
            Some(user) => format!("im.user:{user}"),
            None => format!("im.chat:{chat_id}"),
        };
        Bound::per_second(name, super::IM_PER_CHAT_QPS)
    }
}

/// When the fake first wrote a pushed message's (last) frame to a socket and
/// when the first ACK for it arrived; monotonic clock, for latency figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameTiming {
    pub pushed_at: Option<Instant>,
    pub acked_at: Option<Instant>,
}

/// What a WebSocket session is told to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    Binary(Vec<u8>),
    /// The frame that completes pushed message `.1`: the session stamps
    /// `pushed_at` right before writing it.
    Tagged(Vec<u8>, Arc<str>),
    /// Close the TCP socket without a close handshake.
    Drop,
    /// Go half-open: keep the socket, write nothing more (pongs, pushes,
    /// ACK bookkeeping all stop), as when the path to the client died
    /// without a FIN. The session ends only when the client closes.
    Freeze,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub id: u64,
    pub tx: mpsc::UnboundedSender<Outbound>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: Config,
    pub addr: SocketAddr,
    pub inner: Mutex<Inner>,
    pub conns: Mutex<Vec<Conn>>,
    pub tasks: Mutex<JoinSet<()>>,
    /// Bumped on every state change tests may wait for.
    pub changed: watch::Sender<u64>,
    counter: AtomicU64,
    /// Added to the platform's wall clock (every timestamp it stamps), to
    /// stand for the client's clock having jumped the other way.
    clock_offset_ms: AtomicI64,
}

impl Shared {
    pub(crate) fn new(cfg: Config, addr: SocketAddr) -> Self {
        Self {
            cfg,
            addr,
            inner: Mutex::new(Inner::default()),
            conns: Mutex::new(Vec::new()),
            tasks: Mutex::new(JoinSet::new()),
            changed: watch::channel(0).0,
            counter: AtomicU64::new(1),
            clock_offset_ms: AtomicI64::new(0),
        }
    }

    /// The platform's wall clock in ms (the host's plus the set offset).
    pub(crate) fn now_ms(&self) -> u128 {
        let off = self.clock_offset_ms.load(Ordering::Relaxed);
        (now_ms() as i128 + i128::from(off)).max(0) as u128
    }

    pub(crate) fn set_clock_offset_ms(&self, ms: i64) {
        self.clock_offset_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// An id that looks like the platform's: prefix + hex, unique per fake.
    pub(crate) fn new_id(&self, prefix: &str) -> String {
        let n = self.next();
        let salt = (now_ms() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        format!("{prefix}{:016x}{n:08x}", salt ^ n.rotate_left(17))
    }

    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Spawns a task owned by the fake (aborted when the handle drops).
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        // Reap finished tasks so a long test does not accumulate them.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    pub(crate) async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Inner) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.changed.subscribe();
        loop {
            // Subscribed before checking, so a change in between still wakes us.
            rx.borrow_and_update();
            if let Some(v) = check(&lock(&self.inner)) {
                return Ok(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("fake Feishu stopped"),
                Err(_) => bail!("timed out"),
            }
        }
    }

    pub(crate) fn issue_token(&self) -> String {
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        inner.tokens.retain(|_, exp| *exp > now);
        // The platform returns the current token until it has < 30 min left.
        if let Some((tok, _)) = inner
            .tokens
            .iter()
            .filter(|(_, exp)| exp.duration_since(now) >= Duration::from_secs(30 * 60))
            .max_by_key(|(_, exp)| **exp)
        {
            return tok.clone();
        }
        let tok = self.new_id("t-g1044");
        inner
            .tokens
            .insert(tok.clone(), now + Duration::from_secs(7200));
        tok
    }

    pub(crate) fn issue_callback_token(&self, open_message_id: &str) -> String {
        let tok = self.new_id("c-");
        lock(&self.inner)
            .callback_tokens
            .insert(tok.clone(), (open_message_id.to_owned(), Instant::now(), 0));
        tok
    }

    pub(crate) fn add_user_message(
        &self,
        chat_id: &str,
        msg_type: &str,
        content: &Value,
    ) -> String {
        let id = self.new_id("om_");
        let ms = self.now_ms().to_string();
        let msg = StoredMessage {
            message_id: id.clone(),
            chat_id: chat_id.to_owned(),
            receive_id_type: String::new(),
            receive_id: String::new(),
            msg_type: msg_type.to_owned(),
            content: content.to_string(),
            root_id: String::new(),
            parent_id: String::new(),
            thread_id: String::new(),
            sender_type: "user".to_owned(),
            sender_id: String::new(),
            create_time: ms.clone(),
            update_time: ms,
            updated: false,
            deleted: false,
            card_id: None,
            uuid: None,
            patches: 0,
            upper_message_id: String::new(),
        };
        lock(&self.inner).messages.push(msg);
        self.bump();
        id
    }

    /// Registers the message inside a pushed `im.message.receive_v1` event.
    pub(crate) fn register_event_message(&self, event: &Value) {
        if event.pointer("/header/event_type").and_then(Value::as_str)
            != Some("im.message.receive_v1")
        {
            return;
        }
        let Some(m) = event.pointer("/event/message") else {
            return;
        };
        let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let id = s("message_id");
        if id.is_empty() {
            return;
        }
        let sender_open_id = event
            .pointer("/event/sender/sender_id/open_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut inner = lock(&self.inner);
        if s("chat_type") == "p2p" && !sender_open_id.is_empty() {
            inner.p2p_chats.insert(s("chat_id"), sender_open_id.clone());
        }
        if inner.messages.iter().any(|x| x.message_id == id) {
            return;
        }
        inner.messages.push(StoredMessage {
            message_id: id,
            chat_id: s("chat_id"),
            receive_id_type: String::new(),
            receive_id: String::new(),
            msg_type: s("message_type"),
            content: s("content"),
            root_id: s("root_id"),
            parent_id: s("parent_id"),
            thread_id: s("thread_id"),
            sender_type: "user".to_owned(),
            sender_id: sender_open_id,
            create_time: s("create_time"),
            update_time: s("update_time"),
            updated: false,
            deleted: false,
            card_id: None,
            uuid: None,
            patches: 0,
            upper_message_id: String::new(),
        });
    }

    /// The card message `message_id` shows now (a raw card as last sent or
    /// patched, or the CardKit entity it references) and its chat.
    pub(crate) fn card_view_of(&self, message_id: &str) -> Result<(String, super::CardView)> {
        let inner = lock(&self.inner);
        let Some(m) = inner
            .messages
            .iter()
            .find(|m| m.message_id == message_id && !m.deleted)
        else {
            bail!("no message {message_id} (or it was recalled)");
        };
        if m.msg_type != "interactive" {
            bail!("message {message_id} is {}, not a card", m.msg_type);
        }
        let card = match &m.card_id {
            Some(id) => match inner.cards.get(id) {
                Some(c) => c.json.clone(),
                None => bail!("card entity {id} of {message_id} is gone"),
            },
            None => serde_json::from_str::<Value>(&m.content)?,
        };
        if card.get("type").and_then(Value::as_str) == Some("template") {
            bail!("message {message_id} is a template card; the fake cannot render it");
        }
        Ok((m.chat_id.clone(), super::CardView::from_json(&card)))
    }

    pub(crate) fn add_comment(
        &self,
        file_token: &str,
        user: &str,
        text: &str,
        is_whole: bool,
    ) -> String {
        let els = serde_json::json!([{"type":"text_run","text_run":{"text":text}}]);
        self.add_comment_with(file_token, user, els, "", is_whole).0
    }

    /// A comment whose first reply has `elements`; returns (comment_id,
    /// reply_id).
    pub(crate) fn add_comment_with(
        &self,
        file_token: &str,
        user: &str,
        elements: Value,
        quote: &str,
        is_whole: bool,
    ) -> (String, String) {
        let comment_id = format!("{}", 7_000_000_000_000_000_000u64 + self.next());
        let reply_id = format!("{}", 7_100_000_000_000_000_000u64 + self.next());
        let now = (now_ms() / 1000) as i64;
        lock(&self.inner).comments.push(Comment {
            comment_id: comment_id.clone(),
            file_token: file_token.to_owned(),
            user_id: user.to_owned(),
            is_whole,
            is_solved: false,
            create_time: now,
            replies: vec![CommentReply {
                reply_id: reply_id.clone(),
                user_id: user.to_owned(),
                create_time: now,
                elements,
            }],
            quote: if is_whole {
                String::new()
            } else {
                quote.to_owned()
            },
        });
        self.bump();
        (comment_id, reply_id)
    }

    /// A reply by `user` in an existing thread; returns its reply_id.
    pub(crate) fn add_reply_with(&self, comment_id: &str, user: &str, elements: Value) -> String {
        let reply_id = format!("{}", 7_100_000_000_000_000_000u64 + self.next());
        let now = (now_ms() / 1000) as i64;
        if let Some(c) = lock(&self.inner)
            .comments
            .iter_mut()
            .find(|c| c.comment_id == comment_id)
        {
            c.replies.push(CommentReply {
                reply_id: reply_id.clone(),
                user_id: user.to_owned(),
                create_time: now,
                elements,
            });
        }
        self.bump();
        reply_id
    }
}
