//! `fake-codex app-server`: the same scenarios as `exec --json`, spoken as
//! `codex app-server` 0.169.0 speaks (codex.md §5): newline-delimited
//! JSON-RPC on stdio, server messages without `"jsonrpc"`, notifications
//! with `emittedAtMs`, `initialize`/`initialized` first, then
//! `thread/start|resume`, `turn/start`, `turn/steer`, `turn/interrupt`,
//! `thread/list`.
//!
//! A scenario's exec events become the app-server notifications the real
//! server sends for the same turn (`item.completed` of a `command_execution`
//! → `item/commandExecution/outputDelta` + `item/completed` of a
//! `commandExecution`, `agent_message` → `item/started`, one
//! `item/agentMessage/delta`, `item/completed`, `turn_completed` →
//! `thread/tokenUsage/updated` + `turn/completed`, `turn.failed` → an
//! `error` notification + a failed `turn/completed` …). What differs from
//! exec, as in the real binary:
//! - the process outlives its turn: it ends on stdin EOF or SIGTERM (exit
//!   0, killing the commands in its process group), and dies by SIGINT;
//! - `turn/interrupt` ends the turn (`turn/completed` "interrupted", no
//!   `item/completed` for what was running) and kills its commands;
//! - `{"exit": N}` before the turn ended is a crash (the process exits with
//!   N); after it, it only ends the scenario;
//! - `{"ignore_sigint": true}` makes the server deaf to `turn/interrupt` and
//!   stdin EOF (a hung server), so only signals stop it.
//!
//! The invocation record is written when a thread is started or resumed and
//! again at `turn/start` (the prompt) and each `turn/steer` (`steers`), with
//! the thread's settings in `args` (sandbox, cwd as `cd`, model, images,
//! config as `configs`), so tests read it as they read an exec record. A
//! child that only lists threads leaves no record. A child that serves
//! another turn (kept between runs) writes a new record for it, marked
//! `"warm": true` when the turn continues the loaded thread without a
//! `thread/start|resume` (its `resume_id` is that thread).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use super::*;

const NOT_INITIALIZED: &str = "Not initialized";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn send(v: &Value) {
    stdout_line(&v.to_string());
}

pub(super) fn notify(method: &str, params: Value) {
    send(&json!({"method": method, "params": params, "emittedAtMs": now_ms()}));
}

fn respond(id: &Value, result: Value) {
    send(&json!({"id": id, "result": result}));
}

fn respond_error(id: &Value, message: &str) {
    send(&json!({"error": {"code": -32600, "message": message}, "id": id}));
}

/// The settings a thread runs with, from `thread/start|resume`.
#[derive(Debug, Clone, Default)]
struct ThreadSettings {
    cwd: Option<String>,
    sandbox: Option<String>,
    approval: Option<String>,
    model: Option<String>,
    configs: Vec<String>,
}

impl ThreadSettings {
    fn from(params: &Value) -> Self {
        let s = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
        let config = params.get("config").and_then(Value::as_object);
        let configs = config
            .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        ThreadSettings {
            cwd: s("cwd"),
            sandbox: s("sandbox").or_else(|| config.and_then(super::permissions::from_config)),
            approval: s("approvalPolicy"),
            model: s("model"),
            configs,
        }
    }

    fn sandbox_policy(&self) -> Value {
        match self.sandbox.as_deref().unwrap_or("read-only") {
            "danger-full-access" => json!({"type": "dangerFullAccess"}),
            "workspace-write" => json!({
                "type": "workspaceWrite", "writableRoots": [], "networkAccess": false,
                "excludeTmpdirEnvVar": false, "excludeSlashTmp": false
            }),
            _ => json!({"type": "readOnly", "networkAccess": false}),
        }
    }
}

/// What the turn in progress shares with the request loop.
#[derive(Debug, Default)]
struct TurnShared {
    /// Set once the scenario sent `turn/completed`.
    over: bool,
    steers: Vec<String>,
}

/// One `turn/start`: ids, and what the scenario emits through.
#[derive(Debug, Clone)]
pub(super) struct AppTurn {
    pub(super) thread_id: String,
    pub(super) turn_id: String,
    pub(super) cwd: String,
    started_ms: u64,
    shared: Rc<RefCell<TurnShared>>,
}

