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
    /// Whether the same call may succeed later (rate limits, server errors,
    /// a broken connection), unlike a refusal.
    pub(crate) fn transient(&self) -> bool {
        match self {
            ApiError::RateLimited { .. } | ApiError::Transport { .. } => true,
            ApiError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

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

/// The transport under every call: the HTTP client, the tenant token
/// cache, the app's request budget and the retry policy.
struct Transport {
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
    inner: Arc<Transport>,
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

fn decode_err(path: &str, reason: &str, log_id: Option<String>) -> ApiError {
    ApiError::Decode {
        path: path.to_string(),
        reason: reason.to_string(),
        log_id,
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
            inner: Arc::new(Transport {
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
}

mod api;
mod endpoint;
mod im;
mod transport;
mod types;

#[cfg(test)]
pub(crate) use endpoint::redact_url;
pub(crate) use endpoint::{EndpointError, WsEndpoint};
pub(crate) use types::*;

#[cfg(test)]
mod tests;
