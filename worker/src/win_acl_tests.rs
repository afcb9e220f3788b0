use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;

const ME: &str = "S-1-5-21-1-2-3-1001";
const OTHER: &str = "S-1-5-21-1-2-3-1002";
/// "Modify" in the Explorer and icacls (M): read, write, execute, delete.
const MODIFY: u32 = 0x0013_01BF;
/// "Read & execute" (RX).
const READ_EXECUTE: u32 = 0x0012_00A9;
const FULL: u32 = 0x001F_01FF;

fn allow(sid: &str, mask: u32) -> Ace {
    Ace {
        allow: true,
        inherit_only: false,
        mask,
        sid: sid.into(),
    }
}

fn deny(sid: &str, mask: u32) -> Ace {
    Ace {
        allow: false,
        ..allow(sid, mask)
    }
}

fn inherit_only(a: Ace) -> Ace {
    Ace {
        inherit_only: true,
        ..a
    }
}

/// `icacls C:\` on a fresh Windows 10/11 install.
fn system_drive_root() -> Vec<Ace> {
    vec![
        allow(ADMINISTRATORS, FULL),
        allow(SYSTEM, FULL),
        allow(BUILTIN_USERS, READ_EXECUTE),
        inherit_only(allow(AUTHENTICATED_USERS, MODIFY)),
        allow(AUTHENTICATED_USERS, FILE_ADD_SUBDIRECTORY),
    ]
}

/// A directory made in `C:\`: it inherits the root's inheritable entries.
fn made_in_system_drive_root() -> Vec<Ace> {
    vec![
        allow(ADMINISTRATORS, FULL),
        allow(SYSTEM, FULL),
        allow(BUILTIN_USERS, READ_EXECUTE),
        allow(AUTHENTICATED_USERS, MODIFY),
    ]
}

/// A profile folder: the user, SYSTEM and Administrators only.
fn private() -> Vec<Ace> {
    vec![
        allow(SYSTEM, FULL),
        allow(ADMINISTRATORS, FULL),
        allow(ME, FULL),
    ]
}

#[test]
fn the_system_drive_roots_create_folder_right_is_not_a_way_to_swap_a_path() {
    assert_eq!(others_may_swap(Some(&system_drive_root()), true), None);
    assert_eq!(others_may_swap(Some(&private()), true), None);
    assert_eq!(
        others_may_swap(Some(&[]), true),
        None,
        "an empty DACL grants nothing"
    );
}

#[test]
fn a_directory_every_user_may_modify_is_refused_naming_the_group() {
    let why = others_may_swap(Some(&made_in_system_drive_root()), true).expect("refused");
    assert_eq!(why, "Authenticated Users may delete or rename it");
    let why = others_may_swap(Some(&[allow(EVERYONE, GENERIC_ALL)]), false).expect("refused");
    assert_eq!(
        why,
        "Everyone may delete or rename it, change its permissions, take ownership of it"
    );
    let why = others_may_swap(Some(&[allow(BUILTIN_USERS, GENERIC_WRITE | DELETE)]), false)
        .expect("refused");
    assert!(why.starts_with("BUILTIN\\Users may delete"), "{why}");
    // A named account is no every-user group.
    assert_eq!(others_may_swap(Some(&[allow(OTHER, FULL)]), true), None);
}

#[test]
fn delete_child_counts_only_above_the_workspace() {
    let dacl = [allow(INTERACTIVE, FILE_DELETE_CHILD | FILE_ADD_FILE)];
    assert_eq!(others_may_swap(Some(&dacl), false), None);
    assert_eq!(
        others_may_swap(Some(&dacl), true).as_deref(),
        Some("INTERACTIVE may delete or rename what it holds")
    );
}

#[test]
fn deny_entries_count_in_dacl_order_and_inherit_only_entries_not_at_all() {
    // Deny first: the later allow cannot give DELETE back.
    let dacl = [deny(EVERYONE, DELETE), allow(AUTHENTICATED_USERS, MODIFY)];
    assert_eq!(others_may_swap(Some(&dacl), true), None);
    // Allow first: granted before the deny is read (how Windows reads a
    // non-canonical DACL).
    let dacl = [allow(AUTHENTICATED_USERS, MODIFY), deny(EVERYONE, DELETE)];
    assert!(others_may_swap(Some(&dacl), true).is_some());
    let dacl = [
        deny(AUTHENTICATED_USERS, DELETE),
        allow(BUILTIN_USERS, MODIFY),
    ];
    assert_eq!(others_may_swap(Some(&dacl), true), None);
    // A deny for another account, or for a group some accounts are not in
    // (a service logon is not INTERACTIVE), does not protect from them.
    for sid in [OTHER, INTERACTIVE, BUILTIN_USERS] {
        let dacl = [deny(sid, DELETE), allow(EVERYONE, MODIFY)];
        assert!(others_may_swap(Some(&dacl), true).is_some(), "{sid}");
    }
    let dacl = [inherit_only(allow(EVERYONE, FULL))];
    assert_eq!(others_may_swap(Some(&dacl), true), None);
}

