//! The profiles fcxd serves: one unit each (its worker's supervisor and, in
//! daemon mode, its Feishu/Lark channel), started and stopped on their own.
//! A reload (SIGHUP or the admin `Reload` call) reads config.toml again and
//! touches only the profiles that were added, removed or changed: the others
//! keep their worker, connection and runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use fcx_config::app_lock::{AppLock, AppLockError};
use fcx_config::{Config, Home, Profile};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ingress::channel::ChannelStatus;
use crate::link::supervisor::{Phase, WorkerHandle};

/// One served profile.
pub(crate) struct Unit {
    pub(crate) profile: Profile,
    pub(crate) worker: Arc<WorkerHandle>,
    /// The Feishu/Lark channel's liveness; `None` without an app or on the
    /// console.
    pub(crate) channel: Option<ChannelStatus>,
    /// What the profile is reachable through: "console", "feishu", "lark".
    pub(crate) surface: Option<String>,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// The app id's lock across homes, held while the unit runs.
    app_lock: Mutex<Option<AppLock>>,
}

impl Unit {
    /// Stops the channel and the worker (its runs end as interrupted) and
    /// waits until both are gone and the event cursor is on disk.
    async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.worker.cursor().flush();
        self.app_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

/// What a reload did, by profile name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ReloadReport {
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
    pub(crate) restarted: Vec<String>,
    pub(crate) unchanged: Vec<String>,
    pub(crate) failed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    #[error("the console serves one profile; restart `fcxd --console` to pick up config changes")]
    Console,
    #[error("fcxd is stopping")]
    Stopping,
    #[error("config.toml was not applied (nothing changed): {0}")]
    Config(#[from] fcx_config::ConfigError),
    #[error("config.toml was not applied (nothing changed): {0}")]
    EnvNotTaken(String),
}

pub(crate) struct Fleet {
    home: Home,
    worker_bin: PathBuf,
    console: bool,
    /// `fcxd --profile P`: serve only that one.
    only: Option<String>,
    /// fcxd's own stop: every unit's token is a child of it.
    stop: CancellationToken,
    units: Mutex<BTreeMap<String, Arc<Unit>>>,
    /// One reload at a time, and none while fcxd shuts down.
    changing: tokio::sync::Mutex<()>,
}

impl Fleet {
    pub(crate) fn new(
        home: Home,
        worker_bin: PathBuf,
        console: bool,
        only: Option<String>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Fleet {
            home,
            worker_bin,
            console,
            only,
            stop,
            units: Mutex::new(BTreeMap::new()),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Unit>>> {
        self.units.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running units, in name order.
    pub(crate) fn units(&self) -> Vec<Arc<Unit>> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn unit(&self, name: &str) -> Option<Arc<Unit>> {
        self.lock().get(name).cloned()
    }

    /// The profiles this fcxd should serve from `config`.
    pub(crate) fn wanted(&self, config: &Config) -> Result<Vec<Profile>, fcx_config::ConfigError> {
        if let Some(p) = &self.only {
            return Ok(vec![config.profile(p)?.clone()]);
        }
        Ok(config.enabled_profiles().cloned().collect())
    }

    /// Takes the app id's lock (daemon mode, a profile with an app): no
    /// other profile, in this home or another, may serve the same app.
    pub(crate) fn lock_app(&self, profile: &Profile) -> Result<Option<AppLock>, AppLockError> {
        let Some(app) = profile.app.as_ref().filter(|_| !self.console) else {
            return Ok(None);
        };
        let holder = format!(
            "profile `{}` in {} (fcxd pid {})",
            profile.name,
            self.home.root().display(),
            std::process::id()
        );
        AppLock::acquire(
            &fcx_config::app_lock::lock_dir(&self.home),
            &app.app_id,
            &holder,
        )
        .map(Some)
    }

    /// Starts a unit for `profile` (its worker, and its channel in daemon
    /// mode), holding `app_lock` from [`Fleet::lock_app`].
    pub(crate) fn start(&self, profile: Profile, app_lock: Option<AppLock>) -> Arc<Unit> {
        let stop = self.stop.child_token();
        let tasks = TaskTracker::new();
        let worker = WorkerHandle::new(
            &profile.name,
            &self.home,
            self.worker_bin.clone(),
            stop.child_token(),
        );
        tasks.spawn(worker.clone().supervise());
        let mut channel = None;
        let mut surface = None;
        if self.console {
            surface = Some("console".to_string());
        } else {
            match &profile.app {
                Some(app) => {
                    let status = ChannelStatus::default();
                    channel = Some(status.clone());
                    surface = Some(app.tenant.as_str().to_string());
                    tasks.spawn(crate::ingress::channel::run(
                        profile.clone(),
                        app.clone(),
                        self.home.profile(&profile.name).dir(),
                        worker.clone(),
                        status,
                        stop.child_token(),
                    ));
                }
                None => tracing::warn!(
                    profile = %profile.name,
                    "profile has no [profiles.{}.app]: reachable only through `fcxd --console --profile {}`",
                    profile.name,
                    profile.name
                ),
            }
        }
        let unit = Arc::new(Unit {
            profile,
            worker,
            channel,
            surface,
            stop,
            tasks,
            app_lock: Mutex::new(app_lock),
        });
        self.lock().insert(unit.profile.name.clone(), unit.clone());
        unit
    }

    /// Reads config.toml again and applies it: removed and disabled profiles
    /// stop, changed ones restart, new ones start; the rest are not touched.
    /// A config that does not load changes nothing.
    pub(crate) async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        if self.console {
            return Err(ReloadError::Console);
        }
        let _one = self.changing.lock().await;
        if self.stop.is_cancelled() {
            return Err(ReloadError::Stopping);
        }
        let config = Config::load(&self.home)?;
        let wanted: BTreeMap<String, Profile> = self
            .wanted(&config)?
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        // fcxd took its secret variables out of its environment at start: a
        // variable named here for the first time cannot be read any more.
        fcx_config::env_secrets::check_taken(wanted.values()).map_err(ReloadError::EnvNotTaken)?;
        let mut report = ReloadReport::default();
        for unit in self.units() {
            let name = unit.profile.name.clone();
            match wanted.get(&name) {
                Some(p) if *p == unit.profile => report.unchanged.push(name),
                Some(_) => {
                    tracing::info!(profile = %name, "profile changed; restarting it");
                    self.stop_unit(&unit).await;
                    report.restarted.push(name);
                }
                None => {
                    tracing::info!(profile = %name, "profile removed or disabled; stopping it");
                    self.stop_unit(&unit).await;
                    report.removed.push(name);
                }
            }
        }
        for (name, p) in wanted {
            if report.unchanged.contains(&name) {
                continue;
            }
            let lock = match self.lock_app(&p) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(profile = %name, error = %e, "profile not started");
                    report.failed.push(format!("{name}: {e}"));
                    continue;
                }
            };
            if !report.restarted.contains(&name) {
                tracing::info!(profile = %name, "profile added; starting it");
                report.added.push(name.clone());
            }
            self.start(p, lock);
        }
        tracing::info!(?report, "config reloaded");
        Ok(report)
    }

    async fn stop_unit(&self, unit: &Arc<Unit>) {
        unit.stop().await;
        self.lock().remove(&unit.profile.name);
    }

    /// fcxd's shutdown (after its stop token was cancelled): waits for any
    /// reload in progress, then until every worker has stopped.
    pub(crate) async fn wait_workers_stopped(&self) {
        let _one = self.changing.lock().await;
        for unit in self.units() {
            while unit.worker.view().phase != Phase::Stopped {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }

    /// The end of fcxd's shutdown: every unit's tasks (channels included).
    pub(crate) async fn wait_all(&self) {
        for unit in self.units() {
            unit.tasks.close();
            unit.tasks.wait().await;
        }
    }
}
