//! Compiles the contract with protox (pure Rust), so a clean clone builds with
//! `cargo build` alone: no system protoc is assumed anywhere.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/fcx/v1/worker.proto",
        "proto/fcx/v1/gateway.proto",
        "proto/pbbp2/pbbp2.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
