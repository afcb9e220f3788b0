//! The fault shim (`tests/shim/faultshim.c`), an LD_PRELOAD library that
//! steps the wall clock of fcx's own processes and turns the worker's state
//! directory read-only under it. Built here with `cc` next to the binaries
//! the bench drives; its one control file is written in place while they run.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The shim library, its control file and the worker wrapper that loads it.
pub(super) struct Shim {
    lib: PathBuf,
    ctl_path: PathBuf,
    ctl: File,
    wrapper: PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds `faultshim.so` into `bins` (again when the source is newer).
/// `Ok(Err(reason))`: no C compiler here, so the rows that need it skip.
fn build(bins: &Path) -> anyhow::Result<Result<PathBuf, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("shim/faultshim.c");
    let lib = bins.join("faultshim.so");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(source)) = (mtime(&lib), mtime(&src))
        && built >= source
    {
        return Ok(Ok(lib));
    }
    // Another bench may build it at the same time: each writes its own
    // file, then renames it into place.
    let tmp = bins.join(format!("faultshim.so.{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = match std::process::Command::new(&cc)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-U_FORTIFY_SOURCE",
            "-o",
        ])
        .arg(&tmp)
        .arg(&src)
        .arg("-ldl")
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(format!("no C compiler ({cc}) to build the fault shim")));
        }
        Err(e) => return Err(e).context("running cc"),
    };
    if !out.status.success() {
        anyhow::bail!(
            "cc {} failed: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&tmp, &lib)?;
    Ok(Ok(lib))
}

const CTL_BYTES: usize = 16;

impl Shim {
    /// `Ok(Err(reason))` where the shim cannot be built (no C compiler).
    pub(super) fn new(bins: &Path) -> anyhow::Result<Result<Shim, String>> {
        let lib = match build(bins)? {
            Ok(l) => l,
            Err(why) => return Ok(Err(why)),
        };
        let dir = tempfile::Builder::new()
            .prefix("fcxshim")
            .tempdir_in("/tmp")?;
        let ctl_path = dir.path().join("ctl");
        std::fs::write(&ctl_path, [0u8; CTL_BYTES])?;
        let ctl = std::fs::OpenOptions::new().write(true).open(&ctl_path)?;
        // fcxd starts the worker as `<bin> --profile P --home H --socket S`
        // and passes it an allow-list of variables (no LD_PRELOAD): the
        // wrapper loads the shim into the worker, with the profile's state
        // directory as the one that may turn read-only.
        let wrapper = dir.path().join("worker.sh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexport LD_PRELOAD='{lib}' FCX_FAULTSHIM_CTL='{ctl}' FCX_FAULTSHIM_RODIR=\"$4/profiles/$2\"\n\
                 exec '{worker}' \"$@\"\n",
                lib = lib.display(),
                ctl = ctl_path.display(),
                worker = bins.join("fcx-worker").display(),
            ),
        )?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(Ok(Shim {
            lib,
            ctl_path,
            ctl,
            wrapper,
            _dir: dir,
        }))
    }

    /// fcxd's environment: the shim in fcxd itself, and the worker started
    /// through the wrapper.
    pub(super) fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("LD_PRELOAD", self.lib.clone()),
            ("FCX_FAULTSHIM_CTL", self.ctl_path.clone()),
            ("FCX_WORKER_BIN", self.wrapper.clone()),
        ]
    }

    /// Steps the wall clock of every process using the shim to real time
    /// plus `ms` (monotonic clocks are untouched, as by a real step).
    pub(super) fn set_clock_offset_ms(&self, ms: i64) -> anyhow::Result<()> {
        let ns = ms.saturating_mul(1_000_000);
        self.ctl.write_all_at(&ns.to_ne_bytes(), 0)?;
        Ok(())
    }

    /// Writes under the worker's state directory fail with EROFS while on.
    pub(super) fn set_read_only(&self, on: bool) -> anyhow::Result<()> {
        self.ctl.write_all_at(&i32::from(on).to_ne_bytes(), 8)?;
        Ok(())
    }
}

/// Whether `pid` has the shim loaded (its maps name the library).
pub(super) fn loaded(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains("faultshim.so"))
}
