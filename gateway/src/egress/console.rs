//! The console's output: the terminal as one more [`Surface`]. It streams
//! (answer text is printed as it arrives) and keeps no run open, so the
//! console's event loop needs nothing but `show`.

use std::io::Write as _;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb};
use futures::future::BoxFuture;

use crate::egress::surface::Surface;
use crate::ingress::console::SCOPE;
use crate::link::supervisor::Notice;

/// The terminal as a streaming surface: text as it arrives, one line per
/// tool start and end, and the run's end state.
#[derive(Default)]
pub(crate) struct ConsoleOutput {
    /// Whether the last thing printed was answer text without a newline.
    mid_text: bool,
    /// The answer item the open text line belongs to.
    text_item: Option<String>,
}

impl ConsoleOutput {
    /// Prints one line (ending open answer text first).
    pub(crate) fn line(&mut self, s: &str) {
        let mut o = std::io::stdout().lock();
        if self.mid_text {
            let _ = writeln!(o);
            self.mid_text = false;
        }
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }

    fn text(&mut self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "{s}");
        let _ = o.flush();
        self.mid_text = !s.ends_with('\n');
    }

    /// What the supervisor says about the worker itself.
    pub(crate) fn notice(&mut self, n: &Notice) {
        match n {
            Notice::Ready => {}
            Notice::Exited { what, retry_in } => self.line(&format!(
                "[fcx] {what}; restarting it in {:.1} s",
                retry_in.as_secs_f32()
            )),
            Notice::StartFailed { error, retry_in } => self.line(&format!(
                "[fcx] the worker could not start: {error}; retrying in {:.1} s",
                retry_in.as_secs_f32()
            )),
        }
    }

    fn event(&mut self, ev: &pb::WorkerEvent) {
        if ev.scope != SCOPE {
            return;
        }
        let tag = if ev.run_id.is_empty() {
            "[fcx]".to_string()
        } else {
            format!("[{}]", ev.run_id)
        };
        let Some(kind) = &ev.kind else { return };
        match kind {
            Kind::RunStarted(r) => {
                let session = if r.resumed {
                    format!("continuing session {}", r.thread_id)
                } else {
                    "new session".to_string()
                };
                let merged = if r.message_count > 1 {
                    format!(" · {} messages", r.message_count)
                } else {
                    String::new()
                };
                self.line(&format!(
                    "{tag} started · {} · {} · {session}{merged}",
                    r.workspace,
                    r.sandbox().word()
                ));
            }
            Kind::ThreadBound(_) => {}
            Kind::TextDelta(t) => {
                // Deltas of one answer continue its line; another answer
                // (a new item) starts on a line of its own.
                if self.mid_text && self.text_item.as_deref() != Some(t.item_id.as_str()) {
                    self.text("\n");
                }
                self.text_item = Some(t.item_id.clone());
                self.text(&t.delta);
            }
            Kind::ReasoningDelta(r) => {
                let first = r.delta.lines().next().unwrap_or("").trim();
                if !first.is_empty() {
                    self.line(&format!("{tag} thinking: {first}"));
                }
            }
            Kind::ToolStart(t) => {
                let what = match pb::ToolKind::try_from(t.kind) {
                    Ok(pb::ToolKind::Command) => format!("$ {}", t.title),
                    _ => format!("⚙ {}", t.title),
                };
                self.line(&format!("{tag} {what}"));
            }
            Kind::ToolEnd(t) => {
                let status =
                    pb::ToolStatus::try_from(t.status).unwrap_or(pb::ToolStatus::Unspecified);
                let mark = match status {
                    pb::ToolStatus::Ok => "✓",
                    pb::ToolStatus::Abandoned => "…",
                    _ => "✗",
                };
                let mut s = format!("{tag} {mark} {}", t.title);
                if t.has_exit_code {
                    s.push_str(&format!(" (exit {})", t.exit_code));
                }
                match status {
                    pb::ToolStatus::Abandoned => s.push_str(" (did not finish)"),
                    pb::ToolStatus::Declined => s.push_str(" (declined)"),
                    _ => {}
                }
                if !t.error.is_empty() {
                    s.push_str(&format!(": {}", t.error));
                }
                for c in &t.changes {
                    s.push_str(&format!("\n    {} {}", c.kind, c.path));
                }
                let out = t.output_tail.trim_end();
                if !out.is_empty() {
                    for l in out
                        .lines()
                        .rev()
                        .take(12)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                    {
                        s.push_str("\n    ");
                        s.push_str(l);
                    }
                }
                self.line(&s);
            }
            Kind::Usage(_) | Kind::ToolOutputDelta(_) => {}
            Kind::Done(d) => {
                let reason = match pb::DoneReason::try_from(d.reason) {
                    Ok(pb::DoneReason::Completed) => "completed",
                    Ok(pb::DoneReason::Interrupted) => "interrupted",
                    Ok(pb::DoneReason::TimedOut) => "timed out",
                    Ok(pb::DoneReason::Failed) => "failed",
                    _ => "ended",
                };
                let mut s = format!("{tag} {reason}");
                if !d.detail.is_empty() {
                    let sep = if reason == "failed" { ": " } else { " " };
                    if reason == "failed" {
                        s.push_str(&format!("{sep}{}", d.detail));
                    } else {
                        s.push_str(&format!(" ({})", d.detail));
                    }
                }
                s.push_str(&format!(" · {:.1} s", d.elapsed_ms as f64 / 1000.0));
                if let Some(u) = &d.usage
                    && (u.input_tokens > 0 || u.output_tokens > 0)
                {
                    s.push_str(&format!(
                        " · tokens {} in, {} out",
                        u.input_tokens, u.output_tokens
                    ));
                }
                self.line(&s);
            }
            Kind::Error(e) => self.line(&format!("{tag} warning: {}", e.message)),
            Kind::CommandReply(c) => {
                let mut s = format!("[fcx] {}", c.title);
                if !c.body.is_empty() {
                    s.push('\n');
                    s.push_str(&c.body);
                }
                self.line(&s);
            }
            Kind::Notice(n) => self.line(&format!("{tag} {}", n.text)),
            // The worker sends none to the console (its files are local).
            Kind::FileOut(f) => self.line(&format!("{tag} file: {} ({} bytes)", f.name, f.size)),
            // The terminal shows the run when it starts.
            Kind::Queued(_) | Kind::ApprovalWait(_) => {}
        }
    }
}

impl Surface for ConsoleOutput {
    fn show<'a>(&'a mut self, ev: &'a pb::WorkerEvent, _draw: bool) -> BoxFuture<'a, ()> {
        self.event(ev);
        Box::pin(async {})
    }

    /// Printed as it happens: nothing is held back.
    fn open_runs(&self) -> usize {
        0
    }
}
