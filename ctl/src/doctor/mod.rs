//! `fcxctl doctor`: everything that stands between this machine and a bot
//! that answers, checked in order (config, Codex, secrets, workspaces,
//! permissions, the service, and the Feishu/Lark app live), each failure
//! with the exact fix. Exit 0 when nothing fails, 1 otherwise; warnings do
//! not fail.

mod feishu;
mod isolation;
mod lark;
mod local;
mod model;
mod win_home;

pub(crate) use feishu::console_url;

use std::io::Write;

use fcx_config::{Config, Home};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Ok,
    Info,
    Warn,
    Fail,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Ok => "ok  ",
            Status::Info => "info",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report. `detail` and `fix` never carry a secret value:
/// only references and platform codes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    /// The profile it is about; `None` for the home and the service.
    pub profile: Option<String>,
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

/// Collects checks for one subject (the home, or a profile).
pub(crate) struct Checks {
    profile: Option<String>,
    pub list: Vec<Check>,
}

impl Checks {
    pub(crate) fn new(profile: Option<&str>) -> Self {
        Checks {
            profile: profile.map(str::to_string),
            list: Vec::new(),
        }
    }
    fn push(&mut self, name: &str, status: Status, detail: String, fix: Option<String>) {
        self.list.push(Check {
            profile: self.profile.clone(),
            name: name.to_string(),
            status,
            detail,
            fix,
        });
    }
    pub(crate) fn ok(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Status::Ok, detail.into(), None);
    }
    pub(crate) fn info(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Status::Info, detail.into(), None);
    }
    pub(crate) fn warn(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Warn, detail.into(), Some(fix.into()));
    }
    pub(crate) fn fail(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Fail, detail.into(), Some(fix.into()));
    }
}

pub(crate) async fn doctor(
    home: &Home,
    profile: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let mut all = Vec::new();
    let mut general = Checks::new(None);
    let cfg = match Config::load(home) {
        Ok(cfg) => {
            if cfg.from_file {
                general.ok("config", cfg.path.display().to_string());
            } else {
                general.warn(
                    "config",
                    format!(
                        "{} does not exist; the built-in `{}` profile (console only) is in use",
                        cfg.path.display(),
                        fcx_config::DEFAULT_PROFILE
                    ),
                    "write one with `fcxctl init` (or by hand, see README's Configuration)",
                );
            }
            Some(cfg)
        }
        Err(e) => {
            // The error names the file, line, column and key, never a value.
            general.fail(
                "config",
                e.to_string(),
                format!("edit {} at that place", home.config_path().display()),
            );
            None
        }
    };
    local::home_permissions(home, &mut general);
    isolation::check(&mut general);
    local::service_unit(home, &mut general);
    local::service(home, &mut general).await;
    all.append(&mut general.list);

    if let Some(cfg) = &cfg {
        let profiles: Vec<_> = match profile {
            Some(name) => match cfg.profile(name) {
                Ok(p) => vec![p],
                Err(e) => {
                    let mut c = Checks::new(Some(name));
                    c.fail(
                        "profile",
                        e.to_string(),
                        "pick one of the profiles listed, or add it to config.toml",
                    );
                    all.append(&mut c.list);
                    Vec::new()
                }
            },
            None => cfg.profiles.values().collect(),
        };
        for p in profiles {
            let mut c = Checks::new(Some(&p.name));
            local::profile(home, p, &mut c).await;
            lark::lark_cli(home, p, &mut c);
            if let Some(app) = &p.app {
                feishu::app(p, app, &mut c).await;
            }
            if !p.enabled {
                // fcxd does not start a disabled profile: report, do not fail.
                for check in &mut c.list {
                    if check.status == Status::Fail {
                        check.status = Status::Warn;
                    }
                }
            }
            all.append(&mut c.list);
        }
    }

    let failed = all.iter().filter(|c| c.status == Status::Fail).count();
    let warned = all.iter().filter(|c| c.status == Status::Warn).count();
    if json {
        let v = json!({
            "home": home.root().display().to_string(),
            "ok": failed == 0,
            "failed": failed,
            "warnings": warned,
            "checks": all,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        write_text(out, home, &all, failed, warned)?;
    }
    Ok(if failed == 0 {
        crate::exit::OK
    } else {
        crate::exit::FAILURE
    })
}

fn write_text(
    out: &mut dyn Write,
    home: &Home,
    all: &[Check],
    failed: usize,
    warned: usize,
) -> std::io::Result<()> {
    writeln!(out, "fcx doctor: {}", home.root().display())?;
    let mut current: Option<&str> = None;
    for c in all {
        if c.profile.as_deref() != current {
            current = c.profile.as_deref();
            if let Some(p) = current {
                writeln!(out, "profile `{p}`")?;
            }
        }
        writeln!(out, "  [{}] {}: {}", c.status.mark(), c.name, c.detail)?;
        if let Some(fix) = &c.fix {
            writeln!(out, "         fix: {fix}")?;
        }
    }
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    if failed == 0 {
        writeln!(
            out,
            "doctor: ok ({})",
            plural(warned, "warning", "warnings")
        )
    } else {
        writeln!(
            out,
            "doctor: {} ({})",
            plural(failed, "problem", "problems"),
            plural(warned, "warning", "warnings")
        )
    }
}
