//! The resume cursor of one worker's events: the first event the consumer
//! has not handled, persisted in the profile's `gateway.cursor` so the next
//! fcxd resumes there. Only the consumer moves it ([`ResumeCursor::commit`]),
//! once it has handled the events; the supervisor only reconciles it with
//! the worker's log at every `Hello`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cursor file is rewritten at most this often (and on stop).
const SAVE_EVERY: Duration = Duration::from_millis(100);

struct Position {
    next: u64,
    /// The event log's epoch: bumped when the cursor is reset to a
    /// recreated log.
    generation: u64,
    dirty: bool,
    saved_at: Instant,
}

/// One worker's resume cursor and its file.
pub(crate) struct ResumeCursor {
    profile: String,
    dir: PathBuf,
    position: Mutex<Position>,
}

impl ResumeCursor {
    /// The cursor saved in `dir` (the profile's directory), or none yet.
    pub(crate) fn load(dir: PathBuf, profile: &str) -> Self {
        let (next, generation) = read(&dir.join(FILE)).unwrap_or((0, 0));
        ResumeCursor {
            profile: profile.to_string(),
            dir,
            position: Mutex::new(Position {
                next,
                generation,
                dirty: false,
                saved_at: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Position> {
        self.position.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first event not yet handled, and the epoch of the worker's event
    /// log (bumped, and kept, each time the log is found recreated).
    pub(crate) fn position(&self) -> (u64, u64) {
        let c = self.lock();
        (c.next, c.generation)
    }

    /// The consumer handled everything before `next`: move the cursor
    /// there (saved at most every [`SAVE_EVERY`], and on [`Self::flush`]).
    pub(crate) fn commit(&self, next: u64) {
        let save = {
            let mut c = self.lock();
            if c.next == next {
                return;
            }
            c.next = next;
            c.dirty = true;
            c.saved_at.elapsed() >= SAVE_EVERY
        };
        if save {
            self.flush();
        }
    }

    /// Writes the cursor file now if it changed since the last write.
    pub(crate) fn flush(&self) {
        let (next, epoch) = {
            let mut c = self.lock();
            if !c.dirty {
                return;
            }
            c.dirty = false;
            c.saved_at = Instant::now();
            (c.next, c.generation)
        };
        let path = self.dir.join(FILE);
        let tmp = path.with_extension("tmp");
        let r = std::fs::create_dir_all(&self.dir)
            .and_then(|_| std::fs::write(&tmp, format!("{next} {epoch}")))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            tracing::warn!(profile = %self.profile, error = %e, "cannot save the event cursor");
        }
    }

    /// First contact (no saved cursor) follows from now on; a cursor beyond
    /// the worker's log (its state.db was recreated) would silence the bot
    /// until new events pass it, so it is reset.
    pub(crate) fn reconcile(&self, last_seq: u64) {
        {
            let mut c = self.lock();
            if c.next == 0 {
                c.next = last_seq + 1;
            } else if last_seq + 1 < c.next {
                tracing::warn!(profile = %self.profile, cursor = c.next, last_seq, "the worker's event log is behind the saved cursor (state.db recreated?); following from its end");
                c.next = last_seq + 1;
                c.generation += 1;
            } else {
                return;
            }
            c.dirty = true;
        }
        self.flush();
    }
}

const FILE: &str = "gateway.cursor";

/// `next [epoch]`: the epoch counts the times the worker's event log was
/// found recreated.
fn read(path: &std::path::Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut it = text.split_whitespace();
    let next = it.next()?.parse().ok()?;
    let epoch = it.next().and_then(|e| e.parse().ok()).unwrap_or(0);
    Some((next, epoch))
}
