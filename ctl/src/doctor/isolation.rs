//! Whether Codex's commands can be kept from reading `$FCX_HOME`.
//!
//! Two layers: the worker hides `$FCX_HOME` from each Codex child in a user
//! and mount namespace (Linux only; it tries it on a trivial child when it
//! starts), and every run but a full-access one gets a Codex permissions
//! profile denying the same files (every platform). fcxctl reads the kernel
//! switches that turn unprivileged user namespaces off, so an operator
//! learns before the first run (the chat's `/doctor` and `/status` show what
//! the worker found).

use super::Checks;

pub(super) fn check(c: &mut Checks) {
    #[cfg(target_os = "linux")]
    {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        match userns_verdict(
            read("/proc/sys/kernel/unprivileged_userns_clone").as_deref(),
            read("/proc/sys/user/max_user_namespaces").as_deref(),
            read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref(),
        ) {
            Ok(()) => c.ok(
                "isolation",
                "unprivileged user namespaces allowed: each Codex child gets FCX_HOME hidden, and Codex's sandbox denies it too except in full access (the chat's /doctor tries it)",
            ),
            Err(why) => c.warn(
                "isolation",
                format!("no namespace: {why}; only Codex's sandbox denies FCX_HOME (secrets, state.db, socket keys), and nothing does in full access"),
                "allow unprivileged user namespaces (sysctl), or run fcx under a dedicated user whose home holds nothing else",
            ),
        }
    }
    #[cfg(not(target_os = "linux"))]
    c.warn(
        "isolation",
        "Codex's sandbox denies FCX_HOME (secrets, state.db, socket keys) to its commands, except in full access; no second layer on this platform",
        "keep full access rare, and run fcx under a dedicated user whose home holds nothing else",
    );
}

/// Why unprivileged user namespaces are off, from the kernel switches
/// (absent ones do not restrict).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn userns_verdict(
    clone: Option<&str>,
    max: Option<&str>,
    apparmor: Option<&str>,
) -> Result<(), String> {
    let is = |v: Option<&str>, want: &str| v.is_some_and(|v| v.trim() == want);
    if is(clone, "0") {
        return Err("kernel.unprivileged_userns_clone is 0".into());
    }
    if is(max, "0") {
        return Err("user.max_user_namespaces is 0".into());
    }
    if is(apparmor, "1") {
        return Err("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::userns_verdict;

    #[test]
    fn each_switch_that_turns_user_namespaces_off_is_named() {
        assert_eq!(userns_verdict(None, None, None), Ok(()));
        assert_eq!(
            userns_verdict(Some("1\n"), Some("63000\n"), Some("0\n")),
            Ok(())
        );
        for (args, needle) in [
            ((Some("0\n"), None, None), "unprivileged_userns_clone"),
            ((None, Some("0\n"), None), "max_user_namespaces"),
            ((None, None, Some("1\n")), "AppArmor"),
        ] {
            let e = userns_verdict(args.0, args.1, args.2).expect_err("off");
            assert!(e.contains(needle), "{e}");
        }
    }
}
