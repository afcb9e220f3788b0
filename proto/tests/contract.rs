//! The contract golden check: the compiled `fcx.v1` descriptor (every
//! message, field, enum value and RPC; comments left out) must equal the
//! copy checked in for the current PROTOCOL_VERSION, so the contract cannot
//! change while the version stays the same.
//!
//! When this fails:
//! - you changed `proto/fcx/v1/*.proto` on purpose: bump `PROTOCOL_VERSION`
//!   in `proto/src/lib.rs`, then write the new copy with
//!   `FCX_BLESS=1 cargo test -p fcx-proto --test contract` and commit
//!   `proto/contract/v<N>.txt` (older copies stay as the record);
//! - you did not mean to change the contract: revert the `.proto` change.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

use std::path::PathBuf;

const COMPILED: &str = include_str!(concat!(env!("OUT_DIR"), "/fcx_v1.contract.txt"));

fn golden_path(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("contract/v{version}.txt"))
}

#[test]
fn the_compiled_contract_matches_the_copy_for_this_protocol_version() {
    let version = fcx_proto::PROTOCOL_VERSION;
    let path = golden_path(version);
    if std::env::var_os("FCX_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, COMPILED).expect("write the golden copy");
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no checked-in contract for PROTOCOL_VERSION {version} ({}): write it with \
             `FCX_BLESS=1 cargo test -p fcx-proto --test contract` and commit it",
            path.display()
        )
    });
    assert!(
        golden == COMPILED,
        "the fcx.v1 contract changed but PROTOCOL_VERSION is still {version}: bump it in \
         proto/src/lib.rs and run `FCX_BLESS=1 cargo test -p fcx-proto --test contract` \
         (or revert the .proto change). Compiled contract:\n{COMPILED}"
    );
}

#[test]
fn an_older_version_never_has_the_same_contract() {
    let version = fcx_proto::PROTOCOL_VERSION;
    for older in 1..version {
        if let Ok(old) = std::fs::read_to_string(golden_path(older)) {
            assert_ne!(
                old, COMPILED,
                "v{older} and v{version} are the same contract: the version was bumped for nothing"
            );
        }
    }
}
