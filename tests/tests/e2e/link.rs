//! The gateway⇄worker link across crashes, against the fake platform and the
//! scripted fake codex: workers outlive a killed fcxd and the next one
//! reattaches; every answer is posted exactly once whatever the moment fcxd
//! dies; a corrupt event row, a recreated state.db and a killed worker do not
//! silence the bot.

use std::time::{Duration, Instant};

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{
    FEISHU_USER as USER, Fcxd, FeishuEnv, TestHome, eventually, message_id, wait_no_processes,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A markdown-mode environment with the scenarios in `dir`; `extra` goes to
/// fcxd (and so to the worker and the fake codex).
fn env(dir: &std::path::Path, extra: &[(&str, &str)]) -> FeishuEnv {
    let scenarios = dir.display().to_string();
    let mut vars: Vec<(&str, &str)> = vec![("FAKE_CODEX_SCENARIOS", &scenarios)];
    vars.extend_from_slice(extra);
    FeishuEnv::start(
        "markdown",
        // Generous retries: an event pushed while fcxd is down is redelivered
        // to the next one.
        Redelivery::fast(Duration::from_secs(2), Duration::from_millis(300), 60),
        &vars,
    )
}

/// Scenario `name`: a run that takes `ms` and answers `answer`.
fn scenario(dir: &std::path::Path, name: &str, ms: u64, answer: &str) {
    let steps = [
        json!({"thread_started": true}),
        json!({"turn_started": true}),
        json!({"sleep_ms": ms}),
        json!({"agent_message": answer}),
        json!({"turn_completed": true}),
    ];
    let text: String = steps.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(dir.join(format!("{name}.jsonl")), text).expect("scenario");
}

/// What these tests read back and do.
trait LinkHelpers {
    fn push_text(&self, chat: &str, text: &str) -> String;
    fn replies_to(&self, om: &str) -> Vec<String>;
    fn wait_reply(&self, om: &str, needle: &str) -> String;
    fn restart_after_kill9(&mut self, vars: &[(&str, &str)]);
    fn worker_pid(&self) -> u32;
    fn runs_of(&self, marker: &str) -> usize;
}

impl LinkHelpers for FeishuEnv {
    fn push_text(&self, chat: &str, text: &str) -> String {
        let ev = self.fake.events().p2p_text(chat, USER, text);
        let om = message_id(&ev);
        self.rt.block_on(self.fake.push(&ev)).expect("push");
        om
    }

    /// Bot replies to `om`, as the fake stored them (a post sent twice with
    /// the same uuid is stored once, as the platform does).
    fn replies_to(&self, om: &str) -> Vec<String> {
        self.fake
            .messages()
            .into_iter()
            .filter(|m| m.sender_type == "app" && m.parent_id == om)
            .map(|m| m.content)
            .collect()
    }

    fn wait_reply(&self, om: &str, needle: &str) -> String {
        eventually(
            WAIT,
            || self.replies_to(om).into_iter().find(|c| c.contains(needle)),
            || {
                format!(
                    "no reply to {om} containing {needle:?}; replies: {:?}\nfcxd stderr:\n{}\nlogs:\n{}",
                    self.replies_to(om),
                    self.fcxd.stderr(),
                    self.home.read_logs()
                )
            },
        )
    }

    /// kill -9 fcxd, start a new one on the same home, and wait for its
    /// long connection.
    fn restart_after_kill9(&mut self, vars: &[(&str, &str)]) {
        self.fcxd.kill9();
        self.fcxd = Fcxd::daemon_with(&self.home, vars);
        self.rt
            .block_on(self.fake.wait_for_connections(1, WAIT))
            .expect("the new fcxd opens the long connection");
    }

    fn worker_pid(&self) -> u32 {
        eventually(
            WAIT,
            || {
                let st = self.rt.block_on(self.home.status());
                let p = st.profiles.first()?;
                (p.worker_state().word() == "ready" && p.worker_pid != 0).then_some(p.worker_pid)
            },
            || "the worker never became ready".to_string(),
        )
    }

    /// Codex invocations whose prompt contains `marker`.
    fn runs_of(&self, marker: &str) -> usize {
        self.home
            .fake_records()
            .iter()
            .filter(|r| r["prompt"].as_str().unwrap_or("").contains(marker))
            .count()
    }
}

fn scenarios_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("scenario dir")
}

/// Scenarios `<prefix>0..2`, each answering "<prefix> answer N" after
/// 1.5 s: long enough to kill a process while the run is in flight.
fn three_slow_scenarios(prefix: &str) -> tempfile::TempDir {
    let dir = scenarios_dir();
    for i in 0..3 {
        scenario(
            dir.path(),
            &format!("{prefix}{i}"),
            1500,
            &format!("{prefix} answer {i}"),
        );
    }
    dir
}

