//! Runs the real `fcxd --console` (and with it the real `fcx-worker`) as a
//! child process against a throwaway `FCX_HOME`, types into it and reads what
//! a user would see.
//!
//! The binaries come from the workspace build (`scripts/test.sh` builds them
//! first); a missing one is a loud failure, never a skip.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fcx_ipc::SocketAddr;
use fcx_proto::v1::gateway_client::GatewayClient;
use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::v1::{GatewayStatus, GatewayStatusRequest, PsRequest, PsResponse, StatusRequest};

/// Generous: these bound a hang, they are not speed assertions.
pub const WAIT: Duration = Duration::from_secs(60);

/// A workspace binary (`fcxd`, `fcx-worker`, `fcxctl`, `fake-codex`, ...).
/// `fcxctl ARGS` on `home`: (exit code, stdout, stderr).
pub fn fcxctl(home: &TestHome, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin("fcxctl"))
        .arg("--home")
        .arg(&home.home)
        .args(args)
        .env_remove("FCX_CODEX_BINARY")
        .output()
        .expect("run fcxctl");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// `bash scripts/NAME` of this checkout as README runs it, with
/// `PROFILE=debug` (scripts/lib/build.sh): the script's cargo step is the
/// test build's own command, a no-op after it, and the script runs the
/// binaries the tests run. HOME may be changed by the caller: cargo and
/// rustup keep finding the toolchain through CARGO_HOME and RUSTUP_HOME.
pub fn repo_script(name: &str) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // target/<profile>/fcxd → target
    let target = bin("fcxd")
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts").join(name))
        .env("PROFILE", "debug")
        .env("CARGO_TARGET_DIR", target);
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        for (var, dir) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
            if std::env::var_os(var).is_none() {
                cmd.env(var, home.join(dir));
            }
        }
    }
    cmd
}

/// A throwaway FCX_HOME with a workspace, under a short path (Unix socket
/// paths must stay under ~100 bytes).
pub struct TestHome {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub workspace: PathBuf,
    pub logs: PathBuf,
}

impl Default for TestHome {
    fn default() -> Self {
        Self::new()
    }
}

/// The harness's profiles end each run's app-server child with its run
/// (`app_server_idle_secs = 0`), as every test written before kept
/// children assumes (no codex process left once a run is done); the
/// tests about kept children (e2e `warm_children`) set their own value.
pub const KEEP_NO_CHILD: &str = "app_server_idle_secs = 0";

impl TestHome {
    /// The `CODEX_HOME` of one scope's Codex children in the default
    /// profile (`chat:console` for the console).
    pub fn scope_codex_home(&self, scope: &str) -> PathBuf {
        fcx_config::Home::new(&self.home)
            .profile("default")
            .scope_codex_home(&fcx_proto::v1::Scope::continuity_of(scope))
    }
    /// [`Self::scope_codex_home`] of the console.
    pub fn console_codex_home(&self) -> PathBuf {
        self.scope_codex_home("chat:console")
    }
    pub fn new() -> Self {
        // file: secrets must be private (0600) or fcx refuses them: every
        // file a test writes is, as an operator's umask 077 would make it.
        #[cfg(unix)]
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let dir = tempfile::Builder::new()
            .prefix("fcx")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        let home = root.join("h");
        let workspace = root.join("ws");
        let logs = root.join("fake");
        std::fs::create_dir_all(&workspace).expect("workspace");
        std::fs::create_dir_all(&logs).expect("fake log dir");
        TestHome {
            _dir: dir,
            root,
            home,
            workspace,
            logs,
        }
    }

    pub fn write_config(&self, text: &str) {
        std::fs::create_dir_all(&self.home).expect("home");
        std::fs::write(self.home.join("config.toml"), text).expect("config");
    }

    /// Write `secret` to a key file and return its path.
    pub fn key_file(&self, secret: &str) -> PathBuf {
        let p = self.root.join("api-key");
        std::fs::write(&p, format!("{secret}\n")).expect("key file");
        p
    }

    /// A profile `default` that runs the scripted fake codex (each run's
    /// child ends with its run: see [`KEEP_NO_CHILD`]).
    pub fn fake_codex_config(&self, extra_runs: &str) -> String {
        let key = self.key_file("sk-fake-test-secret-0001");
        format!(
            r#"[profiles.default]
enabled = true
[profiles.default.codex]
binary = "{bin}"
auth = "api-key"
api_key = "file:{key}"
{KEEP_NO_CHILD}
[profiles.default.workspaces]
default = "{ws}"
[profiles.default.runs]
debounce_ms = 50
stop_grace_ms = 300
{extra_runs}
"#,
            bin = bin("fake-codex").display(),
            key = key.display(),
            ws = self.workspace.display(),
        )
    }

