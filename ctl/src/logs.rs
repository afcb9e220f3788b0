//! `fcxctl logs [-f] [--profile P] [--level L] [--since DUR] [--json]`: the
//! JSON-lines logs in `$FCX_HOME/logs` (fcxd.log, worker-NAME.log and their
//! rolled `.1`, `.2`, …), merged in time order and filtered.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use fcx_config::Home;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Some(Level::Trace),
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Keep printing lines as they are written (Ctrl-C to stop)
    #[arg(short, long)]
    pub follow: bool,
    /// Only this profile: its worker's log and fcxd's lines about it
    #[arg(long, value_name = "P")]
    pub profile: Option<String>,
    /// Only lines at this level or above
    #[arg(long, value_enum, value_name = "L")]
    pub level: Option<Level>,
    /// Only lines from the last DUR (e.g. 30s, 10m, 2h, 1d)
    #[arg(long, value_name = "DUR")]
    pub since: Option<String>,
    /// Print the JSON lines as written instead of text
    #[arg(long)]
    pub json: bool,
}

struct Filter {
    profile: Option<String>,
    level: Option<Level>,
    /// RFC 3339 UTC prefix: lines with a smaller timestamp are older.
    since: Option<String>,
}

impl Filter {
    /// `source` is the file's stem (`fcxd` or `worker-NAME`).
    fn keep(&self, source: &str, v: Option<&Value>) -> bool {
        let Some(v) = v else {
            // Not JSON (a panic message): keep it unless a filter needs
            // fields it does not have.
            return self.level.is_none() && self.since.is_none();
        };
        if let Some(min) = self.level {
            let lvl = v["level"].as_str().and_then(Level::parse);
            if lvl.is_none_or(|l| l < min) {
                return false;
            }
        }
        if let Some(since) = &self.since
            && v["timestamp"].as_str().is_none_or(|t| t < since.as_str())
        {
            return false;
        }
        if let Some(p) = &self.profile
            && source == "fcxd"
        {
            return v["profile"].as_str() == Some(p.as_str());
        }
        true
    }
}

pub(crate) fn logs(home: &Home, args: LogsArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let since = match &args.since {
        Some(d) => {
            let secs = parse_duration(d).with_context(|| {
                format!("--since {d}: give a number and a unit: 30s, 10m, 2h or 1d")
            })?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            Some(rfc3339(now.saturating_sub(secs)))
        }
        None => None,
    };
    let filter = Filter {
        profile: args.profile.clone(),
        level: args.level,
        since,
    };
    let dir = home.logs_dir();
    let sources = sources(&dir, args.profile.as_deref())?;
    // Everything written so far, merged by timestamp.
    let mut lines: Vec<(String, String, String)> = Vec::new();
    let mut offsets: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for (source, files) in &sources {
        for f in files {
            let (text, len) = read_from(f, 0)?;
            if f.extension().is_some_and(|e| e == "log") {
                offsets.insert(f.clone(), len);
            }
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: Option<Value> = serde_json::from_str(line).ok();
                if filter.keep(source, v.as_ref()) {
                    let ts = v
                        .as_ref()
                        .and_then(|v| v["timestamp"].as_str())
                        .unwrap_or("")
                        .to_string();
                    lines.push((ts, source.clone(), line.to_string()));
                }
            }
        }
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, source, line) in &lines {
        print_line(out, source, line, args.json)?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(crate::exit::OK);
    }
    loop {
        std::thread::sleep(Duration::from_millis(300));
        // New workers (profiles added later) appear as new files.
        for (source, files) in sources_now(&dir, args.profile.as_deref())? {
            for f in files
                .into_iter()
                .filter(|f| f.extension().is_some_and(|e| e == "log"))
            {
                let from = offsets.get(&f).copied().unwrap_or(0);
                let size = std::fs::metadata(&f).map_or(0, |m| m.len());
                // Rotated under us: the new file starts from the beginning.
                let from = if size < from { 0 } else { from };
                if size == from {
                    continue;
                }
                let (text, len) = read_from(&f, from)?;
                // Only whole lines; a partial last line waits for its end.
                let whole = text.rfind('\n').map_or(0, |i| i + 1);
                offsets.insert(f.clone(), len - (text.len() - whole) as u64);
                for line in text[..whole].lines().filter(|l| !l.trim().is_empty()) {
                    let v: Option<Value> = serde_json::from_str(line).ok();
                    if filter.keep(&source, v.as_ref()) {
                        print_line(out, &source, line, args.json)?;
                    }
                }
                out.flush()?;
            }
        }
    }
}

/// Log sources (file stem → files, oldest first) that exist now.
fn sources_now(dir: &Path, profile: Option<&str>) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    let mut stems: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|n| n.strip_suffix(".log").map(str::to_string))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    stems.sort();
    let wanted = |s: &str| match profile {
        None => s == "fcxd" || s.starts_with("worker-"),
        Some(p) => s == "fcxd" || s == format!("worker-{p}"),
    };
    Ok(stems
        .into_iter()
        .filter(|s| wanted(s))
        .map(|s| {
            // Oldest first: NAME.log.N … NAME.log.1, then NAME.log.
            let files = fcx_config::rolled_files(dir, &s)
                .into_iter()
                .rev()
                .map(|(_, p)| p)
                .chain([dir.join(format!("{s}.log"))])
                .filter(|f| f.is_file())
                .collect();
            (s, files)
        })
        .collect())
}

fn sources(dir: &Path, profile: Option<&str>) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    let found = sources_now(dir, profile)?;
    if found.is_empty() {
        bail!(
            "no logs in {} yet; fcxd writes them once it has started",
            dir.display()
        );
    }
    Ok(found)
}

fn read_from(path: &Path, from: u64) -> anyhow::Result<(String, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let len = from + buf.len() as u64;
    Ok((String::from_utf8_lossy(&buf).into_owned(), len))
}

fn print_line(out: &mut dyn Write, source: &str, line: &str, json: bool) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{line}");
    }
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(line) else {
        return writeln!(out, "{source}: {}", crate::render::clean(line));
    };
    let take = |m: &mut serde_json::Map<String, Value>, k: &str| match m.remove(k) {
        Some(Value::String(s)) => s,
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let ts = take(&mut m, "timestamp");
    let level = take(&mut m, "level");
    let message = take(&mut m, "message");
    m.remove("target");
    let mut text = format!("{ts} {level:<5} {source}: {message}");
    for (k, v) in m {
        let v = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        text.push_str(&format!(" {k}={v}"));
    }
    writeln!(out, "{}", crate::render::clean(&text))
}

/// `30s`, `10m`, `2h`, `1d` (a bare number is seconds) → seconds.
pub(crate) fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for Unix seconds, the prefix of the
/// timestamps tracing writes, so the two compare as strings.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_timestamps() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00");
        assert_eq!(rfc3339(1_796_592_678), "2026-12-06T21:31:18");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00");
    }
}
