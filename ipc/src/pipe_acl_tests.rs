//! The platform-independent half of the pipe rules, checked on every OS.

use std::path::Path;

use super::*;

#[test]
fn the_dacl_allows_exactly_the_given_user_and_inherits_nothing() {
    let sid = "S-1-5-21-1004336348-1177238915-682003330-512";
    assert_eq!(
        sddl_for(sid).as_deref(),
        Some(&*format!("D:P(A;;GA;;;{sid})"))
    );
    // Well-known SIDs are SIDs too.
    assert_eq!(
        sddl_for("S-1-5-18").as_deref(),
        Some("D:P(A;;GA;;;S-1-5-18)")
    );
}

#[test]
fn nothing_but_a_string_sid_is_spliced_into_the_dacl() {
    for bad in [
        "",
        "S-1",
        "S-1-",
        "S-2-5-18",
        "s-1-5-18",
        "S-1-5-18)(A;;GA;;;WD",
        "S-1-5--18",
        "S-1-5-18 ",
        "WD",
    ] {
        assert_eq!(sddl_for(bad), None, "{bad:?}");
    }
}

#[test]
fn pipe_names_are_stable_per_path_and_differ_between_homes() {
    let a = pipe_name(Path::new("C:/Users/me/.fcx/run/worker-default.sock"));
    assert_eq!(
        a,
        pipe_name(Path::new("C:/Users/me/.fcx/run/worker-default.sock"))
    );
    assert!(a.starts_with(r"\\.\pipe\fcx-"), "{a}");
    assert!(a.ends_with("-worker-default"), "{a}");
    let b = pipe_name(Path::new("C:/Users/me/.fcx2/run/worker-default.sock"));
    assert_ne!(a, b, "two FCX_HOMEs share no pipe");
    let admin = pipe_name(Path::new("C:/Users/me/.fcx/run/admin.sock"));
    assert_ne!(a, admin);
}

#[test]
fn a_pipe_name_stays_within_windows_limit_and_one_component() {
    let long = format!("/h/run/{}.sock", "w".repeat(400));
    let n = pipe_name(Path::new(&long));
    assert!(n.chars().count() <= 256, "{} chars", n.chars().count());
    let odd = pipe_name(Path::new("/h/run/a\\b.sock"));
    assert_eq!(
        odd.matches('\\').count(),
        r"\\.\pipe\".matches('\\').count(),
        "{odd}"
    );
}
