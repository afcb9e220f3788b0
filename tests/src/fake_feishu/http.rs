//! The HTTP side: one hyper server for every Open Platform API plus the
//! long-connection endpoint and the WebSocket upgrade path.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use super::state::{Bound, Exceeded, FaultKind, Shared, lock};
use super::{EndpointRefusal, RecordedCall};

mod cardkit;
mod drive;
mod im;
mod upload;

pub(crate) type Resp = Response<Full<Bytes>>;

// Codes the reference does not pin down. Guess: chosen from the same code
// families so a gateway at least sees a non-zero code of the right module.
pub(crate) const FIELD_VALIDATION: i64 = 99992402;
pub(crate) const IM_INVALID_CONTENT: i64 = 230001;
pub(crate) const IM_MESSAGE_NOT_FOUND: i64 = 230011;
pub(crate) const IM_FREQUENCY: i64 = 230020;
pub(crate) const IM_TOO_LARGE: i64 = 230025;
pub(crate) const IM_CARD_ENTITY_INVALID: i64 = 230099;
pub(crate) const RATE_LIMITED: i64 = 99991400;

/// An answer before it becomes a hyper response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub json: Option<Value>,
    pub raw: Option<(Vec<u8>, &'static str)>,
    pub headers: Vec<(&'static str, String)>,
    /// Which rate limit refused the call, if one did (recorded with it).
    /// Boxed so `Answer`, the error type of many checks, stays small.
    pub rate_limit: Option<Box<str>>,
}

impl Answer {
    pub(super) fn json(status: u16, json: Value) -> Self {
        Self {
            status,
            json: Some(json),
            raw: None,
            headers: Vec::new(),
            rate_limit: None,
        }
    }

    /// `{code:0,msg:"success",data}`.
    pub(super) fn ok(data: Value) -> Self {
        Self::json(200, json!({"code": 0, "msg": "success", "data": data}))
    }

    /// A code-checked failure. Guess: business errors use HTTP 400 (the docs
    /// only promise "HTTP 200/400 with code != 0").
    pub(super) fn err(code: i64, msg: impl Into<String>) -> Self {
        Self::json(
            400,
            json!({"code": code, "msg": msg.into(), "error": {"log_id": "fake"}}),
        )
    }

    pub(super) fn rate_limited(reset_secs: u64, limit: usize) -> Self {
        let mut a = Self::json(
            429,
            json!({"code": RATE_LIMITED, "msg": "request trigger frequency limit"}),
        );
        a.headers.push(("x-ogw-ratelimit-limit", limit.to_string()));
        a.headers
            .push(("x-ogw-ratelimit-reset", reset_secs.to_string()));
        a
    }

    pub(super) fn frequency() -> Self {
        Self::err(
            IM_FREQUENCY,
            "This operation triggers the frequency limit, please try again later.",
        )
    }

    /// The platform-wide refusal for a full window: HTTP 429, 99991400,
    /// `x-ogw-ratelimit-limit` = the window's limit and
    /// `x-ogw-ratelimit-reset` = whole seconds until it admits again
    /// (reference §3.9; rounded up so waiting that long always suffices).
    pub(super) fn over_limit(e: &Exceeded) -> Self {
        let reset = e.retry_after.as_millis().div_ceil(1000).max(1);
        let mut a = Self::rate_limited(u64::try_from(reset).unwrap_or(u64::MAX), e.bound.limit);
        a.rate_limit = Some(e.bound.label().into());
        a
    }

    /// The IM per-user / per-group refusal (230020, reference §3.9).
    pub(super) fn over_frequency(e: &Exceeded) -> Self {
        let mut a = Self::frequency();
        a.rate_limit = Some(e.bound.label().into());
        a
    }

    pub(super) fn bytes(data: Vec<u8>, content_type: &'static str) -> Self {
        Self {
            status: 200,
            json: None,
            raw: Some((data, content_type)),
            headers: Vec::new(),
            rate_limit: None,
        }
    }

    pub(super) fn text(status: u16, text: &str) -> Self {
        Self {
            status,
            json: None,
            raw: Some((text.as_bytes().to_vec(), "text/plain; charset=utf-8")),
            headers: Vec::new(),
            rate_limit: None,
        }
    }

    fn into_response(self, log_id: &str) -> Resp {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (body, ctype) = match (self.json, self.raw) {
            (Some(v), _) => (
                v.to_string().into_bytes(),
                "application/json; charset=utf-8",
            ),
            (None, Some((b, t))) => (b, t),
            (None, None) => (Vec::new(), "text/plain"),
        };
        let mut builder = Response::builder()
            .status(status)
            .header("content-type", ctype)
            .header("x-tt-logid", log_id);
        for (k, v) in self.headers {
            builder = builder.header(k, v);
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

/// A request with its body read.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    /// The body as received (multipart uploads are read from it).
    pub raw: Bytes,
}

impl Req {
    pub(super) fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let s = Arc::clone(&shared);
                shared.spawn(serve_connection(stream, s));
            }
            Err(e) => {
                // Usually EMFILE; back off instead of spinning.
                eprintln!("fake-feishu: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |req| handle(req, Arc::clone(&shared)));
    let result = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(e) = result
        && !e.is_incomplete_message()
        && !e.is_canceled()
    {
        eprintln!("fake-feishu: connection error: {e}");
    }
}

pub(crate) fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header_map(h: &hyper::HeaderMap) -> BTreeMap<String, String> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in h {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    headers
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Resp, Infallible> {
    let log_id = shared.new_id("2024");
    if req.uri().path() == "/ws" {
        return Ok(super::ws::upgrade(req, &shared));
    }
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query());
    let headers = header_map(req.headers());
    let raw = match req.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let multipart = headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("multipart/"));
    let body = match serde_json::from_slice::<Value>(&raw) {
        Ok(v) => v,
        Err(_) if raw.is_empty() => Value::Null,
        // Uploads are recorded by size; their bytes are in the fake's uploads.
        Err(_) if multipart => json!({ "multipart_bytes": raw.len() }),
        Err(_) => Value::String(String::from_utf8_lossy(&raw).into_owned()),
    };
    let r = Req {
        method,
        path,
        query,
        headers,
        body,
        raw,
    };

    let received_unix_ns = super::state::unix_ns();
    let fault = lock(&shared.inner).faults.take(&r.path);
    let answer = match fault {
        Some(FaultKind::Status(s)) => Answer::text(s, "upstream error"),
        Some(FaultKind::RateLimit(reset)) => {
            let mut a = Answer::rate_limited(reset, super::APP_API_QPS);
            a.rate_limit = Some("injected: rate_limit_storm".into());
            a
        }
        Some(FaultKind::Frequency) => {
            let mut a = Answer::frequency();
            a.rate_limit = Some("injected: frequency_limit_next".into());
            a
        }
        Some(FaultKind::Code(code)) => Answer::err(code, "injected failure"),
        Some(FaultKind::Delay(d)) => {
            tokio::time::sleep(d).await;
            route(&shared, &r)
        }
        None => route(&shared, &r),
    };
    let late = lock(&shared.inner)
        .faults
        .take_late(r.method.as_str(), &r.path);
    if let Some(d) = late {
        shared.bump();
        tokio::time::sleep(d).await;
    }
    let (response_json, status) = (answer.json.clone().unwrap_or(Value::Null), answer.status);
    lock(&shared.inner).calls.push(RecordedCall {
        method: r.method,
        path: r.path,
        query: r.query,
        headers: r.headers,
        body: r.body,
        status,
        response: response_json,
        received_unix_ns,
        rate_limit: answer.rate_limit.as_deref().map(str::to_owned),
    });
    shared.bump();
    Ok(answer.into_response(&log_id))
}

/// Per API × app limits of IM send/reply and every CardKit API: 50/s and
/// 1000/min (reference §3.7 "each CardKit API 1000/min & 50/s per app",
/// §3.9 "IM send/reply: 1000/min & 50/s per app"; "hitting either the
/// per-second or per-minute bound triggers").
pub(crate) fn app_limit(shared: &Shared, api: &str) -> Result<(), Answer> {
    lock(&shared.inner)
        .admit_all(&app_bounds(api))
        .map_err(|e| Answer::over_limit(&e))
}

pub(crate) fn app_bounds(api: &str) -> [Bound; 2] {
    let name = format!("app:{api}");
    [
        Bound::per_second(name.clone(), super::APP_API_QPS),
        Bound::per_minute(name, super::APP_API_PER_MINUTE),
    ]
}

/// Checks `Authorization: Bearer <tenant_access_token>`.
pub(crate) fn auth(shared: &Shared, r: &Req) -> Result<(), Answer> {
    const MSG: &str =
        "Invalid access token for authorization. Please make a request with token attached.";
    let Some(h) = r.headers.get("authorization") else {
        return Err(Answer::err(
            99991661,
            "Missing access token for authorization. Please make a request with token attached.",
        ));
    };
    let Some(tok) = h.strip_prefix("Bearer ") else {
        return Err(Answer::err(99991671, MSG));
    };
    // Guess: a value that is not shaped like a tenant token is a format
    // error (99991671), a well-formed but unknown/expired one 99991663.
    if !tok.starts_with("t-") {
        return Err(Answer::err(99991671, MSG));
    }
    let inner = lock(&shared.inner);
    match inner.tokens.get(tok) {
        Some(exp) if *exp > std::time::Instant::now() => Ok(()),
        _ => Err(Answer::err(99991663, MSG)),
    }
}

fn route(shared: &Arc<Shared>, r: &Req) -> Answer {
    let segs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let m = r.method.as_str();
    match (m, segs.as_slice()) {
        ("POST", ["open-apis", "auth", "v3", "tenant_access_token", "internal"]) => {
            tenant_token(shared, r)
        }
        ("POST", ["callback", "ws", "endpoint"]) => endpoint(shared, r),
        (_, ["open-apis", ..]) => {
            if let Err(a) = auth(shared, r) {
                return a;
            }
            match segs.as_slice() {
                ["open-apis", "bot", "v3", "info"] if m == "GET" => bot_info(shared),
                ["open-apis", "application", "v6", "scopes"] if m == "GET" => scopes(shared),
                ["open-apis", "application", "v6", "applications", app] if m == "GET" => {
                    app_info(shared, app)
                }
                ["open-apis", "im", "v1", what @ ("images" | "files")] if m == "POST" => {
                    upload::route(shared, r, what)
                }
                ["open-apis", "im", "v1", rest @ ..] => im::route(shared, r, m, rest),
                ["open-apis", "cardkit", "v1", rest @ ..] => cardkit::route(shared, r, m, rest),
                ["open-apis", "interactive", "v1", "card", "update"] if m == "POST" => {
                    cardkit::delayed_update(shared, r)
                }
                [
                    "open-apis",
                    "drive",
                    "v1",
                    "files",
                    file,
                    "comments",
                    rest @ ..,
                ] => drive::route(shared, r, m, file, rest),
                ["open-apis", "drive", "v1", "metas", "batch_query"] if m == "POST" => {
                    drive::metas(shared, r)
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// Guess: unknown routes answer the gateway's plain 404 page.
pub(crate) fn not_found() -> Answer {
    Answer::text(404, "404 page not found")
}

fn tenant_token(shared: &Shared, r: &Req) -> Answer {
    let app_id = r.body.get("app_id").and_then(Value::as_str);
    let secret = r.body.get("app_secret").and_then(Value::as_str);
    // Guess: 10003 for an unknown app_id, 10014 for a wrong secret (as the
    // platform's auth module numbers them); HTTP 400.
    if app_id != Some(shared.cfg.app_id.as_str()) {
        return Answer::json(400, json!({"code": 10003, "msg": "invalid param"}));
    }
    if secret != Some(shared.cfg.app_secret.as_str()) {
        return Answer::json(400, json!({"code": 10014, "msg": "app secret invalid"}));
    }
    let tok = shared.issue_token();
    let expire = lock(&shared.inner).tokens.get(&tok).map_or(7200, |exp| {
        // Round up so a fresh token reports the full 7200.
        exp.saturating_duration_since(std::time::Instant::now())
            .as_millis()
            .div_ceil(1000)
    });
    Answer::json(
        200,
        json!({"code": 0, "msg": "ok", "tenant_access_token": tok, "expire": expire}),
    )
}

fn bot_info(shared: &Shared) -> Answer {
    Answer::json(
        200,
        json!({"code": 0, "msg": "ok", "bot": {
            "activate_status": 2,
            "app_name": shared.cfg.bot_name,
            "avatar_url": "https://s1-imfile.feishucdn.com/static-resource/v1/fake_avatar",
            "ip_white_list": [],
            "open_id": shared.cfg.bot_open_id,
        }}),
    )
}

/// `GET /open-apis/application/v6/applications/{app_id|me}` (owner fields
/// per the official Go SDK model: `data.app.owner.owner_id`,
/// `data.app.creator_id`). Without a configured owner it answers the way an
/// app without the `application:application:self_manage` scope is refused
/// (code 99991672 "Access denied"; the exact code is a guess).
fn app_info(shared: &Shared, app: &str) -> Answer {
    if app != "me" && app != shared.cfg.app_id {
        return Answer::json(
            400,
            json!({"code": 99991672, "msg": "Access denied.", "data": {}}),
        );
    }
    match &shared.cfg.app_owner {
        Some(owner) => Answer::json(
            200,
            json!({"code": 0, "msg": "success", "data": {"app": {
                "app_id": shared.cfg.app_id,
                "creator_id": owner,
                "status": 1,
                "scene_type": 0,
                "app_name": shared.cfg.bot_name,
                "owner": {"type": 2, "owner_id": owner},
            }}}),
        ),
        None => Answer::json(
            400,
            json!({"code": 99991672, "msg": "Access denied. One of the following scopes is required: [application:application:self_manage, admin:app.info:readonly].", "data": {}}),
        ),
    }
}

/// `GET /open-apis/application/v6/scopes` ("查询租户授权状态"): the scopes the
/// app asks for, `grant_status` 1 granted, 2 not granted.
fn scopes(shared: &Shared) -> Answer {
    let scopes: Vec<Value> = shared
        .cfg
        .scopes
        .iter()
        .map(|(name, granted)| {
            json!({"scope_name": name, "grant_status": if *granted { 1 } else { 2 }})
        })
        .collect();
    Answer::ok(json!({ "scopes": scopes }))
}

fn endpoint(shared: &Shared, r: &Req) -> Answer {
    let refusal = lock(&shared.inner).faults.endpoint.pop_front();
    match refusal {
        Some(EndpointRefusal::Http500) => return Answer::text(500, "Internal Server Error"),
        Some(EndpointRefusal::SystemBusy) => {
            return Answer::json(200, json!({"code": 1, "msg": "system busy", "data": null}));
        }
        Some(EndpointRefusal::InternalError) => {
            return Answer::json(
                200,
                json!({"code": 1000040343, "msg": "internal error", "data": null}),
            );
        }
        Some(EndpointRefusal::Code(c)) => {
            return Answer::json(200, json!({"code": c, "msg": "refused", "data": null}));
        }
        None => {}
    }
    let id = r.body.get("AppID").and_then(Value::as_str);
    let secret = r.body.get("AppSecret").and_then(Value::as_str);
    if id != Some(shared.cfg.app_id.as_str()) || secret != Some(shared.cfg.app_secret.as_str()) {
        // Guess: the auth module's "app secret invalid"; any code other than
        // 1 / 1000040343 is fatal for the SDKs, which is what matters.
        return Answer::json(
            200,
            json!({"code": 10014, "msg": "app secret invalid", "data": null}),
        );
    }
    let ticket = shared.new_id("");
    let device_id = 7_400_000_000_000_000_000u64 + shared.next();
    let service_id = super::ws::SERVICE_ID;
    lock(&shared.inner)
        .tickets
        .insert(ticket.clone(), std::time::Instant::now());
    let url = format!(
        "ws://{}/ws?fpid=493&aid=552564&device_id={device_id}&access_key={}&service_id={service_id}&ticket={ticket}",
        shared.addr,
        shared.new_id("")
    );
    Answer::json(
        200,
        json!({"code": 0, "msg": "ok", "data": {
            "URL": url,
            "ClientConfig": shared.cfg.client_config,
        }}),
    )
}
