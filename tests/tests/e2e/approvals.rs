//! Approvals as signed cards: the REAL Codex CLI under the app-server runner
//! with `approval = "untrusted"` asks before a command; fcx posts a card
//! with Approve / Approve for session / Deny / Deny with a note signed for
//! the users config `approvers` lets decide (default: the requester, the
//! admins and the owner); the fake platform clicks it the way Feishu
//! reports clicks.

use std::time::Duration;

use fcx_tests::fake_feishu::{CardView, FakeFeishu, Redelivery};
use fcx_tests::harness::{FEISHU_USER as USER, Fcxd, FeishuEnv, TestHome, eventually, message_id};
use fcx_tests::mock_responses::MockResponses;

const WAIT: Duration = Duration::from_secs(60);
const OTHER: &str = "ou_other000000000000000000000000009";
const ADMIN: &str = "ou_admin000000000000000000000000008";

pub(crate) struct Env {
    pub(crate) e: FeishuEnv,
    pub(crate) mock: MockResponses,
}

/// fcxd against the fake platform, running the real codex (app-server,
/// approval = "untrusted") against the mock model; `extra` goes under
/// `[profiles.default.codex]`.
pub(crate) fn env(extra: &str) -> Env {
    env_mode(extra, "card")
}

/// [`env`] with the profile's reply mode.
fn env_mode(extra: &str, reply_mode: &str) -> Env {
    env_codex(
        &format!("runner = \"app-server\"\napproval = \"untrusted\"\n{extra}"),
        reply_mode,
    )
}

