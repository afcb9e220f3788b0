use std::time::Duration;

use fcx_config::RunsConfig;
use fcx_proto::v1::worker_event::Kind;
use tokio::sync::mpsc::UnboundedReceiver;

use super::queue::max_hold;
use super::*;
use crate::testkit::{self, FakeExec, Kit, Started};
use crate::util::short_id;

fn runs(max_concurrent: usize, debounce_ms: u64) -> RunsConfig {
    RunsConfig {
        max_concurrent,
        debounce_ms,
        ..RunsConfig::default()
    }
}

fn setup(max: usize, debounce_ms: u64) -> (Kit, Arc<Scheduler>, UnboundedReceiver<Started>) {
    let kit = testkit::kit(runs(max, debounce_ms));
    let (exec, rx) = FakeExec::new();
    let sched = Arc::new(Scheduler::new(
        kit.ctx.clone(),
        exec,
        CancellationToken::new(),
    ));
    sched.start(Vec::new());
    (kit, sched, rx)
}

fn msg(scope: &str, event_id: &str, text: &str) -> Inbound {
    Inbound {
        scope: scope.into(),
        ..testkit::private(event_id, testkit::USER, text)
    }
}

async fn next_run(rx: &mut UnboundedReceiver<Started>) -> Started {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a run starts")
        .expect("executor alive")
}

/// Lets the scheduler loop run, then checks nothing else started.
async fn assert_no_run(rx: &mut UnboundedReceiver<Started>) {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.try_recv().is_err(), "no run should start");
}

#[tokio::test]
async fn scopes_run_in_the_order_their_oldest_message_arrived() {
    let (_kit, sched, mut rx) = setup(1, 0);
    sched.enqueue(msg("chat:a", "e1", "a1")).expect("a1");
    let a = next_run(&mut rx).await;
    assert_eq!(
        (a.scope.as_str(), a.texts.clone()),
        ("chat:a", vec!["a1".to_string()])
    );
    // The pool is full: these wait, b before c, and a's new message after
    // both even though a is the scope that ran last.
    sched.enqueue(msg("chat:b", "e2", "b1")).expect("b1");
    sched.enqueue(msg("chat:c", "e3", "c1")).expect("c1");
    sched.enqueue(msg("chat:a", "e4", "a2")).expect("a2");
    assert_no_run(&mut rx).await;
    let _ = a.release.send(());
    let b = next_run(&mut rx).await;
    assert_eq!(b.scope, "chat:b");
    let _ = b.release.send(());
    let c = next_run(&mut rx).await;
    assert_eq!(c.scope, "chat:c");
    let _ = c.release.send(());
    let a2 = next_run(&mut rx).await;
    assert_eq!(
        (a2.scope.as_str(), a2.texts.clone()),
        ("chat:a", vec!["a2".to_string()])
    );
}

#[tokio::test]
async fn messages_that_arrive_during_a_run_merge_into_the_next() {
    let (_kit, sched, mut rx) = setup(4, 0);
    sched.enqueue(msg("chat:a", "e1", "first")).expect("first");
    let first = next_run(&mut rx).await;
    for (i, t) in ["second", "third", "fourth"].iter().enumerate() {
        sched
            .enqueue(msg("chat:a", &format!("m{i}"), t))
            .expect("queued");
    }
    // One run per scope at a time, even with free slots.
    assert_no_run(&mut rx).await;
    assert_eq!(sched.scope_view("chat:a").queued_here, 3);
    let _ = first.release.send(());
    let next = next_run(&mut rx).await;
    assert_eq!(next.texts, vec!["second", "third", "fourth"]);
    assert_eq!(sched.scope_view("chat:a").queued_here, 0);
}

#[tokio::test]
async fn the_pool_caps_concurrent_runs_across_scopes() {
    let (_kit, sched, mut rx) = setup(2, 0);
    for s in ["a", "b", "c"] {
        sched
            .enqueue(msg(&format!("chat:{s}"), s, s))
            .expect("queued");
    }
    let one = next_run(&mut rx).await;
    let two = next_run(&mut rx).await;
    assert_no_run(&mut rx).await;
    let snap = sched.snapshot();
    assert_eq!((snap.active.len(), snap.queued), (2, 1));
    let _ = one.release.send(());
    let three = next_run(&mut rx).await;
    assert_eq!(three.scope, "chat:c");
    drop(two);
}

