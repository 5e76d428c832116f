//! Watching the files a project depends on, and turning bursts of events into change sets.
//!
//! Layout:
//! - [`change`]: the [`ChangeSet`] handed to the engine, and why a set may be a rescan.
//! - [`folders`]: the watched folders, found with the same `.gitignore`-aware walk that
//!   decides an image's inputs, so ignored trees (`target/`, `node_modules/`) never cost a
//!   watch; new folders join as they appear, with the files already in them.
//! - [`debounce`]: gathers events until the tree is quiet, turns lost events (a queue
//!   overflow, a watcher error) into a rescan, and hands on one set.
//! - [`error`]: what can fail when watching.
//!
//! Data flows notify's thread → an unbounded channel → the debounce task → `change_tx`.

mod change;
mod debounce;
mod error;
mod folders;
#[cfg(test)]
mod tests;

pub use self::{
    change::{ChangeSet, Rescan},
    debounce::{MAX_WAIT, QUIET},
    error::WatchError,
    folders::Watch,
};

use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
type RawTx = mpsc::UnboundedSender<notify::Result<notify::Event>>;

/// [`spawn`], also returning the sender notify's thread uses, so tests can report what the
/// kernel rarely does on demand (an overflow, a read error).
fn start(
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
