//! Fault-matrix row (issue 14): 429 and 5xx storms on the platform's read
//! APIs, which only some events call, so the storms in `faults.rs` and
//! `faults_media.rs` never meet them: the children of a merged-and-
//! forwarded message and the message a reply quotes (`GET
//! im/v1/messages/:id`), a mentioning comment and
//! its document's title read at intake (`GET drive/v1/files/:id/comments/
//! :id`, `POST drive/v1/metas/batch_query`), and the bot's and app's own
//! info read when fcxd starts (`GET bot/v3/info`,
//! `GET application/v6/applications/me`).
//!
//! The reads happen inside the event's 3 s ACK window, within a budget
//! (1.5 s; 0.7 s for a quote) shorter than a storm the client rides out
//! in other calls, so
//! each part counts what fcx does when the budget runs out: a forward is
//! answered with the placeholder and its sender told why (`forwards_told`;
//! `forward_children_read` says how many runs got the children); a quoted
//! message is left out of the prompt and its sender told why
//! (`quotes_told`; `quotes_read` says how many runs got the quote); a
//! comment is not ACKed, so the platform redelivers it. Every message
//! must still be answered exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::faults::{Row, push};
use super::faults_media::{CALL_RETRIES, STORMS, Storm, count, prompts, put_struck, seen, struck};
use super::faults_platform::{CARD_RUNS, record_cards_left_running, settle_card, settle_card_for};
use super::model::Model;
use super::{FEISHU_OWNER, FeishuRig};

pub(super) const ROW: &str = "http_storm_read_apis";

/// The line a forward's sender reads when its children were not read
/// (`forward::unread_text`).
const FORWARD_UNREAD: &str = "could not read the forwarded messages";
/// What the mock model answers a prompt without a command: the run of a
/// forward whose children were not read.
const MOCK_PLAIN: &str = "hi from mock";
/// The same from the fake codex (`--fake-codex`).
const FAKE_PLAIN: &str = "hello from fake codex";

/// The read APIs this row storms (`METHOD path`, ids as `:id`).
const READ_APIS: [&str; 5] = [
    "GET /open-apis/im/v1/messages/:id",
    "GET /open-apis/drive/v1/files/:id/comments/:id",
    "POST /open-apis/drive/v1/metas/batch_query",
    "GET /open-apis/bot/v3/info",
    "GET /open-apis/application/v6/applications/me",
];

pub(super) async fn row(
    m: &Model,
    bins: &Path,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    let mut r = super::faults::rig(m, bins, CARD_RUNS).await?;
    let mut row = Row::default();
    let mut children_read = 0;
    let mut comments = Row::default();
    let mut starts = Row::default();
    let mut quotes = Row::default();
    let mut quotes_read = 0;
    let mut quotes_told = 0;
    for i in 0..rounds {
        // The forwards, the quotes and the comments side by side: their
        // storms strike disjoint paths.
        let forwarding = async {
            let mut n = 0;
            for (k, storm) in STORMS.into_iter().enumerate() {
                n += forward(m, &r, &format!("{i}x{k}"), storm, &mut row).await?;
            }
            anyhow::Ok(n)
        };
        let commenting = async {
            for (k, storm) in STORMS.into_iter().enumerate() {
                comment(m, &r, &format!("{i}x{k}"), storm, &mut comments).await?;
            }
            anyhow::Ok(())
        };
        let quoting = async {
            let (mut read, mut told) = (0, 0);
            for (k, storm) in STORMS.into_iter().enumerate() {
                let (rd, tl) = quote(m, &r, &format!("{i}x{k}"), storm, &mut quotes).await?;
                read += rd;
                told += tl;
            }
            anyhow::Ok((read, told))
        };
        let (n, c, q) = tokio::join!(forwarding, commenting, quoting);
        children_read += n?;
        c?;
        let (read, told) = q?;
        quotes_read += read;
        quotes_told += told;
        restart(m, &mut r, i, &mut starts).await?;
    }
    r.fake.clear_http_faults();
    record_cards_left_running(&r, &mut row).await;
    let (forwards, forwards_told) = (row.messages, row.told);
    for part in [&comments, &quotes, &starts] {
        row.messages += part.messages;
        row.answered_once += part.answered_once;
        row.duplicated += part.duplicated;
        row.lost += part.lost;
        row.told += part.told;
    }
    let mut v = row.json(ROW, rounds);
    put_struck(&mut v, struck(&r, |a| READ_APIS.contains(&a)));
    v["forwards"] = json!(forwards);
    v["forward_children_read"] = json!(children_read);
    v["forwards_told"] = json!(forwards_told);
    v["comments"] = json!(comments.messages);
    v["comment_replies_once"] = json!(comments.answered_once);
    v["quotes"] = json!(quotes.messages);
    v["quotes_read"] = json!(quotes_read);
    v["quotes_told"] = json!(quotes_told);
    v["fcxd_starts"] = json!(starts.messages);
    Ok(v)
}

