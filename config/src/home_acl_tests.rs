use super::*;

const ME: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

fn allow(sid: &str, mask: u32) -> Ace {
    Ace {
        allow: true,
        mask,
        sid: sid.to_string(),
    }
}

#[test]
fn the_home_sddl_is_protected_and_names_the_three_alone() {
    assert_eq!(
        home_sddl(ME).as_deref(),
        Some(
            "D:P(A;OICI;FA;;;S-1-5-21-1004336348-1177238915-682003330-1001)\
             (A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
        )
    );
}

#[test]
fn the_home_sddl_refuses_what_is_not_a_sid() {
    for bad in [
        "",
        "S-1",
        "S-1-",
        "S-1-5-x",
        "S-1-5)(A;;FA;;;WD",
        "X-1-5-18",
        "S-2-5",
    ] {
        assert_eq!(home_sddl(bad), None, "{bad:?}");
    }
}

#[test]
fn the_user_system_and_administrators_alone_are_private() {
    let dacl = [
        allow(ME, 0x001F_01FF),
        allow(SYSTEM_SID, 0x001F_01FF),
        allow(ADMINISTRATORS_SID, 0x1000_0000),
        // A deny for Everyone grants nothing.
        Ace {
            allow: false,
            mask: 0x001F_01FF,
            sid: "S-1-1-0".into(),
        },
    ];
    assert_eq!(judge_home_acl(Some(&dacl), ME), HomeAcl::Private);
    assert_eq!(judge_home_acl(Some(&[]), ME), HomeAcl::Private);
}

#[test]
fn an_inherited_drive_acl_is_reported_with_each_other_sid_once() {
    // What C:\fcx inherits from C:\ by default.
    let dacl = [
        allow(ADMINISTRATORS_SID, 0x001F_01FF),
        allow(SYSTEM_SID, 0x001F_01FF),
        allow("S-1-5-32-545", 0x0012_00A9),
        allow("S-1-5-11", 0x0001_0000),
        allow("S-1-5-11", 0x0013_01BF),
        allow("S-1-5-21-1-2-3-1002", 0),
    ];
    assert_eq!(
        judge_home_acl(Some(&dacl), ME),
        HomeAcl::Others(vec!["S-1-5-32-545".into(), "S-1-5-11".into()])
    );
    // Another account's SID counts, even one that looks like ours.
    let dacl = [
        allow(ME, 1),
        allow("S-1-5-21-1004336348-1177238915-682003330-1002", 1),
    ];
    assert!(matches!(judge_home_acl(Some(&dacl), ME), HomeAcl::Others(v) if v.len() == 1));
}

#[test]
fn a_null_dacl_is_reported() {
    assert_eq!(judge_home_acl(None, ME), HomeAcl::NoDacl);
}

#[test]
fn the_fix_resets_inheritance_grants_the_three_and_removes_the_rest() {
    let fix = home_acl_fix(
        Path::new(r"C:\fcx"),
        ME,
        &["S-1-5-11".into(), "junk\" & del".into()],
    );
    assert_eq!(
        fix,
        format!(
            "icacls \"C:\\fcx\" /inheritance:r /grant:r \"*{ME}:(OI)(CI)F\" \
             \"*S-1-5-18:(OI)(CI)F\" \"*S-1-5-32-544:(OI)(CI)F\" /remove:g \"*S-1-5-11\""
        )
    );
    assert_eq!(sid_name("S-1-5-11"), "Authenticated Users");
}
