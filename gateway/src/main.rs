use clap::Parser as _;

fn main() -> std::process::ExitCode {
    fcx_gateway::app::main(fcx_gateway::app::Args::parse())
}
