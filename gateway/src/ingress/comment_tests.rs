use serde_json::json;

use super::*;
use crate::feishu::drive::Reply;

fn bot() -> BotIdentity {
    BotIdentity {
        open_id: "ou_bot".into(),
        name: "fcx".into(),
    }
}

fn event(from: &str, mentioned: bool, reply_id: Option<&str>) -> Value {
    let mut ev = json!({
        "comment_id": "7001",
        "is_mentioned": mentioned,
        "notice_meta": {
            "file_type": "docx",
            "file_token": "doxcnFILE",
            "from_user_id": {"open_id": from},
            "to_user_id": {"open_id": "ou_bot"},
            "notice_type": "add_comment",
        },
    });
    if let Some(r) = reply_id {
        ev["reply_id"] = json!(r);
    }
    ev
}

fn reply(id: &str, user: &str, text: &str) -> Reply {
    Reply {
        reply_id: id.into(),
        user_id: user.into(),
        text: text.into(),
        create_time: 1_700_000_000,
    }
}

#[test]
fn only_mentions_by_others_are_taken() {
    let n = normalize("ev1", &event("ou_ann", true, None), &bot()).expect("ok");
    let Normalized::Comment(c) = n else {
        panic!("{n:?}")
    };
    assert_eq!(
        (
            c.file_token.as_str(),
            c.kind.as_str(),
            c.comment_id.as_str(),
            c.from.as_str()
        ),
        ("doxcnFILE", "docx", "7001", "ou_ann")
    );
    for (ev, why) in [
        (event("ou_bot", true, None), "by the bot itself"),
        (event("ou_ann", false, None), "does not mention the bot"),
    ] {
        match normalize("ev2", &ev, &bot()).expect("ok") {
            Normalized::Ignored { reason, .. } => assert!(reason.contains(why), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(normalize("ev3", &json!({"comment_id": "1"}), &bot()).is_err());
}

#[test]
fn a_mention_becomes_an_inbound_with_its_quote_thread_and_target() {
    let ev = CommentEvent {
        file_token: "doxcnFILE".into(),
        kind: "docx".into(),
        comment_id: "7001".into(),
        reply_id: "7102".into(),
        from: "ou_ann".into(),
    };
    let comment = Comment {
        comment_id: "7001".into(),
        user_id: "ou_bob".into(),
        is_whole: false,
        is_solved: false,
        quote: "the cache is write-through".into(),
        replies: vec![
            reply("7101", "ou_bob", "is this right?"),
            reply("7102", "ou_ann", "@ou_bot   what do you think?\n"),
            reply("7103", "ou_bob", "later"),
        ],
    };
    let i = inbound(&ev, &comment, "Design", &bot()).expect("an inbound");
    assert_eq!(i.text, "what do you think?");
    assert_eq!(i.chat_type(), ChatType::Comment);
    assert!(i.mentioned);
    assert_eq!(i.actor.as_ref().map(|a| a.id.as_str()), Some("ou_ann"));
    let scope = pb::Scope::parse(&i.scope).expect("a comment scope");
    assert_eq!(scope.kind(), pb::ScopeKind::Comment);
    assert!(!i.scope.contains("doxcnFILE") && !i.scope.contains("7001"));
    assert_eq!(i.event_id, ev.dedup_key());
    let dc = i.comment.as_ref().expect("document comment");
    assert_eq!(
        (dc.title.as_str(), dc.kind.as_str(), dc.quote.as_str()),
        ("Design", "docx", "the cache is write-through")
    );
    // Only what came before the question.
    assert_eq!(dc.thread.len(), 1);
    assert_eq!(dc.thread[0].text, "is this right?");
    let t = Target::parse(&i.message_id).expect("a target");
    assert_eq!(
        (
            t.file_token.as_str(),
            t.comment_id.as_str(),
            t.reply_id.as_str(),
            t.user.as_str()
        ),
        ("doxcnFILE", "7001", "7102", "ou_ann")
    );
    assert!(!t.whole);

    // The same mention always gets the same scope and key (a redelivery is
    // a duplicate); another mention on the same comment a scope of its own
    // that continues the same document.
    let again = inbound(&ev, &comment, "Design", &bot()).expect("again");
    assert_eq!(
        (again.scope.clone(), again.event_id.clone()),
        (i.scope.clone(), i.event_id.clone())
    );
    let other = CommentEvent {
        reply_id: "7103".into(),
        ..ev.clone()
    };
    let o = inbound(&other, &comment, "Design", &bot()).expect("other");
    assert_ne!(o.scope, i.scope);
    assert_eq!(
        pb::Scope::continuity_of(&o.scope),
        pb::Scope::continuity_of(&i.scope)
    );
}

#[test]
fn a_new_comment_asks_with_its_body_and_a_bare_mention_points_at_the_quote() {
    let ev = CommentEvent {
        file_token: "doxcnFILE".into(),
        kind: "docx".into(),
        comment_id: "7001".into(),
        reply_id: String::new(),
        from: "ou_ann".into(),
    };
    let mut comment = Comment {
        comment_id: "7001".into(),
        is_whole: true,
        replies: vec![reply("7101", "ou_ann", "@ou_bot")],
        ..Default::default()
    };
    // Nothing asked, nothing quoted: nothing to run.
    assert_eq!(inbound(&ev, &comment, "", &bot()), None);
    comment.quote = "some text".into();
    let i = inbound(&ev, &comment, "", &bot()).expect("an inbound");
    assert!(i.text.contains("quoted document text"), "{}", i.text);
    let t = Target::parse(&i.message_id).expect("target");
    assert!(t.whole);
    assert_eq!(t.reply_id, "7101");
    // The mentioning reply is gone.
    let gone = CommentEvent {
        reply_id: "9999".into(),
        ..ev
    };
    assert_eq!(inbound(&gone, &comment, "", &bot()), None);
}
