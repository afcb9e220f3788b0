//! Document comments as a surface: a run that answers a mention in a
//! comment is shown only once it ended, as a plain-text reply in the same
//! comment thread ([`CommentSurface`], a [`FinalSurface`]).
//!
//! - Only the answer is posted, Markdown reduced to plain text; tool calls
//!   and their output never appear.
//! - Long answers are split into up to [`MAX_PARTS`] replies of at most
//!   [`MAX_REPLY_CHARS`] characters; beyond that the last part ends with a
//!   note saying how much was left out.
//! - A whole-document comment, or one that was resolved meanwhile (the
//!   platform refuses the reply with 1069302), gets a new whole-document
//!   comment that mentions the asker instead.
//! - A failed, stopped or timed-out run gets a short plain-text reply: never
//!   silence.
//! - No duplicates when an answer is posted again (an fcxd restart replays
//!   a run whose end it had not yet recorded): parts already in the thread
//!   after the question, from the bot, are not posted twice.
//!
//! Where to answer travels with the run as its carrier message id (the
//! [`Target`] the ingress side built), so a restarted fcxd needs no state
//! of its own to answer.

use std::time::Duration;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb};
use futures::future::BoxFuture;

use crate::egress::render::{RunState, command_markdown, markdown_to_plain};
use crate::egress::surface::FinalSurface;
use crate::feishu::drive::{self, Drive};
use crate::feishu::http::ApiError;

/// Characters per reply. The platform's limit for one comment reply is
/// not documented in what we could read; this stays well inside any limit
/// seen for comment text (unverified).
pub(crate) const MAX_REPLY_CHARS: usize = 1000;
/// Replies one answer may take; the rest is cut with a note.
pub(crate) const MAX_PARTS: usize = 4;
/// Characters of a failure's detail shown.
const MAX_DETAIL_CHARS: usize = 300;

const CARRIER_PREFIX: &str = "fcxcomment";

/// Where a comment run answers: the document, the comment, the reply that
/// mentioned the bot, whether the comment is on the whole document, and
/// who asked. Carried as the run's message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) kind: String,
    pub(crate) file_token: String,
    pub(crate) comment_id: String,
    /// The reply that mentioned the bot ("" when it was the comment's own
    /// first reply and the platform named none).
    pub(crate) reply_id: String,
    pub(crate) whole: bool,
    /// The asker's open_id.
    pub(crate) user: String,
}

fn part_ok(s: &str) -> bool {
    s.len() <= 128
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
}

impl Target {
    /// The carrier message id for this target.
    pub(crate) fn carrier(&self) -> String {
        format!(
            "{CARRIER_PREFIX}/{}/{}/{}/{}/{}/{}",
            self.kind,
            self.file_token,
            self.comment_id,
            self.reply_id,
            if self.whole { "w" } else { "a" },
            self.user
        )
    }

    /// The target a carrier names; `None` for a chat message id.
    pub(crate) fn parse(carrier: &str) -> Option<Target> {
        let rest = carrier.strip_prefix(CARRIER_PREFIX)?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [kind, file, comment, reply, whole, user] = parts.as_slice() else {
            return None;
        };
        if !parts.iter().all(|p| part_ok(p)) || file.is_empty() || comment.is_empty() {
            return None;
        }
        Some(Target {
            kind: kind.to_string(),
            file_token: file.to_string(),
            comment_id: comment.to_string(),
            reply_id: reply.to_string(),
            whole: *whole == "w",
            user: user.to_string(),
        })
    }
}

/// `text` cut into replies that fit the platform: at most
/// [`MAX_PARTS`] of at most [`MAX_REPLY_CHARS`] characters, split at line
/// ends where possible; a cut answer says so at its end.
pub(crate) fn parts(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0usize;
    let flush = |out: &mut Vec<String>, cur: &mut String, cur_len: &mut usize| {
        let t = cur.trim_end();
        if !t.trim().is_empty() {
            out.push(t.to_string());
        }
        cur.clear();
        *cur_len = 0;
    };
    for line in text.split_inclusive('\n') {
        let n = line.chars().count();
        if cur_len + n > MAX_REPLY_CHARS {
            flush(&mut out, &mut cur, &mut cur_len);
        }
        if n > MAX_REPLY_CHARS {
            let chars: Vec<char> = line.chars().collect();
            for chunk in chars.chunks(MAX_REPLY_CHARS) {
                let piece: String = chunk.iter().collect();
                if chunk.len() == MAX_REPLY_CHARS {
                    cur = piece;
                    flush(&mut out, &mut cur, &mut cur_len);
                } else {
                    cur_len = chunk.len();
                    cur = piece;
                }
            }
            continue;
        }
        cur.push_str(line);
        cur_len += n;
    }
    flush(&mut out, &mut cur, &mut cur_len);
    if out.len() <= MAX_PARTS {
        return out;
    }
    let left: usize = out[MAX_PARTS - 1..].iter().map(|p| p.chars().count()).sum();
    let mut kept: Vec<String> = out.into_iter().take(MAX_PARTS).collect();
    let last = kept.pop().unwrap_or_default();
    let note_for = |n: usize| format!("\n… (answer shortened: {n} more characters not shown)");
    // The note's own length counts toward the limit.
    let room = MAX_REPLY_CHARS.saturating_sub(note_for(left).chars().count());
    let head: String = last.chars().take(room).collect();
    let cut = left - head.chars().count();
    kept.push(format!("{}{}", head.trim_end(), note_for(cut)));
    kept
}