#[test]
fn runs_in_flight_survive_a_killed_gateway_and_are_answered_once() {
    let dir = three_slow_scenarios("long");
    let scenarios = dir.path().display().to_string();
    let vars = [("FAKE_CODEX_SCENARIOS", scenarios.as_str())];
    let mut e = env(dir.path(), &[]);
    let worker = e.worker_pid();
    let mut oms = Vec::new();
    for i in 0..3 {
        let marker = format!("FAKE:long{i}");
        let om = e.push_text(&format!("oc_lk{i}"), &format!("{marker} please"));
        // The run is in flight: codex has it.
        eventually(
            WAIT,
            || (e.runs_of(&marker) == 1).then_some(()),
            || format!("run {i} never started\n{}", e.home.read_logs()),
        );
        e.restart_after_kill9(&vars);
        e.wait_reply(&om, &format!("long answer {i}"));
        oms.push(om);
    }
    for (i, om) in oms.iter().enumerate() {
        let replies = e.replies_to(om);
        let answers = replies
            .iter()
            .filter(|r| r.contains(&format!("long answer {i}")))
            .count();
        assert_eq!(answers, 1, "round {i}: {replies:?}");
        assert!(
            !replies.iter().any(|r| r.contains("nterrupted")),
            "round {i}: {replies:?}"
        );
        assert_eq!(e.runs_of(&format!("FAKE:long{i}")), 1, "run {i} ran once");
    }
    assert_eq!(e.worker_pid(), worker, "the worker outlived every fcxd");
    // A worker this fcxd did not spawn still stops with it.
    e.rt.block_on(async {
        e.home
            .admin()
            .await
            .stop(fcx_proto::v1::StopRequest {})
            .await
            .expect("stop")
    });
    assert!(e.fcxd.wait_exit(WAIT).success());
    let marker = e.home.home.display().to_string();
    assert!(
        wait_no_processes(&marker, WAIT).is_empty(),
        "the reattached worker did not stop with fcxd"
    );
}

/// A small deterministic generator for the kill points (printed, so a
/// failing round can be replayed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn every_answer_is_posted_exactly_once_across_random_gateway_kills() {
    let dir = scenarios_dir();
    scenario(dir.path(), "quick", 150, "quick answer");
    let scenarios = dir.path().display().to_string();
    let vars = [("FAKE_CODEX_SCENARIOS", scenarios.as_str())];
    let mut e = env(dir.path(), &[]);
    let seed = 0x5eed_f00d_u64;
    let mut rng = Rng(seed);
    let mut oms = Vec::new();
    let mut delays = Vec::new();
    let started = Instant::now();
    for i in 0..20 {
        let om = e.push_text(&format!("oc_rk{i}"), &format!("FAKE:quick round {i}."));
        // Anywhere from before the worker accepted it to after its answer.
        let delay = rng.below(700);
        delays.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        e.restart_after_kill9(&vars);
        oms.push(om);
    }
    for om in &oms {
        e.wait_reply(om, "quick answer");
    }
    // Time for a late duplicate to show.
    std::thread::sleep(Duration::from_millis(500));
    let mut missing = Vec::new();
    let mut doubled = Vec::new();
    for (i, om) in oms.iter().enumerate() {
        let n = e
            .replies_to(om)
            .iter()
            .filter(|r| r.contains("quick answer"))
            .count();
        match n {
            1 => {}
            0 => missing.push(i),
            _ => doubled.push(i),
        }
        assert_eq!(e.runs_of(&format!("round {i}.")), 1, "round {i} ran once");
    }
    println!(
        "gateway kills: 20 rounds, seed {seed:#x}, delays {delays:?} ms, {:.1} s; missing {missing:?}, doubled {doubled:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(missing.is_empty() && doubled.is_empty());
}

