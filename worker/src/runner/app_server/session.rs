//! One turn's conversation with `codex app-server`: handshake, thread start
//! or resume, `turn/start`, then notifications until `turn/completed`, with
//! stop (`turn/interrupt`), steering and server requests answered on the
//! way. Generic over the pipes, so tests can play the server.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::mapping::Mapper;
use super::protocol as p;
use super::rpc::{Incoming, Reader, Writer};
use crate::runner::{ApprovalDecision, ControlError, RunControl, RunSpec, RunnerEvent, ToolKind};

/// Why the conversation ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum End {
    /// `turn/completed` arrived (the mapper has the status).
    TurnEnded,
    /// Stopped through the cancel token (interrupt sent, or nothing to
    /// interrupt yet).
    Cancelled,
    /// The orchestrator dropped the event receiver.
    Detached,
    /// The server closed its stdout or stdin: it exited or is exiting.
    ChildGone,
    /// `thread/resume` named a thread Codex cannot resume.
    ThreadGone(String),
    /// A request was refused.
    Refused {
        method: &'static str,
        message: String,
    },
    Failed(String),
}

pub(crate) struct Session<R, W> {
    pub(crate) reader: Reader<R>,
    pub(crate) writer: Writer<W>,
    pub(crate) map: Mapper,
    events: mpsc::Sender<RunnerEvent>,
    control: mpsc::Receiver<RunControl>,
    control_open: bool,
    cancel: CancellationToken,
    /// Steer requests in flight: request id → the requester's reply.
    steers: HashMap<i64, oneshot::Sender<Result<(), ControlError>>>,
    /// Whether approval requests go to people (approval is not "never").
    ask: bool,
    /// Approval requests waiting for a decision: approval id → the
    /// server's request id.
    pending: HashMap<String, Value>,
    request_timeout: Duration,
    /// How long to wait for `turn/completed` after `turn/interrupt`.
    interrupt_grace: Duration,
    run_id: String,
    /// A kept child's loaded thread this turn continues: no handshake, no
    /// `thread/resume` (it would reload what is loaded).
    warm_thread: Option<String>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Session<R, W> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        reader: Reader<R>,
        writer: Writer<W>,
        map: Mapper,
        events: mpsc::Sender<RunnerEvent>,
        control: mpsc::Receiver<RunControl>,
        cancel: CancellationToken,
        request_timeout: Duration,
        interrupt_grace: Duration,
        run_id: String,
    ) -> Self {
        Session {
            reader,
            writer,
            map,
            events,
            control,
            control_open: true,
            cancel,
            steers: HashMap::new(),
            ask: false,
            pending: HashMap::new(),
            request_timeout,
            interrupt_grace,
            run_id,
            warm_thread: None,
        }
    }

    /// The turn goes to `thread`, already loaded in this (kept) child.
    pub(crate) fn continuing(mut self, thread: Option<String>) -> Self {
        self.warm_thread = thread;
        self
    }

    /// The pipes back (for the child's next run or its shutdown) and what
    /// the turn learned.
    pub(crate) fn into_parts(self) -> (Reader<R>, Writer<W>, Mapper) {
        (self.reader, self.writer, self.map)
    }

    /// Whether the server waits on nothing from us (no approval request
    /// unanswered): only then may the child serve another run.
    pub(crate) fn is_quiet(&self) -> bool {
        self.pending.is_empty()
    }

    /// The whole turn. Cancel-safe only in the sense that dropping it leaves
    /// the server to be shut down by the caller.
    pub(crate) async fn drive(&mut self, spec: &RunSpec) -> End {
        match self.turn(spec).await {
            Ok(end) | Err(end) => end,
        }
    }

    async fn turn(&mut self, spec: &RunSpec) -> Result<End, End> {
        self.ask = spec.approval != fcx_config::ApprovalPolicy::Never;
        if let Some(thread_id) = self.warm_thread.clone() {
            return self.turn_on(spec, thread_id).await;
        }
        self.call(p::INITIALIZE, p::initialize()).await?;
        self.writer
            .notify(p::INITIALIZED)
            .await
            .map_err(|_| End::ChildGone)?;
        let thread = match &spec.resume_thread {
            Some(id) => self
                .call(p::THREAD_RESUME, p::thread_resume(spec, id))
                .await
                .map_err(|e| match e {
                    End::Refused { message, .. } if p::is_thread_gone(&message) => {
                        End::ThreadGone(message)
                    }
                    other => other,
                })?,
            None => self.call(p::THREAD_START, p::thread_start(spec)).await?,
        };
        let thread_id = p::thread_id_of(&thread)
            .ok_or_else(|| End::Failed("codex app-server answered without a thread id".into()))?;
        self.turn_on(spec, thread_id).await
    }

    async fn turn_on(&mut self, spec: &RunSpec, thread_id: String) -> Result<End, End> {
        self.map.thread_id = Some(thread_id.clone());
        self.emit(RunnerEvent::ThreadStarted {
            thread_id: thread_id.clone(),
        })
        .await?;
        let turn = self
            .call(
                p::TURN_START,
                p::turn_start(&thread_id, &spec.prompt, &spec.images),
            )
            .await?;
        let turn_id = p::turn_id_of(&turn)
            .ok_or_else(|| End::Failed("codex app-server answered without a turn id".into()))?;
        self.map.turn_id = Some(turn_id);
        self.until_turn_end().await
    }

    /// Sends a request and waits for its answer, handling whatever else
    /// arrives meanwhile.
    async fn call(&mut self, method: &'static str, params: Value) -> Result<Value, End> {
        let id = self
            .writer
            .request(method, params)
            .await
            .map_err(|_| End::ChildGone)?;
        let mut deadline = Instant::now() + self.request_timeout;
        let mut cancel_seen = false;
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled(), if !cancel_seen => {
                    if method != p::TURN_START {
                        return Err(End::Cancelled);
                    }
                    // Wait (briefly) for the turn id, so the turn gets
                    // interrupted rather than cut off by the shutdown.
                    cancel_seen = true;
                    deadline = deadline.min(Instant::now() + self.interrupt_grace);
                }
                m = self.reader.next() => match m {
                    None => return Err(End::ChildGone),
                    Some(Incoming::Response { id: got, result }) if got == id => {
                        return result.map_err(|e| End::Refused { method, message: e.message });
                    }
                    Some(other) => self.handle(other).await?,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if self.cancel.is_cancelled() {
                        return Err(End::Cancelled);
                    }
                    return Err(End::Failed(format!(
                        "codex app-server did not answer {method} within {} s",
                        self.request_timeout.as_secs()
                    )));
                }
            }
        }
    }

    async fn until_turn_end(&mut self) -> Result<End, End> {
        let mut interrupt_deadline: Option<Instant> = None;
        loop {
            if self.map.turn_end.is_some() {
                return Ok(if interrupt_deadline.is_some() {
                    End::Cancelled
                } else {
                    End::TurnEnded
                });
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled(), if interrupt_deadline.is_none() => {
                    interrupt_deadline = Some(Instant::now() + self.interrupt_grace);
                    self.decline_pending().await?;
                    self.interrupt().await?;
                }
                _ = sleep_until_opt(interrupt_deadline), if interrupt_deadline.is_some() => {
                    tracing::warn!(run_id = %self.run_id, "codex app-server did not end the turn after turn/interrupt");
                    return Err(End::Cancelled);
                }
                ctl = self.control.recv(), if self.control_open => match ctl {
                    Some(c) => self.control(c, interrupt_deadline.is_some()).await?,
                    None => self.control_open = false,
                },
                m = self.reader.next() => match m {
                    None => return Err(End::ChildGone),
                    Some(m) => self.handle(m).await?,
                },
            }
        }
    }

    /// A stopped turn's approval requests are declined before it is
    /// interrupted: Codex is never left waiting on a person who can no
    /// longer answer.
    async fn decline_pending(&mut self) -> Result<(), End> {
        for (approval_id, id) in std::mem::take(&mut self.pending) {
            tracing::info!(run_id = %self.run_id, approval = %approval_id, "the run was stopped; declining its approval request");
            self.writer
                .respond(id, p::approval_answer(&ApprovalDecision::Decline))
                .await
                .map_err(|_| End::ChildGone)?;
        }
        Ok(())
    }

    async fn interrupt(&mut self) -> Result<(), End> {
        let (Some(thread), Some(turn)) = (self.map.thread_id.clone(), self.map.turn_id.clone())
        else {
            return Err(End::Cancelled);
        };
        tracing::info!(run_id = %self.run_id, "interrupting the codex turn");
        self.writer
            .request(p::TURN_INTERRUPT, p::turn_interrupt(&thread, &turn))
            .await
            .map_err(|_| End::Cancelled)?;
        Ok(())
    }

    async fn control(&mut self, c: RunControl, stopping: bool) -> Result<(), End> {
        match c {
            RunControl::Steer {
                text,
                images,
                reply,
            } => {
                let (Some(thread), Some(turn), false) = (
                    self.map.thread_id.clone(),
                    self.map.turn_id.clone(),
                    stopping,
                ) else {
                    let _ = reply.send(Err(ControlError::Ended));
                    return Ok(());
                };
                match self
                    .writer
                    .request(p::TURN_STEER, p::turn_steer(&thread, &turn, &text, &images))
                    .await
                {
                    Ok(id) => {
                        self.steers.insert(id, reply);
                    }
                    Err(_) => {
                        let _ = reply.send(Err(ControlError::Ended));
                        return Err(End::ChildGone);
                    }
                }
            }
            RunControl::Approve {
                request_id,
                decision,
                reply,
            } => {
                if !self.ask {
                    // Nothing is ever pending: every request is declined as
                    // it arrives while approval is "never".
                    let _ = reply.send(Err(ControlError::NotSupported {
                        runner: "app-server",
                        what: "approvals while approval = \"never\"",
                    }));
                    return Ok(());
                }
                let Some(id) = self.pending.remove(&request_id) else {
                    let _ = reply.send(Err(ControlError::Ended));
                    return Ok(());
                };
                tracing::info!(run_id = %self.run_id, approval = %request_id, ?decision, "answering an approval request");
                if self
                    .writer
                    .respond(id, p::approval_answer(&decision))
                    .await
                    .is_err()
                {
                    let _ = reply.send(Err(ControlError::Ended));
                    return Err(End::ChildGone);
                }
                let _ = reply.send(Ok(()));
            }
        }
        Ok(())
    }

    async fn handle(&mut self, m: Incoming) -> Result<(), End> {
        match m {
            Incoming::Notification { method, params } => {
                for ev in self.map.notification(&method, &params) {
                    self.emit(ev).await?;
                }
            }
            Incoming::Request { id, method, params } => {
                self.server_request(id, &method, &params).await?
            }
            Incoming::Response { id, result } => {
                if let Some(reply) = self.steers.remove(&id) {
                    let _ = reply.send(result.map(|_| ()).map_err(|e| {
                        tracing::info!(run_id = %self.run_id, error = %e, "codex refused turn/steer");
                        ControlError::Ended
                    }));
                } else if let Err(e) = result {
                    // turn/interrupt's answer, or a late one.
                    tracing::debug!(run_id = %self.run_id, id, error = %e, "codex app-server refused a request");
                }
            }
        }
        Ok(())
    }

    /// Approvals are declined (approval is "never", so they should not even
    /// come) and said in the run's events; requests fcx has no answer for
    /// get an error, so Codex never waits on us.
    async fn server_request(&mut self, id: Value, method: &str, params: &Value) -> Result<(), End> {
        let what = |k: &str| {
            params
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let kind = match method {
            "item/commandExecution/requestApproval" => Some(ToolKind::Command),
            "item/fileChange/requestApproval" => Some(ToolKind::FileChange),
            _ => None,
        };
        if let (true, Some(kind)) = (self.ask, kind) {
            // Request ids are unique per server (a kept child serves runs
            // one after another and never reuses one): the id names the
            // request within the run.
            let approval_id = match &id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            tracing::info!(run_id = %self.run_id, method, approval = %approval_id, "codex asks for approval");
            self.pending.insert(approval_id.clone(), id);
            return self
                .emit(RunnerEvent::ApprovalRequested {
                    approval_id,
                    item_id: what("itemId"),
                    kind,
                    command: what("command"),
                    cwd: what("cwd"),
                    reason: what("reason"),
                })
                .await;
        }
        let (answer, asked) = match method {
            "item/commandExecution/requestApproval" => (
                Ok(json!({"decision": "decline"})),
                Some(format!("run `{}`", what("command"))),
            ),
            "item/fileChange/requestApproval" => (
                Ok(json!({"decision": "decline"})),
                Some("change files".to_string()),
            ),
            "execCommandApproval" | "applyPatchApproval" => (
                Ok(
                    json!({"decision": {"denied": {"rejection": "approvals are off for this profile"}}}),
                ),
                Some(if method == "execCommandApproval" {
                    "run a command".to_string()
                } else {
                    "change files".to_string()
                }),
            ),
            "item/permissions/requestApproval" => (
                Err("declined: approvals are off for this profile"),
                Some("get more permissions".to_string()),
            ),
            "mcpServer/elicitation/request" => (
                Ok(json!({"action": "decline", "content": null, "_meta": null})),
                None,
            ),
            _ => (Err("fcx does not support this request"), None),
        };
        tracing::info!(run_id = %self.run_id, method, "answering a codex app-server request");
        let sent = match answer {
            Ok(result) => self.writer.respond(id, result).await,
            Err(message) => self.writer.respond_error(id, -32601, message).await,
        };
        if sent.is_err() {
            return Err(End::ChildGone);
        }
        if let Some(asked) = asked {
            self.emit(RunnerEvent::Warning {
                message: format!(
                    "Codex asked for approval to {asked}; approvals are off for this profile (approval = \"never\"), so it was declined."
                ),
            })
            .await?;
        }
        Ok(())
    }

    async fn emit(&self, ev: RunnerEvent) -> Result<(), End> {
        self.events.send(ev).await.map_err(|_| End::Detached)
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
