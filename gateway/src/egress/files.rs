//! Files for the chat (`FileOut`: `/sendfile`, Codex's outbox): the staged
//! copy the worker left in the profile's `outgoing/` directory is uploaded
//! and sent as an image message (an image by its bytes, up to 10 MB) or a
//! file message (up to 30 MB, `file_type` by extension), in the scope's
//! lane, so it keeps its place among the scope's messages.
//!
//! Exactly once, as far as the chat can tell: the message carries a uuid
//! made of the event's seq (a replay within the platform's hour is
//! de-duplicated), and a handled copy is replaced by an empty `<name>.sent`
//! marker, so a replay after a crash finds the marker and sends nothing.
//! Never silently lost: a file that cannot go (too large, refused by the
//! platform, gone) is named to the user with the reason.

use std::path::{Path, PathBuf};

use fcx_proto::v1 as pb;

use crate::egress::lanes::LaneCtx;
use crate::egress::reply::{self, Format};
use crate::feishu::http::{ApiError, OutgoingMessage};
use crate::feishu::uploads::{self, FileType, Uploads};

/// Sends `f` in reply to the event's message; tells the user why when it
/// cannot.
pub(crate) async fn send(ctx: &LaneCtx, ev: &pb::WorkerEvent, f: &pb::FileOut, format: Format) {
    let Some((path, marker)) = staged_paths(&ctx.outgoing, &f.staged) else {
        tracing::error!(staged = %f.staged, "a file event names no valid staged copy");
        return tell(ctx, ev, f, "fcx lost track of it", format).await;
    };
    if tokio::fs::try_exists(&marker).await.unwrap_or(false) {
        tracing::debug!(seq = ev.seq, "file already handled");
        return;
    }
    let outcome = match tokio::fs::read(&path).await {
        Ok(bytes) => deliver(ctx, ev, f, &bytes).await,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("its staged copy is gone (kept for a day)".to_string())
        }
        Err(e) => Err(format!("its staged copy cannot be read ({})", e.kind())),
    };
    match &outcome {
        Ok(kind) => {
            tracing::info!(scope = %ev.scope, seq = ev.seq, size = f.size, kind, "file sent")
        }
        Err(why) => {
            tracing::warn!(scope = %ev.scope, seq = ev.seq, %why, "file not sent");
            tell(ctx, ev, f, why, format).await;
        }
    }
    // Handled either way: the user has the file or the reason.
    if let Err(e) = tokio::fs::write(&marker, b"").await {
        tracing::warn!(error = %e, "cannot mark a sent file");
    }
    if let Err(e) = tokio::fs::remove_file(&path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "cannot remove a sent file's staged copy");
    }
}

/// The staged copy and its marker, for a name the worker may have written
/// (letters, digits, `-`, `_`: never a path).
fn staged_paths(dir: &Path, staged: &str) -> Option<(PathBuf, PathBuf)> {
    let ok = !staged.is_empty()
        && staged.len() <= 64
        && staged
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    ok.then(|| (dir.join(staged), dir.join(format!("{staged}.sent"))))
}

/// Uploads and sends; `Ok` names what it went as.
async fn deliver(
    ctx: &LaneCtx,
    ev: &pb::WorkerEvent,
    f: &pb::FileOut,
    bytes: &[u8],
) -> Result<&'static str, String> {
    let size = bytes.len() as u64;
    let up = Uploads::new(ctx.http.clone());
    let (msg_type, content) = match uploads::image_mime(bytes) {
        Some(mime) if size <= uploads::MAX_IMAGE_BYTES => {
            let key = up.image(&f.name, mime, bytes).await.map_err(|e| why(&e))?;
            ("image", uploads::image_content(&key))
        }
        _ if size == 0 => return Err("it is empty".into()),
        _ if size > uploads::MAX_FILE_BYTES => {
            return Err(format!(
                "it is too large: {} (the chat takes files up to 30 MB)",
                mb(size)
            ));
        }
        _ => {
            let key = up
                .file(&f.name, FileType::for_name(&f.name), bytes)
                .await
                .map_err(|e| why(&e))?;
            ("file", uploads::file_content(&key))
        }
    };
    reply::send_one(
        &ctx.http,
        &ev.reply_to,
        &pb::Scope::chat_of(&ev.scope),
        pb::Scope::key_is_topic(&ev.scope),
        OutgoingMessage::new(msg_type, content),
        &format!("fcxf{}-{}", ctx.tag, ev.seq),
    )
    .await
    .map_err(|e| why(&e))?;
    Ok(msg_type)
}

