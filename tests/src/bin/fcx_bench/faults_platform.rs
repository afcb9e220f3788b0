//! Fault-matrix rows about the platform side and the machine (issue 14): a
//! half-open long connection, a platform that takes 2 s over every call,
//! the platform's clock an hour off fcx's (a wall-clock jump as fcx sees
//! it), the worker's disk full, and its state directory read-only (fcx's
//! own clock stepping and a directory turning read-only under a running
//! worker are in `faults_machine.rs`).
//! Rows count like the others in `faults.rs`: per message answered exactly
//! once, duplicated, or lost; the card rows also count a card left
//! streaming ("running") as lost.

use std::path::Path;
use std::time::{Duration, Instant};

use fcx_tests::fake_feishu::{CardState, ClientConfig, FakeFeishu};
use serde_json::json;

use anyhow::Context as _;

use super::faults::{ANSWER, Row, TOLD, push, redelivery, replies, timed, wanted};
use super::model::Model;
use super::{FeishuRig, child_named};

/// Rows the matrix does not have yet.
pub(super) const NOT_COVERED: [&str; 0] = [];

/// Card replies, debounce off so back-to-back messages are separate runs.
pub(super) const CARD_RUNS: &str = "max_concurrent = 4\ndebounce_ms = 0";

pub(super) async fn rows(
    m: &Model,
    bins: &Path,
    scen: &Path,
    rounds: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    let mut t = Instant::now();
    if wanted(&["ws_half_open_pings_unanswered"]) {
        rows.push(half_open(m, bins, rounds).await?);
        timed(&mut rows, &mut t);
    }
    if wanted(&["platform_slow_2s_every_call"]) {
        rows.push(slow_platform(m, bins, rounds).await?);
        timed(&mut rows, &mut t);
    }
    if wanted(&["wall_clock_jump_1h_both_ways"]) {
        rows.push(clock_jump(m, bins, rounds).await?);
        timed(&mut rows, &mut t);
    }
    if wanted(&[super::faults_machine::OWN_CLOCK_ROW]) {
        rows.push(super::faults_machine::own_clock_jump(m, bins, rounds).await?);
        timed(&mut rows, &mut t);
    }
    if wanted(&["disk_full_then_space_returns"]) {
        rows.push(disk_full(m, bins, rounds).await?);
        timed(&mut rows, &mut t);
    }
    if wanted(&[READ_ONLY_ROW]) {
        rows.push(read_only_state(m, bins, rounds).await?);
        timed(&mut rows, &mut t);
    }
    if wanted(&[super::faults_machine::READ_ONLY_RUNNING_ROW]) {
        rows.push(super::faults_machine::read_only_running(m, bins, scen, rounds).await?);
        timed(&mut rows, &mut t);
    }
    if wanted(&[
        "http_storm_resource_download",
        "http_storm_upload",
        "http_storm_comment_reply",
    ]) {
        rows.extend(super::faults_media::rows(m, bins, scen, rounds).await?);
    }
    if wanted(&[super::faults_reads::ROW]) {
        rows.push(super::faults_reads::row(m, bins, rounds).await?);
        timed(&mut rows, &mut t);
    }
    Ok(rows)
}

/// The socket stays up but nothing comes back (pings unanswered, the ACK
/// of a message fcxd already took lost, a push sent into the void): fcxd
/// must notice within its ping timeout, reconnect, and every message be
/// answered once (the platform redelivers what was not ACKed).
async fn half_open(m: &Model, bins: &Path, rounds: usize) -> anyhow::Result<serde_json::Value> {
    // A 1 s ping interval: fcxd's watchdog gives up after 3 silent ones.
    let fake = FakeFeishu::builder()
        .redelivery(redelivery())
        .client_config(ClientConfig {
            ping_interval: 1,
            reconnect_interval: 1,
            reconnect_nonce: 1,
            ..ClientConfig::default()
        })
        .start()
        .await?;
    let r = m
        .rig_on(
            fake,
            bins,
            "max_concurrent = 4",
            "reply_mode = \"card\"\n",
            &[],
        )
        .await?;
    let mut row = Row::default();
    let mut detected = Vec::new();
    for i in 0..rounds {
        let conns = r.fake.connects();
        let (om_before, frame) =
            push(&r, &format!("oc_ho{i}a"), &m.work("before half-open")).await?;
        // fcxd has taken this one; its answer and ACK meet the dead socket.
        r.fake.wait_for_ack(&frame, Duration::from_secs(30)).await?;
        let frozen = Instant::now();
        r.fake.half_open_connections();
        let (om_during, _) = push(&r, &format!("oc_ho{i}b"), &m.work("during half-open")).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while r.fake.connects() <= conns && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        detected.push(frozen.elapsed().as_secs_f64());
        settle_card(&r, &om_before, &mut row).await;
        settle_card(&r, &om_during, &mut row).await;
    }
    record_cards_left_running(&r, &mut row).await;
    let mut v = row.json("ws_half_open_pings_unanswered", rounds);
    v["unanswered_frames"] = json!(r.fake.unanswered_frames());
    v["reconnected_after_s"] = super::summary(detected);
    v["ping_timeout_s"] = json!(3);
    Ok(v)
}

