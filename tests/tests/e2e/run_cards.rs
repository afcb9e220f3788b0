//! Run cards against the fake platform: a live CardKit card per run, its
//! final state, the signed stop button, and the fallbacks.

use std::time::{Duration, Instant};

use fcx_tests::fake_feishu::{FakeFeishu, Redelivery};
use fcx_tests::harness::{Fcxd, TestHome};
use serde_json::Value;

const USER: &str = "ou_user0000000000000000000000000001";
const WAIT: Duration = Duration::from_secs(30);

// Fields drop in order: fcxd first, while its home and platform still exist.
struct Env {
    _fcxd: Fcxd,
    fake: FakeFeishu,
    rt: tokio::runtime::Runtime,
    home: TestHome,
}

fn env() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(
            FakeFeishu::builder()
                .redelivery(Redelivery::fast(
                    Duration::from_secs(3),
                    Duration::from_millis(500),
                    6,
                ))
                .start(),
        )
        .expect("fake");
    let home = TestHome::new();
    home.write_config(
        &home
            .feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER)
            .replace("reply_mode = \"markdown\"", "reply_mode = \"card\""),
    );
    let fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("long connection");
    Env {
        rt,
        fake,
        home,
        _fcxd: fcxd,
    }
}

fn message_id(ev: &Value) -> String {
    ev["event"]["message"]["message_id"]
        .as_str()
        .expect("message id")
        .to_string()
}

impl Env {
    /// The card entity sent in reply to `om`, once it exists.
    fn card_for(&self, om: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(id) = self
                .fake
                .messages()
                .into_iter()
                .find(|m| m.sender_type == "app" && m.parent_id == om)
                .and_then(|m| m.card_id)
            {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no card for {om}\n{}",
                self.home.read_logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the card's JSON contains `needle` and streaming is off.
    fn wait_final(&self, card_id: &str, needle: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(c) = self.fake.card(card_id)
                && !c.streaming_mode
                && c.json.to_string().contains(needle)
            {
                return c.json;
            }
            assert!(
                Instant::now() < deadline,
                "card {card_id} never reached a final state with {needle:?}: {:?}\n{}",
                self.fake.card(card_id).map(|c| c.json),
                self.home.read_logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
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

#[test]
fn a_run_gets_a_card_that_ends_complete_and_final() {
    let e = env();
    let ev = e.fake.events().p2p_text("oc_c1", USER, "FAKE:tools please");
    let om = message_id(&ev);
    e.rt.block_on(e.fake.push(&ev)).expect("push");
    let card = e.card_for(&om);
    let json = e.wait_final(&card, "Codex · Done");
    let text = json.to_string();
    // The answer element holds Codex's final message, byte for byte.
    let answer = json["body"]["elements"]
        .as_array()
        .and_then(|els| els.iter().find(|x| x["element_id"] == "answer"))
        .and_then(|x| x["content"].as_str())
        .unwrap_or("")
        .to_string();
    assert_eq!(answer, "tools done", "{text}");
    assert_eq!(json["config"]["streaming_mode"], false);
    let mut e = e;
    e._fcxd.signal(nix::sys::signal::Signal::SIGTERM);
    let t = Instant::now();
    let st = e._fcxd.wait_exit(WAIT);
    if std::env::var_os("FCX_TEST_DUMP").is_some() {
        eprintln!("exit took {:?}\n{}", t.elapsed(), e.home.read_logs());
    }
    assert!(st.success());
    // Tools shown, the failing one included; no stop button once done.
    assert!(
        text.contains("exit 3") || text.contains("exit code 3"),
        "{text}"
    );
    assert!(find_stop_token(&json).is_none(), "{text}");
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
}

#[test]
fn the_stop_button_interrupts_the_run_and_forgeries_do_nothing() {
    let e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_c2", USER, "FAKE:stall long job");
    let om = message_id(&ev);
    e.rt.block_on(e.fake.push(&ev)).expect("push");
    let card = e.card_for(&om);
    let carrier = e
        .fake
        .messages()
        .into_iter()
        .find(|m| m.card_id.as_deref() == Some(card.as_str()))
        .map(|m| m.message_id)
        .expect("carrier message");
    let token = {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(t) = e.fake.card(&card).and_then(|c| find_stop_token(&c.json)) {
                break t;
            }
            assert!(Instant::now() < deadline, "no stop button");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // A forged token, and the real one clicked by someone else: denied.
    for (who, value) in [
        (USER, serde_json::json!({"fcx": format!("{token}x")})),
        (
            "ou_other000000000000000000000000009",
            serde_json::json!({"fcx": token}),
        ),
    ] {
        let click = e
            .fake
            .events()
            .card_action(who, &carrier, "oc_c2", value, None);
        let f = e.rt.block_on(e.fake.push(&click)).expect("push");
        let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
        let toast = ack.data.as_ref().map(|d| d.to_string()).unwrap_or_default();
        assert!(toast.contains("warning"), "denied: {toast}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !e.fake
            .card(&card)
            .map(|c| c.json.to_string())
            .unwrap_or_default()
            .contains("Interrupted"),
        "a denied click must not stop the run"
    );
    // The real click by the requester.
    let click = e.fake.events().card_action(
        USER,
        &carrier,
        "oc_c2",
        serde_json::json!({"fcx": token}),
        None,
    );
    let f = e.rt.block_on(e.fake.push(&click)).expect("push");
    let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    assert!(
        ack.data
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default()
            .contains("Stopping"),
        "{ack:?}"
    );
    e.wait_final(&card, "nterrupted");
    // Replaying the same click does nothing more.
    let f = e.rt.block_on(e.fake.push(&click)).expect("push");
    let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    assert!(
        ack.data
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default()
            .contains("warning")
    );
}

#[test]
fn when_cards_cannot_be_created_the_answer_arrives_as_a_message() {
    let e = env();
    e.fake.fail_next("/open-apis/cardkit/v1/cards", 10, 500);
    let ev = e.fake.events().p2p_text("oc_c3", USER, "hello");
    let om = message_id(&ev);
    e.rt.block_on(e.fake.push(&ev)).expect("push");
    let deadline = Instant::now() + WAIT;
    while !e.fake.messages().iter().any(|m| {
        m.sender_type == "app" && m.parent_id == om && m.content.contains("hello from fake codex")
    }) {
        assert!(
            Instant::now() < deadline,
            "no fallback answer\n{}",
            e.home.read_logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
