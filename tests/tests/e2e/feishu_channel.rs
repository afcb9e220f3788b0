//! fcxd as a service against the fake Feishu Open Platform (HTTP + the
//! long connection with real pbbp2 frames), the real fcx-worker and the
//! scripted fake codex. Tests speak to the platform only as fcxd would.

use std::time::{Duration, Instant};

use fcx_tests::fake_feishu::{FakeFeishu, Redelivery};
use fcx_tests::harness::{Fcxd, TestHome};
use nix::sys::signal::Signal;
use serde_json::Value;

const USER: &str = "ou_user0000000000000000000000000001";
const WAIT: Duration = Duration::from_secs(30);

struct Env {
    rt: tokio::runtime::Runtime,
    fake: FakeFeishu,
    home: TestHome,
    fcxd: Fcxd,
}

fn env_with(redelivery: Redelivery) -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(FakeFeishu::builder().redelivery(redelivery).start())
        .expect("fake platform");
    let home = TestHome::new();
    home.write_config(&home.feishu_config(
        &fake.base_url(),
        fake.app_id(),
        fake.app_secret(),
        USER,
    ));
    let fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("fcxd opens the long connection");
    Env {
        rt,
        fake,
        home,
        fcxd,
    }
}

fn env() -> Env {
    env_with(Redelivery::fast(
        Duration::from_secs(3),
        Duration::from_millis(500),
        6,
    ))
}

fn message_id(ev: &Value) -> String {
    ev["event"]["message"]["message_id"]
        .as_str()
        .expect("message id")
        .to_string()
}

impl Env {
    fn push(&self, ev: &Value) -> String {
        self.rt.block_on(self.fake.push(ev)).expect("push")
    }

    /// Bot replies to `om`, as the fake stored them.
    fn replies_to(&self, om: &str) -> Vec<String> {
        self.fake
            .messages()
            .into_iter()
            .filter(|m| m.sender_type == "app" && m.parent_id == om)
            .map(|m| m.content)
            .collect()
    }

