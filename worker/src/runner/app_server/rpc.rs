//! JSON-RPC over the child's stdio, as `codex app-server` speaks it: one JSON
//! object per line each way, no `"jsonrpc"` field from the server, integer
//! ids for our requests, notifications with an extra `emittedAtMs`.

use std::io;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::runner::exec::lines::{BoundedLines, Line};

/// A write that takes this long means the child stopped reading its stdin.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// One message from the server.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// The answer to one of our requests.
    Response {
        id: i64,
        result: Result<Value, RpcError>,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// The server asks us something (approvals); `id` is echoed back as is.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (code {code})")]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
}

/// Parses one line. `None` for blank lines and for what is not a message
/// (logged by the caller).
pub(crate) fn parse(line: &[u8]) -> Result<Option<Incoming>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let Value::Object(mut m) = v else {
        return Err("not a JSON object".into());
    };
    let method = m.get("method").and_then(Value::as_str).map(str::to_string);
    let params = m.remove("params").unwrap_or(Value::Null);
    match (method, m.remove("id")) {
        (Some(method), Some(id)) if !id.is_null() => {
            Ok(Some(Incoming::Request { id, method, params }))
        }
        (Some(method), _) => Ok(Some(Incoming::Notification { method, params })),
        (None, Some(id)) => {
            let id = id.as_i64().ok_or("a response with a non-integer id")?;
            let result = match m.remove("error") {
                Some(e) if !e.is_null() => Err(RpcError {
                    code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error")
                        .to_string(),
                }),
                _ => Ok(m.remove("result").unwrap_or(Value::Null)),
            };
            Ok(Some(Incoming::Response { id, result }))
        }
        (None, None) => Err("neither a method nor an id".into()),
    }
}

/// Reads messages from the server's stdout.
pub(crate) struct Reader<R> {
    lines: BoundedLines<R>,
    max_line: usize,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(crate) fn new(r: R, max_line: usize) -> Self {
        Reader {
            lines: BoundedLines::new(r, max_line),
            max_line,
        }
    }

    /// The next message; `None` at end of stream. Lines that are not
    /// messages are logged and skipped. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Option<Incoming> {
        loop {
            match self.lines.next().await {
                Ok(Some(Line::Text(bytes))) => match parse(&bytes) {
                    Ok(Some(m)) => return Some(m),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        error = %e,
                        line = %String::from_utf8_lossy(&bytes[..bytes.len().min(200)]),
                        "codex app-server printed something that is not a message; skipping it"
                    ),
                },
                Ok(Some(Line::TooLong(n))) => {
                    tracing::warn!(
                        bytes = n,
                        limit = self.max_line,
                        "dropped an overlong line from codex app-server"
                    );
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "reading codex app-server stdout failed");
                    return None;
                }
            }
        }
    }
}

/// Writes our side: requests with increasing ids, notifications, answers.
pub(crate) struct Writer<W> {
    out: Option<W>,
    next_id: i64,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub(crate) fn new(w: W) -> Self {
        Writer {
            out: Some(w),
            next_id: 1,
        }
    }

    /// Sends a request; returns its id.
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> io::Result<i64> {
        let id = self.next_id;
        self.next_id += 1;
        self.line(&json!({"id": id, "method": method, "params": params}))
            .await?;
        Ok(id)
    }

    pub(crate) async fn notify(&mut self, method: &str) -> io::Result<()> {
        self.line(&json!({"method": method})).await
    }

    pub(crate) async fn respond(&mut self, id: Value, result: Value) -> io::Result<()> {
        self.line(&json!({"id": id, "result": result})).await
    }

    pub(crate) async fn respond_error(
        &mut self,
        id: Value,
        code: i64,
        message: &str,
    ) -> io::Result<()> {
        self.line(&json!({"id": id, "error": {"code": code, "message": message}}))
            .await
    }

    /// Closes stdin: app-server takes EOF as "shut down" and exits cleanly.
    pub(crate) fn close(&mut self) {
        self.out = None;
    }

