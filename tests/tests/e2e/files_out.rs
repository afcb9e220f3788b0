//! Files out (issue 12, items 5–6): `/sendfile` and Codex's outbox, through
//! fcxd, the real fcx-worker and the scripted fake codex, against the fake
//! platform's upload APIs. Assertions are what the user sees: an image or
//! file message in the chat whose key downloads the very bytes, or a
//! message that says why not.

use std::path::Path;
use std::time::Duration;

use fcx_tests::fake_feishu::{Redelivery, StoredMessage};
use fcx_tests::harness::{FEISHU_USER as USER, FeishuEnv, eventually, message_id};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const CHAT: &str = "oc_p2pfiles";

fn env_with(vars: &[(&str, &str)]) -> FeishuEnv {
    FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        vars,
    )
}

/// Sends `text` as the owner in a private chat; returns its message id.
fn say(e: &FeishuEnv, text: &str) -> String {
    let ev = e.fake.events().p2p_text(CHAT, USER, text);
    let om = message_id(&ev);
    e.push(&ev);
    om
}

fn bot_messages(e: &FeishuEnv) -> Vec<StoredMessage> {
    e.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app")
        .collect()
}

/// The bot's first message of `msg_type` replying to `om`.
fn wait_message(e: &FeishuEnv, om: &str, msg_type: &str) -> StoredMessage {
    eventually(
        WAIT,
        || {
            bot_messages(e)
                .into_iter()
                .find(|m| m.parent_id == om && m.msg_type == msg_type)
        },
        || {
            format!(
                "no {msg_type} reply to {om}; bot messages: {:#?}\nlogs:\n{}",
                bot_messages(e),
                e.home.read_logs()
            )
        },
    )
}

/// The bot's reply to `om` whose content contains `needle`.
fn wait_text(e: &FeishuEnv, om: &str, needle: &str) -> String {
    eventually(
        WAIT,
        || {
            bot_messages(e)
                .into_iter()
                .find(|m| m.parent_id == om && m.content.contains(needle))
                .map(|m| m.content)
        },
        || {
            format!(
                "no reply to {om} containing {needle:?}; bot messages: {:#?}\nlogs:\n{}",
                bot_messages(e),
                e.home.read_logs()
            )
        },
    )
}

/// The key a file or image message names.
fn key_of(m: &StoredMessage, field: &str) -> String {
    let v: Value = serde_json::from_str(&m.content).expect("content JSON");
    v[field].as_str().expect("a key").to_string()
}

/// A small PNG's first bytes, then filler: enough for anyone reading the
/// header.
fn png(len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.resize(len, 7);
    b
}

