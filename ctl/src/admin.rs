//! The verbs that talk to a running fcxd over its admin socket.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fcx_config::Home;
use fcx_ipc::SocketAddr;
use fcx_proto::v1::gateway_client::GatewayClient;
use fcx_proto::v1::{
    GatewayStatus, GatewayStatusRequest, ProcessEntry, ProfileStatus, PsRequest, ReloadRequest,
    ReloadResponse, RestartWorkerRequest, StopRequest,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::CtlError;
use crate::render::{age_secs, clean, duration, now_ms, or_dash, table};

/// fcxd answers from memory; anything slower than this is a hung process and
/// the operator should hear so rather than watch a silent terminal.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// fcxd may wait for the old worker to stop its runs before it answers.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` waits for the socket to go quiet; matches the service
/// units' stop timeout, after which the service manager would kill fcxd.
const STOP_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected admin client and the socket it came from (for messages).
pub(crate) struct Admin {
    client: GatewayClient<Channel>,
    addr: SocketAddr,
    logs: PathBuf,
}

impl Admin {
    pub(crate) async fn connect(home: &Home) -> Result<Self, CtlError> {
        let socket = home.gateway_socket();
        // On Unix the socket is a file: its absence is the common "fcxd is not
        // running" case and needs no connection attempt. Named pipes have no
        // file, so Windows goes straight to connecting.
        #[cfg(unix)]
        if let Err(e) = std::fs::symlink_metadata(&socket) {
            return Err(if e.kind() == std::io::ErrorKind::NotFound {
                CtlError::NotRunning { socket }
            } else {
                CtlError::Unreachable {
                    socket,
                    reason: e.to_string(),
                }
            });
        }
        let addr = SocketAddr::new(&socket);
        match tokio::time::timeout(CONNECT_TIMEOUT, fcx_ipc::connect(&addr)).await {
            Ok(Ok(channel)) => Ok(Admin {
                client: GatewayClient::new(channel),
                addr,
                logs: home.logs_dir(),
            }),
            Ok(Err(_)) => Err(classify_connect_failure(&socket)),
            Err(_) => Err(CtlError::Timeout {
                what: "accept a connection".into(),
                socket,
                secs: CONNECT_TIMEOUT.as_secs(),
                logs: home.logs_dir(),
            }),
        }
    }

    fn socket(&self) -> PathBuf {
        self.addr.path().to_path_buf()
    }

    /// Turn a call's outcome into the value or one operator-facing error.
    async fn finish<T>(
        &self,
        what: String,
        limit: Duration,
        r: Result<Result<tonic::Response<T>, tonic::Status>, tokio::time::error::Elapsed>,
    ) -> Result<T, CtlError> {
        match r {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            // A connection that breaks mid-call usually means fcxd just exited.
            Ok(Err(status))
                if status.code() == tonic::Code::Unavailable
                    && !fcx_ipc::is_live(&self.addr).await =>
            {
                Err(CtlError::NotRunning {
                    socket: self.socket(),
                })
            }
            Ok(Err(status)) => Err(CtlError::Rpc {
                what,
                message: status_message(&status),
            }),
            Err(_) => Err(CtlError::Timeout {
                what,
                socket: self.socket(),
                secs: limit.as_secs(),
                logs: self.logs.clone(),
            }),
        }
    }

    pub(crate) async fn status(&mut self) -> Result<GatewayStatus, CtlError> {
        let r =
            tokio::time::timeout(QUERY_TIMEOUT, self.client.status(GatewayStatusRequest {})).await;
        self.finish("report its status".into(), QUERY_TIMEOUT, r)
            .await
    }

    pub(crate) async fn ps(&mut self) -> Result<Vec<ProcessEntry>, CtlError> {
        let r = tokio::time::timeout(QUERY_TIMEOUT, self.client.ps(PsRequest {})).await;
        let resp = self
            .finish("list its processes".into(), QUERY_TIMEOUT, r)
            .await?;
        Ok(resp.processes)
    }

    pub(crate) async fn restart_worker(&mut self, profile: &str) -> Result<String, CtlError> {
        let req = RestartWorkerRequest {
            profile: profile.to_string(),
        };
        let r = tokio::time::timeout(RESTART_TIMEOUT, self.client.restart_worker(req)).await;
        let resp = self
            .finish(
                format!("restart the worker of profile `{}`", clean(profile)),
                RESTART_TIMEOUT,
                r,
            )
            .await?;
        Ok(resp.message)
    }

    pub(crate) async fn reload(&mut self) -> Result<ReloadResponse, CtlError> {
        let r = tokio::time::timeout(RESTART_TIMEOUT, self.client.reload(ReloadRequest {})).await;
        self.finish("reload config.toml".into(), RESTART_TIMEOUT, r)
            .await
    }

    /// Ask fcxd to stop. A connection that drops before the answer and leaves
    /// nothing listening is a stop, not a failure.
    pub(crate) async fn stop(&mut self) -> Result<(), CtlError> {
        let r = tokio::time::timeout(QUERY_TIMEOUT, self.client.stop(StopRequest {})).await;
        match self.finish("stop".into(), QUERY_TIMEOUT, r).await {
            Ok(_) | Err(CtlError::NotRunning { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Wait until nothing answers on the socket any more.
    pub(crate) async fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if !fcx_ipc::is_live(&self.addr).await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Tell "nobody is there" apart from "somebody is there but we may not talk
/// to them": the transport error tonic hands back no longer carries the OS
/// error kind, so ask the OS directly.
fn classify_connect_failure(socket: &Path) -> CtlError {
    #[cfg(unix)]
    {
        use std::io::ErrorKind;
        match std::os::unix::net::UnixStream::connect(socket) {
            Err(e) if e.kind() == ErrorKind::PermissionDenied => CtlError::Unreachable {
                socket: socket.to_path_buf(),
                reason: "permission denied; run fcxctl as the user that runs fcxd".into(),
            },
            Ok(_) => CtlError::Unreachable {
                socket: socket.to_path_buf(),
                reason: "something listens there but does not speak fcxd's admin protocol".into(),
            },
            Err(_) => CtlError::NotRunning {
                socket: socket.to_path_buf(),
            },
        }
    }
    #[cfg(not(unix))]
    {
        CtlError::NotRunning {
            socket: socket.to_path_buf(),
        }
    }
}

fn status_message(status: &tonic::Status) -> String {
    let m = status.message().trim();
    if m.is_empty() {
        status.code().description().to_string()
    } else {
        clean(m)
    }
}

// ---- verbs ----

pub(crate) async fn status(home: &Home, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let st = Admin::connect(home).await?.status().await?;
    warn_on_protocol_mismatch(st.protocol_version);
    let now = now_ms();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&status_json(&st, now))?
        )?;
    } else {
        write_status(out, &st, now)?;
    }
    Ok(crate::exit::OK)
}

pub(crate) async fn ps(home: &Home, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let procs = Admin::connect(home).await?.ps().await?;
    let now = now_ms();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&ps_json(&procs, now))?
        )?;
    } else {
        write_ps(out, &procs, now)?;
    }
    Ok(crate::exit::OK)
}

