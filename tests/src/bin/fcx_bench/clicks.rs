//! Card click → ACK at the platform under load (issue 14 item 9: a click is
//! acknowledged within 1 s at p99 even while the worker is busy or
//! restarting). Enough clicks for a p99 to mean something:
//!
//! - busy: the pool full (4 slots) and a queue of stalled runs waiting,
//!   one chat each; every click stops a running run (a click that reaches
//!   the worker), and a new message takes its chat's place in the queue;
//! - restarting: kill -9 of the worker, then the stop buttons of the runs
//!   it held clicked at once, while fcxd restarts it.
//!
//! Slowness is printed, never judged; an unacknowledged click, one ACKed
//! twice or with an error code fails the bench.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::faults::{push, redelivery, stop_token};
use super::{FEISHU_OWNER, FeishuRig, child_named, summary};

const SLOTS: usize = 4;
/// Stalled messages waiting behind the full pool.
const QUEUED: usize = 32;
const STALL: &str = "FAKE:stall until clicked";

/// Clicks with the pool full and a queue waiting (`busy`), and clicks sent
/// while the worker restarts (`restarting`, at least that many: the runs
/// of each killed worker are all clicked).
pub(super) async fn bench_clicks(
    bins: &Path,
    busy: usize,
    restarting: usize,
) -> anyhow::Result<serde_json::Value> {
    let r = FeishuRig::start_redelivering(
        bins,
        &format!("max_concurrent = {SLOTS}"),
        "reply_mode = \"card\"\n",
        &[],
        redelivery(),
    )
    .await?;
    let mut b = Clicks::default();
    for _ in 0..SLOTS + QUEUED {
        b.message(&r).await?;
    }
    let mut busy_ms = Vec::new();
    while busy_ms.len() < busy {
        let (carrier, chat, token) = b.next_stop(&r, 1).await?.remove(0);
        let frame = b.click(&r, &carrier, &chat, &token).await?;
        busy_ms.extend(b.acked(&r, &frame).await);
        // The stopped run's chat leaves; a new one joins the queue.
        b.message(&r).await?;
    }
    let mut restart_ms = Vec::new();
    let mut kills = 0;
    while restart_ms.len() < restarting {
        let stops = b.next_stop(&r, SLOTS).await?;
        let w = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(w as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        kills += 1;
        let mut frames = Vec::new();
        for (carrier, chat, token) in &stops {
            frames.push(b.click(&r, carrier, chat, token).await?);
        }
        for f in &frames {
            restart_ms.extend(b.acked(&r, f).await);
        }
        for _ in 0..stops.len() {
            b.message(&r).await?;
        }
        // The next round kills the new worker, once it is back.
        let deadline = Instant::now() + Duration::from_secs(60);
        while child_named(r.fcxd.id(), "fcx-worker").is_none_or(|n| n == w) {
            anyhow::ensure!(Instant::now() < deadline, "the worker did not come back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // An ACK counted twice or refused shows in the fake's record.
    let acks = r.fake.acks();
    let mut twice = 0;
    let mut refused = 0;
    for f in &b.frames {
        let of: Vec<_> = acks.iter().filter(|a| &a.message_id == f).collect();
        twice += usize::from(of.len() > 1);
        refused += of.iter().filter(|a| a.code != Some(200)).count();
    }
    Ok(json!({
        "slots": SLOTS,
        "queued_behind": QUEUED,
        "busy_ms": summary(busy_ms),
        "restarting_ms": summary(restart_ms),
        "worker_kills": kills,
        "clicks": b.frames.len(),
        "unacknowledged": b.unacked,
        "acked_twice": twice,
        "refused": refused,
    }))
}

#[derive(Default)]
struct Clicks {
    chats: usize,
    /// The chat of each message pushed.
    chat_of: HashMap<String, String>,
    /// Stop tokens already clicked.
    used: HashSet<String>,
    /// Every click's frame.
    frames: Vec<String>,
    unacked: usize,
}

impl Clicks {
    /// One more stalled run waiting, in a chat of its own.
    async fn message(&mut self, r: &FeishuRig) -> anyhow::Result<()> {
        self.chats += 1;
        let chat = format!("oc_clk{}", self.chats);
        let (om, _) = push(r, &chat, STALL).await?;
        self.chat_of.insert(om, chat);
        Ok(())
    }

    /// At least `n` (or, after 5 s with fewer, what there is) stop buttons
    /// of running runs not clicked yet: (card message, chat, token).
    async fn next_stop(
        &mut self,
        r: &FeishuRig,
        n: usize,
    ) -> anyhow::Result<Vec<(String, String, String)>> {
        let start = Instant::now();
        loop {
            let found: Vec<_> = r
                .fake
                .messages()
                .into_iter()
                .filter(|m| m.sender_type == "app")
                .filter_map(|m| {
                    let token = stop_token(&r.fake.card(m.card_id.as_ref()?)?.json)?;
                    let chat = self.chat_of.get(&m.parent_id)?.clone();
                    Some((m.message_id, chat, token))
                })
                .filter(|(_, _, t)| !self.used.contains(t))
                .take(n)
                .collect();
            let waited = start.elapsed();
            if found.len() >= n || (!found.is_empty() && waited > Duration::from_secs(5)) {
                self.used.extend(found.iter().map(|f| f.2.clone()));
                return Ok(found);
            }
            anyhow::ensure!(waited < Duration::from_secs(60), "no stop button to click");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn click(
        &mut self,
        r: &FeishuRig,
        carrier: &str,
        chat: &str,
        token: &str,
    ) -> anyhow::Result<String> {
        let ev =
            r.fake
                .events()
                .card_action(FEISHU_OWNER, carrier, chat, json!({ "fcx": token }), None);
        let frame = r.fake.push(&ev).await?;
        self.frames.push(frame.clone());
        Ok(frame)
    }

    /// The click's push → ACK, in ms; none (counted) when it never came.
    async fn acked(&mut self, r: &FeishuRig, frame: &str) -> Option<f64> {
        if r.fake
            .wait_for_ack(frame, Duration::from_secs(30))
            .await
            .is_err()
        {
            self.unacked += 1;
            return None;
        }
        let t = r.fake.frame_timing(frame)?;
        Some(
            t.acked_at?
                .saturating_duration_since(t.pushed_at?)
                .as_secs_f64()
                * 1e3,
        )
    }
}
