//! The Feishu/Lark app, checked live ([`crate::openapi`]):
//! credentials (tenant token), the bot, the permission scopes the enabled
//! features need, the long-connection endpoint; and the event subscriptions,
//! which the platform does not let an app read, named with where to add them.

use fcx_config::{AppConfig, Profile, ReplyMode, Tenant};

use crate::openapi::OpenApi;

use super::Checks;

/// A scope requirement: any one of `any_of` satisfies it.
pub(crate) struct Need {
    pub any_of: &'static [&'static str],
    pub why: &'static str,
    /// Missing a required scope fails the check; an optional one warns.
    pub required: bool,
}

/// What the profile's enabled features need (README, "Connecting a Feishu or
/// Lark app").
pub(crate) fn needed_scopes(p: &Profile, app: &AppConfig) -> Vec<Need> {
    let mut needs = vec![
        Need {
            any_of: &["im:message", "im:message:send_as_bot", "im:message:send"],
            why: "reply in chats",
            required: true,
        },
        Need {
            any_of: &["im:message.p2p_msg:readonly"],
            why: "receive private-chat messages",
            required: true,
        },
        Need {
            any_of: &["im:message.group_at_msg:readonly"],
            why: "receive group messages that mention the bot",
            required: true,
        },
        Need {
            any_of: &["im:resource"],
            why: "read attachments",
            required: true,
        },
        Need {
            any_of: &["im:chat"],
            why: "create group chats (/new group)",
            required: false,
        },
        Need {
            any_of: &["cardkit:card:write"],
            why: "run cards (reply_mode = \"card\")",
            required: app.reply_mode == ReplyMode::Card,
        },
    ];
    needs.extend(comment_scopes());
    if p.access.owner.is_none() {
        needs.push(Need {
            any_of: &[
                "application:application:self_manage",
                "admin:app.info:readonly",
            ],
            why: "learn the owner from the platform (access.owner is not set)",
            required: true,
        });
    }
    needs
}

/// Document comments (README, "Document comments"): optional, so a bot
/// used only in chats is not failed for lacking them; without them fcx
/// never hears of a mention, cannot read the comment, or cannot answer.
fn comment_scopes() -> [Need; 3] {
    [
        Need {
            any_of: &["docs:document.comment:read"],
            why: "read document comments that mention the bot",
            required: false,
        },
        Need {
            any_of: &["docs:document.comment:create"],
            why: "answer document comments",
            required: false,
        },
        Need {
            any_of: &[
                "drive:drive:readonly",
                "drive:drive.metadata:readonly",
                "drive:drive",
            ],
            why: "receive comment events and read document titles",
            required: false,
        },
    ]
}

pub(crate) const EVENTS: &[&str] = &[
    "im.message.receive_v1",
    "im.chat.member.bot.added_v1",
    "drive.notice.comment_add_v1",
];
pub(crate) const CALLBACKS: &[&str] = &["card.action.trigger"];

pub(crate) fn console_url(tenant: Tenant) -> &'static str {
    match tenant {
        Tenant::Feishu => "https://open.feishu.cn/app",
        Tenant::Lark => "https://open.larksuite.com/app",
    }
}

