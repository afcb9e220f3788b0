//! Fault-matrix rows where Codex itself fails (issue 14, point 1): it
//! crashes, prints garbage on stdout, hangs past the idle timeout; and the
//! full queue's busy answer. Card replies, as users get them: a failed run
//! must end its card final and say why there (or in a reply), never be left
//! "running".
//!
//! With the real CLI (`model.rs`) a crash is codex killed -9 in the middle
//! of a command, and a hang is the model's stream held open without a
//! word. Garbage on stdout cannot be had from the real CLI: that row plays
//! the scripted fake codex.

use std::path::Path;
use std::time::{Duration, Instant};

use fcx_tests::fake_feishu::CardState;
use serde_json::json;

use super::FeishuRig;
use super::faults::{Row, TOLD, push, redelivery, replies, timed, wait_runs, wanted};
use super::faults_platform::{record_cards_left_running, settle_card_for};
use super::model::{Model, turns};

/// A card that says its run did not end well: its title names the phase.
fn card_told(card: &CardState) -> bool {
    let title = card.json["header"]["title"]["content"]
        .as_str()
        .unwrap_or_default();
    !card.streaming_mode
        && ["Failed", "Timed out", "Interrupted"]
            .iter()
            .any(|p| title.contains(p))
}

/// Waits (bounded) for the run answering `om` to end told (a final card
/// naming the failure, or a reply saying it), then counts: told once,
/// told twice (duplicated), or neither (lost; a card left streaming too).
pub(super) async fn settle_told(r: &FeishuRig, om: &str, row: &mut Row) {
    let told = |r: &FeishuRig| -> (usize, usize) {
        let mut told = 0;
        let mut running = 0;
        for m in r.fake.messages() {
            if m.sender_type != "app" || m.parent_id != om {
                continue;
            }
            match m.card_id.as_deref().and_then(|id| r.fake.card(id)) {
                Some(card) if card_told(&card) => told += 1,
                Some(card) if card.streaming_mode => running += 1,
                Some(_) => {}
                None => told += usize::from(TOLD.iter().any(|t| m.content.contains(t))),
            }
        }
        (told, running)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while told(r).0 == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (n, running) = told(r);
    row.messages += 1;
    row.told += usize::from(n > 0);
    match (n, running) {
        (1, 0) => {}
        (0, _) | (_, 1..) => {
            row.lost += 1;
            eprintln!(
                "fault matrix: {om} lost; {}",
                super::faults_platform::what_was_said(r, om)
            );
        }
        _ => row.duplicated += 1,
    }
}

/// Every process below `root` named `name` (the codex child may sit under
/// fcx's sandbox wrapper).
fn descendants_named(root: u32, name: &str) -> Vec<u32> {
    let procs = super::soak::processes();
    let mut under = vec![root];
    let mut out = Vec::new();
    let mut i = 0;
    while i < under.len() {
        let parent = under[i];
        for (pid, ppid, comm) in &procs {
            if *ppid == parent {
                under.push(*pid);
                if comm == name {
                    out.push(*pid);
                }
            }
        }
        i += 1;
    }
    out
}

/// Codex crashing, printing garbage, hanging; then the full queue.
pub(super) async fn rows(
    m: &Model,
    bins: &Path,
    scen: &Path,
    rounds: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    let mut t = Instant::now();
    let card = "reply_mode = \"card\"\n";
    let runs = "max_concurrent = 4\nidle_timeout_secs = 2";
    let fake = Model::Fake(scen.to_path_buf());
    if wanted(&["codex_crash", "codex_hang_past_idle_timeout"]) {
        let r = m.rig(bins, runs, card, &[], redelivery()).await?;
        let mut crash = Row::default();
        let mut hang = Row::default();
        for i in 0..rounds {
            if m.is_real() {
                let before = turns(&r);
                let (om, _) = push(&r, &format!("oc_cc{i}"), &m.work_ms("crash", 5000)).await?;
                wait_runs(&r, before + 1).await?;
                let worker = super::child_named(r.fcxd.id(), "fcx-worker").unwrap_or(0);
                for pid in descendants_named(worker, "codex") {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                settle_told(&r, &om, &mut crash).await;
            } else {
                let (om, _) = push(&r, &format!("oc_cc{i}"), "FAKE:crash").await?;
                settle_told(&r, &om, &mut crash).await;
            }
            let (om, _) = push(&r, &format!("oc_ch{i}"), &m.stall("hang")).await?;
            settle_told(&r, &om, &mut hang).await;
        }
        let mut cards = Row::default();
        record_cards_left_running(&r, &mut cards).await;
        crash.cards_left_running = cards.cards_left_running;
        hang.cards_left_running = cards.cards_left_running;
        let mut v = crash.json("codex_crash", rounds);
        v["codex"] = json!(m.name());
        rows.push(v);
        let mut v = hang.json("codex_hang_past_idle_timeout", rounds);
        v["codex"] = json!(m.name());
        rows.push(v);
    }
    if wanted(&["codex_garbage_stdout"]) {
        // Garbage lines are skipped; the answer after them arrives.
        let r = fake.rig(bins, runs, card, &[], redelivery()).await?;
        let mut garbage = Row::default();
        for i in 0..rounds {
            let (om, _) = push(&r, &format!("oc_cg{i}"), "FAKE:garbage").await?;
            settle_card_for(&r, &om, "garbage survived", &mut garbage).await;
        }
        record_cards_left_running(&r, &mut garbage).await;
        let mut v = garbage.json("codex_garbage_stdout", rounds);
        v["codex"] = json!(fake.name());
        rows.push(v);
    }
    timed(&mut rows, &mut t);
    if wanted(&["queue_full_busy_answer"]) {
        rows.push(queue_full(m, bins).await?);
        timed(&mut rows, &mut t);
    }
    Ok(rows)
}

/// Queue full: a chat with a run in flight and 50 messages waiting gets
/// the busy answer for the messages beyond (which ones depends on the
/// order the gateway's concurrent deliveries reach the worker).
async fn queue_full(m: &Model, bins: &Path) -> anyhow::Result<serde_json::Value> {
    let r = m
        .rig(
            bins,
            "max_concurrent = 1\ndebounce_ms = 0",
            "reply_mode = \"card\"\n",
            &[],
            redelivery(),
        )
        .await?;
    let (_, _) = push(&r, "oc_q", &m.stall("holding the slot")).await?;
    wait_runs(&r, 1).await?;
    const CAP: usize = 50;
    const SENT: usize = CAP + 5;
    let mut oms = Vec::new();
    for i in 0..SENT {
        oms.push(push(&r, "oc_q", &format!("queued {i}")).await?.0);
    }
    let told = |r: &FeishuRig| {
        oms.iter()
            .filter(|om| {
                replies(r, om)
                    .iter()
                    .any(|c| c.contains("messages waiting"))
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while told(&r) < SENT - CAP && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let told = told(&r);
    Ok(json!({
        "fault": "queue_full_busy_answer",
        "rounds": 1,
        "messages": SENT - CAP,
        "told_user": told,
        "lost": (SENT - CAP).saturating_sub(told),
        "duplicated": 0,
        "codex": m.name(),
    }))
}
