//! One chat's messages reach the worker's journal, and Codex, in the order
//! the platform pushed them, although fcxd handles events concurrently.

use std::time::Duration;

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{FEISHU_USER as USER, FeishuEnv, eventually, message_id};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// The chat's journal rows, in accept order, as (IM message id, state).
fn journal(e: &FeishuEnv, scope: &str) -> Vec<(String, String)> {
    let db = e.home.home.join("profiles/default/state.db");
    let Ok(r) = fcx_state::Reader::open(&db) else {
        return Vec::new();
    };
    r.journal()
        .unwrap_or_default()
        .into_iter()
        .filter(|row| row.scope == scope)
        .map(|row| {
            let om = row.event_id.trim_start_matches("msg:").to_string();
            (om, row.state)
        })
        .collect()
}

/// Pushes `ev` and returns once its frame is on the wire: the fake pushes
/// from a task, so two pushes may leave in either order (as the platform's
/// may); the wire order is the one fcxd must keep. Polled without a pause,
/// so the next push follows within microseconds.
fn push_next(e: &FeishuEnv, ev: &serde_json::Value) {
    let frame = e.push(ev);
    let limit = std::time::Instant::now() + WAIT;
    while e
        .fake
        .frame_timing(&frame)
        .and_then(|t| t.pushed_at)
        .is_none()
    {
        assert!(
            std::time::Instant::now() < limit,
            "frame {frame} never left"
        );
        std::thread::yield_now();
    }
}

/// Where each of `markers` first appears in the prompts Codex was given,
/// as (prompt index, byte offset): the order Codex read them in.
fn prompt_positions(e: &FeishuEnv, markers: &[String]) -> Vec<Option<(usize, usize)>> {
    let prompts: Vec<String> = e
        .home
        .fake_records()
        .iter()
        .filter_map(|r| r["prompt"].as_str().map(str::to_string))
        .collect();
    markers
        .iter()
        .map(|m| {
            prompts
                .iter()
                .enumerate()
                .find_map(|(i, p)| p.find(m.as_str()).map(|at| (i, at)))
        })
        .collect()
}

/// Round after round, a user sends three messages back to back in one chat;
/// the first quotes an earlier message, which the platform is slow to
/// return (fcxd fetches it inside the ACK window, before handing the message
/// to the worker). The three are journaled in push order, and Codex reads
/// them in that order, in every round.
#[test]
fn back_to_back_messages_of_one_chat_are_journaled_and_prompted_in_push_order() {
    let e = FeishuEnv::start_with(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
        "",
        "during_run = \"queue\"",
    );
    let chat = "oc_order1";
    let scope = format!("chat:{chat}");
    let mut pushed: Vec<String> = Vec::new();
    let mut markers: Vec<String> = Vec::new();
    for round in 0..6 {
        let parent = e.fake.add_user_message(
            chat,
            "text",
            &json!({"text": format!("the parent of round {round}")}),
        );
        e.fake.slow_next(
            &format!("/open-apis/im/v1/messages/{parent}"),
            1,
            Duration::from_millis(400),
        );
        let texts = [
            format!("order-r{round}-m0 do A"),
            format!("order-r{round}-m1 then do B"),
            format!("order-r{round}-m2 then do C"),
        ];
        let evs = [
            e.fake
                .events()
                .quote_text(chat, "p2p", USER, &texts[0], &parent),
            e.fake.events().p2p_text(chat, USER, &texts[1]),
            e.fake.events().p2p_text(chat, USER, &texts[2]),
        ];
        let round_ids: Vec<String> = evs.iter().map(message_id).collect();
        for ev in &evs {
            push_next(&e, ev);
        }
        // The round is over once all three were run.
        eventually(
            WAIT,
            || {
                let j = journal(&e, &scope);
                round_ids
                    .iter()
                    .all(|om| j.iter().any(|(id, st)| id == om && st == "done"))
                    .then_some(())
            },
            || {
                format!(
                    "round {round} did not finish: {:?}\n{}",
                    journal(&e, &scope),
                    e.home.read_logs()
                )
            },
        );
        pushed.extend(round_ids);
        markers.extend(
            texts
                .iter()
                .map(|t| t[..t.find(' ').unwrap_or(t.len())].to_string()),
        );
        let journaled: Vec<String> = journal(&e, &scope).into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            journaled, pushed,
            "round {round}: journal order is not push order"
        );
    }
    let at = prompt_positions(&e, &markers);
    assert!(
        at.iter().all(Option::is_some),
        "every message reached Codex: {at:?}"
    );
    let read: Vec<(usize, usize)> = at.into_iter().flatten().collect();
    let mut sorted = read.clone();
    sorted.sort();
    assert_eq!(
        read, sorted,
        "Codex read {markers:?} out of order: {read:?}"
    );
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
}

/// The order is per chat: a message held up in one chat (its quoted parent
/// is slow to come back, past what fcxd waits for it) holds up the next
/// message of that chat only; another chat's message, pushed after both,
/// is taken first.
#[test]
fn a_chat_waiting_on_a_slow_message_does_not_hold_up_another_chat() {
    let e = FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    let (slow_chat, other_chat) = ("oc_order2", "oc_order3");
    let parent = e
        .fake
        .add_user_message(slow_chat, "text", &json!({"text": "an old message"}));
    // Far past the quote's budget: fcxd gives up on it and delivers anyway.
    e.fake.slow_next(
        &format!("/open-apis/im/v1/messages/{parent}"),
        1,
        Duration::from_secs(20),
    );
    let evs = [
        e.fake
            .events()
            .quote_text(slow_chat, "p2p", USER, "slow-first", &parent),
        e.fake.events().p2p_text(slow_chat, USER, "slow-second"),
        e.fake.events().p2p_text(other_chat, USER, "other-chat"),
    ];
    let ids: Vec<String> = evs.iter().map(message_id).collect();
    for ev in &evs {
        push_next(&e, ev);
    }
    let db = e.home.home.join("profiles/default/state.db");
    let order = eventually(
        WAIT,
        || {
            let rows = fcx_state::Reader::open(&db).ok()?.journal().ok()?;
            let order: Vec<String> = rows
                .into_iter()
                .map(|r| r.event_id.trim_start_matches("msg:").to_string())
                .collect();
            ids.iter().all(|id| order.contains(id)).then_some(order)
        },
        || format!("not all three were journaled\n{}", e.home.read_logs()),
    );
    let at = |id: &String| order.iter().position(|o| o == id);
    assert!(
        at(&ids[0]) < at(&ids[1]),
        "the slow chat kept its order: {order:?}"
    );
    assert!(
        at(&ids[2]) < at(&ids[0]),
        "the other chat waited for the slow one: {order:?}"
    );
}
