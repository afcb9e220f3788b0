use std::sync::Arc;
use std::time::{Duration, Instant};

use fcx_config::RunsConfig;
use fcx_proto::v1::{self as pb, Inbound};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::catalog::Catalog;
use crate::router::{Deps, Router};
use crate::scheduler::Scheduler;
use crate::testkit::{self, FakeExec, Kit, OWNER, Started, USER, private};

fn setup() -> (Kit, Router, UnboundedReceiver<Started>) {
    let kit = testkit::kit(RunsConfig {
        debounce_ms: 0,
        ..RunsConfig::default()
    });
    let (exec, rx) = FakeExec::new();
    let sched = Arc::new(Scheduler::new(
        kit.ctx.clone(),
        exec,
        CancellationToken::new(),
    ));
    sched.start(Vec::new());
    let catalog = Arc::new(Catalog::new(kit.ctx.clone()));
    let router = Router::new(Deps::new(kit.ctx.clone(), catalog, sched));
    router.gate().reload().expect("lists");
    (kit, router, rx)
}

fn late(event_id: &str, actor: &str, text: &str) -> Inbound {
    Inbound {
        late_by_ms: 45 * 60_000,
        ..private(event_id, actor, text)
    }
}

/// The notice's Run button as the gateway hands a click on it back.
fn click(kit: &Kit, notice: &pb::CommandReply, actor: &str, scope: &str) -> pb::Action {
    let b = &notice.buttons[0];
    assert_eq!(b.action(), pb::ActionKind::RunLate);
    pb::Action {
        kind: Some(pb::action::Kind::RunLate(pb::RunLateAction {
            nonce: b.value.clone(),
        })),
        scope: scope.into(),
        actor: Some(pb::Actor {
            id: actor.into(),
            name: String::new(),
        }),
        fingerprint: kit.ctx.policy(scope).expect("policy").fingerprint,
        message_id: "om_notice".into(),
    }
}

fn late_notices(kit: &Kit) -> Vec<pb::CommandReply> {
    kit.replies()
        .into_iter()
        .filter(|r| r.command() == pb::CommandName::Late && !r.buttons.is_empty())
        .collect()
}

async fn no_run(rx: &mut UnboundedReceiver<Started>) {
    // The scheduler starts a queued run from a task of its own: give it
    // every chance before concluding none was queued.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.try_recv().is_err(), "nothing may run");
}

#[tokio::test]
async fn a_late_message_is_held_and_noticed_once_and_runs_once_on_its_senders_click() {
    let (kit, router, mut rx) = setup();
    let m = late("e1", USER, "deploy the thing");
    let ack = router.deliver(m.clone()).expect("acknowledged");
    assert!(ack.accepted && !ack.duplicate);
    let notices = late_notices(&kit);
    assert_eq!(notices.len(), 1, "{:?}", kit.replies());
    let n = &notices[0];
    assert!(n.title.contains("45 min late"), "{}", n.title);
    assert!(n.title.contains("run it now?"), "{}", n.title);
    assert_eq!(n.actor.as_ref().map(|a| a.id.as_str()), Some(USER));
    assert!(!n.fingerprint.is_empty(), "its button can be signed");
    no_run(&mut rx).await;

    // The same event again (the platform redelivers): de-duplicated, no
    // second notice, nothing held twice.
    let again = router.deliver(m.clone()).expect("acknowledged");
    assert!(again.duplicate);
    assert_eq!(late_notices(&kit).len(), 1);

    let scope = m.scope.clone();
    // Someone else cannot run it (the gateway signs the button for the
    // sender only; this is the worker's own check).
    let other = router.run_late(&click(&kit, n, OWNER, &scope));
    assert!(!other.ok);
    assert_eq!(other.message, NOT_YOURS);
    no_run(&mut rx).await;

    let r = router.run_late(&click(&kit, n, USER, &scope));
    assert!(r.ok, "{}", r.message);
    let run = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a run starts")
        .expect("executor alive");
    assert_eq!(run.texts, vec!["deploy the thing"]);
    assert_eq!(run.scope, scope);

    // A second click: told it already ran, and nothing runs again.
    let r = router.run_late(&click(&kit, n, USER, &scope));
    assert!(!r.ok);
    assert_eq!(r.message, ALREADY_RAN);
    no_run(&mut rx).await;
}

