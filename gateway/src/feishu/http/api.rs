//! The typed Open Platform calls fcx makes about the app itself (bot and app
//! info), resources, and the raw JSON door `cardkit` uses; messages,
//! reactions and chats are in `im`.

use super::*;

impl OpenApiClient {
    /// `GET /open-apis/bot/v3/info` (the answer is under `bot`, not `data`).
    /// The app owner's open_id (`GET /open-apis/application/v6/applications/me`:
    /// `data.app.owner.owner_id`, else `data.app.creator_id`). Needs the
    /// `application:application:self_manage` (or `admin:app.info:readonly`)
    /// scope; `Ok(None)` when the platform names nobody.
    pub(crate) async fn app_owner(&self) -> Result<Option<String>, ApiError> {
        let spec = Spec::new(Method::GET, "/open-apis/application/v6/applications/me")
            .query("lang", "en_us")
            .query("user_id_type", "open_id");
        let data: serde_json::Value = self.inner.call_field(&spec, "data").await?;
        let app = &data["app"];
        let owner = app["owner"]["owner_id"]
            .as_str()
            .or_else(|| app["creator_id"].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(owner)
    }

    pub(crate) async fn bot_info(&self) -> Result<BotInfo, ApiError> {
        self.inner
            .call_field(&Spec::new(Method::GET, "/open-apis/bot/v3/info"), "bot")
            .await
    }

    /// `GET path?query` answered by a binary stream (downloads, e.g.
    /// `feishu::resources`), refused above `max_bytes` without reading on.
    /// `path` segments must already be checked ids.
    pub(crate) async fn get_bytes(
        &self,
        path: String,
        query: &[(&'static str, &str)],
        max_bytes: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let mut spec = Spec {
            binary: Some(max_bytes),
            ..Spec::new(Method::GET, path)
        };
        for &(k, v) in query {
            spec = spec.query(k, v);
        }
        match self.inner.call(&spec).await? {
            Answer::Bytes(b) => Ok(b),
            Answer::Json(_) => Err(decode_err(&spec.path, "expected a file, got JSON", None)),
        }
    }

    /// Any JSON call under `/open-apis/` with the same token handling,
    /// code checks, rate-limit waits and retries as the typed calls (used
    /// by `cardkit`). Returns the answer's `data` (`Null` when absent).
    /// `idempotent`: the request may be resent after a timeout (only say so
    /// when a resend cannot apply twice).
    pub(crate) async fn call_json(
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
    pub(crate) async fn call_json_budgeted(
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
        self.inner.call_field(&spec, "data").await
    }

    /// [`OpenApiClient::call_json_budgeted`] with query parameters (the
    /// Drive APIs take `file_type` in the query).
    pub(crate) async fn call_json_query(
        &self,
        method: Method,
        path: &str,
        query: &[(&'static str, String)],
        body: Option<serde_json::Value>,
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
            budget,
            ..Spec::new(method, path)
        };
        for (k, v) in query {
            spec = spec.query(k, v.clone());
        }
        if let Some(b) = body {
            spec = spec.json(b);
        }
        self.inner.call_field(&spec, "data").await
    }

    /// A POST under `/open-apis/` whose body is `bytes` of `content_type`
    /// (uploads: `multipart/form-data`, built by `uploads`), with the same
    /// token handling, code checks, rate-limit waits and retries as the
    /// typed calls, each attempt waiting for a slot in `budget`. Resent
    /// after a timeout only when `idempotent`. Returns the answer's `data`.
    pub(crate) async fn post_raw_budgeted(
        &self,
        path: &str,
        content_type: &str,
        bytes: bytes::Bytes,
        idempotent: bool,
        timeout: Duration,
        budget: Vec<(String, &'static [Window])>,
    ) -> Result<serde_json::Value, ApiError> {
        if !path.starts_with("/open-apis/") || path.contains("..") || !path.is_ascii() {
            return Err(ApiError::InvalidArgument(format!(
                "not an Open Platform path: {:?}",
                path.chars().take(64).collect::<String>()
            )));
        }
        let spec = Spec {
            idempotent,
            budget,
            timeout: Some(timeout),
            body: Body::Raw {
                content_type: content_type.to_string(),
                bytes,
            },
            ..Spec::new(Method::POST, path)
        };
        self.inner.call_field(&spec, "data").await
    }
}
