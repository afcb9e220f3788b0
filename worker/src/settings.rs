//! Per-scope chat settings a chat's admins choose (`/config`): how runs are
//! shown (reply mode, tool display), who must mention the bot in a group,
//! the access mode and the idle timeout. Pure: the `/config` form an actor
//! is offered, and the check of what they submit, are functions of the
//! profile, the actor's role and the values in force, so they are tested as
//! tables.

use fcx_config::{AccessMode, DuringRun, Profile};
use fcx_proto::v1 as pb;

use crate::policy;
use crate::store::ScopeSettings;

pub(crate) const REPLY_MODES: [&str; 3] = ["card", "markdown", "text"];
pub(crate) const TOOL_DISPLAYS: [&str; 3] = ["full", "summary", "off"];
pub(crate) const MENTION_REQUIRED: &str = "required";
pub(crate) const MENTION_NOT_REQUIRED: &str = "not_required";
/// Idle timeouts the form offers, in minutes (besides `default` and `off`).
pub(crate) const IDLE_MINUTES: [u64; 5] = [5, 10, 30, 60, 120];
/// The range `/timeout` and `/config idle_timeout` accept, in minutes.
pub(crate) const IDLE_MAX_MINUTES: u64 = 24 * 60;

/// The profile's reply mode: `[app] reply_mode`, or "card" without an app.
pub(crate) fn default_reply_mode(profile: &Profile) -> &'static str {
    profile
        .app
        .as_ref()
        .and_then(|a| parse_reply_mode(a.reply_mode.as_str()))
        .unwrap_or("card")
}

/// The reply mode in force for a scope. A stored value this build does not
/// know (a newer worker wrote it) falls back to the default.
pub(crate) fn reply_mode(profile: &Profile, s: &ScopeSettings) -> &'static str {
    s.reply_mode
        .as_deref()
        .and_then(parse_reply_mode)
        .unwrap_or_else(|| default_reply_mode(profile))
}

pub(crate) fn tool_display(s: &ScopeSettings) -> &'static str {
    s.tool_display
        .as_deref()
        .and_then(parse_tool_display)
        .unwrap_or("full")
}

/// What a message arriving during a run does in a scope. A stored value
/// this build does not know falls back to the profile's default.
pub(crate) fn during_run(profile: &Profile, s: &ScopeSettings) -> DuringRun {
    s.during_run
        .as_deref()
        .and_then(DuringRun::parse)
        .unwrap_or(profile.codex.during_run)
}

pub(crate) fn parse_reply_mode(v: &str) -> Option<&'static str> {
    REPLY_MODES.into_iter().find(|m| *m == v)
}

pub(crate) fn parse_tool_display(v: &str) -> Option<&'static str> {
    TOOL_DISPLAYS.into_iter().find(|m| *m == v)
}

/// `required` → true, `not_required` → false.
pub(crate) fn parse_mention(v: &str) -> Option<bool> {
    match v {
        "required" => Some(true),
        "not_required" | "not-required" => Some(false),
        _ => None,
    }
}

pub(crate) fn mention_str(required: bool) -> &'static str {
    if required {
        MENTION_REQUIRED
    } else {
        MENTION_NOT_REQUIRED
    }
}

/// An idle-timeout choice: what `ScopeSettings::timeout_secs` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// The profile's `runs.idle_timeout_secs`.
    Default,
    Off,
    Minutes(u64),
}

impl Idle {
    pub(crate) fn parse(v: &str) -> Option<Idle> {
        match v {
            "default" => Some(Idle::Default),
            "off" => Some(Idle::Off),
            _ => match v.parse::<u64>() {
                Ok(n) if (1..=IDLE_MAX_MINUTES).contains(&n) => Some(Idle::Minutes(n)),
                _ => None,
            },
        }
    }

    pub(crate) fn from_settings(s: &ScopeSettings) -> Idle {
        match s.timeout_secs {
            None => Idle::Default,
            Some(0) => Idle::Off,
            Some(secs) => Idle::Minutes(secs.div_ceil(60)),
        }
    }

    pub(crate) fn timeout_secs(self) -> Option<u64> {
        match self {
            Idle::Default => None,
            Idle::Off => Some(0),
            Idle::Minutes(m) => Some(m * 60),
        }
    }

