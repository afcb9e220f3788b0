//! Run cards against the fake platform: a live CardKit card per run, its
//! final state, the signed stop button, and the fallbacks.

use std::time::{Duration, Instant};

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{FEISHU_USER as USER, FeishuEnv, eventually, message_id};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

type Env = FeishuEnv;

fn env() -> Env {
    env_with(&[])
}

/// Like [`env`], with extra environment for fcxd (and so the fake codex).
fn env_with(extra: &[(&str, &str)]) -> Env {
    FeishuEnv::start(
        "card",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        extra,
    )
}

/// Writes scenario `name` (one JSON step per line) into `dir`.
fn scenario(dir: &std::path::Path, name: &str, steps: &[Value]) {
    let text: String = steps.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(dir.join(format!("{name}.jsonl")), text).expect("scenario");
}

/// The markdown texts of a post message's `md` elements, concatenated.
fn post_text(content: &str) -> String {
    let v: Value = serde_json::from_str(content).unwrap_or(Value::Null);
    let mut out = String::new();
    for para in v["zh_cn"]["content"].as_array().into_iter().flatten() {
        for el in para.as_array().into_iter().flatten() {
            if let Some(t) = el["text"].as_str() {
                out.push_str(t);
            }
        }
    }
    out
}

/// An environment whose fake codex scenario `name` says "step 0" … "step
/// n-1" `gap_ms` apart, then `last`; keep the directory while it runs.
fn stepped(name: &str, n: usize, gap_ms: u64, last: &str) -> (Env, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut steps = vec![
        serde_json::json!({"thread_started": true}),
        serde_json::json!({"turn_started": true}),
    ];
    for i in 0..n {
        steps.push(serde_json::json!({"agent_message": format!("step {i}")}));
        steps.push(serde_json::json!({"sleep_ms": gap_ms}));
    }
    steps.push(serde_json::json!({"agent_message": last}));
    steps.push(serde_json::json!({"turn_completed": true}));
    scenario(dir.path(), name, &steps);
    let e = env_with(&[("FAKE_CODEX_SCENARIOS", &dir.path().display().to_string())]);
    (e, dir)
}

fn answer_of(card: &Value) -> String {
    card["body"]["elements"]
        .as_array()
        .and_then(|els| els.iter().find(|x| x["element_id"] == "answer"))
        .and_then(|x| x["content"].as_str())
        .unwrap_or("")
        .to_string()
}

fn is_rate_limited(c: &fcx_tests::fake_feishu::RecordedCall) -> bool {
    c.status == 429 || matches!(c.code(), Some(99991400 | 230020))
}

/// What these tests read back from the fake platform.
trait CardHelpers {
    fn posts_for(&self, om: &str) -> String;
    fn wait_posts(&self, om: &str, needle: &str, limit: Duration) -> String;
    fn push_text(&self, chat: &str, text: &str) -> String;
    fn assert_clean_card_ops(&self);
    fn card_for(&self, om: &str) -> String;
    fn wait_final(&self, card_id: &str, needle: &str) -> Value;
    fn wait_final_within(&self, card_id: &str, needle: &str, limit: Duration) -> Value;
    fn wait_live(&self, card_id: &str);
}

impl CardHelpers for FeishuEnv {
    /// The bot's post replies to `om` (not the card), concatenated, oldest
    /// first.
    fn posts_for(&self, om: &str) -> String {
        self.fake
            .messages()
            .into_iter()
            .filter(|m| m.sender_type == "app" && m.parent_id == om && m.msg_type == "post")
            .map(|m| post_text(&m.content))
            .collect()
    }

    /// Waits until the post replies to `om` contain `needle`.
    fn wait_posts(&self, om: &str, needle: &str, limit: Duration) -> String {
        eventually(
            limit,
            || Some(self.posts_for(om)).filter(|t| t.contains(needle)),
            || {
                format!(
                    "no post with {needle:?} for {om}: {:?}\n{}",
                    self.posts_for(om),
                    self.home.read_logs()
                )
            },
        )
    }

