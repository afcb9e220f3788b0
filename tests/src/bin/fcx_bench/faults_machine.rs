//! Fault-matrix rows about fcx's own machine, staged inside fcxd and the
//! worker by the fault shim (`shim.rs`): their wall clock stepping an hour
//! either way, and the worker's state directory turning read-only while it
//! runs. Counted like the other rows (`faults.rs`); a card left streaming
//! ("running") counts as lost. Skipped, with the reason, only where no C
//! compiler can build the shim.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::json;

use super::faults::{ANSWER, Row, push, redelivery, replies, stop_token, wait_runs};
use super::faults_platform::{CARD_RUNS, record_cards_left_running, settle_card};
use super::model::{Model, turns};
use super::shim::{self, Shim};
use super::{FEISHU_OWNER, FeishuRig, child_named};

const HOUR_MS: i64 = 3_600_000;
/// A run card's stop button lives this long (`BUTTON_TTL_SECS` in
/// gateway/src/egress/cards.rs): the precondition reads fcxd's clock from it.
const STOP_TTL_SECS: i64 = 6 * 3600;

fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn skipped(fault: &str, rounds: usize, why: String) -> serde_json::Value {
    eprintln!("fault row {fault} skipped: {why}");
    json!({"fault": fault, "rounds": rounds, "skipped": why})
}