#[tokio::test]
async fn stop_ends_only_the_named_run_and_records_why() {
    let (_kit, sched, mut rx) = setup(2, 0);
    sched.enqueue(msg("chat:a", "e1", "x")).expect("queued");
    let a = next_run(&mut rx).await;
    assert!(!sched.stop("chat:a", Some("r-other"), StopReason::User));
    assert!(!sched.stop("chat:b", None, StopReason::User));
    assert!(!a.slot.cancel.is_cancelled());
    assert_eq!(
        sched.find_run(&a.slot.run_id),
        Some(("chat:a".to_string(), a.slot.run_id.clone()))
    );
    assert!(sched.stop("chat:a", Some(&a.slot.run_id), StopReason::NewSession));
    assert!(a.slot.cancel.is_cancelled());
    assert_eq!(a.slot.stop_reason(), Some(StopReason::NewSession));
    // The run ends and the scope is free again.
    sched.enqueue(msg("chat:a", "e2", "y")).expect("queued");
    let again = next_run(&mut rx).await;
    assert_eq!(again.texts, vec!["y"]);
}

#[tokio::test]
async fn a_full_scope_is_busy_and_a_duplicate_is_not_queued_twice() {
    let (_kit, sched, mut rx) = setup(1, 0);
    sched.enqueue(msg("chat:a", "e0", "run")).expect("queued");
    let _held = next_run(&mut rx).await;
    sched.enqueue(msg("chat:a", "e1", "more")).expect("room");
    let dup = sched.enqueue(msg("chat:a", "e1", "more")).expect("dup ack");
    assert!(dup.duplicate);
    assert_eq!(sched.scope_view("chat:a").queued_here, 1);
    for i in 1..MAX_QUEUED_PER_SCOPE {
        sched
            .enqueue(msg("chat:a", &format!("e{}", i + 1), "more"))
            .expect("room");
    }
    match sched.enqueue(msg("chat:a", "e-over", "more")) {
        Err(DeliverError::Busy(m)) => assert!(m.contains("50 messages waiting"), "{m}"),
        other => panic!("expected busy, got {other:?}"),
    }
    // Another chat still gets in.
    sched.enqueue(msg("chat:b", "b", "other")).expect("queued");
    assert_eq!(sched.snapshot().queued, MAX_QUEUED_PER_SCOPE as u64 + 1);
}

#[tokio::test]
async fn shutdown_stops_every_run_and_refuses_new_messages() {
    let (_kit, sched, mut rx) = setup(2, 0);
    sched.enqueue(msg("chat:a", "a", "a")).expect("queued");
    sched.enqueue(msg("chat:b", "b", "b")).expect("queued");
    let a = next_run(&mut rx).await;
    let b = next_run(&mut rx).await;
    sched.shutdown().await;
    assert_eq!(a.slot.stop_reason(), Some(StopReason::Shutdown));
    assert_eq!(b.slot.stop_reason(), Some(StopReason::Shutdown));
    assert!(sched.shutting_down());
    assert!(matches!(
        sched.enqueue(msg("chat:c", "c", "c")),
        Err(DeliverError::ShuttingDown)
    ));
    assert!(sched.snapshot().active.is_empty());
}

#[tokio::test]
async fn messages_accepted_before_a_restart_run_once_without_a_new_debounce() {
    let kit = testkit::kit(runs(4, 60_000));
    let store = kit.ctx.store.clone();
    for (id, text) in [("e1", "one"), ("e2", "two")] {
        store
            .journal()
            .accept(&msg("chat:a", id, text), InboxKind::Message, now_ms())
            .expect("accept");
    }
    let (exec, mut rx) = FakeExec::new();
    let sched = Arc::new(Scheduler::new(
        kit.ctx.clone(),
        exec,
        CancellationToken::new(),
    ));
    sched.start(store.journal().queued().expect("queued"));
    // A 60 s debounce would hold fresh messages; re-queued ones start now.
    let run = next_run(&mut rx).await;
    assert_eq!(run.texts, vec!["one", "two"]);
    assert!(
        store.journal().queued().expect("queued").is_empty(),
        "claimed by the run"
    );
}

