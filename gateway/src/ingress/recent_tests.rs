use super::*;

#[test]
fn ids_are_kept_for_their_window_then_go_so_steady_traffic_stays_flat() {
    let t0 = Instant::now();
    let mut r = RecentIds::new(RECENT_FOR);
    // Two events a second for an hour: the table holds the last window's
    // worth and no more.
    let step = Duration::from_millis(500);
    let per_window = (RECENT_FOR.as_millis() / step.as_millis()) as usize;
    let mut most = 0;
    for i in 0..7200u32 {
        let now = t0 + step * i;
        assert!(r.insert(&format!("ev_{i}"), now));
        most = most.max(r.len());
    }
    assert_eq!(most, per_window, "never more than one window of ids");
    let now = t0 + step * 7199;
    // A redelivery within the window is recognised; one of an event from
    // before it is the worker's journal's to answer.
    assert!(r.contains("ev_7100"));
    assert!(!r.insert("ev_7100", now));
    assert!(!r.contains("ev_100"));
}

#[test]
fn the_cap_bounds_a_burst_inside_the_window() {
    let t0 = Instant::now();
    let mut r = RecentIds::new(RECENT_FOR);
    for i in 0..RECENT_IDS * 2 {
        r.insert(&format!("ev_{i}"), t0);
    }
    assert_eq!(r.len(), RECENT_IDS);
    assert!(r.contains(&format!("ev_{}", RECENT_IDS * 2 - 1)));
    assert!(!r.contains("ev_0"), "the oldest went first");
}

#[test]
fn a_storage_notice_is_remembered_over_every_redelivery() {
    let t0 = Instant::now();
    let mut told = RecentIds::new(TOLD_FOR);
    assert!(told.insert("ev_1", t0));
    // The platform's redeliveries: 15 s, 5 min, 1 h, 6 h after the push.
    for secs in [15, 300, 3600, 6 * 3600] {
        assert!(
            !told.insert("ev_1", t0 + Duration::from_secs(secs)),
            "{secs}"
        );
    }
}
