//! Open Platform HTTP client (feishu.md §1.2, §3).
//!
//! - tenant token cached until 3 min before expiry, refreshed single-flight,
//!   and the request retried once with a fresh token on 99991663/99991664/
//!   99991671;
//! - the business `code` is checked on every answer (HTTP 200 is not
//!   success): failures carry code, msg and `X-Tt-Logid`;
//! - rate limits (HTTP 429, 99991400, 230020) wait `x-ogw-ratelimit-reset`
//!   (or a backoff) within a total bound; 5xx and connect errors are retried
//!   with jittered exponential backoff;
//! - every send/reply carries an idempotency `uuid`, the same one across all
//!   retries of one call, so a retry never posts twice.
//!
//! Secrets and tokens are never logged or put in errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use fcx_config::{AppConfig, Secret, SecretError};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::budget::{self, Budget, Window};
use super::frame::ClientConfig;

/// Token-invalid codes that trigger one retry with a fresh token (§3.1).
pub const TOKEN_INVALID_CODES: [i64; 3] = [99991663, 99991664, 99991671];
/// Rate-limit codes (§3.9).
pub const RATE_LIMIT_CODES: [i64; 2] = [99991400, 230020];

const TOKEN_PATH: &str = "/open-apis/auth/v3/tenant_access_token/internal";
const ENDPOINT_PATH: &str = "/callback/ws/endpoint";
const LOGID_HEADER: &str = "x-tt-logid";
const RESET_HEADER: &str = "x-ogw-ratelimit-reset";

/// Retry and limit knobs; the defaults suit production, tests shrink them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total time one call may spend waiting on rate limits.
    pub max_rate_limit_wait: Duration,
    /// Retries after 5xx / connect errors (per call).
    pub max_server_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Refresh the tenant token this long before it expires.
    pub token_refresh_margin: Duration,
    /// Cap on a JSON answer's size.
    pub max_json_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_rate_limit_wait: Duration::from_secs(30),
            max_server_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            token_refresh_margin: Duration::from_secs(180),
            max_json_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The platform answered with a business error (`code != 0`).
    #[error("{path}: code {code}: {msg} (HTTP {status}, log id {})", log_id.as_deref().unwrap_or("-"))]
    Api {
        path: String,
        status: u16,
        code: i64,
        msg: String,
        log_id: Option<String>,
    },
    #[error("{path}: still rate limited (code {code}) after waiting {waited:?} (log id {})", log_id.as_deref().unwrap_or("-"))]
    RateLimited {
        path: String,
        code: i64,
        waited: Duration,
        log_id: Option<String>,
    },
    /// A non-2xx answer without a usable JSON body.
    #[error("{path}: HTTP {status} (log id {})", log_id.as_deref().unwrap_or("-"))]
    Http {
        path: String,
        status: u16,
        log_id: Option<String>,
    },
    #[error("{path}: {source}")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{path}: bad response: {reason} (log id {})", log_id.as_deref().unwrap_or("-"))]
    Decode {
        path: String,
        reason: String,
        log_id: Option<String>,
    },
    #[error("{path}: response larger than {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cannot resolve the app secret: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl ApiError {
    /// The business code, when the platform gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::Api { code, .. } | ApiError::RateLimited { code, .. } => Some(*code),
            _ => None,
        }
    }
    /// The `X-Tt-Logid` of the failing answer.
    pub fn log_id(&self) -> Option<&str> {
        match self {
            ApiError::Api { log_id, .. }
            | ApiError::RateLimited { log_id, .. }
            | ApiError::Http { log_id, .. }
            | ApiError::Decode { log_id, .. } => log_id.as_deref(),
            _ => None,
        }
    }
}

/// A tenant access token. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

struct CachedToken {
    token: Token,
    refresh_at: Instant,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    app_id: String,
    app_secret: Secret,
    policy: RetryPolicy,
    /// Holding this lock while fetching makes the refresh single-flight.
    token: Mutex<Option<CachedToken>>,
    budget: Budget,
}

/// The Open Platform client. Cheap to clone (shared token cache).
#[derive(Clone)]
pub struct OpenApiClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for OpenApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenApiClient")
            .field("base_url", &self.inner.base_url)
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

/// How a request body is sent and its answer read.
enum Body {
    None,
    Json(serde_json::Value),
}

