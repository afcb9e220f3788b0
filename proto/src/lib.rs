//! The only contract between fcx processes.
//!
//! `fcx.v1` is versioned by [`PROTOCOL_VERSION`]: bump it on any change that an
//! older peer would misread, and both sides refuse a mismatch at `Hello`.

#![warn(missing_docs)]

/// The generated `fcx.v1` messages and services (documented in the .proto files).
#[allow(clippy::all, clippy::unwrap_used, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fcx.v1");
}

mod action;
pub mod media;
mod scope;
mod words;

/// The Feishu/Lark long-connection frame (not part of fcx's own contract;
/// here so the gateway and the test platform share one definition).
#[allow(clippy::all, clippy::unwrap_used, missing_docs)]
pub mod pbbp2 {
    tonic::include_proto!("pbbp2");

    #[cfg(test)]
    mod tests {
        use super::*;
        use prost::Message as _;

        #[test]
        fn a_ping_encodes_all_four_required_fields() {
            let ping = Frame {
                seq_id: 0,
                log_id: 0,
                service: 7,
                method: 0,
                headers: vec![Header {
                    key: "type".into(),
                    value: "ping".into(),
                }],
                ..Default::default()
            };
            let b = ping.encode_to_vec();
            // 08 00 10 00 18 07 20 00 2a ... (feishu.md §1.4)
            assert_eq!(
                &b[..9],
                &[0x08, 0x00, 0x10, 0x00, 0x18, 0x07, 0x20, 0x00, 0x2a]
            );
            assert_eq!(Frame::decode(b.as_slice()).expect("decode"), ping);
        }
    }
}

/// Wire protocol version spoken by this build (checked at `Hello`).
///
/// 3: closed sets are enums, `Action` is a oneof, `Scope` names the scope
/// grammar (see `proto/tests/descriptor.rs` for how a change is caught).
pub const PROTOCOL_VERSION: u32 = 3;

/// Capability names stated in `Hello`. A side offers a feature only when the
/// other side announced the capability that carries it out.
pub mod caps {
    /// Worker: `Act(stop)` stops a run (run cards get a Stop button).
    pub const STOP: &str = "stop";
    /// Worker: command replies carry buttons and a `/config` form, and
    /// `Act(command | config | resume)` carries them out.
    pub const COMMAND_CARDS: &str = "command-cards";
    /// Worker: `Act(group_created)` enables a group made for `/new group`.
    pub const GROUP_CREATED: &str = "group-created";
    /// Worker: `SetPlatform` sets the owner learned from the platform.
    pub const PLATFORM_INFO: &str = "platform-info";
    /// Both: `Events(from_seq)` resumes without loss.
    pub const EVENTS_RESUME: &str = "events-resume";
    /// Gateway: it carries out `GatewayRequest.create_group`.
    pub const CREATE_GROUP: &str = "create-group";
    /// Gateway: it carries out `GatewayRequest.reconnect`.
    pub const RECONNECT: &str = "reconnect";
    /// Gateway: it sends `FileOut` files to the chat.
    pub const FILES_OUT: &str = "files-out";

    /// Worker: approval requests come as command replies with APPROVAL
    /// buttons, and `Act(approval)` carries the decision to Codex.
    pub const APPROVALS: &str = "approvals";
    /// Worker: final run cards carry THREAD buttons (Fork, Archive), and
    /// `Act(thread)` carries them out.
    pub const THREADS: &str = "threads";

    /// What an fcx-worker of this build announces.
    pub const WORKER: &[&str] = &[
        STOP,
        APPROVALS,
        THREADS,
        COMMAND_CARDS,
        GROUP_CREATED,
        PLATFORM_INFO,
        EVENTS_RESUME,
    ];
    /// What fcxd of this build announces.
    pub const GATEWAY: &[&str] = &[EVENTS_RESUME, CREATE_GROUP, RECONNECT, FILES_OUT];
}

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
