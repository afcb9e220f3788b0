use std::time::Duration;

use fcx_config::RunsConfig;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::runner::{FileChange, RunnerEvent, Sandbox, TokenUsage, ToolKind, ToolStatus};
use crate::store::{InboxKind, RunRow, ScopeSettings, SessionRow};
use crate::testkit::{self, FakeRunner, Kit, Turn, result};

const SCOPE: &str = "chat:p_ou_user";

struct Fixture {
    kit: Kit,
    runner: FakeRunner,
    driver: RunDriver,
}

fn fixture(turns: Vec<Turn>) -> Fixture {
    fixture_with(RunsConfig::default(), turns)
}

fn fixture_with(runs: RunsConfig, turns: Vec<Turn>) -> Fixture {
    let kit = testkit::kit(runs);
    let runner = FakeRunner::new(turns);
    let catalog = Arc::new(Catalog::new(kit.ctx.clone()));
    let driver = RunDriver::new(kit.ctx.clone(), catalog, Arc::new(runner.clone()));
    Fixture {
        kit,
        runner,
        driver,
    }
}

impl Fixture {
    /// Accept `texts` as one run's messages, recorded as the scheduler does.
    fn job(&self, run_id: &str, texts: &[&str]) -> RunJob {
        self.job_in(SCOPE, run_id, texts)
    }

    /// [`Fixture::job`] in another scope.
    fn job_in(&self, scope: &str, run_id: &str, texts: &[&str]) -> RunJob {
        let inbounds = texts
            .iter()
            .enumerate()
            .map(|(i, t)| testkit::private(&format!("{run_id}-{i}"), testkit::USER, t))
            .collect();
        self.job_of(run_id, scope, inbounds)
    }

    /// Accept `inbounds` (all in `scope`) as one run's messages.
    fn job_of(&self, run_id: &str, scope: &str, inbounds: Vec<Inbound>) -> RunJob {
        let store = &self.kit.ctx.store;
        let messages: Vec<QueuedMessage> = inbounds
            .into_iter()
            .map(|inbound| {
                let acc = store
                    .journal()
                    .accept(&inbound, InboxKind::Message, now_ms())
                    .expect("accept");
                QueuedMessage {
                    inbox_id: acc.inbox_id,
                    scope: scope.into(),
                    inbound,
                    accepted_at_ms: now_ms(),
                }
            })
            .collect();
        let row = RunRow {
            run_id: run_id.into(),
            scope: scope.into(),
            reply_to: "om_x".into(),
            thread_id: None,
            state: "running".into(),
            started_at_ms: now_ms(),
            child_pid: None,
            child_start_time: None,
            workspace: String::new(),
        };
        let ids: Vec<i64> = messages.iter().map(|m| m.inbox_id).collect();
        store
            .runs()
            .start_run(&row, messages.len() as u32, &ids)
            .expect("start run");
        RunJob {
            scope: scope.into(),
            run_id: run_id.into(),
            reply_to: "om_x".into(),
            messages,
            slot: Arc::new(RunSlot::new(
                run_id.into(),
                now_ms(),
                CancellationToken::new(),
                String::new(),
            )),
        }
    }

    fn kinds(&self) -> Vec<Kind> {
        self.kit
            .events()
            .into_iter()
            .filter_map(|e| e.kind)
            .collect()
    }

    fn done(&self) -> pb::Done {
        self.kinds()
            .into_iter()
            .find_map(|k| match k {
                Kind::Done(d) => Some(d),
                _ => None,
            })
            .expect("a Done event")
    }

    fn notices(&self) -> Vec<String> {
        self.kinds()
            .into_iter()
            .filter_map(|k| match k {
                Kind::Notice(n) => Some(n.text),
                _ => None,
            })
            .collect()
    }

    fn fingerprint(&self) -> String {
        self.kit.ctx.policy(SCOPE).expect("policy").fingerprint
    }

    fn store_session(&self, thread: &str, fingerprint: &str, input_tokens: u64) {
        let row = SessionRow {
            scope: SCOPE.into(),
            thread_id: thread.into(),
            cwd: String::new(),
            fingerprint: fingerprint.into(),
            usage: RunTotals {
                input_tokens,
                ..Default::default()
            },
        };
        self.kit
            .ctx
            .store
            .sessions()
            .set_session(&row, now_ms())
            .expect("session");
    }