    async fn line(&mut self, v: &Value) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stdin already closed",
            ));
        };
        let mut buf = v.to_string().into_bytes();
        buf.push(b'\n');
        let write = async {
            out.write_all(&buf).await?;
            out.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "codex app-server stopped reading its stdin",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Incoming {
        parse(s.as_bytes()).expect("parses").expect("a message")
    }

    #[test]
    fn parses_the_three_kinds_as_the_server_sends_them() {
        // Shapes from codex.md §5 (0.169.0), no "jsonrpc" field.
        assert_eq!(
            p(r#"{"id":1,"result":{"userAgent":"fcx/0.169.0","platformOs":"linux"}}"#),
            Incoming::Response {
                id: 1,
                result: Ok(json!({"userAgent":"fcx/0.169.0","platformOs":"linux"}))
            }
        );
        assert_eq!(
            p(r#"{"error":{"code":-32600,"message":"no rollout found for thread id x"},"id":2}"#),
            Incoming::Response {
                id: 2,
                result: Err(RpcError {
                    code: -32600,
                    message: "no rollout found for thread id x".into()
                })
            }
        );
        assert_eq!(
            p(
                r#"{"method":"item/agentMessage/delta","params":{"itemId":"msg_1","delta":"hi"},"emittedAtMs":1}"#
            ),
            Incoming::Notification {
                method: "item/agentMessage/delta".into(),
                params: json!({"itemId":"msg_1","delta":"hi"})
            }
        );
        assert_eq!(
            p(
                r#"{"method":"item/commandExecution/requestApproval","id":0,"params":{"itemId":"call_1"}}"#
            ),
            Incoming::Request {
                id: json!(0),
                method: "item/commandExecution/requestApproval".into(),
                params: json!({"itemId":"call_1"})
            }
        );
        // A notification without params, and one with "jsonrpc".
        assert_eq!(
            p(r#"{"jsonrpc":"2.0","method":"initialized"}"#),
            Incoming::Notification {
                method: "initialized".into(),
                params: Value::Null
            }
        );
    }

    #[test]
    fn rejects_what_is_not_a_message() {
        assert_eq!(parse(b"   "), Ok(None));
        assert!(parse(b"not json").is_err());
        assert!(parse(b"[1,2]").is_err());
        assert!(parse(br#"{"foo":1}"#).is_err());
        assert!(parse(br#"{"id":"x","result":{}}"#).is_err());
    }

    #[tokio::test]
    async fn writes_one_line_per_message_and_reads_them_back() {
        let (a, b) = tokio::io::duplex(4096);
        let mut w = Writer::new(a);
        assert_eq!(w.request("initialize", json!({"x": 1})).await.ok(), Some(1));
        assert_eq!(w.request("thread/start", json!({})).await.ok(), Some(2));
        w.notify("initialized").await.expect("notify");
        w.respond(json!(0), json!({"decision": "decline"}))
            .await
            .expect("respond");
        w.close();
        assert!(w.notify("late").await.is_err(), "closed stays closed");
        drop(w);
        let mut r = Reader::new(b, 1 << 20);
        let mut got = Vec::new();
        while let Some(m) = r.next().await {
            got.push(m);
        }
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(
            got[0],
            Incoming::Request {
                id: json!(1),
                method: "initialize".into(),
                params: json!({"x": 1})
            }
        );
        assert_eq!(
            got[2],
            Incoming::Notification {
                method: "initialized".into(),
                params: Value::Null
            }
        );
        assert_eq!(
            got[3],
            Incoming::Response {
                id: 0,
                result: Ok(json!({"decision": "decline"}))
            }
        );
    }

    #[tokio::test]
    async fn skips_garbage_and_overlong_lines() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let long = format!("{{\"method\":\"x\",\"params\":\"{}\"}}\n", "a".repeat(500));
        let text = format!("garbage\n{long}{{\"method\":\"ok\"}}\n");
        a.write_all(text.as_bytes()).await.expect("write");
        drop(a);
        let mut r = Reader::new(b, 100);
        assert_eq!(
            r.next().await,
            Some(Incoming::Notification {
                method: "ok".into(),
                params: Value::Null
            })
        );
        assert_eq!(r.next().await, None);
    }
}
