//! Soak (issue 14): mixed traffic through the long connection of the fake
//! platform for a bounded time, with fcxd's and the worker's RSS, open FDs
//! and threads sampled as it goes, and run throughput. A leak shows as
//! growth after warm-up: more than 10 % (and more than a small absolute
//! margin, so allocator noise on a short soak does not count) is reported
//! as `leak_suspected`, and the bench then exits non-zero.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::{FEISHU_OWNER, FeishuRig, child_named, rss_kib};

/// What counts as growth: relative and absolute, both.
const GROWTH_PCT: f64 = 10.0;
const RSS_MARGIN_KIB: u64 = 2048;
const FD_MARGIN: u64 = 4;
const THREAD_MARGIN: u64 = 4;

/// One process's resources at one moment.
#[derive(Clone, Copy, Default)]
struct Usage {
    rss_kib: u64,
    fds: u64,
    threads: u64,
}

fn usage(pid: u32) -> Usage {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    Usage {
        rss_kib: rss_kib(pid).unwrap_or(0),
        fds,
        threads,
    }
}

/// Growth of `last` over `base` in percent, when it is also over `margin`.
fn growth(base: u64, last: u64, margin: u64) -> (f64, bool) {
    let pct = if base == 0 {
        0.0
    } else {
        (last as f64 - base as f64) * 100.0 / base as f64
    };
    (
        (pct * 10.0).round() / 10.0,
        pct > GROWTH_PCT && last.saturating_sub(base) > margin,
    )
}

/// Codex invocations the fake codex recorded so far (one file each).
fn runs_done(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

/// `secs` of traffic at about `rate` events a second over 16 chats: plain
/// messages, tool runs and commands; one sample every `sample_secs`.
pub(super) async fn bench_soak(
    bins: &Path,
    secs: u64,
    sample_secs: u64,
    rate: u64,
) -> anyhow::Result<serde_json::Value> {
    let rig = FeishuRig::start_with(bins, "max_concurrent = 4", "", &[]).await?;
    let fcxd = rig.fcxd.id();
    let worker = child_named(fcxd, "fcx-worker").context("no worker under fcxd")?;
    let gap = Duration::from_millis(1000 / rate.max(1));
    let every = Duration::from_secs(sample_secs.max(1));
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut next_sample = started;
    let mut samples: Vec<(f64, usize, usize, Usage, Usage)> = Vec::new();
    let mut pushed = 0usize;
    while Instant::now() < end {
        if Instant::now() >= next_sample {
            samples.push((
                started.elapsed().as_secs_f64(),
                pushed,
                runs_done(&rig.home.fake_log),
                usage(fcxd),
                usage(worker),
            ));
            next_sample += every;
        }
        let chat = format!("oc_soak{}", pushed % 16);
        let text = match pushed % 10 {
            3 => "FAKE:tools soak",
            6 => "/status",
            9 => "/help",
            _ => "soak message",
        };
        let ev = rig.fake.events().p2p_text(&chat, FEISHU_OWNER, text);
        rig.fake.push(&ev).await?;
        pushed += 1;
        tokio::time::sleep(gap).await;
    }
    // Let the queue drain (bounded), then the last sample.
    let drain = Instant::now() + Duration::from_secs(30);
    while rig.fake.acked_count() < pushed && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples.push((
        started.elapsed().as_secs_f64(),
        pushed,
        runs_done(&rig.home.fake_log),
        usage(fcxd),
        usage(worker),
    ));
    let elapsed = started.elapsed().as_secs_f64();
    let runs = runs_done(&rig.home.fake_log);
    // Warm-up: the first third of the samples.
    let base = samples[(samples.len() / 3).min(samples.len() - 1)];
    let last = samples[samples.len() - 1];
    let mut suspected = Vec::new();
    let mut grew = serde_json::Map::new();
    for (who, b, l) in [("fcxd", base.3, last.3), ("worker", base.4, last.4)] {
        let (rss, rss_bad) = growth(b.rss_kib, l.rss_kib, RSS_MARGIN_KIB);
        let (fds, fds_bad) = growth(b.fds, l.fds, FD_MARGIN);
        let (thr, thr_bad) = growth(b.threads, l.threads, THREAD_MARGIN);
        for (bad, what) in [(rss_bad, "rss"), (fds_bad, "fds"), (thr_bad, "threads")] {
            if bad {
                suspected.push(format!("{who}.{what}"));
            }
        }
        grew.insert(
            who.into(),
            json!({ "rss_pct": rss, "fds_pct": fds, "threads_pct": thr }),
        );
    }
    let table: Vec<serde_json::Value> = samples
        .iter()
        .map(|(t, p, r, g, w)| {
            json!({
                "t_s": (t * 10.0).round() / 10.0,
                "events": p,
                "runs": r,
                "fcxd": { "rss_kib": g.rss_kib, "fds": g.fds, "threads": g.threads },
                "worker": { "rss_kib": w.rss_kib, "fds": w.fds, "threads": w.threads },
            })
        })
        .collect();
    Ok(json!({
        "secs": secs,
        "events": pushed,
        "acked": rig.fake.acked_count(),
        "runs": runs,
        "runs_per_s": ((runs as f64 / elapsed.max(0.001)) * 100.0).round() / 100.0,
        "growth_after_warmup": grew,
        "leak_suspected": suspected,
        "violations": rig.fake.violations().len(),
        "samples": table,
    }))
}

#[cfg(test)]
mod tests {
    use super::growth;

    #[test]
    fn growth_needs_both_the_ratio_and_the_margin() {
        assert_eq!(growth(100, 105, 4), (5.0, false));
        assert_eq!(growth(10, 13, 4), (30.0, false));
        assert_eq!(growth(10, 20, 4), (100.0, true));
        assert_eq!(growth(0, 50, 4), (0.0, false));
    }
}