pub(crate) async fn restart_worker(
    home: &Home,
    profile: &str,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let message = Admin::connect(home).await?.restart_worker(profile).await?;
    if message.trim().is_empty() {
        writeln!(
            out,
            "fcxd is restarting the worker of profile `{}`",
            clean(profile)
        )?;
    } else {
        writeln!(out, "{}", clean(message.trim()))?;
    }
    Ok(crate::exit::OK)
}

pub(crate) async fn reload(home: &Home, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let r = Admin::connect(home).await?.reload().await?;
    if json {
        let v = json!({
            "added": r.added,
            "removed": r.removed,
            "restarted": r.restarted,
            "unchanged": r.unchanged,
            "failed": r.failed,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for (what, names) in [
            ("added", &r.added),
            ("removed", &r.removed),
            ("restarted", &r.restarted),
            ("unchanged", &r.unchanged),
        ] {
            if !names.is_empty() {
                let names: Vec<String> = names.iter().map(|n| clean(n)).collect();
                writeln!(out, "{what}: {}", names.join(", "))?;
            }
        }
        for f in &r.failed {
            writeln!(out, "failed: {}", clean(f))?;
        }
    }
    Ok(if r.failed.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::FAILURE
    })
}

pub(crate) async fn stop(home: &Home, wait: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let mut admin = Admin::connect(home).await?;
    admin.stop().await?;
    if !wait {
        writeln!(out, "fcxd is stopping")?;
        return Ok(crate::exit::OK);
    }
    write!(out, "fcxd is stopping... ")?;
    out.flush()?;
    if admin.wait_gone(STOP_WAIT).await {
        writeln!(out, "stopped")?;
        Ok(crate::exit::OK)
    } else {
        writeln!(out)?;
        Err(CtlError::Timeout {
            what: "stop (it accepted the request but still answers)".into(),
            socket: admin.socket(),
            secs: STOP_WAIT.as_secs(),
            logs: admin.logs.clone(),
        }
        .into())
    }
}

fn warn_on_protocol_mismatch(theirs: u32) {
    // 0 is proto3's "unset": an fcxd too old to report it, not a mismatch we
    // can describe.
    if theirs != 0 && theirs != fcx_proto::PROTOCOL_VERSION {
        eprintln!(
            "warning: {}",
            fcx_proto::version_mismatch_message(fcx_proto::PROTOCOL_VERSION, theirs, "fcxd")
        );
    }
}

// ---- rendering ----

/// proto3 cannot tell "unset" from zero or empty; JSON can, and `null` is
/// what scripts (jq) test for.
fn opt_str(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::from(s)
    }
}

