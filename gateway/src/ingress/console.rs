//! The console surface: the terminal is the chat. Each stdin line is a
//! message from the profile owner in the private scope `chat:console`; the
//! run's text, tool starts and ends and its final state are printed as they
//! happen.
//!
//! Typed lines are never lost: a line waits (and says so) while the worker
//! restarts, and is delivered once it is back.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, Actor, ChatType, Inbound};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::link::feed::EventFeed;
use crate::link::supervisor::{DeliverError, Notice, WorkerHandle, now_ms};

pub(crate) const SCOPE: &str = "chat:console";

pub(crate) struct Console {
    pub(crate) worker: Arc<WorkerHandle>,
    pub(crate) workspace: String,
    /// Shutdown requested (a signal, `fcxctl stop`, or the console itself at
    /// end of input): stop reading input.
    pub(crate) stop: CancellationToken,
    /// Workers are down: every final event has been printed, stop printing.
    pub(crate) quit: CancellationToken,
}

impl Console {
    /// Read input until stdin ends (then wait for queued work to finish and
    /// request shutdown) or `stop`; keep printing until `quit`, so the final
    /// state of runs stopped by the shutdown is shown.
    pub(crate) async fn run(self) {
        let mut out = Printer::default();
        let feed = self.worker.feed();
        let notices = self.worker.notices();
        out.line(&format!(
            "fcx console · profile {} · workspace {}\nType a request and press Enter. /help lists commands, /stop stops a run, Ctrl-D or Ctrl-C quits.",
            self.worker.profile(),
            self.workspace
        ));
        let printer_stop = CancellationToken::new();
        let printer = tokio::spawn(print_loop(
            self.worker.clone(),
            feed,
            notices,
            printer_stop.clone(),
            out,
        ));
        // The worker is still starting: a first line simply waits for it
        // rather than announcing a problem that is not one.
        tokio::select! {
            _ = self.worker.wait_ready(Duration::from_secs(5)) => {}
            _ = self.stop.cancelled() => {}
        }

        let session = format!("{}-{}", std::process::id(), now_ms());
        let mut pending: VecDeque<Inbound> = VecDeque::new();
        let mut counter = 0u64;
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut stdin_open = true;
        let mut told_waiting = false;
        loop {
            // Deliver what is pending first, in order.
            while let Some(msg) = pending.front().cloned() {
                match self.worker.deliver(msg).await {
                    Ok(_) => {
                        pending.pop_front();
                        told_waiting = false;
                    }
                    Err(DeliverError::Unavailable(_)) => {
                        if !told_waiting {
                            say(
                                "[fcx] the worker is not ready; your message will be delivered when it is back",
                            );
                            told_waiting = true;
                        }
                        break;
                    }
                    Err(DeliverError::Busy(m)) => {
                        say(&format!("[fcx] busy: {m} (this message was not queued)"));
                        pending.pop_front();
                    }
                    Err(DeliverError::Refused(m)) => {
                        say(&format!("[fcx] not sent: {m}"));
                        pending.pop_front();
                    }
                }
            }
            if !stdin_open && pending.is_empty() {
                break;
            }
            let retry = !pending.is_empty();
            tokio::select! {
                line = lines.next_line(), if stdin_open => match line {
                    Ok(Some(text)) => {
                        if text.trim().is_empty() {
                            continue;
                        }
                        counter += 1;
                        let id = format!("console-{session}-{counter}");
                        pending.push_back(Inbound {
                            event_id: id.clone(),
                            scope: SCOPE.into(),
                            actor: Some(Actor { id: "console".into(), name: "console owner".into() }),
                            text,
                            chat_type: ChatType::Console as i32,
                            mentioned: true,
                            chat_id: "console".into(),
                            message_id: id,
                            sent_at_ms: now_ms(),
                            ..Default::default()
                        });
                    }
                    Ok(None) | Err(_) => stdin_open = false,
                },
                _ = self.worker.wait_ready(Duration::from_secs(3600)), if retry => {}
                _ = tokio::time::sleep(Duration::from_millis(200)), if retry => {}
                _ = self.stop.cancelled() => {
                    return self.finish(printer, printer_stop).await;
                }
            }
        }
        // stdin closed: let queued and running work finish, then quit.
        loop {
            if let Some(st) = self.worker.status().await
                && st.queued == 0
                && st.active_runs.is_empty()
            {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.stop.cancelled() => break,
            }
        }
        self.finish(printer, printer_stop).await
    }

    async fn finish(self, printer: tokio::task::JoinHandle<()>, printer_stop: CancellationToken) {
        self.stop.cancel();
        self.quit.cancelled().await;
        printer_stop.cancel();
        let _ = printer.await;
    }
}

fn say(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

/// Prints the worker's events as they come, moving the cursor past each
/// one printed.
async fn print_loop(
    worker: Arc<WorkerHandle>,
    mut feed: EventFeed,
    mut notices: broadcast::Receiver<Notice>,
    stop: CancellationToken,
    mut out: Printer,
) {
    loop {
        tokio::select! {
            biased;
            ev = feed.next() => match ev {
                Some(ev) => {
                    out.event(&ev);
                    worker.cursor().commit(ev.seq + 1);
                }
                None => break,
            },
            n = notices.recv() => if let Ok(n) = n { out.notice(&n) },
            _ = stop.cancelled() => {
                // The worker is down: print whatever it still had for us.
                while let Ok(Some(ev)) =
                    tokio::time::timeout(Duration::from_millis(200), feed.next()).await
                {
                    out.event(&ev);
                    worker.cursor().commit(ev.seq + 1);
                }
                break;
            }
        }
    }
    worker.cursor().flush();
}

#[derive(Default)]
struct Printer {
    /// Whether the last thing printed was answer text without a newline.
    mid_text: bool,
    /// The answer item the open text line belongs to.
    text_item: Option<String>,
}

impl Printer {
    fn line(&mut self, s: &str) {
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

    fn notice(&mut self, n: &Notice) {
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
            Kind::Queued(_) => {}
        }
    }
}
