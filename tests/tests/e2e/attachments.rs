//! Attachments in (issue 12, items 1–4), against the fake platform: fcxd
//! downloads what users send into the profile's media store after the ACK,
//! the worker checks it against its limits, copies it into the workspace's
//! `.fcx/inbox/`, hands images to Codex as images, and names everything it
//! skipped both in the prompt and to the user.

use std::time::{Duration, Instant};

use fcx_tests::fake_feishu::{FakeFeishu, MessageSpec, Redelivery};
use fcx_tests::harness::{FEISHU_USER as USER, Fcxd, FeishuEnv, TestHome, eventually, message_id};
use fcx_tests::mock_responses::MockResponses;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
/// A PNG signature and header: enough for the byte check (and for codex,
/// which only base64-encodes it for the model).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

fn env(runs: &str) -> FeishuEnv {
    FeishuEnv::start_with_runs(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
        runs,
    )
}

fn spec(chat: &str, message_type: &str, content: Value) -> MessageSpec {
    MessageSpec {
        chat_id: chat.into(),
        chat_type: "p2p".into(),
        sender_open_id: USER.into(),
        message_type: message_type.into(),
        content,
        mentions: Vec::new(),
        thread_id: None,
        parent_id: None,
        root_id: None,
        message_id: None,
    }
}

/// Push a message whose resources are seeded first: `(key, type, bytes)`.
fn push(e: &FeishuEnv, s: &MessageSpec, resources: &[(&str, &str, Vec<u8>)]) -> String {
    let ev = e.fake.events().message(s);
    let om = message_id(&ev);
    for (key, kind, bytes) in resources {
        e.fake.add_resource(&om, key, kind, bytes.clone());
    }
    e.push(&ev);
    om
}

fn push_with_id(e: &FeishuEnv, mut s: MessageSpec, om: &str) {
    s.message_id = Some(om.into());
    e.push(&e.fake.events().message(&s));
}

fn records(e: &FeishuEnv) -> Vec<Value> {
    e.home.fake_records()
}

/// The one fake-codex invocation that has a prompt containing `needle`.
fn wait_record(e: &FeishuEnv, needle: &str) -> Value {
    eventually(
        WAIT,
        || {
            records(e)
                .into_iter()
                .find(|r| r["prompt"].as_str().is_some_and(|p| p.contains(needle)))
        },
        || format!("no codex run with {needle:?}\n{}", e.home.read_logs()),
    )
}

/// What the bot said in the chat (all its message contents).
fn said(e: &FeishuEnv) -> String {
    e.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app")
        .map(|m| m.content)
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_said(e: &FeishuEnv, needle: &str) -> String {
    eventually(
        WAIT,
        || Some(said(e)).filter(|s| s.contains(needle)),
        || {
            format!(
                "the chat never saw {needle:?}: {}\n{}",
                said(e),
                e.home.read_logs()
            )
        },
    )
}

fn images(r: &Value) -> Vec<String> {
    r["args"]["images"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn resource_gets(e: &FeishuEnv) -> usize {
    e.fake
        .requests_to("GET", "/open-apis/im/v1/messages/")
        .iter()
        .filter(|c| c.path.contains("/resources/"))
        .count()
}

#[test]
fn a_post_with_text_and_an_image_gives_codex_the_image_and_a_resend_is_not_downloaded_again() {
    let e = env("");
    let post = |text: &str| {
        spec(
            "oc_att1",
            "post",
            json!({"title": "", "content": [[{"tag": "text", "text": text}], [{"tag": "img", "image_key": "img_shot"}]]}),
        )
    };
    let t0 = Instant::now();
    push(
        &e,
        &post("what is in this screenshot?"),
        &[("img_shot", "image", PNG.to_vec())],
    );
    let r = wait_record(&e, "what is in this screenshot?");
    println!("post with an image → codex started in {:?}", t0.elapsed());
    let imgs = images(&r);
    assert_eq!(imgs.len(), 1, "{r}");
    let ws = e.home.workspace.join(".fcx/inbox");
    assert!(imgs[0].starts_with(&ws.display().to_string()), "{imgs:?}");
    assert!(imgs[0].ends_with(".png"), "{imgs:?}");
    assert_eq!(std::fs::read(&imgs[0]).expect("image in the inbox"), PNG);
    let prompt = r["prompt"].as_str().unwrap_or("");
    assert!(prompt.contains("attached=\"as an image\""), "{prompt}");
    assert!(prompt.contains(".fcx/inbox/image-"), "{prompt}");
    assert_eq!(resource_gets(&e), 1);

    // The store: 0700, one blob, 0600, found again by key.
    let media = e.home.home.join("profiles/default/media");
    let blobs: Vec<_> = std::fs::read_dir(media.join("blobs"))
        .expect("blobs")
        .flatten()
        .collect();
    assert_eq!(blobs.len(), 1);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&media), 0o700);
        assert_eq!(mode(&blobs[0].path()), 0o600);
    }

    // Sent again (same key, new message): no second download.
    push(
        &e,
        &post("and this one again?"),
        &[("img_shot", "image", PNG.to_vec())],
    );
    let r = wait_record(&e, "and this one again?");
    assert_eq!(images(&r).len(), 1, "{r}");
    assert_eq!(resource_gets(&e), 1, "the same key was downloaded twice");
}