    fn push_text(&self, chat: &str, text: &str) -> String {
        let ev = self.fake.events().p2p_text(chat, USER, text);
        let om = message_id(&ev);
        self.rt.block_on(self.fake.push(&ev)).expect("push");
        om
    }

    /// No card operation was refused for rate or sequence, and the platform
    /// saw no protocol violation.
    fn assert_clean_card_ops(&self) {
        let calls = self.fake.requests();
        let card_ops: Vec<_> = calls
            .iter()
            .filter(|c| c.path.starts_with("/open-apis/cardkit/"))
            .collect();
        let limited: Vec<_> = card_ops.iter().filter(|c| is_rate_limited(c)).collect();
        assert!(limited.is_empty(), "rate-limited card ops: {limited:?}");
        assert!(
            !card_ops.iter().any(|c| c.code() == Some(300317)),
            "a card sequence was refused"
        );
        assert!(
            self.fake.violations().is_empty(),
            "{:?}",
            self.fake.violations()
        );
    }

    /// The card entity sent in reply to `om`, once it exists.
    fn card_for(&self, om: &str) -> String {
        eventually(
            WAIT,
            || {
                self.fake
                    .messages()
                    .into_iter()
                    .find(|m| m.sender_type == "app" && m.parent_id == om)
                    .and_then(|m| m.card_id)
            },
            || format!("no card for {om}\n{}", self.home.read_logs()),
        )
    }

    /// Wait until the card's JSON contains `needle` and streaming is off.
    fn wait_final(&self, card_id: &str, needle: &str) -> Value {
        self.wait_final_within(card_id, needle, WAIT)
    }

    fn wait_final_within(&self, card_id: &str, needle: &str, limit: Duration) -> Value {
        eventually(
            limit,
            || {
                self.fake
                    .card(card_id)
                    .filter(|c| !c.streaming_mode && c.json.to_string().contains(needle))
                    .map(|c| c.json)
            },
            || {
                format!(
                    "card {card_id} never reached a final state with {needle:?}: {:?}\n{}",
                    self.fake.card(card_id).map(|c| c.json),
                    self.home.read_logs()
                )
            },
        )
    }

