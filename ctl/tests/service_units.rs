//! The launchd and Task Scheduler units `fcxctl service install --print`
//! renders, checked as far as a machine without launchd or Task Scheduler
//! can: each parsed as XML (paths with `&`, `<` and `"` in them), the plist
//! against the plist DTD's grammar and the keys launchd.plist(5) defines
//! with their types, the task against the Task Scheduler schema's elements
//! (allowed children, each once, required ones, the trigger's sequence order,
//! value types and ranges, the Actions context naming a principal). What
//! only the real managers can say (`plutil -lint`, launchctl bootstrap,
//! `schtasks /Create /XML`) is run by `fcxctl service install` there and not
//! here.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{Scratch, assert_exit};
use roxmltree::{Document, Node, ParsingOptions};

/// Stand-in fcxd and fcx-worker in a directory whose name needs escaping.
fn installed(s: &Scratch) -> PathBuf {
    let dir = s.path().join("a&b <c> \"d\"");
    std::fs::create_dir_all(&dir).expect("inst dir");
    for name in ["fcxd", "fcx-worker"] {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("stand-in");
        common::set_mode(&p, 0o755);
    }
    dir.join("fcxd")
}

fn print(s: &Scratch, manager: &str, fcxd: &Path) -> String {
    let fcxd = fcxd.display().to_string();
    let mut c = s.command(&[
        "service",
        "install",
        "--print",
        "--manager",
        manager,
        "--fcxd",
        &fcxd,
    ]);
    c.env("USERDOMAIN", "WS01").env("USERNAME", "tester");
    let (out, _) = assert_exit(&c.output().expect("run fcxctl"), 0);
    out
}

fn parse(text: &str) -> Document<'_> {
    let opt = ParsingOptions {
        allow_dtd: true,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, opt).unwrap_or_else(|e| panic!("not XML: {e}\n{text}"))
}

/// Child elements; any text between them must be blank.
fn elements<'a, 'i>(n: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
    for c in n.children() {
        if c.is_text() {
            let t = c.text().unwrap_or("");
            assert!(
                t.trim().is_empty(),
                "text {t:?} inside <{}>",
                n.tag_name().name()
            );
        }
    }
    n.children().filter(Node::is_element).collect()
}

fn text<'a>(n: Node<'a, '_>) -> &'a str {
    assert!(
        !n.children().any(|c| c.is_element()),
        "<{}> holds elements",
        n.tag_name().name()
    );
    n.text().unwrap_or("")
}

// ---- plist ----

#[derive(Debug, Clone, PartialEq)]
enum Plist {
    Dict(BTreeMap<String, Plist>),
    Array(Vec<Plist>),
    String(String),
    Integer(i64),
    Bool(bool),
    Other(String),
}

/// A value by the plist 1.0 DTD: dict is (key, value)*, array is value*.
fn value(n: Node) -> Plist {
    match n.tag_name().name() {
        "dict" => {
            let kids = elements(n);
            assert!(kids.len().is_multiple_of(2), "a dict key without a value");
            let mut map = BTreeMap::new();
            for pair in kids.chunks(2) {
                assert_eq!(
                    pair[0].tag_name().name(),
                    "key",
                    "dict entries are key, value"
                );
                let k = text(pair[0]).to_string();
                assert_ne!(pair[1].tag_name().name(), "key", "{k} has no value");
                assert!(
                    map.insert(k.clone(), value(pair[1])).is_none(),
                    "key {k} twice"
                );
            }
            Plist::Dict(map)
        }
        "array" => Plist::Array(elements(n).into_iter().map(value).collect()),
        "string" => Plist::String(text(n).to_string()),
        "integer" => Plist::Integer(
            text(n)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("integer {:?}", text(n))),
        ),
        "true" | "false" => {
            assert!(
                n.children().next().is_none(),
                "<{}/> is empty",
                n.tag_name().name()
            );
            Plist::Bool(n.tag_name().name() == "true")
        }
        "real" | "date" | "data" => Plist::Other(text(n).to_string()),
        other => panic!("<{other}> is not a plist element"),
    }
}

