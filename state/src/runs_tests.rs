use crate::test_support::inbound;
use crate::{InboxKind, RunRow, RunTotals, Store};

#[test]
fn started_runs_are_not_requeued_and_show_as_orphaned() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&d.path().join("state.db")).expect("open");
    let a = s
        .journal()
        .accept(&inbound("e1", "chat:a"), InboxKind::Message, 1)
        .expect("accept");
    s.journal()
        .accept(&inbound("e2", "chat:a"), InboxKind::Message, 1)
        .expect("accept");
    let run = RunRow {
        run_id: "r1".into(),
        scope: "chat:a".into(),
        reply_to: "m1".into(),
        thread_id: None,
        state: "running".into(),
        started_at_ms: 5,
        child_pid: None,
        child_start_time: None,
        workspace: "/w".into(),
    };
    s.runs().start_run(&run, 1, &[a.inbox_id]).expect("start");
    let q = s.journal().queued().expect("queued");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].inbound.event_id, "e2");
    let o = s.runs().orphaned_runs().expect("orphans");
    assert_eq!(o.len(), 1);
    s.runs()
        .finish_run(
            "r1",
            "interrupted",
            "worker restarted",
            RunTotals::default(),
            9,
        )
        .expect("finish");
    assert!(s.runs().orphaned_runs().expect("orphans").is_empty());
}

#[test]
fn a_message_steered_into_a_running_turn_is_no_longer_queued() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&d.path().join("state.db")).expect("open");
    let a = s
        .journal()
        .accept(&inbound("e1", "chat:a"), InboxKind::Message, 1)
        .expect("accept");
    let b = s
        .journal()
        .accept(&inbound("e2", "chat:a"), InboxKind::Message, 1)
        .expect("accept");
    let run = RunRow {
        run_id: "r1".into(),
        scope: "chat:a".into(),
        reply_to: "m1".into(),
        thread_id: None,
        state: "running".into(),
        started_at_ms: 5,
        child_pid: None,
        child_start_time: None,
        workspace: "/w".into(),
    };
    s.runs().start_run(&run, 1, &[a.inbox_id]).expect("start");
    assert_eq!(s.journal().queued().expect("queued").len(), 1);
    s.runs().steer_into_run("r1", b.inbox_id).expect("steer");
    // A crash now reports it with r1 (requeued once with it), never as a
    // run of its own.
    assert!(s.journal().queued().expect("queued").is_empty());
    assert_eq!(s.runs().orphaned_runs().expect("orphans").len(), 1);
}
