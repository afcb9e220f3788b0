//! The console surface against the scripted fake codex: deterministic
//! orchestration, supervision and bad-input behaviour.

use std::time::Duration;

use fcx_tests::harness::{
    Fcxd, TestHome, codex_setting, eventually, processes_mentioning, wait_no_processes,
};
use nix::sys::signal::Signal;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn started(h: &TestHome) -> Fcxd {
    h.write_config(&h.fake_codex_config(""));
    let mut f = Fcxd::console(h);
    f.wait_for("fcx console");
    f
}

#[test]
fn a_message_gets_an_answer_and_the_next_continues_the_session() {
    let h = TestHome::new();
    // About exec's argv (how `resume` and the flags are placed).
    h.write_config(&codex_setting(
        &h.fake_codex_config(""),
        "runner = \"exec\"",
    ));
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    f.send("hello there");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("started"), "{seen}");
    assert!(seen.contains("new session"), "{seen}");
    assert!(seen.contains("hello from fake codex"), "{seen}");

    f.send("and again");
    let seen = f.wait_for("] completed");
    let thread = seen
        .split("continuing session ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no continued session: {seen}"))
        .to_string();

    let recs = h.fake_records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    let argv0: Vec<String> = serde_json::from_value(recs[0]["argv"].clone()).expect("argv");
    let argv1: Vec<String> = serde_json::from_value(recs[1]["argv"].clone()).expect("argv");
    assert!(!argv0.iter().any(|a| a == "resume"), "{argv0:?}");
    let i = argv1
        .iter()
        .position(|a| a == "resume")
        .expect("second run resumes");
    // Flags precede `resume` (exec resume has no --sandbox/--cd of its
    // own); the sandbox is in the `-p` settings file, as a permissions
    // profile (fcx's files denied), which the resumed run reads too.
    let profile = argv1.iter().position(|a| a == "-p").expect("-p");
    assert!(profile < i, "{argv1:?}");
    assert!(!argv1.iter().any(|a| a == "--sandbox"), "{argv1:?}");
    assert_eq!(recs[1]["args"]["sandbox"], "workspace-write", "{recs:?}");
    assert_eq!(argv1[i + 1], thread, "{recs:?}");
    assert_eq!(recs[1]["resume_id"], thread.as_str());
    // The prompt went in on stdin, every line of it, inside user_input.
    let prompt = recs[0]["prompt"].as_str().unwrap_or("");
    // Tags carry the prompt's random boundary.
    let b = prompt
        .split("<user_input-")
        .nth(1)
        .and_then(|r| r.split('>').next())
        .unwrap_or("");
    assert!(!b.is_empty(), "{prompt}");
    assert!(
        prompt.contains(&format!("<user_input-{b}>\nhello there\n</user_input-{b}>")),
        "{prompt}"
    );
}

#[test]
fn the_api_key_reaches_only_the_codex_child() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("show me");
    f.wait_for("] completed");
    let recs = h.fake_records();
    let env = &recs[0]["env"];
    assert_eq!(env["CODEX_API_KEY"], "sk-fake-test-secret-0001");
    let codex_home = env["CODEX_HOME"].as_str().unwrap_or("");
    assert_eq!(
        codex_home,
        h.console_codex_home().display().to_string(),
        "the console's own Codex home"
    );
    // Not in fcxd's or the worker's environment, nor any log line.
    let workers = processes_mentioning(&h.home.display().to_string());
    for pid in workers {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let s = String::from_utf8_lossy(&environ);
        assert!(
            !s.contains("sk-fake-test-secret-0001"),
            "pid {pid} has the key"
        );
    }
    assert!(!h.read_logs().contains("sk-fake-test-secret-0001"));
    assert!(!f.output().contains("sk-fake-test-secret-0001"));
}

#[test]
fn tools_failures_and_file_changes_are_shown() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("FAKE:tools please");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("$ "), "{seen}");
    assert!(seen.contains("✓"), "{seen}");
    assert!(seen.contains("✗"), "{seen}");
    assert!(seen.contains("(exit 3)"), "{seen}");
}

