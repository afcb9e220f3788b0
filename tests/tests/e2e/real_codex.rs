//! The REAL Codex CLI (pinned npm package, installed by scripts/test.sh),
//! driven by fcxd → fcx-worker through the console surface, talking to the
//! mock Responses server on 127.0.0.1. These fail (never skip) when the real
//! CLI is missing. They pin the exec runner (`runner = "exec"`), so exec stays
//! covered against the real CLI now that app-server is the default;
//! app_server.rs runs the same kinds of turns under app-server.

use std::time::{Duration, Instant};

use fcx_tests::harness::{Fcxd, TestHome, codex_setting, eventually, wait_no_processes};
use fcx_tests::mock_responses::MockResponses;
use nix::sys::signal::Signal;

/// How long a stopped run's processes may take to be gone: under the full
/// suite (dozens of real-Codex tests at once on 2 cores) one took 6.3 s.
const GONE: Duration = Duration::from_secs(15);

struct Env {
    rt: tokio::runtime::Runtime,
    mock: MockResponses,
    home: TestHome,
}

fn env() -> Env {
    let (rt, mock) = fcx_tests::real_codex_with_mock();
    let home = TestHome::new();
    home.write_config(&codex_setting(
        &home.real_codex_config(&mock.base_url()),
        "runner = \"exec\"",
    ));
    Env { rt, mock, home }
}

fn codex_marker(h: &TestHome) -> String {
    h.home
        .join("profiles/default/codex-home")
        .display()
        .to_string()
}

#[test]
fn a_command_turn_streams_to_the_console_and_the_next_message_resumes() {
    let e = env();
    let mut f = Fcxd::console(&e.home);
    f.wait_for("fcx console");
    f.send("RUN: echo fcx-real-cmd-42");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("new session"), "{seen}");
    assert!(
        seen.contains("$ /bin/bash -lc 'echo fcx-real-cmd-42'"),
        "{seen}"
    );
    assert!(seen.contains("✓"), "{seen}");
    assert!(seen.contains("(exit 0)"), "{seen}");
    assert!(seen.contains("Command done. Output:"), "{seen}");
    assert!(seen.contains("fcx-real-cmd-42"), "{seen}");
    assert!(seen.contains("tokens"), "{seen}");

    f.send("say hi");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("continuing session"), "{seen}");
    assert!(seen.contains("hi from mock"), "{seen}");

    let reqs = e.mock.requests();
    // Turn 1: the tool call and its follow-up; turn 2: one request.
    assert!(reqs.len() >= 3, "{}", reqs.len());
    let thread = |i: usize| {
        reqs[i]
            .headers
            .get("thread-id")
            .cloned()
            .unwrap_or_default()
    };
    assert!(!thread(0).is_empty());
    assert_eq!(
        thread(0),
        thread(reqs.len() - 1),
        "the same Codex thread continued"
    );
    let auth = reqs[0]
        .headers
        .get("authorization")
        .cloned()
        .unwrap_or_default();
    assert_eq!(auth, "Bearer sk-mock");
    // Resumed history carries the first turn.
    let body = reqs[reqs.len() - 1].body.to_string();
    assert!(
        body.contains("fcx-real-cmd-42"),
        "history replayed on resume"
    );
    drop(f);
    drop(e.rt);
}

#[test]
fn stop_ends_a_stalled_turn_within_two_seconds_with_no_orphan() {
    let e = env();
    let mut f = Fcxd::console(&e.home);
    f.wait_for("fcx console");
    f.send("please STALL now");
    f.wait_for("] started");
    // Wait until the model request is in flight (codex is really stalled).
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.mock.requests().is_empty() {
        assert!(Instant::now() < deadline, "codex never called the mock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    f.send("/stop");
    let seen = f.wait_for("] interrupted");
    let took = asked.elapsed();
    assert!(seen.contains("(stopped)"), "{seen}");
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    let left = wait_no_processes(&codex_marker(&e.home), GONE);
    assert!(left.is_empty(), "codex processes left: {left:?}");
    drop(f);
    drop(e.rt);
}

#[test]
fn stop_during_a_running_command_kills_the_command() {
    let e = env();
    let mut f = Fcxd::console(&e.home);
    f.wait_for("fcx console");
    f.send("RUN: echo begin; sleep 3017; echo end");
    f.wait_for("] $ ");
    f.send("/stop");
    f.wait_for("] interrupted");
    let left = wait_no_processes("sleep 3017", GONE);
    assert!(left.is_empty(), "the command survived: {left:?}");
    assert!(wait_no_processes(&codex_marker(&e.home), GONE).is_empty());
    drop(f);
    drop(e.rt);
}

#[test]
fn worker_kill_9_mid_run_restarts_and_loses_nothing() {
    let e = env();
    let mut f = Fcxd::console(&e.home);
    f.wait_for("fcx console");
    f.send("STALL this one");
    f.wait_for("] started");
    f.send("queued during the stall");
    // Once the worker has it (the console line still travels to fcxd and
    // on to the worker).
    let st = eventually(
        Duration::from_secs(30),
        || {
            let st = e.rt.block_on(e.home.status());
            (st.profiles[0].queued > 0).then_some(st)
        },
        || format!("never queued\n{}", e.home.read_logs()),
    );
    assert_eq!(st.profiles[0].queued, 1, "{st:?}");
    let worker = st.profiles[0].worker_pid;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker as i32), Signal::SIGKILL)
        .expect("kill -9");
    f.wait_for("interrupted (worker restarted; running it again)");
    // The interrupted message runs once more, together with the one accepted
    // while it ran (which so runs exactly once); it stalls again: stop it
    // once the mock has its request.
    let seen = f.wait_for("] started");
    assert!(seen.contains("2 messages"), "{seen}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !e.mock.requests().iter().any(|r| {
        r.last_user_text()
            .is_some_and(|t| t.contains("queued during the stall"))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the retry never asked the model"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    f.send("/stop");
    f.wait_for("] interrupted");
    f.send("after the restart");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("hi from mock"), "{seen}");
    // Each request replays history, so count the requests whose newest user
    // input is that message: exactly one run was made for it.
    let runs_for_queued = e
        .mock
        .requests()
        .iter()
        .filter(|r| {
            r.last_user_text()
                .is_some_and(|t| t.contains("queued during the stall"))
        })
        .count();
    assert_eq!(runs_for_queued, 1);
    let st = e.rt.block_on(e.home.status());
    assert!(st.profiles[0].restarts >= 1);
    drop(f);
    drop(e.rt);
}