    /// Wait until the card streams (the run is live on it).
    fn wait_live(&self, card_id: &str) {
        eventually(
            WAIT,
            || self.fake.card(card_id).filter(|c| c.streaming_mode),
            || format!("card {card_id} never went live"),
        );
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
    e.fcxd.signal(nix::sys::signal::Signal::SIGTERM);
    let t = Instant::now();
    let st = e.fcxd.wait_exit(WAIT);
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
        eventually(
            WAIT,
            || e.fake.card(&card).and_then(|c| find_stop_token(&c.json)),
            || "no stop button".to_string(),
        )
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
    // The run ends promptly after the click (bounded wait, no speed claim).
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

/// A run still going when fcxd is replaced keeps a stop button that works:
/// the new fcxd continues the card from the worker's log and signs the
/// button for the run's requester, whom the worker's RunStarted names (the
/// gateway keeps no table of who asked, so it has nothing to forget).
#[test]
fn a_run_card_continued_by_a_new_fcxd_keeps_a_stop_button_that_works() {
    let mut e = env();
    let om = e.push_text("oc_c9", "FAKE:stall long job");
    let card = e.card_for(&om);
    let carrier = e
        .fake
        .messages()
        .into_iter()
        .find(|m| m.card_id.as_deref() == Some(card.as_str()))
        .map(|m| m.message_id)
        .expect("carrier message");
    let before = eventually(
        WAIT,
        || e.fake.card(&card).and_then(|c| find_stop_token(&c.json)),
        || "no stop button".to_string(),
    );
    let connects = e.fake.connects();
    e.fcxd.kill9();
    e.fcxd = fcx_tests::harness::Fcxd::daemon(&e.home);
    eventually(
        WAIT,
        || (e.fake.connects() > connects).then_some(()),
        || "no reconnect after restart".to_string(),
    );
    // The new fcxd rewrites the whole card (what an adopted card shows is
    // unknown to it), with a stop button signed afresh.
    let token = eventually(
        WAIT,
        || {
            e.fake
                .card(&card)
                .and_then(|c| find_stop_token(&c.json))
                .filter(|t| *t != before)
        },
        || {
            format!(
                "the continued card has no new stop button: {:?}\n{}",
                e.fake.card(&card).map(|c| c.json),
                e.home.read_logs()
            )
        },
    );
    e.wait_worker_ready();
    let click = e.fake.events().card_action(
        USER,
        &carrier,
        "oc_c9",
        serde_json::json!({"fcx": token}),
        None,
    );
    let f = e.rt.block_on(e.fake.push(&click)).expect("push");
    let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    let toast = ack.data.as_ref().map(|d| d.to_string()).unwrap_or_default();
    assert!(toast.contains("Stopping"), "{toast}");
    e.wait_final(&card, "nterrupted");
}

#[test]
fn when_cards_cannot_be_created_the_answer_arrives_as_a_message() {
    let e = env();
    e.fake.fail_next("/open-apis/cardkit/v1/cards", 10, 500);
    let ev = e.fake.events().p2p_text("oc_c3", USER, "hello");
    let om = message_id(&ev);
    e.rt.block_on(e.fake.push(&ev)).expect("push");
    eventually(
        WAIT,
        || {
            e.fake.messages().iter().find(|m| {
                m.sender_type == "app"
                    && m.parent_id == om
                    && m.content.contains("hello from fake codex")
            })?;
            Some(())
        },
        || format!("no fallback answer\n{}", e.home.read_logs()),
    );
}

#[test]
fn a_burst_of_5000_deltas_is_paced_in_sequence_and_ends_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut steps = vec![
        serde_json::json!({"thread_started": true}),
        serde_json::json!({"turn_started": true}),
    ];
    for i in 0..5000 {
        steps.push(serde_json::json!({"agent_message": format!("delta {i} of the burst")}));
    }
    let last = "the burst is over: 5000 deltas sent";
    steps.push(serde_json::json!({"agent_message": last}));
    steps.push(serde_json::json!({"turn_completed": true}));
    scenario(dir.path(), "burst", &steps);
    let e = env_with(&[("FAKE_CODEX_SCENARIOS", &dir.path().display().to_string())]);
    let om = e.push_text("oc_c4", "FAKE:burst go");
    let card = e.card_for(&om);
    let json = e.wait_final_within(&card, "Codex · Done", Duration::from_secs(120));
    // Codex's final text is its last message: the card's answer plus any
    // continuation messages is exactly that.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(format!("{}{}", answer_of(&json), e.posts_for(&om)), last);
    e.assert_clean_card_ops();
    // Coalesced: far fewer operations than deltas.
    let ops = e.fake.card(&card).map(|c| c.ops.len()).unwrap_or(0);
    assert!(ops < 1000, "{ops} card operations for 5000 deltas");
}

/// An answer of at least `bytes`, ending in "THE END", with CJK text.
fn long_answer(bytes: usize) -> String {
    let mut answer = String::new();
    let mut i = 0;
    while answer.len() < bytes {
        answer.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog; 快速的狐狸\n"
        ));
        i += 1;
    }
    answer.push_str("THE END");
    answer
}

/// Runs a scenario whose single agent message is `answer`; returns the
/// env, the user's message id and the run's cards, oldest first, each in
/// its final state.
fn run_with_answer(chat: &str, answer: &str) -> (Env, String, Vec<Value>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(
        dir.path(),
        "big",
        &[
            serde_json::json!({"thread_started": true}),
            serde_json::json!({"turn_started": true}),
            serde_json::json!({"agent_message": answer}),
            serde_json::json!({"turn_completed": true}),
        ],
    );
    let e = env_with(&[("FAKE_CODEX_SCENARIOS", &dir.path().display().to_string())]);
    let om = e.push_text(chat, "FAKE:big go");
    let main = e.card_for(&om);
    e.wait_final(&main, "Codex · Done");
    let cards: Vec<Value> = e
        .fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == om)
        .filter_map(|m| m.card_id)
        .map(|id| e.wait_final(&id, "Done"))
        .collect();
    (e, om, cards, dir)
}

