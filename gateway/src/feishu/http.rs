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
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::budget::{self, Budget, Window};
use super::frame::ClientConfig;

/// Token-invalid codes that trigger one retry with a fresh token (§3.1).
pub(crate) const TOKEN_INVALID_CODES: [i64; 3] = [99991663, 99991664, 99991671];
/// Rate-limit codes (§3.9).
pub(crate) const RATE_LIMIT_CODES: [i64; 2] = [99991400, 230020];

const TOKEN_PATH: &str = "/open-apis/auth/v3/tenant_access_token/internal";
const ENDPOINT_PATH: &str = "/callback/ws/endpoint";
const LOGID_HEADER: &str = "x-tt-logid";
const RESET_HEADER: &str = "x-ogw-ratelimit-reset";

/// Retry and limit knobs; the defaults suit production, tests shrink them.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Total time one call may spend waiting on rate limits.
    pub(crate) max_rate_limit_wait: Duration,
    /// Retries after 5xx / connect errors (per call).
    pub(crate) max_server_retries: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    /// Refresh the tenant token this long before it expires.
    pub(crate) token_refresh_margin: Duration,
    /// Cap on a JSON answer's size.
    pub(crate) max_json_bytes: usize,
    /// Per-request timeout.
    pub(crate) request_timeout: Duration,
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
pub(crate) enum ApiError {
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
    pub(crate) fn code(&self) -> Option<i64> {
        match self {
            ApiError::Api { code, .. } | ApiError::RateLimited { code, .. } => Some(*code),
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
pub(crate) struct OpenApiClient {
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
    /// Bytes as they are, e.g. a `multipart/form-data` upload built by
    /// `uploads` (cheap to resend: `Bytes` clones share the buffer).
    Raw {
        content_type: String,
        bytes: bytes::Bytes,
    },
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
    /// Overrides the client's per-request timeout (large uploads).
    timeout: Option<Duration>,
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
            timeout: None,
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
pub(crate) fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("fcx-{hex}")
}

/// `s` as one URL path segment: an id of ASCII letters, digits, `_-.`.
pub(crate) fn segment(s: &str) -> Result<&str, ApiError> {
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
    pub(crate) fn new(
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
    pub(crate) fn from_app(app: &AppConfig, policy: RetryPolicy) -> Result<Self, ApiError> {
        let secret = app.app_secret.resolve()?;
        Self::new(&app.base_url, &app.app_id, secret, policy)
    }

    /// The app's request budget; CardKit writers take their slots here.
    pub(crate) fn budget(&self) -> &Budget {
        &self.inner.budget
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
        let content_type = match &spec.body {
            Body::Raw { content_type, .. } => content_type.as_str(),
            _ => "application/json; charset=utf-8",
        };
        let mut rb = self
            .inner
            .http
            .request(spec.method.clone(), url)
            .header("content-type", content_type);
        if let Some(t) = spec.timeout {
            rb = rb.timeout(t);
        }
        if !spec.query.is_empty() {
            rb = rb.query(&spec.query);
        }
        if let Some(t) = token {
            rb = rb.bearer_auth(&t.0);
        }
        match &spec.body {
            Body::Json(v) => rb = rb.json(v),
            Body::Raw { bytes, .. } => rb = rb.body(bytes.clone()),
            Body::None => {}
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
            if let Some(c) = code.filter(|c| *c != 0) {
                crate::metrics::feishu_api_error(&self.inner.app_id, c);
            }

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
}

mod api;
mod endpoint;
mod im;
mod types;

#[cfg(test)]
pub(crate) use endpoint::redact_url;
pub(crate) use endpoint::{EndpointError, WsEndpoint};
pub(crate) use types::*;

#[cfg(test)]
mod tests;
