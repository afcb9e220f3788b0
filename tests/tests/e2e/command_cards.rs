//! Command cards against the fake platform: `/help`, `/status` and
//! `/config` as cards, their buttons and form clicked the way the platform
//! reports clicks, and every refusal (replayed, wrong person, stale card,
//! retired key).

use std::time::Duration;

use fcx_tests::fake_feishu::{CardView, Redelivery};
use fcx_tests::harness::{FEISHU_USER as USER, FeishuEnv, eventually, message_id};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const OTHER: &str = "ou_other000000000000000000000000009";

fn env() -> FeishuEnv {
    FeishuEnv::start(
        "card",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    )
}

trait CommandCards {
    /// Sends `text` in private chat `chat`; returns the message id.
    fn say(&self, chat: &str, text: &str) -> String;
    /// The `n`-th (0-based) interactive reply to `parent`, once it exists:
    /// its message id and what it shows.
    fn card_reply(&self, parent: &str, n: usize) -> (String, CardView);
    /// Pushes a click event; returns the ACK's toast text.
    fn click(&self, event: &Value) -> String;
    /// Post replies to `parent`, concatenated.
    fn posts_under(&self, parent: &str) -> String;
    /// Waits until the post replies to `parent` contain every one of
    /// `needles`.
    fn wait_posts_under(&self, parent: &str, needles: &[&str]);
}

impl CommandCards for FeishuEnv {
    fn say(&self, chat: &str, text: &str) -> String {
        let ev = self.fake.events().p2p_text(chat, USER, text);
        let om = message_id(&ev);
        self.rt.block_on(self.fake.push(&ev)).expect("push");
        om
    }

    fn card_reply(&self, parent: &str, n: usize) -> (String, CardView) {
        eventually(
            WAIT,
            || {
                let id = self
                    .fake
                    .messages()
                    .into_iter()
                    .filter(|m| {
                        m.sender_type == "app"
                            && m.parent_id == parent
                            && m.msg_type == "interactive"
                    })
                    .nth(n)?
                    .message_id;
                let view = self.fake.card_view(&id)?;
                Some((id, view))
            },
            || format!("no card #{n} under {parent}\n{}", self.home.read_logs()),
        )
    }

    fn click(&self, event: &Value) -> String {
        let f = self.rt.block_on(self.fake.push(event)).expect("push");
        let ack = self
            .rt
            .block_on(self.fake.wait_for_ack(&f, WAIT))
            .expect("ACK");
        ack.data.map(|d| d.to_string()).unwrap_or_default()
    }

    fn wait_posts_under(&self, parent: &str, needles: &[&str]) {
        eventually(
            WAIT,
            || {
                let posts = self.posts_under(parent);
                needles.iter().all(|n| posts.contains(n)).then_some(())
            },
            || {
                format!(
                    "no post with {needles:?} under {parent}: {}\n{}",
                    self.posts_under(parent),
                    self.home.read_logs()
                )
            },
        )
    }

    fn posts_under(&self, parent: &str) -> String {
        self.fake
            .messages()
            .into_iter()
            .filter(|m| m.sender_type == "app" && m.parent_id == parent && m.msg_type == "post")
            .map(|m| m.content)
            .collect()
    }
}

