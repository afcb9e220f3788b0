use std::path::Path;

use fcx_proto::v1::WorkerEvent;
use prost::Message;
use rusqlite::{Connection, params};

use super::{MIGRATIONS, SCHEMA_VERSION, user_version};
use crate::test_support::inbound;
use crate::{
    AccessOp, CatalogEntry, Reader, RunRow, RunTotals, ScopeSettings, SessionRow, Store, StoreError,
};

/// The schema the last unversioned release created, frozen.
const UNVERSIONED: &str = include_str!("../testdata/unversioned_schema.sql");

fn version_of(p: &Path) -> i64 {
    user_version(&Connection::open(p).expect("open")).expect("user_version")
}

/// Every table, index and column definition, to compare two databases.
fn schema_of(p: &Path) -> Vec<(String, String, Option<String>)> {
    let c = Connection::open(p).expect("open");
    let mut st = c
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

#[test]
fn migrations_are_in_order_and_end_at_the_schema_version() {
    let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    let expected: Vec<i64> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(versions, expected);
}

#[test]
fn a_new_database_gets_the_schema_version() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("state.db");
    drop(Store::open(&p).expect("open"));
    assert_eq!(version_of(&p), SCHEMA_VERSION);
    let r = Reader::open(&p).expect("reader");
    assert_eq!(r.schema_version().expect("version"), SCHEMA_VERSION);
}

#[test]
fn an_unversioned_database_is_migrated_in_place_and_keeps_every_row() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("state.db");
    let mut m = inbound("e1", "chat:a");
    m.chat_type = fcx_proto::v1::ChatType::Group as i32;
    let ev = WorkerEvent {
        scope: "chat:a".into(),
        at_ms: 7,
        ..Default::default()
    };
    {
        let c = Connection::open(&p).expect("open");
        c.pragma_update(None, "journal_mode", "WAL").expect("wal");
        c.execute_batch(UNVERSIONED).expect("unversioned schema");
        c.execute(
            "INSERT INTO inbox (event_id, scope, kind, state, payload, accepted_at_ms)
             VALUES ('e1', 'chat:a', 'message', 'queued', ?1, 10),
                    ('e0', 'chat:a', 'message', 'running', ?1, 9)",
            params![m.encode_to_vec()],
        )
        .expect("inbox");
        c.execute(
            "INSERT INTO events (scope, at_ms, payload) VALUES ('chat:a', 7, ?1)",
            params![ev.encode_to_vec()],
        )
        .expect("events");
        c.execute_batch(
            "UPDATE inbox SET run_id = 'r0' WHERE event_id = 'e0';
             INSERT INTO runs (run_id, scope, reply_to, thread_id, state, workspace,
               started_at_ms, child_pid, child_start_time, message_count)
             VALUES ('r0', 'chat:a', 'm0', 't1', 'running', '/w', 9, 42, 99, 1);
             INSERT INTO sessions (scope, thread_id, cwd, fingerprint, cum_input, cum_cached,
               cum_output, cum_reasoning, updated_at_ms)
             VALUES ('chat:a', 't1', '/w', 'fp', 100, 50, 20, 5, 11);
             INSERT INTO session_catalog (scope, thread_id, cwd, fingerprint, title,
               created_at_ms, updated_at_ms, archived)
             VALUES ('chat:a', 't1', '/w', 'fp', 'first question', 3, 11, 0);
             INSERT INTO scope_settings (scope, workspace, access, timeout_secs, updated_at_ms,
               reply_mode, tool_display, require_mention)
             VALUES ('chat:a', '/w', 'full', 60, 1, 'text', 'off', 0);
             INSERT INTO aliases VALUES ('home', '/w', 'ou_1', 2);
             INSERT INTO access_changes VALUES ('users', 'ou_2', 'remove', 'ou_1', 4);
             INSERT INTO kv VALUES ('platform', 'lark');",
        )
        .expect("rows");
        assert_eq!(user_version(&c).expect("version"), 0);
    }

    let s = Store::open(&p).expect("open migrates");
    assert_eq!(version_of(&p), SCHEMA_VERSION);
    let q = s.journal().queued().expect("queued");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].inbound, m);
    assert_eq!(q[0].accepted_at_ms, 10);
    assert_eq!(
        s.journal().last_chat_type("chat:a").expect("chat type"),
        Some(m.chat_type)
    );
    assert!(
        s.journal()
            .accept(&m, crate::InboxKind::Message, 12)
            .expect("accept")
            .duplicate
    );
    let mut want_ev = ev.clone();
    want_ev.seq = 1;
    assert_eq!(
        s.events().events_from(0, 10).expect("events"),
        vec![want_ev]
    );
    assert_eq!(s.events().last_seq().expect("last seq"), 1);
    assert_eq!(
        s.runs().orphaned_runs().expect("orphans"),
        vec![RunRow {
            run_id: "r0".into(),
            scope: "chat:a".into(),
            reply_to: "m0".into(),
            thread_id: Some("t1".into()),
            state: "running".into(),
            started_at_ms: 9,
            child_pid: Some(42),
            child_start_time: Some(99),
            workspace: "/w".into(),
        }]
    );
    assert_eq!(
        s.sessions().session("chat:a").expect("session"),
        Some(SessionRow {
            scope: "chat:a".into(),
            thread_id: "t1".into(),
            cwd: "/w".into(),
            fingerprint: "fp".into(),
            usage: RunTotals {
                input_tokens: 100,
                cached_input_tokens: 50,
                output_tokens: 20,
                reasoning_output_tokens: 5,
            },
        })
    );
    assert_eq!(
        s.sessions()
            .catalog(Some("chat:a"), None, 10)
            .expect("catalog"),
        vec![CatalogEntry {
            scope: "chat:a".into(),
            thread_id: "t1".into(),
            cwd: "/w".into(),
            fingerprint: "fp".into(),
            title: "first question".into(),
            created_at_ms: 3,
            updated_at_ms: 11,
            archived: false,
        }]
    );
    assert_eq!(
        s.settings().scope_settings("chat:a").expect("settings"),
        ScopeSettings {
            workspace: Some("/w".into()),
            access: Some("full".into()),
            timeout_secs: Some(60),
            reply_mode: Some("text".into()),
            tool_display: Some("off".into()),
            require_mention: Some(false),
            workspace_id: None,
            during_run: None,
        }
    );
    assert_eq!(
        s.settings().aliases().expect("aliases"),
        vec![("home".to_string(), "/w".to_string())]
    );
    assert_eq!(
        s.settings().access_changes().expect("access"),
        vec![("users".to_string(), "ou_2".to_string(), AccessOp::Remove)]
    );
    assert_eq!(
        s.settings().kv("platform").expect("kv"),
        Some("lark".into())
    );
    drop(s);

    // The migrated database has exactly the schema of a new one.
    let fresh = d.path().join("fresh.db");
    drop(Store::open(&fresh).expect("fresh"));
    assert_eq!(schema_of(&p), schema_of(&fresh));
}

