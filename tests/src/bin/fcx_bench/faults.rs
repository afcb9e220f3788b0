//! Fault matrix (issue 14): each row injects one fault around chat messages
//! sent through the fake platform's long connection to the real fcxd and
//! worker, whose runs are the real Codex CLI talking to the mock model
//! (`model.rs`; the scripted fake codex only where Codex must print
//! garbage, or with `--fake-codex`), and counts per message: answered
//! exactly once, answered twice (duplicated), or neither answered nor told
//! why (lost). Rows reply with streaming run cards and also count the cards
//! left "running" when the row ends (`cards_left_running`); the rows where
//! Codex itself fails (`faults_codex.rs`) count "told" instead of
//! "answered". `--quick` runs one round of each (the suite's version);
//! `--fault-rounds N` more (the 20 rounds of each kill).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fcx_tests::fake_feishu::{HandshakeRefusal, Redelivery};
use serde_json::json;

use super::faults_platform::{record_cards_left_running, settle_card};
use super::model::{Model, turns};
use super::{FEISHU_OWNER, FeishuRig, child_named};

pub(super) const ANSWER: &str = "fault matrix answer";

/// `--fault-rows`: the rows to run (name prefixes); every row when empty.
pub(super) static ROWS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Whether a section making these rows runs (`--fault-rows`).
pub(super) fn wanted(rows: &[&str]) -> bool {
    match ROWS.get() {
        Some(f) if !f.is_empty() => rows
            .iter()
            .any(|r| f.iter().any(|p| r.starts_with(p.as_str()))),
        _ => true,
    }
}
/// Replies that tell the user why there is no answer.
pub(super) const TOLD: [&str; 7] = [
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
    /// Run cards still streaming when the row ended (card rows only).
    pub(super) cards_left_running: Option<usize>,
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
            "cards_left_running": self.cards_left_running,
        })
    }
}

pub(super) fn replies(rig: &FeishuRig, om: &str) -> Vec<String> {
    rig.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == om)
        .map(|m| m.content)
        .collect()
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