/// Every Open API call answered only after 2 s: two messages in one chat,
/// the second sent while the first is being answered, are each answered
/// once, in order, and both cards end final.
async fn slow_platform(m: &Model, bins: &Path, rounds: usize) -> anyhow::Result<serde_json::Value> {
    let r = super::faults::rig(m, bins, CARD_RUNS).await?;
    r.fake
        .slow_next("/open-apis/*", usize::MAX, Duration::from_secs(2));
    let mut row = Row::default();
    let mut out_of_order = 0;
    let mut took = Vec::new();
    for i in 0..rounds {
        let chat = format!("oc_slow{i}");
        let started = Instant::now();
        let (a, _) = push(&r, &chat, &m.work("slow first")).await?;
        // The second once the first's run has its card: sent before that,
        // both would rightly join one run (messages waiting when a run
        // starts go together) and have one answer.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !r
            .fake
            .messages()
            .iter()
            .any(|m| m.sender_type == "app" && m.parent_id == a)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (b, _) = push(&r, &chat, &m.work("slow second")).await?;
        let mut cards = Vec::new();
        for om in [&a, &b] {
            cards.push(settle_card(&r, om, &mut row).await);
        }
        took.push(started.elapsed().as_secs_f64());
        // The second answer's card is sent after the first's.
        if let [Some(x), Some(y)] = cards.as_slice()
            && x > y
        {
            out_of_order += 1;
        }
    }
    record_cards_left_running(&r, &mut row).await;
    r.fake.clear_http_faults();
    let mut v = row.json("platform_slow_2s_every_call", rounds);
    v["out_of_order_answers"] = json!(out_of_order);
    v["two_answers_s"] = super::summary(took);
    v["violations"] = json!(r.fake.violations().len());
    Ok(v)
}

/// The platform's clock an hour ahead, then an hour behind fcx's: event
/// times, frame timestamps and message times all shifted, as when fcx's host
/// clock jumps the other way. Messages are answered once and cards end
/// final either way (the stale window must not drop live messages).
async fn clock_jump(m: &Model, bins: &Path, rounds: usize) -> anyhow::Result<serde_json::Value> {
    let r = super::faults::rig(m, bins, CARD_RUNS).await?;
    let mut row = Row::default();
    const HOUR_MS: i64 = 3_600_000;
    for i in 0..rounds {
        for (k, offset) in [HOUR_MS, -HOUR_MS].into_iter().enumerate() {
            r.fake.set_clock_offset_ms(offset);
            let (om, _) = push(&r, &format!("oc_clk{i}_{k}"), &m.work("clock jump")).await?;
            settle_card(&r, &om, &mut row).await;
        }
    }
    r.fake.set_clock_offset_ms(0);
    record_cards_left_running(&r, &mut row).await;
    Ok(row.json("wall_clock_jump_1h_both_ways", rounds * 2))
}

/// Waits (bounded) for the card answering `om` to be final (or the answer
/// in messages, where the run card could not be made), counts the
/// outcome into `row`, and returns the position of its message among all
/// messages (for ordering checks). A card still streaming counts as lost.
pub(super) async fn settle_card(r: &FeishuRig, om: &str, row: &mut Row) -> Option<usize> {
    settle_card_for(r, om, ANSWER, row).await
}

