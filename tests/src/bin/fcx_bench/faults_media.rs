//! Fault-matrix rows (issue 14): 429 and 5xx storms on the APIs the storms
//! in `faults.rs` do not reach, because only an attachment, a file Codex
//! hands back or a document comment calls them: the download of what a
//! user sent (`im/v1/messages/:id/resources/:key`), the upload of what
//! Codex leaves in the outbox (`im/v1/images`, `im/v1/files`), and the
//! Drive comment APIs a mention in a document is answered through.
//!
//! Each round strikes one family with a rate-limit storm, then with a 503
//! storm, around one message each, and counts like the other rows: the
//! message's whole result (answer, attachments, files) exactly once, twice
//! (duplicated), or not at all (lost). The storms are as long as fcx's
//! client is meant to ride out (`RetryPolicy`: rate limits waited out
//! within 30 s, a 5xx retried 3 times per call). A storm that outlasts a
//! call's retries is a second figure (`past_retries`): the download or
//! upload fails, and the user must be told which (never silence).
//! `apis_struck` names each call refused (`METHOD path`, ids as `:id`), so
//! a row shows its storm met its API. The three rows run side by side
//! (their storms strike disjoint paths).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fcx_tests::fake_feishu::MessageSpec;
use serde_json::json;

use super::faults::{ANSWER, Row, push, redelivery, timed};
use super::faults_platform::{CARD_RUNS, record_cards_left_running, settle_card};
use super::model::Model;
use super::{FEISHU_OWNER, FeishuRig};

/// Rate-limit storms: this many calls refused, each saying to wait
/// [`RESET_S`] (well inside the client's 30 s bound on such waits).
pub(super) const STORM_429: usize = 3;
pub(super) const RESET_S: u64 = 1;
/// A call's retries after a 5xx (`RetryPolicy::max_server_retries`): a
/// storm this long is ridden out, one longer fails the call.
pub(super) const CALL_RETRIES: usize = 3;

#[derive(Clone, Copy)]
pub(super) enum Storm {
    RateLimit,
    /// `n` calls answered 503.
    Unavailable(usize),
}

impl Storm {
    /// Every call a storm refuses is one the client makes: none is left
    /// armed after the call it strikes (so the rows need not disarm it,
    /// which would disarm the others' too).
    pub(super) fn arm(self, r: &FeishuRig, pattern: &str) {
        match self {
            Storm::RateLimit => r.fake.rate_limit_storm(pattern, STORM_429, RESET_S),
            Storm::Unavailable(n) => r.fake.fail_next(pattern, n, 503),
        }
    }
}

/// The storms each round of the transfer rows rides out.
pub(super) const STORMS: [Storm; 2] = [Storm::RateLimit, Storm::Unavailable(CALL_RETRIES)];

/// A 1x1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

/// The fake codex's outbox scenario (`Model::outbox`).
const OUTBOX_SCENARIO: &str = "fo";

pub(super) async fn rows(
    m: &Model,
    bins: &Path,
    scen: &Path,
    rounds: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let sh = "mkdir -p {{outbox}} && printf hi > {{outbox}}/r1.txt && \
              printf '\\211PNG\\r\\n\\032\\n0000IHDR' > {{outbox}}/p1.png";
    std::fs::write(
        scen.join(format!("{OUTBOX_SCENARIO}.jsonl")),
        [
            json!({"thread_started": true}),
            json!({"turn_started": true}),
            json!({"sh": sh}),
            json!({"agent_message": ANSWER}),
            json!({"turn_completed": true}),
        ]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>(),
    )?;
    // Each row has a rig (and a workspace) of its own, so the rows can
    // run side by side without one's storm striking another's calls.
    let rig = || {
        m.rig(
            bins,
            CARD_RUNS,
            "reply_mode = \"card\"\n",
            &[],
            redelivery(),
        )
    };
    let (r, ru) = tokio::join!(rig(), rig());
    let (r, ru) = (r?, ru?);
    let mut t = Instant::now();
    let (a, b, c) = tokio::join!(
        resource_download(m, &r, rounds),
        upload(m, &ru, rounds),
        comment_reply(m, &r, rounds)
    );
    r.fake.clear_http_faults();
    ru.fake.clear_http_faults();
    let mut rows = vec![a?, b?, c?];
    let (mut cards, mut cards_u) = (Row::default(), Row::default());
    tokio::join!(
        record_cards_left_running(&r, &mut cards),
        record_cards_left_running(&ru, &mut cards_u)
    );
    for (v, n) in rows.iter_mut().zip([&cards, &cards_u, &cards]) {
        v["cards_left_running"] = json!(n.cards_left_running);
    }
    timed(&mut rows, &mut t);
    Ok(rows)
}

