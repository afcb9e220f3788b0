//! Platform edge cases users hit with other bridges (issue 14).

use std::time::Duration;

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{FEISHU_USER as USER, FeishuEnv, eventually, message_id};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_run_whose_message_was_recalled_answers_in_the_chat_instead() {
    let e = FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    );
    let ev = e
        .fake
        .events()
        .p2p_text("oc_recall", USER, "FAKE:stall then recalled");
    let om = message_id(&ev);
    e.push(&ev);
    eventually(
        WAIT,
        || (!e.home.fake_records().is_empty()).then_some(()),
        || format!("the run never started\n{}", e.home.read_logs()),
    );
    assert!(e.fake.recall(&om), "the fake knows the user's message");
    e.push(&e.fake.events().p2p_text("oc_recall", USER, "/stop"));
    // The run's end cannot reply to the recalled message: it goes to the
    // chat as a new message, once.
    let in_chat = || {
        e.fake
            .messages()
            .into_iter()
            .filter(|m| {
                m.sender_type == "app"
                    && m.chat_id == "oc_recall"
                    && m.parent_id.is_empty()
                    && m.content.contains("stopped")
            })
            .count()
    };
    eventually(
        WAIT,
        || (in_chat() > 0).then_some(()),
        || {
            format!(
                "no end message in the chat: {:?}\n{}",
                e.fake.messages(),
                e.home.read_logs()
            )
        },
    );
    // The platform refused the reply first (that is the path under test).
    assert!(
        e.fake
            .requests()
            .iter()
            .any(|c| c.path.ends_with(&format!("{om}/reply")) && c.response["code"] != 0),
        "no refused reply to the recalled message"
    );
    // Any late duplicate would come with the same lane's next post; the
    // status call below is answered after it.
    e.push(&e.fake.events().p2p_text("oc_recall", USER, "/status"));
    eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .any(|m| m.sender_type == "app" && m.content.contains("workspace-write"))
                .then_some(())
        },
        || "no /status answer".into(),
    );
    assert_eq!(in_chat(), 1, "{:?}", e.fake.messages());
}