fn outgoing_leftovers(e: &FeishuEnv) -> Vec<String> {
    let dir = e.home.home.join("profiles/default/outgoing");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|x| x.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".sent"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sendfile_sends_a_workspace_file_as_a_file_message_with_the_same_bytes() {
    let e = env_with(&[]);
    let ws = &e.home.workspace;
    std::fs::create_dir_all(ws.join("out")).expect("dir");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(ws.join("out/report.pdf"), &bytes).expect("write");
    let om = say(&e, "/sendfile out/report.pdf");
    let m = wait_message(&e, &om, "file");
    let up = e
        .fake
        .upload(&key_of(&m, "file_key"))
        .expect("the uploaded file");
    assert_eq!(up.kind, "file");
    assert_eq!(up.file_type, "pdf");
    assert_eq!(up.file_name, "report.pdf");
    assert!(
        up.bytes == bytes,
        "the bytes the user downloads are the file's"
    );
    // The staged copy is gone once sent; only the marker stays.
    eventually(
        WAIT,
        || outgoing_leftovers(&e).is_empty().then_some(()),
        || format!("staged copies left: {:?}", outgoing_leftovers(&e)),
    );
    // Handled (the copy goes after the send): exactly one message.
    let files = bot_messages(&e)
        .into_iter()
        .filter(|x| x.msg_type == "file")
        .count();
    assert_eq!(files, 1);
}

#[test]
fn sendfile_sends_an_image_as_an_image_message_and_a_big_image_as_a_file() {
    let e = env_with(&[]);
    let ws = &e.home.workspace;
    let small = png(50_000);
    std::fs::write(ws.join("chart.png"), &small).expect("write");
    let om = say(&e, "/sendfile chart.png");
    let m = wait_message(&e, &om, "image");
    let up = e.fake.upload(&key_of(&m, "image_key")).expect("the image");
    assert_eq!((up.kind.as_str(), up.bytes == small), ("image", true));
    // Over the image limit (10 MB), under the file limit: a file message.
    let big = png(11 * 1024 * 1024);
    std::fs::write(ws.join("photo.png"), &big).expect("write");
    let om = say(&e, "/sendfile photo.png");
    let m = wait_message(&e, &om, "file");
    let up = e.fake.upload(&key_of(&m, "file_key")).expect("the file");
    assert_eq!(up.file_type, "stream");
    assert!(up.bytes == big);
}

#[test]
fn sendfile_refuses_paths_outside_the_workspace_folders_and_missing_files() {
    let e = env_with(&[]);
    let ws = &e.home.workspace;
    let secret = e.home.root.join("secret.txt");
    std::fs::write(&secret, b"not yours").expect("write");
    std::os::unix::fs::symlink(&secret, ws.join("escape")).expect("symlink");
    std::fs::create_dir_all(ws.join("sub")).expect("dir");
    for (arg, why) in [
        ("../secret.txt", "outside the workspace"),
        ("/etc/passwd", "outside the workspace"),
        ("escape", "outside the workspace"),
        ("sub", "folder"),
        ("nothing-here.txt", "no such file"),
    ] {
        let om = say(&e, &format!("/sendfile {arg}"));
        let reply = wait_text(&e, &om, why);
        assert!(reply.contains(arg), "{reply}");
    }
    assert!(e.fake.uploads().is_empty(), "{:?}", e.fake.uploads().len());
}

#[test]
fn sendfile_refuses_a_file_over_the_limit_with_the_reason() {
    let e = env_with(&[]);
    let f = std::fs::File::create(e.home.workspace.join("huge.bin")).expect("create");
    f.set_len(31 * 1024 * 1024).expect("sparse file");
    let om = say(&e, "/sendfile huge.bin");
    let reply = wait_text(&e, &om, "too large");
    assert!(
        reply.contains("31.0 MB") && reply.contains("30.0 MB"),
        "{reply}"
    );
    assert!(e.fake.uploads().is_empty());
}

#[test]
fn a_platform_upload_error_reaches_the_user() {
    let e = env_with(&[]);
    std::fs::write(e.home.workspace.join("notes.txt"), b"notes").expect("write");
    e.fake.fail_next_code("/open-apis/im/v1/files", 1, 234006);
    let om = say(&e, "/sendfile notes.txt");
    let reply = wait_text(&e, &om, "could not be sent");
    assert!(
        reply.contains("notes.txt") && reply.contains("234006"),
        "{reply}"
    );
    assert!(
        bot_messages(&e).iter().all(|m| m.msg_type != "file"),
        "no file message after a refused upload"
    );
}

fn scenario(dir: &Path, name: &str, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join(format!("{name}.jsonl")), text).expect("scenario");
}