impl AppTurn {
    fn turn_json(&self, status: &str, error: Value) -> Value {
        let done = status != "inProgress";
        let now = now_ms();
        json!({
            "id": self.turn_id, "rootTurnId": self.turn_id, "items": [],
            "itemsView": "notLoaded", "status": status, "error": error,
            "startedAt": self.started_ms / 1000,
            "completedAt": done.then_some(now / 1000),
            "durationMs": done.then_some(now.saturating_sub(self.started_ms)),
        })
    }

    fn status_changed(&self, status: Value) {
        notify(
            "thread/status/changed",
            json!({"threadId": self.thread_id, "status": status}),
        );
    }

    pub(super) fn is_over(&self) -> bool {
        self.shared.borrow().over
    }

    /// `turn/completed` (after the thread went idle), once.
    fn complete(&self, status: &str, error: Value) {
        if std::mem::replace(&mut self.shared.borrow_mut().over, true) {
            return;
        }
        let idle = if status == "failed" {
            json!({"type": "systemError"})
        } else {
            json!({"type": "idle"})
        };
        self.status_changed(idle);
        notify(
            "turn/completed",
            json!({"threadId": self.thread_id, "turn": self.turn_json(status, error)}),
        );
    }

    fn item_params(&self, item: Value, completed: bool) -> Value {
        let at = if completed {
            "completedAtMs"
        } else {
            "startedAtMs"
        };
        json!({"item": item, "threadId": self.thread_id, "turnId": self.turn_id, at: now_ms()})
    }

    pub(super) fn item(&self, item: Value, completed: bool) {
        let method = if completed {
            "item/completed"
        } else {
            "item/started"
        };
        notify(method, self.item_params(item, completed));
    }

    fn delta(&self, method: &str, item_id: &str, delta: &str) {
        notify(
            method,
            json!({"threadId": self.thread_id, "turnId": self.turn_id, "itemId": item_id, "delta": delta}),
        );
    }

    pub(super) fn agent_message(&self, id: &str, text: &str) {
        let item = |t: &str| {
            json!({"type": "agentMessage", "moderation": null, "id": id, "text": t, "phase": null,
                   "memoryCitation": null, "delivery": null, "questions": null})
        };
        self.item(item(""), false);
        if !text.is_empty() {
            self.delta("item/agentMessage/delta", id, text);
        }
        self.item(item(text), true);
    }

    pub(super) fn usage(&self, total: Usage) {
        let u = |u: &Usage| {
            json!({"totalTokens": u.input_tokens + u.output_tokens, "inputTokens": u.input_tokens,
                   "cachedInputTokens": u.cached_input_tokens, "cacheWriteInputTokens": 0,
                   "outputTokens": u.output_tokens, "reasoningOutputTokens": u.reasoning_output_tokens})
        };
        notify(
            "thread/tokenUsage/updated",
            json!({"threadId": self.thread_id, "turnId": self.turn_id, "tokenUsage": {
                "total": u(&total), "last": u(&TURN_USAGE), "modelContextWindow": 258_400
            }}),
        );
    }

    pub(super) fn completed(&self) {
        self.complete("completed", Value::Null);
    }

    fn error_json(message: &str) -> Value {
        json!({"message": message, "codexErrorInfo": "other", "additionalDetails": null, "misalignment": null})
    }

    pub(super) fn failed(&self, message: &str) {
        self.complete("failed", Self::error_json(message));
    }

    pub(super) fn interrupted(&self) {
        self.complete("interrupted", Value::Null);
    }

    /// An exec event of a scenario, as the notifications app-server sends
    /// for the same thing.
    pub(super) fn exec_event(&self, ev: &Value) {
        let kind = ev.get("type").and_then(Value::as_str);
        match kind {
            Some("thread.started" | "turn.started") => {}
            Some("item.started" | "item.completed") => {
                let completed = kind == Some("item.completed");
                if let Some(item) = ev.get("item") {
                    self.exec_item(item, completed);
                }
            }
            Some("item.updated") => {}
            Some("error") => {
                let message = ev.get("message").and_then(Value::as_str).unwrap_or("");
                notify(
                    "error",
                    json!({"error": Self::error_json(message), "willRetry": false,
                           "threadId": self.thread_id, "turnId": self.turn_id}),
                );
            }
            Some("turn.failed") => {
                let message = ev
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                self.failed(message);
            }
            Some("turn.completed") => self.completed(),
            // Unknown events become unknown methods; what is not an event
            // at all (no type, an array) goes out as it is: garbage stays
            // garbage.
            Some(other) => notify(&other.replace('.', "/"), ev.clone()),
            None => send(ev),
        }
    }