#[test]
fn an_attachment_only_message_is_acknowledged_at_once_and_runs_with_the_text_that_follows() {
    // A wait no test could sit out: only the following text can start the run.
    let e = env("attachment_wait_ms = 600000");
    let om = push(
        &e,
        &spec(
            "oc_att2",
            "file",
            json!({"file_key": "file_notes", "file_name": "notes.txt"}),
        ),
        &[("file_notes", "file", b"the answer is 42\n".to_vec())],
    );
    // Feedback at once (the Queued reaction), and no run yet.
    eventually(
        WAIT,
        || Some(()).filter(|_| !e.fake.reactions(&om).is_empty()),
        || format!("no reaction on the file message\n{}", e.home.read_logs()),
    );
    // The download happens after the ACK, into the inbox only at run time.
    eventually(
        WAIT,
        || Some(()).filter(|_| resource_gets(&e) == 1),
        || "the file was never downloaded".into(),
    );
    assert!(records(&e).is_empty(), "a run started without the text");
    let text = e
        .fake
        .events()
        .p2p_text("oc_att2", USER, "summarise the file please");
    e.push(&text);
    let r = wait_record(&e, "summarise the file please");
    let prompt = r["prompt"].as_str().unwrap_or("");
    assert!(
        prompt.contains("name=\"notes.txt\" path=\".fcx/inbox/notes.txt\""),
        "{prompt}"
    );
    assert_eq!(records(&e).len(), 1, "one run for the file and its text");
    assert_eq!(
        std::fs::read(e.home.workspace.join(".fcx/inbox/notes.txt")).expect("in the inbox"),
        b"the answer is 42\n"
    );
    assert!(images(&r).is_empty());
}

#[test]
fn oversize_refused_and_surplus_attachments_are_named_in_the_prompt_and_to_the_user() {
    // An attachment-only message runs alone after a short wait.
    let e = env("attachment_wait_ms = 200");
    let big = vec![b'z'; 21 * 1024 * 1024];
    let t0 = Instant::now();
    push(
        &e,
        &spec(
            "oc_att3",
            "file",
            json!({"file_key": "file_big", "file_name": "huge.log"}),
        ),
        &[("file_big", "file", big)],
    );
    let r = wait_record(&e, "huge.log");
    println!(
        "21 MiB file refused at the 20 MiB cap, run started after {:?} (200 ms attachment wait included)",
        t0.elapsed()
    );
    let prompt = r["prompt"].as_str().unwrap_or("");
    assert!(
        prompt.contains("name=\"huge.log\" skipped=\"too big (over 20 MiB)\""),
        "{prompt}"
    );
    wait_said(&e, "huge.log: too big (over 20 MiB)");
    assert!(!e.home.workspace.join(".fcx/inbox/huge.log").exists());

    // Just under the cap: downloaded, stored and copied.
    let t0 = Instant::now();
    push(
        &e,
        &spec(
            "oc_att8",
            "file",
            json!({"file_key": "file_19", "file_name": "big-ok.bin"}),
        ),
        &[("file_19", "file", vec![b'o'; 19 * 1024 * 1024])],
    );
    let r = wait_record(&e, "big-ok.bin");
    println!(
        "19 MiB file downloaded, stored and copied to the inbox; run started after {:?} (200 ms attachment wait included)",
        t0.elapsed()
    );
    let prompt = r["prompt"].as_str().unwrap_or("");
    assert!(
        prompt.contains("path=\".fcx/inbox/big-ok.bin\""),
        "{prompt}"
    );
    let len = std::fs::metadata(e.home.workspace.join(".fcx/inbox/big-ok.bin")).map(|m| m.len());
    assert_eq!(len.ok(), Some(19 * 1024 * 1024));

    // One image the platform refuses (inside a forward: 234043), then nine.
    let mut paras = vec![
        json!([{"tag": "text", "text": "compare these"}]),
        json!([{"tag": "img", "image_key": "img_fwd"}]),
    ];
    let mut res = Vec::new();
    for i in 0..9 {
        let key = format!("img_n{i}");
        paras.push(json!([{"tag": "img", "image_key": key}]));
        res.push((key, [PNG, &[i as u8]].concat()));
    }
    let s = spec("oc_att4", "post", json!({"title": "", "content": paras}));
    let ev = e.fake.events().message(&s);
    let om = message_id(&ev);
    for (k, b) in &res {
        e.fake.add_resource(&om, k, "image", b.clone());
    }
    e.fake.refuse_resource(&om, "img_fwd", 234043);
    let t0 = Instant::now();
    e.push(&ev);
    let r = wait_record(&e, "compare these");
    println!(
        "post with 10 images (8 used) → codex started in {:?}",
        t0.elapsed()
    );
    assert_eq!(images(&r).len(), 8, "{r}");
    let prompt = r["prompt"].as_str().unwrap_or("");
    assert!(
        prompt.contains("skipped=\"too many attachments (at most 8 per run)\""),
        "{prompt}"
    );
    assert!(
        prompt.contains("inside forwarded messages or cards (234043)"),
        "{prompt}"
    );
    wait_said(&e, "too many attachments (at most 8 per run)");
    wait_said(&e, "(234043)");
}

