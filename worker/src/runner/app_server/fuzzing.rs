//! The app-server parse path's entry for `crate::fuzzing`: the child's
//! stdout through the bounded line framing, the JSON-RPC parser, the
//! notification mapper and whole turns of the session, which otherwise stay
//! private to `app_server`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::mapping::Mapper;
use super::protocol as p;
use super::rpc::{Incoming, Reader, Writer};
use super::session::Session;
use crate::runner::{ChildEnv, RunSpec, Sandbox};

/// Small, so a fuzzer reaches the overlong-line path quickly.
pub(crate) const MAX_LINE: usize = 4096;

/// At most this many runner events per message: a completed item gives its
/// start and its end, a completed answer its missed tail and itself.
pub(crate) const EVENTS_PER_MESSAGE: usize = 2;

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
}

/// Every line of `data` through one reader and one mapper, as the
/// notifications of one turn arrive; a response's turn id becomes the
/// mapper's turn, as `turn/start`'s answer does. Returns how many runner
/// events came out.
pub(crate) fn map_lines(data: &[u8]) -> usize {
    let Some(rt) = runtime() else {
        return 0;
    };
    rt.block_on(async {
        let mut map = Mapper::new(PathBuf::from("/ws/project"));
        let mut reader = Reader::new(data, MAX_LINE);
        let mut n = 0;
        while let Some(m) = reader.next().await {
            match m {
                Incoming::Notification { method, params } => {
                    let evs = map.notification(&method, &params);
                    assert!(
                        evs.len() <= EVENTS_PER_MESSAGE,
                        "{method} gave {} events",
                        evs.len()
                    );
                    n += evs.len();
                }
                Incoming::Response { result: Ok(v), .. } => {
                    let _ = p::thread_id_of(&v);
                    if map.turn_id.is_none() {
                        map.turn_id = p::turn_id_of(&v);
                    }
                }
                Incoming::Response { result: Err(e), .. } => {
                    let _ = p::is_thread_gone(&e.message);
                }
                Incoming::Request { .. } => {}
            }
        }
        n
    })
}

fn spec(ask: bool, resume: bool) -> RunSpec {
    RunSpec {
        run_id: "fuzz".into(),
        prompt: "say hi".into(),
        cwd: PathBuf::from("/ws/project"),
        sandbox: Sandbox::WorkspaceWrite,
        network: false,
        model: None,
        resume_thread: resume.then(|| "01a21592-ba68-7000-8000-000000000000".into()),
        images: Vec::new(),
        overrides: Vec::new(),
        binary: PathBuf::from("codex"),
        env: ChildEnv::default(),
        stop_grace: Duration::from_millis(300),
        approval: if ask {
            fcx_config::ApprovalPolicy::OnRequest
        } else {
            fcx_config::ApprovalPolicy::Never
        },
        warm_key: None,
    }
}

/// `data` as a whole turn's server stdout (our requests' ids are 1, 2,
/// 3…), through one session: once with approvals off and a new thread,
/// once with approvals on and a resumed thread. The input ends in EOF, so
/// each turn ends without any timer firing. Returns how many runner
/// events came out.
pub(crate) fn drive_session(data: &[u8]) -> usize {
    let Some(rt) = runtime() else {
        return 0;
    };
    let mut n = 0;
    for (ask, resume) in [(false, false), (true, true)] {
        n += rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(16);
            let counter = tokio::spawn(async move {
                let mut n = 0usize;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                n
            });
            // No one steers: the control channel is closed from the start.
            let (_, control) = mpsc::channel(1);
            let mut session = Session::new(
                Reader::new(data, MAX_LINE),
                Writer::new(tokio::io::sink()),
                Mapper::new(PathBuf::from("/ws/project")),
                tx,
                control,
                CancellationToken::new(),
                Duration::from_secs(60),
                Duration::from_secs(1),
                "fuzz".into(),
            );
            let _ = session.drive(&spec(ask, resume)).await;
            drop(session);
            counter.await.unwrap_or(0)
        });
    }
    n
}