    fn exec_item(&self, item: &Value, completed: bool) {
        let s = |k: &str| item.get(k).cloned().unwrap_or(Value::Null);
        let id = item.get("id").and_then(Value::as_str).unwrap_or("");
        let status = match item.get("status").and_then(Value::as_str) {
            Some("in_progress") | None => "inProgress",
            Some(other) => other,
        };
        let mapped = match item.get("type").and_then(Value::as_str) {
            Some("agent_message") => {
                if completed {
                    let text = item.get("text").and_then(Value::as_str).unwrap_or("");
                    self.agent_message(id, text);
                }
                return;
            }
            Some("reasoning") => {
                let text = item.get("text").and_then(Value::as_str).unwrap_or("");
                json!({"type": "reasoning", "id": id, "summary": [text], "content": []})
            }
            Some("error") => {
                if completed {
                    notify(
                        "warning",
                        json!({"threadId": self.thread_id, "message": s("message")}),
                    );
                }
                return;
            }
            Some("command_execution") => {
                let output = item
                    .get("aggregated_output")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if completed && !output.is_empty() {
                    self.delta("item/commandExecution/outputDelta", id, output);
                }
                let command = item.get("command").and_then(Value::as_str).unwrap_or("");
                json!({"type": "commandExecution", "id": id, "pluginId": null, "scriptPath": null,
                       "command": command, "cwd": self.cwd, "processId": null, "source": "agent",
                       "status": status, "commandActions": [{"type": "unknown", "command": command}],
                       "aggregatedOutput": if completed { json!(output) } else { Value::Null },
                       "exitCode": s("exit_code"), "durationMs": completed.then_some(1)})
            }
            Some("file_change") => {
                let changes: Vec<Value> = item
                    .get("changes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|c| json!({"path": c.get("path"), "kind": {"type": c.get("kind")}, "diff": ""}))
                    .collect();
                json!({"type": "fileChange", "id": id, "changes": changes, "status": status})
            }
            Some("mcp_tool_call") => {
                json!({"type": "mcpToolCall", "id": id, "server": s("server"), "tool": s("tool"),
                       "status": status, "arguments": s("arguments"), "result": s("result"),
                       "error": s("error"), "durationMs": null})
            }
            Some("web_search") => {
                json!({"type": "webSearch", "id": id, "query": s("query"), "action": null})
            }
            Some("todo_list") => {
                json!({"type": "plan", "id": id, "text": s("items").to_string()})
            }
            // Unknown item types keep their name and fields.
            _ => item.clone(),
        };
        self.item(mapped, completed);
    }
}

/// The text and images of a `turn/start` or `turn/steer` input.
fn input_of(params: &Value) -> (String, Vec<String>) {
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for part in params
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => texts.push(part.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("localImage") => {
                if let Some(p) = part.get("path").and_then(Value::as_str) {
                    images.push(p.to_owned());
                }
            }
            Some("image") => {
                if let Some(u) = part.get("url").and_then(Value::as_str) {
                    images.push(u.to_owned());
                }
            }
            _ => {}
        }
    }
    (texts.join("\n"), images)
}

/// Everything the server remembers between messages.
struct Server {
    argv: Vec<String>,
    start_cwd: String,
    initialized: bool,
    /// Threads loaded in this process, with their settings.
    threads: BTreeMap<String, (ThreadSettings, Option<String>)>,
    /// The record of the current thread/turn (`Cli` fields).
    cli: Cli,
    prompt: Option<String>,
    turn: Option<AppTurn>,
    /// Set by `ignore_sigint`: `turn/interrupt` and stdin EOF do nothing.
    deaf: &'static AtomicBool,
    /// The current record holds a turn: what comes next gets a new one.
    turn_recorded: bool,
    /// A thread was opened since the last turn.
    thread_opened: bool,
    /// This turn continues the loaded thread without opening it.
    warm: bool,
}

type TurnFuture = Pin<Box<dyn Future<Output = TurnEnd>>>;

/// How a scenario's run ended.
enum TurnEnd {
    /// The steps ran out or an `exit` came after the turn was over.
    Done,
    /// `exit` while the turn was in progress: the process dies.
    Crash(i32),
}

