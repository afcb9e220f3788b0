//! Child lifetime under the app-server runner (issue 11, point 2): first
//! token latency of the designs, driven straight against the REAL pinned
//! `codex app-server` and the mock model (the worker's own overhead is the
//! same in every design, so it is left out):
//!
//! - `fresh`: a new child per run (spawn, `initialize`, `thread/start`,
//!   `turn/start`), what fcx did before warm children;
//! - `per_scope_warm`: each scope's child kept after its run, the next run
//!   a `turn/start` on the thread it has loaded (`SCOPES` scopes, round
//!   robin, as in the shared design);
//! - `per_scope_warm_new_thread`: a kept child, but a new thread on it;
//! - `per_profile_shared`: one child serving `SCOPES` scopes' threads, one
//!   turn at a time (round robin) and all scopes at once, against the same
//!   burst on one warm child per scope.
//!
//! Plus what a child costs: spawn → `initialize` answered, and its resident
//! memory once idle (codex and what it started). Every figure is printed,
//! none asserted. Isolation is a fact, not a figure: see `ISOLATION`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{round2, rss_kib, summary};
use fcx_tests::mock_responses::MockResponses;

/// Scopes the shared child serves at once.
const SCOPES: usize = 4;
const WAIT: Duration = Duration::from_secs(60);

const ISOLATION: &str = "per_profile_shared cannot keep fcx's isolation: a process has one \
environment (the lark-cli identity fcx projects differs per scope: user identity in one-to-one \
chats only), one mount namespace and one process group, so /stop's group signals, a crash, \
`fcxctl kill r:RUN` and the sweep of escaped commands would reach every scope's turn. \
per_scope_warm keeps it whole: one child per scope, reused only with identical launch parameters.";

/// One `codex app-server` child and a line client for it.
struct Server {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: i64,
    /// Notifications read while waiting for something else.
    backlog: Vec<Value>,
}

