//! `during_run`: what a message sent while Codex works does, with the REAL
//! Codex CLI under the app-server runner against the mock Responses server.
//! A command that waits for a gate file keeps the turn busy for exactly as
//! long as the test needs, so nothing here depends on timing.

use std::time::Duration;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{DoneReason, QueueReason};
use fcx_tests::harness::{Fcxd, eventually};

use super::app_server::{Env, config, env, events, run_events, wait_for_request};

const WAIT: Duration = Duration::from_secs(60);

/// The app-server runner with `during_run = mode` as the profile default.
fn env_with(mode: &str) -> Env {
    let e = env("app-server");
    let text = config(&e.home, &e.mock, "app-server");
    let with = text.replace(
        "[profiles.default.codex]\n",
        &format!("[profiles.default.codex]\nduring_run = \"{mode}\"\n"),
    );
    assert_ne!(with, text);
    e.home.write_config(&with);
    e
}

/// A command that runs until the test creates `gate` in the workspace.
fn gated(gate: &str) -> String {
    format!("RUN: while [ ! -e {gate} ]; do sleep 0.05; done; echo released-{gate}")
}

fn open_gate(e: &Env, gate: &str) {
    std::fs::write(e.home.workspace.join(gate), "go").expect("open the gate");
}

/// Waits until the worker logged a `Queued` with `reason`; returns its run.
fn wait_queued(e: &Env, reason: QueueReason) -> String {
    eventually(
        WAIT,
        || {
            events(&e.home).into_iter().find_map(|ev| match ev.kind {
                Some(Kind::Queued(q)) if q.reason == reason as i32 => Some(ev.run_id),
                _ => None,
            })
        },
        || format!("no {reason:?} announcement:\n{}", e.home.read_logs()),
    )
}

fn done_reasons(e: &Env) -> Vec<(String, i32)> {
    events(&e.home)
        .into_iter()
        .filter_map(|ev| match ev.kind {
            Some(Kind::Done(d)) => Some((ev.run_id, d.reason)),
            _ => None,
        })
        .collect()
}

/// The turn id codex put in a request's metadata header.
fn turn_of(r: &fcx_tests::mock_responses::RecordedRequest) -> String {
    r.header("x-codex-turn-metadata")
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .and_then(|m| m["turn_id"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn steer_adds_a_message_to_the_running_turn_one_turn_one_run() {
    let e = env("app-server");
    let mut f = Fcxd::console(&e.home);
    f.wait_for("fcx console");
    f.send(&gated("gate-steer"));
    f.wait_for("] $ ");
    f.send("and also mention steered-marker-77");
    // Codex took it into the running turn: announced on the running run.
    let run = wait_queued(&e, QueueReason::Steered);
    open_gate(&e, "gate-steer");
    f.wait_for("] completed");
    let evs = run_events(&e.home, &run);
    assert!(
        evs.iter().any(
            |k| matches!(k, Kind::ToolEnd(t) if t.output_tail.contains("released-gate-steer"))
        ),
        "{evs:?}"
    );
    assert_eq!(
        evs.iter()
            .filter(|k| matches!(k, Kind::RunStarted(_)))
            .count(),
        1,
        "the steered message joined the run: {evs:?}"
    );
    // The model saw the steered text in a follow-up request of the same turn.
    let reqs = e.mock.requests();
    let first_turn = turn_of(&reqs[0]);
    assert!(
        !first_turn.is_empty(),
        "turn metadata: {:?}",
        reqs[0].headers
    );
    let steered = reqs
        .iter()
        .position(|r| r.body.to_string().contains("steered-marker-77"))
        .expect("the steered text reached the model");
    assert!(steered > 0);
    assert_eq!(turn_of(&reqs[steered]), first_turn, "same turn");
    // Nothing was left to run on its own: one run, ended completed.
    let done = done_reasons(&e);
    assert_eq!(done, vec![(run, DoneReason::Completed as i32)], "{done:?}");
    let store =
        fcx_state::Store::open(&e.home.home.join("profiles/default/state.db")).expect("state db");
    assert!(store.journal().queued().expect("queued").is_empty());
    drop(f);
    drop(e.rt);
}

#[test]
fn queue_answers_a_message_sent_during_a_run_in_the_next_run() {
    let e = env_with("queue");
    let mut f = Fcxd::console(&e.home);
    f.wait_for("fcx console");
    f.send(&gated("gate-queue"));
    f.wait_for("] $ ");
    f.send("queued-marker-55 say hi");
    let next = wait_queued(&e, QueueReason::ScopeBusy);
    // Not in the running turn: no request so far carries it.
    assert!(
        !e.mock
            .requests()
            .iter()
            .any(|r| r.body.to_string().contains("queued-marker-55"))
    );
    open_gate(&e, "gate-queue");
    f.wait_for("] completed");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("hi from mock"), "{seen}");
    let done = done_reasons(&e);
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(done[1].0, next);
    let reqs = e.mock.requests();
    let last = &reqs[reqs.len() - 1];
    assert!(last.body.to_string().contains("queued-marker-55"));
    assert_ne!(turn_of(last), turn_of(&reqs[0]), "a turn of its own");
    drop(f);
    drop(e.rt);
}

#[test]
fn interrupt_stops_the_running_turn_and_answers_in_a_new_one() {
    let e = env_with("interrupt");
    let mut f = Fcxd::console(&e.home);
    f.wait_for("fcx console");
    f.send("please STALL now");
    f.wait_for("] started");
    wait_for_request(&e, 1);
    f.send("interrupt-marker-31 say hi");
    let next = wait_queued(&e, QueueReason::Interrupting);
    let seen = f.wait_for("] interrupted");
    assert!(
        seen.contains("stopped to answer the newer messages"),
        "{seen}"
    );
    let seen = f.wait_for("] completed");
    assert!(seen.contains("hi from mock"), "{seen}");
    let done = done_reasons(&e);
    assert_eq!(
        done.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
        vec![DoneReason::Interrupted as i32, DoneReason::Completed as i32]
    );
    assert_eq!(done[1].0, next);
    // The new turn continues the same thread.
    let reqs = e.mock.requests();
    let last = &reqs[reqs.len() - 1];
    assert!(last.body.to_string().contains("interrupt-marker-31"));
    assert_eq!(last.header("thread-id"), reqs[0].header("thread-id"));
    drop(f);
    drop(e.rt);
}
