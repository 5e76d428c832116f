//! Gathers notify's reports until the tree has been quiet for a moment, then hands on one
//! [`ChangeSet`], stamped with when the first report arrived: the start of the
//! save-to-serving clock. A report that events were lost (an overflow, an error) is never
//! dropped: the set becomes a rescan of every root.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use notify::EventKind;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    change::{ChangeSet, Rescan},
    error::WatchError,
    folders::Watch,
};

/// How long the tree must be quiet before a set is handed on. Editors write a file in
/// several steps within a few milliseconds; 30 ms joins them without being felt.
pub const QUIET: Duration = Duration::from_millis(30);
/// A set is handed on after this long even if events keep coming (a long `git checkout`).
pub const MAX_WAIT: Duration = Duration::from_millis(500);

/// One set in the making.
#[derive(Default)]
struct Pending {
    paths: BTreeSet<PathBuf>,
    rescan: Option<Rescan>,
    unwatched: Vec<Arc<WatchError>>,
}

impl Pending {
    fn take(&mut self, report: notify::Result<notify::Event>, watch: &Watch) {
        let event = match report {
            Ok(e) if e.need_rescan() => {
                self.rescan.get_or_insert(Rescan::Overflow);
                return;
            }
            Ok(e) => e,
            Err(e) => {
                self.rescan.get_or_insert(Rescan::Error(Arc::new(e)));
                return;
            }
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            match event.kind {
                EventKind::Create(_) if path.is_dir() => match watch.appeared(&path) {
                    Ok(files) => self.paths.extend(files),
                    // Gone again before it could be watched: nothing to watch.
                    Err(_) if !path.exists() => {}
                    Err(e) => self.unwatched.push(Arc::new(e)),
                },
                EventKind::Remove(_) => watch.removed(&path),
                _ => {}
            }
            self.paths.insert(path);
        }
    }

    fn finish(mut self, watch: &Watch, first_event: Instant) -> Option<ChangeSet> {
        if self.rescan.is_some() {
            match watch.rescan() {
                Ok(files) => self.paths.extend(files),
                Err(e) => self.unwatched.push(Arc::new(e)),
            }
        }
        if self.paths.is_empty() && self.rescan.is_none() && self.unwatched.is_empty() {
            return None;
        }
        Some(ChangeSet {
            paths: self.paths,
            rescan: self.rescan,
            unwatched: self.unwatched,
            first_event,
            settled: Instant::now(),
        })
    }
}

/// Runs until `shutdown`, until notify's thread is gone, or until the engine stops reading.
pub(super) async fn run(
    mut raw_rx: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    watch: Watch,
    change_tx: mpsc::Sender<ChangeSet>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = raw_rx.recv() => match r { Some(r) => r, None => return },
        };
        let first_event = Instant::now();
        let mut pending = Pending::default();
        pending.take(first, &watch);
        let deadline = tokio::time::Instant::from_std(first_event + MAX_WAIT);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(QUIET) => break,
                _ = tokio::time::sleep_until(deadline) => break,
                r = raw_rx.recv() => match r {
                    Some(r) => pending.take(r, &watch),
                    None => return,
                },
            }
        }
        if let Some(set) = pending.finish(&watch, first_event) {
            if change_tx.send(set).await.is_err() {
                return;
            }
        }
    }
}
