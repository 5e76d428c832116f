//! The change set the watcher hands to the engine: files that changed together, and when.

use std::{collections::BTreeSet, path::PathBuf, sync::Arc, time::Instant};

use super::error::WatchError;

/// Files that changed together.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub paths: BTreeSet<PathBuf>,
    /// Set when events were lost: `paths` then holds every file under the watched roots,
    /// so whatever changed is among them and the digests decide.
    pub rescan: Option<Rescan>,
    /// New folders that could not be watched (the inotify watch limit, for one): later
    /// changes in them go unseen, so the developer is told.
    pub unwatched: Vec<Arc<WatchError>>,
    /// When the first event of the set arrived.
    pub first_event: Instant,
    /// When the set was handed on: `settled - first_event` is the debounce cost.
    pub settled: Instant,
}

/// Why the watcher could not tell which files changed.
#[derive(Debug, Clone)]
pub enum Rescan {
    /// The kernel's event queue overflowed.
    Overflow,
    /// The watcher reported an error instead of events.
    Error(Arc<notify::Error>),
}

impl ChangeSet {
    /// Joins a set that queued up behind this one.
    pub fn merge(&mut self, later: ChangeSet) {
        self.paths.extend(later.paths);
        self.rescan = self.rescan.take().or(later.rescan);
        self.unwatched.extend(later.unwatched);
        self.settled = later.settled;
    }
}

impl std::fmt::Display for Rescan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rescan::Overflow => f.write_str("the file event queue overflowed"),
            Rescan::Error(e) => write!(f, "the file watcher failed: {e}"),
        }
    }
}