    /// The form value: "default", "off" or the minutes.
    pub(crate) fn value(self) -> String {
        match self {
            Idle::Default => "default".into(),
            Idle::Off => "off".into(),
            Idle::Minutes(m) => m.to_string(),
        }
    }
}

/// "5 min", "1 hour", "2 hours": minutes as a user reads them.
pub(crate) fn minutes_label(m: u64) -> String {
    match m {
        60 => "1 hour".into(),
        m if m >= 120 && m % 60 == 0 => format!("{} hours", m / 60),
        m => format!("{m} min"),
    }
}

/// A setting a chat can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    ReplyMode,
    ToolDisplay,
    Access,
    Mention,
    IdleTimeout,
    DuringRun,
}

impl Key {
    pub(crate) const ALL: [Key; 6] = [
        Key::ReplyMode,
        Key::ToolDisplay,
        Key::Access,
        Key::Mention,
        Key::IdleTimeout,
        Key::DuringRun,
    ];

    /// `reply_mode` and `reply-mode` alike: people type both.
    pub(crate) fn parse(k: &str) -> Option<Key> {
        let k = k.trim().to_ascii_lowercase().replace('-', "_");
        Key::ALL.into_iter().find(|key| key.as_str() == k)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Key::ReplyMode => "reply_mode",
            Key::ToolDisplay => "tool_display",
            Key::Access => "access",
            Key::Mention => "mention",
            Key::IdleTimeout => "idle_timeout",
            Key::DuringRun => "during_run",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Key::ReplyMode => "Reply mode",
            Key::ToolDisplay => "Tool calls",
            Key::Access => "Access",
            Key::Mention => "Mention in this group",
            Key::IdleTimeout => "Idle timeout",
            Key::DuringRun => "Messages during a run",
        }
    }

    /// The values, as `/config <key> <value>` usage shows them.
    pub(crate) fn usage(self) -> &'static str {
        match self {
            Key::ReplyMode => "card|markdown|text",
            Key::ToolDisplay => "full|summary|off",
            Key::Access => "read-only|workspace|full",
            Key::Mention => "required|not_required",
            Key::IdleTimeout => "<minutes 1-1440>|off|default",
            Key::DuringRun => "steer|queue|interrupt",
        }
    }
}

/// Everything the form and its check depend on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub(crate) profile: &'a Profile,
    pub(crate) is_owner: bool,
    /// A group or topic scope (mention gating applies).
    pub(crate) group: bool,
    pub(crate) topic: bool,
    pub(crate) current: Current,
}

/// The values in force in a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Current {
    pub(crate) reply_mode: &'static str,
    pub(crate) tool_display: &'static str,
    pub(crate) access: AccessMode,
    pub(crate) mention: bool,
    pub(crate) idle: Idle,
    pub(crate) during_run: DuringRun,
}

impl Current {
    /// `chat` holds the group's own mention choice (for a topic, the group's
    /// `chat:` row); `None` outside groups.
    pub(crate) fn of(
        profile: &Profile,
        scope: &ScopeSettings,
        chat: Option<&ScopeSettings>,
    ) -> Current {
        Current {
            reply_mode: reply_mode(profile, scope),
            tool_display: tool_display(scope),
            access: policy::effective_access(profile, scope),
            mention: chat
                .and_then(|c| c.require_mention)
                .unwrap_or(profile.access.require_mention_in_group),
            idle: Idle::from_settings(scope),
            during_run: during_run(profile, scope),
        }
    }

    fn value(&self, key: Key) -> String {
        match key {
            Key::ReplyMode => self.reply_mode.into(),
            Key::ToolDisplay => self.tool_display.into(),
            Key::Access => self.access.as_str().into(),
            Key::Mention => mention_str(self.mention).into(),
            Key::IdleTimeout => self.idle.value(),
            Key::DuringRun => self.during_run.as_str().into(),
        }
    }
}

/// One validated change, in force once applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    ReplyMode(&'static str),
    ToolDisplay(&'static str),
    Access(AccessMode),
    Mention(bool),
    Idle(Idle),
    DuringRun(DuringRun),
}

