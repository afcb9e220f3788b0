//! The run orchestrator over the worker's real socket, with the scripted fake
//! codex: the global cap on concurrent runs, fair order across scopes, one
//! run per scope with messages merged during a run, the idle watchdog, and
//! preemption by `/stop`, `/new` and `/cd`.
//!
//! Every wait is bounded and none is a speed assertion: the tests follow the
//! worker's event stream and its Status, and count live fake-codex processes
//! through /proc.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{
    Actor, ChatType, Done, DoneReason, EventsRequest, Inbound, RunStarted, StatusRequest,
    WorkerEvent, WorkerStatus,
};
use fcx_tests::harness::{
    TestHome, WorkerProc, codex_setting, processes_mentioning, wait_no_processes,
};
use tonic::transport::Channel;

type Client = WorkerClient<Channel>;

/// Bounds a hang; never a speed assertion.
const WAIT: Duration = Duration::from_secs(60);
/// Tests of the queue: a message sent during a run waits for the next one
/// (under app-server the default, steer, would add it to the running turn).
const QUEUE: &str = "during_run = \"queue\"";

async fn start(h: &TestHome, env: &[(&str, &std::path::Path)]) -> (WorkerProc, Client) {
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    WorkerProc::start(h, &env).await
}

/// A message from the profile's operator (no platform app: local-only, so
/// the sender is the owner and may use every command) in a private chat.
fn msg(id: &str, chat: &str, text: &str) -> Inbound {
    Inbound {
        event_id: id.into(),
        scope: scope(chat),
        actor: Some(Actor {
            id: "ou_owner".into(),
            name: "owner".into(),
        }),
        text: text.into(),
        chat_type: ChatType::Private as i32,
        chat_id: chat.into(),
        message_id: id.into(),
        ..Default::default()
    }
}

fn scope(chat: &str) -> String {
    format!("chat:{chat}")
}

async fn deliver(c: &mut Client, id: &str, chat: &str, text: &str) {
    let ack = c
        .deliver(msg(id, chat, text))
        .await
        .expect("deliver")
        .into_inner();
    assert!(ack.accepted && !ack.duplicate, "{id}: {ack:?}");
}