#[test]
fn stop_interrupts_a_stalled_run_and_leaves_no_process() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("FAKE:orphan run something long");
    f.wait_for("] $ ");
    let codex_home = h.home.join("profiles/default/codex-home");
    let marker = codex_home.display().to_string();
    assert!(
        !processes_mentioning(&marker).is_empty(),
        "the fake and its command run"
    );
    f.send("/stop");
    let seen = f.wait_for("] interrupted");
    assert!(seen.contains("(stopped)"), "{seen}");
    let left = wait_no_processes(&marker, Duration::from_secs(10));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    // The tool that was running is closed, not left spinning.
    assert!(f.output().contains("(did not finish)"), "{}", f.output());
    // And the scope works afterwards.
    f.send("hello after stop");
    f.wait_for("] completed");
}

#[test]
fn new_session_starts_a_fresh_thread() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("one");
    f.wait_for("] completed");
    f.send("/new");
    f.wait_for("New session");
    f.send("two");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("new session"), "{seen}");
}

#[test]
fn commands_answer_at_once() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("/help");
    let seen = f.wait_for("Anything else you write goes to Codex.");
    assert!(seen.contains("/stop"), "{seen}");
    f.send("/status");
    let seen = f.wait_for("queued");
    assert!(seen.contains("workspace-write"), "{seen}");
    f.send("/bogus");
    f.wait_for("/bogus is not a command");
    assert!(h.fake_records().is_empty(), "no command reached codex");
}

#[test]
fn garbage_from_codex_is_skipped_and_the_run_completes() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("FAKE:garbage");
    f.wait_for("] completed");
}

#[test]
fn a_crashing_codex_gives_one_clear_sentence() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("FAKE:crash");
    let seen = f.wait_for("] failed");
    assert!(seen.contains("code 3"), "{seen}");
    assert!(seen.contains("fatal: fake crash"), "{seen}");
    f.send("fine now");
    f.wait_for("] completed");
}

#[test]
fn a_missing_codex_binary_is_explained_and_fcxd_keeps_running() {
    let h = TestHome::new();
    let cfg = h.fake_codex_config("").replace(
        &fcx_tests::harness::bin("fake-codex").display().to_string(),
        "/nonexistent/codex",
    );
    h.write_config(&cfg);
    let mut f = Fcxd::console(&h);
    f.send("hi");
    let seen = f.wait_for("] failed");
    assert!(seen.contains("/nonexistent/codex"), "{seen}");
    assert!(seen.contains("codex.binary"), "{seen}");
    f.send("/status");
    f.wait_for("queued");
}

#[test]
fn a_bad_config_is_one_sentence_naming_file_and_key() {
    let h = TestHome::new();
    h.write_config("[profiles.default.codex]\nbinnary = \"codex\"\n");
    let mut f = Fcxd::console(&h);
    let st = f.wait_exit(Duration::from_secs(30));
    assert!(!st.success());
    let err = f.stderr();
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("binnary"), "{err}");
}

#[test]
fn an_unreadable_secret_fails_the_run_not_the_process() {
    let h = TestHome::new();
    let cfg = h.fake_codex_config("").replace(
        &h.root.join("api-key").display().to_string(),
        "/nonexistent/key",
    );
    h.write_config(&cfg);
    let mut f = Fcxd::console(&h);
    f.send("hi");
    let seen = f.wait_for("] failed");
    assert!(seen.contains("/nonexistent/key"), "{seen}");
    assert!(seen.contains("api_key"), "{seen}");
}

#[test]
fn a_burst_is_merged_into_one_run() {
    let h = TestHome::new();
    h.write_config(
        &h.fake_codex_config("")
            .replace("debounce_ms = 50", "debounce_ms = 400"),
    );
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    f.send("first line");
    f.send("second line");
    f.send("third line");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("3 messages"), "{seen}");
    let recs = h.fake_records();
    assert_eq!(recs.len(), 1);
    let prompt = recs[0]["prompt"].as_str().unwrap_or("");
    for l in ["first line", "second line", "third line"] {
        assert!(prompt.contains(l), "{prompt}");
    }
}

