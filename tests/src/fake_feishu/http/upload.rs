//! IM v1 uploads (reference §3.6): `POST /open-apis/im/v1/images`
//! (multipart `image_type` = message|avatar, `image`; at most 10 MB) and
//! `POST /open-apis/im/v1/files` (multipart `file_type` ∈ opus|mp4|pdf|doc|
//! xls|ppt|stream, `file_name`, optional `duration`, `file`; at most 30 MB,
//! not empty). What was uploaded is kept, so tests can check the bytes a
//! user would download, and only uploaded keys can be sent as messages.

use std::sync::Arc;

use serde_json::json;

use super::{Answer, FIELD_VALIDATION, Req};
use crate::fake_feishu::state::{Shared, Upload, lock};

/// 10 MB and 30 MB, read as MiB (the reference says "MB"; unverified which).
pub(crate) const IMAGE_LIMIT_BYTES: usize = 10 * 1024 * 1024;
pub(crate) const FILE_LIMIT_BYTES: usize = 30 * 1024 * 1024;

// Guess: the reference names no codes for uploads; these are the IM
// resource module's (234xxx) as peers report them.
/// The file or image is larger than the API takes.
pub(crate) const UPLOAD_TOO_LARGE: i64 = 234006;
/// The file is empty.
pub(crate) const UPLOAD_EMPTY: i64 = 234010;
/// The image's bytes are not an image format the platform reads.
pub(crate) const UPLOAD_NOT_AN_IMAGE: i64 = 234011;

const FILE_TYPES: [&str; 7] = ["opus", "mp4", "pdf", "doc", "xls", "ppt", "stream"];

pub(super) fn route(shared: &Arc<Shared>, r: &Req, what: &str) -> Answer {
    // Guess: uploads share the IM APIs' 50/s and 1000/min per app.
    if let Err(a) = super::app_limit(shared, "im.upload") {
        return a;
    }
    let parts = match parse(r) {
        Ok(p) => p,
        Err(why) => return field_error(&why),
    };
    match what {
        "images" => image(shared, &parts),
        _ => file(shared, &parts),
    }
}

fn field_error(what: &str) -> Answer {
    Answer::err(FIELD_VALIDATION, format!("field validation failed: {what}"))
}

/// One part of a `multipart/form-data` body.
#[derive(Debug)]
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

fn text<'a>(parts: &'a [Part], name: &str) -> Option<&'a str> {
    parts
        .iter()
        .find(|p| p.name == name && p.file_name.is_none())
        .and_then(|p| std::str::from_utf8(&p.bytes).ok())
}

fn file_part<'a>(parts: &'a [Part], name: &str) -> Option<&'a Part> {
    parts.iter().find(|p| p.name == name)
}

fn image(shared: &Shared, parts: &[Part]) -> Answer {
    match text(parts, "image_type") {
        Some("message" | "avatar") => {}
        _ => return field_error("image_type is required: message|avatar"),
    }
    let Some(img) = file_part(parts, "image") else {
        return field_error("image is required");
    };
    if img.bytes.len() > IMAGE_LIMIT_BYTES {
        return Answer::err(UPLOAD_TOO_LARGE, "The image exceeds the 10MB limit.");
    }
    if img.bytes.is_empty() {
        return Answer::err(UPLOAD_EMPTY, "The image is empty.");
    }
    if !looks_like_image(&img.bytes) {
        return Answer::err(UPLOAD_NOT_AN_IMAGE, "Can't recognize the image format.");
    }
    let key = shared.new_id("img_v3_");
    keep(
        shared,
        &key,
        "image",
        "",
        img.file_name.as_deref().unwrap_or(""),
        img,
    );
    Answer::ok(json!({ "image_key": key }))
}

fn file(shared: &Shared, parts: &[Part]) -> Answer {
    let Some(file_type) = text(parts, "file_type").filter(|t| FILE_TYPES.contains(t)) else {
        return field_error("file_type is required: opus|mp4|pdf|doc|xls|ppt|stream");
    };
    let Some(file_name) = text(parts, "file_name").filter(|n| !n.is_empty()) else {
        return field_error("file_name is required");
    };
    let Some(f) = file_part(parts, "file") else {
        return field_error("file is required");
    };
    if f.bytes.is_empty() {
        return Answer::err(UPLOAD_EMPTY, "File size can't be 0.");
    }
    if f.bytes.len() > FILE_LIMIT_BYTES {
        return Answer::err(UPLOAD_TOO_LARGE, "The file exceeds the 30MB limit.");
    }
    let key = shared.new_id("file_v3_");
    // The `file_name` field is the name the chat shows.
    keep(shared, &key, "file", file_type, file_name, f);
    Answer::ok(json!({ "file_key": key }))
}

fn keep(shared: &Shared, key: &str, kind: &str, file_type: &str, file_name: &str, p: &Part) {
    lock(&shared.inner).uploads.insert(
        key.to_owned(),
        Upload {
            key: key.to_owned(),
            kind: kind.to_owned(),
            file_type: file_type.to_owned(),
            file_name: file_name.to_owned(),
            content_type: p.content_type.clone().unwrap_or_default(),
            bytes: p.bytes.clone(),
        },
    );
}

/// PNG, JPEG, GIF, WEBP, BMP, TIFF, ICO by their first bytes (the formats
/// the platform documents for images; unverified beyond the list).
fn looks_like_image(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
        || b.starts_with(b"\xff\xd8\xff")
        || b.starts_with(b"GIF8")
        || (b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP")
        || b.starts_with(b"BM")
        || b.starts_with(b"II*\0")
        || b.starts_with(b"MM\0*")
        || b.starts_with(b"\0\0\x01\0")
}

/// Splits a `multipart/form-data` body (RFC 7578) into its parts.
fn parse(r: &Req) -> Result<Vec<Part>, String> {
    let ctype = r.headers.get("content-type").map_or("", String::as_str);
    if !ctype
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Err("the body must be multipart/form-data".into());
    }
    let boundary = ctype
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("the multipart boundary is missing")?;
    let delim = format!("--{boundary}").into_bytes();
    let body = &r.raw[..];
    let mut parts = Vec::new();
    let mut at = find(body, &delim, 0).ok_or("no multipart part")?;
    loop {
        let after = at + delim.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        let start = after
            + if body[after..].starts_with(b"\r\n") {
                2
            } else {
                return Err("malformed multipart delimiter".into());
            };
        let next_delim = [b"\r\n".as_slice(), &delim].concat();
        let end = find(body, &next_delim, start).ok_or("unterminated multipart part")?;
        parts.push(part(&body[start..end])?);
        at = end + 2;
    }
}

fn part(raw: &[u8]) -> Result<Part, String> {
    let split = find(raw, b"\r\n\r\n", 0).ok_or("a part without headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut p = Part {
        name: String::new(),
        file_name: None,
        content_type: None,
        bytes: raw[split + 4..].to_vec(),
    };
    for line in head.split("\r\n") {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                for param in v.split(';').map(str::trim) {
                    if let Some(n) = param.strip_prefix("name=") {
                        p.name = n.trim_matches('"').to_owned();
                    } else if let Some(n) = param.strip_prefix("filename=") {
                        p.file_name = Some(n.trim_matches('"').to_owned());
                    }
                }
            }
            "content-type" => p.content_type = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    if p.name.is_empty() {
        return Err("a part without a name".into());
    }
    Ok(p)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}
