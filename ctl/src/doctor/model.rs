//! The model API: does the endpoint the profile's Codex uses answer? Codex
//! retries an unreachable one without end, so this is the check that tells
//! "runs fail with `could not reach the model API`" apart from the rest.

use std::time::Duration;

use fcx_config::model_endpoint::{self, ModelEndpoint};
use fcx_config::{Home, Profile};

use super::Checks;

/// Long enough for a slow TLS handshake, short enough for a doctor.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn endpoint(home: &Home, p: &Profile, c: &mut Checks) {
    let Some(e) = model_endpoint::resolve(p, home) else {
        c.info(
            "model api",
            "the provider's base_url is in no config fcx reads; not checked",
        );
        return;
    };
    match answers(&e).await {
        Ok(status) => c.ok(
            "model api",
            format!("{} answers (HTTP {status})", e.base_url),
        ),
        Err(why) => c.fail(
            "model api",
            format!(
                "{} does not answer ({why}); runs fail after runs.model_unreachable_secs",
                e.base_url
            ),
            e.fix(),
        ),
    }
}

/// Any HTTP answer counts (401 without a key is an answer): only a
/// transport failure fails. No credential is sent.
async fn answers(e: &ModelEndpoint) -> Result<u16, String> {
    let http = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    match http.get(e.probe_url()).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(err) if err.is_timeout() => {
            Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs()))
        }
        Err(err) => Err(root_cause(&err)),
    }
}

/// The innermost error ("Connection refused (os error 111)"), which says
/// more than reqwest's "error sending request for url".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}
