//! Every `fcxctl` command line in README.md's and deploy/README.md's code
//! blocks parses as shown: each `a|b` alternative, with and without its
//! `[optional]` parts, placeholders filled with sample values.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

use clap::Parser as _;

const READMES: [(&str, &str); 2] = [
    ("README.md", include_str!("../../README.md")),
    ("deploy/README.md", include_str!("../../deploy/README.md")),
];

/// A sample value for each placeholder README uses.
fn sample(word: &str) -> Option<&'static str> {
    Some(match word {
        "NAME" | "P" => "work",
        "L" => "info",
        "DUR" => "1h",
        "VERSION" => "2",
        "ID" => "w:work",
        "PID" => "4242",
        _ => return None,
    })
}

/// The command lines of the ```bash blocks that start with `fcxctl`.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            inside = t == "```bash";
            continue;
        }
        if inside && t.starts_with("fcxctl ") {
            let cmd = t.split(" # ").next().unwrap_or(t).trim();
            out.push(cmd.to_string());
        }
    }
    out
}

/// Every concrete command line `shown` stands for.
fn expand(shown: &str) -> Vec<Vec<String>> {
    // Optional groups become single tokens so they can be kept or left out.
    let mut tokens: Vec<(bool, String)> = Vec::new();
    let mut group: Option<String> = None;
    for w in shown.split_whitespace() {
        match &mut group {
            Some(g) => {
                g.push(' ');
                g.push_str(w);
                if w.ends_with(']') {
                    let g = group.take().unwrap_or_default();
                    tokens.push((true, g.trim_start_matches('[').trim_end_matches(']').into()));
                }
            }
            None if w.starts_with('[') && !w.ends_with(']') => group = Some(w.to_string()),
            None if w.starts_with('[') => {
                tokens.push((true, w.trim_start_matches('[').trim_end_matches(']').into()))
            }
            None => tokens.push((false, w.to_string())),
        }
    }
    let mut lines: Vec<Vec<String>> = Vec::new();
    for with_optional in [false, true] {
        let mut variants: Vec<Vec<String>> = vec![Vec::new()];
        for (optional, tok) in &tokens {
            if *optional && !with_optional {
                continue;
            }
            let words: Vec<&str> = tok.split_whitespace().collect();
            let mut next = Vec::new();
            for v in &variants {
                let mut alts: Vec<Vec<String>> = vec![v.clone()];
                for w in &words {
                    let choices: Vec<String> = w
                        .split('|')
                        .map(|c| {
                            if c.chars().all(|x| x.is_ascii_uppercase()) {
                                sample(c)
                                    .unwrap_or_else(|| panic!("no sample for {c} in `{shown}`"))
                                    .to_string()
                            } else {
                                c.to_string()
                            }
                        })
                        .collect();
                    alts = alts
                        .into_iter()
                        .flat_map(|a| {
                            choices.iter().map(move |c| {
                                let mut a = a.clone();
                                a.push(c.clone());
                                a
                            })
                        })
                        .collect();
                }
                next.extend(alts);
            }
            variants = next;
        }
        lines.extend(variants);
    }
    lines
}

#[test]
fn every_fcxctl_command_in_the_readmes_parses_as_shown() {
    let mut checked = 0;
    for (file, text) in READMES {
        for shown in commands(text) {
            for argv in expand(&shown) {
                if let Err(e) = fcx_ctl::Cli::try_parse_from(&argv) {
                    panic!(
                        "{file}: `{shown}` as `{}` does not parse:\n{e}",
                        argv.join(" ")
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} command lines found");
}

#[test]
fn the_expansion_covers_alternatives_and_optional_parts() {
    let v = expand("fcxctl service start|stop [--profile P] [--json]");
    let lines: Vec<String> = v.iter().map(|a| a.join(" ")).collect();
    assert_eq!(
        lines,
        [
            "fcxctl service start",
            "fcxctl service stop",
            "fcxctl service start --profile work --json",
            "fcxctl service stop --profile work --json",
        ]
    );
}
