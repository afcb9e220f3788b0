//! Where and how Codex may run for a scope: the workspace (by realpath), the
//! access mode and the sandbox it maps to, network access, and the policy
//! fingerprint that decides whether a stored Codex thread may be resumed.

use std::path::{Component, Path, PathBuf};

use fcx_config::{AccessMode, AuthMode, Home, LarkCli, Profile};
use sha2::{Digest, Sha256};

use crate::pin::{self, Pin};
use crate::runner::Sandbox;
use crate::store::ScopeSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunPolicy {
    /// Realpath of the workspace.
    pub(crate) cwd: PathBuf,
    pub(crate) access: AccessMode,
    pub(crate) sandbox: Sandbox,
    pub(crate) network: bool,
    /// The Feishu/Lark CLI identity its runs get (the profile's preset,
    /// bot-only outside one-to-one chats).
    pub(crate) lark_cli: LarkCli,
    /// Hex SHA-256 over everything that must match for a thread to resume.
    pub(crate) fingerprint: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PolicyError {
    #[error("the workspace {0} does not exist; fcx never creates one, create it first")]
    Missing(String),
    #[error("the workspace {0} is not a directory")]
    NotDir(String),
    #[error("the workspace {path} is too broad ({why}); choose a project directory")]
    TooBroad { path: String, why: &'static str },
    #[error(
        "{path} leaves the current workspace through a symbolic link (it resolves to {target}); use the real path if you mean it"
    )]
    SymlinkEscape { path: String, target: String },
    #[error(
        "the workspace {path} changed since it was chosen ({why}); nothing runs there until someone with access chooses it again with /cd"
    )]
    Moved { path: String, why: String },
    #[error("the workspace {path} is not safe to run in: {why}")]
    // The owner/permission checks (pin::check_owner, win_acl).
    Unsafe { path: String, why: String },
    #[error("the workspace {0} is not valid UTF-8; rename it or link to it from a UTF-8 path")]
    NotUtf8(String),
    #[error("{0}")]
    Access(String),
}

/// The Codex sandbox an access mode runs under.
pub(crate) fn sandbox_for(mode: AccessMode) -> Sandbox {
    match mode {
        AccessMode::ReadOnly => Sandbox::ReadOnly,
        AccessMode::Workspace => Sandbox::WorkspaceWrite,
        AccessMode::Full => Sandbox::DangerFullAccess,
    }
}

pub(crate) fn parse_access(s: &str) -> Option<AccessMode> {
    match s {
        "read-only" | "readonly" | "ro" => Some(AccessMode::ReadOnly),
        "workspace" | "workspace-write" | "rw" => Some(AccessMode::Workspace),
        "full" | "danger-full-access" => Some(AccessMode::Full),
        _ => None,
    }
}

/// Whether `who` may choose `mode` for a scope: within the profile maximum,
/// and `full` only for the owner.
pub(crate) fn check_access_choice(
    profile: &Profile,
    mode: AccessMode,
    is_owner: bool,
) -> Result<(), PolicyError> {
    if mode > profile.permissions.max_access {
        return Err(PolicyError::Access(format!(
            "access `{}` is above this profile's maximum `{}` (profiles.{}.permissions.max_access)",
            mode.as_str(),
            profile.permissions.max_access.as_str(),
            profile.name
        )));
    }
    if mode == AccessMode::Full && !is_owner {
        return Err(PolicyError::Access(
            "only the owner can choose access `full`".into(),
        ));
    }
    Ok(())
}

/// The access mode in force for a scope: its own choice if still within the
/// maximum, else the profile default capped by the maximum.
pub(crate) fn effective_access(profile: &Profile, settings: &ScopeSettings) -> AccessMode {
    let max = profile.permissions.max_access;
    let chosen = settings
        .access
        .as_deref()
        .and_then(parse_access)
        .unwrap_or(profile.permissions.default_access);
    chosen.min(max)
}

