//! Attachments in: the gateway downloads what users send into the
//! profile's media store ([`store`]), after the message is acknowledged.
//!
//! Order: the message is delivered to the worker first (it is journaled and
//! the chat sees its Queued reaction at once), the platform gets its ACK,
//! and only then does [`Fetcher`] download, under the limits the worker
//! stated in `Hello`, and write the message's manifest. The worker's run
//! waits for that manifest, so a slow download delays only the run that
//! needs it, never the first feedback or the ACK window.

pub(crate) mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fcx_proto::v1::{Attachment, AttachmentKind, MediaItem, MediaLimits, MediaManifest};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::feishu::http::ApiError;
use crate::feishu::resources::{ResourceType, Resources, failure_reason, human_bytes};
use store::MediaStore;

/// Messages whose downloads may wait; past this, their manifest says busy.
const QUEUE: usize = 256;
/// Messages downloading at once.
const PARALLEL: usize = 2;
/// How often unused entries are collected.
const COLLECT_EVERY: Duration = Duration::from_secs(3600);

/// One accepted message's attachments to download.
#[derive(Debug, Clone)]
pub(crate) struct FetchJob {
    pub(crate) message_id: String,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) limits: MediaLimits,
}

/// The ingress side: hands jobs to [`run`] without waiting.
#[derive(Clone)]
pub(crate) struct Fetcher {
    tx: mpsc::Sender<FetchJob>,
    store: MediaStore,
}

impl Fetcher {
    pub(crate) fn new(store: MediaStore) -> (Self, mpsc::Receiver<FetchJob>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Fetcher { tx, store }, rx)
    }

    /// Queue `job`. When the queue is full the message's manifest says so
    /// at once, so its run is not left waiting for a download that never
    /// comes.
    pub(crate) fn submit(&self, job: FetchJob) {
        if self.store.has_manifest(&job.message_id) {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(job)) = self.tx.try_send(job) {
            let items = job
                .attachments
                .iter()
                .map(|a| skipped(a, "fcx was too busy to download it; send it again later"))
                .collect();
            if let Err(e) = self.store.put_manifest(&MediaManifest {
                message_id: job.message_id.clone(),
                items,
            }) {
                tracing::error!(error = %e, "cannot write a media manifest");
            }
        }
    }
}

/// Downloads queued jobs until `stop`, [`PARALLEL`] at a time, and
/// collects unused store entries every hour.
pub(crate) async fn run(
    store: MediaStore,
    res: Resources,
    mut rx: mpsc::Receiver<FetchJob>,
    stop: CancellationToken,
) {
    let tasks = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let mut collect = tokio::time::interval(COLLECT_EVERY);
    loop {
        tokio::select! {
            _ = collect.tick() => {
                let s = store.clone();
                let c = tokio::task::spawn_blocking(move || s.collect(SystemTime::now(), store::MAX_AGE)).await;
                if let Ok(c) = c && c != store::Collected::default() {
                    tracing::info!(blobs = c.blobs, keys = c.keys, manifests = c.manifests, "collected unused media");
                }
            }
            job = rx.recv() => {
                let Some(job) = job else { break };
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let (store, res, stop) = (store.clone(), res.clone(), stop.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    tokio::select! {
                        m = fetch(&store, &res, &job) => {
                            if let Err(e) = store.put_manifest(&m) {
                                tracing::error!(error = %e, "cannot write a media manifest");
                            }
                        }
                        _ = stop.cancelled() => {}
                    }
                });
            }
            _ = stop.cancelled() => break,
        }
    }
    tasks.close();
    tasks.wait().await;
}

fn skipped(a: &Attachment, why: &str) -> MediaItem {
    MediaItem {
        key: a.key.clone(),
        skipped: why.into(),
        ..Default::default()
    }
}

/// Download (or find) every attachment of one message.
pub(crate) async fn fetch(store: &MediaStore, res: &Resources, job: &FetchJob) -> MediaManifest {
    let started = std::time::Instant::now();
    let lim = &job.limits;
    let mut items = Vec::with_capacity(job.attachments.len());
    let mut total = 0u64;
    // Only what was stored counts: a refused one leaves its place to the next.
    let mut kept = 0usize;
    for a in &job.attachments {
        let kind = a.kind();
        let item = if kind == AttachmentKind::Sticker {
            skipped(a, "stickers cannot be downloaded")
        } else if kept >= lim.max_per_run as usize {
            skipped(
                a,
                &format!("too many attachments (at most {} per run)", lim.max_per_run),
            )
        } else if let Some(s) = store.by_key(&a.key) {
            stored(s)
        } else if room(lim, total) == Some(0) {
            skipped(a, &over_run(lim))
        } else {
            let rt = if kind == AttachmentKind::Image {
                ResourceType::Image
            } else {
                ResourceType::File
            };
            // Never more than the run could still carry: what the worker
            // would refuse anyway is not downloaded and stored.
            let cap = room(lim, total).map_or(lim.max_file_bytes, |r| r.min(lim.max_file_bytes));
            match res.download(&job.message_id, &a.key, rt, cap).await {
                Ok(bytes) => {
                    let (s, key) = (store.clone(), a.key.clone());
                    match tokio::task::spawn_blocking(move || s.put(&key, &bytes)).await {
                        Ok(Ok(s)) => stored(s),
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "cannot store an attachment");
                            skipped(a, "fcx could not store it")
                        }
                        Err(_) => skipped(a, "fcx could not store it"),
                    }
                }
                Err(ApiError::TooLarge { .. }) if cap < lim.max_file_bytes => {
                    skipped(a, &over_run(lim))
                }
                Err(e) => {
                    tracing::info!(message_id = %job.message_id, error = %e, "attachment not downloaded");
                    skipped(a, &failure_reason(&e))
                }
            }
        };
        total += item.size;
        if item.skipped.is_empty() {
            kept += 1;
        }
        items.push(MediaItem {
            key: a.key.clone(),
            ..item
        });
    }
    tracing::info!(
        message_id = %job.message_id,
        attachments = items.len(),
        bytes = total,
        size = %human_bytes(total),
        ms = started.elapsed().as_millis() as u64,
        "attachments fetched"
    );
    MediaManifest {
        message_id: job.message_id.clone(),
        items,
    }
}

/// Bytes the message's run may still carry after `used`; `None` when the
/// worker states no such limit.
fn room(lim: &MediaLimits, used: u64) -> Option<u64> {
    (lim.max_run_bytes > 0).then(|| lim.max_run_bytes.saturating_sub(used))
}

/// The worker's own words for it (`fcx-worker`'s media policy).
fn over_run(lim: &MediaLimits) -> String {
    format!(
        "over the {} this run may carry",
        human_bytes(lim.max_run_bytes)
    )
}

fn stored(s: store::Stored) -> MediaItem {
    MediaItem {
        sha256: s.sha256,
        size: s.size,
        ..Default::default()
    }
}
