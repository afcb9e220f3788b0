//! Test fixtures shared by the worker's unit tests: a profile in a temporary
//! home, the shared context over a real store, messages, and fakes for the
//! runner and the run executor.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use fcx_config::{
    AccessConfig, AccessMode, AppConfig, AuthMode, CodexConfig, Home, PermissionsConfig, Profile,
    ReplyMode, RunsConfig, SecretRef, Tenant, WorkspacesConfig,
};
use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, Inbound, WorkerEvent};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;
use crate::events::EventBus;
use crate::run::{Execute, RunJob, RunSlot};
use crate::runner::{Outcome, RunIo, RunResult, RunSpec, Runner, RunnerCaps, RunnerEvent};
use crate::store::Store;

pub(crate) const OWNER: &str = "ou_owner";
pub(crate) const ADMIN: &str = "ou_admin";
pub(crate) const USER: &str = "ou_user";
pub(crate) const GROUP: &str = "oc_group";

pub(crate) struct Kit {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ctx: Arc<Ctx>,
}

/// A profile with a platform app (so roles matter): one owner, one admin,
/// one allowed user, one enabled group; `/bin/sh` stands in for codex.
pub(crate) fn profile(dir: &std::path::Path, runs: RunsConfig) -> Profile {
    Profile {
        name: "p".into(),
        enabled: true,
        codex: CodexConfig {
            binary: "/bin/sh".into(),
            auth: AuthMode::InheritUser,
            api_key: None,
            model: None,
            overrides: Vec::new(),
            // The binary is no codex: under app-server /resume would ask it
            // for thread/list. Runner behaviour is tested end to end.
            runner: fcx_config::RunnerKind::Exec,
            during_run: Default::default(),
            approval: Default::default(),
            approval_timeout_secs: 600,
            app_server_idle_secs: 0,
            app_server_max_idle: 0,
            approvers: Default::default(),
        },
        workspaces: WorkspacesConfig {
            default: dir.join("ws"),
        },
        runs,
        app: Some(AppConfig {
            tenant: Tenant::Feishu,
            base_url: String::new(),
            app_id: "cli_x".into(),
            app_secret: SecretRef::parse("env:FCX_TEST_NOT_SET").expect("secret ref"),
            webhook: None,
            stale_after_secs: 60,
            reply_mode: ReplyMode::Card,
        }),
        access: AccessConfig {
            owner: Some(OWNER.into()),
            admins: vec![ADMIN.into()],
            allowed_users: vec![USER.into()],
            allowed_chats: vec![GROUP.into()],
            require_mention_in_group: true,
        },
        permissions: PermissionsConfig {
            default_access: AccessMode::Workspace,
            max_access: AccessMode::Full,
            network: false,
        },
        lark_cli: Default::default(),
    }
}

pub(crate) fn kit(runs: RunsConfig) -> Kit {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("ws")).expect("workspace");
    std::fs::create_dir_all(dir.path().join("user")).expect("user home");
    let home = Home::with_user_home(dir.path().join("home"), dir.path().join("user"));
    let store = Arc::new(Store::open(&dir.path().join("state.db")).expect("store"));
    let bus = EventBus::new(store.clone(), CancellationToken::new());
    let profile = profile(dir.path(), runs);
    let ctx = Arc::new(Ctx::new(profile, home, store, bus, "fake"));
    Kit { dir, ctx }
}

impl Kit {
    /// Every event recorded so far, in order.
    pub(crate) fn events(&self) -> Vec<WorkerEvent> {
        self.ctx
            .store
            .events()
            .events_from(1, 100_000)
            .expect("events")
    }

    /// The command replies recorded so far.
    pub(crate) fn replies(&self) -> Vec<pb::CommandReply> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.kind {
                Some(Kind::CommandReply(r)) => Some(r),
                _ => None,
            })
            .collect()
    }
}

