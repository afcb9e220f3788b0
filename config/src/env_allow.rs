//! The environment variables every process fcx starts may inherit.
//!
//! fcxd starts workers and workers start Codex from an empty environment
//! plus an allow-list, so `env:` secrets and the operator's shell tokens
//! stay where they were read. Both lists start from the names here; each
//! adds what its own child needs on top.

/// Extra names (`NAME` or a `PREFIX*`), comma-separated, an operator passes
/// through to Codex (a proxy, a CA bundle variable, a test double's
/// settings); a worker must see them to pass them on.
pub const PASS_ENV: &str = "FCX_CODEX_PASS_ENV";

/// Always passed when set: what a shell, a compiler or git needs to behave
/// normally, and what Windows needs to start a process at all.
pub const BASE_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "TZ",
    "TMPDIR",
    "TMP",
    "TEMP",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
];
