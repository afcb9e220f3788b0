//! Drive v1 document comments.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Answer, FIELD_VALIDATION, Req, not_found};
use crate::fake_feishu::state::{Bound, Comment, CommentReply, Shared, lock, now_ms};

const CANNOT_REPLY: i64 = 1069302;
/// Guess: the code for an unknown comment.
const NOT_FOUND: i64 = 1069301;
const FILE_TYPES: [&str; 7] = ["doc", "docx", "sheet", "file", "slides", "bitable", "apps"];

/// The per-app window of one Drive API (feishu.md §3.8, §3.9).
fn api_limit(shared: &Shared, api: &str) -> Result<(), Answer> {
    lock(&shared.inner)
        .admit_all(&[Bound::per_second(
            format!("app:drive:{api}"),
            crate::fake_feishu::DRIVE_API_QPS,
        )])
        .map_err(|e| Answer::over_limit(&e))
}

pub(super) fn route(shared: &Arc<Shared>, r: &Req, m: &str, file: &str, rest: &[&str]) -> Answer {
    let api = match (m, rest) {
        ("GET", []) => "list",
        ("POST", []) => "create",
        ("GET", [_]) => "get",
        ("POST", [_, "replies"]) => "reply",
        ("GET", [_, "replies"]) => "replies",
        _ => "other",
    };
    if let Err(a) = api_limit(shared, api) {
        return a;
    }
    if !r.q("file_type").is_some_and(|t| FILE_TYPES.contains(&t)) {
        return Answer::err(FIELD_VALIDATION, "file_type is required");
    }
    match (m, rest) {
        ("GET", []) => list(shared, r, file),
        ("POST", []) => add_whole(shared, r, file),
        ("GET", [cid]) => match find(shared, file, cid) {
            Ok(c) => Answer::ok(comment_json(&c)),
            Err(a) => a,
        },
        ("POST", [cid, "replies"]) => reply(shared, r, file, cid),
        ("GET", [cid, "replies"]) => match find(shared, file, cid) {
            Ok(c) => Answer::ok(json!({
                "items": c.replies.iter().map(reply_json).collect::<Vec<_>>(),
                "has_more": false,
                "page_token": "",
            })),
            Err(a) => a,
        },
        _ => not_found(),
    }
}

fn reply_json(x: &CommentReply) -> Value {
    json!({
        "reply_id": x.reply_id,
        "user_id": x.user_id,
        "create_time": x.create_time,
        "update_time": x.create_time,
        "content": {"elements": x.elements},
        "extra": {"image_list": []},
    })
}

fn comment_json(c: &Comment) -> Value {
    json!({
        "comment_id": c.comment_id,
        "user_id": c.user_id,
        "create_time": c.create_time,
        "update_time": c.create_time,
        "is_solved": c.is_solved,
        "solved_time": 0,
        "solver_user_id": "",
        "has_more": false,
        "page_token": "",
        "is_whole": c.is_whole,
        "quote": c.quote,
        "reply_list": {"replies": c.replies.iter().map(reply_json).collect::<Vec<_>>()},
    })
}

fn find(shared: &Shared, file: &str, cid: &str) -> Result<Comment, Answer> {
    lock(&shared.inner)
        .comments
        .iter()
        .find(|c| c.file_token == file && c.comment_id == cid)
        .cloned()
        .ok_or_else(|| Answer::err(NOT_FOUND, "comment not found"))
}

fn list(shared: &Shared, r: &Req, file: &str) -> Answer {
    let flag = |k: &str| r.q(k).map(|v| v == "true");
    let (whole, solved) = (flag("is_whole"), flag("is_solved"));
    let items: Vec<Value> = lock(&shared.inner)
        .comments
        .iter()
        .filter(|c| c.file_token == file)
        .filter(|c| whole.is_none_or(|w| w == c.is_whole))
        .filter(|c| solved.is_none_or(|s| s == c.is_solved))
        .map(comment_json)
        .collect();
    Answer::ok(json!({"items": items, "has_more": false, "page_token": ""}))
}

/// Element types a reply may carry (feishu.md §3.8).
const ELEMENT_TYPES: [&str; 3] = ["text_run", "docs_link", "person"];