#[test]
fn worker_killed_mid_run_is_restarted_and_nothing_accepted_is_lost() {
    let h = TestHome::new();
    // A run long enough to be killed in, that ends by itself when run again.
    let dir = tempfile::tempdir().expect("scenario dir");
    std::fs::write(
        dir.path().join("long.jsonl"),
        [
            r#"{"thread_started": true}"#,
            r#"{"turn_started": true}"#,
            r#"{"sleep_ms": 3000}"#,
            r#"{"agent_message": "hello from fake codex"}"#,
            r#"{"turn_completed": true}"#,
        ]
        .join("\n"),
    )
    .expect("scenario");
    // A message sent during the run waits for the next one (not steered).
    h.write_config(&codex_setting(
        &h.fake_codex_config(""),
        "during_run = \"queue\"",
    ));
    let scenarios = dir.path().display().to_string();
    let mut f = Fcxd::console_with(&h, &[("FAKE_CODEX_SCENARIOS", &scenarios)]);
    f.wait_for("fcx console");
    f.send("FAKE:long first");
    f.wait_for("] started");
    // Accepted while the first run is busy: must run exactly once later.
    f.send("queued while busy");
    let rt = rt();
    // Once the worker has it (the console line still travels to fcxd and
    // on to the worker).
    let st = eventually(
        Duration::from_secs(30),
        || {
            let st = rt.block_on(h.status());
            (st.profiles[0].queued > 0).then_some(st)
        },
        || format!("never queued\n{}", h.read_logs()),
    );
    let p = &st.profiles[0];
    assert_eq!(p.worker_state().word(), "ready");
    assert_eq!(p.queued, 1, "{st:?}");
    let worker = p.worker_pid;
    // "started" is said when the child is spawned; under app-server its
    // turn (the prompt the count below reads) starts a moment later. On a
    // loaded machine the kill could land in between: wait for the turn.
    eventually(
        Duration::from_secs(30),
        || {
            h.fake_records()
                .iter()
                .any(|r| {
                    r["prompt"]
                        .as_str()
                        .unwrap_or("")
                        .contains("FAKE:long first")
                })
                .then_some(())
        },
        || format!("the first turn never started\n{}", h.read_logs()),
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker as i32), Signal::SIGKILL)
        .expect("kill -9 worker");
    let seen = f.wait_for("interrupted (worker restarted; running it again)");
    assert!(!seen.contains("queued while busy"));
    let seen = f.wait_for("] completed");
    assert!(seen.contains("hello from fake codex"), "{seen}");
    // The killed fake died with its worker.
    let marker = h
        .home
        .join("profiles/default/codex-home")
        .display()
        .to_string();
    assert!(wait_no_processes(&marker, Duration::from_secs(10)).is_empty());
    f.send("and after");
    f.wait_for("] completed");
    let prompts: Vec<String> = h
        .fake_records()
        .iter()
        .map(|r| r["prompt"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        prompts
            .iter()
            .filter(|p| p.contains("queued while busy"))
            .count(),
        1,
        "{prompts:?}"
    );
    assert_eq!(
        prompts
            .iter()
            .filter(|p| p.contains("FAKE:long first"))
            .count(),
        2,
        "the interrupted run is run again, once: {prompts:?}"
    );
    let st = rt.block_on(h.status());
    assert!(st.profiles[0].restarts >= 1);
    assert_ne!(st.profiles[0].worker_pid, worker);
}

#[test]
fn a_worker_that_cannot_start_is_reported_and_fcxd_keeps_running() {
    let h = TestHome::new();
    h.write_config(&h.fake_codex_config(""));
    let broken = h.root.join("broken-worker");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'cannot open the state database: disk on fire' >&2\nexit 1\n",
    )
    .expect("script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut f = Fcxd::console_with(&h, &[("FCX_WORKER_BIN", broken.to_str().unwrap_or(""))]);
    let seen = f.wait_for("could not start");
    assert!(seen.contains("disk on fire"), "{seen}");
    // Typed input waits instead of being lost.
    f.send("are you there");
    f.wait_for("will be delivered when it is back");
    let rt = rt();
    let st = rt.block_on(h.status());
    assert!(st.profiles[0].last_error.contains("disk on fire"), "{st:?}");
}

