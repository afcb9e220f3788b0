//! `RunState`: everything a run card shows, folded purely from the worker's
//! events. No I/O and no clock: the same events always give the same state,
//! so a gateway that replays the event log rebuilds the same card.

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, DoneReason, QueueReason, ToolKind, ToolStatus};

/// Reasoning kept in memory. The card shows far less; keeping the tail
/// bounds a chatty model's memory use.
const REASONING_KEEP_BYTES: usize = 64 * 1024;
/// Tool calls kept in detail; later ones only count. Far more than a card
/// can show, so this only bounds memory on pathological runs.
const MAX_TOOLS: usize = 2_000;
/// Distinct changed files kept.
const MAX_FILES: usize = 2_000;
/// Warnings kept (the card shows the last few).
const MAX_ERRORS: usize = 20;
/// Per-field cap on worker-supplied strings stored per tool call.
const FIELD_KEEP_BYTES: usize = 16 * 1024;
/// Skipped attachments kept (a message names far fewer).
const MAX_SKIPPED: usize = 64;
/// Skipped attachments a card or message lists one by one.
const SHOWN_SKIPPED: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    #[default]
    Queued,
    Running,
    Done,
    Interrupted,
    TimedOut,
    Failed,
}

impl Phase {
    pub(crate) fn is_terminal(self) -> bool {
        !matches!(self, Phase::Queued | Phase::Running)
    }
}

/// How tool calls appear on a run card (`RunStarted.tool_display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ToolDisplay {
    /// A panel per call with its output tail.
    #[default]
    Full,
    /// One folded panel listing every call's title and status.
    Summary,
    /// No tool panels; file changes are still listed.
    Off,
}

impl ToolDisplay {
    /// The wire value; empty or unknown means `Full`, so a newer worker's
    /// value never hides tools from an older gateway.
    pub(crate) fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "summary" => ToolDisplay::Summary,
            "off" => ToolDisplay::Off,
            _ => ToolDisplay::Full,
        }
    }
}

/// How a scope wants runs and command replies shown
/// (`RunStarted.reply_mode`, `CommandReply.reply_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyMode {
    Card,
    Markdown,
    Text,
}

