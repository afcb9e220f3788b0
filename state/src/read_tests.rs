use rusqlite::Connection;

use crate::test_support::inbound;
use crate::{
    CatalogEntry, InboxKind, InboxRecord, Reader, RunListing, RunRow, RunTotals, SessionListing,
    SessionRow, Store,
};

fn run(id: &str, started_at_ms: i64) -> RunRow {
    RunRow {
        run_id: id.into(),
        scope: "chat:a".into(),
        reply_to: "m".into(),
        thread_id: None,
        state: "running".into(),
        started_at_ms,
        child_pid: None,
        child_start_time: None,
        workspace: "/w".into(),
    }
}

fn session(thread_id: &str) -> SessionRow {
    SessionRow {
        scope: "chat:a".into(),
        thread_id: thread_id.into(),
        cwd: "/w".into(),
        fingerprint: "fp".into(),
        usage: RunTotals::default(),
    }
}

#[test]
fn a_reader_lists_what_the_worker_recorded() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("state.db");
    let s = Store::open(&p).expect("open");
    let e1 = s
        .journal()
        .accept(&inbound("e1", "chat:a"), InboxKind::Message, 1)
        .expect("accept");
    s.journal()
        .accept(&inbound("e2", "chat:a"), InboxKind::Command, 2)
        .expect("accept");
    s.runs()
        .start_run(&run("r1", 5), 1, &[e1.inbox_id])
        .expect("start");
    s.runs().set_run_thread("r1", "t1").expect("thread");
    let totals = RunTotals {
        input_tokens: 10,
        cached_input_tokens: 4,
        output_tokens: 3,
        reasoning_output_tokens: 1,
    };
    s.runs()
        .finish_run("r1", "completed", "", totals, 8)
        .expect("finish");
    s.runs().start_run(&run("r2", 9), 0, &[]).expect("start");
    s.sessions()
        .catalog_touch(&session("t1"), "old", 3)
        .expect("touch");
    s.sessions()
        .catalog_touch(&session("t2"), "new", 4)
        .expect("touch");
    s.sessions()
        .set_session(&session("t2"), 4)
        .expect("session");

    // The worker keeps its connection open: a reader does not need it closed.
    let r = Reader::open(&p).expect("reader");
    assert_eq!(
        r.runs(10).expect("runs"),
        vec![
            RunListing {
                recorded: 2,
                run_id: "r2".into(),
                scope: "chat:a".into(),
                state: "running".into(),
                detail: String::new(),
                workspace: "/w".into(),
                thread_id: None,
                started_at_ms: 9,
                ended_at_ms: None,
                message_count: 0,
                totals: RunTotals::default(),
            },
            RunListing {
                recorded: 1,
                run_id: "r1".into(),
                scope: "chat:a".into(),
                state: "completed".into(),
                detail: String::new(),
                workspace: "/w".into(),
                thread_id: Some("t1".into()),
                started_at_ms: 5,
                ended_at_ms: Some(8),
                message_count: 1,
                totals,
            },
        ]
    );
    assert_eq!(r.runs(1).expect("runs").len(), 1);
    let entry = |thread_id: &str, title: &str, at: i64| CatalogEntry {
        scope: "chat:a".into(),
        thread_id: thread_id.into(),
        cwd: "/w".into(),
        fingerprint: "fp".into(),
        title: title.into(),
        created_at_ms: at,
        updated_at_ms: at,
        archived: false,
    };
    assert_eq!(
        r.sessions(10).expect("sessions"),
        vec![
            SessionListing {
                entry: entry("t2", "new", 4),
                current: true,
            },
            SessionListing {
                entry: entry("t1", "old", 3),
                current: false,
            },
        ]
    );
    assert_eq!(
        r.journal().expect("journal"),
        vec![
            InboxRecord {
                id: e1.inbox_id,
                event_id: "e1".into(),
                scope: "chat:a".into(),
                kind: "message".into(),
                state: "done".into(),
                run_id: Some("r1".into()),
                accepted_at_ms: 1,
            },
            InboxRecord {
                id: e1.inbox_id + 1,
                event_id: "e2".into(),
                scope: "chat:a".into(),
                kind: "command".into(),
                state: "done".into(),
                run_id: None,
                accepted_at_ms: 2,
            },
        ]
    );
    assert_eq!(r.journal_len().expect("len"), 2);
    assert_eq!(r.quick_check().expect("check"), "ok");
}

#[test]
fn a_reader_never_writes_and_reads_missing_tables_as_empty() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("state.db");
    assert!(Reader::open(&p).is_err(), "no database, no reader");
    assert!(!p.exists(), "a reader does not create the database");
    // A database a worker started but never got to fill: nothing migrated.
    Connection::open(&p)
        .expect("open")
        .execute_batch("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .expect("table");
    let r = Reader::open(&p).expect("reader");
    assert_eq!(r.schema_version().expect("version"), 0);
    assert_eq!(r.sessions(10).expect("sessions"), vec![]);
    assert_eq!(r.runs(10).expect("runs"), vec![]);
    assert_eq!(r.journal().expect("journal"), vec![]);
    assert_eq!(r.journal_len().expect("len"), 0);
    drop(r);
    let c = Connection::open(&p).expect("open");
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    assert_eq!(v, 0, "a reader never migrates");
}
