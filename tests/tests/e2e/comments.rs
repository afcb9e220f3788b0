//! Document comments against the fake platform: a comment that mentions
//! the bot (`drive.notice.comment_add_v1`) runs the scripted fake codex and
//! is answered in plain text in the same comment thread; later comments on
//! the same document continue the same Codex thread; whole-document and
//! resolved comments get a new comment; the bot's own comments and comments
//! without a mention are ignored; strangers are refused in one line; long
//! answers stay within the platform's reply limit.

use std::time::Duration;

use fcx_tests::fake_feishu::{COMMENT_REPLY_LIMIT_CHARS, Comment, Redelivery};
use fcx_tests::harness::{FEISHU_USER as USER, Fcxd, FeishuEnv, eventually};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const STRANGER: &str = "ou_stranger000000000000000000000009";

struct Env {
    e: FeishuEnv,
    _scenarios: tempfile::TempDir,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("scenario dir");
    let line = |v: Value| v.to_string();
    let answer = |text: &str| {
        [
            line(serde_json::json!({"thread_started": true})),
            line(serde_json::json!({"turn_started": true})),
            line(serde_json::json!({"emit": {"type": "item.started", "item": {"id": "item_0", "type": "command_execution", "command": "/bin/bash -lc 'cat secret.txt'", "aggregated_output": "", "exit_code": null, "status": "in_progress"}}})),
            line(serde_json::json!({"emit": {"type": "item.completed", "item": {"id": "item_0", "type": "command_execution", "command": "/bin/bash -lc 'cat secret.txt'", "aggregated_output": "TOOL-OUTPUT-NEVER-SHOWN\n", "exit_code": 0, "status": "completed"}}})),
            line(serde_json::json!({"agent_message": text})),
            line(serde_json::json!({"turn_completed": true})),
        ]
        .join("\n")
    };
    let md = "## Short answer\n\nThe cache is **write-through**: see `flush()` and [the notes](https://example.com/notes).\n\n```rust\nfn flush() {}\n```\n\n- first point\n- second point";
    std::fs::write(dir.path().join("md.jsonl"), answer(md)).expect("md scenario");
    let long: String = (0..60)
        .map(|i| format!("line {i:02} {}\n", "z".repeat(40)))
        .collect();
    std::fs::write(dir.path().join("long.jsonl"), answer(&long)).expect("long scenario");
    let huge: String = (0..200)
        .map(|i| format!("row {i:03} {}\n", "q".repeat(60)))
        .collect();
    std::fs::write(dir.path().join("huge.jsonl"), answer(&huge)).expect("huge scenario");
    let scenarios = dir.path().display().to_string();
    let e = FeishuEnv::start(
        "card",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[("FAKE_CODEX_SCENARIOS", scenarios.as_str())],
    );
    Env { e, _scenarios: dir }
}

fn text_of(elements: &Value) -> String {
    elements
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/text_run/text").and_then(Value::as_str))
        .collect()
}

fn comment(e: &FeishuEnv, file: &str, cid: &str) -> Comment {
    e.fake
        .comments(file)
        .into_iter()
        .find(|c| c.comment_id == cid)
        .expect("the comment")
}

/// The bot's replies in comment `cid`, as text.
fn bot_replies(e: &FeishuEnv, file: &str, cid: &str) -> Vec<String> {
    let bot = e.fake.bot_open_id().to_string();
    comment(e, file, cid)
        .replies
        .iter()
        .filter(|r| r.user_id == bot)
        .map(|r| text_of(&r.elements))
        .collect()
}

/// Whole-document comments the bot made on `file`.
fn bot_comments(e: &FeishuEnv, file: &str) -> Vec<Comment> {
    let bot = e.fake.bot_open_id().to_string();
    e.fake
        .comments(file)
        .into_iter()
        .filter(|c| c.user_id == bot)
        .collect()
}

/// Pushes the platform's notice for a mention (or not) and waits for the
/// ACK.
fn notify(e: &FeishuEnv, file: &str, cid: &str, reply: Option<&str>, from: &str, mention: bool) {
    let ev = e
        .fake
        .events()
        .comment_add(file, "docx", cid, reply, from, mention);
    let frame = e.push(&ev);
    let ack =
        e.rt.block_on(e.fake.wait_for_ack(&frame, WAIT))
            .expect("ACK");
    assert_eq!(ack.code, Some(200), "{ack:?}\n{}", e.home.read_logs());
}