impl Server {
    fn record(&self) {
        let mut record_cli = Cli {
            configs: self.cli.configs.clone(),
            model: self.cli.model.clone(),
            sandbox: self.cli.sandbox.clone(),
            cd: self.cli.cd.clone(),
            images: self.cli.images.clone(),
            resume: self.cli.resume.clone(),
            ..Cli::default()
        };
        record_cli.prompt = self.prompt.clone();
        let steers = self
            .turn
            .as_ref()
            .map(|t| t.shared.borrow().steers.clone())
            .unwrap_or_default();
        write_record_with(
            &record_cli,
            &self.argv,
            &self.start_cwd,
            self.prompt.as_deref(),
            &[("steers", json!(steers)), ("warm", json!(self.warm))],
        );
    }

    /// What comes now is another turn: a record of its own.
    fn next_record(&mut self) {
        if std::mem::take(&mut self.turn_recorded) {
            RECORD_SEQ.fetch_add(1, Ordering::SeqCst);
            self.prompt = None;
            self.warm = false;
        }
    }

    fn thread_response(&self, thread_id: &str, st: &ThreadSettings, preview: &str) -> Value {
        let cwd = st.cwd.clone().unwrap_or_else(|| self.start_cwd.clone());
        let created = now_ms() / 1000;
        let model = st.model.clone().unwrap_or_else(|| "gpt-5.5".into());
        let thread = json!({
            "id": thread_id, "environments": [{"environmentId": "local", "cwd": cwd, "runtimeWorkspaceRoots": [cwd]}],
            "extra": null, "sessionId": thread_id, "forkedFromId": null, "attachedToThreadId": null,
            "parentThreadId": null, "preview": preview, "ephemeral": false, "section": null,
            "sectionEnteredAt": null, "projectId": null, "historyMode": "paginated",
            "modelProvider": "mock", "model": model, "reasoningEffort": null, "createdAt": created,
            "updatedAt": created, "recencyAt": created, "status": {"type": "idle"}, "path": null,
            "cwd": cwd, "cliVersion": "0.169.0", "originator": "fcx", "source": "vscode",
            "canAcceptDirectInput": true, "threadSource": null, "agentNickname": null,
            "agentRole": null, "gitInfo": null, "name": null, "daybreakEnabled": null, "turns": []
        });
        json!({
            "thread": thread, "model": model, "modelProvider": "mock", "serviceTier": null,
            "disabledPluginIds": [], "cwd": cwd, "runtimeWorkspaceRoots": [cwd], "instructionSources": [],
            "approvalPolicy": st.approval.clone().unwrap_or_else(|| "on-request".into()),
            "approvalsReviewer": "user", "sandbox": st.sandbox_policy(),
            "activePermissionProfile": null, "reasoningEffort": null, "multiAgentMode": "explicitRequestOnly"
        })
    }

    /// `thread/start` or `thread/resume`.
    fn open_thread(&mut self, id: &Value, params: &Value, resume: bool) {
        self.next_record();
        self.thread_opened = true;
        let st = ThreadSettings::from(params);
        let thread_id = if resume {
            let Some(tid) = params.get("threadId").and_then(Value::as_str) else {
                respond_error(id, "Invalid request: missing field `threadId`");
                return;
            };
            if tid.starts_with("missing-") {
                respond_error(id, &format!("no rollout found for thread id {tid}"));
                return;
            }
            tid.to_owned()
        } else {
            new_thread_id()
        };
        let mut state = load_thread(&thread_id);
        state.cwd = st.cwd.clone().or(state.cwd);
        save_thread(&state);
        self.cli = Cli {
            configs: st.configs.clone(),
            model: st.model.clone(),
            sandbox: st.sandbox.clone(),
            cd: st.cwd.clone(),
            resume: resume.then(|| thread_id.clone()),
            ..Cli::default()
        };
        self.prompt = None;
        let response =
            self.thread_response(&thread_id, &st, &state.preview.clone().unwrap_or_default());
        self.threads
            .insert(thread_id.clone(), (st, state.preview.clone()));
        self.record();
        respond(id, response.clone());
        if resume {
            notify("thread/goal/cleared", json!({"threadId": thread_id}));
        } else {
            notify("thread/started", json!({"thread": response["thread"]}));
        }
    }

