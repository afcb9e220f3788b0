//! Where and on what the figures were measured, and the figures file.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::json;

/// The machine, as far as a reader of the figures needs it: CPUs, model,
/// memory, and how loaded it was (other work on it skews every figure).
pub(super) fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .and_then(|l| l.parse::<f64>().ok());
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "model": model,
        "mem_mib": mem_kib / 1024,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "loadavg_1m_at_end": load,
    })
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `new` with every section it skipped taken from `old` (the last run that
/// measured it), so one file holds every figure however the bench is run.
pub(super) fn merge(mut new: serde_json::Value, old: &serde_json::Value) -> serde_json::Value {
    if let (Some(n), Some(o)) = (new.as_object_mut(), old.as_object()) {
        for (k, v) in n.iter_mut() {
            if v == "skipped"
                && let Some(prev) = o.get(k)
            {
                *v = prev.clone();
            }
        }
    }
    new
}

/// The figures JSON, written whole (a reader never sees half a file).
pub(super) fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, format!("{text}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("fcx-bench: figures written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{civil, merge};
    use serde_json::json;

    #[test]
    fn skipped_sections_keep_their_last_figures() {
        let old = json!({"soak": {"runs": 3}, "faults": {"lost": 0}, "spawn": {"p99": 1}});
        let new = json!({"soak": "skipped", "faults": {"lost": 1}, "spawn": "skipped", "cards": "skipped"});
        assert_eq!(
            merge(new, &old),
            json!({"soak": {"runs": 3}, "faults": {"lost": 1}, "spawn": {"p99": 1}, "cards": "skipped"})
        );
    }

    #[test]
    fn days_become_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}