struct Spec {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Body,
    auth: bool,
    /// Safe to resend after a timeout (GET, or carries a uuid).
    idempotent: bool,
    /// `Some(cap)`: a binary answer is expected (downloads).
    binary: Option<u64>,
    /// Budget windows every attempt of this request waits for.
    budget: Vec<(String, &'static [Window])>,
}

impl Spec {
    fn new(method: Method, path: impl Into<String>) -> Self {
        let idempotent = method == Method::GET;
        Spec {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
            auth: true,
            idempotent,
            binary: None,
            budget: Vec::new(),
        }
    }
    fn budget(mut self, key: impl Into<String>, windows: &'static [Window]) -> Self {
        self.budget.push((key.into(), windows));
        self
    }
    fn json(mut self, v: serde_json::Value) -> Self {
        self.body = Body::Json(v);
        self
    }
    fn query(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }
}

enum Answer {
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

struct Raw {
    status: StatusCode,
    log_id: Option<String>,
    reset: Option<Duration>,
    is_json: bool,
    /// The body exceeded the cap and was not read to the end.
    too_large: bool,
    body: Vec<u8>,
}

/// A fresh idempotency key: 36 chars (the platform allows ≤ 50).
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("fcx-{hex}")
}

fn segment(s: &str) -> Result<&str, ApiError> {
    if !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        && s != "."
        && s != ".."
    {
        Ok(s)
    } else {
        Err(ApiError::InvalidArgument(format!(
            "not a valid id: {:?}",
            s.chars().take(64).collect::<String>()
        )))
    }
}

fn check_uuid(u: &str) -> Result<(), ApiError> {
    if u.is_empty() || u.len() > 50 {
        return Err(ApiError::InvalidArgument(
            "uuid must be 1-50 characters".into(),
        ));
    }
    Ok(())
}

impl OpenApiClient {
    /// A client for `base_url` (e.g. `https://open.feishu.cn`, no trailing
    /// slash needed). Install the rustls provider first
    /// ([`super::install_crypto_provider`]).
    pub fn new(
        base_url: &str,
        app_id: &str,
        app_secret: Secret,
        policy: RetryPolicy,
    ) -> Result<Self, ApiError> {
        super::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("fcx/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Client(e.to_string()))?;
        Ok(OpenApiClient {
            inner: Arc::new(Inner {
                http,
                base_url: base_url.trim_end_matches('/').to_string(),
                app_id: app_id.to_string(),
                app_secret,
                policy,
                token: Mutex::new(None),
                budget: Budget::new(),
            }),
        })
    }

    /// From a profile's `[app]`, resolving the secret reference.
    pub fn from_app(app: &AppConfig, policy: RetryPolicy) -> Result<Self, ApiError> {
        let secret = app.app_secret.resolve()?;
        Self::new(&app.base_url, &app.app_id, secret, policy)
    }

    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }
    /// The app's request budget; CardKit writers take their slots here.
    pub fn budget(&self) -> &Budget {
        &self.inner.budget
    }
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    // ---- tenant token ----------------------------------------------------