    /// Wait until an event of the run satisfies `f`.
    async fn until(&self, f: impl Fn(&Kind) -> bool) {
        for _ in 0..1000 {
            if self.kinds().iter().any(&f) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the expected event never came");
    }
}

fn usage(input: u64, output: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: input,
        output_tokens: output,
        ..Default::default()
    }
}

fn turn(events: Vec<RunnerEvent>, r: RunResult) -> Turn {
    Turn {
        events,
        hold: false,
        result: r,
    }
}

fn held(events: Vec<RunnerEvent>, thread: Option<&str>) -> Turn {
    Turn {
        events,
        hold: true,
        result: result(Outcome::Interrupted, thread, None),
    }
}

#[tokio::test]
async fn a_completed_run_reports_its_events_and_keeps_the_thread() {
    let mut done = result(Outcome::Completed, Some("t1"), Some("all done"));
    done.usage = Some(usage(120, 30));
    let f = fixture(vec![turn(
        vec![
            RunnerEvent::ThreadStarted {
                thread_id: "t1".into(),
            },
            RunnerEvent::TextDelta {
                item_id: "m1".into(),
                delta: "all done".into(),
            },
            RunnerEvent::ToolStarted {
                item_id: "c1".into(),
                kind: ToolKind::FileChange,
                title: "edit a.rs".into(),
                changes: vec![FileChange {
                    path: "a.rs".into(),
                    kind: "update".into(),
                }],
            },
            RunnerEvent::ToolCompleted {
                item_id: "c1".into(),
                kind: ToolKind::FileChange,
                title: "edit a.rs".into(),
                status: ToolStatus::Ok,
                exit_code: None,
                output: "x".repeat(10_000),
                changes: Vec::new(),
                error: None,
            },
            RunnerEvent::Usage(usage(120, 30)),
        ],
        done,
    )]);
    let job = f.job("r1", &["fix the login\nplease", "and the tests"]);
    f.driver.execute(job).await;

    let kinds = f.kinds();
    let names: Vec<&str> = kinds
        .iter()
        .map(|k| match k {
            Kind::RunStarted(_) => "started",
            Kind::ThreadBound(_) => "thread",
            Kind::TextDelta(_) => "text",
            Kind::ToolStart(_) => "tool_start",
            Kind::ToolEnd(_) => "tool_end",
            Kind::Usage(_) => "usage",
            Kind::Done(_) => "done",
            _ => "other",
        })
        .collect();
    assert_eq!(
        names,
        [
            "started",
            "thread",
            "text",
            "tool_start",
            "tool_end",
            "usage",
            "done"
        ]
    );
    let Kind::RunStarted(started) = &kinds[0] else {
        unreachable!()
    };
    assert_eq!(started.message_count, 2);
    assert!(!started.resumed);
    assert_eq!(started.fingerprint, f.fingerprint());
    let Kind::ToolEnd(end) = &kinds[4] else {
        unreachable!()
    };
    assert!(end.output_tail.len() < 4100, "tool output is bounded");
    let d = f.done();
    assert_eq!(d.reason, pb::DoneReason::Completed as i32);
    assert_eq!(d.final_text, "all done");
    assert_eq!(d.usage.map(|u| u.input_tokens), Some(120));
    let s = f
        .kit
        .ctx
        .store
        .sessions()
        .session(SCOPE)
        .expect("read")
        .expect("saved");
    assert_eq!((s.thread_id.as_str(), s.usage.input_tokens), ("t1", 120));
    let entry = f
        .kit
        .ctx
        .store
        .sessions()
        .catalog_entry(SCOPE, "t1")
        .expect("read")
        .expect("in the catalog");
    assert_eq!(entry.title, "fix the login");
    assert!(
        f.kit
            .ctx
            .store
            .runs()
            .orphaned_runs()
            .expect("runs")
            .is_empty()
    );
    // The prompt carried both messages.
    let spec = &f.runner.specs()[0];
    assert!(spec.prompt.contains("and the tests"));
    assert_eq!(spec.resume_thread, None);
}

