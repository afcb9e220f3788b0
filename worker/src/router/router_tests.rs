use fcx_config::RunsConfig;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::access::{DENY_ADMIN, HINT_GROUP_NOT_ENABLED};
use crate::testkit::{self, ADMIN, FakeExec, GROUP, Kit, OWNER, Started, USER, group, private};

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

async fn next_run(rx: &mut UnboundedReceiver<Started>) -> Started {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a run starts")
        .expect("executor alive")
}

fn titles(kit: &Kit) -> Vec<String> {
    kit.replies().into_iter().map(|r| r.title).collect()
}

#[tokio::test]
async fn a_stranger_gets_silence_and_nothing_runs() {
    let (kit, router, mut rx) = setup();
    let ack = router
        .deliver(private("e1", "ou_stranger", "delete everything"))
        .expect("acknowledged");
    assert!(ack.accepted && !ack.duplicate);
    assert!(kit.events().is_empty(), "no reply, no run");
    tokio::task::yield_now().await;
    assert!(rx.try_recv().is_err());
    // Redelivery is recognised.
    let again = router
        .deliver(private("e1", "ou_stranger", "delete everything"))
        .expect("acknowledged");
    assert!(again.duplicate);
}

#[tokio::test]
async fn an_allowed_user_message_becomes_a_run() {
    let (_kit, router, mut rx) = setup();
    router
        .deliver(private("e1", USER, "fix the build"))
        .expect("queued");
    let run = next_run(&mut rx).await;
    assert_eq!(run.scope, format!("chat:p_{USER}"));
    assert_eq!(run.texts, vec!["fix the build"]);
}

#[tokio::test]
async fn a_group_that_is_not_enabled_gets_the_hint_once() {
    let (kit, router, mut rx) = setup();
    router
        .deliver(group("e1", USER, "oc_other", "hello"))
        .expect("acknowledged");
    router
        .deliver(group("e1", USER, "oc_other", "hello"))
        .expect("acknowledged");
    assert_eq!(titles(&kit), vec![HINT_GROUP_NOT_ENABLED.to_string()]);
    tokio::task::yield_now().await;
    assert!(rx.try_recv().is_err());
    // Without a mention, silence even in an enabled group.
    let mut quiet = group("e2", USER, GROUP, "hello");
    quiet.mentioned = false;
    router.deliver(quiet).expect("acknowledged");
    assert_eq!(kit.replies().len(), 1);
}

#[tokio::test]
async fn the_group_hint_is_sent_once_per_chat_per_interval() {
    let (kit, router, _rx) = setup();
    for (id, chat) in [
        ("e1", "oc_a"),
        ("e2", "oc_a"),
        ("e3", "oc_b"),
        ("e4", "oc_a"),
    ] {
        router
            .deliver(group(id, "ou_stranger", chat, "hello?"))
            .expect("acknowledged");
    }
    let hinted: Vec<String> = kit
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, Some(pb::worker_event::Kind::CommandReply(_))))
        .map(|e| e.scope)
        .collect();
    assert_eq!(hinted, vec!["chat:oc_a", "chat:oc_b"]);
    let limit = gate::HintLimit::default();
    let t0 = std::time::Instant::now();
    assert!(limit.allow("oc_a", t0));
    assert!(!limit.allow("oc_a", t0 + gate::HINT_INTERVAL / 2));
    assert!(limit.allow("oc_a", t0 + gate::HINT_INTERVAL));
}

#[tokio::test]
async fn nothing_a_sender_without_access_wrote_is_stored() {
    let (kit, router, _rx) = setup();
    let mut m = group("e1", "ou_stranger", "oc_other", "my secret plan");
    m.actor = Some(pb::Actor {
        id: "ou_stranger".into(),
        name: "Mallory".into(),
    });
    router.deliver(m.clone()).expect("acknowledged");
    router
        .deliver(private("e2", "ou_stranger", "another secret"))
        .expect("acknowledged");
    for id in ["e1", "e2"] {
        let kept = kit
            .ctx
            .store
            .journal()
            .journaled(id)
            .expect("read")
            .expect("kept");
        assert_eq!(kept.event_id, id);
        assert!(kept.text.is_empty() && kept.actor.is_none(), "{kept:?}");
        assert!(kept.message_id.is_empty() && kept.attachments.is_empty());
    }
    // Still de-duplicated.
    assert!(router.deliver(m).expect("acknowledged").duplicate);
}