/// Resolve the policy for a run in `scope`. The workspace must still be the
/// one pinned when it was chosen (`/cd`, or the profile default at start):
/// same realpath, same directory. The access mode is at most `cap` (what
/// a run's senders allow, see `access::run_cap`). A capped policy has its own fingerprint:
/// a capped run never continues a thread started under more access, nor
/// the reverse. `one_to_one`: the scope is a private chat or the console
/// (the only places a user identity for `lark-cli` may apply).
#[allow(clippy::too_many_arguments)]
pub(crate) fn resolve_capped(
    profile: &Profile,
    home: &Home,
    scope: &str,
    settings: &ScopeSettings,
    default_pin: Option<&Pin>,
    cap: AccessMode,
    one_to_one: bool,
) -> Result<RunPolicy, PolicyError> {
    let cwd = match &settings.workspace {
        Some(stored) => {
            let stored = PathBuf::from(stored);
            match &settings.workspace_id {
                Some(id) => pin::check(
                    &stored,
                    &Pin {
                        real: stored.clone(),
                        id: id.clone(),
                    },
                )?,
                // Chosen before pins were stored: the realpath still holds.
                None => match std::fs::canonicalize(&stored) {
                    Ok(now) if now != stored => {
                        return Err(PolicyError::Moved {
                            path: stored.display().to_string(),
                            why: format!("it now resolves to {}", now.display()),
                        });
                    }
                    _ => {}
                },
            }
            workspace(&stored, home)?
        }
        None => {
            let configured = &profile.workspaces.default;
            if let Some(p) = default_pin {
                pin::check(configured, p)?;
            }
            workspace(configured, home)?
        }
    };
    let access = effective_access(profile, settings).min(cap);
    let sandbox = sandbox_for(access);
    // Network is only meaningful inside workspace-write; full access has it
    // anyway and read-only never does.
    let network = match access {
        AccessMode::ReadOnly => false,
        AccessMode::Workspace => profile.permissions.network,
        AccessMode::Full => true,
    };
    let lark_cli = crate::lark_cli::effective(profile, one_to_one);
    let fingerprint = fingerprint(&FingerprintInput {
        scope,
        cwd: &cwd,
        sandbox,
        network,
        access_policy: &access_policy_digest(profile, access),
        resource_scope: RESOURCE_SCOPE,
        attachment_policy: ATTACHMENT_POLICY,
        auth: &profile.codex.auth,
        codex_home: &codex_home_identity(profile, home),
        identity: &format!("{};lark-cli={}", identity(profile), lark_cli.as_str()),
        config: &config_digest(profile),
    });
    Ok(RunPolicy {
        cwd,
        access,
        sandbox,
        network,
        lark_cli,
        fingerprint,
    })
}

/// What a run may reach beyond its workspace; one fixed policy today.
const RESOURCE_SCOPE: &str = "workspace-only";
/// How attachments reach Codex; one fixed policy today.
const ATTACHMENT_POLICY: &str = "local-path-v1";

fn access_policy_digest(profile: &Profile, access: AccessMode) -> String {
    let p = &profile.permissions;
    format!(
        "mode={};default={};max={};network={}",
        access.as_str(),
        p.default_access.as_str(),
        p.max_access.as_str(),
        p.network
    )
}

/// The chat identity runs act under (the platform app, or the console):
/// the Feishu CLI identity the fingerprint covers and `/status` shows. An
/// app id, never its secret.
pub(crate) fn identity(profile: &Profile) -> String {
    match &profile.app {
        Some(app) => format!("{}:{}", app.tenant.as_str(), app.app_id),
        None => "console".into(),
    }
}

