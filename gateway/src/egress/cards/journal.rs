//! The run cards that are open, on disk. Workers outlive fcxd, and a new
//! fcxd (after a crash or an upgrade) replays each unfinished run from its
//! start: with this journal it continues the card the user already sees
//! instead of creating a second entity behind the same message (which the
//! platform's idempotency would show in place of nothing, leaving the first
//! card "Generating…" forever).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One open run card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OpenCard {
    pub(crate) card_id: String,
    /// When the current writer started.
    pub(crate) since_ms: i64,
    /// The sequence the current writer started from.
    pub(crate) sequence_from: u32,
}

impl OpenCard {
    /// A sequence above any the card's earlier writer can have used: a
    /// writer sends at most 10 operations a second (the platform's per-card
    /// limit; ours keeps to 5), and a margin covers clock steps.
    pub(crate) fn next_sequence(&self, now_ms: i64) -> u32 {
        let elapsed = u64::try_from(now_ms.saturating_sub(self.since_ms)).unwrap_or(0);
        let next = u64::from(self.sequence_from) + elapsed / 100 + 100;
        u32::try_from(next).unwrap_or(u32::MAX)
    }
}

/// Open run cards by run id, rewritten whole on each change (a handful of
/// entries: the runs in flight).
pub(crate) struct CardJournal {
    path: Option<PathBuf>,
    open: Mutex<HashMap<String, OpenCard>>,
}

impl CardJournal {
    /// Kept in memory only (tests, or no profile directory).
    pub(crate) fn in_memory() -> Self {
        CardJournal {
            path: None,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Loads `path`; a missing or unreadable file starts empty (said so).
    pub(crate) fn open(path: PathBuf) -> Self {
        let open = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable open-card journal; starting empty");
                HashMap::new()
            }),
            Err(_) => HashMap::new(),
        };
        CardJournal {
            path: Some(path),
            open: Mutex::new(open),
        }
    }

    pub(crate) fn get(&self, run_id: &str) -> Option<OpenCard> {
        self.lock().get(run_id).cloned()
    }

    pub(crate) fn insert(&self, run_id: &str, card: OpenCard) {
        let mut m = self.lock();
        m.insert(run_id.to_string(), card);
        self.save(&m);
    }

    pub(crate) fn remove(&self, run_id: &str) {
        let mut m = self.lock();
        if m.remove(run_id).is_some() {
            self.save(&m);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OpenCard>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, m: &HashMap<String, OpenCard>) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("tmp");
        let r = serde_json::to_vec(m)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the open-card journal");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_until_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("open-cards.json");
        let card = OpenCard {
            card_id: "c1".into(),
            since_ms: 1_000,
            sequence_from: 0,
        };
        CardJournal::open(path.clone()).insert("r1", card.clone());
        let j = CardJournal::open(path.clone());
        assert_eq!(j.get("r1"), Some(card));
        j.remove("r1");
        assert_eq!(CardJournal::open(path).get("r1"), None);
    }

    #[test]
    fn the_next_sequence_outruns_any_earlier_writer() {
        let card = OpenCard {
            card_id: "c1".into(),
            since_ms: 0,
            sequence_from: 40,
        };
        // 60 s at the platform's 10 operations a second.
        assert!(card.next_sequence(60_000) > 40 + 600);
    }
}