/// The `Queued` events recorded so far: (run id, reply_to, event).
fn queued_events(kit: &Kit) -> Vec<(String, String, pb::Queued)> {
    kit.events()
        .into_iter()
        .filter_map(|e| match e.kind {
            Some(Kind::Queued(q)) => Some((e.run_id, e.reply_to, q)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn each_accepted_message_is_announced_at_once_with_the_run_that_answers_it() {
    let (kit, sched, mut rx) = setup(1, 0);
    sched.enqueue(msg("chat:a", "e1", "a1")).expect("a1");
    // Announced by enqueue itself, before any run could start.
    let q = queued_events(&kit);
    assert_eq!(q.len(), 1);
    let (run_a, reply_to, ev) = &q[0];
    assert_eq!(
        (reply_to.as_str(), ev.message_id.as_str()),
        ("om_e1", "om_e1")
    );
    assert_eq!(ev.message_count, 1);
    assert_eq!(ev.reason, pb::QueueReason::None as i32);
    assert_eq!(ev.reply_mode(), pb::ReplyMode::Card);
    let a = next_run(&mut rx).await;
    assert_eq!(
        &a.slot.run_id, run_a,
        "the announced run is the one that runs"
    );

    // While a's run is busy: a2 and a3 join one next run, announced with
    // its id and a growing count; b waits for the only slot.
    sched.enqueue(msg("chat:a", "e2", "a2")).expect("a2");
    sched.enqueue(msg("chat:a", "e3", "a3")).expect("a3");
    sched.enqueue(msg("chat:b", "e4", "b1")).expect("b1");
    let q = queued_events(&kit);
    assert_eq!(q.len(), 4);
    let (next_a, first, e2) = &q[1];
    assert_ne!(next_a, run_a);
    assert_eq!((first.as_str(), e2.message_count), ("om_e2", 1));
    assert_eq!(e2.reason, pb::QueueReason::ScopeBusy as i32);
    let (same, first, e3) = &q[2];
    assert_eq!(same, next_a, "merged into the same next run");
    assert_eq!(
        first, "om_e2",
        "its card stays on the batch's first message"
    );
    assert_eq!((e3.message_id.as_str(), e3.message_count), ("om_e3", 2));
    let (run_b, _, b1) = &q[3];
    assert_eq!(b1.reason, pb::QueueReason::PoolFull as i32);

    // a2 waited longer than b1: a's next run takes the slot first.
    let _ = a.release.send(());
    let a2 = next_run(&mut rx).await;
    assert_eq!(&a2.slot.run_id, next_a);
    assert_eq!(a2.texts, vec!["a2", "a3"]);
    let _ = a2.release.send(());
    let b = next_run(&mut rx).await;
    assert_eq!(&b.slot.run_id, run_b);
}

#[tokio::test]
async fn a_lone_message_starts_without_a_quiet_window_by_default() {
    assert_eq!(RunsConfig::default().debounce_ms, 0);
    let kit = testkit::kit(RunsConfig::default());
    let (exec, mut rx) = FakeExec::new();
    let sched = Arc::new(Scheduler::new(
        kit.ctx.clone(),
        exec,
        CancellationToken::new(),
    ));
    sched.start(Vec::new());
    sched.enqueue(msg("chat:a", "e1", "alone")).expect("queued");
    let q = queued_events(&kit);
    assert_eq!(q[0].2.reason, pb::QueueReason::None as i32);
    assert_eq!(next_run(&mut rx).await.texts, vec!["alone"]);
}

#[tokio::test]
async fn a_duplicate_is_not_announced_twice_and_a_restart_keeps_the_announced_run() {
    let kit = testkit::kit(runs(1, 60_000));
    let (exec, _rx) = FakeExec::new();
    let sched = Arc::new(Scheduler::new(
        kit.ctx.clone(),
        exec,
        CancellationToken::new(),
    ));
    sched.start(Vec::new());
    sched.enqueue(msg("chat:a", "e1", "one")).expect("one");
    sched.enqueue(msg("chat:a", "e1", "one")).expect("dup");
    sched.enqueue(msg("chat:a", "e2", "two")).expect("two");
    let q = queued_events(&kit);
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].2.reason, pb::QueueReason::QuietWindow as i32);
    let announced = q[0].0.clone();
    assert_eq!(q[1].0, announced);
    // The worker goes away before the run starts; the next one runs the
    // same batch under the id the chat was shown.
    sched.shutdown().await;
    let (exec, mut rx) = FakeExec::new();
    let again = Arc::new(Scheduler::new(
        kit.ctx.clone(),
        exec,
        CancellationToken::new(),
    ));
    again.start(kit.ctx.store.journal().queued().expect("queued"));
    let run = next_run(&mut rx).await;
    assert_eq!(run.slot.run_id, announced);
    assert_eq!(run.texts, vec!["one", "two"]);
}

fn steer_context() -> crate::run::SteerContext {
    crate::run::SteerContext {
        scope: "chat:a".into(),
        workspace: "/w".into(),
        sandbox: "read-only",
        network: false,
    }
}

async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition never held");
}

fn set_during_run(kit: &Kit, scope: &str, mode: &str) {
    let mut s = kit.ctx.settings(scope);
    s.during_run = Some(mode.into());
    kit.ctx
        .store
        .settings()
        .set_scope_settings(scope, &s, 1)
        .expect("settings");
}

#[tokio::test]
async fn steer_adds_a_message_to_the_running_turn_and_no_run_follows() {
    let (kit, sched, mut rx) = setup(1, 0);
    sched.enqueue(msg("chat:a", "e1", "first")).expect("first");
    let a = next_run(&mut rx).await;
    let (tx, mut ctl) = tokio::sync::mpsc::channel(8);
    a.slot.steering.open(tx, steer_context());
    sched
        .enqueue(msg("chat:a", "e2", "steered text"))
        .expect("second");
    let Some(crate::runner::RunControl::Steer { text, reply, .. }) = ctl.recv().await else {
        panic!("no steer request")
    };
    assert!(text.contains("steered text"), "{text}");
    reply.send(Ok(())).expect("answer");
    until(|| {
        queued_events(&kit)
            .iter()
            .any(|(_, _, q)| q.reason == pb::QueueReason::Steered as i32)
    })
    .await;
    let q = queued_events(&kit);
    let (run, reply_to, ev) = q.last().expect("steered");
    assert_eq!(run, &a.slot.run_id, "shown on the running run's card");
    assert_eq!(reply_to, "om_e1");
    assert_eq!((ev.message_id.as_str(), ev.message_count), ("om_e2", 2));
    assert!(kit.ctx.store.journal().queued().expect("queued").is_empty());
    let _ = a.release.send(());
    assert_no_run(&mut rx).await;
}

#[tokio::test]
async fn a_steer_the_turn_refuses_queues_the_message_for_the_next_run() {
    let (kit, sched, mut rx) = setup(1, 0);
    sched.enqueue(msg("chat:a", "e1", "first")).expect("first");
    let a = next_run(&mut rx).await;
    let (tx, mut ctl) = tokio::sync::mpsc::channel(8);
    a.slot.steering.open(tx, steer_context());
    sched.enqueue(msg("chat:a", "e2", "late")).expect("second");
    let Some(crate::runner::RunControl::Steer { reply, .. }) = ctl.recv().await else {
        panic!("no steer request")
    };
    reply
        .send(Err(crate::runner::ControlError::Ended))
        .expect("answer");
    until(|| queued_events(&kit).len() == 2).await;
    let q = queued_events(&kit);
    assert_ne!(q[1].0, a.slot.run_id);
    assert_eq!(q[1].2.reason, pb::QueueReason::ScopeBusy as i32);
    let _ = a.release.send(());
    assert_eq!(next_run(&mut rx).await.texts, vec!["late"]);
}

#[tokio::test]
async fn interrupt_stops_the_running_turn_and_the_next_run_answers_what_is_pending() {
    let (kit, sched, mut rx) = setup(1, 0);
    set_during_run(&kit, "chat:a", "interrupt");
    sched.enqueue(msg("chat:a", "e1", "first")).expect("first");
    let a = next_run(&mut rx).await;
    sched
        .enqueue(msg("chat:a", "e2", "second"))
        .expect("second");
    assert!(a.slot.cancel.is_cancelled());
    assert_eq!(a.slot.stop_reason(), Some(StopReason::Superseded));
    let q = queued_events(&kit);
    assert_eq!(q[1].2.reason, pb::QueueReason::Interrupting as i32);
    // The fake run ends when stopped; the next run takes what is pending.
    assert_eq!(next_run(&mut rx).await.texts, vec!["second"]);
}

#[tokio::test]
async fn queue_mode_never_steers() {
    let (kit, sched, mut rx) = setup(1, 0);
    set_during_run(&kit, "chat:a", "queue");
    sched.enqueue(msg("chat:a", "e1", "first")).expect("first");
    let a = next_run(&mut rx).await;
    let (tx, mut ctl) = tokio::sync::mpsc::channel(8);
    a.slot.steering.open(tx, steer_context());
    sched
        .enqueue(msg("chat:a", "e2", "second"))
        .expect("second");
    assert!(ctl.try_recv().is_err(), "not steered");
    assert!(!a.slot.cancel.is_cancelled());
    assert_eq!(
        queued_events(&kit)[1].2.reason,
        pb::QueueReason::ScopeBusy as i32
    );
    let _ = a.release.send(());
    assert_eq!(next_run(&mut rx).await.texts, vec!["second"]);
}

#[tokio::test]
async fn a_runner_that_cannot_steer_queues_and_says_so_once() {
    let (kit, sched, mut rx) = setup(1, 0);
    sched.enqueue(msg("chat:a", "e1", "first")).expect("first");
    let a = next_run(&mut rx).await;
    a.slot.steering.unsupported();
    sched
        .enqueue(msg("chat:a", "e2", "second"))
        .expect("second");
    sched.enqueue(msg("chat:a", "e3", "third")).expect("third");
    let notices: Vec<String> = kit
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            Some(Kind::Notice(n)) => Some(n.text),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("exec runner"), "{notices:?}");
    let _ = a.release.send(());
    assert_eq!(next_run(&mut rx).await.texts, vec!["second", "third"]);
}

