//! `fcxctl doctor` on Windows: who `$FCX_HOME`'s DACL lets in. File modes
//! mean nothing there; fcxd and `fcxctl init` give the home a protected
//! DACL for the user, SYSTEM and Administrators (fcx_config::home_acl),
//! and this checks it still is so. The Win32 reading is type-checked only.

use std::path::Path;

use fcx_config::home_acl::{HomeAcl, home_acl_fix, sid_name};

use super::Checks;

/// The check's line for `verdict` on `root`, for a process running as `me`.
#[cfg_attr(not(windows), allow(dead_code))]
pub(super) fn report(root: &Path, me: &str, verdict: &HomeAcl, c: &mut Checks) {
    match verdict {
        HomeAcl::Private => c.ok(
            "permissions",
            format!(
                "{}: only you, SYSTEM and Administrators have access (state, logs, keys)",
                root.display()
            ),
        ),
        HomeAcl::NoDacl => c.fail(
            "permissions",
            format!(
                "{} has no access control list: every user has full access (a FAT or exFAT volume?)",
                root.display()
            ),
            "move FCX_HOME to an NTFS volume",
        ),
        HomeAcl::Others(sids) => {
            let names: Vec<&str> = sids.iter().map(|s| sid_name(s)).collect();
            c.fail(
                "permissions",
                format!(
                    "other accounts have access to {} (state, logs, keys): {}",
                    root.display(),
                    names.join(", ")
                ),
                format!(
                    "restart fcxd (it resets the home's permissions when it starts), or run: {}",
                    home_acl_fix(root, me, sids)
                ),
            );
        }
    }
}

#[cfg(windows)]
pub(super) fn home_acl(root: &Path, c: &mut Checks) {
    let me = match fcx_config::current_user_sid() {
        Ok(me) => me,
        Err(e) => {
            c.warn(
                "permissions",
                format!("cannot tell which account this is: {e}"),
                "run fcxctl doctor as the account fcxd runs as",
            );
            return;
        }
    };
    match fcx_config::read_home_dacl(root) {
        Ok(dacl) => {
            let verdict = fcx_config::home_acl::judge_home_acl(dacl.as_deref(), &me);
            report(root, &me, &verdict, c);
        }
        Err(e) => c.warn(
            "permissions",
            format!("cannot read the permissions of {}: {e}", root.display()),
            format!("icacls \"{}\" shows them", root.display()),
        ),
    }
}

/// Not Windows: the file modes are checked instead.
#[cfg(not(windows))]
pub(super) fn home_acl(_: &Path, _: &mut Checks) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    const ME: &str = "S-1-5-21-1-2-3-1001";

    #[test]
    fn a_private_home_passes_and_an_open_one_fails_with_the_icacls_fix() {
        let root = Path::new(r"C:\fcx");
        let mut c = Checks::new(None);
        report(root, ME, &HomeAcl::Private, &mut c);
        report(
            root,
            ME,
            &HomeAcl::Others(vec!["S-1-5-11".into(), "S-1-5-32-545".into()]),
            &mut c,
        );
        report(root, ME, &HomeAcl::NoDacl, &mut c);
        assert!(matches!(c.list[0].status, Status::Ok), "{:?}", c.list[0]);
        let open = &c.list[1];
        assert!(matches!(open.status, Status::Fail), "{open:?}");
        assert!(
            open.detail
                .ends_with(": Authenticated Users, BUILTIN\\Users"),
            "{}",
            open.detail
        );
        let fix = open.fix.as_deref().unwrap_or_default();
        assert!(fix.contains("icacls \"C:\\fcx\" /inheritance:r"), "{fix}");
        assert!(
            fix.contains("/remove:g \"*S-1-5-11\" /remove:g \"*S-1-5-32-545\""),
            "{fix}"
        );
        assert!(matches!(c.list[2].status, Status::Fail), "{:?}", c.list[2]);
        assert!(
            c.list[2].detail.contains("every user"),
            "{}",
            c.list[2].detail
        );
    }
}
