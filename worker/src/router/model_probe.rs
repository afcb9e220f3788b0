//! `/doctor`'s model-API line: does the endpoint the profile's Codex uses
//! answer? (fcxctl doctor makes the same check from outside the worker.)

use std::time::Duration;

use fcx_config::model_endpoint::ModelEndpoint;

/// Long enough for a slow TLS handshake, short enough for a chat answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The doctor line's value: `Ok` when any HTTP answer came (a 401 without
/// a key is an answer), `Err` with the cause and the fix otherwise. No
/// credential is sent.
pub(super) async fn check(endpoint: Option<ModelEndpoint>) -> Result<String, String> {
    let Some(e) = endpoint else {
        return Ok("the provider's base_url is in no config fcx reads; not checked".into());
    };
    let sent = match reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(PROBE_TIMEOUT)
        .build()
    {
        Ok(http) => http.get(e.probe_url()).send().await,
        Err(err) => return Err(format!("cannot check {}: {err}", e.base_url)),
    };
    match sent {
        Ok(r) => Ok(format!(
            "{} answers (HTTP {})",
            e.base_url,
            r.status().as_u16()
        )),
        Err(err) => {
            let why = if err.is_timeout() {
                format!("no answer within {} s", PROBE_TIMEOUT.as_secs())
            } else {
                let mut cause: &(dyn std::error::Error + 'static) = &err;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                cause.to_string()
            };
            Err(format!(
                "{} does not answer ({why}), so runs fail; fix: {}",
                e.base_url,
                e.fix()
            ))
        }
    }
}
