//! Starts watching: the notify watcher over the roots, and the debounce task that reads it.

use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{change::ChangeSet, debounce, error::WatchError, folders::Watch};

/// Watches `roots` (folders walked, files watched through their folder) and sends change
/// sets on `change_tx` until `shutdown`. The returned handle adds roots later (a reloaded
/// `tether.toml` may name new ones).
pub fn spawn(
    roots: &[PathBuf],
    change_tx: mpsc::Sender<ChangeSet>,
    shutdown: CancellationToken,
) -> Result<Watch, WatchError> {
    start(roots, change_tx, shutdown).map(|(watch, _)| watch)
}

/// What notify's thread sends: events, errors and overflow notices alike.
pub(super) type RawTx = mpsc::UnboundedSender<notify::Result<notify::Event>>;

/// [`spawn`], also returning the sender notify's thread uses, so tests can report what the
/// kernel rarely does on demand (an overflow, a read error).
pub(super) fn start(
    roots: &[PathBuf],
    change_tx: mpsc::Sender<ChangeSet>,
    shutdown: CancellationToken,
) -> Result<(Watch, RawTx), WatchError> {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let watch = Watch::new(raw_tx.clone())?;
    watch.add(roots)?;
    tokio::spawn(debounce::run(raw_rx, watch.clone(), change_tx, shutdown));
    Ok((watch, raw_tx))
}