/// The run card of the bot's card reply to `om`, once one of its elements
/// `element_id` exists.
fn wait_card_element(e: &FeishuEnv, om: &str, element_id: &str) -> String {
    eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .filter(|m| m.sender_type == "app" && m.parent_id == om)
                .filter(|m| m.msg_type == "interactive")
                .filter_map(|m| {
                    let v: Value = serde_json::from_str(&m.content).ok()?;
                    let id = v.pointer("/data/card_id")?.as_str()?.to_string();
                    e.fake.card(&id)?.element_content(element_id)
                })
                .next()
        },
        || {
            format!(
                "no card under {om} with a {element_id:?} element\n{}",
                e.home.read_logs()
            )
        },
    )
}

fn blobs(e: &FeishuEnv) -> Vec<u64> {
    let dir = e.home.home.join("profiles/default/media/blobs");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|x| x.metadata().ok().map(|m| m.len()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_run_card_names_what_was_skipped_and_fcxd_stores_no_more_than_a_run_may_carry() {
    let e = FeishuEnv::start_with_runs(
        "card",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
        "attachment_wait_ms = 200",
    );
    // Nine images: eight reach Codex, the card names the ninth.
    let mut paras = vec![json!([{"tag": "text", "text": "nine of them"}])];
    let mut res = Vec::new();
    for i in 0..9u8 {
        let key = format!("img_c{i}");
        paras.push(json!([{"tag": "img", "image_key": key}]));
        res.push((key, "image", [PNG, &[i]].concat()));
    }
    let refs: Vec<(&str, &str, Vec<u8>)> = res
        .iter()
        .map(|(k, t, b)| (k.as_str(), *t, b.clone()))
        .collect();
    let om = push(
        &e,
        &spec("oc_att9", "post", json!({"title": "", "content": paras})),
        &refs,
    );
    let r = wait_record(&e, "nine of them");
    assert_eq!(images(&r).len(), 8, "{r}");
    let card = wait_card_element(&e, &om, "skipped");
    assert!(card.contains("Not passed to Codex"), "{card}");
    assert!(
        card.contains("an image: too many attachments (at most 8 per run)"),
        "{card}"
    );
    assert_eq!(card.matches("too many attachments").count(), 1, "{card}");
    // Said once, on the card: no separate notice beside it.
    eventually(
        WAIT,
        || Some(()).filter(|_| wait_card_element(&e, &om, "answer").contains("fake codex")),
        || format!("the run never answered\n{}", e.home.read_logs()),
    );
    assert!(!said(&e).contains("Not passed to Codex"), "{}", said(&e));

    // Three 19 MiB images in one post: the third would take the run past
    // 50 MiB, so fcxd stops its download and stores two.
    let big: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            let mut b = [PNG, &[i]].concat();
            b.resize(19 * 1024 * 1024, i);
            b
        })
        .collect();
    let paras = vec![
        json!([{"tag": "text", "text": "three big ones"}]),
        json!([{"tag": "img", "image_key": "img_b0"}]),
        json!([{"tag": "img", "image_key": "img_b1"}]),
        json!([{"tag": "img", "image_key": "img_b2"}]),
    ];
    let t0 = Instant::now();
    let om = push(
        &e,
        &spec("oc_att10", "post", json!({"title": "", "content": paras})),
        &[
            ("img_b0", "image", big[0].clone()),
            ("img_b1", "image", big[1].clone()),
            ("img_b2", "image", big[2].clone()),
        ],
    );
    let r = wait_record(&e, "three big ones");
    println!(
        "3 × 19 MiB images in one message: 2 downloaded and stored (38 MiB), the third cut at the 50 MiB run cap; codex started after {:?} (200 ms attachment wait included)",
        t0.elapsed()
    );
    assert_eq!(images(&r).len(), 2, "{r}");
    let prompt = r["prompt"].as_str().unwrap_or("");
    assert!(
        prompt.contains("skipped=\"over the 50 MiB this run may carry\""),
        "{prompt}"
    );
    let card = wait_card_element(&e, &om, "skipped");
    assert!(
        card.contains("over the 50 MiB this run may carry"),
        "{card}"
    );
    let stored_big = blobs(&e)
        .into_iter()
        .filter(|n| *n >= 19 * 1024 * 1024)
        .count();
    assert_eq!(stored_big, 2, "fcxd stored what no run could carry");
}

