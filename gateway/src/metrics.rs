//! The opt-in Prometheus endpoint (`metrics = "127.0.0.1:9464"` in
//! config.toml): `GET /metrics` in the text exposition format, written by
//! hand (a few counters and histograms need no metrics crate). Run figures
//! come from the worker events the gateway hands to its surfaces; worker and
//! channel figures are read from the fleet when scraped.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{DoneReason, RunPhase, WorkerEvent};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use crate::fleet::Fleet;

/// Seconds; the last bucket is +Inf.
const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
const WAIT_BUCKETS: [f64; 8] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, b) in bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        for (i, b) in bounds.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Runs {
    /// (profile, outcome) → runs ended.
    ended: BTreeMap<(String, &'static str), u64>,
    duration: BTreeMap<String, Histogram>,
    queue_wait: BTreeMap<String, Histogram>,
    /// (profile, kind) → tokens.
    tokens: BTreeMap<(String, &'static str), u64>,
    /// (profile, fatal) → run errors reported.
    errors: BTreeMap<(String, bool), u64>,
    /// (profile, phase) → runs that ended failed.
    failures: BTreeMap<(String, &'static str), u64>,
    /// (profile, reason) → card clicks refused.
    denials: BTreeMap<(String, String), u64>,
    /// (app id, code) → Open API answers with a business error code.
    api_errors: BTreeMap<(String, i64), u64>,
    /// (profile, scope) → when its waiting run's first message was queued:
    /// one entry per scope with a run waiting, gone when the run starts or
    /// ends (a run stopped while queued never starts).
    queued_at: HashMap<(String, String), i64>,
}

/// Run figures, fed by every channel's event loop.
#[derive(Default)]
pub(crate) struct RunMetrics {
    runs: Mutex<Runs>,
}

/// The process's run figures (one fcxd, one set of counters).
pub(crate) static RUNS: LazyLock<RunMetrics> = LazyLock::new(RunMetrics::default);

fn phase(p: RunPhase) -> &'static str {
    match p {
        RunPhase::Prepare => "prepare",
        RunPhase::Codex => "codex",
        RunPhase::Unspecified => "unknown",
    }
}

/// A card click fcxd refused (`reason`: why, as the callback check names it).
pub(crate) fn callback_denied(profile: &str, reason: &str) {
    let mut r = RUNS.runs.lock().unwrap_or_else(|p| p.into_inner());
    *r.denials
        .entry((profile.to_string(), reason.replace(' ', "_")))
        .or_default() += 1;
}

/// An Open API answer with a non-zero business `code` for `app_id`
/// (counted per answer, retried ones included).
pub(crate) fn feishu_api_error(app_id: &str, code: i64) {
    let mut r = RUNS.runs.lock().unwrap_or_else(|p| p.into_inner());
    *r.api_errors.entry((app_id.to_string(), code)).or_default() += 1;
}

fn outcome(r: DoneReason) -> &'static str {
    match r {
        DoneReason::Completed => "completed",
        DoneReason::Interrupted => "interrupted",
        DoneReason::Failed => "failed",
        DoneReason::TimedOut => "timed_out",
        DoneReason::Unspecified => "unknown",
    }
}

impl RunMetrics {
    /// Counts what `ev` says about a run of `profile`.
    pub(crate) fn observe(&self, profile: &str, ev: &WorkerEvent) {
        let Some(kind) = &ev.kind else { return };
        let mut r = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let key = (profile.to_string(), ev.scope.clone());
        match kind {
            Kind::Queued(_) => {
                r.queued_at.entry(key).or_insert(ev.at_ms);
            }
            Kind::RunStarted(_) => {
                if let Some(at) = r.queued_at.remove(&key) {
                    let wait = (ev.at_ms - at).max(0) as f64 / 1000.0;
                    r.queue_wait
                        .entry(profile.to_string())
                        .or_default()
                        .observe(&WAIT_BUCKETS, wait);
                }
            }
            Kind::Done(d) => {
                r.queued_at.remove(&key);
                if d.reason() == DoneReason::Failed {
                    *r.failures
                        .entry((profile.to_string(), phase(d.failed_in())))
                        .or_default() += 1;
                }
                *r.ended
                    .entry((profile.to_string(), outcome(d.reason())))
                    .or_default() += 1;
                r.duration
                    .entry(profile.to_string())
                    .or_default()
                    .observe(&DURATION_BUCKETS, d.elapsed_ms as f64 / 1000.0);
                if let Some(u) = &d.usage {
                    for (k, v) in [
                        ("input", u.input_tokens),
                        ("cached_input", u.cached_input_tokens),
                        ("output", u.output_tokens),
                        ("reasoning_output", u.reasoning_output_tokens),
                    ] {
                        *r.tokens.entry((profile.to_string(), k)).or_default() += v;
                    }
                }
            }
            Kind::Error(e) => {
                *r.errors.entry((profile.to_string(), e.fatal)).or_default() += 1;
            }
            _ => {}
        }
    }

    fn write(&self, out: &mut String) {
        let r = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        head(out, "fcx_runs_total", "counter", "Runs ended, by outcome.");
        for ((p, o), n) in &r.ended {
            let _ = writeln!(
                out,
                "fcx_runs_total{{profile=\"{}\",outcome=\"{o}\"}} {n}",
                esc(p)
            );
        }
        head(
            out,
            "fcx_run_duration_seconds",
            "histogram",
            "Run duration, start to end.",
        );
        for (p, h) in &r.duration {
            h.write(
                out,
                "fcx_run_duration_seconds",
                &format!("profile=\"{}\"", esc(p)),
                &DURATION_BUCKETS,
            );
        }
        head(
            out,
            "fcx_queue_wait_seconds",
            "histogram",
            "From a message queued to its run's start.",
        );
        for (p, h) in &r.queue_wait {
            h.write(
                out,
                "fcx_queue_wait_seconds",
                &format!("profile=\"{}\"", esc(p)),
                &WAIT_BUCKETS,
            );
        }
        head(
            out,
            "fcx_tokens_total",
            "counter",
            "Tokens used by runs, by kind.",
        );
        for ((p, k), n) in &r.tokens {
            let _ = writeln!(
                out,
                "fcx_tokens_total{{profile=\"{}\",kind=\"{k}\"}} {n}",
                esc(p)
            );
        }
        head(
            out,
            "fcx_run_errors_total",
            "counter",
            "Errors runs reported (fatal: the run failed).",
        );
        for ((p, fatal), n) in &r.errors {
            let _ = writeln!(
                out,
                "fcx_run_errors_total{{profile=\"{}\",fatal=\"{fatal}\"}} {n}",
                esc(p)
            );
        }
        head(
            out,
            "fcx_run_failures_total",
            "counter",
            "Runs that ended failed, by phase (prepare: before Codex ran; codex: while it ran).",
        );
        for ((p, ph), n) in &r.failures {
            let _ = writeln!(
                out,
                "fcx_run_failures_total{{profile=\"{}\",phase=\"{ph}\"}} {n}",
                esc(p)
            );
        }
        head(
            out,
            "fcx_callback_denials_total",
            "counter",
            "Card clicks refused (forged, replayed, expired, someone else's...), by reason.",
        );
        for ((p, why), n) in &r.denials {
            let _ = writeln!(
                out,
                "fcx_callback_denials_total{{profile=\"{}\",reason=\"{}\"}} {n}",
                esc(p),
                esc(why)
            );
        }
        head(
            out,
            "fcx_feishu_api_errors_total",
            "counter",
            "Feishu/Lark Open API answers with a business error code, by code.",
        );
        for ((app, code), n) in &r.api_errors {
            let _ = writeln!(
                out,
                "fcx_feishu_api_errors_total{{app_id=\"{}\",code=\"{code}\"}} {n}",
                esc(app)
            );
        }
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value: backslash, quote and newline escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition: run figures plus the fleet as it is now.
pub(crate) async fn render(fleet: &Fleet) -> String {
    let mut out = String::new();
    RUNS.write(&mut out);
    let units = fleet.units();
    let mut up = String::new();
    let mut restarts = String::new();
    let mut active = String::new();
    let mut queued = String::new();
    let mut reconnects = String::new();
    for u in &units {
        let v = u.worker.view();
        let p = esc(&v.profile);
        let ready = v.phase == crate::link::supervisor::Phase::Ready;
        let _ = writeln!(up, "fcx_worker_up{{profile=\"{p}\"}} {}", u8::from(ready));
        let _ = writeln!(
            restarts,
            "fcx_worker_restarts_total{{profile=\"{p}\"}} {}",
            v.restarts
        );
        if let Some(st) = u.worker.status().await {
            let _ = writeln!(
                active,
                "fcx_active_runs{{profile=\"{p}\"}} {}",
                st.active_runs.len()
            );
            let _ = writeln!(
                queued,
                "fcx_queued_messages{{profile=\"{p}\"}} {}",
                st.queued
            );
        }
        if let Some(c) = &u.channel {
            let _ = writeln!(
                reconnects,
                "fcx_channel_reconnects_total{{profile=\"{p}\"}} {}",
                c.view().reconnects
            );
        }
    }
    for (name, kind, help, body) in [
        (
            "fcx_worker_up",
            "gauge",
            "1 when the profile's worker is ready.",
            up,
        ),
        (
            "fcx_worker_restarts_total",
            "counter",
            "Worker restarts since fcxd started.",
            restarts,
        ),
        ("fcx_active_runs", "gauge", "Runs in progress.", active),
        (
            "fcx_queued_messages",
            "gauge",
            "Messages waiting for a run.",
            queued,
        ),
        (
            "fcx_channel_reconnects_total",
            "counter",
            "Long-connection reconnects.",
            reconnects,
        ),
    ] {
        head(&mut out, name, kind, help);
        out.push_str(&body);
    }
    out
}

/// Serves `GET /metrics` on `addr` until `stop`. Each connection gets one
/// answer and is closed; anything but `GET /metrics` is a 404.
pub(crate) async fn serve(
    addr: SocketAddr,
    fleet: Arc<Fleet>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics endpoint listening");
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let (mut sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let fleet = fleet.clone();
        conns.spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let (status, body) =
                if buf.starts_with(b"GET /metrics ") || buf.starts_with(b"GET /metrics?") {
                    ("200 OK", render(&fleet).await)
                } else {
                    (
                        "404 Not Found",
                        "only GET /metrics is served here\n".to_string(),
                    )
                };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
    conns.close();
    conns.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fcx_proto::v1::{Done, Queued, RunStarted, Usage};

    fn ev(scope: &str, at_ms: i64, kind: Kind) -> WorkerEvent {
        WorkerEvent {
            scope: scope.into(),
            at_ms,
            kind: Some(kind),
            ..Default::default()
        }
    }

    #[test]
    fn runs_tokens_and_queue_wait_are_counted_per_profile() {
        let m = RunMetrics::default();
        m.observe(
            "work",
            &ev("chat:a", 1_000, Kind::Queued(Queued::default())),
        );
        m.observe(
            "work",
            &ev("chat:a", 1_200, Kind::Queued(Queued::default())),
        );
        m.observe(
            "work",
            &ev("chat:a", 3_000, Kind::RunStarted(RunStarted::default())),
        );
        m.observe(
            "work",
            &ev(
                "chat:a",
                9_000,
                Kind::Done(Done {
                    reason: DoneReason::Completed as i32,
                    elapsed_ms: 6_000,
                    usage: Some(Usage {
                        input_tokens: 11,
                        cached_input_tokens: 3,
                        output_tokens: 7,
                        reasoning_output_tokens: 2,
                    }),
                    ..Default::default()
                }),
            ),
        );
        m.observe(
            "w\"x",
            &ev(
                "chat:b",
                1,
                Kind::Done(Done {
                    reason: DoneReason::Failed as i32,
                    ..Default::default()
                }),
            ),
        );
        for (reason, phase) in [
            (DoneReason::Failed, RunPhase::Prepare),
            (DoneReason::Failed, RunPhase::Codex),
            (DoneReason::Completed, RunPhase::Unspecified),
        ] {
            m.observe(
                if reason == DoneReason::Failed {
                    "f"
                } else {
                    "other"
                },
                &ev(
                    "chat:c",
                    1,
                    Kind::Done(Done {
                        reason: reason as i32,
                        failed_in: phase as i32,
                        ..Default::default()
                    }),
                ),
            );
        }
        let mut out = String::new();
        m.write(&mut out);
        for want in [
            "fcx_run_failures_total{profile=\"f\",phase=\"prepare\"} 1",
            "fcx_run_failures_total{profile=\"f\",phase=\"codex\"} 1",
            "fcx_run_failures_total{profile=\"w\\\"x\",phase=\"unknown\"} 1",
            "fcx_runs_total{profile=\"other\",outcome=\"completed\"} 1",
            "fcx_runs_total{profile=\"work\",outcome=\"completed\"} 1",
            "fcx_runs_total{profile=\"w\\\"x\",outcome=\"failed\"} 1",
            "fcx_run_duration_seconds_bucket{profile=\"work\",le=\"5\"} 0",
            "fcx_run_duration_seconds_bucket{profile=\"work\",le=\"15\"} 1",
            "fcx_run_duration_seconds_sum{profile=\"work\"} 6",
            "fcx_queue_wait_seconds_sum{profile=\"work\"} 2",
            "fcx_queue_wait_seconds_count{profile=\"work\"} 1",
            "fcx_tokens_total{profile=\"work\",kind=\"output\"} 7",
            "# TYPE fcx_runs_total counter",
        ] {
            assert!(out.contains(want), "missing {want}:\n{out}");
        }
    }

    #[test]
    fn a_run_stopped_while_queued_does_not_lengthen_the_next_runs_wait() {
        let m = RunMetrics::default();
        let at = |ms, kind| ev("chat:a", ms, kind);
        m.observe("work", &at(1_000, Kind::Queued(Queued::default())));
        m.observe(
            "work",
            &at(
                2_000,
                Kind::Done(Done {
                    reason: DoneReason::Interrupted as i32,
                    ..Default::default()
                }),
            ),
        );
        m.observe("work", &at(100_000, Kind::Queued(Queued::default())));
        m.observe(
            "work",
            &at(101_000, Kind::RunStarted(RunStarted::default())),
        );
        let mut out = String::new();
        m.write(&mut out);
        let want = "fcx_queue_wait_seconds_sum{profile=\"work\"} 1\n";
        assert!(out.contains(want), "missing {want}:\n{out}");
    }
}
