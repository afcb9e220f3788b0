//! Attachments in, the worker's side: the policy (limits, image types) and
//! getting a run's attachments to Codex.
//!
//! fcxd downloads each accepted message's attachments into the profile's
//! media store under the limits stated in `Hello` ([`limits`]) and writes
//! one manifest per message (`fcx_proto::media` names the files). Before a
//! run builds its prompt, [`prepare`] waits for its messages' manifests,
//! applies the per-run limits, checks images on their bytes, and copies
//! everything into `<workspace>/.fcx/inbox/`. Images also go to Codex as
//! images. Whatever does not make it is marked `skipped` with the reason,
//! which the prompt lists and the user is told.

pub(crate) mod inbox;
pub(crate) mod sniff;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fcx_proto::media::{blob_path, is_hash, manifest_path};
use fcx_proto::v1::{Attachment, AttachmentKind, Inbound, MediaLimits, MediaManifest};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

/// Attachments one run passes to Codex.
pub(crate) const MAX_PER_RUN: u32 = 8;
/// Bytes of one attachment.
pub(crate) const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;
/// Bytes of all attachments of one run.
pub(crate) const MAX_RUN_BYTES: u64 = 50 * 1024 * 1024;
/// How long a run waits for fcxd to finish its downloads.
pub(crate) const FETCH_WAIT: Duration = Duration::from_secs(300);
/// The answer to a message that is only a sticker.
pub(crate) const STICKER_ANSWER: &str =
    "Stickers cannot be passed to Codex; send a screenshot or the file instead.";

/// The limits stated in `Hello`.
pub(crate) fn limits() -> MediaLimits {
    MediaLimits {
        max_per_run: MAX_PER_RUN,
        max_file_bytes: MAX_FILE_BYTES,
        max_run_bytes: MAX_RUN_BYTES,
        image_types: sniff::IMAGE_TYPES.iter().map(|s| s.to_string()).collect(),
    }
}

/// Whether fcxd should download something for this message.
pub(crate) fn downloadable(m: &Inbound) -> bool {
    m.attachments
        .iter()
        .any(|a| a.kind() != AttachmentKind::Sticker)
}

/// A message that is nothing but stickers (answered, never run).
pub(crate) fn only_stickers(m: &Inbound) -> bool {
    m.text.trim().is_empty()
        && !m.attachments.is_empty()
        && m.attachments
            .iter()
            .all(|a| a.kind() == AttachmentKind::Sticker)
}

/// A message that is attachments only (it waits for the text that usually
/// follows).
pub(crate) fn attachments_only(m: &Inbound) -> bool {
    m.text.trim().is_empty() && downloadable(m)
}

/// What [`prepare`] produced besides the annotated attachments.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// Absolute paths of the images Codex gets as images.
    pub(crate) images: Vec<PathBuf>,
    /// One line per skipped attachment, for the user.
    pub(crate) skipped: Vec<String>,
    /// Bytes passed to the run.
    pub(crate) bytes: u64,
}

/// Waits (up to `wait`, or until `cancel`) for the manifests of
/// `messages`, then sets each attachment's `local_path` (relative to
/// `workspace`) or `skipped`.
pub(crate) async fn prepare(
    media: &Path,
    workspace: &Path,
    messages: &mut [Inbound],
    wait: Duration,
    cancel: &CancellationToken,
) -> Prepared {
    let pending: Vec<String> = messages
        .iter()
        .filter(|m| downloadable(m))
        .map(|m| m.message_id.clone())
        .collect();
    if pending.is_empty() && messages.iter().all(|m| m.attachments.is_empty()) {
        return Prepared::default();
    }
    // fcxd writes each manifest with one rename and has no way to call the
    // worker, so the run looks for it: a check every 100 ms costs nothing
    // next to a download, and a /stop ends the wait at once.
    let deadline = tokio::time::Instant::now() + wait;
    while !pending.iter().all(|id| manifest_path(media, id).exists()) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = cancel.cancelled() => break,
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    let (media, workspace) = (media.to_path_buf(), workspace.to_path_buf());
    let mut owned = messages.to_vec();
    let done = tokio::task::spawn_blocking(move || {
        let p = place_all(&media, &workspace, &mut owned);
        (owned, p)
    })
    .await;
    match done {
        Ok((annotated, p)) => {
            messages.clone_from_slice(&annotated);
            p
        }
        Err(_) => Prepared::default(),
    }
}

