//! The only contract between fcx processes.
//!
//! `fcx.v1` is versioned by [`PROTOCOL_VERSION`]: bump it on any change that an
//! older peer would misread, and both sides refuse a mismatch at `Hello`.

#[allow(clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("fcx.v1");
}

/// Wire protocol version spoken by this build (checked at `Hello`).
pub const PROTOCOL_VERSION: u32 = 1;

/// The crate version, shown in `Hello` and status output.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The sentence both sides use when versions differ, so the operator sees the
/// same explanation whichever side noticed.
pub fn version_mismatch_message(ours: u32, theirs: u32, peer: &str) -> String {
    format!(
        "protocol version mismatch: this side speaks fcx.v1 protocol {ours}, the {peer} speaks {theirs}; \
         install fcxd and fcx-worker from the same build"
    )
}
