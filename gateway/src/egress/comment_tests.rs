use super::*;

fn target() -> Target {
    Target {
        kind: "docx".into(),
        file_token: "doxcnAbc".into(),
        comment_id: "7000000000000000001".into(),
        reply_id: "7100000000000000002".into(),
        whole: false,
        user: "ou_asker".into(),
    }
}

#[test]
fn a_target_round_trips_through_its_carrier_and_chat_ids_are_not_targets() {
    let t = target();
    assert_eq!(Target::parse(&t.carrier()), Some(t.clone()));
    let w = Target {
        whole: true,
        reply_id: String::new(),
        ..t
    };
    assert_eq!(Target::parse(&w.carrier()), Some(w));
    for s in [
        "om_123",
        "",
        "fcxcomment",
        "fcxcomment/docx/a/b/c/a",
        "fcxcomment/docx/a/b/c/a/u/x",
        "fcxcomment/docx/../b/c/a/u",
        "fcxcomment/docx//b/c/a/u",
    ] {
        assert_eq!(Target::parse(s), None, "{s}");
    }
}

#[test]
fn short_answers_are_one_reply_and_long_ones_split_at_lines_within_the_limit() {
    assert_eq!(parts("hello"), vec!["hello"]);
    assert!(parts("  \n").is_empty());
    let line = format!("{}\n", "x".repeat(300));
    let text = line.repeat(6);
    let p = parts(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().all(|x| x.chars().count() <= MAX_REPLY_CHARS));
    assert_eq!(p.concat().replace('\n', ""), "x".repeat(1800));
    // A line longer than a reply is cut inside the line; multi-byte
    // characters are counted as characters.
    let p = parts(&"长".repeat(MAX_REPLY_CHARS + 10));
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].chars().count(), MAX_REPLY_CHARS);
    assert_eq!(p[1].chars().count(), 10);
}

#[test]
fn an_answer_beyond_the_last_part_is_shortened_with_a_note() {
    let text = "y".repeat(MAX_REPLY_CHARS * (MAX_PARTS + 2));
    let p = parts(&text);
    assert_eq!(p.len(), MAX_PARTS);
    assert!(
        p.iter().all(|x| x.chars().count() <= MAX_REPLY_CHARS),
        "{p:?}"
    );
    let last = p.last().expect("a last part");
    assert!(
        last.contains("answer shortened:") && last.contains("more characters not shown"),
        "{last}"
    );
    let shown: usize = p
        .iter()
        .map(|x| x.chars().filter(|c| *c == 'y').count())
        .sum();
    let said: usize = last
        .split("shortened: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert_eq!(shown + said, text.len());
}

#[test]
fn the_answer_is_plain_text_and_a_failure_says_why() {
    let done = |reason: pb::DoneReason, detail: &str| pb::Done {
        reason: reason as i32,
        detail: detail.into(),
        ..Default::default()
    };
    let md = "## Result\n\n**Bold** and `code` and [a link](https://x.y)\n\n```rust\nfn main() {}\n```\n- item";
    let t = answer_text(&done(pb::DoneReason::Completed, ""), md);
    for mark in ["##", "**", "`", "](", "```"] {
        assert!(!t.contains(mark), "{mark} left in {t:?}");
    }
    assert!(t.contains("Bold") && t.contains("fn main() {}") && t.contains("https://x.y"));
    assert_eq!(
        answer_text(&done(pb::DoneReason::Completed, ""), " "),
        "Codex finished without a text answer."
    );
    assert_eq!(
        answer_text(
            &done(pb::DoneReason::Failed, "codex exited with status 1"),
            ""
        ),
        "Codex could not answer: codex exited with status 1."
    );
    assert_eq!(
        answer_text(
            &done(
                pb::DoneReason::TimedOut,
                "no activity from Codex for 10 min"
            ),
            ""
        ),
        "Timed out: no activity from Codex for 10 min."
    );
    let t = answer_text(
        &done(pb::DoneReason::Interrupted, "worker restarted"),
        "partial",
    );
    assert_eq!(t, "partial\n\nInterrupted (worker restarted).");
    let long = "e".repeat(2000);
    assert!(
        answer_text(&done(pb::DoneReason::Failed, &long), "")
            .chars()
            .count()
            < 400
    );
}