fn elements(v: Option<&Value>) -> Result<Value, Answer> {
    match v {
        Some(Value::Array(a))
            if a.iter().any(|e| {
                !e.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| ELEMENT_TYPES.contains(&t) && e.get(t).is_some())
            }) =>
        {
            Err(Answer::err(
                FIELD_VALIDATION,
                "content.elements: each element is text_run, docs_link or person, with its object",
            ))
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            let chars: usize = a
                .iter()
                .filter_map(|e| e.pointer("/text_run/text").and_then(Value::as_str))
                .map(|t| t.chars().count())
                .sum();
            if chars > crate::fake_feishu::COMMENT_REPLY_LIMIT_CHARS {
                return Err(Answer::err(
                    FIELD_VALIDATION,
                    "content is longer than a comment reply may be",
                ));
            }
            Ok(Value::Array(a.clone()))
        }
        _ => Err(Answer::err(
            FIELD_VALIDATION,
            "content.elements must be a non-empty array",
        )),
    }
}

fn reply(shared: &Shared, r: &Req, file: &str, cid: &str) -> Answer {
    let els = match elements(r.body.pointer("/content/elements")) {
        Ok(e) => e,
        Err(a) => return a,
    };
    let mut inner = lock(&shared.inner);
    let Some(c) = inner
        .comments
        .iter_mut()
        .find(|c| c.file_token == file && c.comment_id == cid)
    else {
        return Answer::err(NOT_FOUND, "comment not found");
    };
    if c.is_whole || c.is_solved {
        return Answer::err(
            CANNOT_REPLY,
            "whole-document and solved comments cannot be replied to",
        );
    }
    let x = CommentReply {
        reply_id: format!("{}", 7_100_000_000_000_000_000u64 + shared.next()),
        user_id: shared.cfg.bot_open_id.clone(),
        create_time: (now_ms() / 1000) as i64,
        elements: els,
    };
    let out = reply_json(&x);
    c.replies.push(x);
    drop(inner);
    shared.bump();
    Answer::ok(out)
}

fn add_whole(shared: &Shared, r: &Req, file: &str) -> Answer {
    if !r.q("file_type").is_some_and(|t| t == "doc" || t == "docx") {
        return Answer::err(
            FIELD_VALIDATION,
            "whole-document comments need file_type doc|docx",
        );
    }
    let els = match elements(r.body.pointer("/reply_list/replies/0/content/elements")) {
        Ok(e) => e,
        Err(a) => return a,
    };
    let now = (now_ms() / 1000) as i64;
    let c = Comment {
        comment_id: format!("{}", 7_000_000_000_000_000_000u64 + shared.next()),
        file_token: file.to_owned(),
        user_id: shared.cfg.bot_open_id.clone(),
        is_whole: true,
        is_solved: false,
        create_time: now,
        replies: vec![CommentReply {
            reply_id: format!("{}", 7_100_000_000_000_000_000u64 + shared.next()),
            user_id: shared.cfg.bot_open_id.clone(),
            create_time: now,
            elements: els,
        }],
        quote: String::new(),
    };
    let out = comment_json(&c);
    lock(&shared.inner).comments.push(c);
    shared.bump();
    Answer::ok(out)
}

/// `POST /open-apis/drive/v1/metas/batch_query`: titles of known
/// documents; unknown ones land in `failed_list` (code a guess).
pub(super) fn metas(shared: &Shared, r: &Req) -> Answer {
    if let Err(a) = api_limit(shared, "metas") {
        return a;
    }
    let Some(docs) = r.body.get("request_docs").and_then(Value::as_array) else {
        return Answer::err(FIELD_VALIDATION, "request_docs is required");
    };
    let titles = lock(&shared.inner).doc_titles.clone();
    let (mut metas, mut failed) = (Vec::new(), Vec::new());
    for d in docs {
        let token = d.get("doc_token").and_then(Value::as_str).unwrap_or("");
        let kind = d.get("doc_type").and_then(Value::as_str).unwrap_or("");
        match titles.get(token) {
            Some(t) => metas.push(json!({
                "doc_token": token,
                "doc_type": kind,
                "title": t,
                "owner_id": "",
                "create_time": "0",
                "latest_modify_user": "",
                "latest_modify_time": "0",
            })),
            None => failed.push(json!({"token": token, "code": 970005})),
        }
    }
    Answer::ok(json!({"metas": metas, "failed_list": failed}))
}