// ---- the pure queue state ----

fn queued(scope: &str, id: i64) -> QueuedMessage {
    QueuedMessage {
        inbox_id: id,
        scope: scope.into(),
        inbound: msg(scope, &id.to_string(), "t"),
        accepted_at_ms: 0,
    }
}

#[test]
fn a_message_queued_again_after_a_refused_steer_keeps_the_chats_order() {
    let mut q = Queues::default();
    let now = Some(Instant::now());
    q.push(queued("chat:a", 15), now);
    q.push(queued("chat:a", 17), now);
    q.push(queued("chat:a", 18), now);
    // 16 was being steered into the turn that just ended: it comes back.
    q.push(queued("chat:a", 16), now);
    let ids: Vec<i64> = q.take("chat:a").iter().map(|m| m.inbox_id).collect();
    assert_eq!(ids, vec![15, 16, 17, 18]);
}

#[test]
fn a_burst_waits_for_a_quiet_window_but_not_forever() {
    let debounce = Duration::from_millis(100);
    let t0 = Instant::now();
    let mut q = Queues::default();
    q.push(queued("chat:a", 1), Some(t0));
    let (ready, next) = q.ready(t0 + Duration::from_millis(50), debounce, 4);
    assert!(ready.is_empty());
    assert_eq!(next, Some(t0 + debounce));
    // A message every 50 ms keeps the window from closing...
    let mut t = t0;
    while t < t0 + max_hold(debounce) {
        t += Duration::from_millis(50);
        q.push(queued("chat:a", 2), Some(t));
    }
    // ...but the first message waited max_hold: the burst runs anyway.
    let (ready, _) = q.ready(t, debounce, 4);
    assert_eq!(ready, vec!["chat:a".to_string()]);
    let taken = q.take("chat:a");
    assert_eq!(
        taken.len(),
        1 + (max_hold(debounce).as_millis() / 50) as usize
    );
}

