//! Fault matrix (issue 14): each row injects one fault around chat messages
//! sent through the fake platform's long connection to the real fcxd and
//! worker with the scripted fake codex (markdown replies, so every answer
//! is one message replying to the user's), and counts per message: answered
//! exactly once, answered twice (duplicated), or neither answered nor told
//! why (lost). Rows where Codex itself fails count "told" instead of
//! "answered". `--quick` runs one round of each (the suite's version);
//! `--fault-rounds N` more (the 20 rounds of each kill).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fcx_tests::fake_feishu::{HandshakeRefusal, Redelivery};
use serde_json::json;

use super::{FEISHU_OWNER, FeishuRig, child_named};

pub(super) const ANSWER: &str = "fault matrix answer";
/// Replies that tell the user why there is no answer.
const TOLD: [&str; 7] = [
    "failed",
    "Failed",
    "no activity",
    "timed out",
    "restarted",
    "messages waiting",
    "cannot save messages",
];

#[derive(Default)]
pub(super) struct Row {
    pub(super) messages: usize,
    pub(super) answered_once: usize,
    pub(super) duplicated: usize,
    pub(super) lost: usize,
    pub(super) told: usize,
}

impl Row {
    pub(super) fn json(&self, fault: &str, rounds: usize) -> serde_json::Value {
        json!({
            "fault": fault,
            "rounds": rounds,
            "messages": self.messages,
            "answered_once": self.answered_once,
            "duplicated": self.duplicated,
            "lost": self.lost,
            "told_user": self.told,
        })
    }
}

/// How a row's message should end.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Expect {
    /// This answer, exactly once (the user may also be told of a restart).
    Answer(&'static str),
    /// Codex failed: a reply saying so, and no answer.
    Told,
}

pub(super) fn replies(rig: &FeishuRig, om: &str) -> Vec<String> {
    rig.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == om)
        .map(|m| m.content)
        .collect()
}

/// Waits (bounded) for the message's outcome, then a little longer so a
/// late duplicate is counted too.
pub(super) async fn settle(rig: &FeishuRig, om: &str, expect: Expect, row: &mut Row) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |r: &[String]| match expect {
        Expect::Answer(a) => r.iter().any(|c| c.contains(a)),
        Expect::Told => r.iter().any(|c| TOLD.iter().any(|t| c.contains(t))),
    };
    while !done(&replies(rig, om)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = replies(rig, om);
    let needle = match expect {
        Expect::Answer(a) => a,
        Expect::Told => ANSWER,
    };
    let answers = r.iter().filter(|c| c.contains(needle)).count();
    let told = r.iter().any(|c| TOLD.iter().any(|t| c.contains(t)));
    row.messages += 1;
    row.told += usize::from(told);
    match (expect, answers) {
        (Expect::Answer(_), 1) => row.answered_once += 1,
        (Expect::Answer(_), 0) if !told => row.lost += 1,
        (Expect::Answer(_), 0) => {}
        (Expect::Answer(_), _) => row.duplicated += 1,
        (Expect::Told, 0) if !told => row.lost += 1,
        (Expect::Told, 0) => {}
        (Expect::Told, _) => row.duplicated += 1,
    }
}

pub(super) async fn push(
    rig: &FeishuRig,
    chat: &str,
    text: &str,
) -> anyhow::Result<(String, String)> {
    let ev = rig.fake.events().p2p_text(chat, FEISHU_OWNER, text);
    let om = ev["event"]["message"]["message_id"]
        .as_str()
        .context("message id")?
        .to_string();
    let frame = rig.fake.push(&ev).await?;
    Ok((om, frame))
}