#[tokio::test]
async fn a_click_after_a_restart_asks_to_send_it_again() {
    let (kit, router, mut rx) = setup();
    router
        .deliver(late("e1", USER, "deploy"))
        .expect("acknowledged");
    let n = late_notices(&kit).remove(0);
    // A fresh router (the worker restarted) holds nothing.
    let (kit2, router2, mut rx2) = setup();
    let scope = format!("chat:p_{USER}");
    let r = router2.run_late(&click(&kit2, &n, USER, &scope));
    assert!(!r.ok);
    assert_eq!(r.message, GONE_TITLE);
    let told = kit2.replies();
    assert_eq!(told.len(), 1);
    assert!(told[0].body.contains("Send the message again"), "{told:?}");
    no_run(&mut rx).await;
    no_run(&mut rx2).await;
}

#[tokio::test]
async fn a_stranger_late_message_gets_no_notice_and_a_stale_card_runs_nothing() {
    let (kit, router, mut rx) = setup();
    router
        .deliver(late("e1", "ou_stranger", "hello"))
        .expect("acknowledged");
    assert!(
        kit.replies().is_empty(),
        "strangers get silence, late or not"
    );

    router
        .deliver(late("e2", USER, "run this"))
        .expect("acknowledged");
    let n = late_notices(&kit).remove(0);
    let scope = format!("chat:p_{USER}");
    let mut c = click(&kit, &n, USER, &scope);
    c.fingerprint = "stale".into();
    let r = router.run_late(&c);
    assert!(!r.ok);
    assert_eq!(r.message, CHANGED);
    // And the message is let go: a click with the right fingerprint now
    // finds nothing to run.
    let r = router.run_late(&click(&kit, &n, USER, &scope));
    assert!(!r.ok);
    no_run(&mut rx).await;
}

#[tokio::test]
async fn a_message_on_time_runs_without_a_notice() {
    let (kit, router, mut rx) = setup();
    router
        .deliver(private("e1", USER, "now please"))
        .expect("queued");
    let run = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a run starts")
        .expect("executor alive");
    assert_eq!(run.texts, vec!["now please"]);
    assert!(late_notices(&kit).is_empty());
}

#[test]
fn holds_are_taken_once_bounded_and_expire() {
    let holds = LateHolds::default();
    let t0 = Instant::now();
    let m = late("e1", USER, "x");
    let n = holds.hold(m.clone(), t0);
    assert_eq!(holds.take(&n, "chat:other", USER, t0), Taken::NotYours);
    assert_eq!(holds.take(&n, &m.scope, "", t0), Taken::NotYours);
    assert!(matches!(
        holds.take(&n, &m.scope, USER, t0),
        Taken::Message(_)
    ));
    assert_eq!(holds.take(&n, &m.scope, USER, t0), Taken::AlreadyRan);
    assert_eq!(holds.take("lnever", &m.scope, USER, t0), Taken::Gone);

    // Expired: gone.
    let n = holds.hold(m.clone(), t0);
    assert_eq!(holds.take(&n, &m.scope, USER, t0 + HOLD_FOR), Taken::Gone);

    // Bounded: the oldest is let go first.
    let first = holds.hold(m.clone(), t0);
    for _ in 0..MAX_HELD {
        holds.hold(m.clone(), t0);
    }
    assert_eq!(holds.len(), MAX_HELD);
    assert_eq!(holds.take(&first, &m.scope, USER, t0), Taken::Gone);
}

#[test]
fn how_late_reads_in_minutes_hours_and_days() {
    assert_eq!(how_late(0), "1 min");
    assert_eq!(how_late(31 * 60_000 + 5), "31 min");
    assert_eq!(how_late(120 * 60_000), "2 h");
    assert_eq!(how_late(125 * 60_000), "2 h 5 min");
    assert_eq!(how_late(3 * 24 * 3_600_000), "3 d");
    assert_eq!(how_late((26 * 60 + 7) * 60_000), "1 d 2 h");
}
