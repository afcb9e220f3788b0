use super::*;

#[test]
fn an_unreadable_nonce_log_is_kept_and_older_buttons_refused() {
    let d = tempfile::tempdir().expect("tempdir");
    // A directory where the log should be: reading it fails.
    let path = d.path().join("used-nonces");
    std::fs::create_dir(&path).expect("mkdir");
    let now = 1_000;
    let s = FileNonceStore::open(&path, now).expect("open");
    assert!(path.is_dir(), "left as it was");
    // A button made before this start (it expires within the longest
    // lifetime from now) may have been used: refused.
    assert_eq!(
        s.consume("ou_a", &[1; 16], now + 60, now),
        Err(Denied::Busy)
    );
    // Buttons made after the start work, once.
    let fresh = now + MAX_TOKEN_TTL_SECS + 1;
    assert!(s.consume("ou_a", &[2; 16], fresh, now + 1).is_ok());
    assert_eq!(
        s.consume("ou_a", &[2; 16], fresh, now + 1),
        Err(Denied::Replayed)
    );

    // A log that is not UTF-8 is read, not wiped.
    let path = d.path().join("used-nonces-2");
    let mut bytes = format!("{} {} ou_a\n", "01".repeat(16), now + 60).into_bytes();
    bytes.extend([0xff, 0xfe, b'\n']);
    std::fs::write(&path, bytes).expect("write");
    let s = FileNonceStore::open(&path, now).expect("open");
    assert_eq!(
        s.consume("ou_a", &[1; 16], now + 60, now),
        Err(Denied::Replayed)
    );
}

#[test]
fn used_nonces_survive_a_restart_until_they_expire() {
    let d = tempfile::tempdir().expect("tempdir");
    let path = d.path().join("used-nonces");
    let now = 1_000;
    {
        let s = FileNonceStore::open(&path, now).expect("open");
        s.consume("ou_a", &[1; 16], now + 60, now)
            .expect("first use");
        s.consume("ou_a", &[2; 16], now + 5, now)
            .expect("first use");
        assert_eq!(
            s.consume("ou_a", &[1; 16], now + 60, now),
            Err(Denied::Replayed)
        );
    }
    let s = FileNonceStore::open(&path, now + 10).expect("reopen");
    assert_eq!(
        s.consume("ou_a", &[1; 16], now + 60, now + 10),
        Err(Denied::Replayed),
        "still refused after a restart"
    );
    // [2;16] expired 5 s ago: still remembered (the clock may step back).
    assert_eq!(
        s.consume("ou_a", &[2; 16], now + 5, now + 10),
        Err(Denied::Replayed)
    );
    drop(s);
    // Expired longer ago than a clock step is allowed for: compacted away
    // (its token is refused by expiry).
    let later = now + 100 + CLOCK_STEP_GRACE_SECS;
    let s = FileNonceStore::open(&path, later).expect("reopen");
    assert!(s.consume("ou_a", &[2; 16], later + 70, later).is_ok());
    let text = std::fs::read_to_string(&path).expect("log");
    assert_eq!(text.lines().count(), 1, "{text}");
}

/// Issue 14 item 3: 10,000 generated forged clicks, eight kinds, against
/// the click verifier fcxd runs in the ACK path. None yields a `Click` (so
/// nothing is asked of a worker) and each is answered with a warning toast
/// from the fixed list, naming nothing of the token or the keys.
#[test]
fn ten_thousand_forged_clicks_are_all_refused_with_a_harmless_toast() {
    const CHAT: &str = "oc_forge";
    const SCOPE: &str = "chat:oc_forge";
    const OPERATOR: &str = "ou_owner";
    const CARD: &str = "om_card";
    let d = tempfile::tempdir().expect("tempdir");
    let keys = SharedKeys::open(d.path()).expect("keys");
    let version = keys.current_version();
    let cb = Callbacks {
        profile: "p".into(),
        keys: keys.clone(),
        nonces: Box::new(MemoryNonceStore::new(100_000)),
        forms: FormTokens::default(),
    };
    let now = now_ms() / 1000;
    let claims = |operator: &str, scope: &str, fingerprint: &str, expires_at: i64| {
        Claims::new(
            "run_1",
            scope,
            CHAT,
            operator,
            ACTION_STOP,
            fingerprint,
            expires_at,
        )
    };
    let good = || claims(OPERATOR, SCOPE, "fp1", now + 600);
    let click = |token: &str, operator: &str| {
        serde_json::json!({
            "operator": { "open_id": operator },
            "context": { "open_message_id": CARD, "open_chat_id": CHAT },
            "action": { "value": { (CALLBACK_VALUE_KEY): token }, "tag": "button" },
        })
    };

    // The control: a genuine click is accepted once, so the refusals below
    // are the verifier's doing, not a broken fixture.
    let used = keys.sign(&good()).expect("sign");
    assert!(cb.check(&click(&used, OPERATOR)).is_ok(), "a genuine click");

    let toasts: Vec<&str> = [
        Denied::Malformed,
        Denied::Expired,
        Denied::Replayed,
        Denied::WrongOperator,
        Denied::StaleFingerprint,
        Denied::Busy,
    ]
    .iter()
    .map(Denied::toast)
    .collect();
    let other_key = [0x5a_u8; 32];
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut by_kind = [0usize; 8];
    for i in 0..10_000usize {
        let kind = i % 8;
        let r = next();
        let (token, operator) = match kind {
            // Bad signature: the right key version, another key.
            0 => (
                callback::sign(&good(), &other_key, version).expect("sign"),
                OPERATOR,
            ),
            // Replayed: the control token, already used.
            1 => (used.clone(), OPERATOR),
            // Expired: now or up to a day ago.
            2 => (
                keys.sign(&claims(OPERATOR, SCOPE, "fp1", now - (r % 86_400) as i64))
                    .expect("sign"),
                OPERATOR,
            ),
            // Wrong actor: a genuine token clicked by someone else.
            3 => (
                keys.sign(&good()).expect("sign"),
                ["ou_other", "", "ou_owner ", "OU_OWNER"][(r % 4) as usize],
            ),
            // Wrong key version: versions this ring never had.
            4 => (
                callback::sign(&good(), &other_key, version + 1 + (r % 1000) as u32).expect("sign"),
                OPERATOR,
            ),
            // Wrong scope (another chat's button on this card), or no
            // policy fingerprint at all.
            5 => {
                let c = if r % 2 == 0 {
                    claims(OPERATOR, "chat:oc_elsewhere", "fp1", now + 600)
                } else {
                    claims(OPERATOR, SCOPE, "", now + 600)
                };
                (keys.sign(&c).expect("sign"), OPERATOR)
            }
            // Truncated: a genuine token cut short.
            6 => {
                let t = keys.sign(&good()).expect("sign");
                let cut = (r as usize) % t.len();
                (t[..cut].to_string(), OPERATOR)
            }
            // Oversized: a genuine token with bytes appended, or just huge.
            _ => {
                let t = keys.sign(&good()).expect("sign");
                let pad = 1 + (r as usize) % (2 * callback::MAX_TOKEN_LEN);
                (format!("{t}{}", "A".repeat(pad)), OPERATOR)
            }
        };
        let answer = match cb.check(&click(&token, operator)) {
            Ok(c) => panic!("forged click of kind {kind} accepted: {:?}", c.claims),
            Err(a) => a,
        };
        assert_eq!(answer["toast"]["type"], "warning", "kind {kind}: {answer}");
        let content = answer["toast"]["content"].as_str().unwrap_or("");
        assert!(
            toasts.contains(&content) || content == Denied::BadSignature.toast(),
            "kind {kind}: {answer}"
        );
        assert!(token.is_empty() || !content.contains(&token[..token.len().min(16)]));
        by_kind[kind] += 1;
    }
    assert_eq!(by_kind.iter().sum::<usize>(), 10_000, "{by_kind:?}");
}