impl Change {
    /// "reply mode → markdown": the title of the reply lists these.
    pub(crate) fn describe(&self) -> String {
        match self {
            Change::ReplyMode(v) => format!("reply mode → {v}"),
            Change::ToolDisplay(v) => format!("tool calls → {v}"),
            Change::Access(m) => format!("access → {}", m.as_str()),
            Change::Mention(r) => format!("mention → {}", mention_str(*r).replace('_', " ")),
            Change::DuringRun(d) => format!("messages during a run → {}", d.as_str()),
            Change::Idle(i) => format!(
                "idle timeout → {}",
                match i {
                    Idle::Default => "default".to_string(),
                    Idle::Off => "off".to_string(),
                    Idle::Minutes(m) => minutes_label(*m),
                }
            ),
        }
    }
}

fn keys_here(f: &Facts<'_>) -> Vec<Key> {
    Key::ALL
        .into_iter()
        .filter(|k| *k != Key::Mention || f.group)
        .collect()
}

fn access_label(m: AccessMode) -> &'static str {
    match m {
        AccessMode::ReadOnly => "Read-only (sandbox read-only)",
        AccessMode::Workspace => "Workspace (sandbox workspace-write)",
        AccessMode::Full => "Full (danger-full-access)",
    }
}

/// The access modes this actor may pick: within the profile's maximum,
/// `full` only for the owner.
fn access_choosable(f: &Facts<'_>) -> Vec<AccessMode> {
    [
        AccessMode::ReadOnly,
        AccessMode::Workspace,
        AccessMode::Full,
    ]
    .into_iter()
    .filter(|m| policy::check_access_choice(f.profile, *m, f.is_owner).is_ok())
    .collect()
}

fn idle_choosable() -> Vec<Idle> {
    let mut v = vec![Idle::Default, Idle::Off];
    v.extend(IDLE_MINUTES.iter().map(|m| Idle::Minutes(*m)));
    v
}

fn choice(value: impl Into<String>, label: impl Into<String>) -> pb::Choice {
    pb::Choice {
        value: value.into(),
        label: label.into(),
    }
}

/// The `/config` form for this actor and scope. Every option's `current`
/// is one of its choices: a value in force that the actor could not choose
/// (the owner gave the chat `full`; an admin looks) is listed as the current
/// one, so submitting the form unchanged keeps it.
pub(crate) fn form(f: &Facts<'_>) -> pb::ConfigForm {
    let cur = f.current;
    let mut options = Vec::new();
    for key in keys_here(f) {
        let (choices, help) = match key {
            Key::ReplyMode => (
                vec![
                    choice("card", "Card"),
                    choice("markdown", "Markdown"),
                    choice("text", "Plain text"),
                ],
                "How runs and command answers appear in this chat.".to_string(),
            ),
            Key::ToolDisplay => (
                vec![
                    choice("full", "Full: each call with its output"),
                    choice("summary", "Summary: one folded list"),
                    choice("off", "Off: file changes only"),
                ],
                "How Codex's tool calls appear on run cards.".to_string(),
            ),
            Key::Access => {
                let mut modes = access_choosable(f);
                if !modes.contains(&cur.access) {
                    modes.push(cur.access);
                    modes.sort();
                }
                (
                    modes
                        .into_iter()
                        .map(|m| {
                            let label = if m == cur.access && !access_choosable(f).contains(&m) {
                                format!("{} (set by the owner)", access_label(m))
                            } else {
                                access_label(m).to_string()
                            };
                            choice(m.as_str(), label)
                        })
                        .collect(),
                    format!(
                        "Codex's sandbox here; a change starts a new session. Network: {}.",
                        if f.profile.permissions.network {
                            "on with workspace access"
                        } else {
                            "off unless full"
                        }
                    ),
                )
            }
            Key::Mention => (
                vec![
                    choice(MENTION_REQUIRED, "Required: only messages that @mention me"),
                    choice(MENTION_NOT_REQUIRED, "Not required: every message"),
                ],
                if f.topic {
                    "Applies to every topic of this group.".to_string()
                } else {
                    "Whether members must @mention me for a message to reach Codex.".to_string()
                },
            ),
            Key::IdleTimeout => {
                let default = match f.profile.runs.idle_timeout_secs {
                    0 => "off".to_string(),
                    s => minutes_label(s.div_ceil(60)),
                };
                let mut idles = idle_choosable();
                if !idles.contains(&cur.idle) {
                    idles.push(cur.idle);
                }
                (
                    idles
                        .into_iter()
                        .map(|i| match i {
                            Idle::Default => choice("default", format!("Default ({default})")),
                            Idle::Off => choice("off", "Off"),
                            Idle::Minutes(m) => choice(m.to_string(), minutes_label(m)),
                        })
                        .collect(),
                    "Stop a run after this long without Codex activity.".to_string(),
                )
            }
            Key::DuringRun => (
                vec![
                    choice("steer", "Steer: add it to the running turn"),
                    choice("queue", "Queue: answer it after the run"),
                    choice("interrupt", "Interrupt: stop the run, answer everything"),
                ],
                if f.profile.codex.runner == fcx_config::RunnerKind::AppServer {
                    "What a message sent while Codex works does.".to_string()
                } else {
                    "What a message sent while Codex works does (the exec runner cannot steer: steer queues)."
                        .to_string()
                },
            ),
        };
        options.push(pb::ConfigOption {
            key: pb::ConfigKey::from_word(key.as_str()).unwrap_or_default() as i32,
            label: key.label().into(),
            current: cur.value(key),
            choices,
            help,
        });
    }
    pb::ConfigForm { options }
}