#[test]
fn help_is_a_card_whose_buttons_run_commands_once_for_its_requester() {
    let e = env();
    let help = e.say("oc_k1", "/help");
    let (card, view) = e.card_reply(&help, 0);
    let labels = view.labels();
    // The owner may use everything a button fits.
    for l in ["Status", "New session", "Sessions", "Config", "Workspaces"] {
        assert!(labels.iter().any(|x| x == l), "{l} missing from {labels:?}");
    }
    assert!(
        view.title
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .contains("help")
            || view.title.as_deref().unwrap_or("").contains("command"),
        "{:?}",
        view.title
    );

    // Someone else clicking the requester's card: refused, nothing runs.
    let by_other = e
        .fake
        .events()
        .click(OTHER, &card, "Status")
        .expect("click");
    assert!(e.click(&by_other).contains("warning"));

    // The requester's click: acknowledged at once; the /status card follows
    // under the help card.
    let status_click = e.fake.events().click(USER, &card, "Status").expect("click");
    let toast = e.click(&status_click);
    assert!(toast.contains("info"), "{toast}");
    let (_, status) = e.card_reply(&card, 0);
    let title = status.title.clone().unwrap_or_default();
    assert!(title.to_lowercase().contains("status"), "{title}");
    let logs_and_cards = format!(
        "{}{}",
        e.fake
            .messages()
            .iter()
            .map(|m| m.content.clone())
            .collect::<String>(),
        e.home.read_logs()
    );
    assert!(
        !logs_and_cards.contains("sk-fake-test-secret"),
        "a secret reached a card or a log"
    );
    assert!(
        e.fake
            .card_view(&e.card_reply(&card, 0).0)
            .map(|v| v.labels())
            .unwrap_or_default()
            .iter()
            .any(|l| l == "New session"),
        "the status card offers a new session"
    );

    // The same click again: one use per button.
    let toast = e.click(&status_click);
    assert!(toast.contains("already used"), "{toast}");
    std::thread::sleep(Duration::from_millis(300));
    let statuses = e
        .fake
        .messages()
        .iter()
        .filter(|m| m.parent_id == card && m.sender_type == "app")
        .count();
    assert_eq!(statuses, 1, "a replayed click ran the command again");
}

#[test]
fn the_config_form_changes_how_the_chat_is_answered() {
    let e = env();
    let cfg = e.say("oc_k2", "/config");
    let (card, view) = e.card_reply(&cfg, 0);
    let mode = view
        .fields
        .iter()
        .find(|f| f.name.as_deref() == Some("reply_mode"))
        .unwrap_or_else(|| panic!("no reply mode field: {:?}", view.fields));
    let values: Vec<&str> = mode.options.iter().map(|o| o.value.as_str()).collect();
    assert_eq!(values, ["card", "markdown", "text"]);
    let access = view
        .fields
        .iter()
        .find(|f| f.name.as_deref() == Some("access"))
        .expect("access field");
    // The profile's maximum is `workspace`: nothing above it is offered.
    assert!(
        !access.options.iter().any(|o| o.value == "full"),
        "{:?}",
        access.options
    );

    // A value the form does not offer is refused by the platform's client.
    assert!(
        e.fake
            .events()
            .submit_form(USER, &card, "Apply", &[("access", json!("full"))])
            .is_err()
    );
    let submit = e
        .fake
        .events()
        .submit_form(
            USER,
            &card,
            "Apply",
            &[
                ("reply_mode", json!("markdown")),
                ("tool_display", json!("summary")),
            ],
        )
        .expect("submit");
    assert!(e.click(&submit).contains("info"));
    // The answer already follows the new mode: a markdown message under
    // the form, saying what changed.
    e.wait_posts_under(&card, &["reply mode", "markdown"]);

    // The chat now gets markdown answers, no run card.
    let q = e.say("oc_k2", "hello");
    e.wait_posts_under(&q, &["hello from fake codex"]);
    assert!(
        !e.fake
            .messages()
            .iter()
            .any(|m| m.parent_id == q && m.card_id.is_some()),
        "a run card was still sent"
    );
    // The submitted form cannot be submitted twice.
    assert!(e.click(&submit).contains("already used"));
}

