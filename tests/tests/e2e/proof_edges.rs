//! Platform edge cases users hit with other bridges (issue 14).

use std::time::Duration;

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{FEISHU_USER as USER, FeishuEnv, eventually, message_id};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_run_whose_message_was_recalled_answers_in_the_chat_instead() {
    let e = FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    let ev = e
        .fake
        .events()
        .p2p_text("oc_recall", USER, "FAKE:stall then recalled");
    let om = message_id(&ev);
    e.push(&ev);
    eventually(
        WAIT,
        || (!e.home.fake_records().is_empty()).then_some(()),
        || format!("the run never started\n{}", e.home.read_logs()),
    );
    assert!(e.fake.recall(&om), "the fake knows the user's message");
    e.push(&e.fake.events().p2p_text("oc_recall", USER, "/stop"));
    // The run's end cannot reply to the recalled message: it goes to the
    // chat as a new message, once.
    let in_chat = || posted_in_chat(&e, "oc_recall", "stopped");
    wait_posted_in_chat(&e, "oc_recall", "stopped");
    // The platform refused the reply first (that is the path under test).
    assert!(
        reply_refused(&e, &om, None),
        "no refused reply to the recalled message"
    );
    // Any late duplicate would come with the same lane's next post; the
    // status call below is answered after it.
    e.push(&e.fake.events().p2p_text("oc_recall", USER, "/status"));
    eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .any(|m| m.sender_type == "app" && m.content.contains("workspace-write"))
                .then_some(())
        },
        || "no /status answer".into(),
    );
    assert_eq!(in_chat(), 1, "{:?}", e.fake.messages());
}

/// Messages the bot posted in `chat` as new messages (not replies) that
/// contain `needle`.
fn posted_in_chat(e: &FeishuEnv, chat: &str, needle: &str) -> usize {
    e.fake
        .messages()
        .into_iter()
        .filter(|m| {
            m.sender_type == "app"
                && m.chat_id == chat
                && m.parent_id.is_empty()
                && m.content.contains(needle)
        })
        .count()
}

fn wait_posted_in_chat(e: &FeishuEnv, chat: &str, needle: &str) {
    eventually(
        WAIT,
        || (posted_in_chat(e, chat, needle) > 0).then_some(()),
        || {
            format!(
                "no {needle:?} posted in the chat: {:?}\n{}",
                e.fake.messages(),
                e.home.read_logs()
            )
        },
    );
}

/// The platform refused a reply to `om` (with `code`, or any error).
fn reply_refused(e: &FeishuEnv, om: &str, code: Option<i64>) -> bool {
    e.fake.requests().iter().any(|c| {
        c.path.ends_with(&format!("{om}/reply"))
            && match code {
                Some(code) => c.response["code"] == code,
                None => c.response["code"] != 0,
            }
    })
}

/// Prompts fake codex was given, oldest first.
fn prompts(e: &FeishuEnv) -> Vec<String> {
    e.home
        .fake_records()
        .iter()
        .filter_map(|r| r["prompt"].as_str().map(str::to_string))
        .collect()
}

fn runs_of(e: &FeishuEnv, text: &str) -> usize {
    prompts(e).iter().filter(|p| p.contains(text)).count()
}

/// Messages the bot posted under `parent`.
fn bot_replies(e: &FeishuEnv, parent: &str) -> Vec<fcx_tests::fake_feishu::StoredMessage> {
    e.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == parent)
        .collect()
}

/// Pushes `ev`'s frame twice back to back (the second before the first is
/// ACKed: the platform's at-least-once delivery at its tightest) and waits
/// until both are ACKed.
fn push_twice_at_once(e: &FeishuEnv, ev: &serde_json::Value) {
    let frame = e.push(ev);
    e.rt.block_on(e.fake.push_duplicate(&frame))
        .expect("duplicate");
    eventually(
        WAIT,
        || {
            (e.fake
                .acks()
                .iter()
                .filter(|a| a.message_id == frame)
                .count()
                >= 2)
                .then_some(())
        },
        || format!("both deliveries were not ACKed\n{}", e.home.read_logs()),
    );
}

