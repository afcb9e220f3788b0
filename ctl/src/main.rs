//! The `fcxctl` binary; everything lives in the `fcx_ctl` library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    fcx_config::restrict_umask();
    fcx_ctl::run(fcx_ctl::Cli::parse())
}