#[test]
fn a_card_made_before_the_access_changed_is_refused_with_a_reason() {
    let e = env();
    let help = e.say("oc_k3", "/help");
    let (card, _) = e.card_reply(&help, 0);
    // Changing the access mode changes the scope's policy fingerprint.
    let change = e.say("oc_k3", "/config access read-only");
    eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .iter()
                .any(|m| m.parent_id == change)
                .then_some(())
        },
        || "no answer to /config access".to_string(),
    );
    let click = e.fake.events().click(USER, &card, "Status").expect("click");
    e.click(&click);
    // Answered under the card with the reason; nothing ran.
    let (_, answer) = e.card_reply(&card, 0);
    let title = answer.title.unwrap_or_default();
    assert!(title.contains("out of date"), "{title:?}");
    std::thread::sleep(Duration::from_millis(300));
    let replies = e
        .fake
        .messages()
        .iter()
        .filter(|m| m.parent_id == card && m.sender_type == "app")
        .count();
    assert_eq!(replies, 1, "the refusal is said once and nothing else ran");
}

#[test]
fn a_rotated_key_keeps_old_buttons_working_until_it_is_retired() {
    let e = env();
    let help = e.say("oc_k4", "/help");
    let (card, _) = e.card_reply(&help, 0);
    let keys = e.home.home.join("profiles/default/callback-keys.json");
    let read = |p: &std::path::Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(p).expect("key file")).expect("json")
    };
    assert_eq!(read(&keys)["current"], 1);
    fcxctl(&e, &["keys", "rotate", "--profile", "default"]);
    assert_eq!(read(&keys)["current"], 2);
    // Signed with version 1, still accepted.
    let status = e.fake.events().click(USER, &card, "Status").expect("click");
    assert!(e.click(&status).contains("info"));
    e.card_reply(&card, 0);
    // Version 1 retired: the card's other buttons stop working at once.
    fcxctl(&e, &["keys", "retire", "1", "--profile", "default"]);
    // The gateway looks at the key file at most once a second.
    std::thread::sleep(Duration::from_millis(1100));
    let sessions = e
        .fake
        .events()
        .click(USER, &card, "Sessions")
        .expect("click");
    assert!(e.click(&sessions).contains("warning"));
    // New cards are signed with version 2 and work.
    let help2 = e.say("oc_k4", "/help");
    let (card2, _) = e.card_reply(&help2, 0);
    let s2 = e
        .fake
        .events()
        .click(USER, &card2, "Status")
        .expect("click");
    assert!(e.click(&s2).contains("info"));
    e.card_reply(&card2, 0);
}