#[test]
fn sigterm_stops_runs_and_exits_cleanly() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("FAKE:stall");
    f.wait_for("] started");
    let marker = h
        .home
        .join("profiles/default/codex-home")
        .display()
        .to_string();
    f.signal(Signal::SIGTERM);
    f.wait_for("interrupted (fcx is shutting down)");
    let st = f.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "{st}");
    assert!(wait_no_processes(&marker, Duration::from_secs(10)).is_empty());
    assert!(
        wait_no_processes(&h.home.display().to_string(), Duration::from_secs(10)).is_empty(),
        "worker gone too"
    );
}

#[test]
fn end_of_input_waits_for_the_run_then_exits() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("FAKE:slow");
    f.close_stdin();
    f.wait_for("] completed");
    let st = f.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "{st}");
}

#[test]
fn status_and_ps_over_the_admin_socket() {
    let h = TestHome::new();
    let mut f = started(&h);
    f.send("FAKE:stall");
    f.wait_for("] started");
    let rt = rt();
    // The child pid is recorded once codex is up.
    let mut ps = rt.block_on(h.ps());
    for _ in 0..100 {
        if ps
            .processes
            .iter()
            .any(|p| p.kind().word() == "codex" && p.pid != 0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        ps = rt.block_on(h.ps());
    }
    let kinds: Vec<&str> = ps.processes.iter().map(|p| p.kind().word()).collect();
    assert_eq!(kinds, vec!["fcxd", "worker", "codex"], "{ps:?}");
    assert_eq!(ps.processes[0].pid, f.pid());
    assert_eq!(ps.processes[2].scope, "chat:console");
    let st = rt.block_on(h.status());
    assert_eq!(st.profiles[0].surfaces, vec!["console".to_string()]);
    assert_eq!(st.profiles[0].active_runs, 1);
    assert_eq!(st.protocol_version, fcx_proto::PROTOCOL_VERSION);
}

#[test]
fn a_second_fcxd_on_the_same_home_is_refused() {
    let h = TestHome::new();
    let _f = started(&h);
    let mut second = Fcxd::console(&h);
    let st = second.wait_exit(Duration::from_secs(30));
    assert!(!st.success());
    assert!(
        second.stderr().contains("already running"),
        "{}",
        second.stderr()
    );
    // Said once (it was printed twice: by the log and by main).
    let err = eventually(
        Duration::from_secs(30),
        || Some(second.stderr()).filter(|e| e.ends_with('\n')),
        || second.stderr(),
    );
    assert_eq!(err.matches("already running").count(), 1, "{err}");
}

#[test]
fn a_chat_that_never_pauses_still_gets_a_run() {
    let h = TestHome::new();
    h.write_config(
        &h.fake_codex_config("")
            .replace("debounce_ms = 50", "debounce_ms = 400"),
    );
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    // Faster than the quiet window, for longer than a burst may hold its
    // first message (5 × 400 ms): without the cap, one run after the end.
    for i in 0..25 {
        f.send(&format!("chatter {i}"));
        std::thread::sleep(Duration::from_millis(150));
    }
    f.wait_for("] completed");
    f.wait_for("] completed");
    assert!(h.fake_records().len() >= 2, "{:?}", h.fake_records().len());
    // No message lost or doubled: each is once in a run's prompt or steered
    // into a running turn (the default `during_run`), as the record keeps
    // it. Waited for: the chatter may outlast the second run, and its last
    // messages then go to a third.
    let texts = |r: &serde_json::Value| -> String {
        let steers = r["steers"].as_array().cloned().unwrap_or_default();
        std::iter::once(&r["prompt"])
            .chain(steers.iter())
            .map(|t| format!("{}\n", t.as_str().unwrap_or("")))
            .collect()
    };
    let counts = || -> Vec<usize> {
        let all: String = h.fake_records().iter().map(texts).collect();
        (0..25)
            .map(|i| all.matches(&format!("chatter {i}\n")).count())
            .collect()
    };
    eventually(
        Duration::from_secs(60),
        || counts().iter().all(|&n| n == 1).then_some(()),
        || {
            let recs: Vec<String> = h.fake_records().iter().map(texts).collect();
            format!(
                "times each message reached codex: {:?}\nrecords:\n{recs:#?}",
                counts()
            )
        },
    );
}

/// This process's umask as Linux reports it.
fn own_umask() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn fcx_files_are_private_and_codex_keeps_the_operators_umask() {
    use std::os::unix::fs::PermissionsExt;
    let h = TestHome::new();
    // A home made before fcx ran, readable by everyone.
    std::fs::create_dir_all(&h.home).expect("mkdir");
    std::fs::set_permissions(&h.home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut f = started(&h);
    f.send("hello");
    f.wait_for("] completed");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&h.home), 0o700, "FCX_HOME");
    assert_eq!(mode(&h.home.join("profiles")), 0o700, "profiles/");
    for p in [
        h.home.join("profiles/default/state.db"),
        h.home.join("run/fcxd.sock.key"),
        h.home.join("run/worker-default.sock.key"),
    ] {
        assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
    }
    let recs = h.fake_records();
    assert_eq!(
        recs[0]["umask"].as_str().unwrap_or(""),
        own_umask(),
        "codex runs with the operator's umask, not fcx's"
    );
}

