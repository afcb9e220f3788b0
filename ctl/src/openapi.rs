//! The few Open Platform calls `doctor` and `init` make to check an app live:
//! tenant token, bot info, the app's scopes, its owner, the long-connection
//! endpoint. One attempt each with a short timeout: a diagnosis reports what
//! the platform says rather than retrying it away. Nothing here prints a
//! secret, a token or the endpoint URL (which carries a ticket).

use std::time::Duration;

use fcx_config::Secret;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const TOKEN_PATH: &str = "/open-apis/auth/v3/tenant_access_token/internal";

#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The platform answered with a business error (`code != 0`).
    #[error("{path}: code {code}: {msg} (HTTP {status})")]
    Api {
        path: String,
        status: u16,
        code: i64,
        msg: String,
    },
    #[error("{path}: HTTP {status} without a usable answer")]
    Http { path: String, status: u16 },
    #[error("{path}: {reason}")]
    Transport { path: String, reason: String },
}

impl CallError {
    pub(crate) fn is_api(&self) -> bool {
        matches!(self, CallError::Api { .. })
    }
}

pub(crate) struct BotInfo {
    pub app_name: String,
    pub open_id: String,
    pub activate_status: Option<i64>,
}

pub(crate) struct OpenApi {
    http: reqwest::Client,
    base: String,
    app_id: String,
    secret: Secret,
}

impl OpenApi {
    pub(crate) fn new(base_url: &str, app_id: &str, secret: Secret) -> Result<Self, CallError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("fcxctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CallError::Transport {
                path: String::new(),
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(OpenApi {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            app_id: app_id.to_string(),
            secret,
        })
    }

    async fn send(
        &self,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), CallError> {
        let resp = req.send().await.map_err(|e| CallError::Transport {
            path: path.to_string(),
            reason: e.without_url().to_string(),
        })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| CallError::Transport {
            path: path.to_string(),
            reason: e.without_url().to_string(),
        })?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| CallError::Http {
            path: path.to_string(),
            status,
        })?;
        match v["code"].as_i64() {
            Some(0) => Ok((status, v)),
            Some(code) => Err(CallError::Api {
                path: path.to_string(),
                status,
                code,
                msg: crate::render::clean(v["msg"].as_str().unwrap_or("")),
            }),
            None => Err(CallError::Http {
                path: path.to_string(),
                status,
            }),
        }
    }

    /// A tenant access token (`POST …/tenant_access_token/internal`).
    pub(crate) async fn token(&self) -> Result<String, CallError> {
        let req = self
            .http
            .post(format!("{}{TOKEN_PATH}", self.base))
            .json(&json!({"app_id": self.app_id, "app_secret": self.secret.expose()}));
        let (status, v) = self.send(TOKEN_PATH, req).await?;
        v["tenant_access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or(CallError::Http {
                path: TOKEN_PATH.into(),
                status,
            })
    }

    async fn get(&self, token: &str, path: &str) -> Result<Value, CallError> {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        Ok(self.send(path, req).await?.1)
    }

    /// `GET /open-apis/bot/v3/info` (the answer is under `bot`).
    pub(crate) async fn bot_info(&self, token: &str) -> Result<BotInfo, CallError> {
        let v = self.get(token, "/open-apis/bot/v3/info").await?;
        let bot = &v["bot"];
        Ok(BotInfo {
            app_name: crate::render::clean(bot["app_name"].as_str().unwrap_or("")),
            open_id: crate::render::clean(bot["open_id"].as_str().unwrap_or("")),
            activate_status: bot["activate_status"].as_i64(),
        })
    }

    /// `GET /open-apis/application/v6/scopes`: `(scope, granted)` for each
    /// scope the app asks for.
    pub(crate) async fn scopes(&self, token: &str) -> Result<Vec<(String, bool)>, CallError> {
        let v = self.get(token, "/open-apis/application/v6/scopes").await?;
        Ok(v["data"]["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let name = s["scope_name"].as_str()?;
                // grant_status 1 = granted, 2 = asked for but not granted.
                Some((name.to_string(), s["grant_status"].as_i64() == Some(1)))
            })
            .collect())
    }

    /// The app owner's open_id, when the app may read its own info.
    pub(crate) async fn app_owner(&self, token: &str) -> Option<String> {
        let v = self
            .get(
                token,
                "/open-apis/application/v6/applications/me?lang=en_us&user_id_type=open_id",
            )
            .await
            .ok()?;
        let app = &v["data"]["app"];
        app["owner"]["owner_id"]
            .as_str()
            .or_else(|| app["creator_id"].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// `POST /callback/ws/endpoint`: the long connection would be granted.
    pub(crate) async fn ws_endpoint(&self) -> Result<(), CallError> {
        const PATH: &str = "/callback/ws/endpoint";
        let req = self
            .http
            .post(format!("{}{PATH}", self.base))
            .header("locale", "zh")
            .json(&json!({"AppID": self.app_id, "AppSecret": self.secret.expose()}));
        let (status, v) = self.send(PATH, req).await?;
        if v["data"]["URL"].as_str().is_some_and(|u| !u.is_empty()) {
            Ok(())
        } else {
            Err(CallError::Http {
                path: PATH.into(),
                status,
            })
        }
    }
}
