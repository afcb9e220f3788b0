//! A protocol-faithful fake of the Feishu/Lark Open Platform for gateway
//! tests: the long-connection endpoint and WebSocket (pbbp2 frames, ACKs,
//! fragments, redelivery, handshake refusals) plus the HTTP APIs fcxd uses
//! (token, bot info, IM messages/reactions/resources/chats, CardKit, delayed
//! card update, Drive comments), with the platform's codes, limits and rate
//! limits. See /work/shared/reference/feishu.md; behaviours that document does
//! not settle are marked "Guess:" where they are implemented.
//!
//! A fake that is kinder than Feishu hides bugs, so where the platform's
//! behaviour is unknown the fake leans to the stricter reading.

mod card;
mod events;
mod http;
mod state;
mod wire;
mod ws;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use card::{CardButton, CardField, CardForm, CardOption, CardView};
pub use events::{EventBuilder, Mention, MessageSpec};
pub use state::{
    CardState, ChatInfo, Comment, CommentReply, FrameTiming, Reaction, StoredMessage, Upload,
};

use state::{Shared, lock};

/// Text message content limit (`230025` above it). Guess: KB = 1024 bytes,
/// measured on the `content` string.
pub const TEXT_LIMIT_BYTES: usize = 150 * 1024;
/// Card / post content limit for IM (`230025`) and CardKit (`200860`).
pub const CARD_LIMIT_BYTES: usize = 30 * 1024;
/// Guess (unverified): the most text one document-comment reply may carry,
/// in characters; fcx's comment surface keeps its replies within it.
pub const COMMENT_REPLY_LIMIT_CHARS: usize = 1000;
/// Connections one app may hold at once (docs: "at most 50").
pub const MAX_CONNECTIONS_PER_APP: usize = 50;
/// IM send/reply: per receiving user (direct or in their p2p chat) or per
/// group, per second; over it: 230020.
pub const IM_PER_CHAT_QPS: usize = 5;
/// IM send/reply and CardKit: per API per app, per second (429 / 99991400).
pub const APP_API_QPS: usize = 50;
/// IM send/reply and CardKit: per API per app, per minute (429 / 99991400).
pub const APP_API_PER_MINUTE: usize = 1000;
/// CardKit operations per card entity per second.
pub const CARD_OPS_PER_SEC: usize = 10;
/// Message PATCH per message per second.
pub const PATCH_PER_MESSAGE_QPS: usize = 5;
/// Drive comment and metadata APIs: per API per app, per second (429 /
/// 99991400). The reference quotes 5 to 10 for most Drive/Docs APIs
/// (feishu.md §3.8); the lower bound, so fcx is held to the worst case.
pub const DRIVE_API_QPS: usize = 5;

/// The `ClientConfig` object of the endpoint answer and pong payloads; all
/// values in seconds, as the platform sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientConfig {
    pub reconnect_count: i64,
    pub reconnect_interval: i64,
    pub reconnect_nonce: i64,
    pub ping_interval: i64,
}

impl Default for ClientConfig {
    /// Guess: the SDK defaults (the real server's values are not documented).
    fn default() -> Self {
        Self {
            reconnect_count: -1,
            reconnect_interval: 120,
            reconnect_nonce: 30,
            ping_interval: 120,
        }
    }
}

/// When unACKed events are pushed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redelivery {
    /// An event not ACKed (code 200) within this time counts as failed.
    pub ack_timeout: Duration,
    /// Wait after each failure before the next push; its length is the
    /// maximum number of redeliveries.
    pub retry_delays: Vec<Duration>,
}