fn config_digest(profile: &Profile) -> String {
    let mut h = Sha256::new();
    let mut ov: Vec<_> = profile.codex.overrides.iter().collect();
    ov.sort();
    h.update(profile.codex.model.as_deref().unwrap_or("").as_bytes());
    for (k, v) in ov {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The Codex home a profile's children use, as an identity string.
pub(crate) fn codex_home_identity(profile: &Profile, home: &Home) -> String {
    match profile.codex.auth {
        AuthMode::InheritUser => "inherit-user".into(),
        _ => home
            .profile(&profile.name)
            .codex_home()
            .display()
            .to_string(),
    }
}

/// Realpath of `path`, refusing places that would hand Codex far more than a
/// project: filesystem and volume roots, the home directory itself, Desktop
/// and Downloads as a whole, system directories, the temp root, and fcx's own
/// state.
pub(crate) fn workspace(path: &Path, home: &Home) -> Result<PathBuf, PolicyError> {
    let shown = path.display().to_string();
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(_) => return Err(PolicyError::Missing(shown)),
    };
    if !real.is_dir() {
        return Err(PolicyError::NotDir(shown));
    }
    if real.to_str().is_none() {
        return Err(PolicyError::NotUtf8(shown));
    }
    if let Some(why) = too_broad(&real, home) {
        return Err(PolicyError::TooBroad { path: shown, why });
    }
    pin::check_owner(&real)?;
    Ok(real)
}

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Why `real` (already a realpath) is too broad, or `None`.
pub(crate) fn too_broad(real: &Path, home: &Home) -> Option<&'static str> {
    if real.parent().is_none() {
        return Some("it is a filesystem root");
    }
    let user_home = canon(home.user_home());
    if real == user_home {
        return Some("it is your home directory itself");
    }
    for d in ["Desktop", "Downloads"] {
        if real == user_home.join(d) {
            return Some("Desktop and Downloads cannot be a workspace as a whole");
        }
    }
    // ~/.ssh, ~/.config, ~/.codex, ~/.local/bin, …: credentials and files
    // that run at login or on the next command.
    if let Ok(rest) = real.strip_prefix(&user_home)
        && let Some(Component::Normal(first)) = rest.components().next()
        && first.to_string_lossy().starts_with('.')
    {
        return Some(
            "it is inside a hidden directory of your home, which holds credentials and start-up files",
        );
    }
    // A workspace that is or holds a PATH directory would let a run plant
    // commands the user runs later.
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path).filter(|d| d.is_absolute()) {
            if canon(&dir).starts_with(real) {
                return Some("it is or holds a directory on PATH");
            }
        }
    }
    let temp_roots = [
        canon(&std::env::temp_dir()),
        PathBuf::from("/tmp"),
        PathBuf::from("/var/tmp"),
        PathBuf::from("/private/tmp"),
        PathBuf::from("/private/var/tmp"),
    ];
    if temp_roots.iter().any(|t| real == t) {
        return Some("it is the temporary directory root");
    }
    // Whole trees that are never a project.
    const SYSTEM_TREES: &[&str] = &[
        "/proc",
        "/sys",
        "/dev",
        "/boot",
        "/etc",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/System",
        "/private/etc",
    ];
    if SYSTEM_TREES.iter().any(|s| real.starts_with(s)) {
        return Some("it is a system directory");
    }
    // Directories that hold projects but are not one.
    const SYSTEM_DIRS: &[&str] = &[
        "/usr",
        "/usr/local",
        "/usr/lib",
        "/usr/share",
        "/usr/bin",
        "/var",
        "/var/lib",
        "/var/log",
        "/opt",
        "/srv",
        "/run",
        "/home",
        "/Users",
        "/Library",
        "/Applications",
        "/private",
        "/private/var",
        "/snap",
        "/nix",
        "/nix/store",
    ];
    if SYSTEM_DIRS.iter().any(|s| real == Path::new(s)) {
        return Some("it is a system directory");
    }
    // Volume roots: /mnt/x, /media/x, /media/user/x, /run/media/user/x,
    // /Volumes/x, and the mount directories themselves.
    let comps: Vec<_> = real
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let volume = match comps.as_slice() {
        ["mnt" | "media" | "Volumes"] => true,
        ["mnt" | "media" | "Volumes", _] => true,
        ["media", _, _] => true,
        ["run", "media", ..] if comps.len() <= 4 => true,
        _ => false,
    };
    if volume {
        return Some("it is a volume root");
    }
    let fcx = canon(home.root());
    if real.starts_with(&fcx) || fcx.starts_with(real) {
        return Some("it holds fcx's own state and secrets");
    }
    None
}