#[test]
fn a_null_dacl_is_full_access_for_everyone() {
    let why = others_may_swap(None, true).expect("refused");
    assert!(why.contains("no access control list"), "{why}");
    assert!(why.contains("every user may delete or rename it"), "{why}");
}

#[test]
fn owners_the_workspace_must_be_ours_the_directories_above_ours_or_the_systems() {
    assert_eq!(owner_problem(ME, ME, false, false), None);
    assert_eq!(
        owner_problem(OTHER, ME, false, false).as_deref(),
        Some("it belongs to another account (S-1-5-21-1-2-3-1002)")
    );
    assert!(owner_problem(OTHER, ME, true, true).is_some());
    // Administrators own an elevated administrator's new directories.
    assert!(owner_problem(ADMINISTRATORS, ME, false, false).is_some());
    assert_eq!(owner_problem(ADMINISTRATORS, ME, false, true), None);
    for system in [SYSTEM, ADMINISTRATORS, TRUSTED_INSTALLER] {
        assert_eq!(owner_problem(system, ME, true, false), None, "{system}");
    }
    assert_eq!(
        owner_problem(SYSTEM, ME, false, false).as_deref(),
        Some("it belongs to another account (SYSTEM)")
    );
}

fn tree(entries: &[(&str, &str, Option<Vec<Ace>>)]) -> HashMap<PathBuf, Security> {
    entries
        .iter()
        .map(|(p, owner, dacl)| {
            (
                PathBuf::from(p),
                Security {
                    owner: (*owner).into(),
                    dacl: dacl.clone(),
                },
            )
        })
        .collect()
}

fn check(t: &HashMap<PathBuf, Security>, ws: &str) -> Result<(), PolicyError> {
    check_tree(Path::new(ws), ME, false, |p: &Path| {
        t.get(p)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::PermissionDenied))
    })
}

#[test]
fn a_workspace_in_the_profile_folder_passes_and_one_in_a_folder_made_at_the_drive_root_does_not() {
    let t = tree(&[
        ("/", TRUSTED_INSTALLER, Some(system_drive_root())),
        ("/Users", SYSTEM, Some(vec![allow(EVERYONE, READ_EXECUTE)])),
        ("/Users/me", SYSTEM, Some(private())),
        ("/Users/me/proj", ME, Some(private())),
        ("/src", ME, Some(made_in_system_drive_root())),
        ("/src/proj", ME, Some(made_in_system_drive_root())),
        ("/Users/me/theirs", OTHER, Some(private())),
        ("/Users/me/theirs/proj", ME, Some(private())),
    ]);
    check(&t, "/Users/me/proj").expect("a profile folder's project");
    let e = check(&t, "/src/proj").expect_err("C:\\src is every user's");
    assert_eq!(
        e.to_string(),
        "the workspace /src/proj is not safe to run in: Authenticated Users may delete or \
         rename it, so another user could replace the path"
    );
    let e = check(&t, "/Users/me/theirs/proj").expect_err("a parent of another account");
    assert!(
        e.to_string()
            .contains("/Users/me/theirs: it belongs to another account"),
        "{e}"
    );
    let e = check(&t, "/Users/me/missing").expect_err("unreadable");
    assert!(
        e.to_string()
            .contains("cannot read the owner and permissions of /Users/me/missing"),
        "{e}"
    );
}

#[test]
fn the_pin_identity_is_the_volume_and_the_file_id() {
    // NTFS gives the same file in both forms: the 64-bit index, and the
    // 128-bit id that zero-extends it.
    let mut wide = [0u8; 16];
    wide[..8].copy_from_slice(&0x0005_0000_0000_1234_u64.to_le_bytes());
    assert_eq!(index_as_id(0x0005_0000, 0x1234), wide);
    let a = identity_string(0xA1B2_C3D4, wide);
    assert_eq!(a, "vol:00000000a1b2c3d4:34120000000005000000000000000000");
    assert_ne!(a, identity_string(0xA1B2_C3D5, wide), "another volume");
    assert_ne!(
        a,
        identity_string(0xA1B2_C3D4, index_as_id(0x0005_0000, 0x1235))
    );
}
