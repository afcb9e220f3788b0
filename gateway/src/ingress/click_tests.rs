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
    // [2;16] expired: compacted away (its token is refused by expiry).
    assert!(s.consume("ou_a", &[2; 16], now + 70, now + 10).is_ok());
    let text = std::fs::read_to_string(&path).expect("log");
    assert_eq!(text.lines().count(), 2, "{text}");
}
