//! Feedback at accept (issue 11): how soon a chat sees that a message was
//! heard, and what fcx adds to a lone message's answer beyond the fake
//! codex's own turn. Measured at the fake platform, one message at a time,
//! each in a fresh chat (a new session, nothing queued):
//!
//! - delivered (frame pushed) → first feedback call: the run card's
//!   creation in reply mode card, the "Typing" reaction in markdown; also
//!   from the ACK (negative when the feedback left before the ACK did);
//! - answer-visible overhead: (delivered → first call showing the answer)
//!   minus (the fake codex's start → its emitting the answer).
//!
//! Under the default runner (app-server) in both modes, and in card mode
//! under exec too (`card_exec`), so the two runners compare in one run
//! (the fake codex's turn is the same scenario in both).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::{FEISHU_OWNER, FeishuRig, new_record_start, now_ns, round2, summary};

const ANSWER: &str = "feedback bench answer";
/// The fake codex's turn: it thinks this long, then answers.
const TURN_MS: u64 = 100;

/// Both reply modes, `samples` lone messages each (after a short warm-up).
pub(super) async fn bench_feedback(
    bins: &Path,
    samples: usize,
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::Builder::new()
        .prefix("fcxbf")
        .tempdir_in("/tmp")?;
    std::fs::write(
        dir.path().join("fbt.jsonl"),
        format!(
            "{{\"thread_started\": true}}\n{{\"turn_started\": true}}\n{{\"sleep_ms\": {TURN_MS}}}\n\
             {{\"agent_message\": \"{ANSWER}\"}}\n{{\"turn_completed\": true}}\n"
        ),
    )?;
    let mut out = serde_json::Map::new();
    for (name, mode, runner) in [
        ("card", "card", "app-server"),
        ("markdown", "markdown", "app-server"),
        ("card_exec", "card", "exec"),
    ] {
        let times = dir.path().join(format!("emit-{name}"));
        let env: [(&str, &Path); 2] = [
            ("FAKE_CODEX_SCENARIOS", dir.path()),
            ("FAKE_CODEX_EMIT_TIMES", &times),
        ];
        // The product default: no debounce key, so none.
        let rig = FeishuRig::start_runner(
            bins,
            "max_concurrent = 4",
            &format!("reply_mode = \"{mode}\"\n"),
            &env,
            fcx_tests::fake_feishu::Redelivery::none(),
            runner,
        )
        .await?;
        let mut seen = HashSet::new();
        let (mut first, mut from_ack, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
        let warmup = 3;
        for i in 0..warmup + samples {
            let s = sample(&rig, mode, i, &times, &mut seen).await?;
            if i >= warmup {
                first.push(s.0);
                from_ack.push(s.1);
                overhead.push(s.2);
            }
        }
        out.insert(
            name.to_string(),
            json!({
                "runner": runner,
                "delivered_to_first_feedback_ms": summary(first),
                "ack_to_first_feedback_ms": summary(from_ack),
                "lone_message_answer_overhead_ms": summary(overhead),
                "fake_turn_ms": TURN_MS,
                "violations": rig.fake.violations().len(),
            }),
        );
    }
    Ok(serde_json::Value::Object(out))
}

/// One lone message: (delivered → first feedback, ACK → first feedback,
/// answer-visible overhead), in ms.
async fn sample(
    rig: &FeishuRig,
    mode: &str,
    i: usize,
    times: &Path,
    seen: &mut HashSet<std::path::PathBuf>,
) -> anyhow::Result<(f64, f64, f64)> {
    let ev = rig
        .fake
        .events()
        .p2p_text(&format!("oc_fb{i}"), FEISHU_OWNER, "FAKE:fbt go");
    let om = ev["event"]["message"]["message_id"]
        .as_str()
        .context("message id")?
        .to_string();
    // Instants (the fake's ACK time) to the epoch clock its calls use.
    let anchor = (Instant::now(), now_ns());
    let pushed_ns = now_ns() as u64;
    let frame = rig.fake.push(&ev).await?;
    let reaction = format!("/open-apis/im/v1/messages/{om}/reactions");
    let is_feedback = |c: &fcx_tests::fake_feishu::RecordedCall| {
        c.method == "POST"
            && if mode == "card" {
                c.path == "/open-apis/cardkit/v1/cards"
            } else {
                c.path == reaction
            }
    };
    let shows_answer = |c: &fcx_tests::fake_feishu::RecordedCall| {
        c.status == 200
            && c.body.to_string().contains(ANSWER)
            && (mode == "card" || c.path.contains(&om))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (feedback_ns, visible_ns) = loop {
        let calls: Vec<_> = rig
            .fake
            .requests()
            .into_iter()
            .filter(|c| c.received_unix_ns >= pushed_ns)
            .collect();
        let fb = calls.iter().find(|c| is_feedback(c));
        let vis = calls.iter().find(|c| shows_answer(c));
        if let (Some(fb), Some(vis)) = (fb, vis) {
            // The run is over once its answer is out; let it finish so the
            // next sample starts from an idle profile.
            break (fb.received_unix_ns, vis.received_unix_ns);
        }
        anyhow::ensure!(Instant::now() < deadline, "no answer for {om} ({mode})");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The answer may reach the platform before the ACK frame is read there.
    rig.fake
        .wait_for_ack(&frame, Duration::from_secs(30))
        .await
        .context("the frame was not ACKed")?;
    let acked = rig
        .fake
        .frame_timing(&frame)
        .and_then(|t| t.acked_at)
        .context("the frame was not ACKed")?;
    let acked_ns = anchor.1 as i128 + acked.saturating_duration_since(anchor.0).as_nanos() as i128;
    // The fake codex's own turn: its start to its emitting the answer.
    let started = loop {
        if let Some(s) = new_record_start(&rig.home.fake_log, seen) {
            break s;
        }
        anyhow::ensure!(Instant::now() < deadline, "no fake codex record for {om}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let emitted: u128 = std::fs::read_to_string(times)?
        .lines()
        .filter_map(|l| l.split('\t').next()?.parse().ok())
        .max()
        .context("no emit time")?;
    let ms = |ns: i128| round2(ns as f64 / 1e6);
    let first = ms(feedback_ns as i128 - pushed_ns as i128);
    let from_ack = ms(feedback_ns as i128 - acked_ns);
    let turn = emitted as i128 - started as i128;
    let overhead = ms(visible_ns as i128 - pushed_ns as i128 - turn);
    // Let the run end (final card, reaction taken back) before the next.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok((first, from_ack, overhead))
}