#[test]
fn ready_scopes_are_picked_oldest_first_up_to_the_free_slots() {
    let t0 = Instant::now();
    let d = Duration::ZERO;
    let mut q = Queues::default();
    for (i, s) in ["chat:c", "chat:a", "chat:d", "chat:b"].iter().enumerate() {
        q.push(queued(s, i as i64), Some(t0));
    }
    let (ready, next) = q.ready(t0, d, 2);
    assert_eq!(ready, vec!["chat:c".to_string(), "chat:a".to_string()]);
    assert_eq!(next, None);
    for s in &ready {
        let n = q.take(s).len();
        q.started(s, testkit_slot(), n);
    }
    assert_eq!((q.active_count(), q.waiting()), (2, 2));
    // The pool is full: nothing, and no timer.
    assert_eq!(q.ready(t0, d, 2), (Vec::new(), None));
    q.finished("chat:c");
    assert_eq!(q.ready(t0, d, 2).0, vec!["chat:d".to_string()]);
}

#[test]
fn the_timer_ignores_scopes_that_could_not_start_anyway() {
    let t0 = Instant::now();
    let debounce = Duration::from_millis(100);
    let mut q = Queues::default();
    q.push(queued("chat:old", 1), None);
    q.push(queued("chat:older-ready", 2), None);
    q.push(queued("chat:young", 3), Some(t0));
    // One slot: the oldest ready scope takes it; the second ready scope is
    // blocked, so the younger, still-quiet scope needs no timer.
    let (ready, next) = q.ready(t0, debounce, 1);
    assert_eq!(ready, vec!["chat:old".to_string()]);
    assert_eq!(next, None);
    // With room for all, the young scope's quiet window sets the timer.
    let (ready, next) = q.ready(t0, debounce, 4);
    assert_eq!(ready.len(), 2);
    assert_eq!(next, Some(t0 + debounce));
}