#[test]
fn a_200kb_answer_continues_in_cards_then_messages_and_arrives_complete() {
    let answer = long_answer(200 * 1024);
    let (e, om, cards, _dir) = run_with_answer("oc_c5", &answer);
    // The main card and seven continuation cards, each labelled with its
    // part; what no card holds follows as messages.
    assert_eq!(cards.len(), 8, "{}", e.home.read_logs());
    for (i, c) in cards.iter().enumerate().skip(1) {
        assert!(
            c["header"]
                .to_string()
                .contains(&format!("(part {})", i + 1)),
            "{:?}",
            c["header"]
        );
    }
    let posts = e.wait_posts(&om, "THE END", Duration::from_secs(60));
    let on_cards: String = cards.iter().map(answer_of).collect();
    assert_eq!(format!("{on_cards}{posts}"), answer);
    e.assert_clean_card_ops();
}

#[test]
fn an_answer_longer_than_a_card_continues_in_a_second_card() {
    let answer = long_answer(24 * 1024);
    let (e, om, cards, _dir) = run_with_answer("oc_c5b", &answer);
    assert_eq!(cards.len(), 2, "{}", e.home.read_logs());
    let on_cards: String = cards.iter().map(answer_of).collect();
    assert_eq!(on_cards, answer);
    // The first card says where the answer goes on.
    assert!(cards[0].to_string().contains("continued"), "{:?}", cards[0]);
    assert!(e.posts_for(&om).is_empty());
    e.assert_clean_card_ops();
}

#[test]
fn reply_mode_text_answers_in_plain_text_without_a_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    let answer =
        "Here is **the fix** for `main`:\n\n```rust\nfn main() {}\n```\n\n- step one\n- step two";
    scenario(
        dir.path(),
        "md",
        &[
            serde_json::json!({"thread_started": true}),
            serde_json::json!({"turn_started": true}),
            serde_json::json!({"agent_message": answer}),
            serde_json::json!({"turn_completed": true}),
        ],
    );
    let e = FeishuEnv::start(
        "text",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[("FAKE_CODEX_SCENARIOS", &dir.path().display().to_string())],
    );
    let om = e.push_text("oc_t1", "FAKE:md go");
    let text = eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .filter(|m| m.sender_type == "app" && m.parent_id == om && m.msg_type == "text")
                .filter_map(|m| {
                    serde_json::from_str::<Value>(&m.content).ok()?["text"]
                        .as_str()
                        .map(str::to_string)
                })
                .find(|t| t.contains("fn main"))
        },
        || format!("no text answer\n{}", e.home.read_logs()),
    );
    // Readable words, no markdown syntax.
    for w in ["the fix", "main", "fn main() {}", "step one", "step two"] {
        assert!(text.contains(w), "{w:?} missing from {text:?}");
    }
    for m in ["**", "```", "`main`"] {
        assert!(!text.contains(m), "{m:?} left in {text:?}");
    }
    assert!(
        !e.fake
            .messages()
            .iter()
            .any(|m| m.parent_id == om && (m.card_id.is_some() || m.msg_type == "post")),
        "text mode sent a card or a post"
    );
}

#[test]
fn a_markdown_answer_the_platform_refuses_is_sent_again_as_text() {
    let e = FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    // Both the reply and the post into the chat are refused as content
    // (the first of the two `messages/*` calls is the Typing reaction at
    // accept: refused too, it must not hold up the answer).
    e.fake
        .fail_next_code("/open-apis/im/v1/messages/*", 2, 230001);
    e.fake
        .fail_next_code("/open-apis/im/v1/messages", 1, 230001);
    let om = e.push_text("oc_t2", "hello");
    eventually(
        WAIT,
        || {
            e.fake.messages().iter().find(|m| {
                m.sender_type == "app"
                    && m.msg_type == "text"
                    && m.content.contains("hello from fake codex")
            })?;
            Some(())
        },
        || format!("no text fallback for {om}\n{}", e.home.read_logs()),
    );
}

