//! Approvals as signed cards: the REAL Codex CLI under the app-server runner
//! with `approval = "untrusted"` asks before a command; fcx posts a card
//! with Approve / Approve for session / Deny signed for the user who started
//! the run; the fake platform clicks it the way Feishu reports clicks.

use std::time::Duration;

use fcx_tests::fake_feishu::{CardView, FakeFeishu, Redelivery};
use fcx_tests::harness::{FEISHU_USER as USER, Fcxd, FeishuEnv, TestHome, eventually, message_id};
use fcx_tests::mock_responses::MockResponses;

const WAIT: Duration = Duration::from_secs(60);
const OTHER: &str = "ou_other000000000000000000000000009";

struct Env {
    e: FeishuEnv,
    mock: MockResponses,
}

/// fcxd against the fake platform, running the real codex (app-server,
/// approval = "untrusted") against the mock model; `extra` goes under
/// `[profiles.default.codex]`.
fn env(extra: &str) -> Env {
    let codex = fcx_tests::real_codex();
    assert!(codex.is_file());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mock = rt.block_on(MockResponses::start()).expect("mock server");
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
        .expect("fake platform");
    let home = TestHome::new();
    let secret = home.root.join("app-secret");
    std::fs::write(&secret, format!("{}\n", fake.app_secret())).expect("app secret");
    let codex_part = home.real_codex_config(&mock.base_url()).replace(
        "[profiles.default.codex]\n",
        &format!(
            "[profiles.default.codex]\nrunner = \"app-server\"\napproval = \"untrusted\"\n{extra}"
        ),
    );
    home.write_config(&format!(
        "{codex_part}[profiles.default.app]\ntenant = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret = \"file:{}\"\nreply_mode = \"card\"\n[profiles.default.access]\nowner = \"{USER}\"\nallowed_users = [\"{OTHER}\"]\n",
        fake.base_url(),
        fake.app_id(),
        secret.display(),
    ));
    let fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("fcxd opens the long connection");
    Env {
        e: FeishuEnv {
            fcxd,
            fake,
            rt,
            home,
        },
        mock,
    }
}

impl Env {
    fn say(&self, text: &str) -> String {
        let ev = self.e.fake.events().p2p_text("oc_ap1", USER, text);
        let om = message_id(&ev);
        self.e.push(&ev);
        om
    }

    /// The approval card under `parent`, once posted.
    fn approval_card(&self, parent: &str) -> (String, CardView) {
        eventually(
            WAIT,
            || {
                self.e
                    .fake
                    .messages()
                    .into_iter()
                    .filter(|m| {
                        m.sender_type == "app"
                            && m.parent_id == parent
                            && m.msg_type == "interactive"
                    })
                    .find_map(|m| {
                        let v = self.e.fake.card_view(&m.message_id)?;
                        v.labels()
                            .iter()
                            .any(|l| l == "Approve")
                            .then_some((m.message_id, v))
                    })
            },
            || {
                format!(
                    "no approval card under {parent}\n{}",
                    self.e.home.read_logs()
                )
            },
        )
    }

    fn click(&self, who: &str, card: &str, label: &str) -> String {
        let ev = self.e.fake.events().click(who, card, label).expect("click");
        let f = self.e.rt.block_on(self.e.fake.push(&ev)).expect("push");
        let ack = self
            .e
            .rt
            .block_on(self.e.fake.wait_for_ack(&f, WAIT))
            .expect("ACK");
        ack.data.map(|d| d.to_string()).unwrap_or_default()
    }

    /// Every reply the bot made under `parent`, as text.
    fn replies_under(&self, parent: &str) -> String {
        self.e
            .fake
            .messages()
            .into_iter()
            .filter(|m| m.sender_type == "app" && m.parent_id == parent)
            .map(|m| {
                let card = self
                    .e
                    .fake
                    .card_view(&m.message_id)
                    .and_then(|v| v.title)
                    .unwrap_or_default();
                format!("{card} {}", m.content)
            })
            .collect()
    }

    fn wait_reply_under(&self, parent: &str, needle: &str) {
        eventually(
            WAIT,
            || self.replies_under(parent).contains(needle).then_some(()),
            || {
                format!(
                    "no {needle:?} under {parent}: {}\n{}",
                    self.replies_under(parent),
                    self.e.home.read_logs()
                )
            },
        )
    }

    /// The outputs codex sent back to the model for its tool calls.
    fn tool_outputs(&self) -> String {
        self.mock
            .requests()
            .iter()
            .flat_map(|r| r.body["input"].as_array().cloned().unwrap_or_default())
            .filter(|i| i["type"] == "function_call_output")
            .filter_map(|i| i["output"].as_str().map(str::to_string))
            .collect()
    }

    fn wait_tool_output(&self, needle: &str) {
        eventually(
            WAIT,
            || self.tool_outputs().contains(needle).then_some(()),
            || {
                format!(
                    "codex never reported {needle:?}: {}\n{}",
                    self.tool_outputs(),
                    self.e.home.read_logs()
                )
            },
        )
    }
}

#[test]
fn approve_runs_the_command_and_only_the_requester_may_decide() {
    let env = env("");
    let om = env.say("RUN: touch approved-by-card.txt && echo touched-by-card");
    let (card, view) = env.approval_card(&om);
    let labels = view.labels();
    for l in ["Approve", "Approve for session", "Deny"] {
        assert!(labels.iter().any(|x| x == l), "{l} missing: {labels:?}");
    }
    let shown = env
        .e
        .fake
        .messages()
        .into_iter()
        .find(|m| m.message_id == card)
        .map(|m| m.content)
        .unwrap_or_default();
    assert!(shown.contains("approved-by-card.txt"), "{shown}");
    assert!(!env.e.home.workspace.join("approved-by-card.txt").exists());

    // Another user of the chat: refused by the signed card, nothing decided.
    let toast = env.click(OTHER, &card, "Approve");
    assert!(toast.contains("warning"), "{toast}");
    assert!(!env.e.home.workspace.join("approved-by-card.txt").exists());

    let toast = env.click(USER, &card, "Approve");
    assert!(toast.contains("info"), "{toast}");
    env.wait_tool_output("touched-by-card");
    env.wait_reply_under(&card, "Approved by");
    assert!(env.e.home.workspace.join("approved-by-card.txt").exists());
    // The same card again: the request is no longer waiting.
    env.click(USER, &card, "Deny");
    env.wait_reply_under(&card, "no longer waiting");
    assert!(!env.replies_under(&card).contains("Denied by"));
    drop(env);
}

#[test]
fn deny_tells_codex_and_the_command_never_runs() {
    let env = env("");
    let om = env.say("RUN: touch denied-by-card.txt && echo never-printed");
    let (card, _) = env.approval_card(&om);
    let toast = env.click(USER, &card, "Deny");
    assert!(toast.contains("info"), "{toast}");
    env.wait_reply_under(&card, "Denied by");
    // Codex got the refusal back as the tool's result and the turn went on.
    env.wait_tool_output("rejected");
    assert!(!env.tool_outputs().contains("never-printed"));
    assert!(!env.e.home.workspace.join("denied-by-card.txt").exists());
    drop(env);
}

#[test]
fn a_request_nobody_decides_is_denied_at_the_timeout() {
    let env = env("approval_timeout_secs = 1\n");
    let om = env.say("RUN: touch timed-out.txt && echo never-printed");
    let (_card, _) = env.approval_card(&om);
    env.wait_reply_under(&om, "Denied: no decision within 1 min");
    env.wait_tool_output("rejected");
    assert!(!env.e.home.workspace.join("timed-out.txt").exists());
    drop(env);
}