/// A message from `actor` in a private chat (`chat:` scope of its own).
pub(crate) fn private(event_id: &str, actor: &str, text: &str) -> Inbound {
    Inbound {
        event_id: event_id.into(),
        scope: format!("chat:p_{actor}"),
        actor: Some(pb::Actor {
            id: actor.into(),
            name: String::new(),
        }),
        text: text.into(),
        chat_type: pb::ChatType::Private as i32,
        mentioned: true,
        chat_id: format!("p_{actor}"),
        message_id: format!("om_{event_id}"),
        ..Default::default()
    }
}

/// A message from `actor` in the group `chat_id`.
pub(crate) fn group(event_id: &str, actor: &str, chat_id: &str, text: &str) -> Inbound {
    Inbound {
        scope: format!("chat:{chat_id}"),
        chat_type: pb::ChatType::Group as i32,
        chat_id: chat_id.into(),
        ..private(event_id, actor, text)
    }
}

/// One run as the fake executor saw it start.
pub(crate) struct Started {
    pub(crate) scope: String,
    pub(crate) texts: Vec<String>,
    pub(crate) slot: Arc<RunSlot>,
    /// Send (or drop) to end the run.
    pub(crate) release: oneshot::Sender<()>,
}

/// An executor that reports each run and holds it until released or
/// stopped.
pub(crate) struct FakeExec {
    tx: mpsc::UnboundedSender<Started>,
}

impl FakeExec {
    pub(crate) fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Started>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(FakeExec { tx }), rx)
    }
}

impl Execute for FakeExec {
    fn execute(&self, job: RunJob) -> BoxFuture<'static, ()> {
        let (release, held) = oneshot::channel();
        let cancel = job.slot.cancel.clone();
        let _ = self.tx.send(Started {
            scope: job.scope.clone(),
            texts: job
                .messages
                .iter()
                .map(|m| m.inbound.text.clone())
                .collect(),
            slot: job.slot.clone(),
            release,
        });
        Box::pin(async move {
            tokio::select! {
                _ = held => {}
                _ = cancel.cancelled() => {}
            }
        })
    }
}

/// One scripted turn of the fake runner.
#[derive(Clone)]
pub(crate) struct Turn {
    pub(crate) events: Vec<RunnerEvent>,
    /// Wait for the run to be cancelled before ending (as `Interrupted`).
    pub(crate) hold: bool,
    pub(crate) result: RunResult,
}

pub(crate) fn result(outcome: Outcome, thread: Option<&str>, text: Option<&str>) -> RunResult {
    RunResult {
        outcome,
        thread_id: thread.map(str::to_string),
        final_text: text.map(str::to_string),
        usage: None,
        stderr_tail: String::new(),
        exit_code: Some(0),
    }
}

/// A runner that plays scripted turns in order and records each spec.
#[derive(Clone, Default)]
pub(crate) struct FakeRunner {
    turns: Arc<Mutex<VecDeque<Turn>>>,
    pub(crate) specs: Arc<Mutex<Vec<RunSpec>>>,
}

impl FakeRunner {
    pub(crate) fn new(turns: Vec<Turn>) -> Self {
        FakeRunner {
            turns: Arc::new(Mutex::new(turns.into())),
            specs: Arc::default(),
        }
    }

    pub(crate) fn specs(&self) -> Vec<RunSpec> {
        self.specs.lock().expect("specs").clone()
    }
}

impl Runner for FakeRunner {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn caps(&self) -> RunnerCaps {
        RunnerCaps::default()
    }

    fn run(&self, spec: RunSpec, io: RunIo) -> BoxFuture<'static, RunResult> {
        self.specs.lock().expect("specs").push(spec);
        let turn = self.turns.lock().expect("turns").pop_front();
        Box::pin(async move {
            let Some(turn) = turn else {
                return result(
                    Outcome::Failed {
                        message: "no scripted turn".into(),
                    },
                    None,
                    None,
                );
            };
            for ev in turn.events {
                let _ = io.events.send(ev).await;
            }
            if turn.hold {
                io.cancel.cancelled().await;
                return RunResult {
                    outcome: Outcome::Interrupted,
                    ..turn.result
                };
            }
            turn.result
        })
    }
}