fn manifest(media: &Path, message_id: &str) -> Option<MediaManifest> {
    let bytes = std::fs::read(manifest_path(media, message_id)).ok()?;
    MediaManifest::decode(bytes.as_slice()).ok()
}

fn human(n: u64) -> String {
    format!("{} MiB", n / (1024 * 1024))
}

/// The per-run limits, the byte checks and the inbox copies.
pub(crate) fn place_all(media: &Path, workspace: &Path, messages: &mut [Inbound]) -> Prepared {
    let mut out = Prepared::default();
    let mut used = 0u32;
    for m in messages.iter_mut() {
        let man = if downloadable(m) {
            manifest(media, &m.message_id)
        } else {
            None
        };
        for (i, a) in m.attachments.iter_mut().enumerate() {
            let item = man.as_ref().and_then(|mf| {
                mf.items
                    .get(i)
                    .filter(|it| it.key == a.key)
                    .or_else(|| mf.items.iter().find(|it| it.key == a.key))
            });
            let verdict = match item {
                _ if a.kind() == AttachmentKind::Sticker => {
                    Err("stickers cannot be passed to Codex".to_string())
                }
                None => Err("the download did not finish in time".into()),
                Some(it) if !it.skipped.is_empty() => Err(it.skipped.clone()),
                Some(_) if used >= MAX_PER_RUN => Err(format!(
                    "too many attachments (at most {MAX_PER_RUN} per run)"
                )),
                Some(it) if it.size > MAX_FILE_BYTES => {
                    Err(format!("too big (over {})", human(MAX_FILE_BYTES)))
                }
                Some(it) if out.bytes + it.size > MAX_RUN_BYTES => Err(format!(
                    "over the {} this run may carry",
                    human(MAX_RUN_BYTES)
                )),
                Some(it) if !is_hash(&it.sha256) => Err("the download failed".into()),
                Some(it) => accept(media, workspace, a, &it.sha256, it.size, &mut out),
            };
            match verdict {
                Ok(()) => used += 1,
                Err(why) => {
                    out.skipped.push(format!("{}: {why}", shown_name(a)));
                    a.skipped = why;
                    a.local_path.clear();
                }
            }
        }
    }
    out
}

/// How the user and the prompt name an attachment.
pub(crate) fn shown_name(a: &Attachment) -> String {
    if a.name.is_empty() {
        let word = kind_word(a);
        let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {word}")
    } else {
        a.name.clone()
    }
}

fn kind_word(a: &Attachment) -> &'static str {
    match a.kind() {
        AttachmentKind::Unspecified => "attachment",
        k => k.word(),
    }
}

/// Check one stored attachment and copy it into the inbox.
fn accept(
    media: &Path,
    workspace: &Path,
    a: &mut Attachment,
    sha: &str,
    size: u64,
    out: &mut Prepared,
) -> Result<(), String> {
    let src = blob_path(media, sha);
    let mut head = [0u8; 16];
    let n = std::fs::File::open(&src)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|_| "it is no longer in fcx's store".to_string())?;
    let short = &sha[..8];
    let name = if a.kind() == AttachmentKind::Image {
        let mime = sniff::image_type(&head[..n])
            .filter(|t| sniff::IMAGE_TYPES.contains(t))
            .ok_or_else(|| "not a supported image type (png, jpeg, gif or webp)".to_string())?;
        format!("image-{short}.{}", sniff::extension(mime))
    } else {
        inbox::sanitize(&a.name, &format!("{}-{short}", kind_word(a)))
    };
    let rel = inbox::place(workspace, &name, &src, size, sha)
        .map_err(|e| format!("it could not be saved in the workspace ({e})"))?;
    if a.kind() == AttachmentKind::Image {
        out.images.push(workspace.join(&rel));
    }
    out.bytes += size;
    a.local_path = rel.display().to_string();
    a.size = size;
    Ok(())
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
