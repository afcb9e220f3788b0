//! fcxd as a service against the fake Feishu Open Platform (HTTP + the
//! long connection with real pbbp2 frames), the real fcx-worker and the
//! scripted fake codex. Tests speak to the platform only as fcxd would.

use std::time::{Duration, Instant};

use fcx_tests::fake_feishu::{FakeFeishu, Redelivery};
use fcx_tests::harness::{FEISHU_USER as USER, Fcxd, FeishuEnv, TestHome, message_id};
use nix::sys::signal::Signal;

const WAIT: Duration = Duration::from_secs(30);

type Env = FeishuEnv;

/// For the tests that build their own platform and fcxd.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Wait (bounded) until the bot has posted a message matching `pred`.
fn wait_bot_message(
    fake: &FakeFeishu,
    home: &TestHome,
    what: &str,
    pred: impl Fn(&fcx_tests::fake_feishu::StoredMessage) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !fake
        .messages()
        .iter()
        .any(|m| m.sender_type == "app" && pred(m))
    {
        assert!(Instant::now() < deadline, "{what}\n{}", home.read_logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn env_with(redelivery: Redelivery) -> Env {
    FeishuEnv::start("markdown", redelivery, &[])
}

fn env() -> Env {
    env_with(Redelivery::fast(
        Duration::from_secs(3),
        Duration::from_millis(500),
        6,
    ))
}

/// The bot's replies, as the fake platform stored them.
trait ReplyHelpers {
    fn replies_to(&self, om: &str) -> Vec<String>;
    fn wait_reply(&self, om: &str, needle: &str) -> String;
}

impl ReplyHelpers for FeishuEnv {
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
    let rt = runtime();
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
    while rt.block_on(home.status()).profiles[0].worker_state().word() != "ready" {
        assert!(Instant::now() < deadline, "the worker never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!home.read_logs().contains("wrong-secret"));
}

#[test]
fn new_group_creates_an_enabled_chat_that_inherits_the_workspace() {
    let e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p10", USER, "/new group fcx team");
    let om = message_id(&ev);
    e.push(&ev);
    let deadline = Instant::now() + WAIT;
    let chat = loop {
        if let Some(c) = e.fake.chats().into_iter().next() {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "no group created; replies: {:?}\n{}",
            e.replies_to(&om),
            e.home.read_logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // A welcome lands in the new group, and it is enabled for a mention.
    let deadline = Instant::now() + WAIT;
    while !e
        .fake
        .messages()
        .iter()
        .any(|m| m.sender_type == "app" && m.chat_id == chat.chat_id)
    {
        assert!(Instant::now() < deadline, "no welcome in the new group");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ask = e
        .fake
        .events()
        .group_text(&chat.chat_id, USER, "first task", true);
    let om_ask = message_id(&ask);
    e.push(&ask);
    e.wait_reply(&om_ask, "hello from fake codex");
}

#[test]
fn reconnect_command_opens_a_fresh_long_connection() {
    let e = env();
    assert_eq!(e.fake.connects(), 1);
    let ev = e.fake.events().p2p_text("oc_p2p11", USER, "/reconnect");
    e.push(&ev);
    let deadline = Instant::now() + WAIT;
    while e.fake.connects() < 2 {
        assert!(Instant::now() < deadline, "no reconnect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p11", USER, "after /reconnect");
    let om = message_id(&ev);
    e.push(&ev);
    e.wait_reply(&om, "hello from fake codex");
}

mod webhook {
    use super::*;
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    use std::io::{Read as _, Write as _};

    const EK: &str = "encrypt-key-for-tests";
    const VT: &str = "verification-token-for-tests";

    fn encrypt(plain: &[u8]) -> String {
        let k: [u8; 32] = Sha256::digest(EK.as_bytes()).into();
        let iv = [9u8; 16];
        let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&k, &iv).expect("key");
        let mut out = iv.to_vec();
        out.extend(enc.encrypt_padded_vec_mut::<Pkcs7>(plain));
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    fn post(port: u16, body: &str, signed: bool) -> (u16, String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        post_at(port, body, signed, &now.to_string(), "nonce-1")
    }

    fn post_at(port: u16, body: &str, signed: bool, ts: &str, nonce: &str) -> (u16, String) {
        let mut h = Sha256::new();
        h.update(ts.as_bytes());
        h.update(nonce.as_bytes());
        h.update(EK.as_bytes());
        h.update(body.as_bytes());
        let sig = if signed {
            hex::encode(h.finalize())
        } else {
            "0".repeat(64)
        };
        let req = format!(
            "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             X-Lark-Request-Timestamp: {ts}\r\nX-Lark-Request-Nonce: {nonce}\r\nX-Lark-Signature: {sig}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.write_all(req.as_bytes()).expect("write");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    #[test]
    fn signed_encrypted_events_are_answered_and_forgeries_refused() {
        let rt = runtime();
        let fake = rt
            .block_on(FakeFeishu::builder().verification_token(VT).start())
            .expect("fake");
        let home = TestHome::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        std::fs::write(home.root.join("ek"), EK).expect("ek");
        std::fs::write(home.root.join("vt"), VT).expect("vt");
        let cfg = format!(
            "{}[profiles.default.app.webhook]\nlisten = \"127.0.0.1:{port}\"\nencrypt_key = \"file:{}\"\nverification_token = \"file:{}\"\n",
            home.feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER),
            home.root.join("ek").display(),
            home.root.join("vt").display(),
        );
        home.write_config(&cfg);
        let _fcxd = Fcxd::daemon(&home);
        // URL verification, as the console does when the URL is saved.
        let challenge = serde_json::json!({
            "encrypt": encrypt(br#"{"challenge":"ch-42","token":"verification-token-for-tests","type":"url_verification"}"#)
        })
        .to_string();
        let deadline = Instant::now() + WAIT;
        let (status, body) = loop {
            let r = std::panic::catch_unwind(|| post(port, &challenge, false));
            if let Ok(r) = r
                && r.0 != 0
            {
                break r;
            }
            assert!(Instant::now() < deadline, "the webhook never listened");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("ch-42"), "{body}");

        let ev = fake.events().p2p_text("oc_hook1", USER, "over the webhook");
        let om = message_id(&ev);
        let enc = serde_json::json!({"encrypt": encrypt(ev.to_string().as_bytes())}).to_string();
        let (status, _) = post(port, &enc, false);
        assert_eq!(status, 401, "an unsigned event is refused");
        // Correctly signed, but captured long ago: refused as stale.
        let (status, _) = post_at(port, &enc, true, "1700000000", "old-nonce");
        assert_eq!(status, 401, "a stale signed event is refused");
        let (status, body) = post(port, &enc, true);
        assert_eq!(status, 200, "{body}");
        // The fake never saw the user's message (it came by webhook), so the
        // reply falls back to a message in the chat.
        let _ = om;
        wait_bot_message(&fake, &home, "no reply", |m| {
            m.chat_id == "oc_hook1" && m.content.contains("hello from fake codex")
        });
        // The same delivery again: acknowledged, not run twice.
        let (status, _) = post(port, &enc, true);
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(home.fake_records().len(), 1);
        assert_eq!(
            fake.connection_count(),
            0,
            "no long connection in webhook mode"
        );
    }
}

#[test]
fn a_quoted_parent_reaches_the_prompt() {
    let e = env();
    let parent = e
        .fake
        .events()
        .p2p_text("oc_p2p12", USER, "the original question");
    let parent_om = message_id(&parent);
    let f = e.push(&parent);
    e.rt.block_on(e.fake.wait_for_ack(&f, WAIT)).expect("ACK");
    e.wait_reply(&parent_om, "hello from fake codex");
    let quote = e
        .fake
        .events()
        .quote_text("oc_p2p12", "p2p", USER, "and about that?", &parent_om);
    let om = message_id(&quote);
    e.push(&quote);
    e.wait_reply(&om, "hello from fake codex");
    let prompts: Vec<String> = e
        .home
        .fake_records()
        .iter()
        .map(|r| r["prompt"].as_str().unwrap_or("").to_string())
        .collect();
    let last = prompts.last().cloned().unwrap_or_default();
    assert!(last.contains("<quoted_messages-"), "{last}");
    assert!(last.contains("the original question"), "{last}");
}

#[test]
fn a_redelivery_after_an_fcxd_restart_is_still_recognised() {
    let mut e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p13", USER, "once across restarts");
    let om = message_id(&ev);
    let frame = e.push(&ev);
    e.rt.block_on(e.fake.wait_for_ack(&frame, WAIT))
        .expect("ACK");
    e.wait_reply(&om, "hello from fake codex");
    e.fcxd.signal(Signal::SIGTERM);
    assert!(e.fcxd.wait_exit(WAIT).success());
    e.fcxd = Fcxd::daemon(&e.home);
    let deadline = Instant::now() + WAIT;
    while e.fake.connection_count() < 1 {
        assert!(Instant::now() < deadline, "no reconnect after restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    e.rt.block_on(e.fake.push_duplicate(&frame))
        .expect("duplicate after restart");
    let deadline = Instant::now() + WAIT;
    while e
        .fake
        .acks()
        .iter()
        .filter(|a| a.message_id == frame)
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the redelivery was not acknowledged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(e.home.fake_records().len(), 1, "one run");
    assert_eq!(e.replies_to(&om).len(), 1, "one answer");
}

#[test]
fn a_worker_killed_before_it_accepted_leaves_the_event_for_redelivery() {
    let e = env();
    let st = e.rt.block_on(e.home.status());
    let worker = nix::unistd::Pid::from_raw(st.profiles[0].worker_pid as i32);
    nix::sys::signal::kill(worker, Signal::SIGKILL).expect("kill -9");
    let ev = e
        .fake
        .events()
        .p2p_text("oc_p2p14", USER, "while the worker is down");
    let om = message_id(&ev);
    let frame = e.push(&ev);
    e.wait_reply(&om, "hello from fake codex");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(e.home.fake_records().len(), 1, "processed once");
    assert_eq!(e.replies_to(&om).len(), 1);
    assert!(e.fake.acks().iter().any(|a| a.message_id == frame));
}

#[test]
fn the_owner_is_learned_from_the_platform_when_config_names_none() {
    let rt = runtime();
    let fake = rt
        .block_on(FakeFeishu::builder().app_owner(USER).start())
        .expect("fake");
    let home = TestHome::new();
    let cfg = home
        .feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER)
        .replace(&format!("owner = \"{USER}\"\n"), "");
    assert!(!cfg.contains("owner ="), "{cfg}");
    home.write_config(&cfg);
    let _fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("long connection");
    let ev = fake.events().p2p_text("oc_own1", USER, "am I the owner?");
    let om = message_id(&ev);
    rt.block_on(fake.push(&ev)).expect("push");
    wait_bot_message(&fake, &home, "the learned owner got no answer", |m| {
        m.parent_id == om && m.content.contains("hello from fake codex")
    });
}

#[test]
fn a_fragment_stream_that_never_completes_is_dropped_without_an_ack() {
    use fcx_proto::pbbp2::{Frame, Header};
    use prost::Message as _;
    let e = env();
    let ev = e
        .fake
        .events()
        .p2p_text("oc_frag1", USER, "only half of me arrives");
    let payload = ev.to_string().into_bytes();
    let half = payload.len() / 2;
    let h = |k: &str, v: &str| Header {
        key: k.into(),
        value: v.into(),
    };
    // The first of two fragments; the second never comes.
    let frame = Frame {
        seq_id: 77,
        log_id: 77,
        service: 33554678,
        method: 1,
        headers: vec![
            h("type", "event"),
            h("message_id", "frag-never-done"),
            h("sum", "2"),
            h("seq", "0"),
            h("trace_id", "t-frag"),
        ],
        payload: Some(payload[..half].to_vec()),
        ..Default::default()
    };
    e.rt.block_on(e.fake.push_raw_frame(frame.encode_to_vec()))
        .expect("raw fragment");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        e.fake
            .acks()
            .iter()
            .all(|a| a.message_id != "frag-never-done"),
        "an incomplete message must not be acknowledged"
    );
    assert!(e.home.fake_records().is_empty(), "nothing ran");
    // The channel is still healthy.
    let ok = e.fake.events().p2p_text("oc_frag1", USER, "whole message");
    let om = message_id(&ok);
    e.push(&ok);
    e.wait_reply(&om, "hello from fake codex");
}

#[test]
fn a_profile_with_an_unreadable_secret_fails_alone() {
    let rt = runtime();
    let fake = rt.block_on(FakeFeishu::start()).expect("fake");
    let home = TestHome::new();
    let cfg = format!(
        "{}\n[profiles.broken.app]\nbase_url = \"{}\"\napp_id = \"cli_broken\"\napp_secret = \"file:/nonexistent/fcx/secret\"\n[profiles.broken.workspaces]\ndefault = \"{}\"\n",
        home.feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER),
        fake.base_url(),
        home.workspace.display(),
    );
    home.write_config(&cfg);
    let _fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("the good profile connects");
    let deadline = Instant::now() + WAIT;
    loop {
        let st = rt.block_on(home.status());
        let broken = st
            .profiles
            .iter()
            .find(|p| p.name == "broken")
            .expect("listed");
        if broken.channel_state.starts_with("stopped") {
            assert!(
                broken.channel_state.contains("/nonexistent/fcx/secret"),
                "{broken:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken profile never reported: {broken:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The good profile answers as usual.
    let ev = fake.events().p2p_text("oc_good1", USER, "still working?");
    let om = message_id(&ev);
    rt.block_on(fake.push(&ev)).expect("push");
    wait_bot_message(&fake, &home, "the good profile stopped answering", |m| {
        m.parent_id == om && m.content.contains("hello from fake codex")
    });
}
