//! fcx-bench: measures the pipeline on this machine and prints one JSON
//! object. It never fails on speed; targets are printed beside the figures.
//!
//! `cargo run --release --bin fcx-bench` (builds the release binaries it
//! drives first). `--quick` runs tiny iteration counts (used by a test so the
//! bench cannot rot); `--no-build` skips the cargo build step.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use fcx_ipc::SocketAddr;
use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::v1::{Actor, ChatType, HelloRequest, Inbound, StatusRequest};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "fcx-bench", about = "fcx pipeline benchmarks (prints JSON)")]
struct Args {
    /// Tiny iteration counts: checks that the bench runs, measures nothing.
    #[arg(long)]
    quick: bool,
    /// Do not run `cargo build --release --bins` first.
    #[arg(long)]
    no_build: bool,
    /// Deliver calls to time (after 1,000 warm-up calls).
    #[arg(long, default_value_t = 10_000)]
    deliver_calls: usize,
    /// Runs to time for accepted → spawned.
    #[arg(long, default_value_t = 300)]
    spawn_runs: usize,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.deliver_calls = 200;
        args.spawn_runs = 10;
    }
    if !args.no_build && !args.quick {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "--workspace", "--bins", "-q"])
            .status()
            .context("running cargo build")?;
        if !st.success() {
            bail!("cargo build --release --workspace --bins failed");
        }
    }
    let bins = bin_dir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let deliver = rt.block_on(bench_deliver(&bins, args.deliver_calls, args.quick))?;
    let spawn = rt.block_on(bench_spawn(&bins, args.spawn_runs))?;
    let rss = bench_idle_rss(&bins)?;
    let out = json!({
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "deliver_round_trip_us": deliver,
        "accepted_to_spawned_ms": spawn,
        "idle_rss_kib": rss,
        "targets": {
            "deliver_p99_us": 1000,
            "accepted_to_spawned_p99_ms": 5,
            "idle_rss_fcxd_plus_worker_kib": 30 * 1024
        }
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("bench directory")?.to_path_buf();
    for b in ["fcxd", "fcx-worker", "fake-codex"] {
        if !dir.join(b).is_file() {
            bail!(
                "{} is missing; build with `cargo build --release --workspace --bins`",
                dir.join(b).display()
            );
        }
    }
    Ok(dir)
}

struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
    ws: PathBuf,
    fake_log: PathBuf,
}

fn home(bins: &Path, runs: &str) -> anyhow::Result<Home> {
    let dir = tempfile::Builder::new().prefix("fcxb").tempdir_in("/tmp")?;
    let home = dir.path().join("h");
    let ws = dir.path().join("ws");
    let fake_log = dir.path().join("fake");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&ws)?;
    std::fs::create_dir_all(&fake_log)?;
    std::fs::write(dir.path().join("key"), "sk-bench\n")?;
    std::fs::write(
        home.join("config.toml"),
        format!(
            "[profiles.default.codex]\nbinary = \"{}\"\napi_key = \"file:{}\"\n\
             [profiles.default.workspaces]\ndefault = \"{}\"\n[profiles.default.runs]\n{runs}\n",
            bins.join("fake-codex").display(),
            dir.path().join("key").display(),
            ws.display()
        ),
    )?;
    Ok(Home {
        _dir: dir,
        home,
        ws,
        fake_log,
    })
}

