//! The long-connection endpoint request (feishu.md §1.2).

use super::*;

impl OpenApiClient {
    /// `POST {base}/callback/ws/endpoint` (no auth header; PascalCase body).
    /// Codes: 0 ok; 1, 1000040343, HTTP ≠ 200 and transport errors are
    /// retryable; anything else (e.g. bad credentials) is fatal (§1.2).
    pub(crate) async fn ws_endpoint(&self) -> Result<WsEndpoint, EndpointError> {
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
pub(crate) enum EndpointError {
    #[error("long-connection endpoint unavailable: {0}")]
    Retryable(String),
    #[error("long-connection endpoint refused the app (code {code}: {msg})")]
    Fatal { code: i64, msg: String },
}

/// The long-connection URL (carries a ticket: `Debug` shows no query) and
/// the server's settings.
#[derive(Clone)]
pub(crate) struct WsEndpoint {
    url: String,
    pub(crate) client_config: ClientConfig,
}

impl WsEndpoint {
    /// The full URL, for connecting only. Never log it.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
    /// Scheme, host and path only (safe to log).
    pub(crate) fn redacted(&self) -> String {
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
pub(crate) fn redact_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url[..end].to_string()
}