async fn status(c: &mut Client) -> WorkerStatus {
    c.status(StatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

/// Poll Status (bounded) until `ok` holds; returns that Status.
async fn wait_status(
    c: &mut Client,
    what: &str,
    ok: impl Fn(&WorkerStatus) -> bool,
) -> WorkerStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = status(c).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The worker's events from the moment of creation, consumed in seq order;
/// events not asked for yet are kept for later questions.
struct Events {
    stream: tonic::Streaming<WorkerEvent>,
    pending: VecDeque<WorkerEvent>,
}

impl Events {
    async fn new(c: &mut Client) -> Self {
        let from_seq = status(c).await.last_seq + 1;
        let stream = c
            .events(EventsRequest { from_seq })
            .await
            .expect("events")
            .into_inner();
        Events {
            stream,
            pending: VecDeque::new(),
        }
    }

    /// The first event (in seq order) not yet taken that satisfies `f`.
    async fn take(&mut self, what: &str, f: impl Fn(&WorkerEvent) -> bool) -> WorkerEvent {
        if let Some(i) = self.pending.iter().position(&f)
            && let Some(ev) = self.pending.remove(i)
        {
            return ev;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let ev = tokio::time::timeout_at(deadline.into(), self.stream.message())
                .await
                .unwrap_or_else(|_| panic!("no {what}; unread events: {:?}", self.pending))
                .expect("event stream ok")
                .expect("event stream open");
            if f(&ev) {
                return ev;
            }
            self.pending.push_back(ev);
        }
    }

    /// The next run start in any scope, in the order the worker started them.
    async fn next_start(&mut self) -> (String, String, RunStarted) {
        let ev = self
            .take("run start", |e| matches!(e.kind, Some(Kind::RunStarted(_))))
            .await;
        match ev.kind {
            Some(Kind::RunStarted(r)) => (ev.scope, ev.run_id, r),
            _ => unreachable!("filtered above"),
        }
    }

    async fn done(&mut self, run_id: &str) -> Done {
        let ev = self
            .take(&format!("end of run {run_id}"), |e| {
                e.run_id == run_id && matches!(e.kind, Some(Kind::Done(_)))
            })
            .await;
        match ev.kind {
            Some(Kind::Done(d)) => d,
            _ => unreachable!("filtered above"),
        }
    }

    /// The command reply answering message `id`: (title, body, ok).
    async fn reply(&mut self, id: &str) -> (String, String, bool) {
        let ev = self
            .take(&format!("reply to {id}"), |e| {
                e.reply_to == id && matches!(e.kind, Some(Kind::CommandReply(_)))
            })
            .await;
        match ev.kind {
            Some(Kind::CommandReply(r)) => (r.title, r.body, r.ok),
            _ => unreachable!("filtered above"),
        }
    }

    /// No run has started that the test has not taken yet.
    fn no_unread_start(&self) -> bool {
        !self
            .pending
            .iter()
            .any(|e| matches!(e.kind, Some(Kind::RunStarted(_))))
    }
}

fn reason(d: &Done) -> DoneReason {
    DoneReason::try_from(d.reason).unwrap_or(DoneReason::Unspecified)
}

/// Marker in every fake codex's environment (its CODEX_HOME) and in nothing
/// else: counts the fake processes of one test.
fn fake_marker(h: &TestHome) -> String {
    h.home
        .join("profiles/default/codex-home")
        .display()
        .to_string()
}

/// Fake records in the order the fake processes started.
fn records_by_start(h: &TestHome) -> Vec<serde_json::Value> {
    let mut recs = h.fake_records();
    recs.sort_by_key(|r| {
        r["started_unix_ns"]
            .as_str()
            .and_then(|s| s.parse::<u128>().ok())
            .unwrap_or(0)
    });
    recs
}

fn prompt(rec: &serde_json::Value) -> &str {
    rec["prompt"].as_str().unwrap_or("")
}

/// The pid of the fake that received a prompt containing `token` (bounded).
fn fake_pid(h: &TestHome, token: &str) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(r) = h.fake_records().iter().find(|r| prompt(r).contains(token)) {
            return r["pid"].as_u64().expect("pid") as u32;
        }
        assert!(Instant::now() < deadline, "no fake codex got {token:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Zombies are dead already.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "fake codex {pid} survived");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Samples the number of live fake processes on its own thread for the
/// whole test, so a moment with too many is caught even between the test's
/// own checks.
struct Census {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Census {
    fn start(marker: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, max) = (stop.clone(), max.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(processes_mentioning(&marker).len(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Census {
            stop,
            max,
            thread: Some(thread),
        }
    }

    /// Stop sampling; the most fake processes seen alive at once.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// max_concurrent = 2 and five scopes with runs that never end by
/// themselves: two run, three wait; each stop lets exactly the next oldest
/// one start, and at no moment are more than two fakes alive.
#[tokio::test]
async fn the_global_cap_holds_and_each_stop_starts_the_next_oldest() {
    let h = TestHome::new();
    h.write_config(&h.fake_codex_config("max_concurrent = 2"));
    let census = Census::start(fake_marker(&h));
    let (_w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;
    for i in 0..5 {
        deliver(
            &mut c,
            &format!("g{i}"),
            &format!("cap{i}"),
            &format!("FAKE:stall cap message {i}"),
        )
        .await;
    }
    let mut running: VecDeque<(String, String)> = VecDeque::new();
    for _ in 0..2 {
        let (s, run, _) = ev.next_start().await;
        running.push_back((s, run));
    }
    let mut first: Vec<&str> = running.iter().map(|(s, _)| s.as_str()).collect();
    first.sort();
    assert_eq!(first, ["chat:cap0", "chat:cap1"], "the oldest two start");
    fake_pid(&h, "cap message 0");
    fake_pid(&h, "cap message 1");
    wait_status(&mut c, "two children up, three queued", |s| {
        s.active_runs.len() == 2 && s.active_runs.iter().all(|r| r.child_pid != 0) && s.queued == 3
    })
    .await;
    // Both slots stay busy: for a while, nothing else may start.
    for _ in 0..20 {
        let s = status(&mut c).await;
        assert_eq!((s.active_runs.len(), s.queued), (2, 3), "{s:?}");
        assert_eq!(processes_mentioning(&fake_marker(&h)).len(), 2);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        ev.no_unread_start(),
        "a third run started: {:?}",
        ev.pending
    );
    assert_eq!(h.fake_records().len(), 2);

    // Each stop frees one slot, and the oldest waiting scope takes it.
    for next in 2..5 {
        let (s, run) = running.pop_front().expect("a running scope");
        let chat = s.trim_start_matches("chat:").to_string();
        deliver(&mut c, &format!("stop-{chat}"), &chat, "/stop").await;
        assert_eq!(reason(&ev.done(&run).await), DoneReason::Interrupted);
        let (s, run, _) = ev.next_start().await;
        assert_eq!(s, format!("chat:cap{next}"), "served out of order");
        // Stop it only once the fake is really running.
        fake_pid(&h, &format!("cap message {next}"));
        running.push_back((s, run));
        let st = status(&mut c).await;
        assert!(st.active_runs.len() <= 2, "{st:?}");
        assert_eq!(st.queued, 4 - next as u64, "{st:?}");
    }
    while let Some((s, run)) = running.pop_front() {
        let chat = s.trim_start_matches("chat:").to_string();
        deliver(&mut c, &format!("stop-{chat}"), &chat, "/stop").await;
        assert_eq!(reason(&ev.done(&run).await), DoneReason::Interrupted);
    }
    let left = wait_no_processes(&fake_marker(&h), Duration::from_secs(10));
    assert!(left.is_empty(), "fakes left behind: {left:?}");
    let st = status(&mut c).await;
    assert!(st.active_runs.is_empty() && st.queued == 0, "{st:?}");
    assert_eq!(h.fake_records().len(), 5, "each message ran once");
    let most = census.finish();
    assert!(most <= 2, "{most} fake codex processes were alive at once");
}

/// max_concurrent = 1: while scope A's run holds the slot, B and C send one
/// message each, then A sends many. B and C run before A's later messages,
/// which all go into A's one next run.
#[tokio::test]
async fn scopes_are_served_in_order_of_their_oldest_waiting_message() {
    let h = TestHome::new();
    h.write_config(&codex_setting(
        &h.fake_codex_config("max_concurrent = 1"),
        QUEUE,
    ));
    let (_w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;

    deliver(&mut c, "a1", "fa", "FAKE:stall a-first").await;
    let (s, run_a, _) = ev.next_start().await;
    assert_eq!(s, scope("fa"));
    fake_pid(&h, "a-first");
    deliver(&mut c, "b1", "fb", "FAKE:stall b-only").await;
    deliver(&mut c, "c1", "fc", "c-only").await;
    let later: Vec<String> = (2..=6).map(|i| format!("a{i}")).collect();
    for id in &later {
        deliver(&mut c, id, "fa", &format!("a-later {id} end")).await;
    }
    wait_status(&mut c, "seven messages waiting", |s| s.queued == 7).await;
    // Past the debounce window, so every scope is ready: order must come
    // from arrival, not from who happens to be ready first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ev.no_unread_start(), "{:?}", ev.pending);

    deliver(&mut c, "stop-a", "fa", "/stop").await;
    assert_eq!(reason(&ev.done(&run_a).await), DoneReason::Interrupted);
    let (s, run_b, r) = ev.next_start().await;
    assert_eq!(s, scope("fb"), "B waited longest");
    assert_eq!(r.message_ids, ["b1"]);
    fake_pid(&h, "b-only");
    // A keeps talking while B runs; it stays behind C.
    deliver(&mut c, "a7", "fa", "a-later a7 end").await;
    deliver(&mut c, "stop-b", "fb", "/stop").await;
    assert_eq!(reason(&ev.done(&run_b).await), DoneReason::Interrupted);
    let (s, run_c, r) = ev.next_start().await;
    assert_eq!(s, scope("fc"), "C before A's later messages");
    assert_eq!(r.message_ids, ["c1"]);
    assert_eq!(reason(&ev.done(&run_c).await), DoneReason::Completed);
    let (s, run_a2, r) = ev.next_start().await;
    assert_eq!(s, scope("fa"));
    let mut want = later.clone();
    want.push("a7".into());
    assert_eq!(r.message_ids, want, "A's later messages, merged, in order");
    assert_eq!(reason(&ev.done(&run_a2).await), DoneReason::Completed);

    // The fake processes started in the same order.
    let recs = records_by_start(&h);
    assert_eq!(recs.len(), 4, "{recs:?}");
    assert!(prompt(&recs[0]).contains("a-first"));
    assert!(prompt(&recs[1]).contains("b-only"));
    assert!(prompt(&recs[2]).contains("c-only"));
    let merged = prompt(&recs[3]);
    let mut at = 0;
    for id in &want {
        let pos = merged[at..]
            .find(&format!("a-later {id} end"))
            .unwrap_or_else(|| panic!("{id} missing or out of order in {merged}"));
        at += pos;
    }
    assert!(wait_no_processes(&fake_marker(&h), Duration::from_secs(10)).is_empty());
}

/// One run per scope: messages that arrive while the scope's run is active
/// (spread wider than the debounce window) wait, even with free slots, and
/// then go into exactly one next run.
#[tokio::test]
async fn messages_during_a_run_are_merged_into_exactly_one_next_run() {
    let h = TestHome::new();
    h.write_config(&codex_setting(
        &h.fake_codex_config("max_concurrent = 4"),
        QUEUE,
    ));
    let (_w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;

    deliver(&mut c, "m0", "mg", "FAKE:stall merge-first").await;
    let (_, run0, _) = ev.next_start().await;
    fake_pid(&h, "merge-first");
    let ids = ["m1", "m2", "m3"];
    for id in ids {
        deliver(&mut c, id, "mg", &format!("merge token {id} end")).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let st = wait_status(&mut c, "three waiting", |s| s.queued == 3).await;
    assert_eq!(st.active_runs.len(), 1, "one run per scope: {st:?}");
    assert!(ev.no_unread_start(), "{:?}", ev.pending);
    assert_eq!(h.fake_records().len(), 1);

    deliver(&mut c, "stop", "mg", "/stop").await;
    assert_eq!(reason(&ev.done(&run0).await), DoneReason::Interrupted);
    let (s, run1, r) = ev.next_start().await;
    assert_eq!(s, scope("mg"));
    assert_eq!(r.message_ids, ids);
    assert_eq!(r.message_count, 3);
    assert_eq!(reason(&ev.done(&run1).await), DoneReason::Completed);

    let st = status(&mut c).await;
    assert!(st.active_runs.is_empty() && st.queued == 0, "{st:?}");
    assert!(ev.no_unread_start(), "{:?}", ev.pending);
    let recs = records_by_start(&h);
    assert_eq!(recs.len(), 2, "{recs:?}");
    for id in ids {
        let token = format!("merge token {id} end");
        assert_eq!(
            recs.iter().filter(|r| prompt(r).contains(&token)).count(),
            1,
            "{id}"
        );
        assert!(prompt(&recs[1]).contains(&token), "{id}");
    }
    assert!(wait_no_processes(&fake_marker(&h), Duration::from_secs(10)).is_empty());
}

/// idle_timeout_secs = 2: a run that keeps producing events for longer than
/// that completes; a run that goes quiet is stopped as "timed out", its
/// process is gone, and the scope's session continues with the next message.
#[tokio::test]
async fn the_idle_watchdog_stops_only_a_quiet_run() {
    let h = TestHome::new();
    h.write_config(&h.fake_codex_config("idle_timeout_secs = 2"));
    let scenarios = h.root.join("scenarios");
    std::fs::create_dir_all(&scenarios).expect("scenario dir");
    // About 3 s in all, never more than 0.2 s without an event.
    let mut chatty = String::from("{\"thread_started\": true}\n{\"turn_started\": true}\n");
    for _ in 0..15 {
        chatty.push_str("{\"sleep_ms\": 200}\n{\"agent_message\": \"still working\"}\n");
    }
    chatty.push_str("{\"turn_completed\": true}\n");
    std::fs::write(scenarios.join("chatty.jsonl"), chatty).expect("scenario");
    let (_w, mut c) = start(&h, &[("FAKE_CODEX_SCENARIOS", &scenarios)]).await;
    let mut ev = Events::new(&mut c).await;

    deliver(&mut c, "t1", "idle", "FAKE:chatty keep talking").await;
    let (_, run, _) = ev.next_start().await;
    assert_eq!(reason(&ev.done(&run).await), DoneReason::Completed);

    deliver(&mut c, "t2", "idle", "FAKE:stall go quiet").await;
    let (_, run, _) = ev.next_start().await;
    let pid = fake_pid(&h, "go quiet");
    let d = ev.done(&run).await;
    assert_eq!(reason(&d), DoneReason::TimedOut, "{d:?}");
    assert!(d.detail.contains("no activity"), "{d:?}");
    wait_gone(pid);
    assert!(wait_no_processes(&fake_marker(&h), Duration::from_secs(10)).is_empty());

    deliver(&mut c, "t3", "idle", "after the timeout").await;
    let (_, run, r) = ev.next_start().await;
    assert!(r.resumed, "a timeout keeps the session: {r:?}");
    assert_eq!(reason(&ev.done(&run).await), DoneReason::Completed);
}

/// `/stop`, `/new` and `/cd` each stop the scope's active run (interrupted,
/// its fake gone); the message queued behind it is not lost but runs next,
/// in a kept session, a new session, and the new workspace respectively.
#[tokio::test]
async fn stop_new_and_cd_preempt_the_active_run_and_keep_the_queue() {
    let h = TestHome::new();
    h.write_config(&codex_setting(&h.fake_codex_config(""), QUEUE));
    let ws2 = h.root.join("ws2");
    std::fs::create_dir_all(&ws2).expect("second workspace");
    let ws2 = std::fs::canonicalize(&ws2)
        .expect("realpath")
        .display()
        .to_string();
    let (_w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;

    let cd = format!("/cd {ws2}");
    for (chat, command, detail) in [
        ("pstop", "/stop", "stopped"),
        ("pnew", "/new", "stopped for a new session"),
        ("pcd", cd.as_str(), "stopped for a new session"),
    ] {
        deliver(
            &mut c,
            &format!("{chat}-1"),
            chat,
            &format!("FAKE:stall {chat}-busy"),
        )
        .await;
        let (_, run, _) = ev.next_start().await;
        let pid = fake_pid(&h, &format!("{chat}-busy"));
        let queued_id = format!("{chat}-2");
        deliver(&mut c, &queued_id, chat, &format!("{chat} waits its turn")).await;
        wait_status(&mut c, "one waiting", |s| s.queued == 1).await;

        let cmd_id = format!("{chat}-cmd");
        deliver(&mut c, &cmd_id, chat, command).await;
        let (title, body, ok) = ev.reply(&cmd_id).await;
        assert!(ok, "{command}: {title} / {body}");
        let d = ev.done(&run).await;
        assert_eq!(reason(&d), DoneReason::Interrupted, "{command}: {d:?}");
        assert_eq!(d.detail, detail, "{command}");
        wait_gone(pid);

        let (s, run, r) = ev.next_start().await;
        assert_eq!(s, scope(chat));
        assert_eq!(r.message_ids, [queued_id.as_str()], "{command}");
        match command {
            "/stop" => assert!(r.resumed, "/stop keeps the session: {r:?}"),
            "/new" => assert!(!r.resumed, "/new starts a new session: {r:?}"),
            _ => {
                assert!(!r.resumed, "/cd starts a new session: {r:?}");
                assert_eq!(r.workspace, ws2);
                assert!(body.contains("The running turn was stopped"), "{body}");
            }
        }
        assert_eq!(reason(&ev.done(&run).await), DoneReason::Completed);
    }
    let recs = records_by_start(&h);
    assert_eq!(recs.len(), 6, "{recs:?}");
    assert_eq!(
        // The workspace is codex's working directory (not on its argv).
        recs[5]["cwd"].as_str(),
        Some(ws2.as_str()),
        "{}",
        recs[5]
    );
    let left = wait_no_processes(&fake_marker(&h), Duration::from_secs(10));
    assert!(left.is_empty(), "fakes left behind: {left:?}");
}

#[path = "orchestration/warm_children.rs"]
mod warm_children;
