//! An in-process stand-in for the OpenAI Responses API, speaking just enough of
//! it (`POST …/responses` answered with SSE) to drive the real `codex` binary
//! through full turns offline.
//!
//! The reply is chosen from keywords in the last user message, mirroring the
//! reference Python mock so that behaviour observed against it carries over:
//! `RUN: <cmd>` (`{OUTBOX}` in it: the outbox folder the prompt names),
//! `RUN_ESCALATED: <cmd>`, `PATCH`, `STALL`, `FAIL`, `TRUNCATE`,
//! `HTTP500`, `REASON`; anything else gets `hi from mock (turn N)`. When the
//! request ends with a tool output the reply is `Command done. Output: …`, which
//! ends the turn. `RUN_TWICE: <cmd>` runs the command, then once more in the
//! same turn (an approval for the session is not asked again).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Default time a `STALL` reply keeps its stream open, as in the reference mock.
pub const DEFAULT_STALL: Duration = Duration::from_secs(600);

/// Environment variable that overrides [`DEFAULT_STALL`] (seconds, may be fractional).
pub const STALL_ENV: &str = "MOCK_STALL_SECONDS";

/// Text of the reasoning summary sent for `REASON`, as in the reference mock.
pub const REASONING_TEXT: &str = "**Thinking** about the mock";

/// The patch sent for `PATCH`; codex applies it relative to the turn cwd.
pub const PATCH_INPUT: &str =
    "*** Begin Patch\n*** Add File: hello.txt\n+hello from mock\n*** End Patch\n";

/// One HTTP request as the mock saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names are lower-case; repeated headers are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The JSON body; a body that is not JSON is kept as a string, an empty one as null.
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Text of the last user message in the request's `input`, the part the
    /// mock matches keywords against.
    pub fn last_user_text(&self) -> Option<String> {
        last_user_text(&self.body)
    }
}

/// Configures a [`MockResponses`] before it starts.
#[derive(Debug, Clone)]
pub struct MockResponsesBuilder {
    port: u16,
    stall: Duration,
    log: Option<PathBuf>,
}

impl Default for MockResponsesBuilder {
    fn default() -> Self {
        Self {
            port: 0,
            stall: stall_from_env().unwrap_or(DEFAULT_STALL),
            log: None,
        }
    }
}

fn stall_from_env() -> Option<Duration> {
    let raw = std::env::var(STALL_ENV).ok()?;
    let secs: f64 = raw.trim().parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

impl MockResponsesBuilder {
    /// Port to bind on 127.0.0.1; 0 (the default) picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// How long a `STALL` reply holds its stream open before closing it.
    pub fn stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }

    /// Also append every request as one JSON line to this file.
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    pub async fn start(self) -> Result<MockResponses> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", self.port))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let log = match &self.log {
            Some(path) => Some(Mutex::new(open_log(path)?)),
            None => None,
        };
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            counter: AtomicU64::new(0),
            stall: self.stall,
            log,
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(MockResponses {
            addr,
            state,
            task: Some(task),
        })
    }
}

fn open_log(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening request log {}", path.display()))
}

/// A running mock server. Dropping it stops the listener and every connection
/// task, including stalled streams.
#[derive(Debug)]
pub struct MockResponses {
    addr: SocketAddr,
    state: Arc<State>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    arrived: Notify,
    counter: AtomicU64,
    stall: Duration,
    log: Option<Mutex<File>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the data usable for a
    // recorder; refusing to serve would only hide the original failure.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn record(&self, request: RecordedRequest) {
        if let Some(log) = &self.log {
            match serde_json::to_string(&request) {
                Ok(line) => {
                    let mut file = lock(log);
                    if let Err(e) = writeln!(file, "{line}").and_then(|()| file.flush()) {
                        eprintln!("mock-responses: writing request log: {e}");
                    }
                }
                Err(e) => eprintln!("mock-responses: serializing request: {e}"),
            }
        }
        lock(&self.requests).push(request);
        self.arrived.notify_waiters();
    }
}

