//! The test fakes themselves: the mock Responses server (driven by the REAL
//! codex CLI, so the mock stays faithful) and the scripted fake codex.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use fcx_tests::{
    FAKE_CODEX_VERSION, MOCK_API_KEY, MOCK_MODEL, MockResponses, mock_provider_args, real_codex,
    temp_codex_home,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Bounds a hang; never a speed assertion.
const WAIT: Duration = Duration::from_secs(60);

fn parse_jsonl(stdout: &[u8]) -> Result<Vec<Value>> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("stdout line is not JSON: {l:?}")))
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("<none>"))
        .collect()
}

fn completed_items<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == kind)
        .map(|e| &e["item"])
        .collect()
}

// ---------------------------------------------------------------------------
// real codex against the in-process mock

async fn run_real_codex(mock: &MockResponses, prompt: &str) -> Result<Output> {
    let codex_home = temp_codex_home()?;
    let workdir = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(real_codex());
    cmd.args(["exec", "--json", "--skip-git-repo-check", "-s", "read-only"])
        .args(["-m", MOCK_MODEL])
        .args(mock_provider_args(&mock.base_url()))
        .arg("-C")
        .arg(workdir.path())
        .arg("-")
        .env("CODEX_HOME", codex_home.path())
        .env("CODEX_API_KEY", MOCK_API_KEY)
        // Nothing from the developer's real setup may reach the mock run.
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawning the real codex")?;
    let mut stdin = child.stdin.take().context("codex stdin")?;
    stdin.write_all(prompt.as_bytes()).await?;
    // EOF is what makes codex start: it reads the prompt until stdin closes.
    drop(stdin);
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .context("the real codex did not finish")??;
    // Keep the dirs alive until codex has exited.
    drop(codex_home);
    drop(workdir);
    Ok(output)
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_codex_says_hi_through_the_mock() -> Result<()> {
    let mock = MockResponses::start().await?;
    let output = run_real_codex(&mock, "say hi").await?;
    ensure!(output.status.success(), "{}", describe(&output));
    let events = parse_jsonl(&output.stdout)?;
    let t = types(&events);
    ensure!(
        t.first() == Some(&"thread.started") && t.last() == Some(&"turn.completed"),
        "{t:?}"
    );
    let messages = completed_items(&events, "agent_message");
    ensure!(
        messages.iter().any(|m| m["text"]
            .as_str()
            .is_some_and(|s| s.starts_with("hi from mock"))),
        "{}",
        describe(&output)
    );
    let usage = &events[events.len() - 1]["usage"];
    ensure!(
        usage["input_tokens"] == 11 && usage["cached_input_tokens"] == 3,
        "{usage}"
    );

    let requests = mock.requests();
    ensure!(requests.len() == 1, "{requests:#?}");
    let request = &requests[0];
    ensure!(request.method == "POST" && request.path == "/v1/responses");
    ensure!(
        request.header("authorization") == Some("Bearer sk-mock"),
        "{:?}",
        request.headers
    );
    ensure!(request.body["model"] == MOCK_MODEL);
    ensure!(request.last_user_text().as_deref() == Some("say hi"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_codex_runs_a_command_from_the_mock() -> Result<()> {
    let mock = MockResponses::start().await?;
    let output = run_real_codex(&mock, "RUN: echo fcx-mock-cmd").await?;
    ensure!(output.status.success(), "{}", describe(&output));
    let events = parse_jsonl(&output.stdout)?;
    let commands = completed_items(&events, "command_execution");
    ensure!(commands.len() == 1, "{}", describe(&output));
    let command = commands[0];
    ensure!(
        command["aggregated_output"]
            .as_str()
            .is_some_and(|s| s.contains("fcx-mock-cmd")),
        "{command}"
    );
    ensure!(command["exit_code"] == 0 && command["status"] == "completed");
    ensure!(
        completed_items(&events, "agent_message")
            .iter()
            .any(|m| m["text"]
                .as_str()
                .is_some_and(|s| s.starts_with("Command done."))),
        "{}",
        describe(&output)
    );

    // The second request carries the command's output back to the "model".
    let requests = mock.requests();
    ensure!(requests.len() == 2, "{requests:#?}");
    let last_input = requests[1].body["input"]
        .as_array()
        .and_then(|items| items.last())
        .context("second request has no input")?;
    ensure!(last_input["type"] == "function_call_output", "{last_input}");
    ensure!(last_input["call_id"] == "call_mock_1", "{last_input}");
    Ok(())
}

// ---------------------------------------------------------------------------
// the mock on its own (raw HTTP, no codex)

struct RawResponse {
    status: u16,
    headers: String,
    body: String,
}

fn dechunk(mut raw: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = raw.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        raw = rest.get(size + 2..)?;
    }
}

async fn http(port: u16, method: &str, path: &str, body: &Value) -> Result<RawResponse> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .context("mock did not close the connection")??;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body).context("bad chunked body")?
    } else {
        body.to_owned()
    };
    Ok(RawResponse {
        status,
        headers: head.to_ascii_lowercase(),
        body,
    })
}