fn short(s: &str, max: usize) -> String {
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        return one;
    }
    let mut t: String = one.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// What a comment thread shows for a run's end: the answer as plain text,
/// or a one-line account of why there is none.
pub(crate) fn answer_text(done: &pb::Done, answer: &str) -> String {
    let reason = pb::DoneReason::try_from(done.reason).unwrap_or(pb::DoneReason::Unspecified);
    let plain = markdown_to_plain(answer).trim().to_string();
    let detail = short(&done.detail, MAX_DETAIL_CHARS);
    let status = match reason {
        pb::DoneReason::Completed if plain.is_empty() => {
            return "Codex finished without a text answer.".into();
        }
        pb::DoneReason::Completed => return plain,
        pb::DoneReason::Interrupted if detail.is_empty() => "Interrupted.".to_string(),
        pb::DoneReason::Interrupted => format!("Interrupted ({detail})."),
        pb::DoneReason::TimedOut => format!("Timed out: {detail}."),
        pb::DoneReason::Failed => format!("Codex could not answer: {detail}."),
        pb::DoneReason::Unspecified => "The run ended without an answer.".to_string(),
    };
    if plain.is_empty() {
        status
    } else {
        format!("{plain}\n\n{status}")
    }
}

/// How long an answer keeps being posted again through transient failures
/// (the platform's 5xx past the client's retries, a rate limit that did not
/// clear, no connection): a comment thread has nobody else to tell, so
/// giving up at the first failed call would lose the answer in silence.
const RETRY_WINDOW: Duration = Duration::from_secs(60);
const RETRY_BACKOFF_START: Duration = Duration::from_secs(1);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Posts `text` under `target` (split as [`parts`] says), skipping parts
/// the bot already posted after the question, and tries again (reading the
/// thread first, so a part the platform kept despite an error is not
/// posted twice) while failures are transient, within [`RETRY_WINDOW`].
/// Other failures are logged: there is nobody else to tell.
pub(crate) async fn post(drive: &Drive, bot: &str, target: &Target, text: &str) {
    let started = tokio::time::Instant::now();
    let mut pause = RETRY_BACKOFF_START;
    let mut first = true;
    loop {
        match post_pass(drive, bot, target, text, first).await {
            Ok(()) => return,
            Err(e) if e.transient() && started.elapsed() + pause < RETRY_WINDOW => {
                tracing::warn!(comment = %target.comment_id, error = %e, retry_in_ms = pause.as_millis() as u64, "cannot answer a comment yet; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_BACKOFF_MAX);
                first = false;
            }
            Err(e) => {
                tracing::warn!(comment = %target.comment_id, error = %e, "cannot answer a comment");
                return;
            }
        }
    }
}

/// One pass of [`post`]. On the `first` a thread that cannot be read is
/// answered anyway (as a restarted fcxd replaying a run would); on a later
/// pass an earlier one may have posted, so an unread thread is a failure.
async fn post_pass(
    drive: &Drive,
    bot: &str,
    target: &Target,
    text: &str,
    first: bool,
) -> Result<(), ApiError> {
    let parts = parts(text);
    let mut whole = target.whole;
    let mut posted = if whole {
        Vec::new()
    } else {
        match already_replied(drive, bot, target).await {
            Ok(p) => p,
            Err(e) if !first => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the comment thread before answering");
                Vec::new()
            }
        }
    };
    let mut whole_posted: Option<Vec<String>> = None;
    for part in parts {
        if !whole {
            if let Some(i) = posted.iter().position(|p| *p == part) {
                posted.remove(i);
                tracing::info!(comment = %target.comment_id, "this part of the answer is already in the thread; not posting it again");
                continue;
            }
            match drive
                .reply(&target.file_token, &target.kind, &target.comment_id, &part)
                .await
            {
                Ok(_) => continue,
                Err(e) if e.code() == Some(drive::CANNOT_REPLY) => {
                    tracing::info!(comment = %target.comment_id, "the comment takes no replies (resolved or whole-document); answering with a new comment");
                    whole = true;
                }
                Err(e) => return Err(e),
            }
        }
        if !drive::takes_whole_comments(&target.kind) {
            tracing::warn!(kind = %target.kind, comment = %target.comment_id, "the comment cannot be answered: no replies, and this kind of document takes no new whole-document comment");
            return Ok(());
        }
        let seen = match &mut whole_posted {
            Some(s) => s,
            None => match already_commented(drive, bot, target).await {
                Ok(s) => whole_posted.insert(s),
                Err(e) if !first => return Err(e),
                Err(_) => whole_posted.insert(Vec::new()),
            },
        };
        if let Some(i) = seen.iter().position(|p| *p == part) {
            seen.remove(i);
            tracing::info!(comment = %target.comment_id, "this part of the answer is already a comment; not posting it again");
            continue;
        }
        let mention = Some(target.user.as_str()).filter(|u| !u.is_empty());
        drive
            .add_whole(&target.file_token, &target.kind, &part, mention)
            .await?;
    }
    Ok(())
}

