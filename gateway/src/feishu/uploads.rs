//! Uploads for messages (feishu.md §3.6), on top of [`OpenApiClient`]:
//!
//! - images: `POST /open-apis/im/v1/images`, multipart `image_type=message`
//!   and `image`; at most 10 MB;
//! - files: `POST /open-apis/im/v1/files`, multipart `file_type` (opus, mp4,
//!   pdf, doc, xls, ppt or stream), `file_name` and `file`; at most 30 MB,
//!   not empty;
//!
//! and the IM `content` that sends what was uploaded (§2: `image`
//! `{"image_key"}`, `file` `{"file_key"}`).
//!
//! The multipart body is written here (a few fixed parts) rather than by
//! reqwest's `multipart` feature, which would add a dependency for it.
//! An upload carries no idempotency key: a resent upload only leaves an
//! unused key behind, so uploads are resent like any call, and the message
//! that shows the key carries the uuid.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::budget;
use super::http::{ApiError, OpenApiClient};

const IMAGES_PATH: &str = "/open-apis/im/v1/images";
const FILES_PATH: &str = "/open-apis/im/v1/files";

/// Largest image the platform takes as an image message.
pub(crate) const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024;
/// Largest file the platform takes.
pub(crate) const MAX_FILE_BYTES: u64 = 30 * 1024 * 1024;

/// A 30 MB upload needs more than the client's usual 30 s.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(180);

/// `file_type` of a file upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileType {
    Opus,
    Mp4,
    Pdf,
    Doc,
    Xls,
    Ppt,
    /// Anything else.
    Stream,
}

impl FileType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileType::Opus => "opus",
            FileType::Mp4 => "mp4",
            FileType::Pdf => "pdf",
            FileType::Doc => "doc",
            FileType::Xls => "xls",
            FileType::Ppt => "ppt",
            FileType::Stream => "stream",
        }
    }

    /// The type for a file name, by its extension (case-insensitive); the
    /// Office formats old and new share one type each.
    pub(crate) fn for_name(name: &str) -> Self {
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "opus" => FileType::Opus,
            "mp4" => FileType::Mp4,
            "pdf" => FileType::Pdf,
            "doc" | "docx" => FileType::Doc,
            "xls" | "xlsx" => FileType::Xls,
            "ppt" | "pptx" => FileType::Ppt,
            _ => FileType::Stream,
        }
    }
}

/// The image MIME type of `bytes`, read from their first bytes (never from
/// a name): the formats the platform shows as images.
pub(crate) fn image_mime(bytes: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| bytes.starts_with(p);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if starts(b"BM") && bytes.len() >= 26 {
        Some("image/bmp")
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some("image/tiff")
    } else if starts(b"\0\0\x01\0") && bytes.len() >= 22 {
        Some("image/x-icon")
    } else {
        None
    }
}

/// `msg_type: image` content for an uploaded image.
pub(crate) fn image_content(image_key: &str) -> String {
    json!({ "image_key": image_key }).to_string()
}

/// `msg_type: file` content for an uploaded file.
pub(crate) fn file_content(file_key: &str) -> String {
    json!({ "file_key": file_key }).to_string()
}

/// A `multipart/form-data` body (RFC 7578) of text fields and one file.
struct Multipart {
    boundary: String,
    body: Vec<u8>,
}

impl Multipart {
    fn new(capacity: usize) -> Self {
        let mut raw = [0u8; 16];
        rand::fill(&mut raw[..]);
        Multipart {
            boundary: format!("fcx-{}", hex::encode(raw)),
            body: Vec::with_capacity(capacity + 1024),
        }
    }

    fn head(&mut self, disposition: &str) {
        self.body
            .extend_from_slice(format!("--{}\r\n", self.boundary).as_bytes());
        self.body.extend_from_slice(
            format!("Content-Disposition: form-data; {disposition}\r\n").as_bytes(),
        );
    }

    fn text(mut self, name: &str, value: &str) -> Self {
        self.head(&format!("name=\"{name}\""));
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(value.as_bytes());
        self.body.extend_from_slice(b"\r\n");
        self
    }

    fn file(mut self, name: &str, file_name: &str, content_type: &str, bytes: &[u8]) -> Self {
        self.head(&format!(
            "name=\"{name}\"; filename=\"{}\"",
            quoted(file_name)
        ));
        self.body
            .extend_from_slice(format!("Content-Type: {content_type}\r\n\r\n").as_bytes());
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The `Content-Type` header and the body.
    fn finish(mut self) -> (String, Bytes) {
        self.body
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            Bytes::from(self.body),
        )
    }
}