fn user_input(text: &str) -> Value {
    json!({"model": "m", "stream": true, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    ]})
}

#[tokio::test]
async fn mock_answers_sse_and_404s_everything_else() -> Result<()> {
    let mock = MockResponses::start().await?;
    let ok = http(mock.port(), "POST", "/v1/responses", &user_input("hello")).await?;
    ensure!(ok.status == 200, "{}", ok.headers);
    ensure!(
        ok.headers.contains("content-type: text/event-stream"),
        "{}",
        ok.headers
    );
    ensure!(ok.headers.contains("connection: close"), "{}", ok.headers);
    ensure!(
        ok.body.starts_with("event: response.created\ndata: {"),
        "{}",
        ok.body
    );
    ensure!(ok.body.contains("hi from mock (turn 1)"), "{}", ok.body);
    ensure!(ok.body.ends_with("\n\n"), "{:?}", ok.body);
    let events: Vec<Value> = ok
        .body
        .split("\n\n")
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(
        types(&events)
            == [
                "response.created",
                "response.output_item.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_item.done",
                "response.completed"
            ],
        "{events:?}"
    );

    let missing = http(mock.port(), "GET", "/v1/models", &Value::Null).await?;
    ensure!(missing.status == 404);
    let failed = http(mock.port(), "POST", "/responses", &user_input("HTTP500")).await?;
    ensure!(failed.status == 500);
    let garbage = http(
        mock.port(),
        "POST",
        "/v1/responses",
        &json!("not an object"),
    )
    .await?;
    ensure!(garbage.status == 200, "any JSON gets the default reply");

    let requests = mock.requests();
    ensure!(requests.len() == 4);
    ensure!(requests[1].method == "GET" && requests[1].path == "/v1/models");
    ensure!(requests[0].header("Authorization") == Some("Bearer t"));
    Ok(())
}

#[tokio::test]
async fn mock_stall_blocks_only_its_own_connection_and_ends_on_drop() -> Result<()> {
    let mock = MockResponses::start().await?;
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", mock.port())).await?;
    let body = user_input("please STALL").to_string();
    stalled
        .write_all(
            format!(
                "POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("response.created") {
        let n = tokio::time::timeout(WAIT, stalled.read(&mut buf)).await??;
        ensure!(n > 0, "stalled stream closed early");
        seen.extend_from_slice(&buf[..n]);
    }

    let other = http(mock.port(), "POST", "/v1/responses", &user_input("hi")).await?;
    ensure!(other.body.contains("response.completed"), "{}", other.body);

    drop(mock);
    // Dropping the server must end the stalled connection, not leave it to
    // the 600 s stall timer.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf))
            .await
            .context("stalled connection survived the mock's drop")?
            .unwrap_or(0);
        if n == 0 {
            break;
        }
    }
    Ok(())
}

