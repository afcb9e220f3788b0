//! Access commands: `/invite` and `/remove` for users, admins and groups.

use fcx_proto::v1::Inbound;

use super::Deps;
use super::text::{actor_id, with_mentions};
use crate::access::{Chat, LIST_ADMINS, LIST_CHATS, LIST_USERS};
use crate::commands::Target;
use crate::store::AccessOp;
use crate::util::now_ms;

pub(super) fn change(d: &Deps, inbound: &Inbound, cmd: &str, target: Target, op: AccessOp) {
    let by = actor_id(inbound).to_string();
    let verb = if op == AccessOp::Add {
        "added to"
    } else {
        "removed from"
    };
    let (list, ids, what) = match target {
        Target::Group => {
            if Chat::from_pb(inbound.chat_type()) != Some(Chat::Group) || inbound.chat_id.is_empty()
            {
                return d.replies.text(
                    inbound,
                    cmd,
                    false,
                    "Send this in the group itself",
                    format!("/{cmd} group acts on the group it is sent in."),
                );
            }
            (LIST_CHATS, vec![inbound.chat_id.clone()], "enabled groups")
        }
        Target::Users(ids) => (LIST_USERS, with_mentions(ids, inbound), "allowed users"),
        Target::Admins(ids) => (LIST_ADMINS, with_mentions(ids, inbound), "admins"),
    };
    if ids.is_empty() {
        return d.replies.text(
            inbound,
            cmd,
            false,
            "Name someone",
            format!("Usage: /{cmd} user @someone (or their user id)"),
        );
    }
    let owner = d.gate.lists().owner.clone();
    let mut done = Vec::new();
    for id in ids {
        if op == AccessOp::Remove && owner.as_deref() == Some(id.as_str()) {
            d.replies.text(
                inbound,
                cmd,
                false,
                "The owner cannot be removed",
                String::new(),
            );
            continue;
        }
        if let Err(e) = d
            .ctx
            .store
            .settings()
            .access_change(list, &id, op, &by, now_ms())
        {
            return d.replies.store_failed(inbound, cmd, e);
        }
        tracing::info!(list, subject = %id, op = ?op, by = %by, "access list changed");
        done.push(id);
    }
    if let Err(e) = d.gate.reload() {
        return d.replies.store_failed(inbound, cmd, e);
    }
    if !done.is_empty() {
        let body = if list == LIST_CHATS {
            if op == AccessOp::Add {
                "Members can now mention me here.".to_string()
            } else {
                "I will stay silent here.".to_string()
            }
        } else {
            done.join(", ")
        };
        d.replies.text(
            inbound,
            cmd,
            true,
            &format!("{} {verb} {what}", done.len()),
            body,
        );
    }
}
