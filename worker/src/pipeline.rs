//! The worker's data path, assembled: router → scheduler → run driver, over
//! the shared context. Owns their start (recovering what a previous worker
//! left) and their orderly end.

use std::sync::Arc;

use fcx_config::{Home, Profile};
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::context::Ctx;
use crate::events::EventBus;
use crate::router::{Deps, Router};
use crate::run::RunDriver;
use crate::runner::Runner;
use crate::scheduler::Scheduler;
use crate::store::{Store, StoreError};

pub(crate) struct Pipeline {
    ctx: Arc<Ctx>,
    catalog: Arc<Catalog>,
    driver: Arc<RunDriver>,
    router: Arc<Router>,
    scheduler: Arc<Scheduler>,
}

impl Pipeline {
    /// `shutdown` ends every run (and scheduling) when cancelled.
    pub(crate) fn new(
        profile: Profile,
        home: Home,
        store: Arc<Store>,
        bus: EventBus,
        runner: Arc<dyn Runner>,
        shutdown: CancellationToken,
    ) -> Self {
        let ctx = Arc::new(Ctx::new(profile, home, store, bus, runner.name()));
        let catalog = Arc::new(Catalog::new(ctx.clone()));
        let driver = Arc::new(RunDriver::new(ctx.clone(), catalog.clone(), runner));
        let scheduler = Arc::new(Scheduler::new(ctx.clone(), driver.clone(), shutdown));
        let router = Arc::new(Router::new(Deps::new(
            ctx.clone(),
            catalog.clone(),
            scheduler.clone(),
        )));
        Pipeline {
            ctx,
            catalog,
            driver,
            router,
            scheduler,
        }
    }

    /// Settle what a previous worker left behind, then start scheduling.
    ///
    /// Runs it left `running` end as "interrupted (worker restarted)" and
    /// their messages run once more (not a third time); messages it had
    /// accepted but not started are queued again and run exactly once.
    pub(crate) fn start(&self) -> Result<(), StoreError> {
        self.router.gate().reload()?;
        if let Err(e) = self.catalog.prune() {
            tracing::warn!(error = %e, "cannot prune the session catalog");
        }
        crate::staging::collect_garbage(
            &self.ctx.home.profile(&self.ctx.profile.name).outgoing_dir(),
            crate::staging::KEEP,
        );
        self.driver.recover_orphans()?;
        self.scheduler.start(self.ctx.store.journal().queued()?);
        Ok(())
    }

    pub(crate) fn router(&self) -> Arc<Router> {
        self.router.clone()
    }

    pub(crate) fn scheduler(&self) -> Arc<Scheduler> {
        self.scheduler.clone()
    }

    /// Stop every run (they end as interrupted), stop scheduling, and wait
    /// until every run has reported its end.
    pub(crate) async fn shutdown(&self) {
        self.scheduler.shutdown().await;
        self.driver.shutdown_runner().await;
    }
}
