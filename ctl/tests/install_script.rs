//! scripts/install.sh: `cargo install --path` for the three binaries into
//! one directory, then `fcxctl service install` on them. Run with a
//! stand-in cargo that records its arguments and lays the binaries down (a
//! real release build would take minutes); the fcxctl it lays down is this
//! build's.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use common::{Scratch, assert_exit};

#[test]
fn install_script_installs_three_binaries_then_the_service() {
    let s = Scratch::new();
    let root = s.path().join("root");
    let log = s.path().join("cargo.log");
    // `cargo install --locked --force --path PKG --root ROOT`
    let cargo = s.script(
        "fake-cargo",
        &format!(
            "echo \"$*\" >> {log}\n\
             pkg=$5; root=$7; mkdir -p \"$root/bin\"\n\
             case \"$pkg\" in\n\
               gateway) printf '#!/bin/sh\\n' > \"$root/bin/fcxd\"; chmod +x \"$root/bin/fcxd\";;\n\
               worker) printf '#!/bin/sh\\n' > \"$root/bin/fcx-worker\"; chmod +x \"$root/bin/fcx-worker\";;\n\
               ctl) cp {bin} \"$root/bin/fcxctl\";;\n\
             esac",
            log = log.display(),
            bin = common::BIN,
        ),
    );
    let calls = s.path().join("calls.log");
    let rec = format!("echo \"${{0##*/}} $*\" >> {}", calls.display());
    s.script("systemctl", &format!("{rec}\nexit 0"));
    s.script("loginctl", &format!("{rec}\necho yes"));
    s.script("systemd-analyze", &format!("{rec}\nexit 0"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/install.sh");
    let o = std::process::Command::new("/bin/bash")
        .arg(script)
        .arg("--service")
        .env("HOME", s.user_home())
        .env("USER", "tester")
        .env("FCX_HOME", s.fcx_home())
        .env("FCX_INSTALL_ROOT", &root)
        .env("CARGO", &cargo)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", s.path().join("bin").display()),
        )
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("run install.sh");
    let (out, _) = assert_exit(&o, 0);
    let installs: Vec<String> = std::fs::read_to_string(&log)
        .expect("cargo called")
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = ["gateway", "worker", "ctl"]
        .iter()
        .map(|p| {
            format!(
                "install --locked --force --path {p} --root {}",
                root.display()
            )
        })
        .collect();
    assert_eq!(installs, want);
    assert!(out.contains("is not on your PATH"), "{out}");
    let unit = std::fs::read_to_string(s.user_home().join(".config/systemd/user/fcxd.service"))
        .expect("unit installed");
    assert!(
        unit.contains(&format!("ExecStart=\"{}/bin/fcxd\"", root.display())),
        "{unit}"
    );
    assert!(out.contains("linger: on"), "{out}");
}