fn wait_bot_replies(e: &FeishuEnv, file: &str, cid: &str, n: usize) -> Vec<String> {
    eventually(
        WAIT,
        || Some(bot_replies(e, file, cid)).filter(|r| r.len() >= n),
        || {
            format!(
                "fewer than {n} bot replies in {cid}: {:?}\n{}",
                bot_replies(e, file, cid),
                e.home.read_logs()
            )
        },
    )
}

fn records(e: &FeishuEnv) -> Vec<Value> {
    e.home.fake_records()
}

#[test]
fn a_mention_is_answered_in_its_thread_in_plain_text_and_the_document_keeps_its_thread() {
    let env = env();
    let e = &env.e;
    e.fake.set_doc_title("doxcnDOC1", "Cache design");
    let (cid, _) = e.fake.add_comment_mentioning_bot(
        "doxcnDOC1",
        USER,
        "FAKE:md what does this mean?",
        "the cache is write-through",
        false,
    );
    notify(e, "doxcnDOC1", &cid, None, USER, true);
    let replies = wait_bot_replies(e, "doxcnDOC1", &cid, 1);
    assert_eq!(replies.len(), 1, "{replies:?}");
    let answer = &replies[0];
    for mark in ["##", "**", "`", "](", "```"] {
        assert!(
            !answer.contains(mark),
            "markdown {mark:?} left in {answer:?}"
        );
    }
    assert!(
        answer.contains("write-through") && answer.contains("fn flush() {}"),
        "{answer:?}"
    );
    assert!(!answer.contains("TOOL-OUTPUT-NEVER-SHOWN"), "{answer:?}");
    assert!(!answer.contains("cat secret.txt"), "{answer:?}");
    let recs = records(e);
    assert_eq!(recs.len(), 1);
    let prompt = recs[0]["prompt"].as_str().unwrap_or("");
    for needle in [
        "what does this mean?",
        "the cache is write-through",
        "document: Cache design",
        "chat_type: document comment",
        "plain-text reply",
    ] {
        assert!(prompt.contains(needle), "{needle:?} missing from {prompt}");
    }
    assert!(recs[0]["resume_id"].is_null(), "{:?}", recs[0]["resume_id"]);

    // A second comment on the same document continues its Codex thread; a
    // reply that mentions the bot in the first thread does too, and is
    // answered in that thread.
    let (cid2, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC1", USER, "FAKE:hello and now?", "other", false);
    notify(e, "doxcnDOC1", &cid2, None, USER, true);
    wait_bot_replies(e, "doxcnDOC1", &cid2, 1);
    let rid = e
        .fake
        .add_comment_reply(&cid, USER, "FAKE:hello one more", true);
    notify(e, "doxcnDOC1", &cid, Some(&rid), USER, true);
    // The fake codex plays the first `FAKE:` marker of its prompt: the
    // quoted question, so the same answer again. Not taken for a replay of
    // the first one: it answers a later question.
    let replies = wait_bot_replies(e, "doxcnDOC1", &cid, 2);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0], replies[1]);
    let recs = records(e);
    assert_eq!(recs.len(), 3);
    let resumed: Vec<&str> = recs[1..]
        .iter()
        .map(|r| r["resume_id"].as_str().unwrap_or(""))
        .collect();
    assert!(
        !resumed[0].is_empty() && resumed[0] == resumed[1],
        "both later runs resume the document's thread: {resumed:?}"
    );
    // The thread-reply run saw the earlier exchange in its thread.
    let p3 = recs[2]["prompt"].as_str().unwrap_or("");
    assert!(
        p3.contains("what does this mean?") && p3.contains("one more"),
        "{p3}"
    );

    // Another document starts its own thread.
    let (cid3, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC2", USER, "FAKE:hello elsewhere", "x", false);
    notify(e, "doxcnDOC2", &cid3, None, USER, true);
    wait_bot_replies(e, "doxcnDOC2", &cid3, 1);
    let recs = records(e);
    assert_eq!(recs.len(), 4);
    assert!(recs[3]["resume_id"].is_null(), "{:?}", recs[3]["resume_id"]);
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
}

