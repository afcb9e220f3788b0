use std::sync::{Arc, Mutex};

use futures::FutureExt;

use super::*;

fn now<F: std::future::Future>(f: F) -> Option<F::Output> {
    f.now_or_never()
}

/// Events handled in the reverse of their arrival still reach the worker
/// in arrival order: each waits for the one before it to be committed.
#[tokio::test(flavor = "current_thread")]
async fn one_scopes_events_go_to_the_worker_in_arrival_order() {
    let order = ScopeOrder::default();
    let tickets: Vec<Ticket> = (0..5)
        .map(|_| order.ticket("chat:oc_1").expect("room"))
        .collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // Started last-first: without the order they would run 4, 3, 2, 1, 0.
    for (i, t) in tickets.into_iter().enumerate().rev() {
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            t.turn().await.expect("its turn");
            seen.lock().expect("lock").push(i);
            tokio::task::yield_now().await;
            t.committed();
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(*seen.lock().expect("lock"), vec![0, 1, 2, 3, 4]);
    assert_eq!(order.busy_scopes(), 0, "nothing left behind");
}

#[test]
fn a_scope_waiting_on_a_slow_event_does_not_hold_up_another_scope() {
    let order = ScopeOrder::default();
    let slow = order.ticket("chat:oc_1").expect("room");
    let behind = order.ticket("chat:oc_1").expect("room");
    let other = order.ticket("chat:oc_2").expect("room");
    let topic = order.ticket("topic:oc_1:omt_1").expect("room");
    assert_eq!(now(slow.turn()), Some(Ok(())));
    assert_eq!(now(behind.turn()), None, "waits for the slow one");
    assert_eq!(now(other.turn()), Some(Ok(())));
    assert_eq!(now(topic.turn()), Some(Ok(())), "a topic is its own scope");
    slow.committed();
    assert_eq!(now(behind.turn()), Some(Ok(())));
}

/// A pending turn is woken by the commit before it, not by polling.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_event_is_woken_when_the_one_before_it_is_committed() {
    let order = ScopeOrder::default();
    let first = order.ticket("chat:oc_1").expect("room");
    let second = order.ticket("chat:oc_1").expect("room");
    let waiting = tokio::spawn(async move { second.turn().await.map(|()| second.committed()) });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    first.committed();
    assert_eq!(waiting.await.expect("task"), Ok(()));
}

/// The first event is not committed (it will be redelivered): the ones
/// queued behind it are refused too, so they are redelivered after it
/// rather than committed ahead of it. An event arriving after that goes on.
#[test]
fn an_event_not_committed_takes_those_queued_behind_it_along() {
    let order = ScopeOrder::default();
    let first = order.ticket("chat:oc_1").expect("room");
    let second = order.ticket("chat:oc_1").expect("room");
    let third = order.ticket("chat:oc_1").expect("room");
    let elsewhere = order.ticket("chat:oc_2").expect("room");
    drop(first);
    assert_eq!(now(second.turn()), Some(Err(Refused::Behind)));
    assert_eq!(now(third.turn()), Some(Err(Refused::Behind)));
    assert_eq!(
        now(elsewhere.turn()),
        Some(Ok(())),
        "other scopes unaffected"
    );
    let later = order.ticket("chat:oc_1").expect("room");
    assert_eq!(now(later.turn()), None, "still behind the two refused");
    drop(second);
    drop(third);
    assert_eq!(now(later.turn()), Some(Ok(())), "refused ones leave no gap");
}

/// One waiting in the middle gives up (its ACK window closed): the one in
/// flight goes on, the ones behind it are refused.
#[test]
fn a_waiting_event_that_gives_up_refuses_only_those_behind_it() {
    let order = ScopeOrder::default();
    let first = order.ticket("chat:oc_1").expect("room");
    let second = order.ticket("chat:oc_1").expect("room");
    let third = order.ticket("chat:oc_1").expect("room");
    assert_eq!(now(first.turn()), Some(Ok(())));
    drop(second);
    assert_eq!(now(first.turn()), Some(Ok(())));
    assert_eq!(now(third.turn()), Some(Err(Refused::Behind)));
}

#[test]
fn a_full_scope_refuses_the_next_event_until_one_is_done() {
    let order = ScopeOrder::with_limit(2);
    let first = order.ticket("chat:oc_1").expect("room");
    let _second = order.ticket("chat:oc_1").expect("room");
    assert_eq!(order.ticket("chat:oc_1").err(), Some(Refused::Full));
    assert!(order.ticket("chat:oc_2").is_ok(), "the limit is per scope");
    first.committed();
    assert!(order.ticket("chat:oc_1").is_ok());
}

#[test]
fn scopes_with_nothing_waiting_are_forgotten() {
    let order = ScopeOrder::default();
    for i in 0..100 {
        let t = order.ticket(&format!("chat:oc_{i}")).expect("room");
        if i % 2 == 0 {
            t.committed();
        }
    }
    assert_eq!(order.busy_scopes(), 0);
}