#[test]
fn mock_responses_binary_listens_and_logs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port_file = dir.path().join("port");
    let log = dir.path().join("requests.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-responses"))
        .args(["--port", "0", "--port-file"])
        .arg(&port_file)
        .arg("--log")
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()?;
    let guard = KillOnDrop(&mut child);
    let stdout = guard.0.stdout.take().context("stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port: u16 = line
        .strip_prefix("LISTENING ")
        .and_then(|p| p.trim().parse().ok())
        .with_context(|| format!("unexpected first line {line:?}"))?;
    let from_file: u16 = std::fs::read_to_string(&port_file)?.trim().parse()?;
    ensure!(port == from_file);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let response = runtime.block_on(http(port, "POST", "/v1/responses", &user_input("hi")))?;
    ensure!(response.body.contains("hi from mock (turn 1)"));

    let logged = std::fs::read_to_string(&log)?;
    let first: Value = serde_json::from_str(logged.lines().next().context("empty log")?)?;
    ensure!(
        first["method"] == "POST" && first["path"] == "/v1/responses",
        "{first}"
    );
    ensure!(first["headers"]["authorization"] == "Bearer t", "{first}");
    ensure!(
        first["body"]["input"][0]["content"][0]["text"] == "hi",
        "{first}"
    );

    kill(Pid::from_raw(pid_of(guard.0)?), Signal::SIGTERM)?;
    let status = wait_timeout(guard.0, Duration::from_secs(10))?;
    ensure!(
        status.success(),
        "mock-responses exits 0 on SIGTERM, got {status}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// fake codex

struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn pid_of(child: &Child) -> Result<i32> {
    Ok(i32::try_from(child.id())?)
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!("process {} still running after {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A fake codex with an isolated CODEX_HOME and no scenario dir or log dir
/// inherited from the caller.
struct Fake {
    home: tempfile::TempDir,
}

impl Fake {
    fn new() -> Result<Self> {
        Ok(Self {
            home: tempfile::tempdir()?,
        })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fake-codex"));
        cmd.env("CODEX_HOME", self.home.path())
            .env_remove("FAKE_CODEX_SCENARIOS")
            .env_remove("FAKE_CODEX_LOG_DIR");
        cmd
    }

    fn run(&self, args: &[&str], stdin: &str, env: &[(&str, &Path)]) -> Result<Output> {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let pid = pid_of(&child)?;
        let mut input = child.stdin.take().context("stdin")?;
        match input.write_all(stdin.as_bytes()) {
            // A fake that rejected its argv exits without reading stdin.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
        drop(input);
        // Collect output on a thread so a chatty child cannot fill the pipe
        // and deadlock us, while we still bound the wait.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(WAIT) {
            Ok(output) => Ok(output?),
            Err(_) => {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                bail!("fake codex {args:?} still running after {WAIT:?}");
            }
        }
    }
}

#[test]
fn fake_version() -> Result<()> {
    let out = Fake::new()?.run(&["--version"], "", &[])?;
    ensure!(out.status.success());
    ensure!(String::from_utf8_lossy(&out.stdout).trim() == FAKE_CODEX_VERSION);
    Ok(())
}

#[test]
fn fake_hello_is_clean_jsonl() -> Result<()> {
    let out = Fake::new()?.run(
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "-s",
            "read-only",
            "-",
        ],
        "say hi",
        &[],
    )?;
    ensure!(out.status.success(), "{}", describe(&out));
    let events = parse_jsonl(&out.stdout)?;
    ensure!(
        types(&events)
            == [
                "thread.started",
                "turn.started",
                "item.completed",
                "turn.completed"
            ],
        "{events:?}"
    );
    let id = events[0]["thread_id"].as_str().context("thread_id")?;
    ensure!(
        id.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12],
        "{id}"
    );
    ensure!(
        events[2]["item"]
            == json!({"id": "item_0", "type": "agent_message", "text": "hello from fake codex"})
    );
    ensure!(events[3]["usage"]["input_tokens"] == 11);
    Ok(())
}

#[test]
fn fake_resume_keeps_id_and_usage_is_cumulative() -> Result<()> {
    let fake = Fake::new()?;
    let first = fake.run(&["exec", "--json", "-"], "one", &[])?;
    ensure!(first.status.success(), "{}", describe(&first));
    let events = parse_jsonl(&first.stdout)?;
    let id = events[0]["thread_id"]
        .as_str()
        .context("thread_id")?
        .to_owned();

    let second = fake.run(
        &["exec", "--json", "-s", "read-only", "resume", &id, "-"],
        "two",
        &[],
    )?;
    ensure!(second.status.success(), "{}", describe(&second));
    let events = parse_jsonl(&second.stdout)?;
    ensure!(events[0]["thread_id"] == id.as_str(), "{events:?}");
    let usage = &events[events.len() - 1]["usage"];
    ensure!(usage["input_tokens"] == 22, "{usage}");
    ensure!(usage["cached_input_tokens"] == 6, "{usage}");
    ensure!(usage["output_tokens"] == 14, "{usage}");
    ensure!(usage["reasoning_output_tokens"] == 4, "{usage}");
    Ok(())
}

#[test]
fn fake_resume_of_missing_thread_fails_like_codex() -> Result<()> {
    let out = Fake::new()?.run(&["exec", "--json", "resume", "missing-42", "-"], "hi", &[])?;
    ensure!(out.status.code() == Some(1), "{}", describe(&out));
    ensure!(out.stdout.is_empty(), "{}", describe(&out));
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains(
            "Error: thread/resume: thread/resume failed: no rollout found for thread id missing-42 (code -32600)"
        ),
        "{}",
        describe(&out)
    );
    Ok(())
}

#[test]
fn fake_rejects_unknown_flags_and_flags_resume_lacks() -> Result<()> {
    let fake = Fake::new()?;
    let out = fake.run(&["exec", "--json", "--frobnicate", "-"], "hi", &[])?;
    ensure!(out.status.code() == Some(2), "{}", describe(&out));
    ensure!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
    let out = fake.run(&["exec", "resume", "x", "-C", "/"], "hi", &[])?;
    ensure!(out.status.code() == Some(2), "{}", describe(&out));
    Ok(())
}

/// A running fake whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command, prompt: &str) -> Result<Self> {
        let mut child = cmd
            .args(["exec", "--json", prompt])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    fn wait_for_line(&self, needle: &str) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .with_context(|| format!("no stdout line containing {needle:?}"))?;
            if line.contains(needle) {
                return Ok(());
            }
        }
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        kill(Pid::from_raw(pid_of(&self.child)?), sig)?;
        Ok(())
    }

    /// Waits for exit and returns it with every stdout line printed after
    /// the ones already consumed.
    fn finish(&mut self) -> Result<(ExitStatus, Vec<String>)> {
        let status = wait_timeout(&mut self.child, Duration::from_secs(5))?;
        let mut rest = Vec::new();
        // The reader thread ends at EOF, which closes the channel.
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            rest.push(line);
        }
        Ok((status, rest))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn fake_sigint_while_stalled_exits_1_silently() -> Result<()> {
    let fake = Fake::new()?;
    let mut run = Running::start(fake.command(), "FAKE:stall")?;
    run.wait_for_line("turn.started")?;
    run.signal(Signal::SIGINT)?;
    let (status, rest) = run.finish()?;
    ensure!(status.code() == Some(1), "{status}");
    ensure!(rest.is_empty(), "printed after SIGINT: {rest:?}");
    Ok(())
}

