//! Drive v1 document comments and document metadata (feishu.md §3.8), on
//! top of [`OpenApiClient`]: read a comment and its thread, reply to it,
//! add a whole-document comment, read a document's title.

use reqwest::Method;
use serde_json::{Value, json};

use super::budget;
use super::http::{ApiError, OpenApiClient};

/// The platform refuses a reply to a whole-document or a solved comment
/// with this code (feishu.md §3.8); the answer becomes a new comment.
pub(crate) const CANNOT_REPLY: i64 = 1069302;

/// Document kinds the comment APIs take as `file_type`.
const FILE_TYPES: [&str; 7] = ["doc", "docx", "sheet", "file", "slides", "bitable", "apps"];

/// Reply pages read at most (100 replies each) for one comment.
const MAX_REPLY_PAGES: usize = 5;

/// One reply in a comment's thread (the first is the comment's body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) reply_id: String,
    pub(crate) user_id: String,
    /// The reply's elements flattened to text (mentions as `@id`).
    pub(crate) text: String,
    /// Seconds since the epoch.
    pub(crate) create_time: i64,
}

/// A comment as fcx needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Comment {
    pub(crate) comment_id: String,
    pub(crate) user_id: String,
    pub(crate) is_whole: bool,
    pub(crate) is_solved: bool,
    /// The document text the comment is anchored to.
    pub(crate) quote: String,
    pub(crate) replies: Vec<Reply>,
}

/// The Drive comment calls. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Drive {
    client: OpenApiClient,
}

fn id(s: &str) -> Result<&str, ApiError> {
    if !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
    {
        Ok(s)
    } else {
        Err(ApiError::InvalidArgument("not a valid document id".into()))
    }
}

fn file_type(t: &str) -> Result<String, ApiError> {
    if FILE_TYPES.contains(&t) {
        Ok(t.to_string())
    } else {
        Err(ApiError::InvalidArgument(format!(
            "not a document kind: {:?}",
            t.chars().take(16).collect::<String>()
        )))
    }
}

