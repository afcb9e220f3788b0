//! `fcxctl logs`: fcxd's and the workers' JSON-lines logs merged in time
//! order, filtered by profile, level and age, and followed.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

mod common;

use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use common::{Scratch, assert_exit};

fn line(ts: &str, level: &str, message: &str, profile: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "timestamp": ts, "level": level, "message": message, "target": "fcx",
    });
    if let Some(p) = profile {
        v["profile"] = p.into();
    }
    format!("{v}\n")
}

fn write_logs(s: &Scratch) {
    let dir = s.fcx_home().join("logs");
    std::fs::create_dir_all(&dir).expect("logs dir");
    std::fs::write(
        dir.join("fcxd.log"),
        [
            line("2020-01-01T00:00:01.000000Z", "INFO", "fcxd started", None),
            line(
                "2020-01-01T00:00:04.000000Z",
                "WARN",
                "worker exited",
                Some("other"),
            ),
            line(
                "2099-01-01T00:00:00.000000Z",
                "ERROR",
                "channel lost",
                Some("work"),
            ),
        ]
        .concat(),
    )
    .expect("fcxd.log");
    std::fs::write(
        dir.join("worker-work.log.2"),
        line("2020-01-01T00:00:01.500000Z", "INFO", "rolled twice", None),
    )
    .expect("rolled twice");
    std::fs::write(
        dir.join("worker-work.log.1"),
        line(
            "2020-01-01T00:00:02.000000Z",
            "INFO",
            "rotated earlier",
            None,
        ),
    )
    .expect("rotated");
    std::fs::write(
        dir.join("worker-work.log"),
        line("2020-01-01T00:00:03.000000Z", "DEBUG", "run started", None),
    )
    .expect("worker-work.log");
    std::fs::write(
        dir.join("worker-other.log"),
        line("2020-01-01T00:00:05.000000Z", "INFO", "other ran", None),
    )
    .expect("worker-other.log");
}

fn messages(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            l.split(": ")
                .nth(1)
                .unwrap_or("")
                .split(" profile=")
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn logs_merge_every_file_in_time_order() {
    let s = Scratch::new();
    write_logs(&s);
    let (out, _) = assert_exit(&s.run(&["logs"]), 0);
    assert_eq!(
        messages(&out),
        [
            "fcxd started",
            "rolled twice",
            "rotated earlier",
            "run started",
            "worker exited",
            "other ran",
            "channel lost"
        ],
        "{out}"
    );
    assert!(
        out.contains("WARN  fcxd: worker exited profile=other"),
        "{out}"
    );
    let (json, _) = assert_exit(&s.run(&["logs", "--json"]), 0);
    for l in json.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON");
    }
}

#[test]
fn logs_filter_by_profile_level_and_age() {
    let s = Scratch::new();
    write_logs(&s);
    let (out, _) = assert_exit(&s.run(&["logs", "--profile", "work"]), 0);
    assert_eq!(
        messages(&out),
        [
            "rolled twice",
            "rotated earlier",
            "run started",
            "channel lost"
        ],
        "{out}"
    );
    let (out, _) = assert_exit(&s.run(&["logs", "--level", "warn"]), 0);
    assert_eq!(messages(&out), ["worker exited", "channel lost"], "{out}");
    let (out, _) = assert_exit(&s.run(&["logs", "--since", "1h"]), 0);
    assert_eq!(messages(&out), ["channel lost"], "{out}");
    let (_, err) = assert_exit(&s.run(&["logs", "--since", "1w"]), 1);
    assert!(err.contains("30s, 10m, 2h or 1d"), "{err}");
    let empty = Scratch::new();
    let (_, err) = assert_exit(&empty.run(&["logs"]), 1);
    assert!(err.contains("no logs in"), "{err}");
}

#[test]
fn logs_follow_prints_lines_as_they_are_written() {
    let s = Scratch::new();
    write_logs(&s);
    let mut child = s
        .command(&["logs", "-f", "--profile", "work"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fcxctl logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let wait_for = |want: &str| loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("`{want}` never printed"));
        if l.contains(want) {
            break;
        }
    };
    wait_for("channel lost");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.fcx_home().join("logs/worker-work.log"))
        .expect("open log");
    f.write_all(
        line(
            "2099-01-01T00:00:01.000000Z",
            "INFO",
            "appended later",
            None,
        )
        .as_bytes(),
    )
    .expect("append");
    wait_for("appended later");
    child.kill().expect("kill");
    child.wait().expect("wait");
    reader.join().expect("reader");
}