#[test]
fn fake_sigterm_is_not_handled() -> Result<()> {
    let fake = Fake::new()?;
    let mut run = Running::start(fake.command(), "FAKE:stall")?;
    run.wait_for_line("turn.started")?;
    run.signal(Signal::SIGTERM)?;
    let (status, rest) = run.finish()?;
    ensure!(status.signal() == Some(15), "{status}");
    ensure!(rest.is_empty(), "{rest:?}");
    Ok(())
}

fn read_pid(path: &Path) -> Result<i32> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(pid) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            return Ok(pid);
        }
        ensure!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: i32) -> bool {
    // Zombies count as gone: they have exited and only await reaping.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn fake_sigint_kills_group_children_but_not_setsid_orphans() -> Result<()> {
    let fake = Fake::new()?;
    let logs = tempfile::tempdir()?;

    let mut cmd = fake.command();
    cmd.env("FAKE_CODEX_LOG_DIR", logs.path());
    let mut run = Running::start(cmd, "FAKE:child")?;
    run.wait_for_line("item.started")?;
    let child_pid = read_pid(&logs.path().join(format!("child-{}.pid", run.child.id())))?;
    ensure!(alive(child_pid));
    run.signal(Signal::SIGINT)?;
    let (status, _) = run.finish()?;
    ensure!(status.code() == Some(1), "{status}");
    ensure!(wait_gone(child_pid), "child {child_pid} survived SIGINT");

    let mut cmd = fake.command();
    cmd.env("FAKE_CODEX_LOG_DIR", logs.path());
    let mut run = Running::start(cmd, "FAKE:orphan")?;
    run.wait_for_line("item.started")?;
    let orphan = read_pid(&logs.path().join(format!("orphan-{}.pid", run.child.id())))?;
    run.signal(Signal::SIGINT)?;
    let (status, _) = run.finish()?;
    let survived = alive(orphan);
    // Clean up before asserting so a failure leaves no sleep behind. The
    // orphan leads its own session and group; the shell may have forked.
    let _ = kill(Pid::from_raw(-orphan), Signal::SIGKILL);
    ensure!(status.code() == Some(1), "{status}");
    ensure!(
        survived,
        "the setsid orphan should escape the fake's cleanup"
    );
    Ok(())
}