impl Redelivery {
    /// The documented schedule: 3 s to ACK, retries after 15 s, 5 min, 1 h, 6 h.
    pub fn platform() -> Self {
        Self {
            ack_timeout: Duration::from_secs(3),
            retry_delays: [15, 300, 3600, 6 * 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        }
    }

    /// A test schedule: `ack_timeout` to ACK, then `retries` pushes each
    /// `interval` apart.
    pub fn fast(ack_timeout: Duration, interval: Duration, retries: usize) -> Self {
        Self {
            ack_timeout,
            retry_delays: vec![interval; retries],
        }
    }

    /// Never redeliver.
    pub fn none() -> Self {
        Self {
            ack_timeout: Duration::from_secs(3),
            retry_delays: Vec::new(),
        }
    }
}

impl Default for Redelivery {
    fn default() -> Self {
        Self::platform()
    }
}

/// How `POST /callback/ws/endpoint` refuses (see [`FakeFeishu::refuse_endpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointRefusal {
    /// `code: 1` "system busy" (Go/Python retry; Node 1.74 treats it as fatal).
    SystemBusy,
    /// `code: 1000040343` internal error (retryable everywhere).
    InternalError,
    /// HTTP 500 with a non-JSON body.
    Http500,
    /// Any other code: a fatal client error.
    Code(i64),
}

/// How the WebSocket upgrade is refused (see [`FakeFeishu::refuse_handshakes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// `Handshake-Status: 403`: forbidden / banned (fatal for the SDKs).
    Forbidden,
    /// `Handshake-Status: 514` + `Handshake-Autherrcode: 1000040350`: too many
    /// connections (fatal).
    ConnectionLimit,
    /// `Handshake-Status: 514` with another auth error code (retryable).
    AuthFailed(i64),
    /// Another status (retryable), e.g. 500 or 503.
    Status(u16),
}

/// One HTTP call as the fake saw and answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    /// Decoded query parameters (last one wins on repeats).
    pub query: BTreeMap<String, String>,
    /// Lower-case names; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// JSON body; non-JSON kept as a string, empty as null.
    pub body: Value,
    /// HTTP status the fake answered.
    pub status: u16,
    /// The JSON the fake answered (null for binary answers).
    pub response: Value,
    /// When the request was received, ns since the Unix epoch (0 for calls
    /// that are not HTTP requests).
    #[serde(default)]
    pub received_unix_ns: u64,
    /// The rate limit that refused this call (e.g. `app:im.send 1000/60s`,
    /// `im.chat:oc_x 5/1s`, `card:7355… 10/1s`, or `injected: …` for an
    /// armed fault); `None` when no limit refused it.
    #[serde(default)]
    pub rate_limit: Option<String>,
}

impl RecordedCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The answer's `code` (0 on success), if the answer was JSON with one.
    pub fn code(&self) -> Option<i64> {
        self.response.get("code").and_then(Value::as_i64)
    }

    /// Whether the fake refused this call for rate (a limit of its own or
    /// an injected rate fault): HTTP 429 / 99991400 or 230020.
    pub fn is_rate_limited(&self) -> bool {
        self.rate_limit.is_some()
            || self.status == 429
            || matches!(self.code(), Some(99991400 | 230020))
    }
}

/// An ACK frame the client sent for a pushed data frame.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAck {
    /// The `message_id` header (the pushed message it ACKs).
    pub message_id: String,
    pub seq_id: u64,
    pub log_id: u64,
    pub service: i32,
    pub method: i32,
    pub headers: Vec<(String, String)>,
    /// `biz_rt` header, if sent.
    pub biz_rt: Option<String>,
    /// The payload parsed as JSON (null if it was not JSON).
    pub payload: Value,
    /// `payload.code`.
    pub code: Option<i64>,
    /// `payload.data` base64-decoded and parsed as JSON (card-action answers).
    pub data: Option<Value>,
    /// Why this ACK does not echo the pushed frame faithfully; empty if it does.
    pub problems: Vec<String>,
    /// Connection it arrived on.
    pub connection: u64,
}

/// Configures a [`FakeFeishu`] before it starts.
#[derive(Debug, Clone)]
pub struct FakeFeishuBuilder {
    app_id: String,
    app_secret: String,
    bot_open_id: String,
    bot_name: String,
    verification_token: String,
    tenant_key: String,
    redelivery: Redelivery,
    client_config: ClientConfig,
    max_connections: usize,
    app_owner: Option<String>,
    scopes: Vec<(String, bool)>,
}