impl Server {
    async fn spawn(codex: &Path, home: &Path, ws: &Path, mock: &str) -> anyhow::Result<Self> {
        let mut cmd = Command::new(codex);
        cmd.arg("app-server")
            .args(fcx_tests::mock_provider_args(mock))
            .env("CODEX_HOME", home)
            .env("CODEX_API_KEY", "sk-mock")
            .current_dir(ws)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn codex app-server")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("no pipes");
        };
        Ok(Server {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next_id: 1,
            backlog: Vec::new(),
        })
    }

    async fn send(&mut self, v: Value) -> anyhow::Result<i64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = v.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(id)
    }

    async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<i64> {
        let id = self.next_id;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await
    }

    async fn next(&mut self) -> anyhow::Result<Value> {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .context("codex app-server went quiet")??
            .context("codex app-server closed its output")?;
        Ok(serde_json::from_str(&line)?)
    }

    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.request(method, params).await?;
        loop {
            let m = self.next().await?;
            if m.get("method").is_none() && m["id"] == json!(id) {
                if let Some(e) = m.get("error") {
                    bail!("{method} refused: {e}");
                }
                return Ok(m["result"].clone());
            }
            if m.get("method").is_some() && m.get("id").is_none() {
                self.backlog.push(m);
            }
        }
    }

    async fn initialize(&mut self) -> anyhow::Result<()> {
        self.call(
            "initialize",
            json!({"clientInfo": {"name": "fcx_bench", "title": null, "version": "0"}, "capabilities": null}),
        )
        .await?;
        self.send(json!({"method": "initialized"})).await?;
        Ok(())
    }

    async fn thread(&mut self, ws: &Path) -> anyhow::Result<String> {
        let r = self
            .call(
                "thread/start",
                json!({"cwd": ws, "sandbox": "read-only", "approvalPolicy": "never", "model": "gpt-5.5"}),
            )
            .await?;
        r["thread"]["id"]
            .as_str()
            .map(str::to_owned)
            .context("no thread id")
    }

    async fn start_turn(&mut self, thread: &str) -> anyhow::Result<()> {
        self.request(
            "turn/start",
            json!({"threadId": thread, "input": [{"type": "text", "text": "say hi", "text_elements": []}]}),
        )
        .await?;
        Ok(())
    }

    /// Reads until every thread in `first` saw its first answer delta and
    /// its `turn/completed`; fills in when each delta came.
    async fn until_done(
        &mut self,
        t0: Instant,
        first: &mut HashMap<String, Option<f64>>,
    ) -> anyhow::Result<()> {
        let mut open = first.len();
        let backlog = std::mem::take(&mut self.backlog);
        let mut pending = backlog.into_iter();
        while open > 0 {
            let m = match pending.next() {
                Some(m) => m,
                None => self.next().await?,
            };
            let thread = m["params"]["threadId"].as_str().unwrap_or("").to_owned();
            match m["method"].as_str() {
                Some("item/agentMessage/delta") => {
                    if let Some(slot @ None) = first.get_mut(&thread) {
                        *slot = Some(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                Some("turn/completed") if first.contains_key(&thread) => {
                    if m["params"]["turn"]["status"] != "completed" {
                        bail!("turn ended {}", m["params"]["turn"]["status"]);
                    }
                    open -= 1;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// One turn on `thread`: ms from `t0` to its first answer delta.
    async fn turn(&mut self, t0: Instant, thread: &str) -> anyhow::Result<f64> {
        self.start_turn(thread).await?;
        let mut first = HashMap::from([(thread.to_owned(), None)]);
        self.until_done(t0, &mut first).await?;
        first
            .remove(thread)
            .flatten()
            .context("a turn without an answer delta")
    }

    /// codex and its descendants, idle.
    fn tree_rss_kib(&self) -> u64 {
        let Some(pid) = self.child.id() else {
            return 0;
        };
        let mut total = rss_kib(pid).unwrap_or(0);
        for c in super::soak::children_named(pid, "") {
            total += rss_kib(c).unwrap_or(0);
        }
        total
    }

    async fn end(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.start_kill();
    }
}

pub(super) async fn bench_warm(samples: usize) -> anyhow::Result<Value> {
    let codex = fcx_tests::real_codex();
    let mock = MockResponses::start().await?;
    let url = mock.base_url();
    let dir = tempfile::Builder::new().prefix("fcxbw").tempdir()?;
    let home = dir.path().join("codex-home");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&ws)?;
    let warmup = 2;

    // Fresh child per run; the spawn cost and an idle child's memory too.
    let (mut fresh, mut spawn, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..warmup + samples {
        let t0 = Instant::now();
        let mut s = Server::spawn(&codex, &home, &ws, &url).await?;
        s.initialize().await?;
        let init = t0.elapsed().as_secs_f64() * 1000.0;
        let thread = s.thread(&ws).await?;
        let first = s.turn(t0, &thread).await?;
        if i >= warmup {
            fresh.push(first);
            spawn.push(init);
            rss.push(s.tree_rss_kib() as f64);
        }
        s.end().await;
    }

    // A kept child, a new thread on it each time (what /new would cost
    // if the child were kept across it).
    let mut warm_new = Vec::new();
    let mut s = Server::spawn(&codex, &home, &ws, &url).await?;
    s.initialize().await?;
    let first = s.thread(&ws).await?;
    s.turn(Instant::now(), &first).await?;
    for i in 0..warmup + samples {
        let t0 = Instant::now();
        let other = s.thread(&ws).await?;
        let first_new = s.turn(t0, &other).await?;
        if i >= warmup {
            warm_new.push(first_new);
        }
    }
    s.end().await;

    // Per-scope warm: one kept child per scope, each with its scope's
    // thread loaded; turns round robin, so every thread's history grows
    // as in the shared design below.
    let mut own = Vec::new();
    for _ in 0..SCOPES {
        let mut s = Server::spawn(&codex, &home, &ws, &url).await?;
        s.initialize().await?;
        let t = s.thread(&ws).await?;
        s.turn(Instant::now(), &t).await?;
        own.push((s, t));
    }
    let mut warm = Vec::new();
    for i in 0..warmup + samples {
        let (s, t) = &mut own[i % SCOPES];
        let t0 = Instant::now();
        let first = s.turn(t0, t).await?;
        if i >= warmup {
            warm.push(first);
        }
    }

    // Per-profile shared: SCOPES threads on one child.
    let mut shared = Server::spawn(&codex, &home, &ws, &url).await?;
    shared.initialize().await?;
    let mut threads = Vec::new();
    for _ in 0..SCOPES {
        let t = shared.thread(&ws).await?;
        shared.turn(Instant::now(), &t).await?;
        threads.push(t);
    }
    let mut shared_seq = Vec::new();
    for i in 0..warmup + samples {
        let t0 = Instant::now();
        let first = shared.turn(t0, &threads[i % SCOPES]).await?;
        if i >= warmup {
            shared_seq.push(first);
        }
    }
    // The burst: every scope at once, on the shared child …
    let mut shared_burst = Vec::new();
    for i in 0..warmup + samples.div_ceil(SCOPES) {
        let t0 = Instant::now();
        for t in &threads {
            shared.start_turn(t).await?;
        }
        let mut first: HashMap<String, Option<f64>> =
            threads.iter().map(|t| (t.clone(), None)).collect();
        shared.until_done(t0, &mut first).await?;
        if i >= warmup {
            shared_burst.extend(first.into_values().flatten());
        }
    }
    let shared_rss = shared.tree_rss_kib();
    shared.end().await;
    // … and on one warm child per scope.
    let mut own_burst = Vec::new();
    for i in 0..warmup + samples.div_ceil(SCOPES) {
        let t0 = Instant::now();
        let turns = own.iter_mut().map(|(s, t)| s.turn(t0, t));
        let got = futures::future::try_join_all(turns).await?;
        if i >= warmup {
            own_burst.extend(got);
        }
    }
    for (s, _) in own {
        s.end().await;
    }
    mock.shutdown().await;

    let rss_mean = if rss.is_empty() {
        0.0
    } else {
        rss.iter().sum::<f64>() / rss.len() as f64
    };
    Ok(json!({
        "codex": codex.display().to_string(),
        "samples": samples,
        "first_token_ms": {
            "fresh": summary(fresh),
            "per_scope_warm": summary(warm),
            "per_scope_warm_new_thread": summary(warm_new),
            "per_profile_shared": summary(shared_seq),
            "burst_per_profile_shared": summary(shared_burst),
            "burst_per_scope_warm": summary(own_burst),
        },
        "burst_scopes": SCOPES,
        "spawn_to_initialized_ms": summary(spawn),
        "idle_child_rss_kib": round2(rss_mean),
        "shared_child_rss_kib": shared_rss,
        "isolation": ISOLATION,
    }))
}