#[test]
fn a_finished_scope_with_nothing_waiting_is_forgotten() {
    let mut q = Queues::default();
    q.push(queued("chat:a", 1), None);
    let n = q.take("chat:a").len();
    q.started("chat:a", testkit_slot(), n);
    assert!(q.active("chat:a").is_some());
    q.push(queued("chat:a", 2), None);
    q.finished("chat:a");
    assert!(q.active("chat:a").is_none());
    assert_eq!(q.waiting_in("chat:a"), 1);
    let n = q.take("chat:a").len();
    q.started("chat:a", testkit_slot(), n);
    q.finished("chat:a");
    assert_eq!(
        (q.active_count(), q.waiting(), q.actives().count()),
        (0, 0, 0)
    );
    assert!(q.ready(Instant::now(), Duration::ZERO, 4).0.is_empty());
}

fn testkit_slot() -> Arc<RunSlot> {
    Arc::new(RunSlot::new(
        short_id('r'),
        0,
        CancellationToken::new(),
        "/w".into(),
    ))
}

#[test]
fn a_screenshot_waits_for_its_text_then_runs_with_it_or_alone() {
    let wait = Duration::from_secs(30);
    let t0 = Instant::now();
    let shot = |id: i64| {
        let mut m = queued("chat:s", id);
        m.inbound.text.clear();
        m.inbound.attachments.push(pb::Attachment {
            kind: pb::AttachmentKind::Image as i32,
            key: "img_1".into(),
            ..Default::default()
        });
        m
    };
    let mut q = Queues::default();
    q.push(shot(1), Some(t0));
    // Held for the wait, and the timer says when it ends.
    let (ready, next) = q.ready_holding(t0, Duration::ZERO, wait, 4);
    assert!(ready.is_empty());
    assert_eq!(next, Some(t0 + wait));
    // Without the hold the same batch would start at once.
    assert_eq!(q.ready(t0, Duration::ZERO, 4).0, vec!["chat:s".to_string()]);
    // The text arrives: both run together at once.
    let t1 = t0 + Duration::from_secs(5);
    q.push(queued("chat:s", 2), Some(t1));
    let (ready, _) = q.ready_holding(t1, Duration::ZERO, wait, 4);
    assert_eq!(ready, vec!["chat:s".to_string()]);
    assert_eq!(q.take("chat:s").len(), 2);
    // No text comes: it runs alone once the wait is over.
    q.push(shot(3), Some(t1));
    assert!(
        q.ready_holding(t1 + wait / 2, Duration::ZERO, wait, 4)
            .0
            .is_empty()
    );
    let (ready, _) = q.ready_holding(t1 + wait, Duration::ZERO, wait, 4);
    assert_eq!(ready, vec!["chat:s".to_string()]);
    q.take("chat:s");
    // Re-queued after a restart: it already waited once.
    q.push(shot(4), None);
    assert_eq!(
        q.ready_holding(t1, Duration::ZERO, wait, 4).0,
        vec!["chat:s".to_string()]
    );
}