/// The scopes a fake app asks for, all granted, unless a test says otherwise:
/// everything fcx uses (README, "Connecting a Feishu or Lark app").
pub const DEFAULT_SCOPES: &[&str] = &[
    "im:message",
    "im:message:send_as_bot",
    "im:message.p2p_msg:readonly",
    "im:message.group_at_msg:readonly",
    "im:chat",
    "im:resource",
    "cardkit:card:write",
    "application:application:self_manage",
    "docs:document.comment:read",
    "docs:document.comment:create",
    "drive:drive:readonly",
];

impl Default for FakeFeishuBuilder {
    fn default() -> Self {
        Self {
            app_id: "cli_0123456789abcdef".to_owned(),
            app_secret: "fake-app-secret-0123456789abcdef".to_owned(),
            bot_open_id: "ou_b0t0000000000000000000000000001".to_owned(),
            bot_name: "fcx bot".to_owned(),
            verification_token: "fake-verification-token".to_owned(),
            tenant_key: "736588c9260f175d".to_owned(),
            redelivery: Redelivery::platform(),
            client_config: ClientConfig::default(),
            max_connections: MAX_CONNECTIONS_PER_APP,
            app_owner: None,
            scopes: DEFAULT_SCOPES
                .iter()
                .map(|s| ((*s).to_owned(), true))
                .collect(),
        }
    }
}

impl FakeFeishuBuilder {
    pub fn app_id(mut self, v: impl Into<String>) -> Self {
        self.app_id = v.into();
        self
    }
    pub fn app_secret(mut self, v: impl Into<String>) -> Self {
        self.app_secret = v.into();
        self
    }
    pub fn bot_open_id(mut self, v: impl Into<String>) -> Self {
        self.bot_open_id = v.into();
        self
    }
    /// The owner `GET /open-apis/application/v6/applications/me` reports.
    pub fn app_owner(mut self, open_id: impl Into<String>) -> Self {
        self.app_owner = Some(open_id.into());
        self
    }

    /// The app no longer asks for `scope` (it is absent from the scope list).
    pub fn without_scope(mut self, scope: &str) -> Self {
        self.scopes.retain(|(s, _)| s != scope);
        self
    }
    /// The app asks for `scope` but the tenant has not granted it.
    pub fn ungranted_scope(mut self, scope: &str) -> Self {
        self.scopes.retain(|(s, _)| s != scope);
        self.scopes.push((scope.to_owned(), false));
        self
    }

    pub fn bot_name(mut self, v: impl Into<String>) -> Self {
        self.bot_name = v.into();
        self
    }
    pub fn verification_token(mut self, v: impl Into<String>) -> Self {
        self.verification_token = v.into();
        self
    }
    pub fn tenant_key(mut self, v: impl Into<String>) -> Self {
        self.tenant_key = v.into();
        self
    }
    pub fn redelivery(mut self, v: Redelivery) -> Self {
        self.redelivery = v;
        self
    }
    /// `ClientConfig` returned by the endpoint call.
    pub fn client_config(mut self, v: ClientConfig) -> Self {
        self.client_config = v;
        self
    }
    /// Lower the 50-connection limit so a test can hit it cheaply.
    pub fn max_connections(mut self, v: usize) -> Self {
        self.max_connections = v;
        self
    }

    pub async fn start(self) -> Result<FakeFeishu> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding 127.0.0.1:0 for the fake Feishu")?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let shared = Arc::new(Shared::new(
            state::Config {
                app_id: self.app_id,
                app_secret: self.app_secret,
                bot_open_id: self.bot_open_id,
                bot_name: self.bot_name,
                verification_token: self.verification_token,
                tenant_key: self.tenant_key,
                redelivery: self.redelivery,
                client_config: self.client_config,
                max_connections: self.max_connections,
                app_owner: self.app_owner,
                scopes: self.scopes,
            },
            addr,
        ));
        let accept = tokio::spawn(http::accept_loop(listener, Arc::clone(&shared)));
        Ok(FakeFeishu {
            shared,
            accept: Some(accept),
        })
    }
}