#[tokio::test]
async fn a_message_over_the_text_cap_is_refused_and_the_sender_told() {
    let (kit, router, mut rx) = setup();
    let long = "x".repeat(MAX_TEXT_BYTES + 1);
    let ack = router
        .deliver(private("e1", USER, &long))
        .expect("acknowledged");
    assert!(ack.accepted && !ack.duplicate);
    assert_eq!(titles(&kit), vec!["Message too long".to_string()]);
    let kept = kit
        .ctx
        .store
        .journal()
        .journaled("e1")
        .expect("read")
        .expect("kept");
    assert!(kept.text.is_empty());
    tokio::task::yield_now().await;
    assert!(rx.try_recv().is_err(), "nothing runs");
    // At the cap it runs.
    router
        .deliver(private("e2", USER, &long[1..]))
        .expect("queued");
    assert_eq!(next_run(&mut rx).await.texts[0].len(), MAX_TEXT_BYTES);
}

#[tokio::test]
async fn roles_decide_who_may_change_access() {
    let (kit, router, _rx) = setup();
    router
        .deliver(private("e1", USER, "/invite user ou_new"))
        .expect("acknowledged");
    assert_eq!(titles(&kit), vec![DENY_ADMIN.to_string()]);
    assert!(!router.gate().lists().users.contains("ou_new"));
    router
        .deliver(private("e2", ADMIN, "/invite user ou_new"))
        .expect("acknowledged");
    assert!(router.gate().lists().users.contains("ou_new"));
    assert_eq!(titles(&kit)[1], "1 added to allowed users");
    // Nobody removes the owner.
    router
        .deliver(private("e3", OWNER, &format!("/remove admin {OWNER}")))
        .expect("acknowledged");
    assert_eq!(titles(&kit)[2], "The owner cannot be removed");
}

#[tokio::test]
async fn stop_and_new_act_on_the_scope_run() {
    let (kit, router, mut rx) = setup();
    router
        .deliver(private("e1", USER, "/stop"))
        .expect("acknowledged");
    router
        .deliver(private("e2", USER, "work on it"))
        .expect("queued");
    let run = next_run(&mut rx).await;
    router
        .deliver(private("e3", USER, "/new"))
        .expect("acknowledged");
    assert_eq!(run.slot.stop_reason(), Some(StopReason::NewSession));
    let replies = kit.replies();
    assert_eq!(replies[0].title, "Nothing is running here");
    assert_eq!(replies[1].title, "New session");
    assert!(replies[1].body.starts_with("The running turn was stopped."));
    // Every reply is addressed to its sender, signed for the scope policy.
    let fp = kit
        .ctx
        .policy(&format!("chat:p_{USER}"))
        .expect("policy")
        .fingerprint;
    assert!(replies.iter().all(|r| r.fingerprint == fp));
    assert!(
        replies
            .iter()
            .all(|r| r.actor.as_ref().map(|a| a.id.as_str()) == Some(USER))
    );
}