    fn turn_start(&mut self, id: &Value, params: &Value) -> Option<TurnFuture> {
        let thread_id = params.get("threadId").and_then(Value::as_str).unwrap_or("");
        let Some((st, _)) = self.threads.get(thread_id).cloned() else {
            respond_error(id, &format!("thread not found: {thread_id}"));
            return None;
        };
        if self.turn.as_ref().is_some_and(|t| !t.is_over()) {
            respond_error(id, "a turn is already in progress");
            return None;
        }
        self.next_record();
        if !std::mem::replace(&mut self.thread_opened, false) {
            self.warm = true;
            self.cli.resume = Some(thread_id.to_owned());
        }
        self.turn_recorded = true;
        let (text, images) = input_of(params);
        let cwd = st.cwd.clone().unwrap_or_else(|| self.start_cwd.clone());
        let turn = AppTurn {
            thread_id: thread_id.to_owned(),
            turn_id: new_thread_id(),
            cwd: cwd.clone(),
            started_ms: now_ms(),
            shared: Rc::default(),
        };
        self.cli.images = images;
        self.prompt = Some(text.clone());
        self.turn = Some(turn.clone());
        self.record();
        respond(
            id,
            json!({"turn": {"id": turn.turn_id, "rootTurnId": turn.turn_id, "items": [], "itemsView": "notLoaded",
                   "status": "inProgress", "error": null, "startedAt": null, "completedAt": null, "durationMs": null}}),
        );
        turn.status_changed(json!({"type": "active", "activeFlags": []}));
        notify(
            "turn/started",
            json!({"threadId": turn.thread_id, "turn": turn.turn_json("inProgress", Value::Null)}),
        );
        let user = json!({"type": "userMessage", "id": new_thread_id(), "clientId": null,
                          "content": params.get("input").cloned().unwrap_or(Value::Null)});
        turn.item(user.clone(), false);
        turn.item(user, true);

        let mut thread = load_thread(thread_id);
        if thread.preview.is_none() {
            thread.preview = Some(text.chars().take(100).collect());
            save_thread(&thread);
        }
        let name = scenario_name(&text).unwrap_or("hello").to_owned();
        let steps = match load_scenario(&name) {
            Ok(steps) => steps,
            Err(msg) => {
                stderr_line(&format!("fake-codex: {msg}"));
                let t = turn.clone();
                return Some(Box::pin(async move {
                    t.failed(&msg);
                    TurnEnd::Done
                }));
            }
        };
        let mut runner = Runner {
            turn: thread.turns + 1,
            thread,
            cwd,
            next_item: 0,
            last_message: None,
            ignore_sigint: self.deaf,
            app: Some(turn),
            outbox: fcx_tests::outbox_in(&text),
        };
        Some(Box::pin(async move {
            match runner.run(&steps).await {
                0 => TurnEnd::Done,
                code => TurnEnd::Crash(code),
            }
        }))
    }

    fn steer(&mut self, id: &Value, params: &Value) {
        let expected = params
            .get("expectedTurnId")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(turn) = self.turn.as_ref().filter(|t| !t.is_over()) else {
            respond_error(id, "no active turn to steer");
            return;
        };
        if turn.turn_id != expected {
            respond_error(
                id,
                &format!(
                    "expected active turn id `{expected}` but found `{}`",
                    turn.turn_id
                ),
            );
            return;
        }
        let (text, images) = input_of(params);
        turn.shared.borrow_mut().steers.push(text);
        self.cli.images.extend(images);
        let answer = json!({"turnId": turn.turn_id});
        // Recorded before the answer: whoever got the answer reads it.
        self.record();
        respond(id, answer);
    }

    fn list(&self, id: &Value, params: &Value) {
        let cwd = params.get("cwd").and_then(Value::as_str);
        let data: Vec<Value> = all_threads()
            .into_iter()
            .filter(|t| cwd.is_none() || t.cwd.as_deref() == cwd)
            .map(|t| {
                let preview = t.preview.clone().unwrap_or_default();
                let mut v = self.thread_response(
                    &t.thread_id,
                    &ThreadSettings {
                        cwd: t.cwd.clone(),
                        ..ThreadSettings::default()
                    },
                    &preview,
                )["thread"]
                    .clone();
                v["updatedAt"] = json!(t.updated_at_ms / 1000);
                v
            })
            .collect();
        respond(
            id,
            json!({"data": data, "nextCursor": null, "backwardsCursor": null}),
        );
    }
}