/// Waits (bounded) until `n` Codex turns have started on the rig.
pub(super) async fn wait_runs(rig: &FeishuRig, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while turns(rig) < n {
        if Instant::now() > deadline {
            anyhow::bail!("codex run {n} never started");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Stamps the rows a section just pushed (those without `took_s`) with the
/// section's time, prints it, and restarts the clock. Rows sharing one rig
/// share its time.
pub(super) fn timed(rows: &mut [serde_json::Value], t: &mut Instant) {
    let took = t.elapsed().as_secs_f64();
    for r in rows.iter_mut().filter(|r| r.get("took_s").is_none()) {
        eprintln!("fault row {} took {took:.1} s", r["fault"]);
        r["took_s"] = json!((took * 10.0).round() / 10.0);
    }
    *t = Instant::now();
}

/// A pseudo-random delay in `0..max_ms` (the kill's point in the run).
pub(super) fn jitter(round: usize, max_ms: u64) -> Duration {
    let x = (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    Duration::from_millis(x % max_ms.max(1))
}

pub(super) fn redelivery() -> Redelivery {
    Redelivery::fast(Duration::from_secs(2), Duration::from_millis(500), 8)
}

/// A rig replying with streaming run cards (CardKit), so each row also
/// checks that no card is left "running".
pub(super) async fn rig(m: &Model, bins: &Path, runs: &str) -> anyhow::Result<FeishuRig> {
    m.rig(bins, runs, "reply_mode = \"card\"\n", &[], redelivery())
        .await
}

/// Every row; `rounds` messages each (kills at a different point each round).
/// `fake_codex`: every run on the scripted fake codex (no real CLI here).
pub(super) async fn bench_faults(
    bins: &Path,
    rounds: usize,
    fake_codex: bool,
) -> anyhow::Result<serde_json::Value> {
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
    let m = Model::new(fake_codex, scen)?;
    eprintln!("fault rows run {}", m.name());
    let rounds = rounds.max(1);
    let mut rows = Vec::new();
    let runs = "max_concurrent = 4";
    let mut t = Instant::now();

    // kill -9 of the worker while a run is in flight.
    if wanted(&["worker_kill9_mid_run"]) {
        let r = rig(&m, bins, runs).await?;
        let mut row = Row::default();
        for i in 0..rounds {
            let before = turns(&r);
            let (om, _) = push(&r, &format!("oc_wk{i}"), &m.work("worker kill")).await?;
            wait_runs(&r, before + 1).await?;
            tokio::time::sleep(jitter(i, 250)).await;
            let w = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(w as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            settle_card(&r, &om, &mut row).await;
        }
        record_cards_left_running(&r, &mut row).await;
        let mut v = row.json("worker_kill9_mid_run", rounds);
        // Turns Codex started: the killed runs' and their reruns'.
        v["codex_turns"] = json!(turns(&r));
        rows.push(v);
    }
    timed(&mut rows, &mut t);

    if wanted(&[super::faults_machine::FROZEN_ROW]) {
        rows.push(super::faults_machine::worker_frozen(&m, bins, rounds).await?);
        timed(&mut rows, &mut t);
    }

    // kill -9 of fcxd while a run is in flight; a new fcxd takes over.
    if wanted(&["fcxd_kill9_mid_run"]) {
        let mut r = rig(&m, bins, runs).await?;
        let mut row = Row::default();
        for i in 0..rounds {
            let before = turns(&r);
            let conns = r.fake.connects();
            let (om, _) = push(&r, &format!("oc_gk{i}"), &m.work("fcxd kill")).await?;
            wait_runs(&r, before + 1).await?;
            tokio::time::sleep(jitter(i, 250)).await;
            r.restart_fcxd_after_kill9()?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while r.fake.connects() <= conns && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            settle_card(&r, &om, &mut row).await;
        }
        record_cards_left_running(&r, &mut row).await;
        let mut v = row.json("fcxd_kill9_mid_run", rounds);
        // Turns Codex started: the killed runs' and their reruns'.
        v["codex_turns"] = json!(turns(&r));
        rows.push(v);
    }
    timed(&mut rows, &mut t);

    // The long connection: dropped right after a push, reconnects refused,
    // malformed frames, the same event delivered twice at once.
    if wanted(&[
        "ws_drop_after_push",
        "ws_reconnect_refused_twice",
        "ws_malformed_frames",
        "event_delivered_twice_at_once",
    ]) {
        let r = rig(&m, bins, runs).await?;
        let mut drop_row = Row::default();
        let mut refused_row = Row::default();
        let mut garbage_row = Row::default();
        let mut dup_row = Row::default();
        for i in 0..rounds {
            let (om, _) = push(&r, &format!("oc_wd{i}"), &m.work("ws drop")).await?;
            r.fake.drop_connections();
            settle_card(&r, &om, &mut drop_row).await;

            r.fake.refuse_handshakes(2, HandshakeRefusal::Status(503));
            r.fake.drop_connections();
            let (om, _) = push(&r, &format!("oc_wr{i}"), &m.work("refused")).await?;
            settle_card(&r, &om, &mut refused_row).await;

            r.fake.push_raw_frame(vec![0xff; 64]).await?;
            r.fake.push_raw_frame(vec![0x08, 0x01, 0x10]).await?;
            let (om, _) = push(&r, &format!("oc_wg{i}"), &m.work("garbage frames")).await?;
            settle_card(&r, &om, &mut garbage_row).await;

            let before = turns(&r);
            let (om, frame) = push(&r, &format!("oc_wu{i}"), &m.work("twice")).await?;
            r.fake.push_duplicate(&frame).await?;
            settle_card(&r, &om, &mut dup_row).await;
            if turns(&r) != before + 1 {
                dup_row.duplicated += 1;
            }
        }
        // One rig for the four rows: each holds the count of the whole.
        let mut cards = Row::default();
        record_cards_left_running(&r, &mut cards).await;
        for row in [
            &mut drop_row,
            &mut refused_row,
            &mut garbage_row,
            &mut dup_row,
        ] {
            row.cards_left_running = cards.cards_left_running;
        }
        rows.push(drop_row.json("ws_drop_after_push", rounds));
        rows.push(refused_row.json("ws_reconnect_refused_twice", rounds));
        rows.push(garbage_row.json("ws_malformed_frames", rounds));
        rows.push(dup_row.json("event_delivered_twice_at_once", rounds));
    }
    timed(&mut rows, &mut t);

    // 429 and 5xx storms on every API the gateway uses: each storm strikes
    // the next calls to one API family (so CardKit's create/update/stream
    // calls are hit, not only the first calls of a run), then all at once.
    // Image/file upload, resource download and the Drive comment APIs are
    // stormed in `faults_media.rs` (their runs need attachments, Codex's
    // outbox or a comment event).
    const FAMILIES: [&str; 4] = [
        "/open-apis/im/v1/messages*",
        "/open-apis/cardkit/v1/*",
        "/open-apis/auth/*",
        "/open-apis/*",
    ];
    if wanted(&["http_429_storm_all_apis", "http_5xx_storm_all_apis"]) {
        let r = rig(&m, bins, runs).await?;
        let mut rl = Row::default();
        let mut five = Row::default();
        for i in 0..rounds {
            for (k, family) in FAMILIES.into_iter().enumerate() {
                // The token is cached for hours: expired, so the run's
                // first call fetches a new one into the storm.
                let expire = || {
                    if family.starts_with("/open-apis/auth") {
                        r.fake.expire_tokens();
                    }
                };
                expire();
                r.fake.rate_limit_storm(family, 6, 1);
                let (om, _) = push(&r, &format!("oc_rl{i}_{k}"), &m.work("429")).await?;
                settle_card(&r, &om, &mut rl).await;
                r.fake.clear_http_faults();
                expire();
                r.fake.fail_next(family, 6, 503);
                let (om, _) = push(&r, &format!("oc_5x{i}_{k}"), &m.work("5xx")).await?;
                settle_card(&r, &om, &mut five).await;
                r.fake.clear_http_faults();
            }
        }
        let struck = |r: &FeishuRig, status: u16| -> Vec<String> {
            let mut fams: Vec<String> = r
                .fake
                .requests()
                .into_iter()
                .filter(|c| c.status == status)
                .map(|c| c.path.split('/').take(5).collect::<Vec<_>>().join("/"))
                .collect();
            fams.sort();
            fams.dedup();
            fams
        };
        record_cards_left_running(&r, &mut rl).await;
        five.cards_left_running = rl.cards_left_running;
        let mut v = rl.json("http_429_storm_all_apis", rounds);
        v["apis_struck"] = json!(struck(&r, 429));
        rows.push(v);
        let mut v = five.json("http_5xx_storm_all_apis", rounds);
        v["apis_struck"] = json!(struck(&r, 503));
        rows.push(v);
    }
    timed(&mut rows, &mut t);

    rows.extend(super::faults_codex::rows(&m, bins, scen, rounds).await?);

    rows.extend(super::faults_platform::rows(&m, bins, scen, rounds).await?);

    let click_ack_ms = if wanted(&["click_ack"]) {
        bench_click_ack(bins, rounds).await?
    } else {
        json!("skipped")
    };
    let lost: u64 = rows.iter().filter_map(|r| r["lost"].as_u64()).sum();
    let dup: u64 = rows.iter().filter_map(|r| r["duplicated"].as_u64()).sum();
    Ok(json!({
        "codex": m.name(),
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
            let (carrier, token) = super::faults_machine::stop_button(&r, &om).await?;
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
