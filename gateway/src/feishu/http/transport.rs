//! The transport under every call: the tenant token (cached, refreshed
//! single-flight, retried once when rejected), one request on the wire, and
//! the retry loop (rate limits, 5xx, connect errors) with its budget waits.

use super::*;

impl Transport {
    /// The cached token, fetching a new one when absent, near expiry, or
    /// equal to `rejected` (the platform said it is invalid).
    async fn token(&self, rejected: Option<&Token>) -> Result<Token, ApiError> {
        let mut slot = self.token.lock().await;
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
            "app_id": self.app_id,
            "app_secret": self.app_secret.expose(),
        }));
        let v = match Box::pin(self.call(&spec)).await? {
            Answer::Json(v) => v,
            Answer::Bytes(_) => return Err(decode_err(TOKEN_PATH, "binary answer", None)),
        };
        #[derive(Deserialize)]
        struct TokenResp {
            tenant_access_token: String,
            expire: u64,
        }
        let t: TokenResp =
            serde_json::from_value(v).map_err(|e| decode_err(TOKEN_PATH, &e.to_string(), None))?;
        if t.tenant_access_token.is_empty() {
            return Err(decode_err(TOKEN_PATH, "empty token", None));
        }
        let life = Duration::from_secs(t.expire);
        let refresh_in = life.saturating_sub(self.policy.token_refresh_margin);
        tracing::debug!(expire_s = t.expire, "tenant access token refreshed");
        let token = Token(t.tenant_access_token);
        *slot = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + refresh_in,
        });
        Ok(token)
    }

    async fn send_once(&self, spec: &Spec, token: Option<&Token>) -> Result<Raw, reqwest::Error> {
        let url = format!("{}{}", self.base_url, spec.path);
        let content_type = match &spec.body {
            Body::Raw { content_type, .. } => content_type.as_str(),
            _ => "application/json; charset=utf-8",
        };
        let mut rb = self
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
            _ => self.policy.max_json_bytes as u64,
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
        let p = &self.policy;
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
    pub(super) async fn call(&self, spec: &Spec) -> Result<Answer, ApiError> {
        let path = spec.path.as_str();
        let p = &self.policy;
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
                self.budget.acquire(&keys).await;
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
                crate::metrics::feishu_api_error(&self.app_id, c);
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
                    return Err(decode_err(path, "answer has no business code", raw.log_id));
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
                None => Err(decode_err(path, "not JSON", raw.log_id)),
            };
        }
    }

    /// Calls and deserializes `field` of the answer (`data` for most APIs).
    pub(super) async fn call_field<T: DeserializeOwned>(
        &self,
        spec: &Spec,
        field: &str,
    ) -> Result<T, ApiError> {
        let Answer::Json(mut v) = self.call(spec).await? else {
            return Err(decode_err(&spec.path, "binary answer", None));
        };
        let inner = v
            .get_mut(field)
            .map(serde_json::Value::take)
            .unwrap_or(serde_json::Value::Null);
        serde_json::from_value(inner)
            .map_err(|e| decode_err(&spec.path, &format!("`{field}`: {e}"), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let policy = RetryPolicy {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        let client = OpenApiClient::new(
            "http://127.0.0.1:9",
            "cli_0123456789abcdef",
            Secret::new("s3cr3t-value"),
            policy,
        )
        .expect("client");
        for (attempt, full) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            for _ in 0..20 {
                let d = client.inner.backoff(attempt).as_millis() as u64;
                assert!((full / 2..=full).contains(&d), "attempt {attempt}: {d} ms");
            }
        }
    }
}
