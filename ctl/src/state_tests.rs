use fcx_config::Home;
use fcx_state::{RunRow, RunTotals, SCHEMA_VERSION, SessionRow, Store};

use super::{RunsCommand, SessionsCommand, runs, sessions};

fn sessions_list(home: &Home, json: bool) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let cmd = SessionsCommand::List {
        profile: Some("p".into()),
        json,
        limit: 100,
    };
    sessions(home, cmd, &mut out)?;
    Ok(String::from_utf8(out)?)
}

fn runs_list(home: &Home, json: bool) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let cmd = RunsCommand::List {
        profile: Some("p".into()),
        json,
        limit: 50,
    };
    runs(home, cmd, &mut out)?;
    Ok(String::from_utf8(out)?)
}

/// A profile whose worker recorded one finished run and one session.
fn recorded(home: &Home) {
    let s = Store::open(&home.profile("p").state_db()).expect("open");
    let run = RunRow {
        run_id: "r1".into(),
        scope: "chat:a".into(),
        reply_to: "m1".into(),
        thread_id: Some("t1".into()),
        state: "running".into(),
        started_at_ms: 1_000,
        child_pid: None,
        child_start_time: None,
        workspace: "/w".into(),
    };
    s.runs().start_run(&run, 2, &[]).expect("start");
    let totals = RunTotals {
        input_tokens: 120,
        output_tokens: 30,
        ..Default::default()
    };
    s.runs()
        .finish_run("r1", "completed", "", totals, 3_500)
        .expect("finish");
    let session = SessionRow {
        scope: "chat:a".into(),
        thread_id: "t1".into(),
        cwd: "/w".into(),
        fingerprint: "0123456789abcdef".into(),
        usage: RunTotals::default(),
    };
    s.sessions()
        .catalog_touch(&session, "hello", 2_000)
        .expect("catalog");
    s.sessions().set_session(&session, 2_000).expect("session");
}

#[test]
fn lists_read_what_the_worker_recorded() {
    let d = tempfile::tempdir().expect("tempdir");
    let home = Home::with_user_home(d.path().join("h"), d.path().join("u"));
    recorded(&home);

    let v: serde_json::Value =
        serde_json::from_str(&sessions_list(&home, true).expect("sessions")).expect("json");
    assert_eq!(
        v,
        serde_json::json!([{
            "profile": "p", "scope": "chat:a", "thread_id": "t1", "cwd": "/w",
            "fingerprint": "0123456789abcdef", "title": "hello", "created_at_ms": 2000,
            "updated_at_ms": 2000, "archived": false, "current": true,
        }])
    );
    let table = sessions_list(&home, false).expect("sessions");
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("chat:a")
            && l.contains("current")
            && l.contains("0123456789ab ")
            && l.ends_with("/w")),
        "{table}"
    );

    let v: serde_json::Value =
        serde_json::from_str(&runs_list(&home, true).expect("runs")).expect("json");
    assert_eq!(
        v,
        serde_json::json!([{
            "profile": "p", "run_id": "r1", "scope": "chat:a", "state": "completed",
            "detail": "", "workspace": "/w", "thread_id": "t1", "started_at_ms": 1000,
            "ended_at_ms": 3500, "elapsed_ms": 2500, "message_count": 2,
            "input_tokens": 120, "output_tokens": 30,
        }])
    );
    let table = runs_list(&home, false).expect("runs");
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("r1")
            && l.contains("completed")
            && l.contains("2.5")
            && l.contains("120")),
        "{table}"
    );
}

#[test]
fn a_profile_without_state_lists_nothing() {
    let d = tempfile::tempdir().expect("tempdir");
    let home = Home::with_user_home(d.path().join("h"), d.path().join("u"));
    assert_eq!(
        sessions_list(&home, false).expect("sessions"),
        "no sessions\n"
    );
    assert_eq!(runs_list(&home, false).expect("runs"), "no runs\n");
    assert!(
        !home.profile("p").state_db().exists(),
        "listing creates no database"
    );
}

#[test]
fn a_database_from_a_newer_fcx_is_reported_not_misread() {
    let d = tempfile::tempdir().expect("tempdir");
    let home = Home::with_user_home(d.path().join("h"), d.path().join("u"));
    recorded(&home);
    // What a newer fcx would leave behind: only the version differs.
    rusqlite::Connection::open(home.profile("p").state_db())
        .expect("open")
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    let err = runs_list(&home, false).expect_err("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("profile p")
            && msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1))
            && msg.contains("upgrade fcx"),
        "{msg}"
    );
}