#[tokio::test]
async fn the_next_run_resumes_the_thread_and_reports_its_own_usage() {
    let mut done = result(Outcome::Completed, Some("t1"), Some("ok"));
    done.usage = Some(usage(150, 40));
    let f = fixture(vec![turn(
        vec![
            RunnerEvent::ThreadStarted {
                thread_id: "t1".into(),
            },
            RunnerEvent::Usage(usage(150, 40)),
        ],
        done,
    )]);
    f.store_session("t1", &f.fingerprint(), 100);
    f.driver.execute(f.job("r2", &["again"])).await;
    assert_eq!(f.runner.specs()[0].resume_thread.as_deref(), Some("t1"));
    let bound = f
        .kinds()
        .into_iter()
        .find_map(|k| match k {
            Kind::ThreadBound(b) => Some(b),
            _ => None,
        })
        .expect("bound");
    assert!(bound.resumed);
    assert_eq!(f.done().usage.map(|u| u.input_tokens), Some(50));
    let per_run: Vec<u64> = f
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            Kind::Usage(u) => Some(u.input_tokens),
            _ => None,
        })
        .collect();
    assert_eq!(per_run, vec![50]);
    assert!(f.notices().is_empty());
}

#[tokio::test]
async fn a_stopped_run_ends_interrupted_and_closes_its_open_tools() {
    let f = fixture(vec![held(
        vec![RunnerEvent::ToolStarted {
            item_id: "c1".into(),
            kind: ToolKind::Command,
            title: "cargo test".into(),
            changes: Vec::new(),
        }],
        None,
    )]);
    let job = f.job("r3", &["run the tests"]);
    let slot = job.slot.clone();
    let run = f.driver.execute(job);
    let handle = tokio::spawn(run);
    f.until(|k| matches!(k, Kind::ToolStart(_))).await;
    slot.stop(StopReason::User);
    handle.await.expect("run task");
    let abandoned = f.kinds().into_iter().any(|k| {
        matches!(k, Kind::ToolEnd(e) if e.item_id == "c1" && e.status == pb::ToolStatus::Abandoned as i32)
    });
    assert!(abandoned, "the open tool is closed");
    let d = f.done();
    assert_eq!(
        (d.reason, d.detail.as_str()),
        (pb::DoneReason::Interrupted as i32, "stopped")
    );
}

#[tokio::test]
async fn a_run_stopped_for_a_new_session_does_not_keep_its_thread() {
    let f = fixture(vec![held(Vec::new(), Some("t9"))]);
    let job = f.job("r4", &["x"]);
    job.slot.stop(StopReason::NewSession);
    f.driver.execute(job).await;
    assert_eq!(
        f.kit.ctx.store.sessions().session(SCOPE).expect("read"),
        None
    );
    assert_eq!(f.done().detail, "stopped for a new session");
}

#[tokio::test]
async fn a_vanished_thread_is_replaced_by_a_fresh_one_once() {
    let f = fixture(vec![
        turn(
            Vec::new(),
            result(
                Outcome::ThreadNotFound {
                    message: "no rollout found".into(),
                },
                None,
                None,
            ),
        ),
        turn(
            vec![RunnerEvent::ThreadStarted {
                thread_id: "t-new".into(),
            }],
            result(Outcome::Completed, Some("t-new"), Some("hi")),
        ),
    ]);
    f.store_session("t-old", &f.fingerprint(), 0);
    f.driver.execute(f.job("r5", &["hello"])).await;
    let specs = f.runner.specs();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].resume_thread.as_deref(), Some("t-old"));
    assert_eq!(specs[1].resume_thread, None);
    assert!(f.notices()[0].contains("could not be found"));
    assert_eq!(f.done().reason, pb::DoneReason::Completed as i32);
    let s = f
        .kit
        .ctx
        .store
        .sessions()
        .session(SCOPE)
        .expect("read")
        .expect("saved");
    assert_eq!(s.thread_id, "t-new");
}

#[tokio::test]
async fn a_changed_policy_starts_a_new_session_and_says_so() {
    let f = fixture(vec![turn(
        vec![RunnerEvent::ThreadStarted {
            thread_id: "t2".into(),
        }],
        result(Outcome::Completed, Some("t2"), None),
    )]);
    f.store_session("t-old", "another-fingerprint", 0);
    f.driver.execute(f.job("r6", &["hello"])).await;
    assert_eq!(f.runner.specs()[0].resume_thread, None);
    assert!(f.notices()[0].contains("changed since the last session"));
}