fn opt_ms(ms: i64) -> Value {
    if ms <= 0 {
        Value::Null
    } else {
        Value::from(ms)
    }
}

fn opt_pid(pid: u32) -> Value {
    if pid == 0 {
        Value::Null
    } else {
        Value::from(pid)
    }
}

fn opt_age(at_ms: i64, now: i64) -> Value {
    age_secs(at_ms, now).map_or(Value::Null, Value::from)
}

pub(crate) fn status_json(st: &GatewayStatus, now: i64) -> Value {
    json!({
        "pid": opt_pid(st.pid),
        "version": opt_str(&st.version),
        "protocol_version": st.protocol_version,
        "started_at_ms": opt_ms(st.started_at_ms),
        "uptime_secs": opt_age(st.started_at_ms, now),
        "home": opt_str(&st.home),
        "profiles": st.profiles.iter().map(|p| profile_json(p, now)).collect::<Vec<_>>(),
    })
}

fn profile_json(p: &ProfileStatus, now: i64) -> Value {
    json!({
        "name": p.name,
        "worker_state": opt_str(p.worker_state().word()),
        "worker_pid": opt_pid(p.worker_pid),
        "worker_started_at_ms": opt_ms(p.worker_started_at_ms),
        "worker_uptime_secs": opt_age(p.worker_started_at_ms, now),
        "restarts": p.restarts,
        "active_runs": p.active_runs,
        "queued": p.queued,
        "channel_state": opt_str(&p.channel_state),
        "last_frame_at_ms": opt_ms(p.last_frame_at_ms),
        "last_frame_age_secs": opt_age(p.last_frame_at_ms, now),
        "last_event_at_ms": opt_ms(p.last_event_at_ms),
        "last_event_age_secs": opt_age(p.last_event_at_ms, now),
        "reconnects": p.reconnects,
        "bot_name": opt_str(&p.bot_name),
        "surfaces": p.surfaces,
        "last_error": opt_str(&p.last_error),
    })
}

pub(crate) fn ps_json(procs: &[ProcessEntry], now: i64) -> Value {
    Value::Array(
        procs
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "kind": opt_str(e.kind().word()),
                    "pid": opt_pid(e.pid),
                    "profile": opt_str(&e.profile),
                    "started_at_ms": opt_ms(e.started_at_ms),
                    "age_secs": opt_age(e.started_at_ms, now),
                    "scope": opt_str(&e.scope),
                    "detail": opt_str(&e.detail),
                })
            })
            .collect(),
    )
}

fn pid_cell(pid: u32) -> String {
    if pid == 0 {
        "-".into()
    } else {
        pid.to_string()
    }
}

fn channel_cell(p: &ProfileStatus, now: i64) -> String {
    let state = or_dash(&p.channel_state);
    // No platform connection to age: the console, a profile without an app.
    if matches!(
        p.channel_state.as_str(),
        "" | "n/a" | "console" | "none (no app)"
    ) {
        return state;
    }
    // "connected" alone says nothing about whether events still arrive; the
    // frame age is what tells a live channel from a deaf one.
    let frame = match age_secs(p.last_frame_at_ms, now) {
        Some(a) => format!("{state}, last frame {} ago", duration(a)),
        None => format!("{state}, no frame yet"),
    };
    match age_secs(p.last_event_at_ms, now) {
        Some(a) => format!("{frame}, last event {} ago", duration(a)),
        None => frame,
    }
}

