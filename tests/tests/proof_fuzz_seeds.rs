//! The cargo-fuzz targets (`fuzz/`, outside the workspace: they need a
//! nightly sanitizer build) replayed over their kept inputs as a plain
//! test, so every target's entry point is compiled and exercised in every
//! test run: `fuzz/seeds/<target>/` and, when a fuzz run left one,
//! `fuzz/corpus/<target>/`. Each input must not panic.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The inputs kept for `target`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["seeds", "corpus"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                let bytes = std::fs::read(e.path()).expect("read input");
                out.push((e.path(), bytes));
            }
        }
    }
    out.sort();
    out
}

/// `fuzz/fuzz_targets/callback_token.rs`: the same entry.
fn callback_token(data: &[u8]) {
    fcx_gateway::fuzzing::fuzz_callback_token(data);
}

/// `fuzz/fuzz_targets/config.rs`, as a function.
fn config(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        let home = fcx_config::Home::new("/nonexistent/fcx-home");
        let _ = fcx_config::Config::parse(Path::new("/nonexistent/config.toml"), text, &home);
    } else {
        let _ = fcx_config::callback_keys::KeyFile::parse(
            text,
            Path::new("/nonexistent/callback-keys.json"),
        );
    }
}

/// Each target's body, by the name cargo-fuzz knows it by.
fn body(target: &str) -> Option<fn(&[u8])> {
    Some(match target {
        "callback_token" => callback_token,
        "config" => config,
        "frame" => fcx_gateway::fuzzing::fuzz_frame,
        "reassembly" => fcx_gateway::fuzzing::fuzz_frame_stream,
        "normalize" => fcx_gateway::fuzzing::fuzz_normalize,
        "command" => |d| {
            if let Ok(text) = std::str::from_utf8(d) {
                fcx_worker::fuzzing::fuzz_command(text);
            }
        },
        "codex_jsonl" => |d| {
            fcx_worker::fuzzing::fuzz_codex_jsonl(d);
        },
        "app_server" => |d| {
            fcx_worker::fuzzing::fuzz_app_server(d);
        },
        _ => return None,
    })
}

/// The `[[bin]]` names of fuzz/Cargo.toml.
fn targets() -> BTreeSet<String> {
    let text = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut out = BTreeSet::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(v) = line.strip_prefix("name = ") {
            out.insert(v.trim_matches('"').to_string());
        }
    }
    out
}

#[test]
fn every_fuzz_target_runs_over_its_kept_inputs() {
    let targets = targets();
    assert!(targets.len() >= 8, "{targets:?}");
    for t in &targets {
        let f = body(t).unwrap_or_else(|| {
            panic!("fuzz target {t} has no plain-test body here; add it to body()")
        });
        let ins = inputs(t);
        assert!(!ins.is_empty(), "fuzz/seeds/{t}/ is empty");
        for (path, bytes) in ins {
            let r = std::panic::catch_unwind(|| f(&bytes));
            assert!(r.is_ok(), "{t} panicked on {}", path.display());
        }
        // The empty input and a few degenerate ones, which a seed set tends
        // to leave out.
        for extra in [&b""[..], b"\0", b"\xff\xff\xff\xff", b"/", b"{}"] {
            f(extra);
        }
    }
}