#[tokio::test]
async fn codex_starting_another_thread_than_asked_is_not_called_a_resume() {
    let f = fixture(vec![turn(
        vec![RunnerEvent::ThreadStarted {
            thread_id: "t-other".into(),
        }],
        result(Outcome::Completed, Some("t-other"), None),
    )]);
    f.store_session("t-old", &f.fingerprint(), 0);
    f.driver.execute(f.job("r7", &["hello"])).await;
    assert!(f.notices()[0].contains("could not be continued"));
    let bound = f.kinds().into_iter().find_map(|k| match k {
        Kind::ThreadBound(b) => Some(b),
        _ => None,
    });
    assert_eq!(bound.map(|b| b.resumed), Some(false));
}

#[tokio::test]
async fn a_workspace_that_is_gone_fails_the_run_without_starting_codex() {
    let f = fixture(Vec::new());
    let settings = ScopeSettings {
        workspace: Some(f.kit.dir.path().join("gone").display().to_string()),
        ..Default::default()
    };
    f.kit
        .ctx
        .store
        .settings()
        .set_scope_settings(SCOPE, &settings, now_ms())
        .expect("settings");
    f.driver.execute(f.job("r8", &["hello"])).await;
    assert!(f.runner.specs().is_empty());
    let d = f.done();
    assert_eq!(d.reason, pb::DoneReason::Failed as i32);
    assert!(!d.detail.is_empty());
}

#[tokio::test]
async fn a_silent_codex_is_stopped_by_the_idle_timeout() {
    let f = fixture(vec![held(Vec::new(), None)]);
    let settings = ScopeSettings {
        timeout_secs: Some(1),
        ..Default::default()
    };
    f.kit
        .ctx
        .store
        .settings()
        .set_scope_settings(SCOPE, &settings, now_ms())
        .expect("settings");
    let job = f.job("r9", &["hello"]);
    let slot = job.slot.clone();
    f.driver.execute(job).await;
    assert_eq!(slot.stop_reason(), Some(StopReason::TimedOut));
    let d = f.done();
    assert_eq!(
        (d.reason, d.detail.as_str()),
        (
            pb::DoneReason::TimedOut as i32,
            "no activity from Codex for 1 second"
        )
    );
}

#[tokio::test]
async fn a_codex_that_keeps_reconnecting_fails_the_run_within_the_bound() {
    // What codex does when its model API cannot be reached: retry for
    // ever, each retry an event (so the idle timeout never fires).
    let retry = RunnerEvent::Retrying {
        message: "Reconnecting... waiting for network (Connection failed: error sending request)"
            .into(),
    };
    let runs = RunsConfig {
        model_unreachable_secs: 1,
        ..RunsConfig::default()
    };
    let f = fixture_with(
        runs,
        vec![held(vec![RunnerEvent::TurnStarted, retry], None)],
    );
    let job = f.job("r9u", &["hello"]);
    let slot = job.slot.clone();
    f.driver.execute(job).await;
    assert_eq!(slot.stop_reason(), Some(StopReason::ModelUnreachable));
    let d = f.done();
    assert_eq!(d.reason, pb::DoneReason::Failed as i32);
    assert!(
        d.detail.starts_with("Codex could not reach the model API")
            && d.detail
                .contains("for 1 second (Reconnecting... waiting for network"),
        "{}",
        d.detail
    );
}

#[tokio::test]
async fn runs_left_running_by_a_previous_worker_end_as_interrupted_and_run_once_more() {
    let f = fixture(Vec::new());
    let _job = f.job("r10", &["hello"]);
    f.driver.recover_orphans().expect("recover");
    let store = &f.kit.ctx.store;
    assert!(store.runs().orphaned_runs().expect("runs").is_empty());
    let d = f.done();
    assert_eq!(
        (d.reason, d.detail.as_str()),
        (
            pb::DoneReason::Interrupted as i32,
            "worker restarted; running it again"
        )
    );
    assert!(f.runner.specs().is_empty(), "recovery itself runs nothing");
    let queued = store.journal().queued().expect("queued");
    assert_eq!(queued.len(), 1, "the message waits to run again");
    assert_eq!(queued[0].inbound.text, "hello");
    // The retry is interrupted as well: its message is not queued a third
    // time.
    let retry = RunRow {
        run_id: "r11".into(),
        scope: SCOPE.into(),
        reply_to: "om_x".into(),
        thread_id: None,
        state: "running".into(),
        started_at_ms: now_ms(),
        child_pid: None,
        child_start_time: None,
        workspace: String::new(),
    };
    store
        .runs()
        .start_run(&retry, 1, &[queued[0].inbox_id])
        .expect("start the retry");
    assert!(store.journal().queued().expect("queued").is_empty());
    f.driver.recover_orphans().expect("recover again");
    assert!(
        store.journal().queued().expect("queued").is_empty(),
        "run once more, not twice"
    );
    let last = f
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            Kind::Done(d) => Some(d),
            _ => None,
        })
        .next_back()
        .expect("the retry's Done");
    assert_eq!(last.detail, "worker restarted");
}