    fn wait_reply(&self, om: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(r) = self.replies_to(om).into_iter().find(|c| c.contains(needle)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no reply to {om} containing {needle:?}; replies: {:?}\nfcxd stderr:\n{}\nlogs:\n{}",
                self.replies_to(om),
                self.fcxd.stderr(),
                self.home.read_logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_private_message_is_acknowledged_and_answered_in_the_chat() {
    let e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p1", USER, "hello over feishu");
    let om = message_id(&ev);
    let frame = e.push(&ev);
    let ack =
        e.rt.block_on(e.fake.wait_for_ack(&frame, WAIT))
            .expect("ACK");
    assert_eq!(ack.code, Some(200), "{ack:?}");
    assert!(ack.problems.is_empty(), "{:?}", ack.problems);
    let reply = e.wait_reply(&om, "hello from fake codex");
    assert!(reply.contains("zh_cn"), "a locale-wrapped post: {reply}");
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
    // The prompt carried every line the user wrote.
    let recs = e.home.fake_records();
    assert!(
        recs[0]["prompt"]
            .as_str()
            .unwrap_or("")
            .contains("hello over feishu")
    );
}

#[test]
fn a_topic_message_is_answered_in_its_thread_with_its_own_scope() {
    let e = env();
    let ev = e.fake.events().topic_text(
        "oc_grp1",
        "omt_thread1",
        "om_root1",
        USER,
        "in a topic",
        true,
    );
    let om = message_id(&ev);
    e.push(&ev);
    e.wait_reply(&om, "hello from fake codex");
    let call = e
        .fake
        .requests()
        .into_iter()
        .find(|c| c.method == "POST" && c.path.ends_with(&format!("{om}/reply")))
        .expect("a reply call");
    assert_eq!(call.body["reply_in_thread"], true, "{call:?}");
    let prompt = e.home.fake_records()[0]["prompt"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(prompt.contains("topic:oc_grp1:omt_thread1"), "{prompt}");
}

#[test]
fn group_messages_need_a_mention_and_an_enabled_group() {
    let e = env();
    // Enabled group, no mention: silently ignored (acknowledged, no run).
    let quiet = e
        .fake
        .events()
        .group_text("oc_grp2", USER, "just chatting", false);
    let om_quiet = message_id(&quiet);
    let f = e.push(&quiet);
    e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    // Enabled group, mentioned: handled.
    let asked = e
        .fake
        .events()
        .group_text("oc_grp2", USER, "please help", true);
    let om_asked = message_id(&asked);
    e.push(&asked);
    e.wait_reply(&om_asked, "hello from fake codex");
    // A group that is not enabled: a one-line hint, no run.
    let other = e
        .fake
        .events()
        .group_text("oc_elsewhere", USER, "hello?", true);
    let om_other = message_id(&other);
    e.push(&other);
    e.wait_reply(&om_other, "not enabled");
    // A stranger in a private chat: silence.
    let stranger =
        e.fake
            .events()
            .p2p_text("oc_p2p9", "ou_stranger0000000000000000000009", "let me in");
    let om_stranger = message_id(&stranger);
    let f = e.push(&stranger);
    e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    std::thread::sleep(Duration::from_millis(500));
    assert!(e.replies_to(&om_quiet).is_empty());
    assert!(e.replies_to(&om_stranger).is_empty());
    assert_eq!(
        e.home.fake_records().len(),
        1,
        "only the mentioned message ran"
    );
}

#[test]
fn the_same_event_delivered_twice_runs_once_and_answers_once() {
    let e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p2", USER, "only once please");
    let om = message_id(&ev);
    let frame = e.push(&ev);
    e.rt.block_on(e.fake.wait_for_ack(&frame, WAIT))
        .expect("ACK");
    e.rt.block_on(e.fake.push_duplicate(&frame))
        .expect("duplicate");
    e.wait_reply(&om, "hello from fake codex");
    // Give a second run every chance to appear.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(e.home.fake_records().len(), 1);
    assert_eq!(e.replies_to(&om).len(), 1);
}

#[test]
fn a_fragmented_event_is_reassembled() {
    let e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p3", USER, &"long line ".repeat(200));
    let om = message_id(&ev);
    let frame = e.rt.block_on(e.fake.push_fragmented(&ev, 3)).expect("push");
    e.rt.block_on(e.fake.wait_for_ack(&frame, WAIT))
        .expect("ACK");
    e.wait_reply(&om, "hello from fake codex");
}

#[test]
fn garbage_frames_and_unknown_events_are_skipped_without_harm() {
    let e = env();
    for raw in [
        vec![0xff, 0x00, 0x13],
        vec![0x08],
        Vec::new(),
        b"not protobuf at all".to_vec(),
    ] {
        e.rt.block_on(e.fake.push_raw_frame(raw)).expect("raw");
    }
    let unknown = e
        .fake
        .events()
        .envelope("im.something.new_v9", serde_json::json!({"x": 1}));
    let f = e.push(&unknown);
    let ack = e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    assert_eq!(ack.code, Some(200));
    // Still alive and answering.
    let ev = e.fake.events().p2p_text("oc_p2p4", USER, "still there?");
    let om = message_id(&ev);
    e.push(&ev);
    e.wait_reply(&om, "hello from fake codex");
}

#[test]
fn a_dropped_socket_reconnects_and_the_running_answer_still_arrives() {
    let e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p5", USER, "FAKE:slow take your time");
    let om = message_id(&ev);
    let frame = e.push(&ev);
    e.rt.block_on(e.fake.wait_for_ack(&frame, WAIT))
        .expect("ACK");
    e.fake.drop_connections();
    e.wait_reply(&om, "hello from fake codex");
    let deadline = Instant::now() + WAIT;
    while e.fake.connects() < 2 {
        assert!(Instant::now() < deadline, "fcxd did not reconnect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p5", USER, "after the reconnect");
    let om2 = message_id(&ev);
    e.push(&ev);
    e.wait_reply(&om2, "hello from fake codex");
    // A clean, prompt exit even after a reconnect.
    let mut e = e;
    e.fcxd.signal(Signal::SIGTERM);
    assert!(e.fcxd.wait_exit(WAIT).success());
    if std::env::var_os("FCX_TEST_DUMP").is_some() {
        eprintln!("{}", e.home.read_logs());
    }
}

#[test]
fn an_event_the_worker_cannot_accept_is_not_acked_and_the_redelivery_runs_once() {
    let e = env();
    // Stop the worker (SIGSTOP: alive but unable to answer), push, let the
    // ACK window pass, then let it go on.
    let st = e.rt.block_on(e.home.status());
    let worker = st.profiles[0].worker_pid as i32;
    let pid = nix::unistd::Pid::from_raw(worker);
    nix::sys::signal::kill(pid, Signal::SIGSTOP).expect("stop worker");
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p6", USER, "while the worker sleeps");
    let om = message_id(&ev);
    let frame = e.push(&ev);
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        e.fake.acks().iter().all(|a| a.message_id != frame),
        "no ACK while the worker could not accept"
    );
    nix::sys::signal::kill(pid, Signal::SIGCONT).expect("continue worker");
    e.wait_reply(&om, "hello from fake codex");
    assert!(e.fake.deliveries(&frame) >= 2, "redelivered");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(e.home.fake_records().len(), 1, "ran exactly once");
    assert_eq!(e.replies_to(&om).len(), 1);
}

#[test]
fn rate_limit_and_server_error_storms_still_answer_exactly_once() {
    let e = env();
    e.fake.rate_limit_storm("/open-apis/im/v1/messages/*", 3, 1);
    e.fake.fail_next("/open-apis/im/v1/messages/*", 2, 502);
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p7", USER, "through the storm");
    let om = message_id(&ev);
    e.push(&ev);
    e.wait_reply(&om, "hello from fake codex");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(e.replies_to(&om).len(), 1, "no duplicate post");
}

#[test]
fn status_shows_the_channel_connected_and_receiving() {
    let e = env();
    let ev = e.fake.events().p2p_text("oc_p2p8", USER, "hi");
    let om = message_id(&ev);
    e.push(&ev);
    e.wait_reply(&om, "hello from fake codex");
    let st = e.rt.block_on(e.home.status());
    let p = &st.profiles[0];
    assert_eq!(p.channel_state, "connected", "{p:?}");
    assert!(p.last_frame_at_ms > 0 && p.last_event_at_ms > 0, "{p:?}");
    assert_eq!(p.surfaces, vec!["feishu".to_string()]);
    assert_eq!(p.bot_name, e.fake.bot_name());
}

#[test]
fn bad_credentials_stop_the_channel_with_a_reason_and_fcxd_keeps_running() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt.block_on(FakeFeishu::start()).expect("fake");
    let home = TestHome::new();
    home.write_config(&home.feishu_config(&fake.base_url(), fake.app_id(), "wrong-secret", USER));
    let _fcxd = Fcxd::daemon(&home);
    let deadline = Instant::now() + WAIT;
    loop {
        let st = rt.block_on(home.status());
        let p = &st.profiles[0];
        if p.channel_state.starts_with("stopped") {
            assert!(p.channel_state.contains("refused"), "{p:?}");
            assert!(
                !p.channel_state.contains("wrong-secret"),
                "no secret in status"
            );
            break;
        }
        assert!(Instant::now() < deadline, "channel never stopped: {p:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The rest of fcxd keeps running: the worker comes up and answers.
    let deadline = Instant::now() + WAIT;
    while rt.block_on(home.status()).profiles[0].worker_state != "ready" {
        assert!(Instant::now() < deadline, "the worker never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!home.read_logs().contains("wrong-secret"));
}
