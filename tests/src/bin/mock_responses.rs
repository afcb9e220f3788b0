//! `mock-responses --port 0 --port-file F --log requests.jsonl`: the mock
//! OpenAI Responses server as a standalone process, for tests that run the
//! gateway/worker as separate processes. Prints `LISTENING <port>` and serves
//! until SIGINT or SIGTERM.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use fcx_tests::MockResponses;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    name = "mock-responses",
    about = "Mock OpenAI Responses API for codex tests"
)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Write the bound port (decimal, newline) to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Append every request as a JSON line to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// How long STALL replies hold the stream open (default: $MOCK_STALL_SECONDS or 600).
    #[arg(long)]
    stall_seconds: Option<f64>,
}

fn write_port_file(path: &Path, port: u16) -> Result<()> {
    // Write then rename so a test polling for the file never reads it half-written.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{port}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;

    let mut builder = MockResponses::builder().port(args.port);
    if let Some(secs) = args.stall_seconds {
        let stall = Duration::try_from_secs_f64(secs)
            .with_context(|| format!("--stall-seconds {secs} is not a valid duration"))?;
        builder = builder.stall(stall);
    }
    if let Some(log) = &args.log {
        builder = builder.log_file(log);
    }
    let server = builder.start().await?;

    if let Some(path) = &args.port_file {
        write_port_file(path, server.port())?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "LISTENING {}", server.port()).context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);

    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
