//! Message resources (feishu.md §3.6): the bytes of an image or file a user
//! sent, `GET /open-apis/im/v1/messages/{message_id}/resources/{file_key}
//! ?type=image|file`, on top of [`OpenApiClient`].
//!
//! Platform facts kept here: `image` for images (also `img` keys inside a
//! post), `file` for files, audio and video; at most 100 MB; stickers are
//! not downloadable; resources inside merge-forward children or cards are
//! refused with 234043.

use super::http::{ApiError, OpenApiClient, segment};

/// The platform's own cap on one resource.
pub(crate) const PLATFORM_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// "The resource belongs to a forwarded message or a card": not for bots.
pub(crate) const REFUSED_FORWARDED: i64 = 234043;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResourceType {
    /// Images, including `img` keys inside posts.
    Image,
    /// Files, audio and video.
    File,
}

impl ResourceType {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            ResourceType::Image => "image",
            ResourceType::File => "file",
        }
    }
}

/// The resource calls. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Resources {
    client: OpenApiClient,
}

impl Resources {
    pub(crate) fn new(client: OpenApiClient) -> Self {
        Resources { client }
    }

    /// The bytes of `file_key` sent in `message_id`, refused (without
    /// reading on) above `max_bytes`.
    pub(crate) async fn download(
        &self,
        message_id: &str,
        file_key: &str,
        kind: ResourceType,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let path = format!(
            "/open-apis/im/v1/messages/{}/resources/{}",
            segment(message_id)?,
            segment(file_key)?
        );
        self.client
            .get_bytes(
                path,
                &[("type", kind.as_str())],
                max_bytes.min(PLATFORM_MAX_BYTES),
            )
            .await
    }
}

/// What a user is told when a download fails: one line, no log ids.
pub(crate) fn failure_reason(e: &ApiError) -> String {
    match e {
        ApiError::TooLarge { limit, .. } => format!("too big (over {})", human_bytes(*limit)),
        _ if e.code() == Some(REFUSED_FORWARDED) => {
            "the platform does not let bots download files inside forwarded messages or cards (234043)"
                .into()
        }
        _ => match e.code() {
            Some(code) => format!("the platform refused the download ({code})"),
            None => "the download failed".into(),
        },
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= 1024 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}