struct Worker {
    child: Child,
    client: WorkerClient<tonic::transport::Channel>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_worker(bins: &Path, h: &Home) -> anyhow::Result<Worker> {
    let sock = h.home.join("run/worker-default.sock");
    let child = Command::new(bins.join("fcx-worker"))
        .args(["--profile", "default", "--home"])
        .arg(&h.home)
        .arg("--socket")
        .arg(&sock)
        .env("FAKE_CODEX_LOG_DIR", &h.fake_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawn fcx-worker")?;
    let addr = SocketAddr::new(sock);
    let deadline = Instant::now() + Duration::from_secs(20);
    let ch = loop {
        match fcx_ipc::connect(&addr).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let mut client = WorkerClient::new(ch);
    client
        .hello(HelloRequest {
            protocol_version: fcx_proto::PROTOCOL_VERSION,
            gateway_version: "bench".into(),
            capabilities: vec![],
        })
        .await?;
    Ok(Worker { child, client })
}

fn inbound(i: usize, scope: &str, text: &str) -> Inbound {
    Inbound {
        event_id: format!("bench-{i}"),
        scope: scope.into(),
        actor: Some(Actor {
            id: "bench".into(),
            name: "bench".into(),
        }),
        text: text.into(),
        chat_type: ChatType::Private as i32,
        message_id: format!("m{i}"),
        ..Default::default()
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(|a, b| a.total_cmp(b));
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    json!({
        "n": v.len(),
        "p50": round2(pct(&v, 0.50)),
        "p99": round2(pct(&v, 0.99)),
        "max": round2(v.last().copied().unwrap_or(0.0)),
        "mean": round2(mean),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Sequential Deliver calls over the local socket; each is a committed
/// journal insert (the ack comes after the commit). A long debounce keeps
/// runs from starting, so only the Deliver path is timed.
async fn bench_deliver(
    bins: &Path,
    calls: usize,
    quick: bool,
) -> anyhow::Result<serde_json::Value> {
    let h = home(bins, "debounce_ms = 60000\nmax_concurrent = 1")?;
    let mut w = start_worker(bins, &h).await?;
    let warmup = if quick { 20 } else { 1000 };
    let per_scope = 40;
    let mut lat = Vec::with_capacity(calls);
    for i in 0..(warmup + calls) {
        let scope = format!("chat:bench{}", i / per_scope);
        let t = Instant::now();
        let ack = w
            .client
            .deliver(inbound(i, &scope, "benchmark message"))
            .await?
            .into_inner();
        let us = t.elapsed().as_secs_f64() * 1e6;
        if !ack.accepted || ack.duplicate {
            bail!("deliver {i} not accepted: {ack:?}");
        }
        if i >= warmup {
            lat.push(us);
        }
    }
    Ok(summary(lat))
}

/// Time from a Deliver call to the fake codex process starting (its first
/// instruction records the wall clock), with debounce 0.
async fn bench_spawn(bins: &Path, runs: usize) -> anyhow::Result<serde_json::Value> {
    let h = home(bins, "debounce_ms = 0\nmax_concurrent = 4")?;
    let mut w = start_worker(bins, &h).await?;
    let mut lat = Vec::with_capacity(runs);
    for i in 0..runs {
        let sent = now_ns();
        w.client
            .deliver(inbound(i, &format!("chat:spawn{i}"), "FAKE:hello"))
            .await?;
        // Wait for this run's record, then for the run to finish, so runs
        // never overlap and each measurement is clean.
        let deadline = Instant::now() + Duration::from_secs(30);
        let started = loop {
            if let Some(t) = newest_start(&h.fake_log, i) {
                break t;
            }
            if Instant::now() > deadline {
                bail!("run {i} never spawned the fake codex");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        lat.push((started.saturating_sub(sent)) as f64 / 1e6);
        loop {
            let st = w.client.status(StatusRequest {}).await?.into_inner();
            if st.active_runs.is_empty() && st.queued == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("run {i} did not finish");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let _ = &h.ws;
    Ok(summary(lat))
}

/// Start time of the `n`-th fake-codex invocation (records are per pid; we
/// count them).
fn newest_start(dir: &Path, n: usize) -> Option<u128> {
    let mut starts: Vec<u128> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter_map(|v| v["started_unix_ns"].as_str().and_then(|s| s.parse().ok()))
        .collect();
    if starts.len() <= n {
        return None;
    }
    starts.sort();
    starts.get(n).copied()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Resident memory of an idle fcxd and its one worker.
fn bench_idle_rss(bins: &Path) -> anyhow::Result<serde_json::Value> {
    let h = home(bins, "")?;
    let mut fcxd = Command::new(bins.join("fcxd"))
        .arg("--home")
        .arg(&h.home)
        .env("FCX_WORKER_BIN", bins.join("fcx-worker"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawn fcxd")?;
    let res = (|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let worker = loop {
            if let Some(pid) = child_named(fcxd.id(), "fcx-worker")
                && h.home.join("run/worker-default.sock").exists()
            {
                break pid;
            }
            if Instant::now() > deadline {
                bail!("fcxd did not start its worker");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let both settle into idle.
        std::thread::sleep(Duration::from_millis(1500));
        let g = rss_kib(fcxd.id()).context("fcxd rss")?;
        let w = rss_kib(worker).context("worker rss")?;
        Ok(json!({ "fcxd": g, "worker": w, "total": g + w }))
    })();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fcxd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = fcxd.wait();
    res
}

fn child_named(parent: u32, name: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let ppid: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == parent && comm.starts_with(&name[..name.len().min(15)]) {
            return Some(pid);
        }
    }
    None
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