impl MockResponses {
    /// Starts a mock with default settings on a free port.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    pub fn builder() -> MockResponsesBuilder {
        MockResponsesBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The value for a provider's `base_url`: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port())
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Waits until at least `count` requests have arrived.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>> {
        let wait = async {
            loop {
                // Register before checking so a request arriving in between
                // still wakes us.
                let notified = self.state.arrived.notified();
                let seen = self.requests();
                if seen.len() >= count {
                    return seen;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.with_context(|| {
            format!(
                "waited {timeout:?} for {count} requests, saw {}",
                lock(&self.state.requests).len()
            )
        })
    }

    /// Stops the server and waits until its listener is closed.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The only possible error is the cancellation we just asked for.
            let _ = task.await;
        }
    }
}

impl Drop for MockResponses {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Aborting the accept loop drops its JoinSet, which aborts every
            // connection task with it.
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&state)));
                }
                Err(e) => {
                    // Usually EMFILE or a reset before accept; back off instead of spinning.
                    eprintln!("mock-responses: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let service = service_fn(move |req| handle(req, Arc::clone(&state)));
    let result = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        // Clients hanging up mid-stream (codex killed by a test) are expected.
        if !e.is_incomplete_message() && !e.is_canceled() {
            eprintln!("mock-responses: connection error: {e}");
        }
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Body>, Infallible> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            eprintln!("mock-responses: reading request body: {e}");
            return Ok(plain(StatusCode::BAD_REQUEST, "unreadable body\n"));
        }
    };
    let parsed = serde_json::from_slice::<Value>(&raw);
    let body = match &parsed {
        Ok(v) => v.clone(),
        Err(_) if raw.is_empty() => Value::Null,
        Err(_) => Value::String(String::from_utf8_lossy(&raw).into_owned()),
    };
    state.record(RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        headers,
        body,
    });

    if method != "POST" || !path.ends_with("/responses") {
        return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
    }
    let Ok(body) = parsed else {
        return Ok(plain(StatusCode::BAD_REQUEST, "body is not JSON\n"));
    };
    let n = state.counter.fetch_add(1, Ordering::SeqCst) + 1;
    Ok(match plan_reply(&body, n) {
        Reply::Http500 => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": {"message": "mock HTTP 500", "type": "server_error"}}),
        ),
        Reply::Sse { events, stall } => sse(events, stall.then_some(state.stall)),
    })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    headers.insert(
        "connection",
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "connection",
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

/// Formats one SSE event exactly like the reference mock.
pub fn sse_event(data: &Value) -> String {
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    format!("event: {kind}\ndata: {data}\n\n")
}

fn sse(events: Vec<Value>, stall: Option<Duration>) -> Response<Body> {
    let frames = futures::stream::iter(
        events
            .into_iter()
            .map(|event| Ok::<_, Infallible>(Frame::data(Bytes::from(sse_event(&event))))),
    );
    let body = match stall {
        Some(stall) => {
            // Hold the stream open after the frames sent so far, then end it
            // without response.completed. The sleep lives inside the body, so
            // it stalls only this connection's task.
            let hold = futures::stream::once(tokio::time::sleep(stall))
                .filter_map(|()| futures::future::ready(None::<Result<Frame<Bytes>, Infallible>>));
            StreamBody::new(frames.chain(hold)).boxed_unsync()
        }
        None => StreamBody::new(frames).boxed_unsync(),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    headers.insert(
        "connection",
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

enum Reply {
    Http500,
    Sse { events: Vec<Value>, stall: bool },
}

/// The usage every completed mock response reports.
pub fn mock_usage() -> Value {
    json!({
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 3},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 18
    })
}

fn plan_reply(body: &Value, n: u64) -> Reply {
    let resp_id = format!("resp_mock_{n}");
    let created = json!({"type": "response.created", "response": {"id": resp_id}});
    let completed = json!({
        "type": "response.completed",
        "response": {"id": resp_id, "usage": mock_usage()}
    });
    let input = body.get("input").and_then(Value::as_array);

    if let Some(output) = input
        .and_then(|items| items.last())
        .and_then(tool_output_text)
    {
        let mut events = vec![created];
        let outputs = input.map_or(0, |items| {
            items
                .iter()
                .filter(|i| i["type"] == "function_call_output")
                .count()
        });
        if outputs == 1
            && let Some(cmd) = keyword_line(&last_user_text(body).unwrap_or_default(), "RUN_TWICE:")
        {
            events.push(function_call(n, 0, &json!({"cmd": cmd})));
            events.push(completed);
            return Reply::Sse {
                events,
                stall: false,
            };
        }
        events.extend(message_events(
            n,
            0,
            &format!("Command done. Output: {output}"),
        ));
        events.push(completed);
        return Reply::Sse {
            events,
            stall: false,
        };
    }

    let text = last_user_text(body).unwrap_or_default();
    let mut events = vec![created];
    let mut index = 0;
    if text.contains("REASON") {
        events.push(json!({
            "type": "response.output_item.done",
            "output_index": index,
            "item": {
                "type": "reasoning",
                "id": format!("rs_{n}"),
                "summary": [{"type": "summary_text", "text": REASONING_TEXT}],
                "content": null,
                "encrypted_content": null
            }
        }));
        index += 1;
    }

    if let Some(cmd) = keyword_line(&text, "RUN_ESCALATED:") {
        let args = json!({
            "cmd": cmd,
            "sandbox_permissions": "require_escalated",
            "justification": "the mock asks for escalation"
        });
        events.push(function_call(n, index, &args));
    } else if let Some(cmd) = keyword_line(&text, "RUN:") {
        events.push(function_call(n, index, &json!({"cmd": cmd})));
    } else if let Some(cmd) = keyword_line(&text, "RUN_TWICE:") {
        events.push(function_call(n, index, &json!({"cmd": cmd})));
    } else if text.contains("PATCH") {
        events.push(json!({
            "type": "response.output_item.done",
            "output_index": index,
            "item": {
                "type": "custom_tool_call",
                "id": format!("ctc_{n}"),
                "call_id": format!("call_patch_{n}"),
                "name": "apply_patch",
                "input": PATCH_INPUT,
                "status": "completed"
            }
        }));
    } else if text.contains("STALL") {
        return Reply::Sse {
            events,
            stall: true,
        };
    } else if text.contains("TRUNCATE") {
        let msg_id = format!("msg_{n}");
        events.push(json!({
            "type": "response.output_item.added",
            "output_index": index,
            "item": {"type": "message", "role": "assistant", "id": msg_id, "content": []}
        }));
        events.push(json!({
            "type": "response.output_text.delta",
            "item_id": msg_id,
            "output_index": index,
            "content_index": 0,
            "delta": "this stream is cut sh"
        }));
        return Reply::Sse {
            events,
            stall: false,
        };
    } else if text.contains("HTTP500") {
        return Reply::Http500;
    } else if text.contains("FAIL") {
        events.push(json!({
            "type": "response.failed",
            "response": {
                "id": resp_id,
                "error": {"code": "server_error", "message": "mock says the model failed"}
            }
        }));
        return Reply::Sse {
            events,
            stall: false,
        };
    } else {
        events.extend(message_events(
            n,
            index,
            &format!("hi from mock (turn {n})"),
        ));
    }
    events.push(completed);
    Reply::Sse {
        events,
        stall: false,
    }
}

fn function_call(n: u64, index: u64, args: &Value) -> Value {
    json!({
        "type": "response.output_item.done",
        "output_index": index,
        "item": {
            "type": "function_call",
            "id": format!("fc_{n}"),
            "call_id": format!("call_mock_{n}"),
            "name": "exec_command",
            "arguments": args.to_string()
        }
    })
}

fn message_events(n: u64, index: u64, text: &str) -> Vec<Value> {
    let msg_id = format!("msg_{n}");
    let half = text.chars().count() / 2;
    let split = text
        .char_indices()
        .nth(half)
        .map_or(text.len(), |(at, _)| at);
    let (first, second) = text.split_at(split);
    let delta = |d: &str| {
        json!({
            "type": "response.output_text.delta",
            "item_id": msg_id,
            "output_index": index,
            "content_index": 0,
            "delta": d
        })
    };
    vec![
        json!({
            "type": "response.output_item.added",
            "output_index": index,
            "item": {"type": "message", "role": "assistant", "id": msg_id, "content": []}
        }),
        delta(first),
        delta(second),
        json!({
            "type": "response.output_item.done",
            "output_index": index,
            "item": {
                "type": "message",
                "role": "assistant",
                "id": msg_id,
                "content": [{"type": "output_text", "text": text}]
            }
        }),
    ]
}

/// The output text of a `function_call_output` / `custom_tool_call_output` item.
fn tool_output_text(item: &Value) -> Option<String> {
    let kind = item.get("type")?.as_str()?;
    if kind != "function_call_output" && kind != "custom_tool_call_output" {
        return None;
    }
    Some(match item.get("output") {
        Some(Value::String(s)) => s.clone(),
        // Structured outputs carry content parts; their text is what matters.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::Object(obj)) => match obj.get("content") {
            Some(Value::String(s)) => s.clone(),
            _ => Value::Object(obj.clone()).to_string(),
        },
        Some(other) => other.to_string(),
        None => String::new(),
    })
}

fn last_user_text(body: &Value) -> Option<String> {
    let input = body.get("input")?.as_array()?;
    let message = input.iter().rev().find(|item| {
        item.get("role").and_then(Value::as_str) == Some("user")
            && item
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t == "message")
    })?;
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter(|p| {
                    matches!(
                        p.get("type").and_then(Value::as_str),
                        Some("input_text" | "text")
                    )
                })
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

/// The rest of the line after the first `keyword`, trimmed.
fn keyword_line(text: &str, keyword: &str) -> Option<String> {
    let at = text.find(keyword)?;
    let rest = &text[at + keyword.len()..];
    let line = rest.lines().next().unwrap_or("");
    // `{OUTBOX}` in a command is the chat's outbox folder fcx's prompt
    // names, as a model would read it from the instructions.
    Some(line.trim().replace("{OUTBOX}", &crate::outbox_in(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        json!({"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>RUN: no</environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        ]})
    }

    fn types(reply: &Reply) -> Vec<String> {
        match reply {
            Reply::Http500 => vec!["HTTP500".to_owned()],
            Reply::Sse { events, .. } => events
                .iter()
                .map(|e| e["type"].as_str().unwrap_or("?").to_owned())
                .collect(),
        }
    }

    #[test]
    fn default_message_stream() {
        let reply = plan_reply(&user("say hi"), 4);
        assert_eq!(
            types(&reply),
            [
                "response.created",
                "response.output_item.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let Reply::Sse { events, stall } = reply else {
            panic!("expected SSE");
        };
        assert!(!stall);
        assert_eq!(
            events[4]["item"]["content"][0]["text"],
            "hi from mock (turn 4)"
        );
        let joined = format!(
            "{}{}",
            events[2]["delta"].as_str().unwrap_or(""),
            events[3]["delta"].as_str().unwrap_or("")
        );
        assert_eq!(joined, "hi from mock (turn 4)");
        assert_eq!(events[5]["response"]["usage"]["total_tokens"], 18);
    }

    #[test]
    fn run_takes_rest_of_line_from_last_user_message() {
        let Reply::Sse { events, .. } = plan_reply(&user("please\nRUN: echo a && ls  \nthanks"), 2)
        else {
            panic!("expected SSE");
        };
        let item = &events[1]["item"];
        assert_eq!(item["type"], "function_call");
        assert_eq!(item["name"], "exec_command");
        assert_eq!(item["call_id"], "call_mock_2");
        let args: Value =
            serde_json::from_str(item["arguments"].as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(args, json!({"cmd": "echo a && ls"}));
    }

    #[test]
    fn tool_output_ends_turn() {
        let body = json!({"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "RUN: x"}]},
            {"type": "function_call", "call_id": "c"},
            {"type": "function_call_output", "call_id": "c", "output": "out\n"}
        ]});
        let Reply::Sse { events, .. } = plan_reply(&body, 3) else {
            panic!("expected SSE");
        };
        assert_eq!(
            events[4]["item"]["content"][0]["text"],
            "Command done. Output: out\n"
        );
    }

    #[test]
    fn keywords() {
        assert_eq!(types(&plan_reply(&user("HTTP500"), 1)), ["HTTP500"]);
        assert_eq!(
            types(&plan_reply(&user("FAIL"), 1)),
            ["response.created", "response.failed"]
        );
        assert!(matches!(
            plan_reply(&user("STALL"), 1),
            Reply::Sse { stall: true, .. }
        ));
        assert!(
            !types(&plan_reply(&user("TRUNCATE"), 1)).contains(&"response.completed".to_owned())
        );
        let Reply::Sse { events, .. } = plan_reply(&user("PATCH"), 1) else {
            panic!("expected SSE");
        };
        assert_eq!(events[1]["item"]["input"], PATCH_INPUT);
        let Reply::Sse { events, .. } = plan_reply(&user("REASON please"), 1) else {
            panic!("expected SSE");
        };
        assert_eq!(events[1]["item"]["type"], "reasoning");
        assert_eq!(events[2]["output_index"], 1);
    }

    #[test]
    fn malformed_bodies_get_default_reply() {
        for body in [
            json!(null),
            json!({"input": 3}),
            json!({"input": [1, "x", {}]}),
        ] {
            assert_eq!(types(&plan_reply(&body, 1)).len(), 6);
        }
    }
}