#[tokio::test]
async fn only_the_owner_steers_a_full_access_turn() {
    let (kit, sched, mut rx) = setup(1, 0);
    *kit.ctx.access_lists() = crate::access::Lists::build(&kit.ctx.profile.access, None, &[]);
    let owner_msg = |id: &str, text: &str| Inbound {
        scope: "chat:a".into(),
        ..testkit::private(id, testkit::OWNER, text)
    };
    sched.enqueue(owner_msg("e1", "first")).expect("first");
    let a = next_run(&mut rx).await;
    let (tx, mut ctl) = tokio::sync::mpsc::channel(8);
    a.slot.steering.open(
        tx,
        crate::run::SteerContext {
            sandbox: "danger-full-access",
            ..steer_context()
        },
    );
    // A member's message waits for a run of its own.
    sched
        .enqueue(msg("chat:a", "e2", "member text"))
        .expect("second");
    assert!(
        ctl.try_recv().is_err(),
        "a member must not steer a full turn"
    );
    assert_eq!(
        queued_events(&kit)[1].2.reason,
        pb::QueueReason::ScopeBusy as i32
    );
    // The owner's does join the turn.
    sched.enqueue(owner_msg("e3", "owner text")).expect("third");
    let Some(crate::runner::RunControl::Steer { text, reply, .. }) = ctl.recv().await else {
        panic!("no steer request")
    };
    assert!(text.contains("owner text"), "{text}");
    reply.send(Ok(())).expect("answer");
    let _ = a.release.send(());
    assert_eq!(next_run(&mut rx).await.texts, vec!["member text"]);
}