/// Lexically normalise `p` (`.` dropped, `..` pops), without touching the
/// filesystem.
pub(crate) fn normalize_lexically(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Resolve a `/cd` argument: `~` is the user's home, a relative path starts
/// at the current workspace. A path that stays inside the current workspace
/// as written but resolves outside it (through a symlink) is refused.
pub(crate) fn resolve_cd(current: &Path, arg: &str, home: &Home) -> Result<PathBuf, PolicyError> {
    let arg = arg.trim();
    let written = if arg == "~" {
        home.user_home().to_path_buf()
    } else if let Some(rest) = arg.strip_prefix("~/") {
        home.user_home().join(rest)
    } else {
        let p = Path::new(arg);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            current.join(p)
        }
    };
    let lexical = normalize_lexically(&written);
    let real = workspace(&lexical, home)?;
    let base = canon(current);
    if (lexical.starts_with(current) || lexical.starts_with(&base)) && !real.starts_with(&base) {
        return Err(PolicyError::SymlinkEscape {
            path: arg.to_string(),
            target: real.display().to_string(),
        });
    }
    Ok(real)
}

pub(crate) struct FingerprintInput<'a> {
    pub(crate) scope: &'a str,
    pub(crate) cwd: &'a Path,
    pub(crate) sandbox: Sandbox,
    pub(crate) network: bool,
    pub(crate) access_policy: &'a str,
    pub(crate) resource_scope: &'a str,
    pub(crate) attachment_policy: &'a str,
    pub(crate) auth: &'a AuthMode,
    pub(crate) codex_home: &'a str,
    /// Chat identity (platform app) the runs act under.
    pub(crate) identity: &'a str,
    /// Digest of the Codex model and `-c` overrides.
    pub(crate) config: &'a str,
}

