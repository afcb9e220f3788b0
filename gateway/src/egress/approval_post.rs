//! An approval request never waits invisibly: when its card cannot be
//! posted (the platform refused it, or the scope is a document comment,
//! where no card can go), fcxd tells the worker, which declines the
//! request and says so in the run.

use std::time::Duration;

use fcx_proto::v1 as pb;

use crate::link::supervisor::WorkerHandle;

/// How long fcxd waits for the worker to take the report.
const REPORT_LIMIT: Duration = Duration::from_secs(15);

/// `Act(approval, undeliverable)` for the request behind `c`'s buttons
/// (`<run_id>/<approval_id>/<decision>`).
pub(crate) async fn undeliverable(
    worker: &WorkerHandle,
    ev: &pb::WorkerEvent,
    c: &pb::CommandReply,
) {
    let Some((run_id, approval_id)) = c
        .buttons
        .iter()
        .filter(|b| b.action() == pb::ActionKind::Approval)
        .find_map(|b| {
            let mut parts = b.value.splitn(3, '/');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
    else {
        return;
    };
    tracing::warn!(scope = %ev.scope, run_id = %run_id, approval = %approval_id, "the approval card could not be posted; asking the worker to decline the request");
    let act = worker.act(pb::Action {
        scope: ev.scope.clone(),
        kind: Some(pb::action::Kind::Approval(pb::ApprovalAction {
            run_id,
            approval_id,
            decision: pb::ApprovalDecision::Deny as i32,
            note: String::new(),
            undeliverable: true,
        })),
        ..Default::default()
    });
    match tokio::time::timeout(REPORT_LIMIT, act).await {
        Ok(Ok(r)) if r.ok => {}
        Ok(Ok(r)) => {
            tracing::info!(scope = %ev.scope, message = %r.message, "the worker did not decline the undeliverable request")
        }
        Ok(Err(e)) => {
            tracing::warn!(scope = %ev.scope, error = %e, "cannot tell the worker its approval card was not posted")
        }
        Err(_) => {
            tracing::warn!(scope = %ev.scope, "the worker did not take the undeliverable-approval report in time")
        }
    }
}