fn s(v: &Plist) -> &str {
    match v {
        Plist::String(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn the_launchd_plist_is_a_well_formed_agent_with_launchds_keys_and_types() {
    let sc = Scratch::new();
    let fcxd = installed(&sc);
    let plist = print(&sc, "launchd", &fcxd);
    assert!(
        plist.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{plist}"
    );
    assert!(
        plist.contains(
            "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">"
        ),
        "{plist}"
    );
    let doc = parse(&plist);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "plist");
    assert_eq!(root.attribute("version"), Some("1.0"));
    let top = elements(root);
    assert_eq!(top.len(), 1, "one top-level value");
    let Plist::Dict(d) = value(top[0]) else {
        panic!("the top-level value is a dict")
    };

    // Every key is one launchd.plist(5) knows, with its type.
    let known: BTreeSet<&str> = [
        "Label",
        "ProgramArguments",
        "EnvironmentVariables",
        "RunAtLoad",
        "KeepAlive",
        "ThrottleInterval",
        "ExitTimeOut",
        "ProcessType",
        "Umask",
        "StandardOutPath",
        "StandardErrorPath",
    ]
    .into();
    for k in d.keys() {
        assert!(known.contains(k.as_str()), "unknown launchd key {k}");
    }
    assert_eq!(s(&d["Label"]), "dev.fcx.fcxd");
    let Plist::Array(args) = &d["ProgramArguments"] else {
        panic!("ProgramArguments is an array")
    };
    // The escaped path reads back as the path itself.
    assert_eq!(args, &vec![Plist::String(fcxd.display().to_string())]);
    let Plist::Dict(env) = &d["EnvironmentVariables"] else {
        panic!("EnvironmentVariables is a dict")
    };
    assert_eq!(s(&env["FCX_HOME"]), sc.fcx_home().display().to_string());
    let path = s(&env["PATH"]);
    assert!(
        path.split(':').next() == fcxd.parent().map(|p| p.display().to_string()).as_deref(),
        "fcxd's directory first on PATH: {path}"
    );
    for v in env.values() {
        s(v);
    }
    assert_eq!(d["RunAtLoad"], Plist::Bool(true));
    let Plist::Dict(keep) = &d["KeepAlive"] else {
        panic!("KeepAlive is a dict")
    };
    assert_eq!(
        keep.clone(),
        BTreeMap::from([("SuccessfulExit".to_string(), Plist::Bool(false))])
    );
    assert!(matches!(d["ThrottleInterval"], Plist::Integer(n) if n > 0));
    assert!(matches!(d["ExitTimeOut"], Plist::Integer(n) if n > 0));
    assert!(["Background", "Standard", "Adaptive", "Interactive"].contains(&s(&d["ProcessType"])));
    assert_eq!(d["Umask"], Plist::Integer(0o077));
    let logs = sc.fcx_home().join("logs");
    for k in ["StandardOutPath", "StandardErrorPath"] {
        let p = PathBuf::from(s(&d[k]));
        assert_eq!(p.parent(), Some(logs.as_path()), "{k}");
    }
}

// ---- Task Scheduler ----

const TASK_NS: &str = "http://schemas.microsoft.com/windows/2004/02/mit/task";

/// The element's children by name, checked against an `xs:all` group:
/// only `allowed` names, each once, every `required` one present.
fn all<'a, 'i>(
    n: Node<'a, 'i>,
    allowed: &[&str],
    required: &[&str],
) -> BTreeMap<String, Node<'a, 'i>> {
    let mut m = BTreeMap::new();
    for c in elements(n) {
        assert_eq!(c.tag_name().namespace(), Some(TASK_NS), "namespace");
        let name = c.tag_name().name().to_string();
        assert!(
            allowed.contains(&name.as_str()),
            "<{name}> is not allowed in <{}>",
            n.tag_name().name()
        );
        assert!(m.insert(name.clone(), c).is_none(), "<{name}> twice");
    }
    for r in required {
        assert!(m.contains_key(*r), "<{}> needs <{r}>", n.tag_name().name());
    }
    m
}

fn boolean(n: Node) {
    assert!(
        ["true", "false"].contains(&text(n)),
        "<{}> {:?} is not a boolean",
        n.tag_name().name(),
        text(n)
    );
}

/// An xs:duration, as seconds (years and months counted loosely: only
/// the ranges the schema sets are checked).
fn duration(n: Node) -> u64 {
    let t = text(n);
    let bad = || panic!("<{}> {t:?} is not a duration", n.tag_name().name());
    let Some(rest) = t.strip_prefix('P') else {
        bad()
    };
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    if rest.is_empty() || rest.ends_with('T') {
        bad();
    }
    let mut secs = 0u64;
    for (part, units) in [
        (
            date,
            &[('Y', 365 * 86_400), ('M', 30 * 86_400), ('D', 86_400)][..],
        ),
        (time, &[('H', 3_600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut num = String::new();
        let mut next = 0;
        for ch in part.chars() {
            if ch.is_ascii_digit() {
                num.push(ch);
                continue;
            }
            let Some(i) = units[next..].iter().position(|(u, _)| *u == ch) else {
                bad()
            };
            let n: u64 = num.parse().unwrap_or_else(|_| bad());
            secs += n * units[next + i].1;
            next += i + 1;
            num.clear();
        }
        if !num.is_empty() {
            bad();
        }
    }
    secs
}

#[test]
fn the_task_scheduler_xml_follows_the_task_schema() {
    let sc = Scratch::new();
    let fcxd = installed(&sc);
    let xml = print(&sc, "task-scheduler", &fcxd);
    // What schtasks reads: UTF-16 says the declaration (the file written is
    // UTF-16 with a byte-order mark; this is its text).
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-16\"?>"),
        "{xml}"
    );
    let doc = parse(&xml);
    let task = doc.root_element();
    assert_eq!(task.tag_name().name(), "Task");
    assert_eq!(task.tag_name().namespace(), Some(TASK_NS));
    let version = task.attribute("version").expect("version");
    assert!(["1.2", "1.3", "1.4"].contains(&version), "{version}");
    let t = all(
        task,
        &[
            "RegistrationInfo",
            "Triggers",
            "Settings",
            "Data",
            "Principals",
            "Actions",
        ],
        &["Actions"],
    );

    let info = all(
        t["RegistrationInfo"],
        &[
            "URI",
            "SecurityDescriptor",
            "Source",
            "Date",
            "Author",
            "Version",
            "Description",
            "Documentation",
        ],
        &[],
    );
    assert!(!text_of(&info, "Description").is_empty());

    // One logon trigger for this user; triggerBaseType then
    // logonTriggerType are sequences: order matters.
    let triggers = elements(t["Triggers"]);
    assert_eq!(triggers.len(), 1);
    let logon = triggers[0];
    assert_eq!(logon.tag_name().name(), "LogonTrigger");
    let order = [
        "Enabled",
        "StartBoundary",
        "EndBoundary",
        "Repetition",
        "ExecutionTimeLimit",
        "UserId",
        "Delay",
    ];
    let mut at = 0;
    for c in elements(logon) {
        let name = c.tag_name().name();
        let i = order[at..]
            .iter()
            .position(|o| *o == name)
            .unwrap_or_else(|| panic!("<{name}> out of order or unknown in <LogonTrigger>"));
        at += i + 1;
        match name {
            "Enabled" => boolean(c),
            "Delay" | "ExecutionTimeLimit" => {
                duration(c);
            }
            "UserId" => assert_eq!(text(c), "WS01\\tester"),
            _ => {}
        }
    }

    let principals = elements(t["Principals"]);
    assert_eq!(principals.len(), 1);
    let principal = principals[0];
    assert_eq!(principal.tag_name().name(), "Principal");
    let p = all(
        principal,
        &[
            "UserId",
            "LogonType",
            "GroupId",
            "DisplayName",
            "RunLevel",
            "ProcessTokenSidType",
            "RequiredPrivileges",
        ],
        &[],
    );
    assert_eq!(text_of(&p, "UserId"), "WS01\\tester");
    assert!(
        [
            "S4U",
            "Password",
            "InteractiveToken",
            "InteractiveTokenOrPassword"
        ]
        .contains(&text_of(&p, "LogonType"))
    );
    assert!(["LeastPrivilege", "HighestAvailable"].contains(&text_of(&p, "RunLevel")));

    let settings = all(
        t["Settings"],
        &[
            "AllowStartOnDemand",
            "RestartOnFailure",
            "MultipleInstancesPolicy",
            "DisallowStartIfOnBatteries",
            "StopIfGoingOnBatteries",
            "AllowHardTerminate",
            "StartWhenAvailable",
            "NetworkProfileName",
            "RunOnlyIfNetworkAvailable",
            "WakeToRun",
            "Enabled",
            "Hidden",
            "DeleteExpiredTaskAfter",
            "IdleSettings",
            "NetworkSettings",
            "ExecutionTimeLimit",
            "Priority",
            "RunOnlyIfIdle",
            "UseUnifiedSchedulingEngine",
            "DisallowStartOnRemoteAppSession",
        ],
        &[],
    );
    for (name, n) in &settings {
        match name.as_str() {
            "RestartOnFailure" => {
                let r = all(*n, &["Interval", "Count"], &["Interval", "Count"]);
                let secs = duration(r["Interval"]);
                assert!((60..=31 * 86_400).contains(&secs), "Interval PT1M..P31D");
                let count: u8 = text(r["Count"]).parse().expect("Count is an unsignedByte");
                assert!(count >= 1);
            }
            "IdleSettings" => {
                let i = all(
                    *n,
                    &["Duration", "WaitTimeout", "StopOnIdleEnd", "RestartOnIdle"],
                    &[],
                );
                for (k, v) in &i {
                    match k.as_str() {
                        "StopOnIdleEnd" | "RestartOnIdle" => boolean(*v),
                        _ => assert!(duration(*v) >= 60, "{k} at least PT1M"),
                    }
                }
            }
            "MultipleInstancesPolicy" => {
                assert!(["Parallel", "Queue", "IgnoreNew", "StopExisting"].contains(&text(*n)))
            }
            "ExecutionTimeLimit" | "DeleteExpiredTaskAfter" => {
                duration(*n);
            }
            "Priority" => {
                let p: u8 = text(*n).parse().expect("Priority is a number");
                assert!(p <= 10);
            }
            "NetworkProfileName" | "NetworkSettings" => {}
            _ => boolean(*n),
        }
    }
    // A daemon: no execution time limit.
    assert_eq!(text_of(&settings, "ExecutionTimeLimit"), "PT0S");

    // Actions: the context is the principal's id (an IDREF), one Exec.
    let actions = t["Actions"];
    assert_eq!(actions.attribute("Context"), principal.attribute("id"));
    let execs = elements(actions);
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].tag_name().name(), "Exec");
    let e = all(
        execs[0],
        &["Command", "Arguments", "WorkingDirectory"],
        &["Command"],
    );
    assert_eq!(text_of(&e, "Command"), fcxd.display().to_string());
    assert_eq!(
        text_of(&e, "Arguments"),
        format!("--home \"{}\"", sc.fcx_home().display())
    );
}

fn text_of<'a>(m: &BTreeMap<String, Node<'a, '_>>, name: &str) -> &'a str {
    text(*m.get(name).unwrap_or_else(|| panic!("no <{name}>")))
}

#[test]
fn the_duration_reader_accepts_xs_durations_only() {
    let doc = |t: &str| format!("<d>{t}</d>");
    for (t, secs) in [
        ("PT0S", 0),
        ("PT1M", 60),
        ("PT30S", 30),
        ("P31D", 31 * 86_400),
        ("P1DT1H", 90_000),
    ] {
        let x = doc(t);
        assert_eq!(duration(parse(&x).root_element()), secs, "{t}");
    }
    for t in ["", "P", "PT", "1M", "PT1X", "PTM", "P1H"] {
        let x = doc(t);
        let r = std::panic::catch_unwind(|| duration(parse(&x).root_element()));
        assert!(r.is_err(), "{t:?} accepted");
    }
}