/// Texts of the bot's replies after the question in `target`'s thread.
async fn already_replied(
    drive: &Drive,
    bot: &str,
    target: &Target,
) -> Result<Vec<String>, ApiError> {
    let replies = drive
        .replies(&target.file_token, &target.kind, &target.comment_id)
        .await?;
    let from = if target.reply_id.is_empty() {
        0
    } else {
        replies
            .iter()
            .position(|r| r.reply_id == target.reply_id)
            .unwrap_or(replies.len())
    };
    Ok(replies
        .iter()
        .skip(from + 1)
        .filter(|r| !bot.is_empty() && r.user_id == bot)
        .map(|r| r.text.clone())
        .collect())
}

/// Texts of the bot's whole-document comments made since the question
/// (the mention of the asker stripped).
async fn already_commented(
    drive: &Drive,
    bot: &str,
    target: &Target,
) -> Result<Vec<String>, ApiError> {
    if bot.is_empty() {
        return Ok(Vec::new());
    }
    let asked_at = match drive
        .comment(&target.file_token, &target.kind, &target.comment_id)
        .await
    {
        Ok(c) => c
            .replies
            .iter()
            .find(|r| target.reply_id.is_empty() || r.reply_id == target.reply_id)
            .map(|r| r.create_time)
            .unwrap_or(0),
        Err(_) => 0,
    };
    let prefix = format!("@{} ", target.user);
    Ok(drive
        .whole_comments(&target.file_token, &target.kind)
        .await?
        .into_iter()
        .filter(|c| c.user_id == bot)
        .filter_map(|c| c.replies.into_iter().next())
        .filter(|r| r.create_time >= asked_at)
        .map(|r| r.text.strip_prefix(&prefix).unwrap_or(&r.text).to_string())
        .collect())
}

/// The comment surface of one comment run's lane.
pub(crate) struct CommentSurface {
    pub(crate) drive: Drive,
    /// The bot's open_id: its own earlier replies are recognised by it.
    pub(crate) bot: String,
}

impl CommentSurface {
    async fn answer(&self, reply_to: &str, text: &str) {
        match Target::parse(reply_to) {
            Some(t) => post(&self.drive, &self.bot, &t, text).await,
            None => {
                tracing::warn!("a comment run's event names no comment to answer; nothing posted")
            }
        }
    }
}

impl FinalSurface for CommentSurface {
    fn post_final<'a>(
        &'a self,
        done: &'a pb::WorkerEvent,
        state: &'a RunState,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(Kind::Done(d)) = &done.kind else {
                return;
            };
            let text = answer_text(d, &state.answer());
            self.answer(&done.reply_to, &text).await;
        })
    }

    fn post_event<'a>(&'a self, ev: &'a pb::WorkerEvent) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let text = match &ev.kind {
                // A run this gateway never saw start.
                Some(Kind::Done(d)) => answer_text(d, &d.final_text),
                Some(Kind::CommandReply(c)) => {
                    markdown_to_plain(&command_markdown(c)).trim().to_string()
                }
                // Notices inside a run ("starting a new session") are
                // not worth a reply of their own; the answer follows.
                Some(Kind::Notice(n)) if ev.run_id.is_empty() => n.text.clone(),
                _ => return,
            };
            if !text.is_empty() {
                self.answer(&ev.reply_to, &text).await;
            }
        })
    }
}

#[cfg(test)]
#[path = "comment_tests.rs"]
mod tests;