pub(crate) fn write_status(
    out: &mut dyn Write,
    st: &GatewayStatus,
    now: i64,
) -> std::io::Result<()> {
    let uptime = age_secs(st.started_at_ms, now).map_or_else(|| "-".into(), duration);
    writeln!(
        out,
        "fcxd {}  pid {}  up {}  protocol {}",
        or_dash(&st.version),
        pid_cell(st.pid),
        uptime,
        st.protocol_version
    )?;
    writeln!(out, "home {}", or_dash(&st.home))?;
    if st.profiles.is_empty() {
        writeln!(out, "no profiles")?;
        return Ok(());
    }
    writeln!(out)?;
    let rows: Vec<Vec<String>> = st
        .profiles
        .iter()
        .map(|p| {
            vec![
                or_dash(&p.name),
                or_dash(p.worker_state().word()),
                pid_cell(p.worker_pid),
                p.restarts.to_string(),
                p.active_runs.to_string(),
                p.queued.to_string(),
                channel_cell(p, now),
            ]
        })
        .collect();
    table(
        out,
        &[
            "PROFILE", "WORKER", "PID", "RESTARTS", "RUNS", "QUEUED", "CHANNEL",
        ],
        &rows,
    )?;
    let failing: Vec<&ProfileStatus> = st
        .profiles
        .iter()
        .filter(|p| !p.last_error.trim().is_empty())
        .collect();
    if !failing.is_empty() {
        writeln!(out)?;
        for p in failing {
            writeln!(
                out,
                "{}: last error: {}",
                or_dash(&p.name),
                clean(p.last_error.trim())
            )?;
        }
    }
    Ok(())
}

pub(crate) fn write_ps(
    out: &mut dyn Write,
    procs: &[ProcessEntry],
    now: i64,
) -> std::io::Result<()> {
    if procs.is_empty() {
        return writeln!(out, "no processes");
    }
    let rows: Vec<Vec<String>> = procs
        .iter()
        .map(|e| {
            vec![
                or_dash(&e.id),
                or_dash(e.kind().word()),
                pid_cell(e.pid),
                or_dash(&e.profile),
                age_secs(e.started_at_ms, now)
                    .map_or_else(|| "-".into(), |a| format!("{} ago", duration(a))),
                or_dash(&e.scope),
                or_dash(&e.detail),
            ]
        })
        .collect();
    table(
        out,
        &["ID", "KIND", "PID", "PROFILE", "STARTED", "SCOPE", "DETAIL"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GatewayStatus {
        GatewayStatus {
            pid: 4242,
            version: "0.1.0".into(),
            started_at_ms: 1_000_000,
            home: "/h/.fcx".into(),
            protocol_version: fcx_proto::PROTOCOL_VERSION,
            profiles: vec![
                ProfileStatus {
                    name: "work".into(),
                    worker_state: fcx_proto::v1::WorkerState::Ready as i32,
                    worker_pid: 4250,
                    restarts: 1,
                    last_error: String::new(),
                    surfaces: vec!["feishu".into()],
                    active_runs: 2,
                    queued: 3,
                    worker_started_at_ms: 1_500_000,
                    channel_state: "connected".into(),
                    last_frame_at_ms: 1_997_000,
                    ..Default::default()
                },
                ProfileStatus {
                    name: "dev".into(),
                    worker_state: fcx_proto::v1::WorkerState::Backoff as i32,
                    last_error: "codex\nnot found".into(),
                    channel_state: "n/a".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn status_text_has_one_line_per_profile_and_errors_below() {
        let mut out = Vec::new();
        write_status(&mut out, &sample(), 2_000_000).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.starts_with(&format!(
                "fcxd 0.1.0  pid 4242  up 16m40s  protocol {}\n",
                fcx_proto::PROTOCOL_VERSION
            )),
            "{text}"
        );
        assert!(text.contains("home /h/.fcx"), "{text}");
        let work = text
            .lines()
            .find(|l| l.starts_with("work "))
            .expect("work line");
        for want in ["ready", "4250", "connected, last frame 3s ago"] {
            assert!(work.contains(want), "{work}");
        }
        let dev = text
            .lines()
            .find(|l| l.starts_with("dev "))
            .expect("dev line");
        assert!(dev.contains("backoff") && dev.contains("n/a"), "{dev}");
        assert!(text.contains("dev: last error: codex?not found"), "{text}");
    }

    #[test]
    fn status_json_uses_null_for_unset_values() {
        let v = status_json(&sample(), 2_000_000);
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["uptime_secs"], 1000);
        assert_eq!(v["profiles"][0]["last_frame_age_secs"], 3);
        assert_eq!(v["profiles"][0]["last_error"], Value::Null);
        assert_eq!(v["profiles"][1]["worker_pid"], Value::Null);
        assert_eq!(v["profiles"][1]["last_frame_at_ms"], Value::Null);
        assert_eq!(v["profiles"][1]["last_error"], "codex\nnot found");
    }
}
