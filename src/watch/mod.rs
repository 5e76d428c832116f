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
//! - `start`: ties them together, [`spawn`].
//!
//! Data flows notify's thread → an unbounded channel → the debounce task → `change_tx`.

mod change;
mod debounce;
mod error;
mod folders;
mod start;
#[cfg(test)]
mod tests;

pub use self::{
    change::{ChangeSet, Rescan},
    debounce::{MAX_WAIT, QUIET},
    error::WatchError,
    folders::Watch,
    start::spawn,
};
