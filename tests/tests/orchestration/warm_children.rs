//! Kept app-server children (issue 11 point 2): a scope's child outlives
//! its run for `app_server_idle_secs`, its next run reuses it (one process
//! for both runs, the thread continued without being loaded again); another
//! scope has its own; a new session or another workspace ends it; the idle
//! timeout and the worker's end leave none behind. Against the fake codex
//! (app-server), whose records say which process served which turn.

use super::*;

/// Each test's own `app_server_idle_secs` instead of the harness's 0.
fn config(h: &TestHome, idle_secs: u64) -> String {
    let text = h.fake_codex_config("");
    let with = text.replace(
        fcx_tests::harness::KEEP_NO_CHILD,
        &format!("app_server_idle_secs = {idle_secs}"),
    );
    assert_ne!(with, text, "the setting went in");
    with
}

/// The record of the turn whose prompt has `token` (bounded wait).
fn record_of(h: &TestHome, token: &str) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(r) = h
            .fake_records()
            .into_iter()
            .find(|r| prompt(r).contains(token))
        {
            return r;
        }
        assert!(Instant::now() < deadline, "no fake codex got {token:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_of(r: &serde_json::Value) -> u32 {
    r["pid"].as_u64().expect("pid") as u32
}

/// Until `pid` is gone; bounded only against a hang.
fn wait_dead(pid: u32, what: &str) {
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what}: codex {pid} is still alive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Delivers `text` to `chat` and waits for the run it starts to complete.
async fn run_once(c: &mut Client, ev: &mut Events, id: &str, chat: &str, text: &str) -> RunStarted {
    deliver(c, id, chat, text).await;
    let (s, run, started) = ev.next_start().await;
    assert_eq!(s, scope(chat));
    let d = ev.done(&run).await;
    assert_eq!(reason(&d), DoneReason::Completed, "{id}: {d:?}");
    started
}

fn idle_listed(h: &TestHome, pid: u32) -> bool {
    fcx_config::registry::list(&fcx_config::Home::new(&h.home))
        .iter()
        .any(|e| e.pid == pid && e.id == format!("idle:{pid}") && e.kind == "codex")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scopes_next_run_reuses_its_child_and_another_scope_has_its_own() {
    let h = TestHome::new();
    h.write_config(&config(&h, 600));
    let (_w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;

    run_once(&mut c, &mut ev, "wa-1", "wa", "first warm-a1").await;
    let first = record_of(&h, "warm-a1");
    let pid = pid_of(&first);
    assert!(alive(pid), "the child outlives its run");
    assert!(idle_listed(&h, pid), "listed as idle, not as a run");

    let started = run_once(&mut c, &mut ev, "wa-2", "wa", "second warm-a2").await;
    let second = record_of(&h, "warm-a2");
    assert_eq!(pid_of(&second), pid, "one child for both runs");
    assert_eq!(second["warm"], true, "no thread/resume: {second}");
    // The run continues the scope's thread, the one loaded in the child.
    assert!(
        started.resumed && !started.thread_id.is_empty(),
        "{started:?}"
    );
    assert_eq!(
        second["resume_id"].as_str(),
        Some(started.thread_id.as_str()),
        "{second}"
    );

    run_once(&mut c, &mut ev, "wb-1", "wb", "other warm-b1").await;
    let other = record_of(&h, "warm-b1");
    assert_ne!(pid_of(&other), pid, "another scope, another child");
    assert_ne!(other["warm"], true);
    assert!(alive(pid) && alive(pid_of(&other)), "both kept");
    assert_eq!(processes_mentioning(&fake_marker(&h)).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_or_another_workspace_ends_the_kept_child() {
    let h = TestHome::new();
    h.write_config(&config(&h, 600));
    let ws2 = h.root.join("ws2");
    std::fs::create_dir_all(&ws2).expect("second workspace");
    let ws2 = std::fs::canonicalize(&ws2)
        .expect("realpath")
        .display()
        .to_string();
    let (_w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;

    run_once(&mut c, &mut ev, "wn-1", "wn", "before warm-n1").await;
    let pid = pid_of(&record_of(&h, "warm-n1"));
    deliver(&mut c, "wn-new", "wn", "/new").await;
    let (_, body, ok) = ev.reply("wn-new").await;
    assert!(ok, "{body}");
    wait_dead(pid, "/new");
    run_once(&mut c, &mut ev, "wn-2", "wn", "after warm-n2").await;
    let fresh = record_of(&h, "warm-n2");
    let pid2 = pid_of(&fresh);
    assert_ne!(pid2, pid);
    assert_ne!(fresh["warm"], true, "a new thread: {fresh}");

    deliver(&mut c, "wn-cd", "wn", &format!("/cd {ws2}")).await;
    let (_, body, ok) = ev.reply("wn-cd").await;
    assert!(ok, "{body}");
    wait_dead(pid2, "/cd");
    run_once(&mut c, &mut ev, "wn-3", "wn", "elsewhere warm-n3").await;
    let moved = record_of(&h, "warm-n3");
    assert_ne!(pid_of(&moved), pid2);
    assert_eq!(moved["args"]["cd"].as_str(), Some(ws2.as_str()), "{moved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_child_ends_at_its_timeout() {
    let h = TestHome::new();
    h.write_config(&config(&h, 1));
    let (_w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;
    run_once(&mut c, &mut ev, "wt-1", "wt", "brief warm-t1").await;
    let pid = pid_of(&record_of(&h, "warm-t1"));
    wait_dead(pid, "idle timeout");
    let deadline = Instant::now() + WAIT;
    while idle_listed(&h, pid) {
        assert!(Instant::now() < deadline, "still listed as idle");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next run simply starts a child of its own.
    run_once(&mut c, &mut ev, "wt-2", "wt", "again warm-t2").await;
    assert_ne!(pid_of(&record_of(&h, "warm-t2")), pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_end_leaves_no_kept_child() {
    let h = TestHome::new();
    h.write_config(&config(&h, 600));
    // An orderly shutdown.
    let (mut w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;
    run_once(&mut c, &mut ev, "ws-1", "ws", "kept warm-s1").await;
    let pid = pid_of(&record_of(&h, "warm-s1"));
    assert!(alive(pid));
    c.shutdown(fcx_proto::v1::ShutdownRequest {
        reason: "test".into(),
    })
    .await
    .expect("shutdown");
    wait_dead(pid, "worker shutdown");
    drop(ev);
    w.kill9();

    // kill -9: the kernel ends the kept child with its worker.
    let (mut w, mut c) = start(&h, &[]).await;
    let mut ev = Events::new(&mut c).await;
    run_once(&mut c, &mut ev, "ws-2", "ws2", "kept warm-s2").await;
    let pid = pid_of(&record_of(&h, "warm-s2"));
    assert!(alive(pid));
    w.kill9();
    wait_dead(pid, "worker kill -9");
    let left = wait_no_processes(&fake_marker(&h), WAIT);
    assert!(left.is_empty(), "left behind: {left:?}");
}