#[tokio::test]
async fn a_steered_message_with_a_file_joins_the_turn_once_its_download_is_placed() {
    let (kit, sched, mut rx) = setup(1, 0);
    sched.enqueue(msg("chat:a", "e1", "first")).expect("first");
    let a = next_run(&mut rx).await;
    let ws = kit.dir.path().join("steer-ws");
    std::fs::create_dir_all(&ws).expect("workspace");
    let (tx, mut ctl) = tokio::sync::mpsc::channel(8);
    a.slot.steering.open(
        tx,
        crate::run::SteerContext {
            workspace: ws.display().to_string(),
            ..steer_context()
        },
    );
    // What fcxd stores for the message: the blob, then its manifest.
    let media = kit.ctx.home.profile(&kit.ctx.profile.name).media_dir();
    let bytes = b"error: build failed at step 3";
    let sha = fcx_proto::media::content_hash(bytes);
    let blob = fcx_proto::media::blob_path(&media, &sha);
    let mut m = msg("chat:a", "e2", "what failed?");
    m.attachments.push(pb::Attachment {
        kind: pb::AttachmentKind::File as i32,
        key: "k1".into(),
        name: "build.log".into(),
        ..Default::default()
    });
    let manifest = fcx_proto::media::manifest_path(&media, &m.message_id);
    for p in [&blob, &manifest] {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("media dirs");
    }
    std::fs::write(&blob, bytes).expect("blob");
    let items = vec![pb::MediaItem {
        key: "k1".into(),
        sha256: sha,
        size: bytes.len() as u64,
        skipped: String::new(),
    }];
    let body = pb::MediaManifest {
        message_id: m.message_id.clone(),
        items,
    };
    std::fs::write(&manifest, prost::Message::encode_to_vec(&body)).expect("manifest");
    sched.enqueue(m).expect("second");
    let steered = tokio::time::timeout(Duration::from_secs(10), ctl.recv())
        .await
        .expect("steered into the turn, not queued for the next run");
    let Some(crate::runner::RunControl::Steer { text, reply, .. }) = steered else {
        panic!("no steer request")
    };
    assert!(text.contains("what failed?"), "{text}");
    assert!(text.contains(".fcx/inbox/build.log"), "{text}");
    assert_eq!(
        std::fs::read(ws.join(".fcx/inbox/build.log")).expect("placed in the inbox"),
        bytes
    );
    reply.send(Ok(())).expect("answer");
    until(|| {
        queued_events(&kit)
            .iter()
            .any(|(_, _, q)| q.reason == pb::QueueReason::Steered as i32)
    })
    .await;
    let _ = a.release.send(());
    assert_no_run(&mut rx).await;
}

/// The journal's times are the scheduler's: the runs one pass starts
/// record the moment they were chosen, so none looks started after a
/// scope that only became ready while the pass recorded the others (the
/// fairness count reads these times).
#[tokio::test]
async fn runs_started_in_one_pass_record_the_moment_they_were_chosen() {
    const SCOPES: usize = 200;
    let kit = testkit::kit(runs(SCOPES, 0));
    let store = kit.ctx.store.clone();
    for i in 0..SCOPES {
        store
            .journal()
            .accept(
                &msg(&format!("chat:s{i}"), &format!("e{i}"), "hi"),
                InboxKind::Message,
                now_ms(),
            )
            .expect("accept");
    }
    let (exec, mut rx) = FakeExec::new();
    let sched = Arc::new(Scheduler::new(
        kit.ctx.clone(),
        exec,
        CancellationToken::new(),
    ));
    // Every re-queued scope is ready at once: one pass starts them all.
    sched.start(store.journal().queued().expect("queued"));
    let mut held = Vec::new();
    for _ in 0..SCOPES {
        held.push(next_run(&mut rx).await);
    }
    let starts: std::collections::BTreeSet<i64> =
        held.iter().map(|r| r.slot.started_at_ms).collect();
    assert_eq!(starts.len(), 1, "one pass, one start time: {starts:?}");
}

/// A message's quiet window counts from its accept (the journal's
/// accepted_at), not from whenever its commit returned: a commit held up
/// longer than the window (another writer on the database) does not
/// stretch the debounce the chat configured.
#[tokio::test]
async fn a_slow_commit_does_not_stretch_the_quiet_window() {
    const DEBOUNCE_MS: u64 = 200;
    let (kit, sched, _rx) = setup(4, DEBOUNCE_MS);
    let db = rusqlite::Connection::open(kit.dir.path().join("state.db")).expect("db");
    db.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2 * DEBOUNCE_MS));
        db.execute_batch("COMMIT").expect("release");
    });
    // Waits for the other writer, twice the quiet window.
    sched.enqueue(msg("chat:a", "e1", "a1")).expect("a1");
    holder.join().expect("holder");
    // This test's thread runs the scheduler too: nothing started yet.
    let q = sched.board.lock();
    assert!(q.active("chat:a").is_none());
    let (ready, _) = q.ready(Instant::now(), Duration::from_millis(DEBOUNCE_MS), 4);
    assert_eq!(
        ready,
        vec!["chat:a".to_string()],
        "accepted over a window ago"
    );
}
