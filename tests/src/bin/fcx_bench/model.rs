//! What answers the fault matrix's messages (issue 14, point 1): the real
//! Codex CLI (the pinned 0.169.0) talking to the mock model on 127.0.0.1,
//! so a kill lands in a real `codex exec` with a real command running; or
//! the scripted fake codex, for the rows whose fault is Codex's own
//! misbehaviour (garbage on its stdout cannot be had from the real one)
//! and where `--fake-codex` asks (a machine without the CLI).
//!
//! A row's message says what the run does in words both understand: the
//! mock answers `RUN: cmd` with that command, then with its output
//! (`Command done. Output: …`); the fake codex plays a scenario file.

use std::path::{Path, PathBuf};

use fcx_tests::MockResponses;
use fcx_tests::fake_feishu::{FakeFeishu, Redelivery};

use super::FeishuRig;
use super::faults::ANSWER;

#[derive(Clone)]
pub(super) enum Model {
    /// The real Codex CLI at this path, a mock model per rig.
    Real(PathBuf),
    /// The scripted fake codex, playing the scenarios in this directory.
    Fake(PathBuf),
}

impl Model {
    /// The real CLI unless `fake`; `scenarios` for the fake's rows. Fails
    /// with how to install the CLI when it is missing.
    pub(super) fn new(fake: bool, scenarios: &Path) -> anyhow::Result<Self> {
        if fake {
            return Ok(Model::Fake(scenarios.to_path_buf()));
        }
        fcx_tests::try_real_codex()
            .map(Model::Real)
            .map_err(|why| anyhow::anyhow!("{why}; or pass --fake-codex"))
    }

    pub(super) fn is_real(&self) -> bool {
        matches!(self, Model::Real(_))
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Model::Real(_) => "codex-cli 0.169.0 + mock model",
            Model::Fake(_) => "fake codex",
        }
    }

    /// A message whose run works about 0.3 s (where the kills land), then
    /// answers [`ANSWER`]. `label` tells the rows' messages apart.
    pub(super) fn work(&self, label: &str) -> String {
        self.work_ms(label, 300)
    }

    /// [`Model::work`] for `ms` (the fake has scenario files `fm` for
    /// 300 ms and `ro` for longer, written by the rows).
    pub(super) fn work_ms(&self, label: &str, ms: u64) -> String {
        match self {
            Model::Real(_) => format!(
                "{label}\nRUN: sleep {}.{:03} && echo {ANSWER}",
                ms / 1000,
                ms % 1000
            ),
            Model::Fake(_) if ms == 300 => format!("FAKE:fm {label}"),
            Model::Fake(_) => format!("FAKE:ro {label}"),
        }
    }

    /// A message whose run leaves a text file and a PNG in its chat's
    /// outbox (the folder the prompt names, sent after the answer), then
    /// answers [`ANSWER`] (the fake plays the scenario `fo`, written by the
    /// rows).
    pub(super) fn outbox(&self, label: &str) -> String {
        match self {
            Model::Real(_) => format!(
                "{label}\nRUN: mkdir -p {{OUTBOX}} && printf hi > {{OUTBOX}}/r1.txt && \
                 printf '\\211PNG\\r\\n\\032\\n0000IHDR' > {{OUTBOX}}/p1.png && echo {ANSWER}"
            ),
            Model::Fake(_) => format!("FAKE:fo {label}"),
        }
    }

    /// A message whose run stalls until stopped (or its idle timeout):
    /// the mock holds the model's stream open without a word.
    pub(super) fn stall(&self, label: &str) -> String {
        match self {
            Model::Real(_) => format!("{label}\nSTALL"),
            Model::Fake(_) => format!("FAKE:stall {label}"),
        }
    }

    /// A rig on a new fake platform (with `redelivery`).
    pub(super) async fn rig(
        &self,
        bins: &Path,
        runs: &str,
        app_extra: &str,
        env: &[(&str, &Path)],
        redelivery: Redelivery,
    ) -> anyhow::Result<FeishuRig> {
        let fake = FakeFeishu::builder().redelivery(redelivery).start().await?;
        self.rig_on(fake, bins, runs, app_extra, env).await
    }

    /// A rig on a fake platform the row configured.
    pub(super) async fn rig_on(
        &self,
        fake: FakeFeishu,
        bins: &Path,
        runs: &str,
        app_extra: &str,
        env: &[(&str, &Path)],
    ) -> anyhow::Result<FeishuRig> {
        match self {
            Model::Real(codex) => {
                let mock = MockResponses::start().await?;
                FeishuRig::start_inner(
                    fake,
                    bins,
                    runs,
                    app_extra,
                    env,
                    "exec",
                    Some((codex, mock)),
                )
                .await
            }
            Model::Fake(scenarios) => {
                let mut env = env.to_vec();
                env.push(("FAKE_CODEX_SCENARIOS", scenarios));
                FeishuRig::start_on(fake, bins, runs, app_extra, &env).await
            }
        }
    }
}

/// Codex turns started so far on the rig: requests to the mock model that
/// open a turn (the last input item is the user's, not a command's
/// output), or the fake codex's invocation records.
pub(super) fn turns(r: &FeishuRig) -> usize {
    match &r.mock {
        Some(mock) => mock
            .requests()
            .iter()
            .filter(|q| q.method == "POST" && q.path.ends_with("/responses"))
            .filter(|q| {
                let last = q.body["input"]
                    .as_array()
                    .and_then(|items| items.last())
                    .and_then(|i| i["type"].as_str())
                    .unwrap_or_default();
                !last.ends_with("_output")
            })
            .count(),
        None => std::fs::read_dir(&r.home.fake_log)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0),
    }
}

/// `[profiles.default.codex]` keys that point the real CLI at the mock
/// model at `base_url`. The stream idle timeout is long: a stalled run
/// must stay running until stopped, as a slow real model would.
pub(super) fn real_codex_keys(base_url: &str) -> String {
    let mut keys = format!(
        "\nmodel = {}\n[profiles.default.codex.config]\n",
        fcx_tests::toml_string(fcx_tests::MOCK_MODEL)
    );
    for (k, v) in fcx_tests::mock_provider_overrides(base_url) {
        let v = if k.ends_with("stream_idle_timeout_ms") {
            "600000".to_owned()
        } else {
            v
        };
        keys.push_str(&format!("\"{k}\" = {v}\n"));
    }
    keys
}