/// The running fake. Dropping it stops the listener, every HTTP and
/// WebSocket connection and every redelivery timer.
#[derive(Debug)]
pub struct FakeFeishu {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Drop for FakeFeishu {
    fn drop(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
        }
        // Tasks hold the shared state, so they must be aborted explicitly;
        // waiting for the Arc to drop would never happen.
        lock(&self.shared.tasks).abort_all();
    }
}

impl FakeFeishu {
    /// Starts a fake with default credentials on a free port.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    pub fn builder() -> FakeFeishuBuilder {
        FakeFeishuBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`, the value for the gateway's `base_url`
    /// (the real ones are `https://open.feishu.cn` / `https://open.larksuite.com`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    pub fn app_id(&self) -> &str {
        &self.shared.cfg.app_id
    }
    pub fn app_secret(&self) -> &str {
        &self.shared.cfg.app_secret
    }
    pub fn bot_open_id(&self) -> &str {
        &self.shared.cfg.bot_open_id
    }
    pub fn bot_name(&self) -> &str {
        &self.shared.cfg.bot_name
    }
    pub fn verification_token(&self) -> &str {
        &self.shared.cfg.verification_token
    }
    pub fn tenant_key(&self) -> &str {
        &self.shared.cfg.tenant_key
    }

    /// Builds event envelopes stamped with this app's ids and token.
    pub fn events(&self) -> EventBuilder {
        EventBuilder::new(Arc::clone(&self.shared))
    }

    // ---- tokens -----------------------------------------------------------

    /// A valid tenant_access_token (as if the client had asked for one).
    pub fn issue_token(&self) -> String {
        self.shared.issue_token()
    }

    /// Makes every issued token invalid at once (business APIs then answer
    /// 99991663) — as after a secret reset or expiry.
    pub fn expire_tokens(&self) {
        lock(&self.shared.inner).tokens.clear();
    }

    /// Issues a card-action callback token bound to a message, valid 30 min
    /// for 2 uses of `/open-apis/interactive/v1/card/update`.
    pub fn issue_callback_token(&self, open_message_id: &str) -> String {
        self.shared.issue_callback_token(open_message_id)
    }

    // ---- recording --------------------------------------------------------

    /// Every HTTP call, oldest first (including refused ones).
    pub fn requests(&self) -> Vec<RecordedCall> {
        lock(&self.shared.inner).calls.clone()
    }

    /// Calls with this method whose path starts with `path_prefix`.
    pub fn requests_to(&self, method: &str, path_prefix: &str) -> Vec<RecordedCall> {
        lock(&self.shared.inner)
            .calls
            .iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method) && c.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// Waits for a call matching `pred` (including ones already made).
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RecordedCall) -> bool,
        timeout: Duration,
    ) -> Result<RecordedCall> {
        self.shared
            .wait_until(timeout, |inner| {
                inner.calls.iter().find(|c| pred(c)).cloned()
            })
            .await
            .with_context(|| format!("no matching HTTP call within {timeout:?}"))
    }

    /// Every call refused for rate, oldest first: by one of the fake's
    /// limits ([`RecordedCall::rate_limit`] names it) or by an injected
    /// rate fault.
    pub fn rate_limited(&self) -> Vec<RecordedCall> {
        lock(&self.shared.inner)
            .calls
            .iter()
            .filter(|c| c.is_rate_limited())
            .cloned()
            .collect()
    }

    /// Ages every rate-limit window by `by`, as if that much time had passed
    /// for the limiter only (tokens, uuids and streaming keep real time).
    /// Lets a test fill a per-minute window at 50/s without waiting.
    pub fn age_rate_windows(&self, by: Duration) {
        lock(&self.shared.inner).age_windows(by);
    }

    /// Every ACK received, oldest first.
    pub fn acks(&self) -> Vec<RecordedAck> {
        lock(&self.shared.inner).acks.clone()
    }

    /// Waits for an ACK of the pushed message `message_id`.
    pub async fn wait_for_ack(&self, message_id: &str, timeout: Duration) -> Result<RecordedAck> {
        self.shared
            .wait_until(timeout, |inner| {
                inner
                    .acks
                    .iter()
                    .find(|a| a.message_id == message_id)
                    .cloned()
            })
            .await
            .with_context(|| format!("no ACK for {message_id} within {timeout:?}"))
    }

    /// When pushed message `message_id` was first written to a socket and
    /// first ACKed (benchmarks: frame in → ACK out).
    pub fn frame_timing(&self, message_id: &str) -> Option<FrameTiming> {
        lock(&self.shared.inner).timings.get(message_id).copied()
    }

    /// Every pushed message's timing, keyed by frame `message_id`.
    pub fn frame_timings(&self) -> HashMap<String, FrameTiming> {
        lock(&self.shared.inner).timings.clone()
    }

    /// Number of distinct pushed messages ACKed at least once.
    pub fn acked_count(&self) -> usize {
        lock(&self.shared.inner).timed_acks
    }

    /// Waits until at least `n` distinct pushed messages have been ACKed
    /// (cheap per wake-up, unlike waiting on each id with thousands in flight).
    pub async fn wait_for_acked_count(&self, n: usize, timeout: Duration) -> Result<()> {
        self.shared
            .wait_until(timeout, |inner| (inner.timed_acks >= n).then_some(()))
            .await
            .with_context(|| format!("fewer than {n} messages ACKed within {timeout:?}"))
    }

    /// Number of `type=ping` control frames received.
    pub fn pings(&self) -> usize {
        lock(&self.shared.inner).pings
    }

    /// Protocol violations seen from the client (non-binary WS messages,
    /// frames missing required fields, undecodable frames, ACKs for unknown
    /// messages). A correct gateway leaves this empty.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.inner).violations.clone()
    }

    /// How many times a pushed message was sent (first push + redeliveries).
    pub fn deliveries(&self, message_id: &str) -> usize {
        lock(&self.shared.inner)
            .deliveries
            .get(message_id)
            .map_or(0, |d| d.sends)
    }

    // ---- platform state ---------------------------------------------------

    /// Messages the bot sent or replied (and user messages pushed or added),
    /// oldest first.
    pub fn messages(&self) -> Vec<StoredMessage> {
        lock(&self.shared.inner).messages.clone()
    }

    pub fn message(&self, message_id: &str) -> Option<StoredMessage> {
        lock(&self.shared.inner)
            .messages
            .iter()
            .find(|m| m.message_id == message_id)
            .cloned()
    }

    /// Registers a message a user sent (so the bot can reply to / fetch it).
    /// Messages in pushed `im.message.receive_v1` events are registered
    /// automatically.
    pub fn add_user_message(&self, chat_id: &str, msg_type: &str, content: &Value) -> String {
        self.shared.add_user_message(chat_id, msg_type, content)
    }

    /// Registers a message inside the merged and forwarded message
    /// `upper_message_id` (which the test pushes itself, with that id):
    /// `GET …/messages/{upper_message_id}` lists it after the forward, in
    /// the order added, and its resources are refused with 234043.
    pub fn add_forwarded_child(
        &self,
        upper_message_id: &str,
        chat_id: &str,
        sender_open_id: &str,
        msg_type: &str,
        content: &Value,
    ) -> String {
        let id = self.shared.add_user_message(chat_id, msg_type, content);
        let mut st = lock(&self.shared.inner);
        if let Some(m) = st.messages.iter_mut().find(|m| m.message_id == id) {
            m.upper_message_id = upper_message_id.to_owned();
            m.sender_id = sender_open_id.to_owned();
        }
        id
    }

    /// The user recalls (or deletes) `message_id`: from now on the platform
    /// answers replies to it with 230011 "not found or recalled".
    pub fn recall(&self, message_id: &str) -> bool {
        let mut st = lock(&self.shared.inner);
        match st.messages.iter_mut().find(|m| m.message_id == message_id) {
            Some(m) => {
                m.deleted = true;
                true
            }
            None => false,
        }
    }

    /// Makes card `card_id`'s streaming mode as old as the platform lets
    /// it get (10 minutes), so its next content update meets the streaming
    /// timeout without a test waiting for it.
    pub fn expire_streaming(&self, card_id: &str) {
        if let Some(c) = lock(&self.shared.inner).cards.get_mut(card_id)
            && let Some(t) = c.streaming_since
        {
            c.streaming_since = t.checked_sub(Duration::from_secs(600)).or(Some(t));
        }
    }

    /// A CardKit entity as it stands now (what a user sees).
    pub fn card(&self, card_id: &str) -> Option<CardState> {
        lock(&self.shared.inner).cards.get(card_id).cloned()
    }

    /// The buttons and form fields of the card message `message_id` shows
    /// now (raw card or CardKit entity), as a user sees them; `None` for a
    /// message that is not a (renderable) card. Act on them with
    /// [`EventBuilder::click`] / [`EventBuilder::submit_form`].
    pub fn card_view(&self, message_id: &str) -> Option<CardView> {
        self.shared.card_view_of(message_id).ok().map(|(_, v)| v)
    }

    /// Chats the bot created.
    pub fn chats(&self) -> Vec<ChatInfo> {
        lock(&self.shared.inner).chats.clone()
    }

    pub fn reactions(&self, message_id: &str) -> Vec<Reaction> {
        lock(&self.shared.inner)
            .reactions
            .iter()
            .filter(|r| r.message_id == message_id)
            .cloned()
            .collect()
    }

    /// What the bot uploaded under `key` (an `image_key` or `file_key`).
    pub fn upload(&self, key: &str) -> Option<Upload> {
        lock(&self.shared.inner).uploads.get(key).cloned()
    }

    /// Everything the bot uploaded.
    pub fn uploads(&self) -> Vec<Upload> {
        lock(&self.shared.inner).uploads.values().cloned().collect()
    }

    /// Makes `GET …/messages/{message_id}/resources/{key}?type={kind}` answer `bytes`.
    pub fn add_resource(&self, message_id: &str, key: &str, kind: &str, bytes: Vec<u8>) {
        lock(&self.shared.inner).resources.insert(
            (message_id.to_owned(), key.to_owned()),
            (kind.to_owned(), bytes),
        );
    }

    /// Makes the download of `key` in `message_id` fail with `code` (e.g.
    /// 234043: a resource inside a merge-forward child or a card).
    pub fn refuse_resource(&self, message_id: &str, key: &str, code: i64) {
        lock(&self.shared.inner)
            .refused_resources
            .insert((message_id.to_owned(), key.to_owned()), code);
    }

    /// Adds a comment by a user to a document; returns its comment_id.
    pub fn add_comment(
        &self,
        file_token: &str,
        user_open_id: &str,
        text: &str,
        is_whole: bool,
    ) -> String {
        self.shared
            .add_comment(file_token, user_open_id, text, is_whole)
    }

    /// A comment by `user` that mentions the bot (a `person` element
    /// first, then `text`), anchored to `quote` unless `is_whole`; returns
    /// (comment_id, reply_id).
    pub fn add_comment_mentioning_bot(
        &self,
        file_token: &str,
        user_open_id: &str,
        text: &str,
        quote: &str,
        is_whole: bool,
    ) -> (String, String) {
        let els = self.mention_elements(text);
        self.shared
            .add_comment_with(file_token, user_open_id, els, quote, is_whole)
    }

    /// A reply by `user` in comment `comment_id`, mentioning the bot when
    /// `mention`; returns its reply_id.
    pub fn add_comment_reply(
        &self,
        comment_id: &str,
        user_open_id: &str,
        text: &str,
        mention: bool,
    ) -> String {
        let els = if mention {
            self.mention_elements(text)
        } else {
            serde_json::json!([{"type": "text_run", "text_run": {"text": text}}])
        };
        self.shared.add_reply_with(comment_id, user_open_id, els)
    }

    fn mention_elements(&self, text: &str) -> Value {
        serde_json::json!([
            {"type": "person", "person": {"user_id": self.shared.cfg.bot_open_id}},
            {"type": "text_run", "text_run": {"text": format!(" {text}")}},
        ])
    }

    /// The title `drive/v1/metas/batch_query` gives for a document.
    pub fn set_doc_title(&self, file_token: &str, title: &str) {
        lock(&self.shared.inner)
            .doc_titles
            .insert(file_token.to_owned(), title.to_owned());
    }

    /// Marks a comment solved (replies then fail with 1069302).
    pub fn solve_comment(&self, comment_id: &str) {
        let mut inner = lock(&self.shared.inner);
        if let Some(c) = inner
            .comments
            .iter_mut()
            .find(|c| c.comment_id == comment_id)
        {
            c.is_solved = true;
        }
    }

    pub fn comments(&self, file_token: &str) -> Vec<Comment> {
        lock(&self.shared.inner)
            .comments
            .iter()
            .filter(|c| c.file_token == file_token)
            .cloned()
            .collect()
    }

    // ---- long connection --------------------------------------------------

    /// Open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Successful WebSocket handshakes so far.
    pub fn connects(&self) -> usize {
        lock(&self.shared.inner).connects
    }

    /// Waits until at least `n` connections are open.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        self.shared
            .wait_until(timeout, move |_| {
                (lock(&shared.conns).len() >= n).then_some(())
            })
            .await
            .with_context(|| format!("fewer than {n} WebSocket connections after {timeout:?}"))
    }

    /// Pushes an event envelope as a `type=event` data frame to one connection
    /// (cluster mode: round-robin over open connections); returns the frame
    /// `message_id`. Pushed before any client is connected, the first
    /// delivery waits for one. Unless ACKed it is redelivered per
    /// [`Redelivery`].
    pub async fn push(&self, event: &Value) -> Result<String> {
        ws::push(&self.shared, event, 1, "event")
    }

    /// Like [`push`](Self::push) but split into `parts` fragments (`sum`).
    pub async fn push_fragmented(&self, event: &Value, parts: usize) -> Result<String> {
        if parts == 0 {
            bail!("parts must be at least 1");
        }
        ws::push(&self.shared, event, parts, "event")
    }

    /// Pushes a legacy `type=card` data frame (the SDKs never ACK these).
    pub async fn push_legacy_card(&self, payload: &Value) -> Result<String> {
        ws::push(&self.shared, payload, 1, "card")
    }

    /// Sends the frames of an already-pushed message again, unchanged — the
    /// platform's at-least-once duplicate delivery.
    pub async fn push_duplicate(&self, message_id: &str) -> Result<()> {
        ws::resend(&self.shared, message_id)
    }

    /// Sends `bytes` as one binary WS message to every open connection
    /// (malformed or truncated frames).
    pub async fn push_raw_frame(&self, bytes: Vec<u8>) -> Result<()> {
        ws::broadcast_raw(&self.shared, bytes)
    }

    /// Server side drops every open socket without a close handshake.
    pub fn drop_connections(&self) {
        ws::drop_all(&self.shared);
    }

    /// Every open socket goes half-open: no close, no more frames to the
    /// client (pings unanswered, pushes lost until redelivered elsewhere),
    /// nothing from it acted on. Later connections are healthy.
    pub fn half_open_connections(&self) {
        ws::freeze_all(&self.shared);
    }

    /// Client frames a half-open socket swallowed (its unanswered pings
    /// among them).
    pub fn unanswered_frames(&self) -> usize {
        lock(&self.shared.inner).unanswered_frames
    }

    /// Shifts the platform's wall clock (event `create_time`s, frame
    /// `timestamp`s, message times) by `ms`: the platform at +1 h stands
    /// for the client's clock having jumped back an hour, and -1 h forward.
    pub fn set_clock_offset_ms(&self, ms: i64) {
        self.shared.set_clock_offset_ms(ms);
    }

    /// Disarms every HTTP fault still armed (errors, storms, delays).
    pub fn clear_http_faults(&self) {
        let mut inner = lock(&self.shared.inner);
        inner.faults.http.clear();
        inner.faults.random.clear();
    }

    /// The next `n` endpoint calls are refused this way.
    pub fn refuse_endpoint(&self, n: usize, how: EndpointRefusal) {
        let mut inner = lock(&self.shared.inner);
        for _ in 0..n {
            inner.faults.endpoint.push_back(how);
        }
    }

    /// The next `n` WebSocket handshakes are refused this way.
    pub fn refuse_handshakes(&self, n: usize, how: HandshakeRefusal) {
        let mut inner = lock(&self.shared.inner);
        for _ in 0..n {
            inner.faults.handshake.push_back(how);
        }
    }

    /// Pongs from now on carry this ClientConfig as payload (None: empty pongs).
    pub fn set_pong_config(&self, config: Option<ClientConfig>) {
        lock(&self.shared.inner).pong_config = config;
    }

    // ---- HTTP faults ------------------------------------------------------
    // `path` is an exact path, or a prefix when it ends with '*'.

    /// The next `n` calls to `path` get HTTP `status` (5xx) with a non-JSON body.
    pub fn fail_next(&self, path: &str, n: usize, status: u16) {
        lock(&self.shared.inner)
            .faults
            .http
            .push(state::PathFault::new(
                path,
                n,
                state::FaultKind::Status(status),
            ));
    }

    /// The next `n` calls to `path` get HTTP 429, body code 99991400 and
    /// `x-ogw-ratelimit-reset: reset_secs`.
    pub fn rate_limit_storm(&self, path: &str, n: usize, reset_secs: u64) {
        lock(&self.shared.inner)
            .faults
            .http
            .push(state::PathFault::new(
                path,
                n,
                state::FaultKind::RateLimit(reset_secs),
            ));
    }

    /// The next `n` calls to `path` get HTTP 400 with body `code` (e.g.
    /// 200740 "card entity not found" for a card that vanished).
    pub fn fail_next_code(&self, path: &str, n: usize, code: i64) {
        lock(&self.shared.inner)
            .faults
            .http
            .push(state::PathFault::new(path, n, state::FaultKind::Code(code)));
    }

    /// The next `n` calls to `path` get the IM frequency answer (HTTP 400, code 230020).
    pub fn frequency_limit_next(&self, path: &str, n: usize) {
        lock(&self.shared.inner)
            .faults
            .http
            .push(state::PathFault::new(path, n, state::FaultKind::Frequency));
    }

    /// From now on, calls to `path` (a trailing `*` matches a prefix) fail
    /// with HTTP `status` at random, `per_mille` in a thousand, from `seed`.
    pub fn fail_randomly(&self, path: &str, per_mille: u32, status: u16, seed: u64) {
        lock(&self.shared.inner)
            .faults
            .random
            .push(state::RandomFault {
                fault: state::PathFault::new(path, usize::MAX, state::FaultKind::Status(status)),
                per_mille: per_mille.min(1000),
                rng: seed | 1,
            });
    }

    /// No more random failures.
    pub fn stop_random_failures(&self) {
        lock(&self.shared.inner).faults.random.clear();
    }

    /// The next `n` `method` calls to a path starting with `prefix` are
    /// carried out at once but answered only after `delay`: a client that
    /// dies meanwhile changed the platform without knowing it.
    pub fn answer_late(&self, method: &str, prefix: &str, n: usize, delay: Duration) {
        lock(&self.shared.inner)
            .faults
            .late
            .push((method.to_owned(), prefix.to_owned(), n, delay));
    }

    /// The next `n` calls to `path` are answered normally after `delay`.
    pub fn slow_next(&self, path: &str, n: usize, delay: Duration) {
        lock(&self.shared.inner)
            .faults
            .http
            .push(state::PathFault::new(
                path,
                n,
                state::FaultKind::Delay(delay),
            ));
    }
}