#[test]
fn an_old_database_gains_the_settings_columns_and_keeps_its_rows() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("state.db");
    {
        // The table as the first release created it.
        let c = Connection::open(&p).expect("open");
        c.execute_batch(
            "CREATE TABLE scope_settings (scope TEXT PRIMARY KEY, workspace TEXT,
               access TEXT, timeout_secs INTEGER, updated_at_ms INTEGER NOT NULL);
             INSERT INTO scope_settings VALUES ('chat:a', '/w', 'read-only', 300, 1);",
        )
        .expect("old schema");
    }
    let s = Store::open(&p).expect("open migrates");
    let got = s.settings().scope_settings("chat:a").expect("read");
    assert_eq!(
        got,
        ScopeSettings {
            workspace: Some("/w".into()),
            access: Some("read-only".into()),
            timeout_secs: Some(300),
            ..Default::default()
        }
    );
    let mut changed = got.clone();
    changed.reply_mode = Some("text".into());
    changed.tool_display = Some("summary".into());
    changed.require_mention = Some(false);
    changed.during_run = Some("interrupt".into());
    s.settings()
        .set_scope_settings("chat:a", &changed, 2)
        .expect("write");
    drop(s);
    // Opening again is a no-op for the migration and keeps the values.
    let s = Store::open(&p).expect("reopen");
    assert_eq!(
        s.settings().scope_settings("chat:a").expect("read"),
        changed
    );
    assert_eq!(
        s.settings().mention_overrides().expect("overrides"),
        vec![("chat:a".to_string(), false)]
    );
}

#[test]
fn a_database_from_a_newer_fcx_is_refused_and_left_alone() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("state.db");
    drop(Store::open(&p).expect("open"));
    let newer = SCHEMA_VERSION + 1;
    Connection::open(&p)
        .expect("open")
        .pragma_update(None, "user_version", newer)
        .expect("set version");

    let err = Store::open(&p).err().expect("a newer schema is refused");
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. }
            if found == newer && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("schema version {newer}")) && msg.contains("upgrade fcx"),
        "{msg}"
    );
    let err = Reader::open(&p).err().expect("readers refuse it too");
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err:?}");
    assert_eq!(version_of(&p), newer);
}

#[test]
fn a_version_1_database_gains_the_workspace_pin_and_keeps_its_settings() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("state.db");
    {
        let mut c = Connection::open(&p).expect("open");
        let tx = c.transaction().expect("tx");
        (MIGRATIONS[0].apply)(&tx).expect("baseline");
        tx.pragma_update(None, "user_version", 1).expect("version");
        tx.execute(
            "INSERT INTO scope_settings (scope, workspace, updated_at_ms) VALUES ('chat:a', '/w', 1)",
            [],
        )
        .expect("row");
        tx.commit().expect("commit");
    }
    let s = Store::open(&p).expect("open migrates");
    assert_eq!(version_of(&p), SCHEMA_VERSION);
    let mut got = s.settings().scope_settings("chat:a").expect("read");
    assert_eq!(got.workspace.as_deref(), Some("/w"));
    assert_eq!(got.workspace_id, None);
    got.workspace_id = Some("64768:1234".into());
    s.settings()
        .set_scope_settings("chat:a", &got, 2)
        .expect("write");
    assert_eq!(s.settings().scope_settings("chat:a").expect("read"), got);
}