impl ReplyMode {
    /// `None` for empty or unknown values: the gateway's default applies.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "card" => Some(ReplyMode::Card),
            "markdown" => Some(ReplyMode::Markdown),
            "text" => Some(ReplyMode::Text),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolState {
    Running,
    Ok,
    Failed,
    Declined,
    /// The run ended before the tool reported an end.
    Abandoned,
}

impl ToolState {
    pub(crate) fn is_failure(self) -> bool {
        matches!(self, ToolState::Failed | ToolState::Declined)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileChange {
    pub(crate) path: String,
    /// "add" | "delete" | "update" (as the worker said).
    pub(crate) kind: String,
    /// The patch that carried it failed or was declined.
    pub(crate) failed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub(crate) item_id: String,
    pub(crate) kind: ToolKind,
    pub(crate) title: String,
    pub(crate) state: ToolState,
    pub(crate) exit_code: Option<i32>,
    pub(crate) output_tail: String,
    pub(crate) error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) cached_input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) reasoning_output_tokens: u64,
}

impl From<&pb::Usage> for Usage {
    fn from(u: &pb::Usage) -> Self {
        Usage {
            input_tokens: u.input_tokens,
            cached_input_tokens: u.cached_input_tokens,
            output_tokens: u.output_tokens,
            reasoning_output_tokens: u.reasoning_output_tokens,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunState {
    /// The run this card follows; events of other runs are ignored. Empty
    /// = adopt the first run event's id.
    pub(crate) run_id: String,
    pub(crate) scope: String,
    pub(crate) phase: Phase,
    pub(crate) workspace: String,
    pub(crate) sandbox: String,
    pub(crate) model: String,
    pub(crate) thread_id: String,
    pub(crate) resumed: bool,
    /// The scope's reply mode when the run started; `None` = the gateway's
    /// default.
    pub(crate) reply_mode: Option<ReplyMode>,
    /// How the scope wants tool calls shown (feed it to
    /// `RenderOptions::tool_display`).
    pub(crate) tool_display: ToolDisplay,
    /// User messages the run answers (more than one: "+N messages added").
    pub(crate) message_count: u32,
    /// What held the run when its last message was accepted (shown while
    /// it is queued).
    pub(crate) queue_reason: QueueReason,
    /// Messages added to the running turn (during_run = steer).
    pub(crate) steered: u32,
    /// Approval requests the run waits on: (approval id, what was asked).
    pub(crate) waiting: Vec<(String, String)>,
    /// RunStarted.fingerprint: what the final card's buttons are signed for.
    pub(crate) fingerprint: String,
    /// RunStarted.requester: who the final card's buttons are signed for.
    pub(crate) requester: String,
    /// Done.terminal_line (the owner's run only).
    pub(crate) terminal_line: String,
    /// The final card's buttons, signed by the card surface: (label, token).
    pub(crate) final_buttons: Vec<(String, String)>,
    /// Streamed answer items in arrival order (Codex may send several agent
    /// messages in one run).
    answer_items: Vec<(String, String)>,
    /// `Done.final_text`, authoritative once the run ended.
    final_text: Option<String>,
    reasoning: String,
    /// Item of the last reasoning delta: a new item starts a new paragraph.
    reasoning_item: Option<String>,
    /// Bytes of reasoning dropped from the front to bound memory.
    pub(crate) reasoning_dropped: usize,
    pub(crate) tools: Vec<ToolCall>,
    /// Tool calls beyond [`MAX_TOOLS`], counted only.
    pub(crate) tools_dropped: usize,
    pub(crate) files: Vec<FileChange>,
    pub(crate) usage: Option<Usage>,
    pub(crate) started_at_ms: Option<i64>,
    pub(crate) last_at_ms: Option<i64>,
    pub(crate) elapsed_ms: Option<u64>,
    /// Done.detail (the one-sentence cause for the user).
    pub(crate) detail: String,
    /// Warnings and errors the worker reported, newest last.
    pub(crate) errors: Vec<String>,
    /// Attachments that did not reach Codex, "name: why" each
    /// (`RunStarted.skipped_attachments`).
    pub(crate) skipped: Vec<String>,
    finished: bool,
    last_seq: u64,
}

impl RunState {
    pub(crate) fn new(run_id: impl Into<String>) -> Self {
        RunState {
            run_id: run_id.into(),
            ..Default::default()
        }
    }

    /// True once `Done` arrived; later events change nothing.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The answer as the card shows it: `Done.final_text` once the run
    /// ended with one, else the streamed text so far.
    pub(crate) fn answer(&self) -> String {
        if let Some(t) = self.final_text.as_ref().filter(|t| !t.is_empty()) {
            return t.clone();
        }
        let mut out = String::new();
        for (_, t) in self.answer_items.iter().filter(|(_, t)| !t.is_empty()) {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(t);
        }
        out
    }

    /// The skipped attachments as the user reads them: a heading line, then
    /// one bullet each (at most [`SHOWN_SKIPPED`], the rest counted); empty
    /// when every attachment reached Codex. Not escaped.
    pub(crate) fn skipped_lines(&self) -> Vec<String> {
        if self.skipped.is_empty() {
            return Vec::new();
        }
        let mut out = vec!["Not passed to Codex:".to_string()];
        for l in self.skipped.iter().take(SHOWN_SKIPPED) {
            let one: String = l.split_whitespace().collect::<Vec<_>>().join(" ");
            let cut: String = one.chars().take(200).collect();
            out.push(format!("• {cut}"));
        }
        if self.skipped.len() > SHOWN_SKIPPED {
            out.push(format!(
                "• … and {} more",
                self.skipped.len() - SHOWN_SKIPPED
            ));
        }
        out
    }

    pub(crate) fn reasoning(&self) -> &str {
        &self.reasoning
    }

    /// Folds one event in. Never panics; events of another run, repeated
    /// sequence numbers (a resumed event stream) and anything after `Done`
    /// are ignored.
    pub(crate) fn apply(&mut self, ev: &pb::WorkerEvent) {
        if self.finished {
            return;
        }
        let Some(kind) = ev.kind.as_ref() else {
            return;
        };
        if matches!(
            kind,
            Kind::CommandReply(_) | Kind::Notice(_) | Kind::FileOut(_)
        ) || ev.run_id.is_empty()
        {
            return;
        }
        if self.run_id.is_empty() {
            self.run_id = ev.run_id.clone();
        } else if self.run_id != ev.run_id {
            return;
        }
        if ev.seq != 0 {
            if ev.seq <= self.last_seq {
                return;
            }
            self.last_seq = ev.seq;
        }
        if self.scope.is_empty() {
            self.scope = ev.scope.clone();
        }
        if ev.at_ms > 0 {
            self.last_at_ms = Some(ev.at_ms);
        }
        match kind {
            Kind::RunStarted(s) => {
                self.phase = Phase::Running;
                self.thread_id = s.thread_id.clone();
                self.resumed = s.resumed;
                self.workspace = s.workspace.clone();
                self.sandbox = s.sandbox().word().to_string();
                self.model = s.model.clone();
                self.fingerprint = s.fingerprint.clone();
                self.requester = s
                    .requester
                    .as_ref()
                    .map(|a| a.id.clone())
                    .unwrap_or_default();
                self.reply_mode = ReplyMode::parse(s.reply_mode().word());
                self.tool_display = ToolDisplay::parse(s.tool_display().word());
                self.message_count = self.message_count.max(s.message_count);
                self.skipped = s
                    .skipped_attachments
                    .iter()
                    .take(MAX_SKIPPED)
                    .map(|l| keep(l))
                    .collect();
                if ev.at_ms > 0 {
                    self.started_at_ms = Some(ev.at_ms);
                }
            }
            Kind::Queued(q) => {
                // A late announcement (its run already started) only adds
                // to the count.
                self.message_count = self.message_count.max(q.message_count);
                if q.reason == QueueReason::Steered as i32 {
                    self.steered += 1;
                } else if self.phase == Phase::Queued {
                    self.queue_reason =
                        QueueReason::try_from(q.reason).unwrap_or(QueueReason::Unspecified);
                    if self.reply_mode.is_none() {
                        self.reply_mode = ReplyMode::parse(q.reply_mode().word());
                    }
                }
            }
            Kind::ThreadBound(t) => {
                self.thread_id = t.thread_id.clone();
                self.resumed = t.resumed;
            }
            Kind::ApprovalWait(w) => {
                self.waiting.retain(|(id, _)| *id != w.approval_id);
                if w.waiting {
                    self.waiting.push((w.approval_id.clone(), keep(&w.what)));
                }
            }
            Kind::TextDelta(d) => {
                self.running();
                match self
                    .answer_items
                    .iter_mut()
                    .find(|(id, _)| *id == d.item_id)
                {
                    Some((_, t)) => t.push_str(&d.delta),
                    None => self.answer_items.push((d.item_id.clone(), d.delta.clone())),
                }
            }
            Kind::ReasoningDelta(d) => {
                self.running();
                if !self.reasoning.is_empty()
                    && !d.delta.is_empty()
                    && self.last_reasoning_item() != Some(d.item_id.as_str())
                {
                    self.reasoning.push_str("\n\n");
                }
                self.reasoning.push_str(&d.delta);
                self.reasoning_item = Some(d.item_id.clone());
                self.bound_reasoning();
            }
            Kind::ToolStart(t) => {
                self.running();
                let kind = tool_kind(t.kind);
                self.merge_files(&t.changes, false);
                if let Some(tc) = self.tool_mut(&t.item_id) {
                    tc.title = keep(&t.title);
                    return;
                }
                self.push_tool(ToolCall {
                    item_id: t.item_id.clone(),
                    kind,
                    title: keep(&t.title),
                    state: ToolState::Running,
                    exit_code: None,
                    output_tail: String::new(),
                    error: String::new(),
                });
            }
            Kind::ToolEnd(t) => {
                self.running();
                let state = match ToolStatus::try_from(t.status) {
                    Ok(ToolStatus::Ok) => ToolState::Ok,
                    Ok(ToolStatus::Failed) => ToolState::Failed,
                    Ok(ToolStatus::Declined) => ToolState::Declined,
                    Ok(ToolStatus::Abandoned) => ToolState::Abandoned,
                    // An end without a known status: judge by the exit code.
                    _ if t.has_exit_code && t.exit_code != 0 => ToolState::Failed,
                    _ => ToolState::Ok,
                };
                self.merge_files(&t.changes, state.is_failure());
                let exit_code = t.has_exit_code.then_some(t.exit_code);
                let done = ToolCall {
                    item_id: t.item_id.clone(),
                    kind: tool_kind(t.kind),
                    title: keep(&t.title),
                    state,
                    exit_code,
                    output_tail: keep_tail(&t.output_tail),
                    error: keep(&t.error),
                };
                match self.tool_mut(&t.item_id) {
                    Some(tc) => {
                        if !done.title.is_empty() {
                            tc.title = done.title;
                        }
                        if done.kind != ToolKind::Unspecified {
                            tc.kind = done.kind;
                        }
                        tc.state = done.state;
                        tc.exit_code = done.exit_code;
                        tc.output_tail = done.output_tail;
                        tc.error = done.error;
                    }
                    None => self.push_tool(done),
                }
            }
            Kind::ToolOutputDelta(d) => {
                self.running();
                if let Some(tc) = self.tool_mut(&d.item_id) {
                    tc.output_tail.push_str(&d.delta);
                    tc.output_tail = keep_tail(&tc.output_tail);
                }
            }
            Kind::Usage(u) => self.usage = Some(u.into()),
            Kind::Error(e) => {
                if self.errors.len() >= MAX_ERRORS {
                    self.errors.remove(0);
                }
                self.errors.push(keep(&e.message));
                if e.fatal {
                    self.phase = Phase::Failed;
                }
            }
            Kind::Done(d) => {
                self.phase = match DoneReason::try_from(d.reason) {
                    Ok(DoneReason::Completed) => Phase::Done,
                    Ok(DoneReason::Interrupted) => Phase::Interrupted,
                    Ok(DoneReason::TimedOut) => Phase::TimedOut,
                    Ok(DoneReason::Failed) => Phase::Failed,
                    // Unknown reason: a fatal error already said failed.
                    _ if self.phase == Phase::Failed => Phase::Failed,
                    _ => Phase::Done,
                };
                self.detail = keep(&d.detail);
                self.terminal_line = keep(&d.terminal_line);
                self.final_text = Some(d.final_text.clone());
                if d.elapsed_ms > 0 {
                    self.elapsed_ms = Some(d.elapsed_ms);
                }
                if let Some(u) = &d.usage {
                    self.usage = Some(u.into());
                }
                for tc in &mut self.tools {
                    if tc.state == ToolState::Running {
                        tc.state = ToolState::Abandoned;
                    }
                }
                self.waiting.clear();
                self.finished = true;
            }
            // Sent as messages of their own after the run (egress `files`).
            Kind::CommandReply(_) | Kind::Notice(_) | Kind::FileOut(_) => {}
        }
    }

    /// Elapsed time: the worker's figure once done, else `now_ms` (or the
    /// last event) minus the start.
    pub(crate) fn elapsed(&self, now_ms: Option<i64>) -> Option<u64> {
        if let Some(e) = self.elapsed_ms {
            return Some(e);
        }
        let start = self.started_at_ms?;
        let end = if self.finished {
            self.last_at_ms
        } else {
            now_ms.or(self.last_at_ms)
        }?;
        u64::try_from(end.saturating_sub(start)).ok()
    }

    fn running(&mut self) {
        if self.phase == Phase::Queued {
            self.phase = Phase::Running;
        }
    }

    fn last_reasoning_item(&self) -> Option<&str> {
        self.reasoning_item.as_deref()
    }

    fn bound_reasoning(&mut self) {
        if self.reasoning.len() <= REASONING_KEEP_BYTES {
            return;
        }
        // Drop the oldest half at once so a long stream does not shift the
        // buffer on every delta.
        let mut cut = self.reasoning.len() - REASONING_KEEP_BYTES / 2;
        while !self.reasoning.is_char_boundary(cut) {
            cut += 1;
        }
        self.reasoning.drain(..cut);
        self.reasoning_dropped += cut;
    }

    fn tool_mut(&mut self, item_id: &str) -> Option<&mut ToolCall> {
        if item_id.is_empty() {
            return None;
        }
        self.tools.iter_mut().rev().find(|t| t.item_id == item_id)
    }

    fn push_tool(&mut self, t: ToolCall) {
        if self.tools.len() >= MAX_TOOLS {
            self.tools_dropped += 1;
        } else {
            self.tools.push(t);
        }
    }

    fn merge_files(&mut self, changes: &[pb::FileChange], failed: bool) {
        for c in changes {
            if let Some(f) = self.files.iter_mut().find(|f| f.path == c.path) {
                if !c.kind().word().is_empty() {
                    f.kind = keep(c.kind().word());
                }
                f.failed = failed;
            } else if self.files.len() < MAX_FILES {
                self.files.push(FileChange {
                    path: keep(&c.path),
                    kind: keep(c.kind().word()),
                    failed,
                });
            }
        }
    }
}

fn tool_kind(k: i32) -> ToolKind {
    ToolKind::try_from(k).unwrap_or(ToolKind::Unspecified)
}

/// A worker string bounded for storage (head kept).
fn keep(s: &str) -> String {
    if s.len() <= FIELD_KEEP_BYTES {
        return s.to_string();
    }
    let mut end = FIELD_KEEP_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Output bounded for storage (tail kept: the end says how it went).
fn keep_tail(s: &str) -> String {
    if s.len() <= FIELD_KEEP_BYTES {
        return s.to_string();
    }
    let mut start = s.len() - FIELD_KEEP_BYTES;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}