/// A file name as a quoted header parameter: UTF-8 as browsers send it,
/// with what would end the parameter or the header replaced.
fn quoted(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// The upload calls. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Uploads {
    client: OpenApiClient,
}

impl Uploads {
    pub(crate) fn new(client: OpenApiClient) -> Self {
        Uploads { client }
    }

    async fn post(&self, path: &str, form: Multipart) -> Result<serde_json::Value, ApiError> {
        let (content_type, body) = form.finish();
        self.client
            .post_raw_budgeted(
                path,
                &content_type,
                body,
                true,
                UPLOAD_TIMEOUT,
                vec![("im.upload".into(), budget::IM_UPLOAD)],
            )
            .await
    }

    /// Uploads an image for a message; returns its `image_key`.
    pub(crate) async fn image(
        &self,
        name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<String, ApiError> {
        if bytes.len() as u64 > MAX_IMAGE_BYTES {
            return Err(ApiError::InvalidArgument("image larger than 10 MB".into()));
        }
        let form = Multipart::new(bytes.len())
            .text("image_type", "message")
            .file("image", name, mime, bytes);
        let data = self.post(IMAGES_PATH, form).await?;
        key(&data, "image_key", IMAGES_PATH)
    }

    /// Uploads a file for a message; returns its `file_key`.
    pub(crate) async fn file(
        &self,
        name: &str,
        file_type: FileType,
        bytes: &[u8],
    ) -> Result<String, ApiError> {
        if bytes.is_empty() || bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(ApiError::InvalidArgument(
                "files must be 1 byte to 30 MB".into(),
            ));
        }
        let form = Multipart::new(bytes.len())
            .text("file_type", file_type.as_str())
            .text("file_name", name)
            .file("file", name, "application/octet-stream", bytes);
        let data = self.post(FILES_PATH, form).await?;
        key(&data, "file_key", FILES_PATH)
    }
}

fn key(data: &serde_json::Value, field: &str, path: &str) -> Result<String, ApiError> {
    data.get(field)
        .and_then(serde_json::Value::as_str)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::Decode {
            path: path.to_string(),
            reason: format!("no {field} in the answer"),
            log_id: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_follow_the_extension() {
        for (name, want) in [
            ("voice.opus", "opus"),
            ("clip.MP4", "mp4"),
            ("paper.pdf", "pdf"),
            ("letter.doc", "doc"),
            ("letter.docx", "doc"),
            ("sheet.xlsx", "xls"),
            ("sheet.xls", "xls"),
            ("deck.pptx", "ppt"),
            ("build.log", "stream"),
            ("archive.tar.gz", "stream"),
            ("README", "stream"),
            (".pdf.txt", "stream"),
        ] {
            assert_eq!(FileType::for_name(name).as_str(), want, "{name}");
        }
    }

    #[test]
    fn images_are_recognised_by_their_bytes() {
        assert_eq!(image_mime(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(image_mime(b"\xff\xd8\xff\xe0jfif"), Some("image/jpeg"));
        assert_eq!(image_mime(b"GIF89a...."), Some("image/gif"));
        assert_eq!(image_mime(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_mime(b"just text, named x.png"), None);
        assert_eq!(image_mime(b"%PDF-1.7"), None);
        assert_eq!(image_mime(b""), None);
    }

    #[test]
    fn the_multipart_body_has_each_part_and_the_bytes_unchanged() {
        let bytes = b"\x00\x01binary\r\n--not-a-boundary\xff";
        let (ctype, body) = Multipart::new(bytes.len())
            .text("file_type", "stream")
            .text("file_name", "报告 \"v2\".bin")
            .file("file", "报告 \"v2\".bin", "application/octet-stream", bytes)
            .finish();
        let boundary = ctype
            .strip_prefix("multipart/form-data; boundary=")
            .expect("boundary");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")), "{text}");
        assert!(text.ends_with(&format!("--{boundary}--\r\n")), "{text}");
        assert!(
            text.contains("name=\"file_type\"\r\n\r\nstream\r\n"),
            "{text}"
        );
        assert!(
            text.contains("name=\"file\"; filename=\"报告 _v2_.bin\"\r\n"),
            "{text}"
        );
        let at = body
            .windows(bytes.len())
            .position(|w| w == bytes)
            .expect("the bytes, unchanged");
        assert_eq!(&body[at + bytes.len()..at + bytes.len() + 2], b"\r\n");
    }

    #[test]
    fn contents_name_the_uploaded_key() {
        assert_eq!(image_content("img_1"), r#"{"image_key":"img_1"}"#);
        assert_eq!(file_content("file_1"), r#"{"file_key":"file_1"}"#);
    }
}