#[test]
fn a_slow_card_in_one_chat_does_not_hold_up_another_chat() {
    let e = env();
    // Sending the first chat's card takes 30 s.
    let ev = e.fake.events().p2p_text("oc_s1", USER, "hello");
    let slow = message_id(&ev);
    e.fake.slow_next(
        &format!("/open-apis/im/v1/messages/{slow}/reply"),
        1,
        Duration::from_secs(30),
    );
    e.rt.block_on(e.fake.push(&ev)).expect("push");
    let fast = e.push_text("oc_s2", "hello");
    let card = e.card_for(&fast);
    e.wait_final(&card, "Codex · Done");
    // The first chat's card is still on its way: the second chat did not
    // wait behind it.
    assert!(
        !e.fake
            .messages()
            .iter()
            .any(|m| m.sender_type == "app" && m.parent_id == slow),
        "{}",
        e.home.read_logs()
    );
}

#[test]
fn card_updates_failing_mid_run_still_end_on_the_card() {
    let (e, _dir) = stepped("flaky", 40, 100, "final after failures");
    let om = e.push_text("oc_c6", "FAKE:flaky go");
    let card = e.card_for(&om);
    // Bursts of server errors on the card's operations: short ones the
    // client's retries absorb, then one long enough to make the writer give
    // up while the final update is due.
    for n in [2, 3, 30] {
        e.fake.fail_next("/open-apis/cardkit/v1/cards/*", n, 503);
        std::thread::sleep(Duration::from_millis(700));
    }
    let json = e.wait_final_within(&card, "Codex · Done", Duration::from_secs(120));
    assert_eq!(answer_of(&json), "final after failures");
    // Every injected failure was met: the long burst outlasted the
    // writer's own retries.
    let failed = e
        .fake
        .requests()
        .iter()
        .filter(|c| c.path.starts_with("/open-apis/cardkit/v1/cards/") && c.status == 503)
        .count();
    assert_eq!(failed, 35, "{}", e.home.read_logs());
    if std::env::var_os("FCX_TEST_DUMP").is_some() {
        eprintln!("{}", e.home.read_logs());
    }
    e.assert_clean_card_ops();
}

#[test]
fn a_card_that_is_gone_falls_back_to_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(
        dir.path(),
        "gone",
        &[
            serde_json::json!({"thread_started": true}),
            serde_json::json!({"turn_started": true}),
            serde_json::json!({"agent_message": "before"}),
            serde_json::json!({"sleep_ms": 1500}),
            serde_json::json!({"agent_message": "the answer survives a vanished card"}),
            serde_json::json!({"turn_completed": true}),
        ],
    );
    let e = env_with(&[("FAKE_CODEX_SCENARIOS", &dir.path().display().to_string())]);
    let om = e.push_text("oc_c7", "FAKE:gone go");
    let card = e.card_for(&om);
    e.fake
        .fail_next_code("/open-apis/cardkit/v1/cards/*", 10_000, 200740);
    e.wait_posts(
        &om,
        "the answer survives a vanished card",
        Duration::from_secs(60),
    );
    // The card that could not be finished is taken back rather than left
    // showing "Running".
    let carrier = e
        .fake
        .messages()
        .into_iter()
        .find(|m| m.card_id.as_deref() == Some(card.as_str()))
        .expect("carrier");
    assert!(carrier.deleted, "the unfinished card is still shown");
}

