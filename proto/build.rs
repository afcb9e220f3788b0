//! Compiles the contract with protox (pure Rust), so a clean clone builds with
//! `cargo build` alone: no system protoc is assumed anywhere.
//!
//! It also writes `fcx_v1.contract.txt` to OUT_DIR: every message, field,
//! enum value and RPC of `fcx.v1` (comments left out), which
//! `tests/contract.rs` compares with the checked-in copy for the current
//! PROTOCOL_VERSION.

use std::fmt::Write as _;

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

    let mut out = String::new();
    for file in fds.file.iter().filter(|f| f.package() == "fcx.v1") {
        writeln!(out, "file {}", file.name())?;
        for m in &file.message_type {
            writeln!(out, "message {}", m.name())?;
            for r in &m.reserved_range {
                writeln!(out, "  reserved {}..{}", r.start(), r.end())?;
            }
            for f in &m.field {
                let oneof = match f.oneof_index {
                    Some(i) => format!(" oneof {}", m.oneof_decl[i as usize].name()),
                    None => String::new(),
                };
                let ty = match f.type_name() {
                    "" => format!("{:?}", f.r#type()),
                    name => format!("{:?} {name}", f.r#type()),
                };
                writeln!(
                    out,
                    "  {} {:?} {ty} = {}{oneof}",
                    f.name(),
                    f.label(),
                    f.number()
                )?;
            }
            for n in &m.nested_type {
                writeln!(out, "  nested {}", n.name())?;
            }
        }
        for e in &file.enum_type {
            writeln!(out, "enum {}", e.name())?;
            for v in &e.value {
                writeln!(out, "  {} = {}", v.name(), v.number())?;
            }
        }
        for s in &file.service {
            writeln!(out, "service {}", s.name())?;
            for m in &s.method {
                writeln!(
                    out,
                    "  rpc {}({}{}) returns ({}{})",
                    m.name(),
                    if m.client_streaming() { "stream " } else { "" },
                    m.input_type(),
                    if m.server_streaming() { "stream " } else { "" },
                    m.output_type()
                )?;
            }
        }
    }
    let out_dir = std::env::var("OUT_DIR")?;
    std::fs::write(
        std::path::Path::new(&out_dir).join("fcx_v1.contract.txt"),
        out,
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