#[tokio::test]
async fn the_outbox_goes_out_after_the_answer_except_on_the_console() {
    // This chat's folder (the fixture's profile is "p").
    let folder = outbox::folder("p", SCOPE);
    let outbox = |f: &Fixture| f.kit.dir.path().join("ws").join(&folder);
    let file_outs = |f: &Fixture| -> Vec<String> {
        f.kinds()
            .into_iter()
            .filter_map(|k| match k {
                Kind::FileOut(o) => Some(o.name),
                _ => None,
            })
            .collect()
    };
    let f = fixture(vec![turn(
        vec![],
        result(Outcome::Completed, Some("t1"), Some("made it")),
    )]);
    std::fs::create_dir_all(outbox(&f)).expect("outbox");
    std::fs::write(outbox(&f).join("made.txt"), b"x").expect("write");
    f.driver.execute(f.job("r1", &["make a file"])).await;
    let kinds = f.kinds();
    let done_at = kinds.iter().position(|k| matches!(k, Kind::Done(_)));
    let file_at = kinds.iter().position(|k| matches!(k, Kind::FileOut(_)));
    assert!(done_at.is_some() && done_at < file_at, "{kinds:?}");
    assert_eq!(file_outs(&f), ["made.txt"]);
    assert_eq!(std::fs::read_dir(outbox(&f)).expect("outbox").count(), 0);
    assert!(
        f.runner.specs()[0]
            .prompt
            .contains(&format!("folder {folder}/ ")),
        "the prompt names this chat's folder"
    );

    // On the console: not told, not collected.
    let f = fixture(vec![turn(
        vec![],
        result(Outcome::Completed, Some("t1"), Some("made it")),
    )]);
    std::fs::create_dir_all(outbox(&f)).expect("outbox");
    std::fs::write(outbox(&f).join("made.txt"), b"x").expect("write");
    let mut job = f.job("r1", &["make a file"]);
    for m in &mut job.messages {
        m.inbound.chat_type = pb::ChatType::Console as i32;
    }
    f.driver.execute(job).await;
    assert!(file_outs(&f).is_empty());
    assert!(outbox(&f).join("made.txt").exists());
    assert!(!f.runner.specs()[0].prompt.contains("bridge_output"));
}

/// Two comment runs on one document: the second waits for the first to
/// end, then continues the thread it left (the document's, not its own
/// scope's).
#[tokio::test]
async fn comment_runs_on_one_document_take_turns_on_its_thread() {
    let ok = result(Outcome::Completed, Some("t1"), Some("second"));
    let f = fixture(vec![
        held(
            vec![RunnerEvent::ThreadStarted {
                thread_id: "t1".into(),
            }],
            Some("t1"),
        ),
        turn(Vec::new(), ok),
    ]);
    let one = pb::Scope::comment("doc1", "c1", "n1").key();
    let two = pb::Scope::comment("doc1", "c2", "n2").key();
    let first = f.job_in(&one, "r1", &["first"]);
    let stop_first = first.slot.clone();
    let second = f.job_in(&two, "r2", &["second"]);
    let d1 = f.driver.execute(first);
    let d2 = f.driver.execute(second);
    let h1 = tokio::spawn(d1);
    f.until(|k| matches!(k, Kind::ThreadBound(_))).await;
    let h2 = tokio::spawn(d2);
    // Held back while the first holds the document's thread (an absence:
    // looked for during a bounded window, so it can only pass wrongly on a
    // very slow machine, never fail wrongly).
    let started = |run: &str| {
        f.kit
            .events()
            .iter()
            .position(|e| e.run_id == run && matches!(e.kind, Some(Kind::RunStarted(_))))
    };
    for _ in 0..20 {
        assert_eq!(
            started("r2"),
            None,
            "the second run started beside the first"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_first.stop(StopReason::User);
    h1.await.expect("first run");
    h2.await.expect("second run");
    let first_done = f
        .kit
        .events()
        .iter()
        .position(|e| e.run_id == "r1" && matches!(e.kind, Some(Kind::Done(_))))
        .expect("first done");
    assert!(started("r2").is_some_and(|i| i > first_done));
    let specs = f.runner.specs();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[1].resume_thread.as_deref(), Some("t1"));
    let doc = pb::Scope::doc("doc1").key();
    let saved = f
        .kit
        .ctx
        .store
        .sessions()
        .session(&doc)
        .expect("read")
        .expect("saved");
    assert_eq!(saved.thread_id, "t1");
    assert_eq!(
        f.kit.ctx.store.sessions().session(&one).expect("read"),
        None
    );
}

#[test]
fn a_missing_codex_is_found_by_the_shared_rule_and_names_the_pinned_install() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = testkit::profile(dir.path(), RunsConfig::default());
    p.codex.binary = dir.path().join("no-codex").display().to_string();
    let e = resolve_binary(&p).expect_err("missing");
    assert!(e.contains(fcx_config::codex::INSTALL_HINT), "{e}");
    assert!(e.contains("profiles.p.codex.binary"), "{e}");
    p.codex.binary = "codex-surely-not-on-path-0169".into();
    let e = resolve_binary(&p).expect_err("not on PATH");
    assert!(e.contains("was not found on PATH"), "{e}");
    assert!(e.contains(fcx_config::codex::INSTALL_HINT), "{e}");
    p.codex.binary = "/bin/sh".into();
    assert_eq!(resolve_binary(&p), Ok("/bin/sh".into()));
}