pub(super) async fn app(p: &Profile, app: &AppConfig, c: &mut Checks) {
    let console = console_url(app.tenant);
    // The secret check above says why when this fails.
    let Ok(secret) = app.app_secret.resolve() else {
        c.fail(
            "feishu token",
            "not checked: the app secret does not resolve",
            "fix the app secret reference (see the secret check above)",
        );
        return;
    };
    let client = match OpenApi::new(&app.base_url, &app.app_id, secret) {
        Ok(cl) => cl,
        Err(e) => {
            c.fail("feishu token", e.to_string(), "see the error");
            return;
        }
    };
    let token = match client.token().await {
        Ok(t) => {
            c.ok(
                "feishu token",
                format!("app {} authenticated at {}", app.app_id, app.base_url),
            );
            t
        }
        Err(e) => {
            let fix = if e.is_api() {
                format!(
                    "copy App ID and App Secret from {console} → your app → Credentials & Basic \
                     Info; set profiles.{}.app.app_id and store the secret where \
                     profiles.{}.app.app_secret ({}) points",
                    p.name, p.name, app.app_secret
                )
            } else {
                format!(
                    "check that this machine reaches {} (proxy, firewall, DNS)",
                    app.base_url
                )
            };
            c.fail("feishu token", e.to_string(), fix);
            return;
        }
    };
    match client.bot_info(&token).await {
        Ok(bot) => c.ok(
            "feishu bot",
            format!(
                "`{}` (open_id {}, activate_status {})",
                bot.app_name,
                bot.open_id,
                bot.activate_status
                    .map_or_else(|| "-".to_string(), |s| s.to_string())
            ),
        ),
        Err(e) => {
            c.fail(
                "feishu bot",
                e.to_string(),
                format!(
                    "enable the Bot capability: {console} → your app → Features (Add features) → \
                     Bot, then publish a version (Version Management & Release)"
                ),
            );
            return;
        }
    }
    scopes(&client, &token, p, app, console, c).await;
    if app.webhook.is_none() {
        match client.ws_endpoint().await {
            Ok(()) => c.ok(
                "long connection",
                format!("endpoint {}/callback/ws/endpoint answers", app.base_url),
            ),
            Err(e) => c.fail(
                "long connection",
                e.to_string(),
                format!(
                    "check that this machine reaches {} (proxy, firewall) and that the app is \
                     a self-built app (long connection works only for those)",
                    app.base_url
                ),
            ),
        }
    }
    events(app, console, c);
}

async fn scopes(
    client: &OpenApi,
    token: &str,
    p: &Profile,
    app: &AppConfig,
    console: &str,
    c: &mut Checks,
) {
    let needs = needed_scopes(p, app);
    let where_ = format!(
        "{console} → your app → Permissions & Scopes: add them, then publish a version \
         (Version Management & Release) so the tenant grants them"
    );
    let listed = match client.scopes(token).await {
        Ok(l) => l,
        Err(e) => {
            let all: Vec<_> = needs.iter().map(|n| n.any_of.join(" or ")).collect();
            c.warn(
                "feishu scopes",
                format!("cannot read the app's scopes: {e}"),
                format!(
                    "check by hand that these are granted: {}; {where_}",
                    all.join(", ")
                ),
            );
            return;
        }
    };
    let granted: Vec<&str> = listed
        .iter()
        .filter(|(_, g)| *g)
        .map(|(s, _)| s.as_str())
        .collect();
    let pending: Vec<&str> = listed
        .iter()
        .filter(|(_, g)| !*g)
        .map(|(s, _)| s.as_str())
        .collect();
    let mut ok = Vec::new();
    for n in &needs {
        if let Some(s) = n.any_of.iter().find(|s| granted.contains(s)) {
            ok.push(*s);
            continue;
        }
        let name = n.any_of.join(" or ");
        let asked = n.any_of.iter().any(|s| pending.contains(s));
        let detail = if asked {
            format!("`{name}` (to {}) is asked for but not granted yet", n.why)
        } else {
            format!("`{name}` (to {}) is missing", n.why)
        };
        let fix = if asked {
            format!(
                "publish a version of the app ({console} → your app → Version Management & \
                 Release) and have a tenant administrator approve it"
            )
        } else {
            format!("add `{}`: {where_}", n.any_of[0])
        };
        if n.required {
            c.fail("feishu scope", detail, fix);
        } else {
            c.warn("feishu scope", detail, fix);
        }
    }
    if !ok.is_empty() {
        c.ok("feishu scopes", format!("granted: {}", ok.join(", ")));
    }
}

/// The platform has no API an app can use to read its own event
/// subscriptions, so they are listed with where to set them.
fn events(app: &AppConfig, console: &str, c: &mut Checks) {
    let mode = if app.webhook.is_some() {
        "\"Send events to developer's server\" (request URL)"
    } else {
        "\"Receive events through persistent connection\""
    };
    c.info(
        "feishu events",
        format!(
            "not readable through the API; make sure {console} → your app → Events & Callbacks → \
             Event configuration uses {mode} and has the events {}; Callback configuration (same \
             mode) has {}",
            EVENTS.join(", "),
            CALLBACKS.join(", ")
        ),
    );
}
