//! Access is per sender, not per chat (issue 10 item 6), through the fake
//! platform: a group the owner set to `full` runs a member's message with
//! the member's cap, a burst merged from the owner and a member under the
//! lower of the two, and only the owner's own messages with full access,
//! which every card of the run shows.

use std::time::Duration;

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{FEISHU_USER as OWNER, FeishuEnv, eventually, message_id};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const MEMBER: &str = "ou_member00000000000000000000000002";
const GROUP: &str = "oc_grp1";

/// The sandbox fake-codex record `r` ran under: `args.sandbox`, which the
/// fake fills from exec's `--sandbox` and from app-server's thread settings
/// alike, or, as Codex does, from the permissions profile fcx selects in
/// their place, so the test holds under either runner.
fn sandbox(r: &Value) -> String {
    r["args"]["sandbox"]
        .as_str()
        .unwrap_or_else(|| panic!("no sandbox in {r}"))
        .to_string()
}

/// Pushes a group message mentioning the bot: (IM message id, frame id).
fn push_framed(e: &FeishuEnv, sender: &str, text: &str) -> (String, String) {
    let ev = e.fake.events().group_text(GROUP, sender, text, true);
    let om = message_id(&ev);
    let frame = e.push(&ev);
    (om, frame)
}

fn push(e: &FeishuEnv, sender: &str, text: &str) -> String {
    push_framed(e, sender, text).0
}

/// The run card answering `om`, if it is final now: its JSON.
fn final_card_now(e: &FeishuEnv, om: &str) -> Option<Value> {
    let card_id = e
        .fake
        .messages()
        .into_iter()
        .find(|m| m.sender_type == "app" && m.parent_id == om && m.card_id.is_some())
        .and_then(|m| m.card_id)?;
    e.fake
        .card(&card_id)
        .filter(|c| !c.streaming_mode && c.json.to_string().contains("Codex · Done"))
        .map(|c| c.json)
}

/// The run card answering `om`, once final: its JSON.
fn final_card(e: &FeishuEnv, om: &str) -> Value {
    eventually(
        WAIT,
        || final_card_now(e, om),
        || format!("no final card for {om}\n{}", e.home.read_logs()),
    )
}

fn full_tag(card: &Value) -> Option<&str> {
    card.pointer("/header/text_tag_list/0/text/content")
        .and_then(Value::as_str)
}

/// Waits for the `n`th fake-codex record to hold its turn (a child writes
/// its record first when it starts or opens a thread, without a prompt, and
/// again when the turn starts) and returns it.
fn record(e: &FeishuEnv, n: usize) -> Value {
    eventually(
        WAIT,
        || {
            e.home
                .fake_records()
                .get(n - 1)
                .filter(|r| r["prompt"].is_string())
                .cloned()
        },
        || format!("codex run {n} never started\n{}", e.home.read_logs()),
    )
}

#[test]
fn a_full_group_runs_each_message_with_its_senders_cap_and_cards_show_full() {
    let gate_dir = tempfile::tempdir().expect("tempdir");
    let gate = gate_dir.path().join("open");
    // An owner's run that holds the chat busy until the test opens the gate.
    let steps = [
        serde_json::json!({"thread_started": true}),
        serde_json::json!({"turn_started": true}),
        serde_json::json!({"sh": format!("while [ ! -e {} ]; do sleep 0.02; done", gate.display())}),
        serde_json::json!({"agent_message": "gate open"}),
        serde_json::json!({"turn_completed": true}),
    ];
    let text: String = steps.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(gate_dir.path().join("gate.jsonl"), text).expect("scenario");
    // Messages written during a run wait for the next one (queue), so the
    // burst below is one merged run; under the default (steer) the owner's
    // part would join the running full-access turn instead.
    let e = FeishuEnv::start_with(
        "card",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[(
            "FAKE_CODEX_SCENARIOS",
            &gate_dir.path().display().to_string(),
        )],
        "[profiles.default.permissions]\nmax_access = \"full\"",
        "during_run = \"queue\"",
    );

    // The owner gives the group full access.
    let om = push(&e, OWNER, "/config access full");
    eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .iter()
                .any(|m| m.sender_type == "app" && m.parent_id == om)
                .then_some(())
        },
        || format!("no answer to /config\n{}", e.home.read_logs()),
    );

    // A member's message: the member's cap, said in the chat; no full tag.
    let om = push(&e, MEMBER, "member asks");
    let card = final_card(&e, &om);
    assert_eq!(sandbox(&record(&e, 1)), "workspace-write");
    assert_eq!(full_tag(&card), None, "{card}");
    assert!(card.to_string().contains("workspace-write"), "{card}");
    eventually(
        WAIT,
        || {
            let said = e.fake.messages().iter().any(|m| {
                m.sender_type == "app"
                    && m.content.contains("only the owner's messages run with it")
            }) || card.to_string().contains("only the owner");
            said.then_some(())
        },
        || format!("the cap was not said\n{}", e.home.read_logs()),
    );

    // The owner alone: full access, and the card shows it.
    let om = push(&e, OWNER, "FAKE:gate owner asks");
    let rec = record(&e, 2);
    assert_eq!(sandbox(&rec), "danger-full-access");
    // While it runs, the owner and a member write: both wait for the next
    // run, merged into one (their ACKs come once the worker stored them;
    // which of the two it stored first is not fixed).
    let (burst_owner, frame_owner) = push_framed(&e, OWNER, "burst part from the owner");
    let (burst_member, frame_member) = push_framed(&e, MEMBER, "burst part from the member");
    eventually(
        WAIT,
        || {
            let acked: Vec<String> = e.fake.acks().into_iter().map(|a| a.message_id).collect();
            (acked.contains(&frame_owner) && acked.contains(&frame_member)).then_some(())
        },
        || format!("the burst was not accepted\n{}", e.home.read_logs()),
    );
    std::fs::write(&gate, b"").expect("open the gate");
    let card = final_card(&e, &om);
    assert_eq!(full_tag(&card), Some("access: full"), "{card}");
    assert!(card.to_string().contains("danger-full-access"), "{card}");

    // The merged burst: one run, both texts, the member's cap.
    let rec = record(&e, 3);
    let prompt = rec["prompt"].as_str().unwrap_or("");
    assert!(
        prompt.contains("burst part from the owner")
            && prompt.contains("burst part from the member"),
        "one merged run: {prompt}"
    );
    assert_eq!(sandbox(&rec), "workspace-write");
    // Its card hangs under whichever part the worker stored first: the two
    // are pushed back to back and may reach it in either order.
    let card = eventually(
        WAIT,
        || {
            [&burst_owner, &burst_member]
                .into_iter()
                .find_map(|om| final_card_now(&e, om))
        },
        || format!("no final card for the burst\n{}", e.home.read_logs()),
    );
    assert_eq!(full_tag(&card), None, "{card}");
    assert_eq!(e.home.fake_records().len(), 3, "no other run");
}