fn started(thread: &str) -> Vec<RunnerEvent> {
    vec![RunnerEvent::ThreadStarted {
        thread_id: thread.into(),
    }]
}

#[tokio::test]
async fn full_access_runs_only_what_the_owner_alone_wrote() {
    let f = fixture(vec![
        turn(
            started("th-1"),
            result(Outcome::Completed, Some("th-1"), Some("a")),
        ),
        turn(
            started("th-2"),
            result(Outcome::Completed, Some("th-2"), Some("b")),
        ),
        turn(
            started("th-2"),
            result(Outcome::Completed, Some("th-2"), Some("c")),
        ),
    ]);
    let ctx = &f.kit.ctx;
    *ctx.access_lists() = crate::access::Lists::build(&ctx.profile.access, None, &[]);
    let scope = format!("chat:{}", testkit::GROUP);
    let full = ScopeSettings {
        access: Some("full".into()),
        ..Default::default()
    };
    ctx.store
        .settings()
        .set_scope_settings(&scope, &full, now_ms())
        .expect("settings");
    let msg = |id: &str, who: &str| testkit::group(id, who, testkit::GROUP, "do it");

    f.driver
        .execute(f.job_of("r1", &scope, vec![msg("a", testkit::OWNER)]))
        .await;
    // A merged burst with a member's text, and a member alone.
    f.driver
        .execute(f.job_of(
            "r2",
            &scope,
            vec![msg("b", testkit::OWNER), msg("c", testkit::USER)],
        ))
        .await;
    f.driver
        .execute(f.job_of("r3", &scope, vec![msg("d", testkit::ADMIN)]))
        .await;
    let sandboxes: Vec<Sandbox> = f.runner.specs().iter().map(|s| s.sandbox).collect();
    assert_eq!(
        sandboxes,
        [
            Sandbox::DangerFullAccess,
            Sandbox::WorkspaceWrite,
            Sandbox::WorkspaceWrite
        ]
    );
    let notices = f.notices();
    assert!(
        notices
            .iter()
            .filter(|n| n.contains("only the owner's messages run with it"))
            .count()
            == 2,
        "{notices:?}"
    );
    // The capped run has its own fingerprint: it did not continue the
    // thread the owner's full-access run started.
    let specs = f.runner.specs();
    assert_eq!(specs[0].resume_thread, None);
    assert_eq!(specs[1].resume_thread, None, "no full thread under a cap");
    assert_eq!(specs[2].resume_thread.as_deref(), Some("th-2"), "same cap");
    let started: Vec<String> = f
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            Kind::RunStarted(r) => Some(r.fingerprint),
            _ => None,
        })
        .collect();
    assert_ne!(started[0], started[1]);
    assert_eq!(started[1], started[2], "same cap, same policy");
}