/// A run card's message and stop token, once the card is up.
pub(super) async fn stop_button(r: &FeishuRig, om: &str) -> anyhow::Result<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = r
            .fake
            .messages()
            .into_iter()
            .find(|m| m.sender_type == "app" && m.parent_id == om)
            .and_then(|m| Some((m.message_id, m.card_id?)))
            .and_then(|(mid, card)| Some((mid, stop_token(&r.fake.card(&card)?.json)?)));
        if let Some(f) = found {
            return Ok(f);
        }
        if Instant::now() > deadline {
            anyhow::bail!("no stop button for {om}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The expiry (unix seconds) a card token carries: after the format byte
/// and the key version, big-endian (gateway/src/ingress/callback.rs).
fn token_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    Some(i64::from_be_bytes(bytes.get(5..13)?.try_into().ok()?))
}

/// The worker's clock as its state shows it: the start time it wrote for
/// the run answering `om`, minus the real time now (the run just started).
fn worker_clock_offset_ms(r: &FeishuRig, om: &str) -> Option<i64> {
    let db = r.home.home.join("profiles/default/state.db");
    let c = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()?;
    let at: i64 = c
        .query_row(
            "SELECT started_at_ms FROM runs WHERE reply_to = ?1",
            [om],
            |row| row.get(0),
        )
        .ok()?;
    Some(at - real_now_ms())
}

/// Clicks stop on a stalled run's card and waits (bounded) for the card to
/// end final; the refusal toast when the click was refused.
async fn click_stop(
    r: &FeishuRig,
    chat: &str,
    om: &str,
    carrier: &str,
    token: &str,
) -> anyhow::Result<Result<(), String>> {
    let click =
        r.fake
            .events()
            .card_action(FEISHU_OWNER, carrier, chat, json!({ "fcx": token }), None);
    let frame = r.fake.push(&click).await?;
    let ack = r
        .fake
        .wait_for_ack(&frame, Duration::from_secs(30))
        .await
        .context("a click was not acknowledged")?;
    let toast = &ack.payload["data"]["toast"];
    if toast["type"] == "error" || toast["type"] == "warning" {
        return Ok(Err(toast["content"].to_string()));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let card_final = |r: &FeishuRig| {
        r.fake
            .messages()
            .into_iter()
            .filter(|m| m.sender_type == "app" && m.parent_id == om)
            .filter_map(|m| r.fake.card(m.card_id.as_deref()?))
            .any(|c| !c.streaming_mode)
    };
    while !card_final(r) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(if card_final(r) {
        Ok(())
    } else {
        Err(format!(
            "the stopped run's card still runs: {:?}",
            replies(r, om)
        ))
    })
}

pub(super) const OWN_CLOCK_ROW: &str = "own_wall_clock_steps_1h_both_ways";

/// fcxd's and the worker's own wall clock stepping an hour, forward and
/// back (+1 h, back to true time, −1 h, back: each step an hour), while a
/// run is in flight, a message waits behind it and a click arrives on a
/// button made before the step. Every message is answered once (a message
/// queued across a step is not taken for a late one), every card ends
/// final, and every click acts (a step does not expire the buttons already
/// shown, nor make new ones unusable). The precondition proves the shim is
/// active in both processes: the stop button fcxd signs after the first
/// step carries an expiry an hour ahead, and the worker's run row a start
/// time an hour ahead.
pub(super) async fn own_clock_jump(
    m: &Model,
    bins: &Path,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    let steps = [HOUR_MS, 0, -HOUR_MS, 0];
    let shim = match Shim::new(bins)? {
        Ok(s) => s,
        Err(why) => return Ok(skipped(OWN_CLOCK_ROW, rounds, why)),
    };
    let shim_env = shim.env();
    let mut env: Vec<(&str, &Path)> = shim_env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    // A short orphan grace (fcxd's heartbeat comes every 5 s), so a worker
    // that measured its gateway's silence on the wall clock would take a
    // step for an hour of silence and exit: `worker_restarted` says.
    env.push(("FCX_WORKER_ORPHAN_GRACE_MS", Path::new("20000")));
    let r = m
        .rig(
            bins,
            CARD_RUNS,
            "reply_mode = \"card\"\n",
            &env,
            redelivery(),
        )
        .await?;
    let worker = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
    let loaded = [r.fcxd.id(), worker].into_iter().all(shim::loaded);
    let mut row = Row::default();
    let mut clicks_acted = 0;
    let mut elapsed_an_hour_off = 0;
    let mut clicks_refused = Vec::new();
    let (mut fcxd_offset_s, mut worker_offset_s) = (None, None);
    // A stalled run whose stop button was made before the coming step.
    let mut pending: Option<(String, String, String, String)> = None;
    let mut n = 0;
    for i in 0..rounds {
        for (k, offset) in steps.into_iter().enumerate() {
            n += 1;
            let chat = format!("oc_own{i}_{k}");
            let (a, _) = push(&r, &chat, &m.work("running across the step")).await?;
            stop_button(&r, &a).await?;
            shim.set_clock_offset_ms(offset)?;
            let (b, _) = push(&r, &chat, &m.work("queued across the step")).await?;
            if let Some((c_chat, c_om, carrier, token)) = pending.take() {
                match click_stop(&r, &c_chat, &c_om, &carrier, &token).await? {
                    Ok(()) => clicks_acted += 1,
                    Err(why) => clicks_refused.push(why),
                }
            }
            let c_chat = format!("oc_ownc{n}");
            let (c, _) = push(&r, &c_chat, &m.stall("until clicked")).await?;
            let (carrier, token) = stop_button(&r, &c).await?;
            if offset == HOUR_MS && fcxd_offset_s.is_none() {
                fcxd_offset_s =
                    token_expiry(&token).map(|exp| exp - real_now_ms() / 1000 - STOP_TTL_SECS);
                worker_offset_s = worker_clock_offset_ms(&r, &c).map(|ms| ms / 1000);
            }
            pending = Some((c_chat, c, carrier, token));
            settle_card(&r, &a, &mut row).await;
            settle_card(&r, &b, &mut row).await;
            // Run a (300 ms) was running when the clock stepped.
            elapsed_an_hour_off += usize::from(elapsed_says_an_hour(&r, &a));
        }
    }
    if let Some((c_chat, c_om, carrier, token)) = pending.take() {
        match click_stop(&r, &c_chat, &c_om, &carrier, &token).await? {
            Ok(()) => clicks_acted += 1,
            Err(why) => clicks_refused.push(why),
        }
    }
    // Idle now: two forward steps with the worker waiting for its gateway
    // (its orphan check ticks every 5 s; fcxd's heartbeat, which would
    // hide a wall-clock idle measure, comes first about half the time).
    for _ in 0..2 {
        shim.set_clock_offset_ms(HOUR_MS)?;
        tokio::time::sleep(Duration::from_secs(6)).await;
        shim.set_clock_offset_ms(0)?;
    }
    let restarted = child_named(r.fcxd.id(), "fcx-worker") != Some(worker);
    shim.set_clock_offset_ms(0)?;
    record_cards_left_running(&r, &mut row).await;
    let mut v = row.json(OWN_CLOCK_ROW, rounds * steps.len());
    v["shim_loaded"] = json!(loaded);
    v["fcxd_clock_offset_s"] = json!(fcxd_offset_s);
    v["worker_clock_offset_s"] = json!(worker_offset_s);
    v["clicks"] = json!(n);
    v["clicks_acted"] = json!(clicks_acted);
    v["clicks_refused"] = json!(clicks_refused);
    v["worker_restarted"] = json!(restarted);
    v["elapsed_an_hour_off"] = json!(elapsed_an_hour_off);
    Ok(v)
}

/// Whether the final card answering `om` shows a run length of about an
/// hour (the card footer's "⏱ 1h 00m"), for a run that took a second.
fn elapsed_says_an_hour(r: &FeishuRig, om: &str) -> bool {
    r.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == om)
        .filter_map(|m| r.fake.card(m.card_id.as_deref()?))
        .any(|c| {
            let text = c.json.to_string();
            text.contains("⏱ 1h") || text.contains("⏱ 59m")
        })
}

pub(super) const READ_ONLY_RUNNING_ROW: &str = "state_dir_read_only_under_running_worker";

/// The state directory of a running worker turning read-only (a disk the
/// kernel remounts read-only after errors, with SQLite's files open), then
/// writable again. A message arriving meanwhile: the user is told at once,
/// the message is not acknowledged (the platform redelivers it) and, once
/// writes work, it is answered once. A run in progress when the directory
/// turns read-only (for 4 s): its events and its end wait in the worker
/// until writes work, then its card ends final with the answer, once, never
/// left running. Staged by the fault shim in the worker only: writes under
/// `profiles/<name>` fail with EROFS, SQLite's open files included.
pub(super) async fn read_only_running(
    m: &Model,
    bins: &Path,
    scen: &Path,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    let shim = match Shim::new(bins)? {
        Ok(s) => s,
        Err(why) => return Ok(skipped(READ_ONLY_RUNNING_ROW, rounds, why)),
    };
    // A run long enough to turn the directory read-only in its middle.
    std::fs::write(
        scen.join("ro.jsonl"),
        format!(
            "{{\"thread_started\": true}}\n{{\"turn_started\": true}}\n\
             {{\"agent_message\": \"working\"}}\n{{\"sleep_ms\": 1500}}\n\
             {{\"agent_message\": \"{ANSWER}\"}}\n{{\"turn_completed\": true}}\n"
        ),
    )?;
    let shim_env = shim.env();
    let env: Vec<(&str, &Path)> = shim_env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let r = m
        .rig(
            bins,
            CARD_RUNS,
            "reply_mode = \"card\"\n",
            &env,
            redelivery(),
        )
        .await?;
    let worker = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
    let loaded = shim::loaded(worker);
    let mut row = Row::default();
    let mut told_before_writable = 0;
    let mut acked_while_read_only = 0;
    let mut redelivered_while_read_only = 0;
    for i in 0..rounds {
        // A message arriving while the directory is read-only.
        shim.set_read_only(true)?;
        let (om, frame) = push(&r, &format!("oc_rr{i}"), &m.work("read-only state")).await?;
        let told = |r: &FeishuRig| {
            replies(r, &om)
                .iter()
                .any(|c| c.contains("cannot save messages"))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(told(&r) && r.fake.deliveries(&frame) >= 2) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        told_before_writable += usize::from(told(&r));
        redelivered_while_read_only += usize::from(r.fake.deliveries(&frame) >= 2);
        acked_while_read_only += usize::from(
            r.fake
                .frame_timing(&frame)
                .is_some_and(|t| t.acked_at.is_some()),
        );
        shim.set_read_only(false)?;
        settle_card(&r, &om, &mut row).await;

        // A run in progress when it turns read-only, writable again after
        // a few seconds.
        let turns_before = turns(&r);
        let (om, _) = push(
            &r,
            &format!("oc_rs{i}"),
            &m.work_ms("read-only while running", 2000),
        )
        .await?;
        // Codex is running (its first words are on the card; the real
        // one has asked the model and runs the command): the run is past
        // every write of its start.
        if m.is_real() {
            wait_runs(&r, turns_before + 1).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        } else {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !card_says(&r, &om, "working") && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        shim.set_read_only(true)?;
        tokio::time::sleep(Duration::from_secs(4)).await;
        shim.set_read_only(false)?;
        settle_card(&r, &om, &mut row).await;
    }
    record_cards_left_running(&r, &mut row).await;
    let mut v = row.json(READ_ONLY_RUNNING_ROW, rounds);
    v["shim_loaded"] = json!(loaded);
    v["told_before_writable"] = json!(told_before_writable);
    v["redelivered_while_read_only"] = json!(redelivered_while_read_only);
    v["acked_while_read_only"] = json!(acked_while_read_only);
    v["worker_restarted"] = json!(child_named(r.fcxd.id(), "fcx-worker") != Some(worker));
    Ok(v)
}

/// Whether a card answering `om` shows `text` in its answer.
fn card_says(r: &FeishuRig, om: &str, text: &str) -> bool {
    r.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == om)
        .filter_map(|m| r.fake.card(m.card_id.as_deref()?))
        .any(|c| {
            c.element_content("answer")
                .is_some_and(|a| a.contains(text))
        })
}

pub(super) const FROZEN_ROW: &str = "worker_frozen_mid_run";

/// The worker alive but frozen (SIGSTOP: a deadlock or a process swapped
/// out for good look the same from outside) in the middle of a run, with a
/// second message sent to it while frozen. fcxd takes it for dead after
/// three unanswered heartbeats (every 500 ms here, 5 s by default), kills
/// it and starts the next, which runs the interrupted run again and the
/// waiting message: each answered once, no card left running.
pub(super) async fn worker_frozen(
    m: &Model,
    bins: &Path,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    let env: [(&str, &Path); 1] = [("FCX_WORKER_HEARTBEAT_MS", Path::new("500"))];
    let r = m
        .rig(
            bins,
            CARD_RUNS,
            "reply_mode = \"card\"\n",
            &env,
            redelivery(),
        )
        .await?;
    let mut row = Row::default();
    let mut replaced_after = Vec::new();
    for i in 0..rounds {
        let before = turns(&r);
        let (a, _) = push(&r, &format!("oc_fz{i}"), &m.work("running when frozen")).await?;
        wait_runs(&r, before + 1).await?;
        tokio::time::sleep(super::faults::jitter(i, 250)).await;
        let w = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
        let frozen = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(w as i32),
            nix::sys::signal::Signal::SIGSTOP,
        );
        let (b, _) = push(&r, &format!("oc_fzb{i}"), &m.work("sent while frozen")).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while child_named(r.fcxd.id(), "fcx-worker").is_none_or(|p| p == w)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        replaced_after.push(frozen.elapsed().as_secs_f64());
        settle_card(&r, &a, &mut row).await;
        settle_card(&r, &b, &mut row).await;
    }
    record_cards_left_running(&r, &mut row).await;
    let mut v = row.json(FROZEN_ROW, rounds);
    v["replaced_after_s"] = super::summary(replaced_after);
    v["heartbeat_ms"] = json!(500);
    Ok(v)
}