    /// `fake_codex_config` plus a Feishu app pointing at the fake platform,
    /// with `owner` as the profile owner.
    pub fn feishu_config(
        &self,
        base_url: &str,
        app_id: &str,
        app_secret: &str,
        owner: &str,
    ) -> String {
        let secret = self.root.join("app-secret");
        std::fs::write(&secret, format!("{app_secret}\n")).expect("app secret file");
        format!(
            r#"{base}[profiles.default.app]
tenant = "feishu"
base_url = "{base_url}"
app_id = "{app_id}"
app_secret = "file:{secret}"
reply_mode = "markdown"
[profiles.default.access]
owner = "{owner}"
allowed_chats = ["oc_grp1", "oc_grp2"]
"#,
            base = self.fake_codex_config(""),
            secret = secret.display(),
        )
    }

    /// A profile `default` that runs the REAL Codex CLI against the mock
    /// Responses server at `base_url`.
    pub fn real_codex_config(&self, base_url: &str) -> String {
        let key = self.key_file("sk-mock");
        let overrides = crate::mock_provider_overrides(base_url)
            .into_iter()
            .map(|(k, v)| format!("\"{k}\" = {v}"))
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            r#"[profiles.default]
enabled = true
[profiles.default.codex]
binary = "{bin}"
auth = "api-key"
api_key = "file:{key}"
model = "gpt-5.5"
{KEEP_NO_CHILD}
[profiles.default.codex.config]
{overrides}
[profiles.default.workspaces]
default = "{ws}"
[profiles.default.runs]
debounce_ms = 50
stop_grace_ms = 500
"#,
            bin = crate::real_codex().display(),
            key = key.display(),
            ws = self.workspace.display(),
        )
    }

    /// Records fake-codex wrote (one per invocation), oldest first.
    pub fn fake_records(&self) -> Vec<serde_json::Value> {
        let mut v: Vec<(std::time::SystemTime, serde_json::Value)> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.logs) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json")
                    && let Ok(text) = std::fs::read_to_string(&p)
                    && let Ok(j) = serde_json::from_str(&text)
                {
                    let t = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    v.push((t, j));
                }
            }
        }
        v.sort_by_key(|(t, _)| *t);
        v.into_iter().map(|(_, j)| j).collect()
    }

    pub fn read_logs(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(self.home.join("logs")) {
            for e in rd.flatten() {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    s.push_str(&t);
                }
            }
        }
        s
    }

    /// The admin client, waiting (bounded) for fcxd to open its socket.
    pub async fn admin(&self) -> GatewayClient<tonic::transport::Channel> {
        let addr = SocketAddr::new(self.home.join("run/fcxd.sock"));
        let deadline = Instant::now() + WAIT;
        loop {
            match fcx_ipc::connect(&addr).await {
                Ok(ch) => return GatewayClient::new(ch),
                Err(e) if Instant::now() > deadline => panic!("admin socket: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    pub async fn status(&self) -> GatewayStatus {
        self.admin()
            .await
            .status(GatewayStatusRequest {})
            .await
            .expect("status")
            .into_inner()
    }

    pub async fn ps(&self) -> PsResponse {
        self.admin()
            .await
            .ps(PsRequest {})
            .await
            .expect("ps")
            .into_inner()
    }
}

/// A real `fcx-worker` serving the profile `default` of a [`TestHome`],
/// driven directly over its socket; killed (kill -9) when dropped.
pub struct WorkerProc {
    child: Child,
}

impl WorkerProc {
    /// Start it with `env` added, and return once it answers on its socket
    /// (a socket file alone may be a leftover of a killed worker).
    pub async fn start(
        home: &TestHome,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (WorkerProc, WorkerClient<tonic::transport::Channel>) {
        let mut cmd = Command::new(bin("fcx-worker"));
        cmd.args(["--profile", "default", "--home"])
            .arg(&home.home)
            .env("FAKE_CODEX_LOG_DIR", &home.logs)
            .env("FCX_CODEX_PASS_ENV", "FAKE_CODEX_*")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut worker = WorkerProc {
            child: cmd.spawn().expect("spawn fcx-worker"),
        };
        let addr = SocketAddr::new(home.home.join("run/worker-default.sock"));
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(c) = fcx_ipc::connect(&addr).await {
                let mut cl = WorkerClient::new(c);
                if cl.status(StatusRequest {}).await.is_ok() {
                    return (worker, cl);
                }
            }
            // Started once: a worker that exits before it answers (after a
            // kill -9 of the previous one, a copy of that one's socket held
            // by its dying child once made it refuse) is the failure.
            if let Ok(Some(st)) = worker.child.try_wait() {
                panic!(
                    "fcx-worker exited ({st}) before answering; listeners on its socket:\n{}",
                    socket_listeners(addr.path())
                );
            }
            assert!(
                Instant::now() < deadline,
                "fcx-worker did not start; listeners on its socket:\n{}",
                socket_listeners(addr.path())
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `ss -xlp` lines naming `path`: who still listens there (diagnostics).
fn socket_listeners(path: &Path) -> String {
    let out = Command::new("ss").args(["-xlp"]).output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("ss: {e}"));
    let p = path.display().to_string();
    text.lines()
        .filter(|l| l.contains(&p))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The profile owner the Feishu environments configure.
pub const FEISHU_USER: &str = "ou_user0000000000000000000000000001";

/// fcxd as a service against a fake Feishu platform (the long connection
/// up), with the scripted fake codex and [`FEISHU_USER`] as the owner.
/// Fields drop in order: fcxd first, while its home and platform exist.
pub struct FeishuEnv {
    pub fcxd: Fcxd,
    pub fake: crate::fake_feishu::FakeFeishu,
    pub rt: tokio::runtime::Runtime,
    pub home: TestHome,
}

impl FeishuEnv {
    /// `reply_mode` is "card" or "markdown"; `env` goes to fcxd (and so to
    /// the worker and the fake codex).
    pub fn start(
        reply_mode: &str,
        redelivery: crate::fake_feishu::Redelivery,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_with_runs(reply_mode, redelivery, env, "")
    }

    /// Like [`FeishuEnv::start`], with more `[runs]` keys (e.g.
    /// `max_concurrent = 1`).
    pub fn start_with_runs(
        reply_mode: &str,
        redelivery: crate::fake_feishu::Redelivery,
        env: &[(&str, &str)],
        runs: &str,
    ) -> Self {
        Self::start_with(reply_mode, redelivery, env, runs, "")
    }

    /// Like [`FeishuEnv::start_with_runs`], with more `[codex]` keys (e.g.
    /// `during_run = "queue"`).
    pub fn start_with(
        reply_mode: &str,
        redelivery: crate::fake_feishu::Redelivery,
        env: &[(&str, &str)],
        runs: &str,
        codex: &str,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let fake = rt
            .block_on(
                crate::fake_feishu::FakeFeishu::builder()
                    .redelivery(redelivery)
                    .start(),
            )
            .expect("fake platform");
        let home = TestHome::new();
        home.write_config(&codex_setting(
            &home
                .feishu_config(
                    &fake.base_url(),
                    fake.app_id(),
                    fake.app_secret(),
                    FEISHU_USER,
                )
                .replace(
                    "reply_mode = \"markdown\"",
                    &format!("reply_mode = \"{reply_mode}\""),
                )
                .replace(
                    "stop_grace_ms = 300\n",
                    &format!("stop_grace_ms = 300\n{runs}\n"),
                ),
            codex,
        ));
        let fcxd = Fcxd::start(&home, &[], env);
        rt.block_on(fake.wait_for_connections(1, WAIT))
            .expect("fcxd opens the long connection");
        FeishuEnv {
            fcxd,
            fake,
            rt,
            home,
        }
    }

    /// Push an event; returns the frame's message id.
    pub fn push(&self, ev: &serde_json::Value) -> String {
        self.rt.block_on(self.fake.push(ev)).expect("push")
    }

    /// Waits until fcxd reports its first profile's worker ready. A card
    /// click before that is answered "fcx is restarting" (the gateway waits
    /// at most half a second for a worker), which a loaded machine's fresh
    /// worker can easily take.
    pub fn wait_worker_ready(&self) {
        eventually(
            WAIT,
            || {
                let st = self.rt.block_on(self.home.status());
                let p = st.profiles.first()?;
                (p.worker_state().word() == "ready").then_some(())
            },
            || format!("the worker never became ready\n{}", self.home.read_logs()),
        );
    }
}

/// The IM message id inside an `im.message.receive_v1` envelope.
/// Polls `probe` every 20 ms until it yields a value. Past `limit` it
/// panics with `why()` (asked only then, so it may read logs).
pub fn eventually<T>(
    limit: Duration,
    mut probe: impl FnMut() -> Option<T>,
    why: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn message_id(ev: &serde_json::Value) -> String {
    ev["event"]["message"]["message_id"]
        .as_str()
        .expect("message id")
        .to_string()
}

/// A running `fcxd --console`.
pub struct Fcxd {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    /// Output already matched by `wait_for`, so each wait looks forward.
    cursor: usize,
}

impl Fcxd {
    pub fn console(home: &TestHome) -> Self {
        Self::console_with(home, &[])
    }

    pub fn console_with(home: &TestHome, env: &[(&str, &str)]) -> Self {
        Self::start(home, &["--console"], env)
    }

    /// fcxd as a service: channels for profiles with an `[app]`, no console.
    pub fn daemon(home: &TestHome) -> Self {
        Self::start(home, &[], &[])
    }

    /// [`Fcxd::daemon`] with extra environment (inherited by the worker and
    /// the fake codex, e.g. `FAKE_CODEX_SCENARIOS`).
    pub fn daemon_with(home: &TestHome, env: &[(&str, &str)]) -> Self {
        Self::start(home, &[], env)
    }

    fn start(home: &TestHome, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin("fcxd"));
        cmd.args(args)
            .env("FCX_HOME", &home.home)
            .env("FAKE_CODEX_LOG_DIR", &home.logs)
            // The fake codex's settings pass the allow-list by name.
            .env("FCX_CODEX_PASS_ENV", "FAKE_CODEX_*")
            .env_remove("FCX_CODEX_BINARY")
            // App-id locks are shared by every home of a user; tests run
            // many homes with the fake platform's one app id at once.
            .env(fcx_config::app_lock::LOCK_DIR_ENV, home.root.join("locks"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Whatever `cmd` runs that ends in `fcxd --console` (scripts/console.sh),
    /// its stdio piped like the others'.
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn fcxd");
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        pump(child.stdout.take().expect("stdout"), out.clone());
        pump(child.stderr.take().expect("stderr"), err.clone());
        let stdin = child.stdin.take();
        Fcxd {
            child,
            stdin,
            out,
            err,
            cursor: 0,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to fcxd");
        stdin.flush().expect("flush");
    }

    /// Close stdin (Ctrl-D).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub fn output(&self) -> String {
        self.out.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        self.err.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Wait until `needle` appears after the last match; returns the output
    /// from the previous match up to and including the line with `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait_for_within(needle, WAIT)
    }

    pub fn wait_for_within(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.output();
            if let Some(pos) = out[self.cursor.min(out.len())..].find(needle) {
                let abs = self.cursor + pos;
                let end = out[abs..].find('\n').map_or(out.len(), |e| abs + e + 1);
                let seen = out[self.cursor..end].to_string();
                self.cursor = end;
                return seen;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {needle:?}\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                    self.stderr()
                );
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let out = self.output();
                if out[self.cursor.min(out.len())..].contains(needle) {
                    continue;
                }
                panic!(
                    "fcxd exited ({st}) before {needle:?}\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for the process to exit (bounded) and return its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "fcxd did not exit\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.output(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9 (a gateway crash), and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    #[cfg(unix)]
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig);
    }
}

impl Drop for Fcxd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // A graceful stop first where there is one (Windows has no
            // SIGTERM for a console-less child: it is killed below).
            #[cfg(unix)]
            self.signal(nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pump(r: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    // Reader threads end when the child closes its end of the pipe.
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Ok(mut s) = into.lock() {
                        s.push_str(&line);
                    }
                }
            }
        }
    });
}

/// Pids of live processes whose environment or command line contains `needle`
/// (e.g. a test's unique FCX_HOME): how tests prove no child was left behind.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Zombies are already dead; only running processes count.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(rest) = stat.rsplit(')').next()
            && rest.trim_start().starts_with('Z')
        {
            continue;
        }
        let hit = ["environ", "cmdline"].iter().any(|f| {
            std::fs::read(format!("/proc/{pid}/{f}"))
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        });
        if hit {
            out.push(pid);
        }
    }
    out
}

/// Wait (bounded) until no process mentions `needle`; returns the survivors.
pub fn wait_no_processes(needle: &str, limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `config` with `lines` added to `[profiles.default.codex]`: a test that is
/// about one runner (`runner = "exec"`) or one `during_run` pins it.
pub fn codex_setting(config: &str, lines: &str) -> String {
    if lines.is_empty() {
        return config.to_string();
    }
    let header = "[profiles.default.codex]\n";
    assert!(
        config.contains(header),
        "no [profiles.default.codex] in {config}"
    );
    config.replacen(header, &format!("{header}{lines}\n"), 1)
}
