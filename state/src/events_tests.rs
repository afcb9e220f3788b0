use fcx_proto::v1::WorkerEvent;

use crate::Store;

#[test]
fn event_seq_is_monotonic_across_pruning() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&d.path().join("state.db")).expect("open");
    for i in 0..10 {
        let seq = s
            .events()
            .append_event(&WorkerEvent {
                scope: "chat:a".into(),
                at_ms: i,
                ..Default::default()
            })
            .expect("append");
        assert_eq!(seq, (i + 1) as u64);
    }
    s.events().prune_events(3).expect("prune");
    let evs = s.events().events_from(0, 100).expect("read");
    assert_eq!(
        evs.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    assert_eq!(s.events().last_seq().expect("last"), 10);
    let seq = s
        .events()
        .append_event(&WorkerEvent::default())
        .expect("append after prune");
    assert_eq!(seq, 11);
}

#[test]
fn an_undecodable_event_row_is_skipped_and_later_events_still_read() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&d.path().join("state.db")).expect("open");
    for i in 0..3 {
        s.events()
            .append_event(&WorkerEvent {
                scope: "chat:a".into(),
                at_ms: i,
                ..Default::default()
            })
            .expect("append");
    }
    // Not a protobuf message: a truncated varint.
    s.with(|c| {
        c.execute("UPDATE events SET payload = x'08ff' WHERE seq = 2", [])?;
        Ok(())
    })
    .expect("corrupt row 2");
    let evs = s
        .events()
        .events_from(1, 100)
        .expect("read past the poison row");
    assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(
        s.events()
            .events_from(2, 100)
            .expect("read from the poison row")
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![3]
    );
}

#[test]
fn a_write_the_disk_refuses_is_told_apart_from_one_that_can_never_work() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&d.path().join("state.db")).expect("open");
    // SQLite refuses writes as on a read-only file system.
    s.conn
        .lock()
        .expect("lock")
        .pragma_update(None, "query_only", true)
        .expect("query_only");
    let e = s
        .events()
        .append_event(&WorkerEvent::default())
        .expect_err("a write refused");
    assert!(e.is_storage_unavailable(), "{e}");
    assert!(!crate::StoreError::Poisoned.is_storage_unavailable());
    let bad = <WorkerEvent as prost::Message>::decode(&[0xff_u8][..]).expect_err("garbage");
    assert!(!crate::StoreError::Decode(bad).is_storage_unavailable());
}
