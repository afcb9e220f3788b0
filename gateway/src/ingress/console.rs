//! The console surface's input: the terminal is the chat. Each stdin line
//! is a message from the profile owner in the private scope `chat:console`;
//! what the worker says is printed by `egress::console`, one more surface.
//!
//! Typed lines are never lost: a line waits (and says so) while the worker
//! restarts, and is delivered once it is back.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use fcx_proto::v1::{Actor, ChatType, Inbound};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::egress::console::ConsoleOutput;
use crate::egress::surface::Surface as _;
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
        let mut out = ConsoleOutput::default();
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
                    Err(DeliverError::Unavailable(_) | DeliverError::Storage(_)) => {
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
    mut out: ConsoleOutput,
) {
    loop {
        tokio::select! {
            biased;
            ev = feed.next() => match ev {
                Some(ev) => {
                    out.show(&ev, true).await;
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
                    out.show(&ev, true).await;
                    worker.cursor().commit(ev.seq + 1);
                }
                break;
            }
        }
    }
    worker.cursor().flush();
}