/// The console is a terminal: markdown (an answer, a command reply) shows
/// as plain text with code kept as written, and what does not work there
/// (reply modes, groups, platform commands) is not offered.
#[test]
fn the_console_shows_plain_text_and_offers_only_what_works_there() {
    let h = TestHome::new();
    let dir = tempfile::tempdir().expect("scenario dir");
    let answer = "# Result\n\nThe **build** passed; see `cargo test`.\n\n```rust\nlet x = *y;\n```\n- one\n- two";
    std::fs::write(
        dir.path().join("md.jsonl"),
        [
            r#"{"thread_started": true}"#.to_string(),
            r#"{"turn_started": true}"#.to_string(),
            serde_json::json!({ "agent_message": answer }).to_string(),
            r#"{"turn_completed": true}"#.to_string(),
        ]
        .join("\n"),
    )
    .expect("scenario");
    h.write_config(&h.fake_codex_config(""));
    let scenarios = dir.path().display().to_string();
    let mut f = Fcxd::console_with(&h, &[("FAKE_CODEX_SCENARIOS", &scenarios)]);
    f.wait_for("fcx console");

    f.send("FAKE:md");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("\nResult\n"), "{seen}");
    assert!(seen.contains("The build passed; see cargo test."), "{seen}");
    assert!(seen.contains("\nlet x = *y;\n"), "code kept: {seen}");
    assert!(seen.contains("• one\n• two"), "{seen}");
    assert!(!seen.contains("**") && !seen.contains("```"), "{seen}");

    f.send("/help");
    let seen = f.wait_for("Anything else you write goes to Codex.");
    assert!(seen.contains("/config access"), "{seen}");
    for gone in [
        "reply_mode",
        "tool_display",
        "/config mention",
        "/new group",
        "/sendfile",
        "/reconnect",
        "/invite",
        "/remove",
    ] {
        assert!(
            !seen.contains(gone),
            "{gone} offered on the console: {seen}"
        );
    }
    assert!(!seen.contains("**") && !seen.contains('`'), "{seen}");

    f.send("/config");
    let seen = f.wait_for("/config idle_timeout");
    assert!(seen.contains("owner: you (the console's user)"), "{seen}");
    assert!(!seen.contains("not known yet"), "{seen}");
    assert!(
        !seen.contains("reply mode") && !seen.contains("reply_mode"),
        "{seen}"
    );
    assert!(!seen.contains("card"), "{seen}");

    f.send("/config reply_mode card");
    let seen = f.wait_for("Settings not changed");
    let seen = seen + &f.wait_for("every run as it happens");
    assert!(seen.contains("Not available on the console"), "{seen}");
}