/// Runs fcxctl on the environment's home; it must succeed.
fn fcxctl(e: &FeishuEnv, args: &[&str]) {
    let out = std::process::Command::new(fcx_tests::harness::bin("fcxctl"))
        .env("FCX_HOME", &e.home.home)
        .args(args)
        .output()
        .expect("run fcxctl");
    assert!(
        out.status.success(),
        "fcxctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn buttons_outlive_an_fcxd_restart_and_a_form_submit_without_its_value_still_applies() {
    let mut e = env();
    let help = e.say("oc_k5", "/help");
    let (card, _) = e.card_reply(&help, 0);
    let cfg = e.say("oc_k5", "/config");
    let (form_card, _) = e.card_reply(&cfg, 0);
    // fcxd learns the form's token from the platform's answer to the send,
    // a moment after the fake shows the card. The chat's next answer comes
    // after that (one chat's answers go out in order).
    let after = e.say("oc_k5", "/help");
    e.card_reply(&after, 0);

    // A form submit the way a client may send it: the fields, the submit
    // button's name, but no callback value.
    let submit = e.fake.events().action_event(
        USER,
        &form_card,
        "oc_k5",
        json!({"tag": "button", "name": "fcx_apply", "form_value": {"tool_display": "off"}}),
    );
    let applied = e.click(&submit);
    assert!(
        applied.contains("info"),
        "{applied}\n{}",
        e.home.read_logs()
    );
    let title = e.card_reply(&form_card, 0).1.title.unwrap_or_default();
    assert!(title.contains("tool calls → off"), "{title:?}");

    let connects = e.fake.connects();
    e.fcxd.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(e.fcxd.wait_exit(WAIT).success());
    e.fcxd = fcx_tests::harness::Fcxd::daemon(&e.home);
    // The new fcxd's own connection (the old one may not be closed on the
    // fake's side yet), and its worker: a click before the worker is up is
    // answered "fcx is restarting", rightly.
    eventually(
        WAIT,
        || (e.fake.connects() > connects).then_some(()),
        || "no reconnect after restart".to_string(),
    );
    e.wait_worker_ready();
    // The help card was sent by the fcxd before: its buttons still work,
    // and only for its requester in its own chat.
    let other = e
        .fake
        .events()
        .click(OTHER, &card, "Status")
        .expect("click");
    let refused = e.click(&other);
    assert!(
        refused.contains("warning") && !refused.contains("restarting"),
        "{refused}"
    );
    let status = e.fake.events().click(USER, &card, "Status").expect("click");
    assert!(e.click(&status).contains("info"), "{}", e.home.read_logs());
    e.card_reply(&card, 0);
}

/// Issue 14 item 3, end to end: a batch of forged clicks on a real card
/// (bad signature, truncated, oversized, wrong person, another card's
/// token, replays) all answered with a warning toast in the ACK, and none
/// reaching the worker: the only reply under the card is the one genuine
/// click's.
#[test]
fn forged_clicks_are_refused_and_never_reach_the_worker() {
    let e = env();
    let help = e.say("oc_k9", "/help");
    let (card, view) = e.card_reply(&help, 0);
    let (other_card, _) = {
        let h2 = e.say("oc_k8", "/help");
        e.card_reply(&h2, 0)
    };
    let value_of = |v: &fcx_tests::fake_feishu::CardView| {
        v.buttons
            .iter()
            .find(|b| b.label == "Status")
            .and_then(|b| b.value.clone())
            .expect("a Status button with a callback value")
    };
    let value = value_of(&view);
    let token = value["fcx"].as_str().expect("token").to_string();
    let other_token = value_of(&e.fake.card_view(&other_card).expect("card"))["fcx"]
        .as_str()
        .expect("token")
        .to_string();
    let with = |t: String| {
        let mut v = value.clone();
        v["fcx"] = json!(t);
        v
    };
    let flip = |i: usize| {
        let mut b = token.clone().into_bytes();
        let at = i % b.len();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).expect("ascii")
    };
    let mut forged: Vec<(&str, Value)> = Vec::new();
    for i in 0..25 {
        let ev = |op: &str, v: Value| e.fake.events().card_action(op, &card, "oc_k9", v, None);
        forged.push(("bad signature", ev(USER, with(flip(7 + i * 13)))));
        forged.push((
            "truncated",
            ev(USER, with(token[..i * token.len() / 25].into())),
        ));
        forged.push((
            "oversized",
            ev(USER, with(format!("{token}{}", "A".repeat(1 + i * 400)))),
        ));
        forged.push(("wrong actor", ev(OTHER, value.clone())));
        forged.push(("another card's token", ev(USER, with(other_token.clone()))));
        forged.push(("garbage", ev(USER, with(format!("{i}.{}", "x".repeat(i))))));
    }
    for (kind, ev) in &forged {
        let toast = e.click(ev);
        assert!(toast.contains("warning"), "{kind}: {toast}");
        assert!(!toast.contains(&token[..16]), "{kind}: {toast}");
    }
    // The control: the genuine click works, once.
    let genuine = e.fake.events().click(USER, &card, "Status").expect("click");
    assert!(e.click(&genuine).contains("info"));
    e.card_reply(&card, 0);
    for _ in 0..25 {
        assert!(e.click(&genuine).contains("already used"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let replies = e
        .fake
        .messages()
        .iter()
        .filter(|m| m.parent_id == card && m.sender_type == "app")
        .count();
    assert_eq!(
        replies,
        1,
        "{} forged clicks: one reached the worker",
        forged.len()
    );
}