/// Where a set of values comes from: the form offers fixed idle timeouts,
/// while typing takes any number of minutes `/timeout` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Form,
    Typed,
}

/// Check every submitted value against what this actor may choose. All or
/// nothing: any problem refuses the whole submission, with one sentence per
/// problem naming the key and value. A value equal to the one in force is
/// accepted and changes nothing.
pub(crate) fn validate(
    f: &Facts<'_>,
    values: &[(String, String)],
    source: Source,
) -> Result<Vec<Change>, Vec<String>> {
    let mut errors = Vec::new();
    let mut changes = Vec::new();
    let mut seen: Vec<Key> = Vec::new();
    for (k, v) in values {
        let v = v.trim().to_ascii_lowercase();
        let v = v.as_str();
        let Some(key) = Key::parse(k) else {
            errors.push(format!(
                "`{k}` is not a setting (settings: {})",
                keys_here(f)
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        };
        if seen.contains(&key) {
            errors.push(format!("`{}` is given twice", key.as_str()));
            continue;
        }
        seen.push(key);
        if key == Key::Mention && !f.group {
            errors.push("`mention` applies to group chats only".into());
            continue;
        }
        if source == Source::Form && v.is_empty() {
            // A form field left as it was.
            continue;
        }
        let bad = || {
            format!(
                "`{v}` is not a value for `{}` ({})",
                key.as_str(),
                key.usage()
            )
        };
        let change = match key {
            Key::ReplyMode => parse_reply_mode(v).map(Change::ReplyMode),
            Key::ToolDisplay => parse_tool_display(v).map(Change::ToolDisplay),
            Key::Access => policy::parse_access(v).map(Change::Access),
            Key::Mention => parse_mention(v).map(Change::Mention),
            Key::IdleTimeout => Idle::parse(v).map(Change::Idle),
            Key::DuringRun => DuringRun::parse(v).map(Change::DuringRun),
        };
        let Some(change) = change else {
            errors.push(bad());
            continue;
        };
        let cur = f.current;
        let unchanged = match change {
            Change::ReplyMode(m) => m == cur.reply_mode,
            Change::ToolDisplay(d) => d == cur.tool_display,
            Change::Access(m) => m == cur.access,
            Change::Mention(r) => r == cur.mention,
            Change::Idle(i) => i == cur.idle,
            Change::DuringRun(d) => d == cur.during_run,
        };
        if unchanged {
            continue;
        }
        match change {
            Change::Access(m) => {
                if let Err(e) = policy::check_access_choice(f.profile, m, f.is_owner) {
                    errors.push(e.to_string());
                    continue;
                }
            }
            Change::Idle(i) if source == Source::Form && !idle_choosable().contains(&i) => {
                errors.push(bad());
                continue;
            }
            _ => {}
        }
        changes.push(change);
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

/// `settings` with `changes` applied (mention is not a scope setting: it
/// lives on the group's row, see [`ScopeSettings::require_mention`]).
pub(crate) fn apply(settings: &mut ScopeSettings, changes: &[Change]) {
    for c in changes {
        match *c {
            Change::ReplyMode(m) => settings.reply_mode = Some(m.into()),
            Change::ToolDisplay(d) => settings.tool_display = Some(d.into()),
            Change::Access(m) => settings.access = Some(m.as_str().into()),
            Change::Idle(i) => settings.timeout_secs = i.timeout_secs(),
            Change::DuringRun(d) => settings.during_run = Some(d.as_str().into()),
            Change::Mention(_) => {}
        }
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