/// What `cmd` printed inside Codex, as the mock saw it come back as the
/// tool output (the whole of it, not the console's tail).
fn tool_output(e: &Env, cmd: &str) -> String {
    let mut f = Fcxd::console_with(
        &e.home,
        &[
            ("FEISHU_APP_SECRET", "app-secret-e2e-7731"),
            ("LARK_PASSWD", "lark-passwd-e2e-9913"),
            ("OPENAI_API_KEY", "sk-openai-e2e-5521"),
        ],
    );
    f.wait_for("fcx console");
    f.send(&format!("RUN: {cmd}"));
    f.wait_for("] completed");
    drop(f);
    let mut out = String::new();
    for r in e.mock.requests() {
        for item in r.body["input"].as_array().into_iter().flatten() {
            if item["type"] == "function_call_output" {
                out.push_str(item["output"].as_str().unwrap_or(""));
            }
        }
    }
    out
}

#[test]
fn commands_codex_runs_see_no_secret_in_their_environment() {
    let e = env();
    let out = tool_output(&e, "env; echo env-listed-ok");
    assert!(out.contains("env-listed-ok"), "{out}");
    assert!(out.contains("PATH="), "{out}");
    for secret in [
        "sk-mock",
        "app-secret-e2e-7731",
        "lark-passwd-e2e-9913",
        "sk-openai-e2e-5521",
        "FCX_HOME",
    ] {
        assert!(
            !out.contains(secret),
            "{secret} reached codex's shell: {out}"
        );
    }
    drop(e.rt);
}

#[test]
fn commands_codex_runs_cannot_read_secrets_from_fcx_processes() {
    let e = env();
    let out = tool_output(
        &e,
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null | sort -u; echo environ-scan-done",
    );
    assert!(out.contains("environ-scan-done"), "{out}");
    assert!(out.contains("PATH="), "the scan read something: {out}");
    for secret in [
        "sk-mock",
        "app-secret-e2e-7731",
        "lark-passwd-e2e-9913",
        "sk-openai-e2e-5521",
    ] {
        assert!(!out.contains(secret), "{secret} readable from /proc: {out}");
    }
    drop(e.rt);
}

#[test]
fn commands_codex_runs_cannot_read_fcx_home() {
    let e = env();
    let home = e.home.home.display().to_string();
    std::fs::create_dir_all(e.home.home.join("secrets")).expect("mkdir");
    std::fs::write(
        e.home.home.join("secrets/app-secret"),
        "app-secret-file-4417",
    )
    .expect("secret");
    let out = tool_output(
        &e,
        &format!(
            "cat {home}/secrets/app-secret; ls {home}/profiles/default {home}/run | sed 's/^/ENTRY:/'; \
             head -c 15 {home}/profiles/default/state.db; cat {home}/run/*.key; \
             python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"{home}/run/worker-default.sock\"); print(\"CONNECTED\")'; \
             echo fcx-home-probe-done"
        ),
    );
    assert!(out.contains("fcx-home-probe-done"), "{out}");
    assert!(
        out.contains("ENTRY:codex-home"),
        "the profile's codex home stays: {out}"
    );
    for leaked in [
        "app-secret-file-4417",
        "SQLite format",
        "ENTRY:state.db",
        "ENTRY:worker-default.sock",
        "ENTRY:callback-keys",
        "CONNECTED",
    ] {
        assert!(
            !out.contains(leaked),
            "{leaked} visible to codex's commands: {out}"
        );
    }
    // Codex itself still has its home: the session it wrote can resume.
    assert!(
        e.home.console_codex_home().join("sessions").is_dir(),
        "codex wrote its session through the bind mount"
    );
    drop(e.rt);
}