#[test]
fn fake_runs_scenario_files() -> Result<()> {
    let fake = Fake::new()?;
    let scenarios = tempfile::tempdir()?;
    let lines = [
        json!({"emit": {"type": "thread.started", "thread_id": "{{thread_id}}"}}),
        json!({"raw": "not json at all"}),
        json!({"stderr": "warning for turn {{turn}}"}),
        json!({"sleep_ms": 5}),
        json!({"emit": {"type": "item.completed", "item": {"id": "item_4", "type": "reasoning", "text": "turn {{turn}} of {{thread_id}}"}}}),
        json!({"agent_message": "custom says hi"}),
        json!({"turn_completed": true}),
        json!({"exit": 4}),
        json!({"agent_message": "never printed"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(scenarios.path().join("custom.jsonl"), text)?;
    // A file wins over a built-in of the same name.
    std::fs::write(
        scenarios.path().join("hello.jsonl"),
        "{\"agent_message\": \"overridden\"}\n",
    )?;

    let env = [("FAKE_CODEX_SCENARIOS", scenarios.path())];
    let out = fake.run(&["exec", "--json", "-"], "run FAKE:custom please", &env)?;
    ensure!(out.status.code() == Some(4), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stdout_lines: Vec<&str> = stdout.lines().collect();
    ensure!(stdout_lines.len() == 5, "{stdout}");
    ensure!(stdout_lines[1] == "not json at all");
    let first: Value = serde_json::from_str(stdout_lines[0])?;
    let id = first["thread_id"].as_str().context("thread id")?;
    ensure!(!id.contains("{{"), "{id}");
    let reasoning: Value = serde_json::from_str(stdout_lines[2])?;
    ensure!(reasoning["item"]["text"] == format!("turn 1 of {id}").as_str());
    let message: Value = serde_json::from_str(stdout_lines[3])?;
    // Ids continue after the highest one the scenario emitted itself.
    ensure!(
        message["item"]
            == json!({"id": "item_5", "type": "agent_message", "text": "custom says hi"})
    );
    ensure!(String::from_utf8_lossy(&out.stderr).contains("warning for turn 1"));

    let out = fake.run(&["exec", "--json", "-"], "FAKE:hello", &env)?;
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("overridden"),
        "{}",
        describe(&out)
    );

    std::fs::write(scenarios.path().join("bad.jsonl"), "{\"emitt\": 1}\n")?;
    let out = fake.run(&["exec", "--json", "-"], "FAKE:bad", &env)?;
    ensure!(out.status.code() == Some(2), "{}", describe(&out));
    ensure!(out.stdout.is_empty());
    Ok(())
}

#[test]
fn fake_records_its_invocation() -> Result<()> {
    let fake = Fake::new()?;
    let logs = tempfile::tempdir()?;
    let cd = tempfile::tempdir()?;
    let cd_str = cd.path().to_str().context("utf-8 temp path")?;
    let mut cmd = fake.command();
    cmd.env("FAKE_CODEX_LOG_DIR", logs.path())
        .env("FCX_TEST_MARKER", "marker-value")
        .args([
            "exec",
            "--experimental-json",
            "-c",
            "model_provider=\"mock\"",
            "-m",
            "gpt-5.5",
            "-C",
            cd_str,
            "--skip-git-repo-check",
            "--image=pic.png",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn()?;
    let pid = child.id();
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(b"the prompt FAKE:slow")?;
    let status = wait_timeout(&mut child, WAIT)?;
    ensure!(status.success(), "{status}");

    let prefix = format!("{pid}-");
    let file = std::fs::read_dir(logs.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
        })
        .context("no record for the fake's pid")?;
    let record: Value = serde_json::from_slice(&std::fs::read(file)?)?;
    ensure!(record["prompt"] == "the prompt FAKE:slow", "{record}");
    ensure!(record["env"]["FCX_TEST_MARKER"] == "marker-value");
    ensure!(record["env"]["CODEX_HOME"] == fake.home.path().to_str().unwrap_or_default());
    ensure!(record["resume_id"].is_null());
    ensure!(
        record["argv"][1] == "exec" && record["argv"][3] == "-c",
        "{record}"
    );
    ensure!(record["args"]["model"] == "gpt-5.5");
    ensure!(record["args"]["cd"] == cd_str);
    ensure!(record["args"]["configs"] == json!(["model_provider=\"mock\""]));
    ensure!(record["args"]["images"] == json!(["pic.png"]));
    ensure!(record["cwd"].is_string());
    Ok(())
}

#[test]
fn fake_blocks_until_stdin_eof_like_codex() -> Result<()> {
    let fake = Fake::new()?;
    let mut child = fake
        .command()
        .args(["exec", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let guard = KillOnDrop(&mut child);
    let mut stdin = guard.0.stdin.take().context("stdin")?;
    stdin.write_all(b"hi")?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        guard.0.try_wait()?.is_none(),
        "fake codex must wait for stdin EOF before starting"
    );
    drop(stdin);
    let status = wait_timeout(guard.0, WAIT)?;
    ensure!(status.success(), "{status}");

    // An empty stdin is an error, as in codex.
    let out = fake.run(&["exec", "--json"], "", &[])?;
    ensure!(out.status.code() == Some(1));
    ensure!(String::from_utf8_lossy(&out.stderr).contains("No prompt provided via stdin."));
    Ok(())
}

#[test]
fn fake_builtins_end_as_documented() -> Result<()> {
    let fake = Fake::new()?;
    let cases: [(&str, i32, &str); 6] = [
        ("tools", 0, "turn.completed"),
        ("fail", 1, "turn.failed"),
        ("crash", 3, "thread.started"),
        ("garbage", 0, "turn.completed"),
        ("slow", 0, "turn.completed"),
        ("hello", 0, "turn.completed"),
    ];
    for (name, code, last_type) in cases {
        let out = fake.run(&["exec", "--json", &format!("FAKE:{name}")], "", &[])?;
        ensure!(
            out.status.code() == Some(code),
            "{name}: {}",
            describe(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let last: Value = serde_json::from_str(last).with_context(|| format!("{name}: {last}"))?;
        ensure!(last["type"] == last_type, "{name}: {stdout}");
    }
    let out = fake.run(&["exec", "--json", "FAKE:tools"], "", &[])?;
    let events = parse_jsonl(&out.stdout)?;
    let commands = completed_items(&events, "command_execution");
    ensure!(commands.len() == 2);
    ensure!(commands[1]["exit_code"] == 3 && commands[1]["status"] == "failed");
    ensure!(completed_items(&events, "file_change").len() == 1);
    ensure!(completed_items(&events, "reasoning").len() == 1);
    let crash = fake.run(&["exec", "--json", "FAKE:crash"], "", &[])?;
    ensure!(String::from_utf8_lossy(&crash.stderr).contains("fatal: fake crash"));
    Ok(())
}

/// A `fake-codex app-server` child spoken to like fcx's runner speaks to the
/// real one: requests out, answers and notifications back.
struct AppServer {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    next_id: i64,
    /// Notifications seen since the last `take_notes`.
    notes: Vec<Value>,
}

impl AppServer {
    fn start(fake: &Fake, logs: &Path) -> Result<Self> {
        let mut child = fake
            .command()
            .arg("app-server")
            .env("FAKE_CODEX_LOG_DIR", logs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(AppServer {
            child,
            stdin,
            lines,
            next_id: 1,
            notes: Vec::new(),
        })
    }

    fn send(&mut self, v: &Value) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{v}")?;
        Ok(stdin.flush()?)
    }

    fn next(&mut self) -> Result<Value> {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .context("no message from the fake")?;
        let v: Value = serde_json::from_str(&line).with_context(|| line.clone())?;
        ensure!(
            v.get("jsonrpc").is_none(),
            "server messages carry no jsonrpc: {v}"
        );
        Ok(v)
    }

    /// Sends a request; returns its whole answer (`result` or `error`).
    fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"id": id, "method": method, "params": params}))?;
        loop {
            let v = self.next()?;
            if v["id"] == id && v.get("method").is_none() {
                return Ok(v);
            }
            ensure!(
                v["emittedAtMs"].is_u64(),
                "a notification without emittedAtMs: {v}"
            );
            self.notes.push(v);
        }
    }

    /// Reads notifications until one with `method`; returns it.
    fn until(&mut self, method: &str) -> Result<Value> {
        if let Some(i) = self.notes.iter().position(|n| n["method"] == method) {
            return Ok(self.notes.remove(i));
        }
        loop {
            let v = self.next()?;
            if v["method"] == method {
                return Ok(v);
            }
            self.notes.push(v);
        }
    }

    fn methods(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
            .iter()
            .map(|n| n["method"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// The newest of the `n` records one process wrote (one per turn).
fn newest_record(logs: &Path, n: usize) -> Result<Value> {
    let mut files: Vec<_> = std::fs::read_dir(logs)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    ensure!(files.len() == n, "{n} records: {files:?}");
    // `<pid>-<start>.json`, then `<pid>-<start>-1.json`, `-2` …
    files.sort_by_key(|p| p.as_os_str().len());
    let newest = files.last().context("a record")?;
    Ok(serde_json::from_slice(&std::fs::read(newest)?)?)
}

fn only_record(logs: &Path) -> Result<Value> {
    let files: Vec<_> = std::fs::read_dir(logs)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    ensure!(files.len() == 1, "one record per process: {files:?}");
    Ok(serde_json::from_slice(&std::fs::read(&files[0])?)?)
}

#[test]
fn fake_app_server_plays_the_scenarios_over_json_rpc() -> Result<()> {
    let fake = Fake::new()?;
    let logs = tempfile::tempdir()?;
    let ws = tempfile::tempdir()?;
    let cwd = ws.path().to_str().context("utf-8")?;
    let mut s = AppServer::start(&fake, logs.path())?;

    let early = s.call("thread/start", json!({}))?;
    ensure!(early["error"]["message"] == "Not initialized", "{early}");
    let init = s.call(
        "initialize",
        json!({"clientInfo": {"name": "fcx", "title": null, "version": "0"}, "capabilities": null}),
    )?;
    ensure!(
        init["result"]["userAgent"]
            .as_str()
            .is_some_and(|u| u.starts_with("fcx/")),
        "{init}"
    );
    s.send(&json!({"method": "initialized"}))?;

    let params = json!({"cwd": cwd, "sandbox": "read-only", "approvalPolicy": "never", "config": {"k.v": 1}});
    let started = s.call("thread/start", params)?;
    let thread = started["result"]["thread"]["id"]
        .as_str()
        .context("thread id")?
        .to_string();
    ensure!(
        started["result"]["sandbox"]["type"] == "readOnly",
        "{started}"
    );
    s.until("thread/started")?;

    // A scenario's exec events arrive as app-server notifications.
    let turn = s.call("turn/start", json!({"threadId": thread, "input": [{"type": "text", "text": "FAKE:tools", "text_elements": []}]}))?;
    ensure!(turn["result"]["turn"]["status"] == "inProgress", "{turn}");
    let done = s.until("turn/completed")?;
    ensure!(done["params"]["turn"]["status"] == "completed", "{done}");
    let methods = s.methods();
    for m in [
        "turn/started",
        "item/started",
        "item/commandExecution/outputDelta",
        "item/agentMessage/delta",
        "item/completed",
        "thread/tokenUsage/updated",
    ] {
        ensure!(methods.iter().any(|x| x == m), "no {m} in {methods:?}");
    }
    let record = only_record(logs.path())?;
    ensure!(record["argv"][1] == "app-server", "{record}");
    ensure!(record["prompt"] == "FAKE:tools", "{record}");
    ensure!(
        record["args"]["sandbox"] == "read-only" && record["args"]["cd"] == cwd,
        "{record}"
    );
    ensure!(record["args"]["configs"] == json!(["k.v=1"]), "{record}");

    // A stalled turn takes a steer, then stops on turn/interrupt.
    let turn = s.call("turn/start", json!({"threadId": thread, "input": [{"type": "text", "text": "FAKE:stall", "text_elements": []}]}))?;
    let turn_id = turn["result"]["turn"]["id"]
        .as_str()
        .context("turn id")?
        .to_string();
    let wrong = s.call(
        "turn/steer",
        json!({"threadId": thread, "expectedTurnId": "other", "input": []}),
    )?;
    ensure!(
        wrong["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("expected active turn id")),
        "{wrong}"
    );
    let steer = s.call("turn/steer", json!({"threadId": thread, "expectedTurnId": turn_id, "input": [{"type": "text", "text": "also this", "text_elements": []}]}))?;
    ensure!(steer["result"]["turnId"] == turn_id.as_str(), "{steer}");
    // A second turn of the same process has a record of its own: the
    // turn continues the loaded thread (as a kept child's next run does).
    let second = newest_record(logs.path(), 2)?;
    ensure!(second["steers"] == json!(["also this"]), "{second}");
    ensure!(second["prompt"] == "FAKE:stall", "{second}");
    ensure!(
        second["warm"] == true && second["resume_id"] == thread.as_str(),
        "{second}"
    );
    let stop = s.call(
        "turn/interrupt",
        json!({"threadId": thread, "turnId": turn_id}),
    )?;
    ensure!(stop["result"] == json!({}), "{stop}");
    let done = s.until("turn/completed")?;
    ensure!(done["params"]["turn"]["status"] == "interrupted", "{done}");
    let late = s.call(
        "turn/steer",
        json!({"threadId": thread, "expectedTurnId": turn_id, "input": []}),
    )?;
    ensure!(
        late["error"]["message"] == "no active turn to steer",
        "{late}"
    );

    // Resume, an unknown thread, and the listing /resume asks for.
    let resumed = s.call("thread/resume", json!({"threadId": thread, "cwd": cwd}))?;
    ensure!(
        resumed["result"]["thread"]["id"] == thread.as_str(),
        "{resumed}"
    );
    let gone = s.call(
        "thread/resume",
        json!({"threadId": "missing-1", "cwd": cwd}),
    )?;
    ensure!(
        gone["error"]["message"] == "no rollout found for thread id missing-1",
        "{gone}"
    );
    let listed = s.call("thread/list", json!({"cwd": cwd}))?;
    ensure!(
        listed["result"]["data"][0]["id"] == thread.as_str(),
        "{listed}"
    );

    // stdin EOF shuts it down cleanly.
    s.stdin = None;
    let status = wait_timeout(&mut s.child, WAIT)?;
    ensure!(status.code() == Some(0), "{status}");
    Ok(())
}