#[test]
fn resolved_and_whole_document_comments_get_a_new_comment() {
    let env = env();
    let e = &env.e;
    // Resolved after the mention: the reply is refused (1069302).
    let (cid, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC3", USER, "FAKE:hello resolved", "q", false);
    e.fake.solve_comment(&cid);
    notify(e, "doxcnDOC3", &cid, None, USER, true);
    let made = eventually(
        WAIT,
        || Some(bot_comments(e, "doxcnDOC3")).filter(|c| !c.is_empty()),
        || format!("no new comment\n{}", e.home.read_logs()),
    );
    assert_eq!(made.len(), 1);
    assert!(made[0].is_whole);
    let els = &made[0].replies[0].elements;
    assert_eq!(
        els[0]["person"]["user_id"], USER,
        "the asker is mentioned: {els}"
    );
    assert!(text_of(els).contains("hello from fake codex"), "{els}");
    assert!(bot_replies(e, "doxcnDOC3", &cid).is_empty());

    // A whole-document comment: answered with a new one, never a reply.
    let (wid, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC4", USER, "FAKE:hello whole", "", true);
    notify(e, "doxcnDOC4", &wid, None, USER, true);
    eventually(
        WAIT,
        || Some(bot_comments(e, "doxcnDOC4")).filter(|c| !c.is_empty()),
        || {
            format!(
                "no new comment for the whole-document one\n{}",
                e.home.read_logs()
            )
        },
    );
    assert!(bot_replies(e, "doxcnDOC4", &wid).is_empty());
    let tried_reply = e
        .fake
        .requests()
        .into_iter()
        .any(|r| r.method == "POST" && r.path.contains(&format!("{wid}/replies")));
    assert!(
        !tried_reply,
        "no reply is attempted on a whole-document comment"
    );
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
}

#[test]
fn own_and_unmentioned_comments_are_ignored_and_strangers_are_refused_in_one_line() {
    let env = env();
    let e = &env.e;
    let bot = e.fake.bot_open_id().to_string();
    let (own, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC5", &bot, "FAKE:hello self", "q", false);
    notify(e, "doxcnDOC5", &own, None, &bot, true);
    let (quiet, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC5", USER, "FAKE:hello quiet", "q", false);
    notify(e, "doxcnDOC5", &quiet, None, USER, false);
    let (stranger, _) = e.fake.add_comment_mentioning_bot(
        "doxcnDOC5",
        STRANGER,
        "FAKE:hello let me in",
        "q",
        false,
    );
    notify(e, "doxcnDOC5", &stranger, None, STRANGER, true);
    let refusal = wait_bot_replies(e, "doxcnDOC5", &stranger, 1);
    assert!(refusal[0].contains("not allowed"), "{refusal:?}");
    assert!(
        refusal[0].len() < 200 && !refusal[0].contains('\n'),
        "{refusal:?}"
    );
    // A mention by the owner after them is answered: the ignored ones were
    // handled before it, and none of them ran.
    let (ok, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC5", USER, "FAKE:hello barrier", "q", false);
    notify(e, "doxcnDOC5", &ok, None, USER, true);
    wait_bot_replies(e, "doxcnDOC5", &ok, 1);
    let recs = records(e);
    assert_eq!(recs.len(), 1, "only the owner's mention ran");
    assert!(recs[0]["prompt"].as_str().unwrap_or("").contains("barrier"));
    // The bot's own comment has only its body; the only comment by the bot
    // is that one.
    assert_eq!(comment(e, "doxcnDOC5", &own).replies.len(), 1);
    assert!(bot_replies(e, "doxcnDOC5", &quiet).is_empty());
    let mine: Vec<String> = bot_comments(e, "doxcnDOC5")
        .into_iter()
        .map(|c| c.comment_id)
        .collect();
    assert_eq!(mine, vec![own.clone()]);
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
}

#[test]
fn long_answers_are_split_or_shortened_within_the_limit_and_failures_are_answered() {
    let env = env();
    let e = &env.e;
    let (cid, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC6", USER, "FAKE:long please", "q", false);
    notify(e, "doxcnDOC6", &cid, None, USER, true);
    // 60 lines of 49 characters: three replies, every line kept.
    let parts = wait_bot_replies(e, "doxcnDOC6", &cid, 3);
    assert!(
        parts
            .iter()
            .all(|p| p.chars().count() <= COMMENT_REPLY_LIMIT_CHARS),
        "{parts:?}"
    );
    let all = parts.join("\n");
    for i in [0, 29, 59] {
        assert!(all.contains(&format!("line {i:02} ")), "line {i} lost");
    }

    let (big, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC6", USER, "FAKE:huge please", "q", false);
    notify(e, "doxcnDOC6", &big, None, USER, true);
    let parts = wait_bot_replies(e, "doxcnDOC6", &big, 4);
    assert!(
        parts
            .iter()
            .all(|p| p.chars().count() <= COMMENT_REPLY_LIMIT_CHARS),
        "{parts:?}"
    );
    assert!(parts[3].contains("answer shortened"), "{:?}", parts[3]);

    let (bad, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC6", USER, "FAKE:fail please", "q", false);
    notify(e, "doxcnDOC6", &bad, None, USER, true);
    let failed = wait_bot_replies(e, "doxcnDOC6", &bad, 1);
    assert!(
        failed[0].starts_with("Codex could not answer"),
        "{failed:?}"
    );
    // Settled: the first comment got no more than its three parts.
    assert_eq!(bot_replies(e, "doxcnDOC6", &cid).len(), 3);
    assert_eq!(bot_replies(e, "doxcnDOC6", &big).len(), 4);
    assert!(e.fake.violations().is_empty(), "{:?}", e.fake.violations());
}

#[test]
fn a_comment_fcx_cannot_read_gets_a_one_line_reason_not_silence() {
    let env = env();
    let e = &env.e;
    let (cid, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC8", USER, "FAKE:hello unread", "q", false);
    // Reading it is refused (the app lacks the read permission).
    e.fake.fail_next_code(
        &format!("/open-apis/drive/v1/files/doxcnDOC8/comments/{cid}"),
        1,
        99991672,
    );
    notify(e, "doxcnDOC8", &cid, None, USER, true);
    let said = wait_bot_replies(e, "doxcnDOC8", &cid, 1);
    assert!(
        said[0].starts_with("fcx could not read this comment")
            && said[0].contains("99991672")
            && said[0].contains("docs:document.comment:read"),
        "{said:?}"
    );
    assert!(!said[0].contains('\n') && said[0].len() < 200, "{said:?}");
    // A later mention that can be read is answered as usual; nothing ran
    // for the unreadable one.
    let (ok, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC8", USER, "FAKE:hello readable", "q", false);
    notify(e, "doxcnDOC8", &ok, None, USER, true);
    wait_bot_replies(e, "doxcnDOC8", &ok, 1);
    assert_eq!(records(e).len(), 1);
    assert_eq!(bot_replies(e, "doxcnDOC8", &cid).len(), 1);
}

/// fcxd dies (kill -9) after the platform stored its answer but before the
/// answer was acknowledged: the new fcxd replays the run and finds the
/// answer already in the thread, so the thread has it once.
#[test]
fn an_answer_replayed_after_an_fcxd_crash_is_not_posted_twice() {
    let mut env = env();
    let scenarios = env._scenarios.path().display().to_string();
    let e = &mut env.e;
    let (cid, _) =
        e.fake
            .add_comment_mentioning_bot("doxcnDOC7", USER, "FAKE:long once", "q", false);
    let replies = format!("/open-apis/drive/v1/files/doxcnDOC7/comments/{cid}/replies");
    // The first part's POST is stored, then answered only after a minute.
    e.fake
        .answer_late("POST", &replies, 1, Duration::from_secs(60));
    notify(e, "doxcnDOC7", &cid, None, USER, true);
    wait_bot_replies(e, "doxcnDOC7", &cid, 1);
    e.fcxd.kill9();
    let before = bot_replies(e, "doxcnDOC7", &cid);
    assert_eq!(before.len(), 1, "{before:?}");
    e.fcxd = Fcxd::daemon_with(&e.home, &[("FAKE_CODEX_SCENARIOS", scenarios.as_str())]);
    let after = wait_bot_replies(e, "doxcnDOC7", &cid, 3);
    eventually(
        WAIT,
        || {
            e.home
                .read_logs()
                .contains("already in the thread; not posting it again")
                .then_some(())
        },
        || {
            format!(
                "the replay never checked the thread\n{}",
                e.home.read_logs()
            )
        },
    );
    let after_check = bot_replies(e, "doxcnDOC7", &cid);
    assert_eq!(after_check, after, "{after_check:?}");
    assert_eq!(after.len(), 3, "three parts, each once: {after:?}");
    assert_eq!(records(e).len(), 1, "the run itself ran once");
}

/// The REAL Codex CLI behind a comment (mock Responses server): the answer
/// lands in the thread as plain text, and a second comment on the same
/// document continues the same Codex thread (the model sees one thread id).
#[test]
fn real_codex_answers_a_comment_and_continues_the_documents_thread() {
    let (rt, mock) = fcx_tests::real_codex_with_mock();
    let fake = rt
        .block_on(fcx_tests::fake_feishu::FakeFeishu::builder().start())
        .expect("fake platform");
    let home = fcx_tests::harness::TestHome::new();
    let secret = home.root.join("app-secret");
    std::fs::write(&secret, format!("{}\n", fake.app_secret())).expect("secret");
    home.write_config(&format!(
        "{}[profiles.default.app]\ntenant = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\n\
         app_secret = \"file:{}\"\nreply_mode = \"card\"\n[profiles.default.access]\nowner = \"{USER}\"\n",
        home.real_codex_config(&mock.base_url()),
        fake.base_url(),
        fake.app_id(),
        secret.display(),
    ));
    let _fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("long connection");
    let ask = |file: &str, text: &str| {
        let (cid, _) = fake.add_comment_mentioning_bot(file, USER, text, "the quoted line", false);
        let ev = fake
            .events()
            .comment_add(file, "docx", &cid, None, USER, true);
        rt.block_on(fake.push(&ev)).expect("push");
        let bot = fake.bot_open_id().to_string();
        eventually(
            Duration::from_secs(60),
            || {
                fake.comments(file)
                    .into_iter()
                    .find(|c| c.comment_id == cid)
                    .and_then(|c| {
                        c.replies
                            .iter()
                            .find(|r| r.user_id == bot)
                            .map(|r| text_of(&r.elements))
                    })
            },
            || format!("no answer to {text:?}\n{}", home.read_logs()),
        )
    };
    let first = ask("doxcnREAL1", "say hi");
    assert!(first.contains("hi from mock"), "{first}");
    let second = ask("doxcnREAL1", "and once more");
    assert!(second.contains("hi from mock"), "{second}");
    let reqs = mock.requests();
    let thread = |r: &fcx_tests::mock_responses::RecordedRequest| {
        r.headers.get("thread-id").cloned().unwrap_or_default()
    };
    let first_req = reqs.first().expect("a model request");
    let last_req = reqs.last().expect("a model request");
    assert!(!thread(first_req).is_empty());
    assert_eq!(thread(first_req), thread(last_req), "one Codex thread");
    let body = last_req.body.to_string();
    assert!(
        body.contains("the quoted line") && body.contains("and once more"),
        "{body}"
    );
}

/// A 503 storm on the thread that outlasts the client's retries of both the
/// thread read and the reply: the answer is posted on a later pass, once
/// (it used to be dropped with a log line, the thread left silent).
#[test]
fn an_answer_refused_past_the_clients_retries_is_posted_later_once() {
    let env = env();
    let e = &env.e;
    let (cid, _) = e.fake.add_comment_mentioning_bot(
        "doxcnDOC5",
        USER,
        "FAKE:md what does this mean?",
        "the quoted text",
        false,
    );
    // The thread read and the reply share the path: 4 calls each (a call
    // and its 3 retries) fail.
    e.fake.fail_next(
        &format!("/open-apis/drive/v1/files/doxcnDOC5/comments/{cid}/replies"),
        8,
        503,
    );
    notify(e, "doxcnDOC5", &cid, None, USER, true);
    wait_bot_replies(e, "doxcnDOC5", &cid, 1);
    std::thread::sleep(Duration::from_secs(2));
    let replies = bot_replies(e, "doxcnDOC5", &cid);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].contains("write-through"), "{replies:?}");
    let refused = e
        .fake
        .requests()
        .into_iter()
        .filter(|c| c.status == 503 && c.method.eq_ignore_ascii_case("POST"))
        .count();
    assert_eq!(refused, 4, "the storm met the reply's own retries");
}
