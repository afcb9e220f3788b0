use clap::Parser as _;
use fcx_worker::app::{self, Args};
use tracing_subscriber::prelude::*;

fn main() -> std::process::ExitCode {
    fcx_config::restrict_umask();
    fcx_config::not_dumpable();
    let args = Args::parse();
    let home = args
        .home
        .clone()
        .map(fcx_config::Home::new)
        .unwrap_or_else(fcx_config::Home::from_env);
    // The Codex key's variable (fcxd passes this profile's own) is read now
    // and leaves the environment: the runs get it from memory.
    let config = fcx_config::Config::load(&home).ok();
    // SAFETY: no other thread exists yet (the runtime is built below) and
    // nothing has changed the environment.
    unsafe {
        fcx_config::env_secrets::take(
            "fcx-worker",
            fcx_config::env_secrets::referenced(config.as_ref()),
        )
    };
    // Logs go to the profile's JSON log file; stderr carries only the one
    // sentence fcxd shows when the worker cannot start.
    let retention = config.as_ref().map(|c| c.logs).unwrap_or_default();
    if let Ok(file) =
        fcx_config::open_log_file(&home, &format!("worker-{}", args.profile), &retention)
    {
        let filter = tracing_subscriber::EnvFilter::try_from_env("FCX_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::sync::Mutex::new(file)),
            )
            .init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fcx-worker: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(app::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "worker failed");
            eprintln!("fcx-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    };
    // The stdin watch is a blocking read that never returns while fcxd
    // lives; do not let runtime teardown wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}