/// fcxd against the fake platform, running the real codex against the
/// mock model; `extra` goes under `[profiles.default.codex]` as it is.
pub(crate) fn env_codex(extra: &str, reply_mode: &str) -> Env {
    let (rt, mock) = fcx_tests::real_codex_with_mock();
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
    let mut base = home.real_codex_config(&mock.base_url());
    if extra.contains("app_server_idle_secs") {
        // The test sets its own (kept children).
        base = base.replace(fcx_tests::harness::KEEP_NO_CHILD, "");
    }
    let codex_part = base.replace(
        "[profiles.default.codex]\n",
        &format!("[profiles.default.codex]\n{extra}"),
    );
    home.write_config(&format!(
        "{codex_part}[profiles.default.app]\ntenant = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret = \"file:{}\"\nreply_mode = \"{reply_mode}\"\n[profiles.default.access]\nowner = \"{USER}\"\nadmins = [\"{ADMIN}\"]\nallowed_users = [\"{OTHER}\"]\n",
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
    pub(crate) fn say(&self, text: &str) -> String {
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

    pub(crate) fn click(&self, who: &str, card: &str, label: &str) -> String {
        let ev = self.e.fake.events().click(who, card, label).expect("click");
        self.push_action(&ev)
    }

    /// Pushes a card action; the toast of its ACK.
    fn push_action(&self, ev: &serde_json::Value) -> String {
        let f = self.e.rt.block_on(self.e.fake.push(ev)).expect("push");
        let ack = self
            .e
            .rt
            .block_on(self.e.fake.wait_for_ack(&f, WAIT))
            .expect("ACK");
        ack.data.map(|d| d.to_string()).unwrap_or_default()
    }

    /// Every reply the bot made under `parent`, as text.
    pub(crate) fn replies_under(&self, parent: &str) -> String {
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

    pub(crate) fn wait_reply_under(&self, parent: &str, needle: &str) {
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

    /// Tool results in the model's last request (the thread's whole
    /// history) whose output contains `needle`.
    fn last_request_outputs_with(&self, needle: &str) -> usize {
        self.mock
            .requests()
            .last()
            .and_then(|r| r.body["input"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|i| i["type"] == "function_call_output")
            .filter(|i| i["output"].as_str().is_some_and(|o| o.contains(needle)))
            .count()
    }

    /// Approval cards posted under `parent`.
    fn approval_cards_under(&self, parent: &str) -> usize {
        self.e
            .fake
            .messages()
            .into_iter()
            .filter(|m| {
                m.parent_id == parent
                    && self
                        .e
                        .fake
                        .card_view(&m.message_id)
                        .is_some_and(|v| v.labels().iter().any(|l| l == "Approve"))
            })
            .count()
    }

    /// The outputs codex sent back to the model for its tool calls.
    pub(crate) fn tool_outputs(&self) -> String {
        self.mock
            .requests()
            .iter()
            .flat_map(|r| r.body["input"].as_array().cloned().unwrap_or_default())
            .filter(|i| i["type"] == "function_call_output")
            .filter_map(|i| i["output"].as_str().map(str::to_string))
            .collect()
    }

    pub(crate) fn wait_tool_output(&self, needle: &str) {
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

impl Env {
    /// `who` writes `text` in their own private chat `chat`.
    pub(crate) fn say_as(&self, chat: &str, who: &str, text: &str) -> String {
        let ev = self.e.fake.events().p2p_text(chat, who, text);
        let om = message_id(&ev);
        self.e.push(&ev);
        om
    }

    /// The run card under `parent` (message id, CardKit entity id), once
    /// sent.
    pub(crate) fn run_card(&self, parent: &str) -> (String, String) {
        eventually(
            WAIT,
            || {
                self.e
                    .fake
                    .messages()
                    .into_iter()
                    .filter(|m| m.sender_type == "app" && m.parent_id == parent)
                    .find_map(|m| Some((m.message_id, m.card_id?)))
            },
            || format!("no run card under {parent}\n{}", self.e.home.read_logs()),
        )
    }

    pub(crate) fn card_json(&self, card_id: &str) -> String {
        self.e
            .fake
            .card(card_id)
            .map(|c| c.json.to_string())
            .unwrap_or_default()
    }

    /// Waits until the card shows `needle` (`done`: and has stopped
    /// streaming, i.e. is final).
    pub(crate) fn wait_card(&self, card_id: &str, needle: &str, done: bool) {
        eventually(
            WAIT,
            || {
                self.e
                    .fake
                    .card(card_id)
                    .filter(|c| (!done || !c.streaming_mode) && c.json.to_string().contains(needle))
                    .map(|_| ())
            },
            || {
                format!(
                    "the card never showed {needle:?}: {}\n{}",
                    self.card_json(card_id),
                    self.e.home.read_logs()
                )
            },
        )
    }

    /// Every text the model was sent (inputs of every request), as one string.
    fn model_inputs(&self) -> String {
        self.mock
            .requests()
            .iter()
            .map(|r| r.body["input"].to_string())
            .collect()
    }
}

#[test]
fn an_admin_may_decide_for_the_requester_under_the_default_approvers() {
    let env = env("");
    let om = env.say("RUN: touch approved-by-admin.txt && echo touched-by-admin");
    let (card, _) = env.approval_card(&om);
    // The run card says what it waits for.
    let (_, run_card) = env.run_card(&om);
    env.wait_card(&run_card, "Waiting for approval", false);
    let toast = env.click(ADMIN, &card, "Approve");
    assert!(toast.contains("info"), "{toast}");
    env.wait_tool_output("touched-by-admin");
    env.wait_reply_under(&card, "Approved by");
    assert!(env.e.home.workspace.join("approved-by-admin.txt").exists());
    // Decided: the run card no longer waits.
    env.wait_card(&run_card, "Done", true);
    assert!(
        !env.card_json(&run_card).contains("Waiting for approval"),
        "{}",
        env.card_json(&run_card)
    );
    let logs = env.e.home.read_logs();
    assert!(
        logs.contains("approval decided") && logs.contains(ADMIN),
        "the decision is logged with who: {logs}"
    );
    drop(env);
}

#[test]
fn with_approvers_actor_an_admin_is_refused_and_the_requester_decides() {
    let env = env("approvers = \"actor\"\n");
    let om = env.say("RUN: touch actor-only.txt && echo never-printed");
    let (card, _) = env.approval_card(&om);
    let toast = env.click(ADMIN, &card, "Approve");
    assert!(toast.contains("warning"), "{toast}");
    let toast = env.click(OTHER, &card, "Approve");
    assert!(toast.contains("warning"), "{toast}");
    assert!(!env.replies_under(&card).contains("Approved by"));
    let toast = env.click(USER, &card, "Deny");
    assert!(toast.contains("info"), "{toast}");
    env.wait_reply_under(&card, "Denied by");
    env.wait_tool_output("rejected");
    assert!(!env.e.home.workspace.join("actor-only.txt").exists());
    drop(env);
}

#[test]
fn deny_with_a_note_gives_codex_the_reason_in_the_same_turn() {
    let env = env("");
    let om = env.say("RUN: touch noted.txt && echo never-printed");
    let (card, _) = env.approval_card(&om);
    let note = "not there; write it under scratch-zq7 instead";
    let ev = env
        .e
        .fake
        .events()
        .submit_form(
            USER,
            &card,
            "Deny with a note",
            &[("note", serde_json::json!(note))],
        )
        .expect("submit");
    let toast = env.push_action(&ev);
    assert!(toast.contains("info"), "{toast}");
    env.wait_reply_under(&card, "Denied by");
    env.wait_tool_output("rejected");
    // The note reached the model with the refusal.
    eventually(
        WAIT,
        || env.model_inputs().contains("scratch-zq7").then_some(()),
        || {
            format!(
                "the note never reached the model: {}\n{}",
                env.model_inputs(),
                env.e.home.read_logs()
            )
        },
    );
    assert!(env.replies_under(&card).contains("With the note"));
    assert!(!env.e.home.workspace.join("noted.txt").exists());
    drop(env);
}

#[test]
fn stop_while_waiting_declines_the_request_and_interrupts_the_turn() {
    let env = env("");
    let om = env.say("RUN: touch stopped-while-waiting.txt && echo never-printed");
    let (card, _) = env.approval_card(&om);
    let (_, run_card) = env.run_card(&om);
    env.wait_card(&run_card, "Waiting for approval", false);
    env.say("/stop");
    env.wait_card(&run_card, "Interrupted", true);
    assert!(
        !env.card_json(&run_card).contains("Waiting for approval"),
        "{}",
        env.card_json(&run_card)
    );
    let logs = env.e.home.read_logs();
    assert!(
        logs.contains("declining its approval request"),
        "the request was declined before the interrupt: {logs}"
    );
    // The card's buttons no longer decide anything.
    env.click(USER, &card, "Approve");
    env.wait_reply_under(&card, "no longer waiting");
    assert!(
        !env.e
            .home
            .workspace
            .join("stopped-while-waiting.txt")
            .exists()
    );
    drop(env);
}

#[test]
fn approve_for_session_is_not_asked_again_for_the_same_command() {
    let env = env("");
    // The mock runs it, then the same command once more in the same turn.
    let om = env.say("RUN_TWICE: touch session-ok.txt && echo session-approved");
    let (card, _) = env.approval_card(&om);
    let toast = env.click(USER, &card, "Approve for session");
    assert!(toast.contains("info"), "{toast}");
    env.wait_reply_under(&card, "Approved for this session by");
    let (_, run_card) = env.run_card(&om);
    env.wait_card(&run_card, "Done", true);
    // The model's last request holds both results.
    let ran = env.last_request_outputs_with("session-approved");
    assert_eq!(ran, 2, "both ran: {}", env.tool_outputs());
    let cards = env.approval_cards_under(&om);
    assert_eq!(cards, 1, "asked once: {}", env.replies_under(&om));
    drop(env);
}

#[test]
fn approve_for_session_lasts_into_the_chats_next_run_on_its_kept_child() {
    // Codex keeps "approved for this session" per thread, in the process:
    // the chat's next run continues that thread in the same kept child.
    let env = env("app_server_idle_secs = 600\n");
    let cmd = "RUN: touch kept-session.txt && echo kept-session-approved";
    let om = env.say(cmd);
    let (card, _) = env.approval_card(&om);
    let toast = env.click(USER, &card, "Approve for session");
    assert!(toast.contains("info"), "{toast}");
    env.wait_reply_under(&card, "Approved for this session by");
    let (_, run_card) = env.run_card(&om);
    env.wait_card(&run_card, "Done", true);

    let om2 = env.say(cmd);
    let (_, run_card2) = env.run_card(&om2);
    env.wait_card(&run_card2, "Done", true);
    // The model's last request holds the thread's history: both results.
    let ran = env.last_request_outputs_with("kept-session-approved");
    assert_eq!(ran, 2, "it ran in both runs: {}", env.tool_outputs());
    let asked = |parent: &str| env.approval_cards_under(parent);
    assert_eq!(asked(&om), 1, "asked in the first run");
    assert_eq!(
        asked(&om2),
        0,
        "not asked again: {}",
        env.replies_under(&om2)
    );
    // Both turns on one thread.
    let threads: std::collections::HashSet<String> = env
        .mock
        .requests()
        .iter()
        .filter_map(|r| r.header("thread-id").map(str::to_owned))
        .collect();
    assert_eq!(threads.len(), 1, "{threads:?}");
    drop(env);
}

#[test]
fn a_pending_approval_stays_actionable_across_a_gateway_restart() {
    let mut env = env("");
    let om = env.say("RUN: touch after-restart.txt && echo approved-after-restart");
    let (card, _) = env.approval_card(&om);
    // fcxd dies and comes back; the worker (and the waiting turn) live on.
    env.e.fcxd.kill9();
    env.e.fcxd = fcx_tests::harness::Fcxd::daemon(&env.e.home);
    env.e
        .rt
        .block_on(env.e.fake.wait_for_connections(1, WAIT))
        .expect("the new fcxd opens the long connection");
    // The card the old fcxd posted still decides (its token says where it
    // belongs); a click by someone else is still refused.
    let toast = env.click(OTHER, &card, "Approve");
    assert!(toast.contains("warning"), "{toast}");
    let toast = env.click(USER, &card, "Approve");
    assert!(toast.contains("info"), "{toast}");
    env.wait_tool_output("approved-after-restart");
    env.wait_reply_under(&card, "Approved by");
    assert!(env.e.home.workspace.join("after-restart.txt").exists());
    drop(env);
}

#[test]
fn a_request_whose_card_cannot_be_posted_is_declined_and_the_run_says_so() {
    // Markdown mode: nothing replies to the message before the approval
    // card (the run shows a reaction), so the one refused reply is the card.
    let env = env_mode("", "markdown");
    let ev = env.e.fake.events().p2p_text(
        "oc_ap1",
        USER,
        "RUN: touch never-asked.txt && echo never-printed",
    );
    let om = message_id(&ev);
    env.e
        .fake
        .fail_next_code(&format!("/open-apis/im/v1/messages/{om}/reply"), 1, 230_002);
    env.e.push(&ev);
    // Codex was told no, and the turn went on.
    env.wait_tool_output("rejected");
    let said = || {
        super::app_server::events(&env.e.home)
            .into_iter()
            .filter_map(|e| match e.kind {
                Some(fcx_proto::v1::worker_event::Kind::Error(r)) => Some(r.message),
                _ => None,
            })
            .find(|m| m.contains("could not be posted"))
    };
    eventually(WAIT, said, || {
        format!("the run never said so\n{}", env.e.home.read_logs())
    });
    env.wait_reply_under(&om, "could not be posted");
    assert!(!env.e.home.workspace.join("never-asked.txt").exists());
    let logs = env.e.home.read_logs();
    assert!(logs.contains("undeliverable"), "{logs}");
    drop(env);
}