#[test]
fn files_codex_leaves_in_the_outbox_are_sent_after_the_answer_and_the_outbox_emptied() {
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(
        dir.path(),
        "outbox",
        &[
            serde_json::json!({"thread_started": true}),
            serde_json::json!({"turn_started": true}),
            serde_json::json!({"sh": "mkdir -p {{outbox}} && cd {{outbox}} && printf 'result 42' > result.txt && printf '\\211PNG\\r\\n\\032\\n0000IHDR' > plot.png && ln -s /etc/passwd evil && mkfifo pipe"}),
            serde_json::json!({"agent_message": "here are your files"}),
            serde_json::json!({"turn_completed": true}),
        ],
    );
    let scenarios = dir.path().display().to_string();
    let e = env_with(&[("FAKE_CODEX_SCENARIOS", &scenarios)]);
    let om = say(&e, "make files FAKE:outbox");
    let answer = wait_text(&e, &om, "here are your files");
    let file = wait_message(&e, &om, "file");
    let image = wait_message(&e, &om, "image");
    let up = e.fake.upload(&key_of(&file, "file_key")).expect("file");
    assert_eq!(
        (up.file_name.as_str(), &up.bytes[..]),
        ("result.txt", &b"result 42"[..])
    );
    let img = e.fake.upload(&key_of(&image, "image_key")).expect("image");
    assert!(
        img.bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{:?}",
        img.bytes
    );
    // The hostile entries are named, not followed.
    let notice = wait_text(&e, &om, "were not sent");
    assert!(
        notice.contains("evil") && notice.contains("symbolic link"),
        "{notice}"
    );
    assert!(
        notice.contains("pipe") && notice.contains("named pipe"),
        "{notice}"
    );
    // After the answer, in the outbox's name order.
    let order: Vec<String> = bot_messages(&e)
        .into_iter()
        .filter(|m| m.parent_id == om)
        .map(|m| m.message_id)
        .collect();
    let pos = |id: &str| order.iter().position(|x| x == id).expect("in order");
    let answer_id = bot_messages(&e)
        .into_iter()
        .find(|m| m.content == answer)
        .expect("answer")
        .message_id;
    assert!(pos(&answer_id) < pos(&image.message_id), "{order:?}");
    assert!(
        pos(&image.message_id) < pos(&file.message_id),
        "plot.png < result.txt"
    );
    // Codex was told how to hand files back, inside the bridge's
    // sections, into this chat's own folder.
    let prompt = e.home.fake_records()[0]["prompt"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let folder = fcx_tests::outbox_in(&prompt);
    assert!(
        prompt.contains("<bridge_output-") && folder.len() == ".fcx/outbox/".len() + 12,
        "{prompt}"
    );
    // Emptied.
    assert_eq!(
        std::fs::read_dir(e.home.workspace.join(&folder))
            .expect("outbox")
            .count(),
        0,
        "the outbox is emptied"
    );
}

#[test]
fn a_replay_after_a_gateway_crash_sends_a_file_once_and_reports_nothing() {
    let mut e = env_with(&[]);
    std::fs::write(e.home.workspace.join("once.txt"), b"only once").expect("write");
    let om = say(&e, "/sendfile once.txt");
    wait_message(&e, &om, "file");
    eventually(
        WAIT,
        || outgoing_leftovers(&e).is_empty().then_some(()),
        || format!("staged copies left: {:?}", outgoing_leftovers(&e)),
    );
    // A gateway that died before saving its cursor: every event replays.
    e.fcxd.kill9();
    let cursor = e.home.home.join("profiles/default/gateway.cursor");
    let saved = std::fs::read_to_string(&cursor).unwrap_or_default();
    let epoch = saved.split_whitespace().nth(1).unwrap_or("0").to_string();
    std::fs::write(&cursor, format!("1 {epoch}\n")).expect("rewind the cursor");
    e.fcxd = fcx_tests::harness::Fcxd::daemon_with(&e.home, &[]);
    e.rt.block_on(e.fake.wait_for_connections(1, WAIT))
        .expect("the new fcxd opens the long connection");
    // The same lane handles the replayed file before this answer.
    let later = say(&e, "/status");
    wait_text(&e, &later, "Status");
    let files = bot_messages(&e)
        .into_iter()
        .filter(|m| m.msg_type == "file")
        .count();
    assert_eq!(files, 1, "{:#?}", bot_messages(&e));
    assert_eq!(e.fake.uploads().len(), 1, "not uploaded again");
    assert!(
        bot_messages(&e)
            .iter()
            .all(|m| !m.content.contains("could not be sent")),
        "{:#?}",
        bot_messages(&e)
    );
}

/// Two chats sharing one workspace, their runs overlapping: the file chat
/// A's Codex leaves goes to chat A, even though chat B's run ends first
/// (with one outbox for the whole workspace, B's run took it and sent it
/// to B).
#[test]
fn a_file_left_by_one_chats_run_never_goes_to_another_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(
        dir.path(),
        "slowfile",
        &[
            serde_json::json!({"thread_started": true}),
            serde_json::json!({"turn_started": true}),
            serde_json::json!({"sh": "mkdir -p {{outbox}} && printf 'for A only' > {{outbox}}/a.txt"}),
            serde_json::json!({"sleep_ms": 1500}),
            serde_json::json!({"agent_message": "a done"}),
            serde_json::json!({"turn_completed": true}),
        ],
    );
    scenario(
        dir.path(),
        "quick",
        &[
            serde_json::json!({"thread_started": true}),
            serde_json::json!({"turn_started": true}),
            serde_json::json!({"agent_message": "b done"}),
            serde_json::json!({"turn_completed": true}),
        ],
    );
    let scenarios = dir.path().display().to_string();
    let e = env_with(&[("FAKE_CODEX_SCENARIOS", &scenarios)]);
    let push = |chat: &str, text: &str| {
        let ev = e.fake.events().p2p_text(chat, USER, text);
        let om = message_id(&ev);
        e.push(&ev);
        om
    };
    let a = push("oc_outbox_a", "FAKE:slowfile make a file");
    // A's file is on disk (its run still going) before B's run starts.
    eventually(
        WAIT,
        || {
            let p = e.home.fake_records().first()?["prompt"]
                .as_str()?
                .to_string();
            e.home
                .workspace
                .join(fcx_tests::outbox_in(&p))
                .join("a.txt")
                .exists()
                .then_some(())
        },
        || "chat A's run never wrote its file".to_string(),
    );
    let b = push("oc_outbox_b", "FAKE:quick hello");
    wait_text(&e, &b, "b done");
    wait_text(&e, &a, "a done");
    let file = wait_message(&e, &a, "file");
    let up = e.fake.upload(&key_of(&file, "file_key")).expect("file");
    assert_eq!(up.bytes, b"for A only");
    std::thread::sleep(Duration::from_millis(500));
    let to_b: Vec<String> = bot_messages(&e)
        .into_iter()
        .filter(|m| m.parent_id == b && m.msg_type != "text" && m.msg_type != "post")
        .map(|m| m.msg_type)
        .collect();
    assert!(to_b.is_empty(), "chat B got {to_b:?}");
    let records = e.home.fake_records();
    let folders: Vec<String> = records
        .iter()
        .filter_map(|r| r["prompt"].as_str().map(fcx_tests::outbox_in))
        .collect();
    assert_eq!(folders.len(), 2, "{folders:?}");
    assert_ne!(folders[0], folders[1], "each chat has its own folder");
}