/// What a message asks of the request loop.
enum Action {
    Nothing,
    Start(TurnFuture),
    /// The turn was interrupted: its scenario stops where it is.
    Stop,
}

fn handle(server: &mut Server, line: &str) -> Action {
    let Ok(msg) = serde_json::from_str::<Value>(line) else {
        stderr_line(&format!(
            "fake-codex: not a JSON-RPC message: {}",
            line.trim_end()
        ));
        return Action::Nothing;
    };
    let (Some(method), Some(id)) = (
        msg.get("method").and_then(Value::as_str),
        msg.get("id").filter(|id| !id.is_null()),
    ) else {
        // `initialized`, or an answer to a request this fake never sends.
        return Action::Nothing;
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    if !server.initialized && method != "initialize" {
        respond_error(id, NOT_INITIALIZED);
        return Action::Nothing;
    }
    match method {
        "initialize" => {
            server.initialized = true;
            let name = params
                .pointer("/clientInfo/name")
                .and_then(Value::as_str)
                .unwrap_or("client");
            let home = std::env::var("CODEX_HOME").unwrap_or_default();
            respond(
                id,
                json!({"userAgent": format!("{name}/0.169.0 (fake)"), "codexHome": home,
                       "platformFamily": "unix", "platformOs": "linux"}),
            );
        }
        "thread/start" => server.open_thread(id, &params, false),
        "thread/resume" => server.open_thread(id, &params, true),
        "thread/list" => server.list(id, &params),
        "turn/start" => {
            if let Some(fut) = server.turn_start(id, &params) {
                return Action::Start(fut);
            }
        }
        "turn/steer" => server.steer(id, &params),
        "turn/interrupt" => {
            if server.deaf.load(Ordering::SeqCst) {
                return Action::Nothing;
            }
            let turn_id = params.get("turnId").and_then(Value::as_str).unwrap_or("");
            match server
                .turn
                .clone()
                .filter(|t| !t.is_over() && t.turn_id == turn_id)
            {
                Some(turn) => {
                    kill_group_descendants();
                    respond(id, json!({}));
                    turn.interrupted();
                    return Action::Stop;
                }
                None => respond_error(id, "no active turn to interrupt"),
            }
        }
        other => respond_error(
            id,
            &format!("Invalid request: unknown variant `{other}` (fake-codex app-server)"),
        ),
    }
    Action::Nothing
}

/// The request loop. Returns the exit code.
pub(super) async fn serve(argv: Vec<String>, configs: Vec<String>) -> i32 {
    static DEAF: AtomicBool = AtomicBool::new(false);
    let mut sigterm = match tokio_signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            stderr_line(&format!("fake-codex: installing SIGTERM handler: {e}"));
            return 70;
        }
    };
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    // A plain thread: the blocking read must not hold up the runtime, and
    // the process exits without joining it.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match std::io::BufRead::read_line(&mut stdin.lock(), &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line.clone()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut server = Server {
        argv,
        start_cwd: std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        initialized: false,
        threads: BTreeMap::new(),
        cli: Cli {
            configs,
            ..Cli::default()
        },
        prompt: None,
        turn: None,
        deaf: &DEAF,
        turn_recorded: false,
        thread_opened: false,
        warm: false,
    };
    let mut scenario: Option<TurnFuture> = None;
    let mut stdin_open = true;
    loop {
        let running = async {
            match scenario.as_mut() {
                Some(fut) => fut.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            end = running => {
                scenario = None;
                let in_progress = server.turn.as_ref().is_some_and(|t| !t.is_over());
                match end {
                    TurnEnd::Crash(code) if in_progress => return code,
                    // Like exec ending without turn.completed: gone.
                    TurnEnd::Done if in_progress => {
                        kill_group_descendants();
                        return 0;
                    }
                    TurnEnd::Crash(_) | TurnEnd::Done => {}
                }
            }
            line = lines.recv(), if stdin_open => match line {
                Some(line) => match handle(&mut server, &line) {
                    Action::Start(fut) => scenario = Some(fut),
                    Action::Stop => scenario = None,
                    Action::Nothing => {}
                },
                None => {
                    stdin_open = false;
                    if !DEAF.load(Ordering::SeqCst) {
                        kill_group_descendants();
                        return 0;
                    }
                }
            },
            _ = sigterm.recv() => {
                kill_group_descendants();
                return 0;
            }
        }
    }
}
