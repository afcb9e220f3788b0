//! The worker process: wiring, the serve loop and a clean shutdown.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use fcx_config::{Config, Home};
use fcx_ipc::SocketAddr;
use fcx_proto::v1::worker_server::WorkerServer;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;

use crate::events::EventBus;
use crate::lifetime::{self, Contact};
use crate::pipeline::Pipeline;
use crate::runner::Runner;
use crate::runner::app_server::{self, AppServerRunner};
use crate::runner::exec::ExecRunner;
use crate::service::WorkerService;
use crate::store::Store;

#[derive(Debug, clap::Parser)]
#[command(
    name = "fcx-worker",
    version,
    about = "fcx per-profile worker (started by fcxd)"
)]
/// The worker's command line (fcxd passes these when it spawns it).
pub struct Args {
    /// Profile to serve (a key of [profiles] in config.toml).
    #[arg(long)]
    pub profile: String,
    /// FCX_HOME (default: $FCX_HOME, else ~/.fcx).
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Socket to serve on (default: $FCX_HOME/run/worker-<profile>.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Exit when stdin closes. fcxd does not ask for it: its workers outlive
    /// it (a new fcxd reattaches by the socket) and exit on their own after
    /// a long grace period without any gateway (see `lifetime`).
    #[arg(long)]
    pub exit_with_parent: bool,
}

/// Serves the profile until asked to stop: recovers its state, serves its
/// socket, runs Codex, and ends runs and streams in order on the way out.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let home = args
        .home
        .clone()
        .map(Home::new)
        .unwrap_or_else(Home::from_env);
    home.ensure_private()
        .with_context(|| format!("cannot make {} private (0700)", home.root().display()))?;
    let config = Config::load(&home)?;
    let profile = config.profile(&args.profile)?.clone();
    let store = Arc::new(
        Store::open(&home.profile(&profile.name).state_db())
            .with_context(|| format!("cannot open the state of profile {}", profile.name))?,
    );
    // Separate tokens: runs stop first and report their end; the event
    // streams close only after that, so the gateway sees every final event.
    let runs_token = CancellationToken::new();
    let streams_token = CancellationToken::new();
    let requested = CancellationToken::new();
    let bus = EventBus::new(store.clone(), streams_token.clone());
    let runner: Arc<dyn Runner> = match profile.codex.runner {
        fcx_config::RunnerKind::Exec => Arc::new(ExecRunner::new()),
        fcx_config::RunnerKind::AppServer => {
            Arc::new(AppServerRunner::with_pool(app_server::pool::Pool::new(
                std::time::Duration::from_secs(profile.codex.app_server_idle_secs),
                profile.codex.app_server_max_idle,
                Some(app_server::pool::Listing {
                    home: home.clone(),
                    profile: profile.name.clone(),
                }),
                runs_token.child_token(),
            )))
        }
    };
    let runner_name = runner.name();
    let pipeline = Arc::new(Pipeline::new(
        profile.clone(),
        home.clone(),
        store.clone(),
        bus.clone(),
        runner,
        runs_token.clone(),
    ));
    pipeline
        .start()
        .context("cannot recover the previous worker's state")?;

    let sock = args
        .socket
        .clone()
        .unwrap_or_else(|| home.worker_socket(&profile.name));
    let listener = fcx_ipc::bind(&SocketAddr::new(sock)).await?;
    // Listed for `fcxctl kill` (and pruned by readers once this is gone).
    let _registered = fcx_config::registry::register_self(
        &home,
        &format!("w:{}", profile.name),
        "worker",
        &profile.name,
        crate::util::now_ms(),
    )
    .map_err(|e| tracing::warn!(error = %e, "cannot register the worker in run/procs"))
    .ok();
    tracing::info!(profile = %profile.name, socket = %listener.addr(), "worker serving");

    let contact = Contact::default();
    let svc = WorkerService {
        profile: profile.name.clone(),
        runner: runner_name,
        router: pipeline.router(),
        scheduler: pipeline.scheduler(),
        bus: bus.clone(),
        shutdown_requested: requested.clone(),
    };
    let server_stop = CancellationToken::new();
    let server = {
        let stop = server_stop.clone();
        let contact = contact.clone();
        let server = WorkerServer::new(svc)
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024);
        // Every call is a sign of a living gateway.
        let server = InterceptedService::new(server, move |req| {
            contact.touch();
            Ok(req)
        });
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming_shutdown(listener.incoming(), stop.cancelled_owned())
                .await
        })
    };

    let maintenance = {
        let store = store.clone();
        let stop = streams_token.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let week_ago = crate::util::now_ms() - 7 * 24 * 3600 * 1000;
                if let Err(e) = store
                    .events()
                    .prune_events(20_000)
                    .and_then(|_| store.journal().prune_inbox(week_ago))
                {
                    tracing::warn!(error = %e, "state pruning failed");
                }
            }
        })
    };

    let orphan = lifetime::orphaned(
        contact,
        pipeline.scheduler(),
        lifetime::orphan_grace(),
        streams_token.clone(),
    );
    wait_for_stop(&requested, args.exit_with_parent, orphan).await;
    tracing::info!("stopping: ending runs");
    pipeline.shutdown().await;
    streams_token.cancel();
    server_stop.cancel();
    let _ = maintenance.await;
    // Graceful serving would wait for the gateway to drop its connection,
    // while the gateway waits for this process to exit: every stream has
    // already ended, so give in-flight calls a moment and go.
    let mut server = server;
    match tokio::time::timeout(std::time::Duration::from_millis(500), &mut server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
        Err(_) => server.abort(),
    }
    tracing::info!("worker stopped");
    Ok(())
}

async fn wait_for_stop(
    requested: &CancellationToken,
    exit_with_parent: bool,
    orphan: impl std::future::Future<Output = ()>,
) {
    let parent_gone = async {
        if !exit_with_parent {
            return std::future::pending::<()>().await;
        }
        use tokio::io::AsyncReadExt;
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGTERM handler");
                return requested.cancelled().await;
            }
        };
        tokio::select! {
            _ = requested.cancelled() => {}
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
            _ = parent_gone => tracing::warn!("fcxd went away (stdin closed)"),
            _ = orphan => {}
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = requested.cancelled() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = parent_gone => {}
            _ = orphan => {}
        }
    }
}
