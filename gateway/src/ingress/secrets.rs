//! A channel's own secrets (the app secret, a webhook's keys), resolved
//! off the async threads.

use tokio_util::sync::CancellationToken;

/// Secret references resolved off the async threads: an `exec:` one runs a
/// command (up to its 10 s timeout) and a `keystore:` one derives its key
/// with Argon2id. `None` when `stop` comes first.
pub(crate) async fn off_thread<T: Send + 'static>(
    stop: &CancellationToken,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Option<Result<T, String>> {
    tokio::select! {
        r = tokio::task::spawn_blocking(f) => {
            Some(r.unwrap_or_else(|e| Err(format!("reading the secret failed: {e}"))))
        }
        () = stop.cancelled() => None,
    }
}

pub(crate) fn webhook_keys(
    hook: &fcx_config::WebhookConfig,
) -> Result<crate::ingress::webhook::WebhookKeys, String> {
    let read = |r: &Option<fcx_config::SecretRef>, what: &str| {
        r.as_ref()
            .map(|r| {
                r.resolve()
                    .map_err(|e| format!("cannot read the webhook {what}: {e}"))
            })
            .transpose()
    };
    Ok(crate::ingress::webhook::WebhookKeys {
        encrypt_key: read(&hook.encrypt_key, "encrypt key")?,
        verification_token: read(&hook.verification_token, "verification token")?,
    })
}
