//! The sandbox a permissions profile stands for, as codex 0.169.0 picks it
//! (measured against the real CLI): with no `--sandbox` (app-server: no
//! `sandbox`), `default_permissions = "<id>"` selects `[permissions.<id>]`,
//! and its commands run under the built-in profile it `extends` (plus its
//! deny entries, which the fake does not enforce).

use serde_json::{Map, Value};

/// `read-only` | `workspace-write` | `danger-full-access` for `config`
/// (nested tables), or `None` when it selects no profile fcx could mean.
pub(crate) fn sandbox_of(config: &Value) -> Option<String> {
    let id = config.get("default_permissions")?.as_str()?;
    let extends = config
        .get("permissions")?
        .get(id)?
        .get("extends")?
        .as_str()?;
    Some(
        match extends {
            ":read-only" => "read-only",
            ":workspace" => "workspace-write",
            ":danger-full-access" => "danger-full-access",
            _ => return None,
        }
        .to_string(),
    )
}

/// [`sandbox_of`] app-server's `config` (dotted keys, as `-c` takes them).
pub(crate) fn from_config(dotted: &Map<String, Value>) -> Option<String> {
    sandbox_of(&nested(dotted))
}

/// Dotted keys as nested tables.
fn nested(dotted: &Map<String, Value>) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, v) in dotted {
        let mut at = &mut root;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            let Value::Object(m) = at else { break };
            if i + 1 == parts.len() {
                m.insert((*p).to_string(), v.clone());
                break;
            }
            at = m
                .entry((*p).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// The `-p` profile file's text as nested tables.
pub(crate) fn from_toml(text: &str) -> Option<Value> {
    toml::from_str::<Value>(text).ok()
}