fn click_of(action: &str) -> Click {
    Click {
        claims: crate::ingress::callback::Claims::new(
            "run-1",
            "chat:oc_1",
            "oc_1",
            "ou_a",
            action,
            "fp",
            i64::MAX,
        ),
        operator: "ou_a".into(),
        message_id: "om_card".into(),
    }
}

#[test]
fn a_deny_carries_the_typed_note_and_other_decisions_none() {
    let event = serde_json::json!({"action": {"form_value": {"note": "  use scratch/ instead  "}}});
    let a = click_of("approval:run-1/0/deny")
        .action(&event)
        .expect("an action");
    let Some(pb::action::Kind::Approval(ap)) = a.kind else {
        panic!("not an approval: {a:?}")
    };
    assert_eq!(ap.note, "use scratch/ instead");
    assert_eq!(ap.decision(), pb::ApprovalDecision::Deny);
    let a = click_of("approval:run-1/0/approve")
        .action(&event)
        .expect("an action");
    let Some(pb::action::Kind::Approval(ap)) = a.kind else {
        panic!("not an approval")
    };
    assert!(ap.note.is_empty());
    let long = serde_json::json!({"action": {"form_value": {"note": "x".repeat(5000)}}});
    let a = click_of("approval:run-1/0/deny")
        .action(&long)
        .expect("an action");
    let Some(pb::action::Kind::Approval(ap)) = a.kind else {
        panic!("not an approval")
    };
    assert_eq!(ap.note.chars().count(), 500);
}

#[test]
fn a_thread_button_names_its_op_thread_and_run() {
    let a = click_of("thread:fork/t-123")
        .action(&serde_json::Value::Null)
        .expect("an action");
    let Some(pb::action::Kind::Thread(t)) = a.kind else {
        panic!("not a thread action: {a:?}")
    };
    assert_eq!(t.op(), pb::ThreadOp::Fork);
    assert_eq!(
        (t.thread_id.as_str(), t.run_id.as_str()),
        ("t-123", "run-1")
    );
    for bad in ["thread:fork/", "thread:melt/t-1", "thread:fork"] {
        assert!(
            click_of(bad).action(&serde_json::Value::Null).is_none(),
            "{bad}"
        );
    }
}

#[test]
fn form_tokens_are_kept_until_their_token_expires_and_bounded() {
    let forms = FormTokens::default();
    let t0 = 1_000_000;
    let ttl = 24 * 3600;
    // A form a minute for two days: the table holds the day's forms
    // whose tokens may still be clicked, and no more.
    let mut most = 0;
    for i in 0..2 * 24 * 60 {
        let now = t0 + i * 60;
        forms.insert(&format!("om_{i}"), &format!("t{i}"), now + ttl, now);
        most = most.max(forms.len());
    }
    assert_eq!(most, 24 * 60, "one day of forms at most");
    let last = 2 * 24 * 60 - 1;
    assert_eq!(forms.get(&format!("om_{last}")), Some(format!("t{last}")));
    assert_eq!(forms.get("om_0"), None, "an expired form's token went");
    // Past the cap, the oldest go first.
    let burst = FormTokens::default();
    for i in 0..FORMS_KEPT + 10 {
        burst.insert(&format!("om_{i}"), "t", t0 + ttl, t0);
    }
    assert_eq!(burst.len(), FORMS_KEPT);
    assert_eq!(burst.get("om_0"), None);
    assert!(burst.get(&format!("om_{}", FORMS_KEPT + 9)).is_some());
}
