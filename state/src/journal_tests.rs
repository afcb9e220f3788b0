use crate::test_support::inbound;
use crate::{InboxKind, Store};

#[test]
fn accept_is_idempotent_and_survives_reopen() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("s/state.db");
    {
        let s = Store::open(&p).expect("open");
        let a = s
            .journal()
            .accept(&inbound("e1", "chat:a"), InboxKind::Message, 1)
            .expect("accept");
        assert!(!a.duplicate);
        let b = s
            .journal()
            .accept(&inbound("e1", "chat:a"), InboxKind::Message, 2)
            .expect("accept again");
        assert!(b.duplicate);
        assert_eq!(a.inbox_id, b.inbox_id);
    }
    let s = Store::open(&p).expect("reopen");
    let q = s.journal().queued().expect("queued");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].inbound.text, "text of e1");
    assert!(
        s.journal()
            .accept(&inbound("e1", "chat:a"), InboxKind::Message, 3)
            .expect("dup after reopen")
            .duplicate
    );
}

#[test]
fn the_last_chat_type_of_a_scope_comes_from_its_newest_message() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&d.path().join("state.db")).expect("open");
    assert_eq!(s.journal().last_chat_type("chat:g").expect("none"), None);
    let mut m = inbound("e1", "chat:g");
    m.chat_type = fcx_proto::v1::ChatType::Group as i32;
    s.journal()
        .accept(&m, InboxKind::Command, 1)
        .expect("accept");
    s.journal()
        .accept(&inbound("e2", "chat:other"), InboxKind::Command, 2)
        .expect("accept");
    assert_eq!(
        s.journal().last_chat_type("chat:g").expect("type"),
        Some(fcx_proto::v1::ChatType::Group as i32)
    );
}