#[test]
fn a_sticker_gets_a_one_line_answer_and_no_run() {
    let e = env("attachment_wait_ms = 200");
    let om = push(
        &e,
        &spec("oc_att5", "sticker", json!({"file_key": "stk_1"})),
        &[],
    );
    let s = wait_said(&e, "Stickers cannot be passed to Codex");
    assert!(s.contains("send a screenshot or the file instead"), "{s}");
    // Delivered twice (a redelivery): still one answer.
    push_with_id(
        &e,
        spec("oc_att5", "sticker", json!({"file_key": "stk_1"})),
        &om,
    );
    e.push(
        &e.fake
            .events()
            .p2p_text("oc_att5", USER, "FAKE:ok after the sticker"),
    );
    wait_record(&e, "after the sticker");
    assert_eq!(said(&e).matches("Stickers cannot be passed").count(), 1);
    assert_eq!(records(&e).len(), 1, "the sticker started no run");
    assert_eq!(resource_gets(&e), 0, "a sticker is never downloaded");
}

/// fcxd on the fake platform with the REAL codex talking to the mock model.
fn real_env() -> (FeishuEnv, MockResponses) {
    let (rt, mock) = fcx_tests::real_codex_with_mock();
    let fake = rt
        .block_on(FakeFeishu::builder().start())
        .expect("fake platform");
    let home = TestHome::new();
    let fake_base = home.fake_codex_config("");
    let cfg = home
        .feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER)
        .replace(&fake_base, &home.real_codex_config(&mock.base_url()))
        .replace(
            "stop_grace_ms = 500\n",
            "stop_grace_ms = 500\nattachment_wait_ms = 100\n",
        );
    home.write_config(&cfg);
    let fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("fcxd opens the long connection");
    (
        FeishuEnv {
            fcxd,
            fake,
            rt,
            home,
        },
        mock,
    )
}

#[test]
fn real_codex_sends_the_image_to_the_model_and_can_cat_an_inbox_file() {
    let (e, mock) = real_env();
    push(
        &e,
        &spec(
            "oc_att6",
            "post",
            json!({"title": "", "content": [[{"tag": "text", "text": "describe it"}], [{"tag": "img", "image_key": "img_red"}]]}),
        ),
        &[("img_red", "image", PNG.to_vec())],
    );
    let body = eventually(
        WAIT,
        || {
            mock.requests()
                .into_iter()
                .map(|r| r.body.to_string())
                .find(|b| b.contains("describe it"))
        },
        || format!("codex never asked the model\n{}", e.home.read_logs()),
    );
    assert!(body.contains("\"input_image\""), "{body}");
    assert!(body.contains("data:image/png;base64,"), "{body}");
    wait_said(&e, "hi from mock");

    // An `image` message alone (no text follows): after the attachment
    // wait it runs by itself, and the model gets the image.
    let with_image = || {
        mock.requests()
            .into_iter()
            .filter(|r| r.body.to_string().contains("\"input_image\""))
            .count()
    };
    let before = with_image();
    push(
        &e,
        &spec("oc_att11", "image", json!({"image_key": "img_alone"})),
        &[("img_alone", "image", [PNG, b"alone"].concat())],
    );
    eventually(
        WAIT,
        || (with_image() > before).then_some(()),
        || {
            format!(
                "the lone image never reached the model\n{}",
                e.home.read_logs()
            )
        },
    );

    push(
        &e,
        &spec(
            "oc_att7",
            "file",
            json!({"file_key": "file_log", "file_name": "build.log"}),
        ),
        &[("file_log", "file", b"fcx-inbox-content-7\n".to_vec())],
    );
    e.push(
        &e.fake
            .events()
            .p2p_text("oc_att7", USER, "RUN: cat .fcx/inbox/build.log"),
    );
    wait_said(&e, "fcx-inbox-content-7");
    drop(e);
    drop(mock);
}