/// Codex's own sandbox by itself (fcx's namespace turned off with the debug
/// build's test switch): the permissions profile fcx gives each run denies
/// what lies beside the run's Codex home, while the workspace and the
/// Codex home stay usable.
#[test]
fn without_the_namespace_codex_own_sandbox_still_denies_fcx_home() {
    let e = env();
    let home = e.home.home.display().to_string();
    std::fs::create_dir_all(e.home.home.join("secrets")).expect("mkdir");
    std::fs::write(
        e.home.home.join("secrets/app-secret"),
        "app-secret-file-6607",
    )
    .expect("secret");
    // An old thread left in the profile's shared Codex home.
    let shared = e.home.home.join("profiles/default/codex-home/sessions");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::write(shared.join("rollout-old-6607.jsonl"), "{}").expect("rollout");
    let mut f = Fcxd::console_with(&e.home, &[("FCX_TEST_NO_NAMESPACE", "1")]);
    f.wait_for("fcx console");
    f.send("/status");
    let st = f.wait_for("turned off by FCX_TEST_NO_NAMESPACE");
    assert!(
        st.contains("FCX_HOME denied by Codex's sandbox (bubblewrap) only"),
        "{st}"
    );
    f.send(&format!(
        "RUN: cat {home}/secrets/app-secret; ls {home} | sed 's/^/TOP:/'; ls {home}/secrets {home}/run; \
         head -c 15 {home}/profiles/default/state.db; cat {home}/run/*.key; \
         ls {own} | sed 's/^/KEPT:/'; ls -R {home}/profiles/default/codex-home | sed 's/^/SHARED:/'; \
         echo ws-write-ok > probe.txt && cat probe.txt; echo fcx-home-probe-done",
        own = e.home.console_codex_home().display(),
    ));
    f.wait_for("] completed");
    drop(f);
    let out: String = e
        .mock
        .requests()
        .iter()
        .flat_map(|r| r.body["input"].as_array().cloned().unwrap_or_default())
        .filter(|item| item["type"] == "function_call_output")
        .filter_map(|item| item["output"].as_str().map(str::to_string))
        .collect();
    println!("what the probe printed (namespace off):\n{out}");
    assert!(out.contains("fcx-home-probe-done"), "{out}");
    // No namespace: the names of FCX_HOME's entries show…
    assert!(out.contains("TOP:secrets"), "the namespace is off: {out}");
    // …and none of their contents.
    for leaked in [
        "app-secret-file-6607",
        "SQLite format",
        "worker-default.sock",
    ] {
        assert!(
            !out.contains(leaked),
            "{leaked} visible to codex's commands: {out}"
        );
    }
    assert!(out.contains("Permission denied"), "{out}");
    // The run's own Codex home and the workspace still work.
    assert!(out.contains("KEPT:sessions"), "{out}");
    // The profile's shared home (the login, every chat's old threads) is
    // not on the way to the run's own: denied.
    assert!(!out.contains("rollout-old-6607"), "{out}");
    assert!(out.contains("ws-write-ok"), "{out}");
    drop(e.rt);
}

/// A base URL on a 127.0.0.1 port nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/v1")
}

/// Codex retries an unreachable model API without end ("Reconnecting...
/// waiting for network"); fcx fails the run after runs.model_unreachable_secs
/// with a sentence naming the endpoint, and both doctors say it does not
/// answer.
#[test]
fn a_model_api_that_cannot_be_reached_fails_the_run_and_doctor_says_so() {
    let codex = fcx_tests::real_codex();
    assert!(codex.is_file());
    let home = TestHome::new();
    let closed = closed_port_url();
    // The runs table is the config's last: the bound joins it.
    home.write_config(&format!(
        "{}model_unreachable_secs = 2\n",
        home.real_codex_config(&closed)
    ));
    let mut f = Fcxd::console(&home);
    f.wait_for("fcx console");
    f.send("say hi");
    let seen = f.wait_for("] failed");
    assert!(
        seen.contains(&format!(
            "Codex could not reach the model API at {closed} for 2 seconds (Reconnecting..."
        )),
        "{seen}"
    );
    assert!(seen.contains("/doctor checks whether it answers"), "{seen}");

    f.send("/doctor");
    let seen = f.wait_for("model api");
    assert!(seen.contains("Some checks failed"), "{seen}");
    assert!(
        seen.contains(&format!("{closed} does not answer")),
        "{seen}"
    );

    let o = std::process::Command::new(fcx_tests::harness::bin("fcxctl"))
        .arg("--home")
        .arg(&home.home)
        .arg("doctor")
        .env_remove("FCX_CODEX_BINARY")
        .output()
        .expect("fcxctl doctor");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("[FAIL] model api: {closed} does not answer")),
        "{out}"
    );
    f.close_stdin();
    f.wait_exit(Duration::from_secs(30));
}