fn codex_runs(rig: &FeishuRig) -> usize {
    std::fs::read_dir(&rig.home.fake_log)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

async fn wait_runs(rig: &FeishuRig, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while codex_runs(rig) < n {
        if Instant::now() > deadline {
            anyhow::bail!("codex run {n} never started");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A pseudo-random delay in `0..max_ms` (the kill's point in the run).
pub(super) fn jitter(round: usize, max_ms: u64) -> Duration {
    let x = (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    Duration::from_millis(x % max_ms.max(1))
}

pub(super) fn redelivery() -> Redelivery {
    Redelivery::fast(Duration::from_secs(2), Duration::from_millis(500), 8)
}

pub(super) async fn rig(bins: &Path, scenarios: &Path, runs: &str) -> anyhow::Result<FeishuRig> {
    FeishuRig::start_redelivering(
        bins,
        runs,
        "reply_mode = \"markdown\"\n",
        &[("FAKE_CODEX_SCENARIOS", scenarios)],
        redelivery(),
    )
    .await
}

/// Every row; `rounds` messages each (kills at a different point each round).
pub(super) async fn bench_faults(bins: &Path, rounds: usize) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::Builder::new()
        .prefix("fcxbx")
        .tempdir_in("/tmp")?;
    let scen = dir.path();
    std::fs::write(
        scen.join("fm.jsonl"),
        format!(
            "{{\"thread_started\": true}}\n{{\"turn_started\": true}}\n{{\"sleep_ms\": 300}}\n\
             {{\"agent_message\": \"{ANSWER}\"}}\n{{\"turn_completed\": true}}\n"
        ),
    )?;
    let rounds = rounds.max(1);
    let mut rows = Vec::new();
    let runs = "max_concurrent = 4";

    // kill -9 of the worker while a run is in flight.
    {
        let r = rig(bins, scen, runs).await?;
        let mut row = Row::default();
        for i in 0..rounds {
            let before = codex_runs(&r);
            let (om, _) = push(&r, &format!("oc_wk{i}"), "FAKE:fm worker kill").await?;
            wait_runs(&r, before + 1).await?;
            tokio::time::sleep(jitter(i, 250)).await;
            let w = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(w as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            settle(&r, &om, Expect::Answer(ANSWER), &mut row).await;
        }
        rows.push(row.json("worker_kill9_mid_run", rounds));
    }

    // kill -9 of fcxd while a run is in flight; a new fcxd takes over.
    {
        let mut r = rig(bins, scen, runs).await?;
        let mut row = Row::default();
        for i in 0..rounds {
            let before = codex_runs(&r);
            let conns = r.fake.connects();
            let (om, _) = push(&r, &format!("oc_gk{i}"), "FAKE:fm fcxd kill").await?;
            wait_runs(&r, before + 1).await?;
            tokio::time::sleep(jitter(i, 250)).await;
            r.restart_fcxd_after_kill9()?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while r.fake.connects() <= conns && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            settle(&r, &om, Expect::Answer(ANSWER), &mut row).await;
        }
        rows.push(row.json("fcxd_kill9_mid_run", rounds));
    }

    // The long connection: dropped right after a push, reconnects refused,
    // malformed frames, the same event delivered twice at once.
    {
        let r = rig(bins, scen, runs).await?;
        let mut drop_row = Row::default();
        let mut refused_row = Row::default();
        let mut garbage_row = Row::default();
        let mut dup_row = Row::default();
        for i in 0..rounds {
            let (om, _) = push(&r, &format!("oc_wd{i}"), "FAKE:fm ws drop").await?;
            r.fake.drop_connections();
            settle(&r, &om, Expect::Answer(ANSWER), &mut drop_row).await;

            r.fake.refuse_handshakes(2, HandshakeRefusal::Status(503));
            r.fake.drop_connections();
            let (om, _) = push(&r, &format!("oc_wr{i}"), "FAKE:fm refused").await?;
            settle(&r, &om, Expect::Answer(ANSWER), &mut refused_row).await;

            r.fake.push_raw_frame(vec![0xff; 64]).await?;
            r.fake.push_raw_frame(vec![0x08, 0x01, 0x10]).await?;
            let (om, _) = push(&r, &format!("oc_wg{i}"), "FAKE:fm garbage frames").await?;
            settle(&r, &om, Expect::Answer(ANSWER), &mut garbage_row).await;

            let before = codex_runs(&r);
            let (om, frame) = push(&r, &format!("oc_wu{i}"), "FAKE:fm twice").await?;
            r.fake.push_duplicate(&frame).await?;
            settle(&r, &om, Expect::Answer(ANSWER), &mut dup_row).await;
            if codex_runs(&r) != before + 1 {
                dup_row.duplicated += 1;
            }
        }
        rows.push(drop_row.json("ws_drop_after_push", rounds));
        rows.push(refused_row.json("ws_reconnect_refused_twice", rounds));
        rows.push(garbage_row.json("ws_malformed_frames", rounds));
        rows.push(dup_row.json("event_delivered_twice_at_once", rounds));
    }

    // 429 and 5xx storms on every API the gateway uses.
    {
        let r = rig(bins, scen, runs).await?;
        let mut rl = Row::default();
        let mut five = Row::default();
        for i in 0..rounds {
            r.fake.rate_limit_storm("/open-apis/*", 6, 1);
            let (om, _) = push(&r, &format!("oc_rl{i}"), "FAKE:fm 429").await?;
            settle(&r, &om, Expect::Answer(ANSWER), &mut rl).await;
            r.fake.fail_next("/open-apis/*", 6, 503);
            let (om, _) = push(&r, &format!("oc_5x{i}"), "FAKE:fm 5xx").await?;
            settle(&r, &om, Expect::Answer(ANSWER), &mut five).await;
        }
        rows.push(rl.json("http_429_storm_all_apis", rounds));
        rows.push(five.json("http_5xx_storm_all_apis", rounds));
    }

    // Codex misbehaving: crash, garbage on stdout, hang past the timeout.
    {
        let r = rig(bins, scen, "max_concurrent = 4\nidle_timeout_secs = 2").await?;
        let mut crash = Row::default();
        let mut garbage = Row::default();
        let mut hang = Row::default();
        for i in 0..rounds {
            let (om, _) = push(&r, &format!("oc_cc{i}"), "FAKE:crash").await?;
            settle(&r, &om, Expect::Told, &mut crash).await;
            // Garbage lines are skipped; the answer after them arrives.
            let (om, _) = push(&r, &format!("oc_cg{i}"), "FAKE:garbage").await?;
            settle(&r, &om, Expect::Answer("garbage survived"), &mut garbage).await;
            let (om, _) = push(&r, &format!("oc_ch{i}"), "FAKE:stall").await?;
            settle(&r, &om, Expect::Told, &mut hang).await;
        }
        rows.push(crash.json("codex_crash", rounds));
        rows.push(garbage.json("codex_garbage_stdout", rounds));
        rows.push(hang.json("codex_hang_past_idle_timeout", rounds));
    }

    // Queue full: a chat with a run in flight and 50 messages waiting gets
    // the busy answer for the messages beyond (which ones depends on the
    // order the gateway's concurrent deliveries reach the worker).
    let busy = {
        let r = rig(bins, scen, "max_concurrent = 1\ndebounce_ms = 0").await?;
        let (_, _) = push(&r, "oc_q", "FAKE:stall holding the slot").await?;
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
        json!({
            "fault": "queue_full_busy_answer",
            "rounds": 1,
            "messages": SENT - CAP,
            "told_user": told,
            "lost": (SENT - CAP).saturating_sub(told),
            "duplicated": 0,
        })
    };
    rows.push(busy);

    rows.extend(super::faults_platform::rows(bins, scen, rounds).await?);

    let click_ack_ms = bench_click_ack(bins, rounds).await?;
    let lost: u64 = rows.iter().filter_map(|r| r["lost"].as_u64()).sum();
    let dup: u64 = rows.iter().filter_map(|r| r["duplicated"].as_u64()).sum();
    Ok(json!({
        "rows": rows,
        "click_ack_ms": click_ack_ms,
        "lost": lost,
        "duplicated": dup,
        "not_covered": super::faults_platform::NOT_COVERED,
    }))
}

/// The stop button's signed value in a card's JSON.
pub(super) fn stop_token(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("element_id").and_then(|e| e.as_str()) == Some("stop") {
                return m["behaviors"][0]["value"]["fcx"]
                    .as_str()
                    .map(str::to_string);
            }
            m.values().find_map(stop_token)
        }
        serde_json::Value::Array(a) => a.iter().find_map(stop_token),
        _ => None,
    }
}

/// Card click → ACK latency at the platform (issue 14: within 1 s, p99),
/// with the worker idle and with it just killed (restarting): each sample
/// is a stop click on a fresh run's card.
pub(super) async fn bench_click_ack(
    bins: &Path,
    samples: usize,
) -> anyhow::Result<serde_json::Value> {
    let r = FeishuRig::start_redelivering(
        bins,
        "max_concurrent = 4",
        "reply_mode = \"card\"\n",
        &[],
        redelivery(),
    )
    .await?;
    let mut out = serde_json::Map::new();
    let mut n = 0;
    for restarting in [false, true] {
        let mut lat = Vec::new();
        for _ in 0..samples.max(1) {
            n += 1;
            let chat = format!("oc_click{n}");
            let (om, _) = push(&r, &chat, "FAKE:stall until clicked").await?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let (carrier, token) = loop {
                let found = r
                    .fake
                    .messages()
                    .into_iter()
                    .find(|m| m.sender_type == "app" && m.parent_id == om)
                    .and_then(|m| Some((m.message_id, m.card_id?)))
                    .and_then(|(mid, card)| Some((mid, stop_token(&r.fake.card(&card)?.json)?)));
                if let Some(f) = found {
                    break f;
                }
                if Instant::now() > deadline {
                    anyhow::bail!("no stop button for {om}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            if restarting {
                let w = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(w as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let click = r.fake.events().card_action(
                FEISHU_OWNER,
                &carrier,
                &chat,
                json!({ "fcx": token }),
                None,
            );
            let frame = r.fake.push(&click).await?;
            r.fake
                .wait_for_ack(&frame, Duration::from_secs(30))
                .await
                .context("a click was not acknowledged")?;
            let t = r.fake.frame_timing(&frame).context("no frame timing")?;
            if let (Some(p), Some(a)) = (t.pushed_at, t.acked_at) {
                lat.push(a.saturating_duration_since(p).as_secs_f64() * 1e3);
            }
            // The run ends (stopped, or interrupted by the restart) before
            // the next sample, so the worker is back.
            let deadline = Instant::now() + Duration::from_secs(30);
            while child_named(r.fcxd.id(), "fcx-worker").is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let key = if restarting {
            "worker_restarting"
        } else {
            "run_in_flight"
        };
        out.insert(key.into(), super::summary(lat));
    }
    Ok(serde_json::Value::Object(out))
}
