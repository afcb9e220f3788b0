use super::*;
use crate::feishu::http::{MessageBody, MessageSender};

fn child(parent: &str, msg_type: &str, content: serde_json::Value) -> Message {
    Message {
        message_id: format!("om_{msg_type}"),
        msg_type: Some(msg_type.into()),
        upper_message_id: Some(parent.into()),
        sender: Some(MessageSender {
            id: Some("ou_alice".into()),
            sender_type: Some("user".into()),
            ..Default::default()
        }),
        body: Some(MessageBody {
            content: content.to_string(),
        }),
        ..Default::default()
    }
}

#[test]
fn children_in_order_with_resources_named_as_not_available() {
    let me = Message {
        message_id: "om_mf".into(),
        msg_type: Some("merge_forward".into()),
        ..Default::default()
    };
    let items = vec![
        me,
        child("om_mf", "text", serde_json::json!({"text": "first"})),
        child("om_mf", "image", serde_json::json!({"image_key": "img_1"})),
        child(
            "om_mf",
            "file",
            serde_json::json!({"file_key": "f", "file_name": "log.txt"}),
        ),
        child(
            "om_mf",
            "post",
            serde_json::json!({"title": "", "content": [[{"tag": "text", "text": "second"}], [{"tag": "img", "image_key": "img_2"}]]}),
        ),
        // A grandchild (inside a nested forward) is not this forward's.
        child("om_other", "text", serde_json::json!({"text": "not mine"})),
    ];
    let t = render("om_mf", &items);
    assert!(t.starts_with("Forwarded messages:"), "{t}");
    let first = t.find("first").expect("first");
    let second = t.find("second").expect("second");
    assert!(first < second, "{t}");
    assert!(t.contains("[an image — not available"), "{t}");
    assert!(t.contains("a file: log.txt — not available"), "{t}");
    assert!(
        t.contains("1 image(s) or video(s) in this message — not available"),
        "{t}"
    );
    assert!(t.contains("(234043)"), "{t}");
    assert!(t.contains("ou_alice"), "{t}");
    assert!(!t.contains("not mine"), "{t}");
}

#[test]
fn capped_by_count_and_by_size_with_a_note() {
    let many: Vec<Message> = (0..MAX_CHILDREN + 7)
        .map(|i| {
            child(
                "om_mf",
                "text",
                serde_json::json!({"text": format!("m{i}")}),
            )
        })
        .collect();
    let t = render("om_mf", &many);
    assert!(t.contains(&format!("[{MAX_CHILDREN}]")), "{t}");
    assert!(!t.contains(&format!("[{}]", MAX_CHILDREN + 1)), "{t}");
    assert!(t.contains("[7 more forwarded message(s) not shown"), "{t}");

    let big = "x".repeat(20 * 1024);
    let huge: Vec<Message> = (0..5)
        .map(|_| child("om_mf", "text", serde_json::json!({"text": big})))
        .collect();
    let t = render("om_mf", &huge);
    assert!(t.len() <= MAX_TEXT_BYTES + 200, "{}", t.len());
    assert!(
        t.contains("[3 more forwarded message(s) not shown"),
        "{}",
        &t[t.len() - 200..]
    );
}

#[test]
fn no_children_keeps_the_placeholder() {
    assert!(render("om_mf", &[]).starts_with(PLACEHOLDER));
}

#[test]
fn unread_reasons_are_one_line() {
    let refused = ApiError::Api {
        path: "/x".into(),
        status: 400,
        code: 230027,
        msg: "no permission".into(),
        log_id: None,
    };
    for t in [unread_text(Some(&refused)), unread_text(None)] {
        assert!(!t.contains('\n'), "{t}");
        assert!(t.contains("could not read the forwarded messages"), "{t}");
    }
    assert!(unread_text(Some(&refused)).contains("230027"));
    assert!(unread_text(None).contains("too long"));
}
