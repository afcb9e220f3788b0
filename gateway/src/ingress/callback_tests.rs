use super::*;

const NOW: i64 = 1_700_000_000;
const KEY1: [u8; 32] = [0x11; 32];
const KEY2: [u8; 32] = [0x22; 32];

fn claims() -> Claims {
    Claims::new(
        "run-1",
        "chat:oc_1",
        "oc_1",
        "ou_alice",
        "stop",
        "fp-1",
        NOW + 600,
    )
}

fn expected() -> Expected<'static> {
    Expected {
        operator: "ou_alice",
        scope: "chat:oc_1",
        chat_id: "oc_1",
        action: Some("stop"),
        run_id: Some("run-1"),
        fingerprint: Some("fp-1"),
    }
}

fn ring() -> KeyRing {
    KeyRing::new(1, KEY1.to_vec()).expect("ring")
}

/// A token over arbitrary payload bytes, validly signed.
fn sign_raw(payload: &[u8], key: &[u8]) -> String {
    let tag = mac_for(key, payload).expect("mac").finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

#[test]
fn a_token_without_a_fingerprint_is_refused() {
    let keys = ring();
    let mut c = claims();
    c.fingerprint = String::new();
    let t = keys.sign(&c).expect("sign");
    // Even when this side does not know the current fingerprint.
    let e = Expected {
        fingerprint: None,
        ..expected()
    };
    assert_eq!(verify(&t, &keys, NOW, &e), Err(Denied::StaleFingerprint));
}

#[test]
fn a_valid_token_verifies_exactly_once() {
    let keys = ring();
    let c = claims();
    let t = keys.sign(&c).expect("sign");
    assert!(t.len() < 400, "{}", t.len());
    let store = MemoryNonceStore::default();
    let got = verify_once(&t, &keys, NOW, &expected(), &store).expect("first click");
    assert_eq!(got, c);
    assert_eq!(
        verify_once(&t, &keys, NOW + 1, &expected(), &store),
        Err(Denied::Replayed)
    );
    // Stateless verify keeps answering (it does not consume).
    assert_eq!(verify(&t, &keys, NOW, &expected()), Ok(c));
}

#[test]
fn a_token_for_several_users_lets_each_of_them_and_no_one_else_click_once() {
    let keys = ring();
    let ids: Vec<String> = ["ou_alice", "", "ou_x,ou_y", "ou_admin"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let list = operator_list(&ids);
    assert_eq!(list, "ou_alice,ou_admin");
    let mut c = claims();
    c.operator = list;
    let t = keys.sign(&c).expect("sign");
    let store = MemoryNonceStore::default();
    for who in ["ou_mallory", "ou_ali", "ou_alice,ou_admin", "ou_x", ""] {
        let e = Expected {
            operator: who,
            ..expected()
        };
        assert_eq!(
            verify_once(&t, &keys, NOW, &e, &store),
            Err(Denied::WrongOperator),
            "{who:?}"
        );
    }
    let admin = Expected {
        operator: "ou_admin",
        ..expected()
    };
    assert!(verify_once(&t, &keys, NOW, &admin, &store).is_ok());
    // Once decided, the requester's click is a replay.
    assert_eq!(
        verify_once(&t, &keys, NOW, &expected(), &store),
        Err(Denied::Replayed)
    );
    // A list never outgrows a claim field: later ids are left out.
    let many: Vec<String> = (0..40).map(|i| format!("ou_{i:032}")).collect();
    let cut = operator_list(&many);
    assert!(
        cut.len() <= MAX_FIELD_BYTES && cut.starts_with("ou_000"),
        "{cut}"
    );
}

#[test]
fn mismatches_are_denied_without_burning_the_nonce() {
    let keys = ring();
    let t = keys.sign(&claims()).expect("sign");
    let store = MemoryNonceStore::default();
    let e = expected();
    let cases: Vec<(Expected<'_>, Denied)> = vec![
        (
            Expected {
                operator: "ou_mallory",
                ..e
            },
            Denied::WrongOperator,
        ),
        (Expected { operator: "", ..e }, Denied::WrongOperator),
        (
            Expected {
                scope: "chat:oc_2",
                ..e
            },
            Denied::WrongScope,
        ),
        (
            Expected {
                chat_id: "oc_2",
                ..e
            },
            Denied::WrongChat,
        ),
        (
            Expected {
                action: Some("approve"),
                ..e
            },
            Denied::WrongAction,
        ),
        (
            Expected {
                run_id: Some("run-2"),
                ..e
            },
            Denied::WrongRun,
        ),
        (
            Expected {
                fingerprint: Some("fp-2"),
                ..e
            },
            Denied::StaleFingerprint,
        ),
    ];
    for (exp, want) in cases {
        assert_eq!(verify_once(&t, &keys, NOW, &exp, &store), Err(want));
    }
    assert!(store.is_empty());
    assert!(verify_once(&t, &keys, NOW, &e, &store).is_ok());
}

#[test]
fn expiry_is_enforced() {
    let keys = ring();
    let t = keys.sign(&claims()).expect("sign");
    assert!(verify(&t, &keys, NOW + 599, &expected()).is_ok());
    assert_eq!(
        verify(&t, &keys, NOW + 600, &expected()),
        Err(Denied::Expired)
    );
    assert_eq!(
        verify(&t, &keys, i64::MAX, &expected()),
        Err(Denied::Expired)
    );
}

#[test]
fn forged_tokens_are_denied() {
    let keys = ring();
    // Right format and version, wrong key.
    let forged = sign(&claims(), &KEY2, 1).expect("sign");
    assert_eq!(
        verify(&forged, &keys, NOW, &expected()),
        Err(Denied::BadSignature)
    );
    // A valid payload with another token's MAC.
    let a = keys.sign(&claims()).expect("sign");
    let b = keys.sign(&claims()).expect("sign");
    let (pa, _) = a.split_once('.').expect("dot");
    let (_, mb) = b.split_once('.').expect("dot");
    assert_eq!(
        verify(&format!("{pa}.{mb}"), &keys, NOW, &expected()),
        Err(Denied::BadSignature)
    );
    // Elevated claims, re-encoded, old MAC.
    let mut c = claims();
    c.expires_at = i64::MAX;
    let p = URL_SAFE_NO_PAD.encode(encode_payload(&c, 1).expect("encode"));
    let (_, ma) = a.split_once('.').expect("dot");
    assert_eq!(
        verify(&format!("{p}.{ma}"), &keys, NOW, &expected()),
        Err(Denied::BadSignature)
    );
}

#[test]
fn tampering_with_any_character_is_denied() {
    let keys = ring();
    let t = keys.sign(&claims()).expect("sign");
    let bytes = t.as_bytes();
    let mut checked = 0;
    for i in 0..bytes.len() {
        for alt in [b'A', b'B', b'-', b'_', b'.', b'0', b'z'] {
            if alt == bytes[i] {
                continue;
            }
            let mut m = bytes.to_vec();
            m[i] = alt;
            let m = String::from_utf8(m).expect("ascii");
            assert!(
                verify(&m, &keys, NOW, &expected()).is_err(),
                "tampered position {i} accepted"
            );
            checked += 1;
        }
    }
    assert!(checked > bytes.len() * 5);
}

#[test]
fn key_versions_rotate_and_retire() {
    let mut keys = ring();
    let old = keys.sign(&claims()).expect("sign");
    keys.rotate(2, KEY2.to_vec()).expect("rotate");
    assert_eq!(keys.current_version(), 2);
    let new = keys.sign(&claims()).expect("sign");
    assert!(
        verify(&old, &keys, NOW, &expected()).is_ok(),
        "old key still accepted"
    );
    assert!(verify(&new, &keys, NOW, &expected()).is_ok());
    keys.retire(1).expect("retire");
    assert_eq!(
        verify(&old, &keys, NOW, &expected()),
        Err(Denied::RetiredKey)
    );
    assert!(verify(&new, &keys, NOW, &expected()).is_ok());
    assert_eq!(keys.retire(2), Err(KeyError::RetiringCurrent));
    assert_eq!(keys.retire(7), Err(KeyError::Unknown(7)));
    // A version the ring never had, even validly signed.
    let unknown = sign(&claims(), &KEY1, 9).expect("sign");
    assert_eq!(
        verify(&unknown, &keys, NOW, &expected()),
        Err(Denied::UnknownKey)
    );
    let dbg = format!("{keys:?}");
    assert!(!dbg.contains("34") && !dbg.contains("17"), "{dbg}");
}

#[test]
fn malformed_tokens_are_denied() {
    let keys = ring();
    let good = keys.sign(&claims()).expect("sign");
    let (gp, gm) = good.split_once('.').expect("dot");
    let mut payload = encode_payload(&claims(), 1).expect("encode");
    let mut bad_format = payload.clone();
    bad_format[0] = 2;
    payload.push(0);
    let mut bad_utf8 = encode_payload(&claims(), 1).expect("encode");
    let last = bad_utf8.len() - 1;
    bad_utf8[last] = 0xff;
    let huge = "A".repeat(MAX_TOKEN_LEN + 1);
    let cases: Vec<String> = vec![
        String::new(),
        ".".into(),
        "abc".into(),
        "abc.".into(),
        ".abc".into(),
        format!("{good}.x"),
        format!("{gp}.{gm}="),
        format!("{gp}=.{gm}"),
        good[..good.len() - 1].to_string(),
        good[..good.len() / 2].to_string(),
        format!("{gp}.{}", &gm[..gm.len() - 4]),
        "!!!.???".into(),
        "a b.c d".into(),
        "中文.中文".into(),
        huge.clone(),
        format!("{huge}.{gm}"),
        format!("{}.{gm}", URL_SAFE_NO_PAD.encode([1u8, 0, 0, 0])),
        // Validly signed but not a valid payload.
        sign_raw(&payload, &KEY1),
        sign_raw(&bad_format, &KEY1),
        sign_raw(&bad_utf8, &KEY1),
        sign_raw(
            &encode_payload(&claims(), 1).expect("encode")[..HEADER_LEN],
            &KEY1,
        ),
    ];
    for c in &cases {
        let r = verify(c, &keys, NOW, &expected());
        assert!(r.is_err(), "accepted {c:?}");
    }
    for c in &cases[cases.len() - 4..] {
        assert_eq!(
            verify(c, &keys, NOW, &expected()),
            Err(Denied::Malformed),
            "{c}"
        );
    }
}

#[test]
fn signing_refuses_bad_input() {
    assert_eq!(
        sign(&claims(), &[0u8; 16], 1),
        Err(SignError::Key(KeyError::TooShort))
    );
    let mut c = claims();
    c.fingerprint = "x".repeat(MAX_FIELD_BYTES + 1);
    assert_eq!(sign(&c, &KEY1, 1), Err(SignError::FieldTooLong));
    assert!(KeyRing::new(1, vec![0; 8]).is_err());
    let mut r = ring();
    assert_eq!(r.accept(1, KEY2.to_vec()), Err(KeyError::Duplicate(1)));
    // Every byte of a multi-byte field survives the round trip.
    let mut c = claims();
    c.operator = "ou_中文😀".into();
    let t = r.sign(&c).expect("sign");
    let e = Expected {
        operator: "ou_中文😀",
        ..expected()
    };
    assert_eq!(verify(&t, &r, NOW, &e), Ok(c));
    r.rotate(3, KEY2.to_vec()).expect("rotate");
}

#[test]
fn the_nonce_store_is_bounded_and_fails_closed() {
    let store = MemoryNonceStore::new(2);
    let a = "ou_alice";
    assert!(store.consume(a, &[1; 16], NOW + 10, NOW).is_ok());
    assert!(store.consume(a, &[2; 16], NOW + 10, NOW).is_ok());
    assert_eq!(store.consume(a, &[3; 16], NOW + 10, NOW), Err(Denied::Busy));
    assert_eq!(
        store.consume(a, &[1; 16], NOW + 10, NOW),
        Err(Denied::Replayed)
    );
    // Once the first two expired a clock-step grace ago they are forgotten.
    let later = 20 + CLOCK_STEP_GRACE_SECS;
    store.advance(later as u64);
    assert!(
        store
            .consume(a, &[3; 16], NOW + later + 100, NOW + later)
            .is_ok()
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn a_wall_clock_step_back_does_not_revive_a_used_button() {
    // A stop button with ten minutes to live is clicked; the host clock
    // then steps an hour ahead, a sweep runs (the store fills up), and the
    // clock steps back: by the wall clock the button is valid again, so
    // its nonce must still be remembered. Likewise for a step back after
    // the token expired.
    let store = MemoryNonceStore::new(10_000);
    let a = "ou_alice";
    assert!(store.consume(a, &[1; 16], NOW + 600, NOW).is_ok());
    let ahead = NOW + 3600;
    for i in 0..2000u16 {
        let mut n = [2; 16];
        n[..2].copy_from_slice(&i.to_be_bytes());
        assert!(store.consume("ou_bob", &n, ahead + 600, ahead).is_ok());
    }
    assert_eq!(
        store.consume(a, &[1; 16], NOW + 600, NOW + 1),
        Err(Denied::Replayed)
    );
    // The token expires by both clocks, a sweep runs, then the clock
    // steps back an hour: by the wall clock the button is valid again.
    store.advance(700);
    let after = NOW + 700;
    fill(&store, 4, after);
    assert_eq!(
        store.consume(a, &[1; 16], NOW + 600, after - 3600),
        Err(Denied::Replayed)
    );
    // Once both clocks say it expired a grace ago, it is forgotten (the
    // expiry check refuses the token then).
    let gone = 700 + CLOCK_STEP_GRACE_SECS + 1;
    store.advance(gone as u64);
    fill(&store, 5, NOW + gone);
    assert!(store.consume(a, &[1; 16], NOW + 600, NOW + gone).is_ok());
}

/// 5,000 nonces of another actor used at `now` (enough to make a sweep run).
fn fill(store: &MemoryNonceStore, tag: u8, now: i64) {
    for i in 0..5000u16 {
        let mut n = [tag; 16];
        n[..2].copy_from_slice(&i.to_be_bytes());
        assert!(store.consume("ou_carol", &n, now + 600, now).is_ok());
    }
}

#[test]
fn one_actor_filling_the_store_locks_out_only_themselves() {
    let store = MemoryNonceStore::new(3);
    for i in 0..3u8 {
        assert!(store.consume("ou_mallory", &[i; 16], NOW + 10, NOW).is_ok());
    }
    assert_eq!(
        store.consume("ou_mallory", &[9; 16], NOW + 10, NOW),
        Err(Denied::Busy)
    );
    // Everyone else's clicks still work, and replays stay refused
    // whoever sends them.
    assert!(store.consume("ou_alice", &[10; 16], NOW + 10, NOW).is_ok());
    assert!(store.consume("ou_bob", &[11; 16], NOW + 10, NOW).is_ok());
    assert_eq!(
        store.consume("ou_bob", &[0; 16], NOW + 10, NOW),
        Err(Denied::Replayed)
    );
}

#[test]
fn denials_answer_with_a_low_detail_toast() {
    for d in [
        Denied::Malformed,
        Denied::BadSignature,
        Denied::UnknownKey,
        Denied::RetiredKey,
    ] {
        assert_eq!(d.toast(), "This action is not available.");
    }
    let a = Denied::Expired.answer();
    assert_eq!(
        a.pointer("/toast/type").and_then(|v| v.as_str()),
        Some("warning")
    );
    assert_eq!(
        a.pointer("/toast/content").and_then(|v| v.as_str()),
        Some("This button has expired.")
    );
    let dbg = format!("{:?}", claims());
    assert!(!dbg.contains("nonce"), "{dbg}");
}

#[test]
fn the_parser_survives_fuzzing() {
    let keys = ring();
    let good = keys.sign(&claims()).expect("sign");
    let good_payload = encode_payload(&claims(), 1).expect("encode");
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const CHARS: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00\xff";
    let mut accepted = 0;
    for i in 0..30_000u32 {
        let input: Vec<u8> = match i % 4 {
            // Random strings over a base64-ish alphabet (and junk).
            0 => (0..next() % 200)
                .map(|_| CHARS[(next() % CHARS.len() as u64) as usize])
                .collect(),
            // Mutations of a valid token.
            1 | 2 => {
                let mut m = good.as_bytes().to_vec();
                for _ in 0..1 + next() % 4 {
                    let pos = (next() % (m.len() as u64 + 1)) as usize;
                    match next() % 4 {
                        0 if pos < m.len() => {
                            m[pos] = CHARS[(next() % CHARS.len() as u64) as usize]
                        }
                        1 => m.insert(pos, CHARS[(next() % CHARS.len() as u64) as usize]),
                        2 if pos < m.len() => {
                            m.remove(pos);
                        }
                        _ => m.truncate(pos),
                    }
                }
                m
            }
            // Random payload bytes, signed: exercises the strict decoder.
            _ => {
                let mut p = good_payload.clone();
                let n = next() % 8;
                for _ in 0..n {
                    let pos = (next() % p.len() as u64) as usize;
                    p[pos] = next() as u8;
                }
                if next() % 3 == 0 {
                    p.truncate((next() % (p.len() as u64 + 1)) as usize);
                }
                let _ = parse_payload(&p);
                sign_raw(&p, &KEY1).into_bytes()
            }
        };
        let s = String::from_utf8_lossy(&input);
        if verify(&s, &keys, NOW, &expected()).is_ok() {
            accepted += 1;
            // Only an unchanged token, or a signed payload that still
            // decodes to the same claims, may pass.
            if i % 4 != 3 {
                assert_eq!(s, good);
            }
        }
    }
    // Unchanged mutations (e.g. truncate at the end) are rare but fine.
    assert!(accepted < 30_000);
}