#[test]
fn a_run_stopped_by_an_fcxd_shutdown_ends_its_card_as_interrupted() {
    let mut e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_c9", USER, "FAKE:stall until shutdown");
    let om = message_id(&ev);
    e.push(&ev);
    let card = e.card_for(&om);
    // The card is live (streaming) before the shutdown, and the run on it
    // (the card now exists from accept, before the run starts).
    e.wait_live(&card);
    eventually(
        WAIT,
        || {
            e.fake
                .card(&card)
                .filter(|c| c.json.to_string().contains("Codex · Running"))
        },
        || format!("the run never started on {card}"),
    );
    e.fcxd.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(e.fcxd.wait_exit(WAIT).success());
    // Not left frozen on "Running": the final state landed before fcxd exited.
    let c = e.fake.card(&card).expect("card");
    assert!(!c.streaming_mode, "{:?}\n{}", c.json, e.home.read_logs());
    assert!(c.json.to_string().contains("nterrupted"), "{:?}", c.json);
}

#[test]
fn card_updates_failing_at_random_never_leave_a_card_running() {
    let (e, _dir) = stepped("random", 30, 40, "all done despite the flaky platform");
    // A third of all card updates fail with a server error, every run.
    e.fake
        .fail_randomly("/open-apis/cardkit/v1/cards/*", 333, 503, 0x5eed_f00d);
    let oms: Vec<String> = (0..4)
        .map(|i| e.push_text(&format!("oc_r{i}"), "FAKE:random go"))
        .collect();
    for om in &oms {
        let card = e.card_for(om);
        let json = e.wait_final_within(&card, "Codex · Done", Duration::from_secs(120));
        assert_eq!(answer_of(&json), "all done despite the flaky platform");
    }
    let failed = e.fake.requests().iter().filter(|c| c.status == 503).count();
    assert!(failed > 0, "no failure was injected");
    e.fake.stop_random_failures();
}

#[test]
fn reply_mode_markdown_shows_the_whole_run_in_its_final_message() {
    let e = FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    let om = e.push_text("oc_m1", "FAKE:tools please");
    let post = e.wait_posts(&om, "Files changed", WAIT);
    // The files the run changed and its footer, under the answer.
    assert!(post.contains("hello.txt"), "{post}");
    assert!(post.contains("workspace-write"), "{post}");
    assert!(
        !e.fake
            .messages()
            .iter()
            .any(|m| m.parent_id == om && m.card_id.is_some()),
        "markdown mode sent a card"
    );
}

#[test]
fn a_run_that_outlives_the_streaming_window_keeps_its_card_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut steps = vec![
        serde_json::json!({"thread_started": true}),
        serde_json::json!({"turn_started": true}),
        serde_json::json!({"agent_message": "first"}),
        serde_json::json!({"sleep_ms": 1500}),
    ];
    for i in 0..10 {
        steps.push(serde_json::json!({"agent_message": format!("later {i}")}));
        steps.push(serde_json::json!({"sleep_ms": 100}));
    }
    steps.push(serde_json::json!({"agent_message": "the end of a long run"}));
    steps.push(serde_json::json!({"turn_completed": true}));
    scenario(dir.path(), "long", &steps);
    let e = env_with(&[("FAKE_CODEX_SCENARIOS", &dir.path().display().to_string())]);
    let om = e.push_text("oc_l1", "FAKE:long go");
    let card = e.card_for(&om);
    // Ten minutes pass on the platform's side: streaming times out.
    e.wait_live(&card);
    e.fake.expire_streaming(&card);
    let json = e.wait_final(&card, "Codex · Done");
    assert_eq!(answer_of(&json), "the end of a long run");
    // It was shown live again after the timeout, and not taken back.
    let timeouts = e
        .fake
        .requests()
        .iter()
        .filter(|c| c.code() == Some(200850))
        .count();
    assert!(timeouts >= 1, "the stream never timed out");
    let carrier = e
        .fake
        .messages()
        .into_iter()
        .find(|m| m.card_id.as_deref() == Some(card.as_str()))
        .expect("carrier");
    assert!(!carrier.deleted);
    assert!(
        e.posts_for(&om).is_empty(),
        "the answer fell back to a message"
    );
}