#[test]
fn a_corrupt_event_row_is_skipped_and_later_answers_still_arrive() {
    let dir = scenarios_dir();
    scenario(dir.path(), "quick", 50, "quick answer");
    let scenarios = dir.path().display().to_string();
    let vars = [("FAKE_CODEX_SCENARIOS", scenarios.as_str())];
    let mut e = env(dir.path(), &[]);
    let om = e.push_text("oc_cr1", "FAKE:quick first");
    e.wait_reply(&om, "quick answer");
    e.fcxd.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(e.fcxd.wait_exit(WAIT).success());
    // A row no decoder accepts, right where the next fcxd resumes.
    let db = rusqlite::Connection::open(e.home.home.join("profiles/default/state.db"))
        .expect("state.db");
    db.execute(
        "INSERT INTO events (scope, at_ms, payload) VALUES ('chat:oc_cr1', 0, x'ffffffffffff')",
        [],
    )
    .expect("corrupt row");
    drop(db);
    e.fcxd = Fcxd::daemon_with(&e.home, &vars);
    e.rt.block_on(e.fake.wait_for_connections(1, WAIT))
        .expect("long connection");
    let om = e.push_text("oc_cr1", "FAKE:quick second");
    e.wait_reply(&om, "quick answer");
}

#[test]
fn a_recreated_state_db_with_the_cursor_kept_still_answers() {
    let dir = scenarios_dir();
    scenario(dir.path(), "quick", 50, "quick answer");
    let scenarios = dir.path().display().to_string();
    let vars = [("FAKE_CODEX_SCENARIOS", scenarios.as_str())];
    let mut e = env(dir.path(), &[]);
    let om = e.push_text("oc_rc1", "FAKE:quick first");
    e.wait_reply(&om, "quick answer");
    e.fcxd.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(e.fcxd.wait_exit(WAIT).success());
    let profile = e.home.home.join("profiles/default");
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(profile.join(f));
    }
    // The cursor of a long history: far beyond the new log's sequence.
    std::fs::write(profile.join("gateway.cursor"), "100000").expect("cursor");
    e.fcxd = Fcxd::daemon_with(&e.home, &vars);
    e.rt.block_on(e.fake.wait_for_connections(1, WAIT))
        .expect("long connection");
    let om = e.push_text("oc_rc1", "FAKE:quick second");
    e.wait_reply(&om, "quick answer");
}

#[test]
fn a_worker_whose_gateway_is_gone_finishes_its_run_then_exits_after_the_grace() {
    let dir = scenarios_dir();
    scenario(dir.path(), "long", 1500, "long answer");
    let mut e = env(dir.path(), &[("FCX_WORKER_ORPHAN_GRACE_MS", "1000")]);
    let _ = e.worker_pid();
    e.push_text("oc_or1", "FAKE:long alone");
    eventually(
        WAIT,
        || (e.runs_of("FAKE:long") == 1).then_some(()),
        || format!("the run never started\n{}", e.home.read_logs()),
    );
    e.fcxd.kill9();
    let marker = e.home.home.display().to_string();
    assert!(
        wait_no_processes(&marker, WAIT).is_empty(),
        "an orphaned worker must not live forever"
    );
    // It finished the run before going.
    let db = rusqlite::Connection::open(e.home.home.join("profiles/default/state.db"))
        .expect("state.db");
    let states: Vec<String> = db
        .prepare("SELECT state FROM runs")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("runs");
    assert_eq!(states, vec!["completed".to_string()], "{states:?}");
}

#[test]
fn a_killed_worker_answers_status_again_quickly() {
    let h = TestHome::new();
    h.write_config(&h.fake_codex_config(""));
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    f.send("/status");
    f.wait_for("queued");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut took = Vec::new();
    for _ in 0..20 {
        let pid = eventually(
            WAIT,
            || {
                let st = rt.block_on(h.status());
                let p = st.profiles.first()?;
                (p.worker_state().word() == "ready" && p.worker_pid != 0).then_some(p.worker_pid)
            },
            || "no ready worker".to_string(),
        );
        let t0 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 worker");
        f.send("/status");
        f.wait_for("queued");
        took.push(t0.elapsed());
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "worker kill -9 → /status answered, 20 kills: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        ms(took[9]),
        ms(took[18]),
        ms(took[19])
    );
}

#[test]
fn a_run_card_in_flight_is_finished_by_the_next_gateway() {
    let dir = three_slow_scenarios("card");
    let scenarios = dir.path().display().to_string();
    let vars = [("FAKE_CODEX_SCENARIOS", scenarios.as_str())];
    let mut e = FeishuEnv::start(
        "card",
        Redelivery::fast(Duration::from_secs(2), Duration::from_millis(300), 60),
        &vars,
    );
    for i in 0..3 {
        let om = e.push_text(&format!("oc_cd{i}"), &format!("FAKE:card{i} please"));
        let card_id = eventually(
            WAIT,
            || {
                e.fake
                    .messages()
                    .into_iter()
                    .find(|m| m.sender_type == "app" && m.parent_id == om)
                    .and_then(|m| m.card_id)
                    .filter(|c| e.fake.card(c).is_some_and(|c| c.streaming_mode))
            },
            || format!("no live card for round {i}\n{}", e.home.read_logs()),
        );
        e.restart_after_kill9(&vars);
        let answer = format!("card answer {i}");
        eventually(
            WAIT,
            || {
                e.fake
                    .card(&card_id)
                    .filter(|c| !c.streaming_mode && c.json.to_string().contains(&answer))
            },
            || {
                format!(
                    "round {i}: the card was not finished: {:?}\n{}",
                    e.fake.card(&card_id).map(|c| c.json),
                    e.home.read_logs()
                )
            },
        );
        let replies = e.replies_to(&om);
        assert_eq!(
            replies.len(),
            1,
            "round {i}: one card, nothing else: {replies:?}"
        );
    }
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
}