/// SHA-256 over a canonical, length-prefixed encoding, so no two different
/// inputs can encode to the same bytes.
pub(crate) fn fingerprint(i: &FingerprintInput<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        h.update((name.len() as u32).to_be_bytes());
        h.update(name.as_bytes());
        h.update((value.len() as u64).to_be_bytes());
        h.update(value);
    };
    field("v", b"fcx-fingerprint-2");
    field("scope", i.scope.as_bytes());
    field("cwd", i.cwd.as_os_str().as_encoded_bytes());
    field("sandbox", i.sandbox.as_str().as_bytes());
    field("network", if i.network { b"1" } else { b"0" });
    field("access_policy", i.access_policy.as_bytes());
    field("resource_scope", i.resource_scope.as_bytes());
    field("attachment_policy", i.attachment_policy.as_bytes());
    field("auth", i.auth.as_str().as_bytes());
    field("codex_home", i.codex_home.as_bytes());
    field("identity", i.identity.as_bytes());
    field("config", i.config.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(cwd: &Path) -> FingerprintInput<'_> {
        FingerprintInput {
            scope: "chat:a",
            cwd,
            sandbox: Sandbox::WorkspaceWrite,
            network: false,
            access_policy: "p",
            resource_scope: "r",
            attachment_policy: "a",
            auth: &AuthMode::ApiKey,
            codex_home: "/h",
            identity: "console",
            config: "c",
        }
    }

    #[test]
    fn fingerprint_changes_exactly_when_one_input_changes() {
        let cwd = PathBuf::from("/w");
        let base = fingerprint(&input(&cwd));
        assert_eq!(base, fingerprint(&input(&cwd)));
        let other = PathBuf::from("/w2");
        let mut variants: Vec<String> = vec![fingerprint(&input(&other))];
        let muts: [fn(&mut FingerprintInput<'_>); 11] = [
            |i| i.scope = "chat:b",
            |i| i.sandbox = Sandbox::ReadOnly,
            |i| i.sandbox = Sandbox::DangerFullAccess,
            |i| i.network = true,
            |i| i.access_policy = "p2",
            |i| i.resource_scope = "r2",
            |i| i.attachment_policy = "a2",
            |i| i.auth = &AuthMode::CodexHome,
            |i| i.codex_home = "/h2",
            |i| i.identity = "feishu:cli_x",
            |i| i.config = "c2",
        ];
        for m in muts {
            let mut i = input(&cwd);
            m(&mut i);
            variants.push(fingerprint(&i));
        }
        for v in &variants {
            assert_ne!(*v, base);
        }
        let mut uniq = variants.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(
            uniq.len(),
            variants.len(),
            "each input moves the fingerprint"
        );
        // Field boundaries are encoded: moving bytes between fields changes it.
        let mut a = input(&cwd);
        a.identity = "ab";
        a.config = "c";
        let mut b = input(&cwd);
        b.identity = "a";
        b.config = "bc";
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    fn home_in(d: &Path) -> Home {
        Home::with_user_home(d.join("fcx"), d.to_path_buf())
    }

    #[test]
    fn the_lark_cli_identity_moves_the_fingerprint_and_groups_are_bot_only() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = home_in(d.path());
        let mut p = crate::testkit::profile(d.path(), fcx_config::RunsConfig::default());
        std::fs::create_dir_all(&p.workspaces.default).expect("ws");
        let st = ScopeSettings::default();
        let resolve = |p: &Profile, one_to_one: bool| {
            resolve_capped(p, &home, "chat:a", &st, None, AccessMode::Full, one_to_one)
                .expect("policy")
        };
        let bot = resolve(&p, true);
        assert_eq!(bot.lark_cli, LarkCli::BotOnly);
        p.lark_cli = LarkCli::Disabled;
        let off = resolve(&p, true);
        assert_eq!(off.lark_cli, LarkCli::Disabled);
        p.lark_cli = LarkCli::UserDefault;
        let user = resolve(&p, true);
        assert_eq!(user.lark_cli, LarkCli::UserDefault);
        let group = resolve(&p, false);
        assert_eq!(group.lark_cli, LarkCli::BotOnly);
        assert_ne!(bot.fingerprint, off.fingerprint);
        assert_ne!(bot.fingerprint, user.fingerprint);
        assert_ne!(off.fingerprint, user.fingerprint);
        assert_eq!(
            group.fingerprint, bot.fingerprint,
            "same identity, same policy"
        );
    }

    #[test]
    fn workspace_must_exist_and_not_be_broad() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = home_in(d.path());
        assert!(matches!(
            workspace(&d.path().join("nope"), &home),
            Err(PolicyError::Missing(_))
        ));
        for broad in ["/", "/etc", "/usr", "/tmp", "/proc/self", "/mnt", "/home"] {
            let r = workspace(Path::new(broad), &home);
            assert!(
                matches!(
                    r,
                    Err(PolicyError::TooBroad { .. }) | Err(PolicyError::Missing(_))
                ),
                "{broad}: {r:?}"
            );
        }
        assert!(matches!(
            workspace(d.path(), &home),
            Err(PolicyError::TooBroad { .. })
        ));
        for sub in ["Desktop", "Downloads"] {
            std::fs::create_dir(d.path().join(sub)).expect("mkdir");
            let e = workspace(&d.path().join(sub), &home).expect_err("broad");
            assert!(e.to_string().contains("Desktop and Downloads"), "{e}");
            std::fs::create_dir(d.path().join(sub).join("proj")).expect("mkdir");
            workspace(&d.path().join(sub).join("proj"), &home).expect("a project inside is fine");
        }
        std::fs::create_dir_all(d.path().join("fcx/profiles")).expect("mkdir");
        assert!(matches!(
            workspace(&d.path().join("fcx/profiles"), &home),
            Err(PolicyError::TooBroad { .. })
        ));
        std::fs::create_dir(d.path().join("proj")).expect("mkdir");
        let w = workspace(&d.path().join("proj/../proj"), &home).expect("ok");
        assert!(w.ends_with("proj"));
        std::fs::write(d.path().join("file"), b"x").expect("file");
        assert!(matches!(
            workspace(&d.path().join("file"), &home),
            Err(PolicyError::NotDir(_))
        ));
    }

    #[test]
    fn volume_roots_are_broad() {
        let home = Home::with_user_home(PathBuf::from("/nonexistent/fcx"), "/nonexistent".into());
        for p in [
            "/mnt/data",
            "/media/usb",
            "/media/ann/usb",
            "/Volumes/Disk",
            "/run/media/ann/usb",
        ] {
            assert_eq!(
                too_broad(Path::new(p), &home),
                Some("it is a volume root"),
                "{p}"
            );
        }
        assert_eq!(too_broad(Path::new("/mnt/data/project"), &home), None);
        assert_eq!(too_broad(Path::new("/srv/app/project"), &home), None);
    }

    #[cfg(unix)]
    #[test]
    fn cd_resolves_relative_dotdot_and_refuses_symlink_escapes() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = home_in(d.path());
        let ws = d.path().join("ws");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(ws.join("sub/inner")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, ws.join("escape")).expect("symlink");
        std::os::unix::fs::symlink(ws.join("sub"), ws.join("inside")).expect("symlink");
        let base = canon(&ws);
        assert_eq!(
            resolve_cd(&base, "sub/inner", &home).expect("relative"),
            base.join("sub/inner")
        );
        assert_eq!(
            resolve_cd(&base, "sub/inner/../..", &home).expect("dotdot back to base"),
            base
        );
        assert_eq!(
            resolve_cd(&base, "inside", &home).expect("a link that stays inside"),
            base.join("sub")
        );
        let e = resolve_cd(&base, "escape", &home).expect_err("escape");
        assert!(matches!(e, PolicyError::SymlinkEscape { .. }), "{e:?}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // Written as a sibling (it leaves on purpose): allowed.
        assert_eq!(
            resolve_cd(&base, "../outside", &home).expect("sibling"),
            canon(&outside)
        );
        assert!(
            matches!(
                resolve_cd(&base, "../..", &home),
                Err(PolicyError::TooBroad { .. }) | Err(PolicyError::Missing(_))
            ) || resolve_cd(&base, "../..", &home).is_ok()
        );
        assert!(matches!(
            resolve_cd(&base, "missing", &home),
            Err(PolicyError::Missing(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_workspaces_are_refused_clearly() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().expect("tempdir");
        let home = home_in(d.path());
        let bad = d.path().join(std::ffi::OsStr::from_bytes(b"proj-\xff"));
        std::fs::create_dir(&bad).expect("mkdir non-utf8");
        let e = workspace(&bad, &home).expect_err("non-utf8");
        assert!(matches!(e, PolicyError::NotUtf8(_)), "{e:?}");
        std::os::unix::fs::symlink(&bad, d.path().join("link")).expect("symlink");
        let e = workspace(&d.path().join("link"), &home).expect_err("non-utf8 target");
        assert!(matches!(e, PolicyError::NotUtf8(_)), "{e:?}");
    }

    /// Property: whatever path is asked for, an accepted workspace is an
    /// existing directory, its own realpath, never broad, and never reached
    /// by a symlink out of the workspace it was written relative to.
    #[cfg(unix)]
    #[test]
    fn cd_property_over_random_paths() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = home_in(d.path());
        let ws = d.path().join("ws");
        std::fs::create_dir_all(ws.join("a/b")).expect("mkdir");
        std::fs::create_dir_all(d.path().join("out/x")).expect("mkdir");
        std::os::unix::fs::symlink(d.path().join("out"), ws.join("a/l_out")).expect("symlink");
        std::os::unix::fs::symlink(ws.join("a/b"), ws.join("l_in")).expect("symlink");
        std::os::unix::fs::symlink("/", ws.join("l_root")).expect("symlink");
        let base = canon(&ws);
        let segs = [
            "a", "b", "..", ".", "l_out", "l_in", "l_root", "x", "etc", "nope",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let n = 1 + (next() % 5) as usize;
            let path: Vec<&str> = (0..n)
                .map(|_| segs[(next() % segs.len() as u64) as usize])
                .collect();
            let arg = path.join("/");
            let lexical = normalize_lexically(&base.join(&arg));
            match resolve_cd(&base, &arg, &home) {
                Ok(real) => {
                    assert!(real.is_dir(), "{arg}");
                    assert_eq!(canon(&real), real, "{arg}");
                    assert_eq!(too_broad(&real, &home), None, "{arg}");
                    if lexical.starts_with(&base) {
                        assert!(
                            real.starts_with(&base),
                            "{arg} escaped to {}",
                            real.display()
                        );
                    }
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}