    /// The cached token, fetching a new one when absent, near expiry, or
    /// equal to `rejected` (the platform said it is invalid).
    async fn token(&self, rejected: Option<&Token>) -> Result<Token, ApiError> {
        let mut slot = self.inner.token.lock().await;
        if let Some(c) = slot.as_ref()
            && Instant::now() < c.refresh_at
            && Some(&c.token) != rejected
        {
            return Ok(c.token.clone());
        }
        *slot = None;
        let spec = Spec {
            auth: false,
            idempotent: true,
            ..Spec::new(Method::POST, TOKEN_PATH)
        }
        .json(serde_json::json!({
            "app_id": self.inner.app_id,
            "app_secret": self.inner.app_secret.expose(),
        }));
        let v = match Box::pin(self.call(&spec)).await? {
            Answer::Json(v) => v,
            Answer::Bytes(_) => return Err(self.decode_err(TOKEN_PATH, "binary answer", None)),
        };
        #[derive(Deserialize)]
        struct TokenResp {
            tenant_access_token: String,
            expire: u64,
        }
        let t: TokenResp = serde_json::from_value(v)
            .map_err(|e| self.decode_err(TOKEN_PATH, &e.to_string(), None))?;
        if t.tenant_access_token.is_empty() {
            return Err(self.decode_err(TOKEN_PATH, "empty token", None));
        }
        let life = Duration::from_secs(t.expire);
        let refresh_in = life.saturating_sub(self.inner.policy.token_refresh_margin);
        tracing::debug!(expire_s = t.expire, "tenant access token refreshed");
        let token = Token(t.tenant_access_token);
        *slot = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + refresh_in,
        });
        Ok(token)
    }

    fn decode_err(&self, path: &str, reason: &str, log_id: Option<String>) -> ApiError {
        ApiError::Decode {
            path: path.to_string(),
            reason: reason.to_string(),
            log_id,
        }
    }

    // ---- transport ---------------------------------------------------------

    async fn send_once(&self, spec: &Spec, token: Option<&Token>) -> Result<Raw, reqwest::Error> {
        let url = format!("{}{}", self.inner.base_url, spec.path);
        let mut rb = self
            .inner
            .http
            .request(spec.method.clone(), url)
            .header("content-type", "application/json; charset=utf-8");
        if !spec.query.is_empty() {
            rb = rb.query(&spec.query);
        }
        if let Some(t) = token {
            rb = rb.bearer_auth(&t.0);
        }
        if let Body::Json(v) = &spec.body {
            rb = rb.json(v);
        }
        let mut resp = rb.send().await?;
        let status = resp.status();
        let h = resp.headers();
        let log_id = h
            .get(LOGID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reset = h
            .get(RESET_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let is_json = h
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let cap = match spec.binary {
            Some(cap) if status.is_success() && !is_json => cap,
            _ => self.inner.policy.max_json_bytes as u64,
        };
        let mut body = Vec::new();
        let mut too_large = resp.content_length().is_some_and(|n| n > cap);
        while !too_large && let Some(chunk) = resp.chunk().await? {
            if (body.len() + chunk.len()) as u64 > cap {
                too_large = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Raw {
            status,
            log_id,
            reset,
            is_json,
            too_large,
            body,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let p = &self.inner.policy;
        let exp = p
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(p.backoff_max);
        let ms = exp.as_millis().min(u128::from(u64::MAX)) as u64;
        let lo = ms / 2;
        Duration::from_millis(if ms > lo {
            rand::random_range(lo..=ms)
        } else {
            ms
        })
    }

    /// One logical call with all retries. Each retry resends the identical
    /// request (same body, so the same `uuid`).
    async fn call(&self, spec: &Spec) -> Result<Answer, ApiError> {
        let path = spec.path.as_str();
        let p = &self.inner.policy;
        let mut rate_waited = Duration::ZERO;
        let mut server_retries = 0u32;
        let mut rejected: Option<Token> = None;
        let mut token_retried = false;
        loop {
            let token = if spec.auth {
                Some(self.token(rejected.as_ref()).await?)
            } else {
                None
            };
            if !spec.budget.is_empty() {
                let keys: Vec<(&str, &[Window])> =
                    spec.budget.iter().map(|(k, w)| (k.as_str(), *w)).collect();
                self.inner.budget.acquire(&keys).await;
            }
            let raw = match self.send_once(spec, token.as_ref()).await {
                Ok(r) => r,
                Err(e) => {
                    let resend_ok = spec.idempotent || e.is_connect();
                    if resend_ok && server_retries < p.max_server_retries {
                        let d = self.backoff(server_retries);
                        server_retries += 1;
                        tracing::warn!(path, error = %e, retry_in_ms = d.as_millis() as u64, "Open Platform request failed; retrying");
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(ApiError::Transport {
                        path: path.to_string(),
                        source: e,
                    });
                }
            };
            let status = raw.status;
            if raw.too_large {
                return Err(ApiError::TooLarge {
                    path: path.to_string(),
                    limit: spec.binary.unwrap_or(p.max_json_bytes as u64),
                });
            }
            if spec.binary.is_some() && status.is_success() && !raw.is_json {
                return Ok(Answer::Bytes(raw.body));
            }
            let json: Option<serde_json::Value> = serde_json::from_slice(&raw.body).ok();
            let code = json
                .as_ref()
                .and_then(|v| v.get("code"))
                .and_then(serde_json::Value::as_i64);
            let msg = json
                .as_ref()
                .and_then(|v| v.get("msg"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();

            // Rate limits: wait the advertised reset (or back off), bounded.
            let rate_code = code.filter(|c| RATE_LIMIT_CODES.contains(c));
            if status == StatusCode::TOO_MANY_REQUESTS || rate_code.is_some() {
                let wait = raw
                    .reset
                    .filter(|d| !d.is_zero())
                    .unwrap_or_else(|| self.backoff(server_retries.min(3)));
                if rate_waited + wait > p.max_rate_limit_wait {
                    return Err(ApiError::RateLimited {
                        path: path.to_string(),
                        code: code.unwrap_or(99991400),
                        waited: rate_waited,
                        log_id: raw.log_id,
                    });
                }
                tracing::info!(
                    path,
                    code,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited; waiting"
                );
                rate_waited += wait;
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() {
                if server_retries < p.max_server_retries {
                    let d = self.backoff(server_retries);
                    server_retries += 1;
                    tracing::warn!(
                        path,
                        status = status.as_u16(),
                        code,
                        log_id = raw.log_id.as_deref(),
                        retry_in_ms = d.as_millis() as u64,
                        "server error; retrying"
                    );
                    tokio::time::sleep(d).await;
                    continue;
                }
                return Err(match code {
                    Some(code) => ApiError::Api {
                        path: path.to_string(),
                        status: status.as_u16(),
                        code,
                        msg,
                        log_id: raw.log_id,
                    },
                    None => ApiError::Http {
                        path: path.to_string(),
                        status: status.as_u16(),
                        log_id: raw.log_id,
                    },
                });
            }
            let Some(code) = code else {
                if status.is_success() {
                    return Err(self.decode_err(path, "answer has no business code", raw.log_id));
                }
                return Err(ApiError::Http {
                    path: path.to_string(),
                    status: status.as_u16(),
                    log_id: raw.log_id,
                });
            };
            if spec.auth && TOKEN_INVALID_CODES.contains(&code) && !token_retried {
                tracing::info!(path, code, "tenant token rejected; refreshing once");
                token_retried = true;
                rejected = token;
                continue;
            }
            if code != 0 || !status.is_success() {
                return Err(ApiError::Api {
                    path: path.to_string(),
                    status: status.as_u16(),
                    code,
                    msg,
                    log_id: raw.log_id,
                });
            }
            return match json {
                Some(v) => Ok(Answer::Json(v)),
                None => Err(self.decode_err(path, "not JSON", raw.log_id)),
            };
        }
    }

    /// Calls and deserializes `field` of the answer (`data` for most APIs).
    async fn call_field<T: DeserializeOwned>(
        &self,
        spec: &Spec,
        field: &str,
    ) -> Result<T, ApiError> {
        let Answer::Json(mut v) = self.call(spec).await? else {
            return Err(self.decode_err(&spec.path, "binary answer", None));
        };
        let inner = v
            .get_mut(field)
            .map(serde_json::Value::take)
            .unwrap_or(serde_json::Value::Null);
        serde_json::from_value(inner)
            .map_err(|e| self.decode_err(&spec.path, &format!("`{field}`: {e}"), None))
    }

    // ---- API calls ---------------------------------------------------------

    /// `GET /open-apis/bot/v3/info` (the answer is under `bot`, not `data`).
    /// The app owner's open_id (`GET /open-apis/application/v6/applications/me`:
    /// `data.app.owner.owner_id`, else `data.app.creator_id`). Needs the
    /// `application:application:self_manage` (or `admin:app.info:readonly`)
    /// scope; `Ok(None)` when the platform names nobody.
    pub async fn app_owner(&self) -> Result<Option<String>, ApiError> {
        let spec = Spec::new(Method::GET, "/open-apis/application/v6/applications/me")
            .query("lang", "en_us")
            .query("user_id_type", "open_id");
        let data: serde_json::Value = self.call_field(&spec, "data").await?;
        let app = &data["app"];
        let owner = app["owner"]["owner_id"]
            .as_str()
            .or_else(|| app["creator_id"].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(owner)
    }

    pub async fn bot_info(&self) -> Result<BotInfo, ApiError> {
        self.call_field(&Spec::new(Method::GET, "/open-apis/bot/v3/info"), "bot")
            .await
    }

    /// `POST /open-apis/im/v1/messages?receive_id_type=…`. A `uuid` is
    /// generated when `msg.uuid` is `None`; retries reuse it.
    pub async fn send_message(
        &self,
        id_type: ReceiveIdType,
        receive_id: &str,
        msg: &OutgoingMessage,
    ) -> Result<Message, ApiError> {
        let uuid = msg.uuid.clone().unwrap_or_else(new_uuid);
        check_uuid(&uuid)?;
        let chat = match id_type {
            ReceiveIdType::ChatId => Some(receive_id.to_string()),
            _ => msg.chat.clone().or_else(|| Some(receive_id.to_string())),
        };
        let mut spec = Spec {
            idempotent: true,
            ..Spec::new(Method::POST, "/open-apis/im/v1/messages")
        }
        .budget("im.send", budget::IM_SEND);
        if let Some(c) = chat {
            spec = spec.budget(format!("chat:{c}"), budget::IM_CHAT);
        }
        let spec = spec
            .query("receive_id_type", id_type.as_str())
            .json(serde_json::json!({
                "receive_id": receive_id,
                "msg_type": msg.msg_type,
                "content": msg.content,
                "uuid": uuid,
            }));
        self.call_field(&spec, "data").await
    }

    /// `POST /open-apis/im/v1/messages/{id}/reply`.
    pub async fn reply_message(
        &self,
        message_id: &str,
        msg: &OutgoingMessage,
        reply_in_thread: bool,
    ) -> Result<Message, ApiError> {
        let uuid = msg.uuid.clone().unwrap_or_else(new_uuid);
        check_uuid(&uuid)?;
        let path = format!("/open-apis/im/v1/messages/{}/reply", segment(message_id)?);
        let mut spec = Spec {
            idempotent: true,
            ..Spec::new(Method::POST, path)
        }
        .budget("im.send", budget::IM_SEND);
        if let Some(c) = &msg.chat {
            spec = spec.budget(format!("chat:{c}"), budget::IM_CHAT);
        }
        let spec = spec.json(serde_json::json!({
            "msg_type": msg.msg_type,
            "content": msg.content,
            "reply_in_thread": reply_in_thread,
            "uuid": uuid,
        }));
        self.call_field(&spec, "data").await
    }

    /// `GET /open-apis/im/v1/messages/{id}` → `data.items` (a merge-forward
    /// returns its children too).
    pub async fn get_message(&self, message_id: &str) -> Result<Vec<Message>, ApiError> {
        #[derive(Deserialize)]
        struct Items {
            #[serde(default)]
            items: Vec<Message>,
        }
        let path = format!("/open-apis/im/v1/messages/{}", segment(message_id)?);
        let items: Items = self
            .call_field(&Spec::new(Method::GET, path), "data")
            .await?;
        Ok(items.items)
    }

    /// `DELETE /open-apis/im/v1/messages/{id}`: recall a message the bot
    /// sent. Resending is harmless (a second recall of the same message
    /// changes nothing).
    pub async fn recall_message(&self, message_id: &str) -> Result<(), ApiError> {
        let path = format!("/open-apis/im/v1/messages/{}", segment(message_id)?);
        let spec = Spec {
            idempotent: true,
            ..Spec::new(Method::DELETE, path)
        }
        .budget("im.recall", budget::IM_SEND);
        self.call_field::<serde_json::Value>(&spec, "data")
            .await
            .map(|_| ())
    }

    /// `POST /open-apis/im/v1/messages/{id}/reactions`. Not idempotent: a
    /// timed-out request is not resent (only connect failures are).
    pub async fn add_reaction(
        &self,
        message_id: &str,
        emoji_type: &str,
    ) -> Result<Reaction, ApiError> {
        let path = format!(
            "/open-apis/im/v1/messages/{}/reactions",
            segment(message_id)?
        );
        let spec = Spec::new(Method::POST, path)
            .json(serde_json::json!({ "reaction_type": { "emoji_type": emoji_type } }));
        self.call_field(&spec, "data").await
    }

    /// `GET /open-apis/im/v1/messages/{id}/resources/{key}?type=…`: the
    /// bytes of a user-sent image/file, refused above `max_bytes`.
    pub async fn download_resource(
        &self,
        message_id: &str,
        file_key: &str,
        kind: ResourceType,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let path = format!(
            "/open-apis/im/v1/messages/{}/resources/{}",
            segment(message_id)?,
            segment(file_key)?
        );
        let spec = Spec {
            binary: Some(max_bytes),
            ..Spec::new(Method::GET, path)
        }
        .query("type", kind.as_str());
        match self.call(&spec).await? {
            Answer::Bytes(b) => Ok(b),
            Answer::Json(_) => Err(self.decode_err(&spec.path, "expected a file, got JSON", None)),
        }
    }

    /// `POST /open-apis/im/v1/chats?user_id_type=open_id&uuid=…` → chat id.
    pub async fn create_chat(&self, req: &CreateChat) -> Result<CreatedChat, ApiError> {
        let uuid = req.uuid.clone().unwrap_or_else(new_uuid);
        check_uuid(&uuid)?;
        let body =
            serde_json::to_value(req).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let spec = Spec {
            idempotent: true,
            ..Spec::new(Method::POST, "/open-apis/im/v1/chats")
        }
        .query("user_id_type", "open_id")
        .query("uuid", uuid)
        .json(body);
        self.call_field(&spec, "data").await
    }

    /// Any JSON call under `/open-apis/` with the same token handling,
    /// code checks, rate-limit waits and retries as the typed calls (used
    /// by `cardkit`). Returns the answer's `data` (`Null` when absent).
    /// `idempotent`: the request may be resent after a timeout (only say so
    /// when a resend cannot apply twice).
    pub async fn call_json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        idempotent: bool,
    ) -> Result<serde_json::Value, ApiError> {
        self.call_json_budgeted(method, path, body, idempotent, Vec::new())
            .await
    }

    /// [`Self::call_json`], each attempt first waiting for a slot in the
    /// given budget windows.
    pub async fn call_json_budgeted(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        idempotent: bool,
        budget: Vec<(String, &'static [Window])>,
    ) -> Result<serde_json::Value, ApiError> {
        if !path.starts_with("/open-apis/")
            || path.contains("..")
            || path.contains(['?', '#'])
            || !path.is_ascii()
        {
            return Err(ApiError::InvalidArgument(format!(
                "not an Open Platform path: {:?}",
                path.chars().take(64).collect::<String>()
            )));
        }
        let mut spec = Spec {
            idempotent: idempotent || method == Method::GET,
            budget,
            ..Spec::new(method, path)
        };
        if let Some(b) = body {
            spec = spec.json(b);
        }
        self.call_field(&spec, "data").await
    }

    // ---- long-connection endpoint ---------------------------------------

    /// `POST {base}/callback/ws/endpoint` (no auth header; PascalCase body).
    /// Codes: 0 ok; 1, 1000040343, HTTP ≠ 200 and transport errors are
    /// retryable; anything else (e.g. bad credentials) is fatal (§1.2).
    pub async fn ws_endpoint(&self) -> Result<WsEndpoint, EndpointError> {
        let url = format!("{}{}", self.inner.base_url, ENDPOINT_PATH);
        let resp = self
            .inner
            .http
            .post(url)
            .header("locale", "zh")
            .json(&serde_json::json!({
                "AppID": self.inner.app_id,
                "AppSecret": self.inner.app_secret.expose(),
            }))
            .send()
            .await
            .map_err(|e| {
                EndpointError::Retryable(format!("request failed: {}", e.without_url()))
            })?;
        let status = resp.status();
        if status != StatusCode::OK {
            return Err(EndpointError::Retryable(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        let body = resp.bytes().await.map_err(|e| {
            EndpointError::Retryable(format!("reading the answer: {}", e.without_url()))
        })?;
        #[derive(Deserialize)]
        struct Resp {
            code: Option<i64>,
            #[serde(default)]
            msg: String,
            data: Option<Data>,
        }
        #[derive(Deserialize)]
        struct Data {
            #[serde(rename = "URL")]
            url: Option<String>,
            #[serde(rename = "ClientConfig")]
            client_config: Option<ClientConfig>,
        }
        let r: Resp = serde_json::from_slice(&body)
            .map_err(|e| EndpointError::Retryable(format!("bad answer: {e}")))?;
        match r.code {
            Some(0) => {}
            Some(code @ (1 | 1000040343)) => {
                return Err(EndpointError::Retryable(format!("code {code}: {}", r.msg)));
            }
            Some(code) => return Err(EndpointError::Fatal { code, msg: r.msg }),
            None => return Err(EndpointError::Retryable("answer has no code".into())),
        }
        let data = r
            .data
            .ok_or_else(|| EndpointError::Retryable("answer has no data".into()))?;
        let url = data
            .url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| EndpointError::Retryable("answer has no URL".into()))?;
        Ok(WsEndpoint {
            url,
            client_config: data.client_config.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("long-connection endpoint unavailable: {0}")]
    Retryable(String),
    #[error("long-connection endpoint refused the app (code {code}: {msg})")]
    Fatal { code: i64, msg: String },
}

/// The long-connection URL (carries a ticket: `Debug` shows no query) and
/// the server's settings.
#[derive(Clone)]
pub struct WsEndpoint {
    url: String,
    pub client_config: ClientConfig,
}

impl WsEndpoint {
    pub fn new(url: String, client_config: ClientConfig) -> Self {
        WsEndpoint { url, client_config }
    }
    /// The full URL, for connecting only. Never log it.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// Scheme, host and path only (safe to log).
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for WsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsEndpoint")
            .field("url", &self.redacted())
            .field("client_config", &self.client_config)
            .finish()
    }
}

/// Drops the query and fragment of a URL.
pub fn redact_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url[..end].to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveIdType {
    OpenId,
    UnionId,
    UserId,
    Email,
    ChatId,
}

impl ReceiveIdType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiveIdType::OpenId => "open_id",
            ReceiveIdType::UnionId => "union_id",
            ReceiveIdType::UserId => "user_id",
            ReceiveIdType::Email => "email",
            ReceiveIdType::ChatId => "chat_id",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// Images, including `img` keys inside posts.
    Image,
    /// Files, audio and video.
    File,
}

impl ResourceType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ResourceType::Image => "image",
            ResourceType::File => "file",
        }
    }
}

/// A message to send or reply with. `content` is the JSON *string* the
/// platform expects (e.g. `{"text":"hi"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub msg_type: String,
    pub content: String,
    /// Idempotency key (≤ 50 chars, deduped by the platform for 1 h).
    /// `None` = generate one per call. Pass your own to make a retry at a
    /// higher level idempotent too.
    pub uuid: Option<String>,
    /// The chat the message lands in, when the caller knows it (a reply
    /// names only the parent message): paces it under the chat's 5 QPS.
    /// Not sent.
    pub chat: Option<String>,
}

impl OutgoingMessage {
    pub fn new(msg_type: impl Into<String>, content: impl Into<String>) -> Self {
        OutgoingMessage {
            msg_type: msg_type.into(),
            content: content.into(),
            uuid: None,
            chat: None,
        }
    }
    /// A `text` message.
    pub fn text(text: &str) -> Self {
        Self::new("text", serde_json::json!({ "text": text }).to_string())
    }
    pub fn with_uuid(mut self, uuid: impl Into<String>) -> Self {
        self.uuid = Some(uuid.into());
        self
    }
    pub fn in_chat(mut self, chat_id: impl Into<String>) -> Self {
        let c = chat_id.into();
        self.chat = (!c.is_empty()).then_some(c);
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BotInfo {
    #[serde(default)]
    pub open_id: String,
    #[serde(default)]
    pub app_name: String,
    pub activate_status: Option<i64>,
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub ip_white_list: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MessageSender {
    pub id: Option<String>,
    pub id_type: Option<String>,
    pub sender_type: Option<String>,
    pub tenant_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MessageBody {
    #[serde(default)]
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MessageMention {
    pub key: Option<String>,
    pub id: Option<String>,
    pub id_type: Option<String>,
    pub name: Option<String>,
    pub tenant_key: Option<String>,
}

/// A message as the IM API returns it (send, reply, get).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub message_id: String,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
    pub thread_id: Option<String>,
    pub msg_type: Option<String>,
    pub create_time: Option<String>,
    pub update_time: Option<String>,
    pub deleted: Option<bool>,
    pub updated: Option<bool>,
    pub chat_id: Option<String>,
    pub sender: Option<MessageSender>,
    pub body: Option<MessageBody>,
    #[serde(default)]
    pub mentions: Vec<MessageMention>,
    pub upper_message_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Reaction {
    #[serde(default)]
    pub reaction_id: String,
    pub action_time: Option<String>,
}

/// Body of `POST /open-apis/im/v1/chats` (ids are open_ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateChat {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_id_list: Vec<String>,
    /// `private` (default) or `public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_type: Option<String>,
    /// Sent as the `uuid` query parameter, not in the body.
    #[serde(skip)]
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CreatedChat {
    #[serde(default)]
    pub chat_id: String,
    pub name: Option<String>,
}

#[cfg(test)]
mod tests;