/// `path` with its ids as `:id`, so the row names APIs, not calls.
fn api_of(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').collect();
    let mut out = Vec::with_capacity(segs.len());
    for (i, s) in segs.iter().enumerate() {
        let prev = if i > 0 { segs[i - 1] } else { "" };
        let last = i + 1 == segs.len();
        let is_id =
            matches!(prev, "messages" | "resources" | "comments") || (prev == "files" && !last);
        out.push(if is_id { ":id" } else { s });
    }
    out.join("/")
}

/// The row's APIs (`family` of `METHOD path`, as [`api_of`] names it)
/// the platform refused with 429 or 5xx, and how many calls each status
/// refused.
pub(super) fn struck(
    r: &FeishuRig,
    family: impl Fn(&str) -> bool,
) -> (Vec<String>, serde_json::Value) {
    let hits: Vec<(u16, String)> = r
        .fake
        .requests()
        .into_iter()
        .filter(|c| c.status == 429 || c.status >= 500)
        .map(|c| {
            let api = format!("{} {}", c.method.to_ascii_uppercase(), api_of(&c.path));
            (c.status, api)
        })
        .filter(|(_, a)| family(a))
        .collect();
    let calls = |f: fn(u16) -> bool| hits.iter().filter(|(s, _)| f(*s)).count();
    let by_status = json!({
        "429": calls(|s| s == 429),
        "5xx": calls(|s| s >= 500),
    });
    let mut apis: Vec<String> = hits.into_iter().map(|(_, a)| a).collect();
    apis.sort();
    apis.dedup();
    (apis, by_status)
}

/// Puts what [`struck`] found into a row.
pub(super) fn put_struck(
    v: &mut serde_json::Value,
    (apis, by_status): (Vec<String>, serde_json::Value),
) {
    v["apis_struck"] = json!(apis);
    v["calls_struck"] = by_status;
}