/// A merge-forward whose one child is the work, its children's read
/// stormed. Returns 1 if the run got the children.
async fn forward(
    m: &Model,
    r: &FeishuRig,
    tag: &str,
    storm: Storm,
    row: &mut Row,
) -> anyhow::Result<usize> {
    let (chat, om) = (format!("oc_fw{tag}"), format!("om_fwd_storm{tag}"));
    let label = format!("forward {tag}");
    r.fake.add_forwarded_child(
        &om,
        &chat,
        "ou_colleague",
        "text",
        &json!({"text": m.work(&label)}),
    );
    storm.arm(r, &format!("/open-apis/im/v1/messages/{om}"));
    let ev = r.fake.events().merge_forward(&chat, FEISHU_OWNER, &om);
    r.fake.push(&ev).await?;
    let told = || {
        r.fake
            .messages()
            .into_iter()
            .filter(|x| x.sender_type == "app" && x.chat_id == chat)
            .filter(|x| x.content.contains(FORWARD_UNREAD))
            .count()
    };
    let got = || prompts(r).iter().any(|p| p.contains(&label));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !got() && told() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read = got();
    let mut answer = Row::default();
    if read {
        settle_card(r, &om, &mut answer).await;
    } else if m.is_real() {
        settle_card_for(r, &om, MOCK_PLAIN, &mut answer).await;
    } else {
        settle_card_for(r, &om, FAKE_PLAIN, &mut answer).await;
    }
    let t = told();
    // Told twice is a duplicate too; a notice when the children were read
    // is not a loss (it is counted as told).
    let notice = if read { seen(1) } else { seen(t) };
    count(row, &[answer, notice], t > 0);
    Ok(usize::from(read))
}

/// A reply quoting an earlier message, the quoted message's read stormed:
/// answered once. Returns whether the run got the quoted text, and whether
/// the sender was told it could not be read (fcx gives up on it after a
/// short budget).
async fn quote(
    m: &Model,
    r: &FeishuRig,
    tag: &str,
    storm: Storm,
    row: &mut Row,
) -> anyhow::Result<(usize, usize)> {
    let chat = format!("oc_qt{tag}");
    let quoted = format!("the quoted words {tag}");
    let parent = r
        .fake
        .add_user_message(&chat, "text", &json!({"text": quoted}));
    storm.arm(r, &format!("/open-apis/im/v1/messages/{parent}"));
    let label = format!("quote {tag}");
    let ev = r
        .fake
        .events()
        .quote_text(&chat, "p2p", FEISHU_OWNER, &m.work(&label), &parent);
    let om = ev["event"]["message"]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    r.fake.push(&ev).await?;
    settle_card(r, &om, row).await;
    let read = prompts(r)
        .iter()
        .any(|p| p.contains(&label) && p.contains(&quoted));
    let told = super::faults::replies(r, &om)
        .iter()
        .any(|c| c.contains("could not read the message you replied to"));
    Ok((usize::from(read), usize::from(told)))
}

/// A mention of the bot in a document comment, its read at intake (and the
/// document's title) stormed: exactly one reply in the thread.
async fn comment(
    m: &Model,
    r: &FeishuRig,
    tag: &str,
    storm: Storm,
    row: &mut Row,
) -> anyhow::Result<()> {
    let doc = format!("doxcnReadStorm{tag}");
    r.fake.set_doc_title(&doc, "Read storm");
    let bot = r.fake.bot_open_id().to_string();
    let label = format!("comment {tag}");
    let (cid, _) =
        r.fake
            .add_comment_mentioning_bot(&doc, FEISHU_OWNER, &m.work(&label), "quoted", false);
    storm.arm(
        r,
        &format!("/open-apis/drive/v1/files/{doc}/comments/{cid}"),
    );
    storm.arm(r, "/open-apis/drive/v1/metas/batch_query");
    let ev = r
        .fake
        .events()
        .comment_add(&doc, "docx", &cid, None, FEISHU_OWNER, true);
    let frame = r.fake.push(&ev).await?;
    let answers = || super::faults_media::answers_in_thread(r, &doc, &cid, &bot);
    let deadline = Instant::now() + Duration::from_secs(60);
    while answers() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once ACKed the platform stops redelivering; a little longer, so a
    // late duplicate is counted too.
    let _ = r.fake.wait_for_ack(&frame, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    count(row, &[seen(answers())], false);
    Ok(())
}

/// fcxd killed and started again into storms on the bot's info (503, as
/// long as a call rides out) and the app's (rate limits): it connects, and
/// a message sent then is answered once.
async fn restart(m: &Model, r: &mut FeishuRig, i: usize, row: &mut Row) -> anyhow::Result<()> {
    Storm::Unavailable(CALL_RETRIES).arm(r, "/open-apis/bot/v3/info");
    Storm::RateLimit.arm(r, "/open-apis/application/v6/applications/me");
    let conns = r.fake.connects();
    r.restart_fcxd_after_kill9()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while r.fake.connects() <= conns {
        anyhow::ensure!(
            Instant::now() < deadline,
            "fcxd never connected after its restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (om, _) = push(r, &format!("oc_fs{i}"), &m.work(&format!("start {i}"))).await?;
    settle_card(r, &om, row).await;
    Ok(())
}