/// A fresh message in `chat`, once Codex has it: runs in one chat start in
/// the order they were accepted (one at a time), so by then anything
/// queued before it in the chat has reached Codex too (or joined its run).
fn fresh_run(e: &FeishuEnv, chat: &str, text: &str) -> String {
    let ev = e.fake.events().p2p_text(chat, USER, text);
    e.push(&ev);
    eventually(
        WAIT,
        || (runs_of(e, text) > 0).then_some(()),
        || format!("{text:?} never ran\n{}", e.home.read_logs()),
    );
    message_id(&ev)
}

/// Whether the run for `om` answered under it: the answer text in
/// markdown and text modes, a run card (not `besides`) in card mode.
fn answered(e: &FeishuEnv, om: &str, besides: &str) -> bool {
    bot_replies(e, om).iter().any(|m| {
        m.content.contains("hello from fake codex")
            || (m.msg_type == "interactive" && m.message_id != besides)
    })
}

/// Pushes `text` from [`USER`] in `chat`, sent two hours ago by the
/// platform's own clock (the frame is stamped now: late by both clocks, as
/// after fcx was offline), twice at once; returns its message id and the
/// notice card under it once there.
fn late_message(
    e: &FeishuEnv,
    chat: &str,
    text: &str,
) -> (String, fcx_tests::fake_feishu::StoredMessage) {
    let mut ev = e.fake.events().p2p_text(chat, USER, text);
    let now: i64 = ev["event"]["message"]["create_time"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("create_time");
    ev["event"]["message"]["create_time"] = (now - 2 * 3_600_000).to_string().into();
    let om = message_id(&ev);
    push_twice_at_once(e, &ev);
    let notice = eventually(
        WAIT,
        || {
            bot_replies(e, &om)
                .into_iter()
                .find(|m| m.msg_type == "interactive")
        },
        || {
            format!(
                "no notice card under the late message: {:?}\n{}",
                e.fake.messages(),
                e.home.read_logs()
            )
        },
    );
    (om, notice)
}

/// Item 9: a message the platform delivers after the stale window (fcx was
/// offline when it was sent) is not dropped silently and not run unasked:
/// its sender gets a notice card with one Run button (in markdown mode
/// too); a click runs it exactly once; a second click is a harmless toast;
/// a redelivery of it is de-duplicated, not noticed twice; a fresh message
/// in the same chat runs as usual.
#[test]
fn a_message_delivered_late_gets_a_notice_and_runs_once_when_its_sender_says_so() {
    late_message_scenario("markdown");
}

/// The same in reply modes card and text: the notice is a card in each.
#[test]
fn a_late_message_gets_the_same_notice_card_in_card_and_text_modes() {
    late_message_scenario("card");
    late_message_scenario("text");
}

fn late_message_scenario(mode: &str) {
    let e = FeishuEnv::start(
        mode,
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    e.wait_worker_ready();
    let chat = "oc_late";
    let (om, notice) = late_message(&e, chat, "late request alpha");
    let view = e.fake.card_view(&notice.message_id).expect("card view");
    let title = view.title.clone().unwrap_or_default();
    assert!(
        title.contains("120 min late") || title.contains("2 h late"),
        "{title}"
    );
    assert!(title.contains("run it now?"), "{title}");
    assert_eq!(view.labels(), vec!["Run it now".to_string()]);

    // Not run: a fresh message in the same chat reaches Codex, and the late one
    // (which would have been queued before it) never reached Codex.
    let _ = fresh_run(&e, chat, "fresh request beta");
    assert_eq!(runs_of(&e, "late request alpha"), 0, "{:?}", prompts(&e));
    assert_eq!(
        bot_replies(&e, &om).len(),
        1,
        "one notice for two deliveries: {:?}",
        bot_replies(&e, &om)
    );

    // Only its sender's click counts; the sender's click runs it.
    let stranger = e
        .fake
        .events()
        .click(
            "ou_other000000000000000000000000009",
            &notice.message_id,
            "Run it now",
        )
        .expect("click");
    let f = e.push(&stranger);
    let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    assert!(
        ack.data
            .map(|d| d.to_string())
            .unwrap_or_default()
            .contains("warning"),
        "another user's click is refused with a toast"
    );
    let click = e
        .fake
        .events()
        .click(USER, &notice.message_id, "Run it now")
        .expect("click");
    let f = e.push(&click);
    let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    let toast = ack.data.map(|d| d.to_string()).unwrap_or_default();
    assert!(toast.contains("info"), "{toast}");
    // The answer replies to the late message itself.
    eventually(
        WAIT,
        || {
            (runs_of(&e, "late request alpha") > 0 && answered(&e, &om, &notice.message_id))
                .then_some(())
        },
        || format!("the late message never ran\n{}", e.home.read_logs()),
    );
    assert_eq!(runs_of(&e, "late request alpha"), 1, "{:?}", prompts(&e));

    // A second click: a harmless toast, no second run.
    let again = e
        .fake
        .events()
        .click(USER, &notice.message_id, "Run it now")
        .expect("click");
    let f = e.push(&again);
    let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    let toast = ack.data.map(|d| d.to_string()).unwrap_or_default();
    assert!(toast.contains("warning"), "{toast}");
    let _ = fresh_run(&e, chat, "fresh request gamma");
    assert_eq!(runs_of(&e, "late request alpha"), 1, "{:?}", prompts(&e));
    assert_eq!(runs_of(&e, "fresh request beta"), 1);
    assert_eq!(runs_of(&e, "fresh request gamma"), 1);
}

/// Item 9: the same message delivered twice within a millisecond (the
/// second frame before the first is ACKed, so fcxd's own memory of ACKed
/// events cannot catch it), and once more under another event id (the
/// platform may push one message under several), runs once and is
/// answered once.
#[test]
fn the_same_message_delivered_twice_at_once_runs_once() {
    let e = FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    e.wait_worker_ready();
    let chat = "oc_twice";
    let ev = e.fake.events().p2p_text(chat, USER, "only once delta");
    let om = message_id(&ev);
    let mut other_id = ev.clone();
    other_id["header"]["event_id"] = "ev_second_push_of_the_same_message".into();
    let first = e.push(&ev);
    e.rt.block_on(e.fake.push_duplicate(&first))
        .expect("duplicate");
    let second = e.push(&other_id);
    eventually(
        WAIT,
        || {
            let acks = e.fake.acks();
            let n = |f: &str| acks.iter().filter(|a| a.message_id == f).count();
            (n(&first) >= 2 && n(&second) >= 1).then_some(())
        },
        || format!("not every delivery was ACKed\n{}", e.home.read_logs()),
    );
    eventually(
        WAIT,
        || answered(&e, &om, "").then_some(()),
        || format!("never answered\n{}", e.home.read_logs()),
    );
    // Anything queued in the chat before this has reached Codex by now.
    let barrier = fresh_run(&e, chat, "barrier epsilon");
    // Posts in one chat go out in order: once the barrier's answer is
    // there, any second answer to the first message would be too.
    eventually(
        WAIT,
        || {
            bot_replies(&e, &barrier)
                .iter()
                .any(|m| m.content.contains("hello from fake codex"))
                .then_some(())
        },
        || format!("the barrier was never answered\n{}", e.home.read_logs()),
    );
    assert_eq!(runs_of(&e, "only once delta"), 1, "{:?}", prompts(&e));
    let answers = bot_replies(&e, &om)
        .iter()
        .filter(|m| m.content.contains("hello from fake codex"))
        .count();
    assert_eq!(answers, 1, "{:?}", bot_replies(&e, &om));
}

/// Item 9: the held message lives in the worker's memory only; after the
/// worker restarts, the notice's button says to send the message again
/// (under the notice) and nothing runs.
#[test]
fn a_late_message_held_by_a_worker_that_restarted_asks_to_be_sent_again() {
    let e = FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    e.wait_worker_ready();
    let chat = "oc_late_restart";
    let (_, notice) = late_message(&e, chat, "late request zeta");
    let pid = e.rt.block_on(e.home.status()).profiles[0].worker_pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the worker");
    eventually(
        WAIT,
        || {
            let st = e.rt.block_on(e.home.status());
            let p = st.profiles.first()?;
            (p.worker_state().word() == "ready" && p.worker_pid != pid).then_some(())
        },
        || format!("the worker did not come back\n{}", e.home.read_logs()),
    );
    let click = e
        .fake
        .events()
        .click(USER, &notice.message_id, "Run it now")
        .expect("click");
    let f = e.push(&click);
    e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    eventually(
        WAIT,
        || {
            bot_replies(&e, &notice.message_id)
                .iter()
                .any(|m| {
                    m.content.contains("no longer held")
                        && m.content.contains("Send the message again")
                })
                .then_some(())
        },
        || {
            format!(
                "no 'send it again' under the notice: {:?}\n{}",
                e.fake.messages(),
                e.home.read_logs()
            )
        },
    );
    let _ = fresh_run(&e, chat, "fresh request eta");
    assert_eq!(runs_of(&e, "late request zeta"), 0, "{:?}", prompts(&e));
}

/// Item 9 in reply mode card: the message was recalled before fcx could
/// answer it (the platform refuses every reply to it with its
/// not-found-or-recalled code), so no run card can hang under it; the
/// answer still reaches the chat, as a new message, once.
#[test]
fn a_message_recalled_before_its_card_was_posted_is_answered_in_the_chat_in_card_mode() {
    let e = FeishuEnv::start(
        "card",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    e.wait_worker_ready();
    let chat = "oc_recall_card";
    let content = serde_json::json!({"text": "recalled request theta"});
    let om = e.fake.add_user_message(chat, "text", &content);
    assert!(e.fake.recall(&om));
    let ev = e
        .fake
        .events()
        .message(&fcx_tests::fake_feishu::MessageSpec {
            chat_id: chat.into(),
            chat_type: "p2p".into(),
            sender_open_id: USER.into(),
            message_type: "text".into(),
            content,
            mentions: Vec::new(),
            thread_id: None,
            parent_id: None,
            root_id: None,
            message_id: Some(om.clone()),
        });
    e.push(&ev);
    let in_chat = || posted_in_chat(&e, chat, "hello from fake codex");
    wait_posted_in_chat(&e, chat, "hello from fake codex");
    // The platform refused a reply to the recalled message first (the
    // path under test) with its not-found-or-recalled code.
    assert!(
        reply_refused(&e, &om, Some(230011)),
        "no refused reply to the recalled message"
    );
    assert!(bot_replies(&e, &om).is_empty(), "nothing hangs under it");
    assert_eq!(runs_of(&e, "recalled request theta"), 1);
    // Posts in one chat go out in order: a second answer would be there by
    // the time the next message's answer is.
    let barrier = fresh_run(&e, chat, "barrier iota");
    eventually(
        WAIT,
        || {
            bot_replies(&e, &barrier)
                .iter()
                .filter_map(|m| m.card_id.as_ref().and_then(|c| e.fake.card(c)))
                .any(|c| c.json.to_string().contains("hello from fake codex"))
                .then_some(())
        },
        || format!("the barrier was never answered\n{}", e.home.read_logs()),
    );
    assert_eq!(in_chat(), 1, "{:?}", e.fake.messages());
}
