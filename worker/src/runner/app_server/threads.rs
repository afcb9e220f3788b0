//! Threads outside a run: a short-lived `codex app-server` child (same
//! binary, environment and containment as a run's) asked one thing
//! (`thread/list` for a workspace, `thread/fork`, `thread/archive`), then
//! shut down by closing its stdin.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::{Value, json};

use super::rpc::{Incoming, Reader, Writer};
use crate::runner::RunSpec;
use crate::runner::exec::child::{prepare_codex_command, spawn_with_retry};

/// The whole call, child start included.
const LIST_LIMIT: Duration = Duration::from_secs(20);
/// How long the child may take to exit after its stdin closed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// One thread as `thread/list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedThread {
    pub(crate) id: String,
    /// The thread's name, else its preview (first user message).
    pub(crate) title: String,
    pub(crate) updated_at_ms: i64,
}

/// The threads Codex has whose session cwd is `spec.cwd`, newest first.
/// Threads of every source are asked for (`exec` ones included, which the
/// default "interactive" filter leaves out).
pub(crate) async fn list(spec: &RunSpec, limit: u32) -> Result<Vec<ListedThread>, String> {
    let params = json!({
        "cwd": spec.cwd,
        "limit": limit,
        "sourceKinds": ["cli", "vscode", "exec", "appServer"],
        // Present but empty: every provider (omitted, codex filters by the
        // provider of its own config, which the listing child does not get:
        // the overrides stay off argv).
        "modelProviders": [],
    });
    Ok(parse(&one_call(spec, "thread/list", params).await?))
}

/// A new thread with `thread_id`'s history (`thread/fork`); its id.
pub(crate) async fn fork(spec: &RunSpec, thread_id: &str) -> Result<String, String> {
    let result = one_call(
        spec,
        "thread/fork",
        super::protocol::thread_fork(spec, thread_id),
    )
    .await?;
    super::protocol::thread_id_of(&result)
        .ok_or_else(|| "codex app-server answered thread/fork without a thread".to_string())
}

/// Codex archives `thread_id` (`thread/archive`).
pub(crate) async fn archive(spec: &RunSpec, thread_id: &str) -> Result<(), String> {
    one_call(spec, "thread/archive", json!({ "threadId": thread_id }))
        .await
        .map(|_| ())
}

/// Starts a child, asks `method`, and shuts the child down.
async fn one_call(spec: &RunSpec, method: &str, params: Value) -> Result<Value, String> {
    // No config overrides on the child: they stay off argv
    // (runner::overrides); a call that starts a thread carries them in its
    // params.
    let args: Vec<OsString> = vec!["app-server".into()];
    let mut cmd = prepare_codex_command(spec, args).await?;
    let mut child = spawn_with_retry(&mut cmd)
        .await
        .map_err(|e| format!("cannot start codex app-server: {e}"))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("codex app-server was started without its pipes".into());
    };
    // Read and dropped (nothing it says changes the listing), but read: a
    // closed pipe would kill the child on its first warning.
    let stderr = child.stderr.take();
    let drain = async move {
        if let Some(mut e) = stderr {
            let _ = tokio::io::copy(&mut e, &mut tokio::io::sink()).await;
        }
        std::future::pending::<()>().await
    };
    let mut reader = Reader::new(stdout, 8 << 20);
    let mut writer = Writer::new(stdin);
    let work = async {
        call(
            &mut reader,
            &mut writer,
            "initialize",
            super::protocol::initialize(),
        )
        .await?;
        writer
            .notify("initialized")
            .await
            .map_err(|e| e.to_string())?;
        call(&mut reader, &mut writer, method, params).await
    };
    let listed = tokio::time::timeout(LIST_LIMIT, async {
        tokio::select! {
            r = work => r,
            () = drain => Err("the stderr drain never ends".to_string()),
        }
    })
    .await
    .map_err(|_| format!("codex app-server did not answer {method} in time"))
    .and_then(|r| r);
    writer.close();
    if tokio::time::timeout(EXIT_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    listed
}

async fn call<R, W>(
    reader: &mut Reader<R>,
    writer: &mut Writer<W>,
    method: &str,
    params: Value,
) -> Result<Value, String>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let id = writer
        .request(method, params)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match reader.next().await {
            None => return Err(format!("codex app-server exited before answering {method}")),
            Some(Incoming::Response { id: got, result }) if got == id => {
                return result.map_err(|e| format!("codex app-server refused {method}: {e}"));
            }
            Some(Incoming::Request { id, .. }) => {
                let _ = writer
                    .respond_error(id, -32601, "fcx asks one thing here and nothing else")
                    .await;
            }
            Some(_) => {}
        }
    }
}

/// `result.data[]` of `thread/list` (`updatedAt` is in seconds).
pub(crate) fn parse(result: &Value) -> Vec<ListedThread> {
    result["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let id = t["id"].as_str()?.to_string();
            let title = t["name"]
                .as_str()
                .filter(|s| !s.trim().is_empty())
                .or_else(|| t["preview"].as_str())
                .unwrap_or("")
                .to_string();
            Some(ListedThread {
                id,
                title,
                updated_at_ms: t["updatedAt"].as_i64().unwrap_or(0) * 1000,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_ids_titles_and_times() {
        let r = json!({"data": [
            {"id": "t1", "name": null, "preview": "first words", "updatedAt": 1795658347},
            {"id": "t2", "name": "named", "preview": "x", "updatedAt": 5},
            {"name": "no id"}
        ], "nextCursor": null});
        assert_eq!(
            parse(&r),
            vec![
                ListedThread {
                    id: "t1".into(),
                    title: "first words".into(),
                    updated_at_ms: 1_795_658_347_000
                },
                ListedThread {
                    id: "t2".into(),
                    title: "named".into(),
                    updated_at_ms: 5000
                },
            ]
        );
        assert!(parse(&json!({})).is_empty());
    }
}
