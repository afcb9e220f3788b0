use super::*;

#[test]
fn used_nonces_survive_a_restart_until_they_expire() {
    let d = tempfile::tempdir().expect("tempdir");
    let path = d.path().join("used-nonces");
    let now = 1_000;
    {
        let s = FileNonceStore::open(&path, now).expect("open");
        s.consume(&[1; 16], now + 60, now).expect("first use");
        s.consume(&[2; 16], now + 5, now).expect("first use");
        assert_eq!(s.consume(&[1; 16], now + 60, now), Err(Denied::Replayed));
    }
    let s = FileNonceStore::open(&path, now + 10).expect("reopen");
    assert_eq!(
        s.consume(&[1; 16], now + 60, now + 10),
        Err(Denied::Replayed),
        "still refused after a restart"
    );
    // [2;16] expired: compacted away (its token is refused by expiry).
    assert!(s.consume(&[2; 16], now + 70, now + 10).is_ok());
    let text = std::fs::read_to_string(&path).expect("log");
    assert_eq!(text.lines().count(), 2, "{text}");
}