fn mb(n: u64) -> String {
    format!("{:.1} MB", n as f64 / (1024.0 * 1024.0))
}

/// A platform failure as the user reads it (the code and the platform's
/// own words kept: they name a missing permission, for one).
fn why(e: &ApiError) -> String {
    match e {
        ApiError::Api { code, msg, .. } => format!("the platform refused it (code {code}: {msg})"),
        ApiError::RateLimited { .. } => "the platform's rate limit did not clear in time".into(),
        ApiError::Transport { .. } | ApiError::Http { .. } => {
            "the platform could not be reached".into()
        }
        other => format!("it could not be uploaded ({other})"),
    }
}

/// How to get the file sent after all: a file from Codex's outbox is gone
/// from it (the outbox is emptied when collected), so only asking again
/// brings it back; `/sendfile` can simply be repeated.
fn again(f: &pb::FileOut) -> String {
    if f.source.starts_with(".fcx/outbox/") {
        " Codex's outbox was emptied: ask for the file again to have it sent.".into()
    } else if f.source.is_empty() {
        String::new()
    } else {
        format!(" Try `/sendfile {}` again later.", f.source)
    }
}

/// Names the file and the reason in the chat (its own uuid: a replay does
/// not repeat it).
async fn tell(ctx: &LaneCtx, ev: &pb::WorkerEvent, f: &pb::FileOut, why: &str, format: Format) {
    let what = if f.source.is_empty() {
        &f.name
    } else {
        &f.source
    };
    let text = format!("❌ `{what}` could not be sent: {why}.{}", again(f));
    reply::deliver_markdown(
        &ctx.http,
        &ev.reply_to,
        &pb::Scope::chat_of(&ev.scope),
        pb::Scope::key_is_topic(&ev.scope),
        &text,
        &format!("fcxfe{}-{}", ctx.tag, ev.seq),
        format,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_staged_names_are_read() {
        let dir = Path::new("/o");
        assert_eq!(
            staged_paths(dir, "ab12-_x"),
            Some((
                PathBuf::from("/o/ab12-_x"),
                PathBuf::from("/o/ab12-_x.sent")
            ))
        );
        for bad in ["", "../x", "a/b", ".", "a.sent", &"a".repeat(65)] {
            assert_eq!(staged_paths(dir, bad), None, "{bad}");
        }
    }

    #[test]
    fn platform_failures_read_as_reasons() {
        let e = ApiError::Api {
            path: "/open-apis/im/v1/files".into(),
            status: 400,
            code: 99991672,
            msg: "Access denied. [im:resource]".into(),
            log_id: None,
        };
        assert_eq!(
            why(&e),
            "the platform refused it (code 99991672: Access denied. [im:resource])"
        );
        assert_eq!(mb(31 * 1024 * 1024), "31.0 MB");
    }

    /// "Try again later" only where trying again can work: a file from
    /// the outbox is gone from it once collected.
    #[test]
    fn the_way_to_try_again_depends_on_where_the_file_came_from() {
        let f = |source: &str| pb::FileOut {
            source: source.into(),
            ..Default::default()
        };
        assert!(again(&f(".fcx/outbox/0123456789ab/r.txt")).contains("ask for the file again"));
        assert_eq!(
            again(&f("out/r.txt")),
            " Try `/sendfile out/r.txt` again later."
        );
        assert_eq!(again(&f("")), "");
    }
}