/// Whether the platform takes a whole-document comment on this kind.
pub(crate) fn takes_whole_comments(kind: &str) -> bool {
    matches!(kind, "doc" | "docx")
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `content.elements` as text: text runs verbatim, links as their URL,
/// people as `@open_id`.
pub(crate) fn elements_text(elements: &Value) -> String {
    let mut out = String::new();
    for e in elements.as_array().into_iter().flatten() {
        match e.get("type").and_then(Value::as_str).unwrap_or("") {
            "text_run" => out.push_str(&s(&e["text_run"], "text")),
            "docs_link" => out.push_str(&s(&e["docs_link"], "url")),
            "person" => {
                out.push('@');
                out.push_str(&s(&e["person"], "user_id"));
            }
            _ => {}
        }
    }
    out
}

fn reply_of(v: &Value) -> Reply {
    Reply {
        reply_id: s(v, "reply_id"),
        user_id: s(v, "user_id"),
        text: elements_text(&v["content"]["elements"]),
        create_time: v.get("create_time").and_then(Value::as_i64).unwrap_or(0),
    }
}

/// A reply's `content.elements`: `mention` (an open_id) first, then the
/// text.
fn elements(text: &str, mention: Option<&str>) -> Value {
    let mut els = Vec::new();
    if let Some(m) = mention.filter(|m| !m.is_empty()) {
        els.push(json!({"type": "person", "person": {"user_id": m}}));
        els.push(json!({"type": "text_run", "text_run": {"text": " "}}));
    }
    els.push(json!({"type": "text_run", "text_run": {"text": text}}));
    Value::Array(els)
}

impl Drive {
    pub(crate) fn new(client: OpenApiClient) -> Self {
        Drive { client }
    }

    fn budget() -> Vec<(String, &'static [budget::Window])> {
        vec![("drive".into(), budget::DRIVE)]
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&'static str, String)],
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        self.client
            .call_json_query(method, path, query, body, Self::budget())
            .await
    }

    /// `GET …/files/{file}/comments/{comment_id}` with the whole thread
    /// (further reply pages read when the comment says it has more).
    pub(crate) async fn comment(
        &self,
        file_token: &str,
        kind: &str,
        comment_id: &str,
    ) -> Result<Comment, ApiError> {
        let path = format!(
            "/open-apis/drive/v1/files/{}/comments/{}",
            id(file_token)?,
            id(comment_id)?
        );
        let q = [
            ("file_type", file_type(kind)?),
            ("user_id_type", "open_id".to_string()),
        ];
        let v = self.call(Method::GET, &path, &q, None).await?;
        let mut c = Comment {
            comment_id: s(&v, "comment_id"),
            user_id: s(&v, "user_id"),
            is_whole: v.get("is_whole").and_then(Value::as_bool).unwrap_or(false),
            is_solved: v.get("is_solved").and_then(Value::as_bool).unwrap_or(false),
            quote: s(&v, "quote"),
            replies: v["reply_list"]["replies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(reply_of)
                .collect(),
        };
        if v.get("has_more").and_then(Value::as_bool).unwrap_or(false) {
            c.replies = self.replies(file_token, kind, comment_id).await?;
        }
        Ok(c)
    }

    /// `GET …/comments/{comment_id}/replies`, every page (up to a bound).
    pub(crate) async fn replies(
        &self,
        file_token: &str,
        kind: &str,
        comment_id: &str,
    ) -> Result<Vec<Reply>, ApiError> {
        let path = format!(
            "/open-apis/drive/v1/files/{}/comments/{}/replies",
            id(file_token)?,
            id(comment_id)?
        );
        let mut out = Vec::new();
        let mut page = String::new();
        for _ in 0..MAX_REPLY_PAGES {
            let mut q = vec![
                ("file_type", file_type(kind)?),
                ("user_id_type", "open_id".to_string()),
                ("page_size", "100".to_string()),
            ];
            if !page.is_empty() {
                q.push(("page_token", page.clone()));
            }
            let v = self.call(Method::GET, &path, &q, None).await?;
            out.extend(v["items"].as_array().into_iter().flatten().map(reply_of));
            page = s(&v, "page_token");
            if !v.get("has_more").and_then(Value::as_bool).unwrap_or(false) || page.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// `POST …/comments/{comment_id}/replies`: a plain-text reply. Never
    /// resent after a timeout (the platform has no idempotency key here).
    pub(crate) async fn reply(
        &self,
        file_token: &str,
        kind: &str,
        comment_id: &str,
        text: &str,
    ) -> Result<String, ApiError> {
        let path = format!(
            "/open-apis/drive/v1/files/{}/comments/{}/replies",
            id(file_token)?,
            id(comment_id)?
        );
        let q = [
            ("file_type", file_type(kind)?),
            ("user_id_type", "open_id".to_string()),
        ];
        let body = json!({"content": {"elements": elements(text, None)}});
        let v = self.call(Method::POST, &path, &q, Some(body)).await?;
        Ok(s(&v, "reply_id"))
    }

    /// `POST …/files/{file}/comments`: a new whole-document comment
    /// (doc and docx only), mentioning `mention` first.
    pub(crate) async fn add_whole(
        &self,
        file_token: &str,
        kind: &str,
        text: &str,
        mention: Option<&str>,
    ) -> Result<String, ApiError> {
        let path = format!("/open-apis/drive/v1/files/{}/comments", id(file_token)?);
        let q = [
            ("file_type", file_type(kind)?),
            ("user_id_type", "open_id".to_string()),
        ];
        let body = json!({"reply_list": {"replies": [{"content": {"elements": elements(text, mention)}}]}});
        let v = self.call(Method::POST, &path, &q, Some(body)).await?;
        Ok(s(&v, "comment_id"))
    }

    /// Whole-document comments, newest last (for the duplicate check).
    pub(crate) async fn whole_comments(
        &self,
        file_token: &str,
        kind: &str,
    ) -> Result<Vec<Comment>, ApiError> {
        let path = format!("/open-apis/drive/v1/files/{}/comments", id(file_token)?);
        let q = [
            ("file_type", file_type(kind)?),
            ("user_id_type", "open_id".to_string()),
            ("is_whole", "true".to_string()),
            ("page_size", "100".to_string()),
        ];
        let v = self.call(Method::GET, &path, &q, None).await?;
        Ok(v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Comment {
                comment_id: s(c, "comment_id"),
                user_id: s(c, "user_id"),
                is_whole: true,
                is_solved: c.get("is_solved").and_then(Value::as_bool).unwrap_or(false),
                quote: String::new(),
                replies: c["reply_list"]["replies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(reply_of)
                    .collect(),
            })
            .collect())
    }

    /// The document's title (`POST /open-apis/drive/v1/metas/batch_query`);
    /// "" when the platform names none.
    pub(crate) async fn title(&self, file_token: &str, kind: &str) -> Result<String, ApiError> {
        let body = json!({
            "request_docs": [{"doc_token": id(file_token)?, "doc_type": file_type(kind)?}],
            "with_url": false,
        });
        let v = self
            .call(
                Method::POST,
                "/open-apis/drive/v1/metas/batch_query",
                &[],
                Some(body),
            )
            .await?;
        Ok(v["metas"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| s(m, "doc_token") == file_token)
            .map(|m| s(m, "title"))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_read_as_text_and_are_written_with_the_mention_first() {
        let els = json!([
            {"type": "person", "person": {"user_id": "ou_bot"}},
            {"type": "text_run", "text_run": {"text": " why? see "}},
            {"type": "docs_link", "docs_link": {"url": "https://x/y"}},
        ]);
        assert_eq!(elements_text(&els), "@ou_bot why? see https://x/y");
        let out = elements("answer", Some("ou_1"));
        assert_eq!(elements_text(&out), "@ou_1 answer");
        assert_eq!(elements_text(&elements("answer", None)), "answer");
    }

    #[test]
    fn ids_and_kinds_are_checked_before_a_call() {
        assert!(id("doxcnAbc_1-2").is_ok());
        assert!(id("../x").is_err() && id("").is_err() && id("a/b").is_err());
        assert!(file_type("docx").is_ok() && file_type("wiki").is_err());
        assert!(takes_whole_comments("docx") && !takes_whole_comments("sheet"));
    }
}