#[test]
fn a_run_whose_worker_died_with_fcxd_runs_again_once_and_its_card_says_so() {
    let dir = scenarios_dir();
    scenario(dir.path(), "long", 1500, "long answer");
    let scenarios = dir.path().display().to_string();
    let vars = [("FAKE_CODEX_SCENARIOS", scenarios.as_str())];
    let mut e = FeishuEnv::start(
        "card",
        Redelivery::fast(Duration::from_secs(2), Duration::from_millis(300), 60),
        &vars,
    );
    let worker = e.worker_pid();
    let om = e.push_text("oc_rq1", "FAKE:long please");
    let first = eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .find(|m| m.sender_type == "app" && m.parent_id == om)
                .and_then(|m| m.card_id)
                // Live with the run on it: the card exists from accept,
                // before the run starts.
                .filter(|c| {
                    e.fake.card(c).is_some_and(|c| {
                        c.streaming_mode && c.json.to_string().contains("Codex · Running")
                    })
                })
        },
        || format!("no live card\n{}", e.home.read_logs()),
    );
    // The card is live from accept, before Codex starts: on a loaded machine
    // a kill right now could land before the first Codex child exists, and
    // then "run again, once" would count one child, not two. Wait for it.
    eventually(
        WAIT,
        || (e.runs_of("FAKE:long") == 1).then_some(()),
        || format!("codex never started\n{}", e.home.read_logs()),
    );
    // The whole machine goes down: fcxd and its worker.
    e.fcxd.kill9();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 worker");
    e.restart_after_kill9(&vars);
    let card_text = |id: &str| {
        e.fake
            .card(id)
            .map(|c| c.json.to_string())
            .unwrap_or_default()
    };
    eventually(
        WAIT,
        || {
            e.fake
                .card(&first)
                .filter(|c| !c.streaming_mode && c.json.to_string().contains("running it again"))
        },
        || {
            format!(
                "the first card does not say so: {}\n{}",
                card_text(&first),
                e.home.read_logs()
            )
        },
    );
    let second = eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .filter(|m| m.sender_type == "app" && m.parent_id == om)
                .filter_map(|m| m.card_id)
                .find(|c| *c != first)
        },
        || format!("no second card\n{}", e.home.read_logs()),
    );
    eventually(
        WAIT,
        || {
            e.fake
                .card(&second)
                .filter(|c| !c.streaming_mode && c.json.to_string().contains("long answer"))
        },
        || {
            format!(
                "the retry's card: {}\n{}",
                card_text(&second),
                e.home.read_logs()
            )
        },
    );
    assert_eq!(e.runs_of("FAKE:long"), 2, "run again, once");
    assert_eq!(e.replies_to(&om).len(), 2, "{:?}", e.replies_to(&om));
}

