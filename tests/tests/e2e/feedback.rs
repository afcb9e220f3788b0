//! Feedback at accept, against the fake platform: the chat sees its run's
//! card (or a reaction) as soon as a message is accepted, before the fake
//! codex starts; messages that join a waiting run are counted on its card
//! and go to Codex as one prompt; the run streams into that same card.

use std::time::Duration;

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{FEISHU_USER as USER, FeishuEnv, eventually, message_id};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn env(reply_mode: &str, runs: &str) -> FeishuEnv {
    env_with(reply_mode, runs, "")
}

fn env_with(reply_mode: &str, runs: &str, codex: &str) -> FeishuEnv {
    FeishuEnv::start_with(
        reply_mode,
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
        runs,
        codex,
    )
}

/// A message during a run waits for the next one (under app-server the
/// default, steer, would add it to the running turn).
const QUEUE: &str = "during_run = \"queue\"";

fn push_text(e: &FeishuEnv, chat: &str, text: &str) -> String {
    let ev = e.fake.events().p2p_text(chat, USER, text);
    let om = message_id(&ev);
    e.push(&ev);
    om
}

/// The cards the bot sent in reply to `om`.
fn cards_for(e: &FeishuEnv, om: &str) -> Vec<String> {
    e.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == om)
        .filter_map(|m| m.card_id)
        .collect()
}

/// Waits until card `id` shows JSON containing every one of `needles`.
fn wait_card(e: &FeishuEnv, id: &str, needles: &[&str], final_: bool) -> Value {
    eventually(
        WAIT,
        || {
            e.fake
                .card(id)
                .filter(|c| !final_ || !c.streaming_mode)
                .map(|c| c.json)
                .filter(|j| {
                    let s = j.to_string();
                    needles.iter().all(|n| s.contains(n))
                })
        },
        || {
            format!(
                "card {id} never showed {needles:?}: {:?}\n{}",
                e.fake.card(id).map(|c| c.json),
                e.home.read_logs()
            )
        },
    )
}

fn prompts(e: &FeishuEnv) -> Vec<String> {
    e.home
        .fake_records()
        .iter()
        .filter_map(|r| r["prompt"].as_str().map(str::to_string))
        .collect()
}

/// max_concurrent = 1 and the only slot busy: a message in another chat
/// gets its card at once, in state Queued, while no fake codex runs for it;
/// two more messages join the same waiting run ("+2 messages added", no
/// second card); once the slot frees, the run streams into that card and
/// Codex gets the three messages as one prompt.
#[test]
fn a_held_run_shows_its_card_before_codex_starts_and_a_burst_stays_one_prompt() {
    let e = env("card", "max_concurrent = 1");
    let hold = push_text(&e, "oc_fb1", "FAKE:stall hold the only slot");
    eventually(
        WAIT,
        || {
            prompts(&e)
                .iter()
                .any(|p| p.contains("hold the only slot"))
                .then_some(())
        },
        || format!("the holding run never started\n{}", e.home.read_logs()),
    );
    let first = push_text(&e, "oc_fb2", "burst line one");
    let card = eventually(
        WAIT,
        || cards_for(&e, &first).into_iter().next(),
        || format!("no card at accept\n{}", e.home.read_logs()),
    );
    let queued = wait_card(&e, &card, &["Codex · Queued", "free run slot"], false);
    assert!(!queued.to_string().contains("messages added"), "{queued}");
    let second = push_text(&e, "oc_fb2", "burst line two");
    let third = push_text(&e, "oc_fb2", "burst line three");
    wait_card(&e, &card, &["Codex · Queued", "+2 messages added"], false);
    // Still held: the card came before any codex for this chat.
    assert_eq!(prompts(&e).len(), 1, "{:?}", prompts(&e));

    push_text(&e, "oc_fb1", "/stop");
    let done = wait_card(&e, &card, &["Codex · Done", "+2 messages added"], true);
    assert!(!done.to_string().contains("Queued"), "{done}");
    let ps = prompts(&e);
    assert_eq!(ps.len(), 2, "one run for the burst: {ps:?}");
    for line in ["burst line one", "burst line two", "burst line three"] {
        assert!(ps[1].contains(line), "{line:?} missing from {:?}", ps[1]);
    }
    // One card for the three messages: none for the later two.
    assert_eq!(cards_for(&e, &first), vec![card.clone()]);
    assert!(cards_for(&e, &second).is_empty() && cards_for(&e, &third).is_empty());
    let hold_cards = cards_for(&e, &hold);
    assert_eq!(hold_cards.len(), 1);
    wait_card(&e, &hold_cards[0], &["Codex · Interrupted"], true);
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
}

/// A message that arrives while its chat's run is busy: the card says it
/// waits for that run, and its run starts right after the first one ends,
/// with no timer between them.
#[test]
fn a_message_during_a_run_gets_a_queued_card_that_becomes_the_next_run() {
    let e = env_with("card", "", QUEUE);
    let busy = push_text(&e, "oc_fb3", "FAKE:stall keep the chat busy");
    let busy_card = eventually(
        WAIT,
        || cards_for(&e, &busy).into_iter().next(),
        || format!("no card\n{}", e.home.read_logs()),
    );
    wait_card(&e, &busy_card, &["Codex · Running"], false);
    let next = push_text(&e, "oc_fb3", "after the current one");
    let card = eventually(
        WAIT,
        || cards_for(&e, &next).into_iter().next(),
        || format!("no card at accept\n{}", e.home.read_logs()),
    );
    wait_card(
        &e,
        &card,
        &["Codex · Queued", "current run in this chat"],
        false,
    );
    push_text(&e, "oc_fb3", "/stop");
    wait_card(&e, &card, &["Codex · Done"], true);
    assert!(
        prompts(&e)
            .iter()
            .any(|p| p.contains("after the current one"))
    );
}

/// Reply mode markdown: an accepted message gets a "Typing" reaction at
/// once (before its run starts), taken back once the answer is posted.
#[test]
fn in_markdown_mode_an_accepted_message_gets_a_typing_reaction_until_answered() {
    let e = env_with("markdown", "", QUEUE);
    let busy = push_text(&e, "oc_fb4", "FAKE:stall keep the chat busy");
    eventually(
        WAIT,
        || {
            prompts(&e)
                .iter()
                .any(|p| p.contains("keep the chat busy"))
                .then_some(())
        },
        || format!("the first run never started\n{}", e.home.read_logs()),
    );
    let typing = |om: &str| {
        e.fake
            .reactions(om)
            .iter()
            .any(|r| r.emoji_type == "Typing" && r.operator_type == "app")
    };
    assert!(typing(&busy), "{:?}", e.fake.reactions(&busy));
    let next = push_text(&e, "oc_fb4", "waiting for my turn");
    eventually(
        WAIT,
        || typing(&next).then_some(()),
        || format!("no reaction at accept\n{}", e.home.read_logs()),
    );
    assert_eq!(prompts(&e).len(), 1, "the reaction came before the run");
    push_text(&e, "oc_fb4", "/stop");
    eventually(
        WAIT,
        || (!typing(&next) && !typing(&busy)).then_some(()),
        || {
            format!(
                "reactions not taken back: {:?} {:?}\n{}",
                e.fake.reactions(&busy),
                e.fake.reactions(&next),
                e.home.read_logs()
            )
        },
    );
    // Taken back only once the answer was there.
    assert!(
        e.fake
            .messages()
            .iter()
            .any(|m| m.sender_type == "app" && m.parent_id == next),
        "no answer to {next}"
    );
}
