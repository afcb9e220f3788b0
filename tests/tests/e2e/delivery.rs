//! Egress delivery against the fake platform: slow work stays off the
//! worker-event path, and nothing a user did is dropped without a word.

use std::time::Duration;

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{FEISHU_USER as USER, FeishuEnv, bin, eventually, message_id};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn env(mode: &str, extra: &[(&str, &str)]) -> FeishuEnv {
    FeishuEnv::start(
        mode,
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        extra,
    )
}

/// The bot's messages under `parent`, as the fake stored them.
fn replies_to(e: &FeishuEnv, parent: &str) -> Vec<String> {
    e.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == parent)
        .map(|m| m.content)
        .collect()
}

fn wait_reply(e: &FeishuEnv, parent: &str, needle: &str) -> String {
    eventually(
        WAIT,
        || {
            replies_to(e, parent)
                .into_iter()
                .find(|c| c.contains(needle))
        },
        || {
            format!(
                "no reply to {parent} containing {needle:?}; replies: {:?}\nlogs:\n{}",
                replies_to(e, parent),
                e.home.read_logs()
            )
        },
    )
}

fn find_stop_token(card: &Value) -> Option<String> {
    match card {
        Value::Object(m) => {
            if m.get("element_id").and_then(Value::as_str) == Some("stop") {
                return m["behaviors"][0]["value"]["fcx"]
                    .as_str()
                    .map(str::to_string);
            }
            m.values().find_map(find_stop_token)
        }
        Value::Array(a) => a.iter().find_map(find_stop_token),
        _ => None,
    }
}

/// Starts a long run in `chat`; returns its card's carrier message and the
/// card's stop token.
fn running_card(e: &FeishuEnv, chat: &str) -> (String, String) {
    let ev = e.fake.events().p2p_text(chat, USER, "FAKE:stall long job");
    let om = message_id(&ev);
    e.rt.block_on(e.fake.push(&ev)).expect("push");
    let (carrier, card) = eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .find(|m| m.sender_type == "app" && m.parent_id == om)
                .and_then(|m| Some((m.message_id, m.card_id?)))
        },
        || format!("no card for {om}\n{}", e.home.read_logs()),
    );
    let token = eventually(
        WAIT,
        || e.fake.card(&card).and_then(|c| find_stop_token(&c.json)),
        || "no stop button".to_string(),
    );
    (carrier, token)
}

/// Clicks the stop button; returns the ACK's answer (the toast).
fn click_stop(e: &FeishuEnv, carrier: &str, chat: &str, token: &str) -> String {
    let click = e.fake.events().card_action(
        USER,
        carrier,
        chat,
        serde_json::json!({ "fcx": token }),
        None,
    );
    let f = e.rt.block_on(e.fake.push(&click)).expect("push");
    let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    ack.data.as_ref().map(|d| d.to_string()).unwrap_or_default()
}

fn worker_state(e: &FeishuEnv) -> (String, u32) {
    let st = e.rt.block_on(e.home.status());
    let p = &st.profiles[0];
    (p.worker_state().word().to_string(), p.worker_pid)
}

#[test]
fn a_welcome_the_platform_is_slow_to_take_does_not_hold_up_answers() {
    let e = env("markdown", &[]);
    // Every attempt at the welcome (a send into the chat, not a reply)
    // hangs far longer than the wait below.
    e.fake
        .slow_next("/open-apis/im/v1/messages", 8, Duration::from_secs(300));
    let added = e.fake.events().bot_added("oc_d1", USER, "team");
    let f = e.rt.block_on(e.fake.push(&added)).expect("push");
    // Acknowledged once the welcome is queued.
    e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    let ev = e.fake.events().p2p_text("oc_d1b", USER, "meanwhile");
    let om = message_id(&ev);
    e.rt.block_on(e.fake.push(&ev)).expect("push");
    wait_reply(&e, &om, "hello from fake codex");
}

#[test]
fn a_click_while_the_worker_is_down_says_so_and_the_button_still_works_after() {
    // A worker binary the test can hold down: while `down` exists it exits
    // at once, so the supervisor keeps retrying and the worker stays away.
    let dir = tempfile::tempdir().expect("tempdir");
    let down = dir.path().join("down");
    let script = dir.path().join("worker.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'held down by the test' >&2; exit 1; fi\nexec '{}' \"$@\"\n",
            down.display(),
            bin("fcx-worker").display()
        ),
    )
    .expect("script");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let e = env("card", &[("FCX_WORKER_BIN", &script.display().to_string())]);
    let (carrier, token) = running_card(&e, "oc_d2");

    std::fs::write(&down, "").expect("hold down");
    let (_, pid) = worker_state(&e);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the worker");
    eventually(
        WAIT,
        || (worker_state(&e).0 != "ready").then_some(()),
        || "the worker still looks ready".to_string(),
    );
    let toast = click_stop(&e, &carrier, "oc_d2", &token);
    assert!(
        toast.contains("warning") && toast.contains("restarting"),
        "a click on a down worker is answered as such: {toast}"
    );

    std::fs::remove_file(&down).expect("let the worker up");
    eventually(
        WAIT,
        || (worker_state(&e).0 == "ready").then_some(()),
        || format!("the worker did not come back\n{}", e.home.read_logs()),
    );
    // The first click did not use the button up.
    let toast = click_stop(&e, &carrier, "oc_d2", &token);
    assert!(toast.contains("Stopping"), "{toast}");
}

#[test]
fn a_stop_the_worker_refuses_is_answered_under_the_card() {
    let e = env("card", &[]);
    let (carrier, token) = running_card(&e, "oc_d3");
    // The run ends (a /stop typed in the chat); the card's button, clicked
    // afterwards, asks to stop a run that is no longer there.
    let stop = e.fake.events().p2p_text("oc_d3", USER, "/stop");
    e.rt.block_on(e.fake.push(&stop)).expect("push");
    eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .filter_map(|m| m.card_id)
                .filter_map(|c| e.fake.card(&c))
                .any(|c| {
                    c.json.to_string().contains("nterrupted") && find_stop_token(&c.json).is_none()
                })
                .then_some(())
        },
        || format!("the run did not end\n{}", e.home.read_logs()),
    );
    let toast = click_stop(&e, &carrier, "oc_d3", &token);
    assert!(toast.contains("Stopping"), "{toast}");
    let answer = wait_reply(&e, &carrier, "Not stopped");
    assert!(answer.contains("no longer active"), "{answer}");
}