/// What Codex was asked: the last user message of every model request (or
/// the fake codex's prompts).
pub(super) fn prompts(r: &FeishuRig) -> Vec<String> {
    match &r.mock {
        Some(mock) => mock
            .requests()
            .iter()
            .filter_map(|q| q.last_user_text())
            .collect(),
        None => std::fs::read_dir(&r.home.fake_log)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .filter_map(|v| v["prompt"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The skipped-attachments line of the run card answering `om`, if shown.
fn card_skipped(r: &FeishuRig, om: &str) -> Option<String> {
    r.fake
        .messages()
        .into_iter()
        .filter(|m| m.sender_type == "app" && m.parent_id == om)
        .filter_map(|m| r.fake.card(m.card_id.as_deref()?))
        .find_map(|c| c.element_content("skipped"))
}

/// How often one part of a message's result arrived.
pub(super) fn seen(n: usize) -> Row {
    let mut row = Row {
        messages: 1,
        ..Row::default()
    };
    match n {
        0 => row.lost = 1,
        1 => row.answered_once = 1,
        _ => row.duplicated = 1,
    }
    row
}

/// Counts one message into `row` from its parts: duplicated if any part
/// came twice, else lost if any is missing, else answered once.
pub(super) fn count(row: &mut Row, parts: &[Row], told: bool) {
    row.messages += 1;
    row.told += usize::from(told);
    if parts.iter().any(|p| p.duplicated > 0) {
        row.duplicated += 1;
    } else if parts.iter().any(|p| p.lost > 0) {
        row.lost += 1;
    } else {
        row.answered_once += 1;
    }
}

/// The tally of the messages struck past their calls' retries: each must
/// be told (lost when not), none duplicated.
#[derive(Default)]
struct PastRetries {
    messages: usize,
    told: usize,
    lost: usize,
    duplicated: usize,
}

impl PastRetries {
    fn json(&self) -> serde_json::Value {
        json!({
            "messages": self.messages,
            "told_user": self.told,
            "lost": self.lost,
            "duplicated": self.duplicated,
        })
    }
}

/// A post with text, an image and a video, their downloads stormed: the
/// run gets both (the prompt lists their inbox copies) and answers once.
/// Past the retries, the image is not downloaded: the card names it.
async fn resource_download(
    m: &Model,
    r: &FeishuRig,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let mut row = Row::default();
    let mut past = PastRetries::default();
    let mut received = 0;
    let mut skipped = Vec::new();
    // The last storm outlasts the first download's retries.
    let storms = [STORMS[0], STORMS[1], Storm::Unavailable(CALL_RETRIES + 1)];
    for i in 0..rounds {
        for (k, storm) in storms.into_iter().enumerate() {
            let label = format!("attachments {i}.{k}");
            let (img, vid) = (format!("img_md{i}x{k}"), format!("file_md{i}x{k}"));
            let ev = r.fake.events().message(&MessageSpec {
                chat_id: format!("oc_md{i}_{k}"),
                chat_type: "p2p".into(),
                sender_open_id: FEISHU_OWNER.into(),
                message_type: "post".into(),
                content: json!({"title": "", "content": [
                    [{"tag": "text", "text": m.work(&label)}],
                    [{"tag": "img", "image_key": img}],
                    [{"tag": "media", "file_key": vid}],
                ]}),
                mentions: Vec::new(),
                thread_id: None,
                parent_id: None,
                root_id: None,
                message_id: None,
            });
            let om = ev["event"]["message"]["message_id"]
                .as_str()
                .context("message id")?
                .to_string();
            r.fake.add_resource(&om, &img, "image", PNG.to_vec());
            r.fake
                .add_resource(&om, &vid, "file", format!("video {label}\n").into_bytes());
            storm.arm(r, &format!("/open-apis/im/v1/messages/{om}/resources/*"));
            r.fake.push(&ev).await?;
            let mut answer = Row::default();
            settle_card(r, &om, &mut answer).await;
            let prompt = prompts(r)
                .into_iter()
                .rev()
                .find(|p| p.contains(&label))
                .unwrap_or_default();
            let has = |kind: &str, shown: &str| {
                prompt.contains(&format!(
                    "kind=\"{kind}\" name=\"{shown}\" path=\".fcx/inbox/{kind}-"
                ))
            };
            let got = has("image", "an image") && has("video", "a video");
            let told = card_skipped(r, &om);
            if k < STORMS.len() {
                received += usize::from(got);
                count(&mut row, &[answer, seen(usize::from(got))], told.is_some());
            } else {
                // The image's download gave up; the video came through.
                past.messages += 1;
                let named = told
                    .as_deref()
                    .is_some_and(|l| l.contains("an image: the download failed"));
                past.told += usize::from(named);
                if answer.duplicated > 0 {
                    past.duplicated += 1;
                } else if answer.lost > 0 || !named || !has("video", "a video") {
                    past.lost += 1;
                }
            }
            if let Some(line) = told {
                skipped.push(line);
            }
        }
    }
    let mut v = row.json("http_storm_resource_download", rounds);
    // Its own time (the rows run side by side; `took_s` is the three's).
    v["row_s"] = json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    put_struck(&mut v, struck(r, |a| a.contains("/resources/")));
    v["attachments_received"] = json!(received);
    v["past_retries"] = past.json();
    v["skipped_lines"] = json!(skipped);
    Ok(v)
}

/// A run whose Codex leaves a file and an image in the outbox, their
/// uploads stormed: the answer, the file message and the image message
/// each reach the chat exactly once. Past the retries, neither upload
/// goes: the chat says so for each.
async fn upload(m: &Model, r: &FeishuRig, rounds: usize) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let mut row = Row::default();
    let mut past = PastRetries::default();
    let (mut files, mut images) = (0, 0);
    let storms = [STORMS[0], STORMS[1], Storm::Unavailable(CALL_RETRIES + 1)];
    for i in 0..rounds {
        for (k, storm) in storms.into_iter().enumerate() {
            let chat = format!("oc_up{i}_{k}");
            storm.arm(r, "/open-apis/im/v1/files");
            storm.arm(r, "/open-apis/im/v1/images");
            let (om, _) = push(r, &chat, &m.outbox(&format!("outbox {i}.{k}"))).await?;
            let mut answer = Row::default();
            settle_card(r, &om, &mut answer).await;
            // The outbox is sent after the answer (as replies, or into the
            // chat when a reply fails).
            let ours = |x: &fcx_tests::fake_feishu::StoredMessage| {
                x.sender_type == "app" && x.chat_id == chat
            };
            let sent = |kind: &str| {
                r.fake
                    .messages()
                    .into_iter()
                    .filter(|x| ours(x) && x.msg_type == kind)
                    .count()
            };
            let told = || {
                r.fake
                    .messages()
                    .into_iter()
                    .filter(|x| ours(x) && x.content.contains("could not be sent"))
                    .count()
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            while sent("file") + sent("image") + told() < 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            let (f, g, t) = (sent("file"), sent("image"), told());
            if k < STORMS.len() {
                files += f;
                images += g;
                count(&mut row, &[answer, seen(f), seen(g)], t > 0);
            } else {
                past.messages += 1;
                past.told += usize::from(t == 2);
                if answer.duplicated > 0 || t > 2 || f + g > 0 {
                    past.duplicated += 1;
                } else if answer.lost > 0 || t < 2 {
                    past.lost += 1;
                }
            }
        }
    }
    let mut v = row.json("http_storm_upload", rounds);
    // Its own time (the rows run side by side; `took_s` is the three's).
    v["row_s"] = json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    put_struck(
        &mut v,
        struck(r, |a| {
            a.ends_with("/im/v1/files") || a.ends_with("/im/v1/images")
        }),
    );
    v["file_messages"] = json!(files);
    v["image_messages"] = json!(images);
    v["past_retries"] = past.json();
    Ok(v)
}

/// The text of a comment reply's elements.
pub(super) fn reply_text(elements: &serde_json::Value) -> String {
    elements
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/text_run/text").and_then(|t| t.as_str()))
        .collect()
}

/// A mention of the bot in a document comment, the Drive comment APIs
/// stormed once its run has started (so the storm meets the answer's
/// path: the thread read that guards against duplicates, then the reply):
/// exactly one reply with the answer in the thread. The first 503 storm
/// outlasts the thread read's retries and strikes the reply once more; the
/// second outlasts the reply's too, which fcx posts again later.
async fn comment_reply(
    m: &Model,
    r: &FeishuRig,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    const DOC: &str = "doxcnFaultMatrix01";
    r.fake.set_doc_title(DOC, "Fault matrix");
    let started = Instant::now();
    let mut row = Row::default();
    let bot = r.fake.bot_open_id().to_string();
    let storms = [
        STORMS[0],
        Storm::Unavailable(CALL_RETRIES + 2),
        Storm::Unavailable(2 * (CALL_RETRIES + 1)),
    ];
    for i in 0..rounds {
        for (k, storm) in storms.into_iter().enumerate() {
            let label = format!("comment {i}.{k}");
            let (cid, _) = r.fake.add_comment_mentioning_bot(
                DOC,
                FEISHU_OWNER,
                &m.work(&label),
                "the quoted text",
                false,
            );
            let ev = r
                .fake
                .events()
                .comment_add(DOC, "docx", &cid, None, FEISHU_OWNER, true);
            r.fake.push(&ev).await?;
            // Its run started: Codex has its question.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !prompts(r).iter().any(|p| p.contains(&label)) {
                if Instant::now() > deadline {
                    anyhow::bail!("the comment's run never started");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            storm.arm(r, &format!("/open-apis/drive/v1/files/{DOC}/comments*"));
            let answers = || answers_in_thread(r, DOC, &cid, &bot);
            let deadline = Instant::now() + Duration::from_secs(60);
            while answers() == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            count(&mut row, &[seen(answers())], false);
        }
    }
    let mut v = row.json("http_storm_comment_reply", rounds);
    // Its own time (the rows run side by side; `took_s` is the three's).
    v["row_s"] = json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    put_struck(&mut v, struck(r, |a| a.contains("/drive/v1/files/")));
    Ok(v)
}

/// The bot's replies carrying the answer in comment `cid`'s thread of `doc`.
pub(super) fn answers_in_thread(r: &FeishuRig, doc: &str, cid: &str, bot: &str) -> usize {
    r.fake
        .comments(doc)
        .into_iter()
        .filter(|c| c.comment_id == cid)
        .flat_map(|c| c.replies)
        .filter(|x| x.user_id == bot && reply_text(&x.elements).contains(ANSWER))
        .count()
}