#[tokio::test]
async fn unknown_and_misused_commands_are_answered_never_run() {
    let (kit, router, mut rx) = setup();
    router
        .deliver(private("e1", USER, "/frobnicate now"))
        .expect("acknowledged");
    router
        .deliver(private("e2", USER, "/ws save"))
        .expect("acknowledged");
    let replies = kit.replies();
    assert_eq!(replies[0].title, "/frobnicate is not a command");
    assert!(!replies[1].ok);
    tokio::task::yield_now().await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn malformed_and_empty_messages_are_refused() {
    let (_kit, router, _rx) = setup();
    let mut no_id = private("", USER, "hi");
    no_id.event_id.clear();
    assert!(matches!(
        router.deliver(no_id),
        Err(DeliverError::Invalid(_))
    ));
    assert!(matches!(
        router.deliver(private("e1", USER, "   ")),
        Err(DeliverError::Invalid(_))
    ));
}

fn action(kind: pb::action::Kind, actor: &str, scope: &str) -> pb::Action {
    pb::Action {
        kind: Some(kind),
        scope: scope.into(),
        actor: Some(pb::Actor {
            id: actor.into(),
            name: String::new(),
        }),
        ..Default::default()
    }
}

fn command(line: &str) -> pb::action::Kind {
    pb::action::Kind::Command(pb::CommandAction { line: line.into() })
}

#[tokio::test]
async fn a_card_click_is_checked_like_the_command_it_stands_for() {
    let (kit, router, _rx) = setup();
    let scope = format!("chat:p_{USER}");
    let fp = kit.ctx.policy(&scope).expect("policy").fingerprint;

    let mut click = action(command("/status"), USER, &scope);
    click.fingerprint = fp.clone();
    let r = router.card_action(&click);
    assert!(r.ok, "{}", r.message);
    assert_eq!(r.message, "ran /status");
    assert_eq!(kit.replies()[0].command(), pb::CommandName::Status);

    // A card from before the policy changed.
    click.fingerprint = "stale".into();
    let r = router.card_action(&click);
    assert!(!r.ok);
    assert!(r.message.contains("out of date"));
    assert!(kit.replies()[1].title.contains("out of date"));

    // Not a command at all.
    click.kind = Some(command("rm -rf /"));
    click.fingerprint = fp.clone();
    assert!(!router.card_action(&click).ok);

    // A stranger's click: refused, and silence in the chat.
    let before = kit.replies().len();
    let stranger = action(command("/status"), "ou_stranger", &scope);
    let r = router.card_action(&stranger);
    assert_eq!(r.message, "You may not use fcx here.");
    assert_eq!(kit.replies().len(), before);
}

#[tokio::test]
async fn a_stop_button_rechecks_access_and_the_policy() {
    let (kit, router, mut rx) = setup();
    let scope = format!("chat:p_{USER}");
    router.deliver(private("e1", USER, "work")).expect("queued");
    let run = next_run(&mut rx).await;
    let fp = kit.ctx.policy(&scope).expect("policy").fingerprint;
    let mut stop = action(
        pb::action::Kind::Stop(pb::StopAction {
            run_id: run.slot.run_id.clone(),
        }),
        USER,
        &scope,
    );
    stop.fingerprint = "stale".into();
    assert!(router.stop_checked(&stop).is_err());
    let mut stranger = stop.clone();
    stranger.actor = Some(pb::Actor {
        id: "ou_stranger".into(),
        name: String::new(),
    });
    stranger.fingerprint = fp.clone();
    assert_eq!(
        router.stop_checked(&stranger),
        Err("you may not stop runs here".to_string())
    );
    assert!(!run.slot.cancel.is_cancelled());
    stop.fingerprint = fp;
    assert_eq!(router.stop_checked(&stop), Ok(true));
    assert_eq!(run.slot.stop_reason(), Some(StopReason::User));
}

#[tokio::test]
async fn a_created_group_is_enabled_and_starts_in_the_source_workspace() {
    let (kit, router, _rx) = setup();
    let source = format!("chat:p_{OWNER}");
    router
        .group_created("chat:oc_new", "oc_new", &source, OWNER)
        .expect("created");
    assert!(router.gate().lists().chats.contains("oc_new"));
    let settings = kit.ctx.settings("chat:oc_new");
    let ws = kit.ctx.policy(&source).expect("policy").cwd;
    assert_eq!(settings.workspace, Some(ws.display().to_string()));
}

#[tokio::test]
async fn resume_offers_codes_that_continue_only_under_the_same_policy() {
    let (kit, router, _rx) = setup();
    let scope = format!("chat:p_{ADMIN}");
    let policy = kit.ctx.policy(&scope).expect("policy");
    let catalog = Catalog::new(kit.ctx.clone());
    catalog.save_session(&scope, "t-old", &policy, Default::default(), "old work");
    catalog.save_session(&scope, "t-new", &policy, Default::default(), "new work");

    router
        .deliver(private("e1", ADMIN, "/resume"))
        .expect("acknowledged");
    let list = kit.replies().pop().expect("the list");
    assert_eq!(list.buttons.len(), 2);
    assert!(list.buttons.iter().any(|b| b.label.ends_with(", current")));
    let old = list
        .buttons
        .iter()
        .find(|b| b.label.starts_with("old work"))
        .expect("a button for the old thread")
        .value
        .clone();

    // Someone else's chat cannot use the code.
    router
        .deliver(private("e2", USER, &format!("/resume use {old}")))
        .expect("acknowledged");
    assert_eq!(
        kit.replies().pop().map(|r| r.title),
        Some("That code is unknown or expired".to_string())
    );

    router
        .deliver(private("e3", ADMIN, &format!("/resume use {old}")))
        .expect("acknowledged");
    assert_eq!(
        kit.replies().pop().map(|r| r.title),
        Some("Session resumed".to_string())
    );
    let s = kit
        .ctx
        .store
        .sessions()
        .session(&scope)
        .expect("read")
        .expect("session");
    assert_eq!(s.thread_id, "t-old");

    // After a move to another workspace the same code is refused.
    let ws2 = kit.dir.path().join("ws2");
    std::fs::create_dir_all(&ws2).expect("ws2");
    router
        .deliver(private("e4", ADMIN, &format!("/cd {}", ws2.display())))
        .expect("acknowledged");
    assert!(
        kit.replies()
            .pop()
            .expect("cd")
            .title
            .starts_with("Workspace: ")
    );
    assert_eq!(
        kit.ctx.store.sessions().session(&scope).expect("read"),
        None
    );
    router
        .deliver(private("e5", ADMIN, &format!("/resume use {old}")))
        .expect("acknowledged");
    assert_eq!(
        kit.replies().pop().map(|r| r.title),
        Some("Refused: this session cannot continue here".to_string())
    );
}

#[tokio::test]
async fn saved_workspaces_switch_the_scope_and_stop_its_run() {
    let (kit, router, mut rx) = setup();
    let scope = format!("chat:p_{ADMIN}");
    let ws = kit.ctx.policy(&scope).expect("policy").cwd;
    router
        .deliver(private("e1", ADMIN, "/ws save home"))
        .expect("acknowledged");
    let ws2 = kit.dir.path().join("ws2");
    std::fs::create_dir_all(&ws2).expect("ws2");
    router
        .deliver(private("e2", ADMIN, &format!("/cd {}", ws2.display())))
        .expect("acknowledged");
    assert_ne!(kit.ctx.policy(&scope).expect("policy").cwd, ws);
    router
        .deliver(private("e3", ADMIN, "keep going"))
        .expect("queued");
    let run = next_run(&mut rx).await;
    router
        .deliver(private("e4", ADMIN, "/ws use home"))
        .expect("acknowledged");
    assert_eq!(kit.ctx.policy(&scope).expect("policy").cwd, ws);
    assert_eq!(run.slot.stop_reason(), Some(StopReason::NewSession));
    let last = kit.replies().pop().expect("reply");
    assert!(last.body.starts_with("The running turn was stopped."));
    router
        .deliver(private("e5", ADMIN, "/ws list"))
        .expect("acknowledged");
    assert!(kit.replies().pop().expect("list").body.contains("`home`"));
    // A plain user may not move the workspace.
    router
        .deliver(private("e6", USER, "/ws use home"))
        .expect("acknowledged");
    assert_eq!(
        kit.replies().pop().map(|r| r.title),
        Some(DENY_ADMIN.to_string())
    );
}

#[tokio::test]
async fn changing_the_access_mode_ends_the_session_and_all_or_nothing_applies() {
    let (kit, router, mut rx) = setup();
    let scope = format!("chat:p_{OWNER}");
    router
        .deliver(private("e1", OWNER, "work"))
        .expect("queued");
    let run = next_run(&mut rx).await;
    let before = kit.ctx.policy(&scope).expect("policy").fingerprint;
    router
        .deliver(private("e2", OWNER, "/config access nonsense"))
        .expect("acknowledged");
    let refused = kit.replies().pop().expect("reply");
    assert!(!refused.ok);
    assert_eq!(refused.title, "Settings not changed");
    assert!(run.slot.stop_reason().is_none());
    router
        .deliver(private("e3", OWNER, "/config access read-only"))
        .expect("acknowledged");
    let changed = kit.replies().pop().expect("reply");
    assert!(changed.ok, "{}", changed.body);
    assert!(changed.body.contains("sandbox `read-only`"));
    assert_eq!(run.slot.stop_reason(), Some(StopReason::NewSession));
    assert_ne!(kit.ctx.policy(&scope).expect("policy").fingerprint, before);
}

#[tokio::test]
async fn a_request_the_gateway_did_not_announce_is_answered_by_the_worker() {
    let (kit, router, _rx) = setup();
    // Before any Hello (a local client) the request is passed on.
    router
        .deliver(private("e1", OWNER, "/reconnect"))
        .expect("handled");
    let first = kit.replies().pop().expect("a reply");
    assert!(first.gateway_request.is_some(), "{first:?}");
    // A gateway that cannot reconnect: the worker answers instead.
    router.set_gateway_caps(vec![fcx_proto::caps::CREATE_GROUP.into()]);
    router
        .deliver(private("e2", OWNER, "/reconnect"))
        .expect("handled");
    let refused = kit.replies().pop().expect("a reply");
    assert!(refused.gateway_request.is_none(), "{refused:?}");
    assert!(!refused.ok);
    assert!(refused.body.contains("cannot do that"), "{refused:?}");
    // One that announced it gets the request.
    router.set_gateway_caps(
        fcx_proto::caps::GATEWAY
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    router
        .deliver(private("e3", OWNER, "/reconnect"))
        .expect("handled");
    let passed = kit.replies().pop().expect("a reply");
    assert!(passed.gateway_request.is_some(), "{passed:?}");
}

#[tokio::test]
async fn an_approval_is_decided_once_by_the_requester_or_an_admin() {
    let (kit, router, mut rx) = setup();
    router
        .deliver(private("e1", USER, "touch a file"))
        .expect("queued");
    let run = next_run(&mut rx).await;
    let (tx, mut ctl) = tokio::sync::mpsc::channel(8);
    run.slot.approvals.open(tx);
    run.slot.approvals.add(
        "0",
        crate::run::PendingApproval {
            actor_id: USER.into(),
            what: "run `touch a`".into(),
            approvers: fcx_config::Approvers::Admins,
        },
    );
    let scope = run.scope.clone();
    let fingerprint = kit.ctx.policy(&scope).expect("policy").fingerprint;
    let click = |who: &str, decision: pb::ApprovalDecision, fp: &str| pb::Action {
        scope: scope.clone(),
        actor: Some(pb::Actor {
            id: who.into(),
            name: who.into(),
        }),
        fingerprint: fp.into(),
        message_id: "om_card".into(),
        kind: Some(pb::action::Kind::Approval(pb::ApprovalAction {
            run_id: run.slot.run_id.clone(),
            approval_id: "0".into(),
            decision: decision as i32,
            note: String::new(),
            undeliverable: false,
        })),
    };
    // Someone else: refused, still pending.
    let r = router.approval_action(&click(
        "ou_stranger",
        pb::ApprovalDecision::Approve,
        &fingerprint,
    ));
    assert!(!r.ok && r.message.contains("may not decide"), "{r:?}");
    // A card made under another policy: refused.
    let r = router.approval_action(&click(USER, pb::ApprovalDecision::Approve, "stale"));
    assert!(!r.ok && r.message.contains("out of date"), "{r:?}");
    assert!(ctl.try_recv().is_err(), "nothing reached the runner");
    // An admin may decide for the requester.
    let r = router.approval_action(&click(ADMIN, pb::ApprovalDecision::Deny, &fingerprint));
    assert!(r.ok && r.message.contains("Denied by"), "{r:?}");
    let Some(crate::runner::RunControl::Approve {
        request_id,
        decision,
        ..
    }) = ctl.recv().await
    else {
        panic!("no decision reached the runner")
    };
    assert_eq!(request_id, "0");
    assert_eq!(decision, crate::runner::ApprovalDecision::Decline);
    // Decided once.
    let r = router.approval_action(&click(USER, pb::ApprovalDecision::Approve, &fingerprint));
    assert!(!r.ok && r.message.contains("no longer waiting"), "{r:?}");
    assert!(titles(&kit).iter().any(|t| t.starts_with("Denied by")));
    let _ = run.release.send(());
}

fn comment(event: &str, actor: &str, text: &str) -> Inbound {
    Inbound {
        event_id: event.into(),
        scope: pb::Scope::comment("d1", "c1", event).key(),
        actor: Some(pb::Actor {
            id: actor.into(),
            name: String::new(),
        }),
        text: text.into(),
        chat_type: pb::ChatType::Comment as i32,
        mentioned: true,
        message_id: format!("carrier-{event}"),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_comment_is_always_a_question_and_a_stranger_is_refused_in_one_line() {
    let (kit, router, mut rx) = setup();
    router
        .deliver(comment("e1", USER, "/new what does /status mean here?"))
        .expect("queued");
    let run = next_run(&mut rx).await;
    assert_eq!(run.texts, vec!["/new what does /status mean here?"]);
    assert!(kit.replies().is_empty(), "no command ran");
    router
        .deliver(comment("e2", "ou_stranger", "let me in"))
        .expect("acknowledged");
    assert_eq!(titles(&kit), vec![crate::access::DENY_COMMENT.to_string()]);
    tokio::task::yield_now().await;
    assert!(rx.try_recv().is_err(), "nothing runs for a stranger");
}
