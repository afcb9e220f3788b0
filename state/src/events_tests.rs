use fcx_proto::v1::WorkerEvent;

use crate::Store;

#[test]
fn event_seq_is_monotonic_across_pruning() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&d.path().join("state.db")).expect("open");
    for i in 0..10 {
        let seq = s
            .append_event(&WorkerEvent {
                scope: "chat:a".into(),
                at_ms: i,
                ..Default::default()
            })
            .expect("append");
        assert_eq!(seq, (i + 1) as u64);
    }
    s.prune_events(3).expect("prune");
    let evs = s.events_from(0, 100).expect("read");
    assert_eq!(
        evs.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    assert_eq!(s.last_seq().expect("last"), 10);
    let seq = s
        .append_event(&WorkerEvent::default())
        .expect("append after prune");
    assert_eq!(seq, 11);
}
