use fcx_config::RunsConfig;

use super::*;
use crate::store::ScopeSettings;
use crate::testkit;

const SCOPE: &str = "chat:a";

fn setup() -> (testkit::Kit, Catalog, RunPolicy) {
    let kit = testkit::kit(RunsConfig::default());
    let catalog = Catalog::new(kit.ctx.clone());
    let policy = kit.ctx.policy(SCOPE).expect("policy");
    (kit, catalog, policy)
}

#[test]
fn the_next_run_continues_only_a_thread_of_the_same_policy() {
    let (_kit, catalog, policy) = setup();
    assert_eq!(catalog.next_run(SCOPE, &policy), Continue::Fresh);
    catalog.save_session(SCOPE, "t1", &policy, RunTotals::default(), "first");
    match catalog.next_run(SCOPE, &policy) {
        Continue::Thread(s) => assert_eq!(s.thread_id, "t1"),
        other => panic!("expected the stored thread, got {other:?}"),
    }
    let mut other = policy.clone();
    other.fingerprint = "changed".into();
    assert_eq!(catalog.next_run(SCOPE, &other), Continue::PolicyChanged);
}

#[test]
fn only_compatible_threads_are_offered_and_the_rest_are_counted() {
    let (kit, catalog, policy) = setup();
    catalog.save_session(SCOPE, "t1", &policy, RunTotals::default(), "one");
    catalog.save_session(SCOPE, "t2", &policy, RunTotals::default(), "two");
    // The scope moves to another workspace: both old threads stop fitting.
    std::fs::create_dir_all(kit.dir.path().join("ws2")).expect("ws2");
    let settings = ScopeSettings {
        workspace: Some(kit.dir.path().join("ws2").display().to_string()),
        ..Default::default()
    };
    kit.ctx
        .store
        .settings()
        .set_scope_settings(SCOPE, &settings, now_ms())
        .expect("settings");
    let moved = kit.ctx.policy(SCOPE).expect("policy");
    assert_ne!(moved.fingerprint, policy.fingerprint);
    catalog.save_session(SCOPE, "t3", &moved, RunTotals::default(), "three");
    let (offered, hidden) = catalog.resumable(SCOPE, &moved).expect("catalog");
    assert_eq!(
        offered
            .iter()
            .map(|e| e.thread_id.as_str())
            .collect::<Vec<_>>(),
        ["t3"]
    );
    assert_eq!(hidden, 2);
    // Archived, they are the first to go when the catalog is pruned.
    catalog.archive_incompatible(SCOPE);
    let archived = |t: &str| {
        kit.ctx
            .store
            .sessions()
            .catalog_entry(SCOPE, t)
            .expect("read")
            .map(|e| e.archived)
    };
    assert_eq!(
        (archived("t1"), archived("t2"), archived("t3")),
        (Some(true), Some(true), Some(false))
    );
}

#[test]
fn a_code_leads_to_its_thread_only_in_its_own_scope() {
    let (_kit, catalog, policy) = setup();
    catalog.save_session(SCOPE, "t1", &policy, RunTotals::default(), "one");
    let code = catalog.issue_code(SCOPE, "t1");
    assert_eq!(code.len(), 6);
    assert_eq!(
        catalog.redeem("chat:other", &code).expect("read"),
        Err(ResumeRefusal::UnknownCode)
    );
    assert_eq!(
        catalog.redeem(SCOPE, "zzzzzz").expect("read"),
        Err(ResumeRefusal::UnknownCode)
    );
    let entry = catalog
        .redeem(SCOPE, &code)
        .expect("read")
        .expect("the thread");
    assert_eq!(entry.thread_id, "t1");
    assert!(Catalog::fits(&entry, &policy));
    let mut other = policy.clone();
    other.fingerprint = "changed".into();
    assert!(!Catalog::fits(&entry, &other));
    // A thread the catalog no longer has.
    let ghost = catalog.issue_code(SCOPE, "t-ghost");
    assert_eq!(
        catalog.redeem(SCOPE, &ghost).expect("read"),
        Err(ResumeRefusal::Gone)
    );
}

#[test]
fn resuming_makes_the_thread_the_scope_session() {
    let (kit, catalog, policy) = setup();
    catalog.save_session(SCOPE, "t1", &policy, RunTotals::default(), "one");
    catalog.save_session(SCOPE, "t2", &policy, RunTotals::default(), "two");
    let entry = kit
        .ctx
        .store
        .sessions()
        .catalog_entry(SCOPE, "t1")
        .expect("read")
        .expect("entry");
    catalog.resume(&entry, &policy).expect("resume");
    match catalog.next_run(SCOPE, &policy) {
        Continue::Thread(s) => assert_eq!(s.thread_id, "t1"),
        other => panic!("expected t1, got {other:?}"),
    }
}