/// kill -9 of the worker at different points (idle, right after a message,
/// with runs in flight), 12 rounds; in every other round a copy of the
/// worker's listening socket outlives it for up to 3 s. That is what a kill
/// landing while the worker is between fork and exec of a Codex child
/// leaves: the child holds a copy of every descriptor until it execs, or,
/// its parent gone, until its own exit has finished. Every successor starts
/// at first try: fcxd logs no worker that failed to start.
#[cfg(target_os = "linux")]
#[test]
fn a_killed_workers_successor_starts_at_once_while_a_copy_of_its_socket_lives_on() {
    let h = TestHome::new();
    h.write_config(&h.fake_codex_config("max_concurrent = 3"));
    let sock = h.home.join("run/worker-default.sock");
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let new_ready = |not: u32| {
        let st = rt.block_on(h.status());
        let p = st.profiles.first()?;
        (p.worker_state().word() == "ready" && p.worker_pid != 0 && p.worker_pid != not)
            .then_some(p.worker_pid)
    };
    let ready_worker = |not: u32| {
        eventually(
            WAIT,
            || new_ready(not),
            || format!("no new ready worker\n{}", h.read_logs()),
        )
    };
    let seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    println!("kill points seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut pid = ready_worker(0);
    let mut took = Vec::new();
    for round in 0..12u32 {
        match round % 3 {
            0 => {}
            1 => f.send(&format!("round {round}: kill while its run starts")),
            _ => {
                for i in 0..3 {
                    f.send(&format!("round {round} message {i}"));
                }
                std::thread::sleep(Duration::from_millis(rng.below(150)));
            }
        }
        let copy = (round % 2 == 1).then(|| copy_listening_socket(pid, &sock));
        let t0 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 worker");
        // Held as long as a slow child would, at most 3 s, not longer: the
        // socket is released however the successor fares.
        let held_until = Instant::now() + Duration::from_secs(3);
        let mut next = new_ready(pid);
        while next.is_none() && Instant::now() < held_until {
            std::thread::sleep(Duration::from_millis(20));
            next = new_ready(pid);
        }
        drop(copy);
        let next = next.unwrap_or_else(|| ready_worker(pid));
        took.push(t0.elapsed());
        pid = next;
    }
    let logs = h.read_logs();
    let refused = logs
        .lines()
        .filter(|l| l.contains("worker failed to start"))
        .collect::<Vec<_>>();
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "worker kill -9 → successor ready, 12 kills (6 with a copy of the socket held): p50 {:.0} ms, max {:.0} ms; refused starts: {}",
        ms(took[6]),
        ms(took[11]),
        refused.len()
    );
    // What the workers turned away, to tell why a start failed.
    let turned_away = logs
        .lines()
        .filter(|l| l.contains("local connection refused"))
        .collect::<Vec<_>>();
    assert!(
        refused.is_empty(),
        "a successor refused to start:\n{}\nconnections the workers refused:\n{}",
        refused.join("\n"),
        turned_away.join("\n")
    );
}

/// A copy of the descriptor `pid` listens on at `sock` (`pidfd_getfd`), as
/// a child the worker forked and has not exec'd yet holds one.
#[cfg(target_os = "linux")]
fn copy_listening_socket(pid: u32, sock: &std::path::Path) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let inode = listening_inode(sock).expect("the worker listens on its socket");
    let target = format!("socket:[{inode}]");
    let fd: i32 = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the worker's descriptors")
        .flatten()
        .find_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            (link.to_str()? == target)
                .then(|| e.file_name().to_str()?.parse().ok())
                .flatten()
        })
        .expect("the listening descriptor");
    // SAFETY: plain system calls; each descriptor they return is owned once.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0);
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
        assert!(
            copy >= 0,
            "pidfd_getfd: {}",
            std::io::Error::last_os_error()
        );
        OwnedFd::from_raw_fd(copy as i32)
    }
}

/// The inode of the socket listening at `sock` (`/proc/net/unix`: Num
/// RefCount Protocol Flags Type St Inode Path; St 01 is listening).
#[cfg(target_os = "linux")]
fn listening_inode(sock: &std::path::Path) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    let path = sock.to_str()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 8 && f[7] == path && f[5] == "01")
            .then(|| f[6].parse().ok())
            .flatten()
    })
}

/// A worker alive but frozen (SIGSTOP here; a deadlock or a swapped-out
/// process alike) is taken for dead after a few unanswered heartbeats,
/// killed and replaced; the message sent to it meanwhile is answered once
/// by its successor.
#[test]
fn a_frozen_worker_is_replaced_and_the_message_sent_to_it_is_answered_once() {
    let dir = scenarios_dir();
    scenario(dir.path(), "fz", 100, "thawed answer");
    let e = env(dir.path(), &[("FCX_WORKER_HEARTBEAT_MS", "300")]);
    let frozen = e.worker_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(frozen as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("SIGSTOP the worker");
    let om = e.push_text("oc_frozen", "FAKE:fz sent while the worker is frozen");
    e.wait_reply(&om, "thawed answer");
    let next = e.worker_pid();
    assert_ne!(next, frozen, "the frozen worker still serves");
    // Killed and reaped, not left stopped beside its successor.
    eventually(
        WAIT,
        || (!std::path::Path::new(&format!("/proc/{frozen}")).exists()).then_some(()),
        || format!("the frozen worker {frozen} still exists"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let answers = e
        .replies_to(&om)
        .iter()
        .filter(|c| c.contains("thawed answer"))
        .count();
    assert_eq!(answers, 1, "{:?}", e.replies_to(&om));
    assert!(
        e.home.read_logs().contains("worker stopped answering"),
        "{}",
        e.home.read_logs()
    );
}