/// [`settle_card`] for a run whose answer contains `needle`.
pub(super) async fn settle_card_for(
    r: &FeishuRig,
    om: &str,
    needle: &str,
    row: &mut Row,
) -> Option<usize> {
    let answered = |r: &FeishuRig| -> Vec<(usize, bool)> {
        r.fake
            .messages()
            .into_iter()
            .enumerate()
            .filter(|(_, m)| m.sender_type == "app" && m.parent_id == om)
            .filter_map(|(i, m)| {
                // A run that could not create its card (CardKit refused
                // past the retries) answers in messages instead.
                let Some(id) = m.card_id.as_deref() else {
                    return m.content.contains(needle).then_some((i, true));
                };
                let card = r.fake.card(id)?;
                let text = card.element_content("answer").unwrap_or_default();
                text.contains(needle).then_some((i, card_final(&card)))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !answered(r).iter().any(|(_, fin)| *fin) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer, so a late duplicate is counted too.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let a = answered(r);
    row.messages += 1;
    let told = replies(r, om)
        .iter()
        .any(|c| TOLD.iter().any(|t| c.contains(t)));
    row.told += usize::from(told);
    match a.as_slice() {
        [(i, true)] => {
            row.answered_once += 1;
            Some(*i)
        }
        [] | [(_, false)] => {
            row.lost += 1;
            eprintln!("fault matrix: {om} lost; {}", what_was_said(r, om));
            None
        }
        _ => {
            row.duplicated += 1;
            eprintln!("fault matrix: {om} duplicated; {}", what_was_said(r, om));
            None
        }
    }
}

/// What the bot sent in answer to `om`: each message's text, or its card's
/// title, answer and status (a lost message's evidence).
pub(super) fn what_was_said(r: &FeishuRig, om: &str) -> String {
    let said: Vec<String> = r
        .fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == om)
        .map(
            |m| match m.card_id.as_deref().and_then(|id| r.fake.card(id)) {
                Some(c) => format!(
                    "card {:?} streaming={} answer={:?} status={:?}",
                    c.json["header"]["title"]["content"].as_str().unwrap_or(""),
                    c.streaming_mode,
                    c.element_content("answer").unwrap_or_default(),
                    c.element_content("status").unwrap_or_default()
                ),
                None => format!("message {:?}", m.content),
            },
        )
        .collect();
    format!("replies: {said:?}")
}

/// A run card no longer "running": its streaming has ended. The one test
/// every card row applies, per answer (`settle_card`) and to every card
/// the bot sent (`cards_left_running`).
fn card_final(card: &CardState) -> bool {
    !card.streaming_mode
}

/// Waits (bounded) until every card the bot sent is final, and records how
/// many are not (a card left "running", even one no answer is on: the card
/// of a run a kill interrupted).
pub(super) async fn record_cards_left_running(r: &FeishuRig, row: &mut Row) {
    let running = |r: &FeishuRig| {
        r.fake
            .messages()
            .into_iter()
            .filter(|m| m.sender_type == "app")
            .filter_map(|m| r.fake.card(m.card_id.as_deref()?))
            .filter(|c| !card_final(c))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while running(r) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    row.cards_left_running = Some(running(r));
}

/// A full disk as the worker meets it, without root: a file-size limit of
/// 0 on the worker process (`RLIMIT_FSIZE`; the bench ignores `SIGXFSZ`, a
/// disposition its children inherit, so writes fail with `EFBIG` like
/// `ENOSPC` instead of killing the process). `None` lifts it.
#[cfg(target_os = "linux")]
fn limit_file_size(pid: u32, bytes: Option<u64>) -> anyhow::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads `lim`; the old-limit pointer is null, so it
    // writes nothing.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    if rc != 0 {
        anyhow::bail!("prlimit: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// prlimit (another process's limit) is Linux's; the disk-full row needs it.
#[cfg(not(target_os = "linux"))]
fn limit_file_size(_pid: u32, _bytes: Option<u64>) -> anyhow::Result<()> {
    anyhow::bail!("the disk-full row needs Linux (prlimit)")
}

/// The worker's disk full while a message arrives, then space returns: the
/// user is told at once, the message is not acknowledged (the platform
/// keeps it), and once writes work again it is answered once. A read-only
/// state directory takes the same path (a failed write); as root a chmod
/// cannot make one, so it is not a row of its own.
async fn disk_full(m: &Model, bins: &Path, rounds: usize) -> anyhow::Result<serde_json::Value> {
    let r = super::faults::rig(m, bins, "max_concurrent = 4").await?;
    let mut row = Row::default();
    let mut worker_survived = 0;
    for i in 0..rounds {
        let w = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
        limit_file_size(w, Some(0))?;
        let (om, frame) = push(&r, &format!("oc_disk{i}"), &m.work("disk full")).await?;
        // Full until the platform had to send it again (it was not ACKed).
        let deadline = Instant::now() + Duration::from_secs(20);
        while r.fake.deliveries(&frame) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if limit_file_size(w, None).is_ok() {
            worker_survived += 1;
        }
        settle_card(&r, &om, &mut row).await;
    }
    record_cards_left_running(&r, &mut row).await;
    let mut v = row.json("disk_full_then_space_returns", rounds);
    v["worker_survived"] = json!(worker_survived);
    Ok(v)
}

const READ_ONLY_ROW: &str = "read_only_state_dir_then_writable";

/// Whether this process may make a read-only bind mount in a private mount
/// namespace (root with CAP_SYS_ADMIN, mounts not forbidden by the
/// sandbox); the reason when not.
fn read_only_mounts_allowed(dir: &Path) -> Result<(), String> {
    let out = std::process::Command::new("/usr/bin/unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c"])
        .arg(r#"/usr/bin/mount --bind -o ro "$0" "$0" && ! /usr/bin/touch "$0/probe" 2>/dev/null"#)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "a read-only bind mount in a private mount namespace is not permitted here ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The worker's state directory read-only (a volume mounted read-only, a
/// disk the kernel remounted read-only after errors) while a message
/// arrives, then writable again: the user is told at once, the message is
/// not acknowledged (the platform keeps it), and once the worker can write
/// it is answered once. Tests run as root, where a chmod does not stop a
/// write: the worker is started (through `FCX_WORKER_BIN`, a wrapper) in a
/// private mount namespace where its state directory is a read-only bind
/// mount while a flag file exists. A running worker's directory cannot be
/// made read-only (SQLite holds it open for writing: EBUSY), so each
/// change is a kill -9 and fcxd's restart (a worker that starts into a
/// read-only directory); `faults_machine` has the running worker's case.
/// Skipped, with the reason, where mounts are not permitted.
async fn read_only_state(
    m: &Model,
    bins: &Path,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    if let Err(why) = read_only_mounts_allowed(dir.path()) {
        eprintln!("fault row {READ_ONLY_ROW} skipped: {why}");
        return Ok(json!({"fault": READ_ONLY_ROW, "rounds": rounds, "skipped": why}));
    }
    let flag = dir.path().join("read-only");
    let wrapper = dir.path().join("worker.sh");
    let worker = bins.join("fcx-worker");
    // fcxd runs the worker as `<bin> --profile P --home H --socket S`.
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ -e '{flag}' ]; then\n  exec /usr/bin/unshare -m --propagation private /bin/sh -c \
             'd=\"$4/profiles/$2\"; /usr/bin/mount --bind -o ro \"$d\" \"$d\" || exit 97; exec \"$0\" \"$@\"' '{worker}' \"$@\"\nfi\nexec '{worker}' \"$@\"\n",
            flag = flag.display(),
            worker = worker.display(),
        ),
    )?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    }
    let env: [(&str, &Path); 1] = [("FCX_WORKER_BIN", &wrapper)];
    let r = m
        .rig(
            bins,
            "max_concurrent = 4",
            "reply_mode = \"card\"\n",
            &env,
            redelivery(),
        )
        .await?;
    let mut row = Row::default();
    let mut told_before_writable = 0;
    for i in 0..rounds {
        std::fs::write(&flag, "")?;
        let w = child_named(r.fcxd.id(), "fcx-worker").context("no worker")?;
        kill9(w);
        let (om, _) = push(&r, &format!("oc_ro{i}"), &m.work("read-only state")).await?;
        // Read-only until the user has been told (the platform keeps
        // redelivering the unacknowledged message meanwhile).
        let deadline = Instant::now() + Duration::from_secs(20);
        let told = || {
            replies(&r, &om)
                .iter()
                .any(|c| c.contains("cannot save messages"))
        };
        while !told() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        told_before_writable += usize::from(told());
        std::fs::remove_file(&flag)?;
        if let Some(ro) = child_named(r.fcxd.id(), "fcx-worker") {
            kill9(ro);
        }
        settle_card(&r, &om, &mut row).await;
    }
    record_cards_left_running(&r, &mut row).await;
    let mut v = row.json(READ_ONLY_ROW, rounds);
    v["told_before_writable"] = json!(told_before_writable);
    Ok(v)
}

fn kill9(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}
