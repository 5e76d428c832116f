//! The folders under watch. One notify watch per folder (never recursive), found with the
//! walk that decides an image's inputs, so an ignored tree is never entered. Folders that
//! appear later join with the files already in them: a `mkdir -p` followed at once by a
//! write finishes before any watch on the new folder could exist.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use notify::{RecursiveMode, Watcher as _};

use super::{error::WatchError, start::RawTx};
use crate::build::inputs::walker;

/// The watcher and what it watches; cheap to clone, shared by the debounce task and the
/// engine (which adds roots when `tether.toml` changes).
#[derive(Clone)]
pub struct Watch {
    inner: Arc<Mutex<Folders>>,
}

struct Folders {
    watcher: notify::RecommendedWatcher,
    /// Folders with a watch on them.
    watched: BTreeSet<PathBuf>,
    /// Roots that are folders: new folders below them are watched, a rescan walks them.
    trees: BTreeSet<PathBuf>,
    /// Roots that are files, watched through their folder.
    files: BTreeSet<PathBuf>,
}

impl Watch {
    pub(super) fn new(raw_tx: RawTx) -> Result<Watch, WatchError> {
        let watcher = notify::recommended_watcher(move |res| {
            // The receiver is gone only once the session has ended.
            let _ = raw_tx.send(res);
        })
        .map_err(|source| WatchError::Start { source })?;
        Ok(Watch {
            inner: Arc::new(Mutex::new(Folders {
                watcher,
                watched: BTreeSet::new(),
                trees: BTreeSet::new(),
                files: BTreeSet::new(),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Folders> {
        // Nothing panics while holding the lock; a poisoned one still holds valid sets.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `roots` too (folders walked, files through their folder).
    pub fn add(&self, roots: &[PathBuf]) -> Result<(), WatchError> {
        let mut f = self.lock();
        for root in roots {
            if root.is_dir() {
                f.trees.insert(root.clone());
                for dir in folders_under(root) {
                    f.watch(dir)?;
                }
            } else {
                f.files.insert(root.clone());
                if let Some(parent) = root.parent() {
                    f.watch(parent.to_path_buf())?;
                }
            }
        }
        Ok(())
    }

    /// How many folders are watched.
    pub fn folders(&self) -> usize {
        self.lock().watched.len()
    }

    /// A folder appeared at `dir`: watches it and the folders below it, and returns the
    /// files already there. Nothing outside the watched trees is entered.
    pub(super) fn appeared(&self, dir: &Path) -> Result<Vec<PathBuf>, WatchError> {
        let mut f = self.lock();
        if !f.trees.iter().any(|t| dir.starts_with(t)) || f.watched.contains(dir) {
            return Ok(Vec::new());
        }
        let mut files = Vec::new();
        for entry in walker(dir).build().filter_map(Result::ok) {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            let path = entry.into_path();
            if is_dir {
                f.watch(path)?;
            } else {
                files.push(path);
            }
        }
        Ok(files)
    }

    /// `path` was removed: a folder there loses its watch (the kernel dropped it), so a
    /// folder made again at the same place is watched again.
    pub(super) fn removed(&self, path: &Path) {
        self.lock().watched.retain(|w| !w.starts_with(path));
    }

    /// Events were lost: walks every root again, watches what is not watched yet, and
    /// returns every file, as any of them may have changed.
    pub(super) fn rescan(&self) -> Result<BTreeSet<PathBuf>, WatchError> {
        let mut f = self.lock();
        let mut files: BTreeSet<PathBuf> = f.files.iter().filter(|p| p.exists()).cloned().collect();
        let trees: Vec<PathBuf> = f.trees.iter().cloned().collect();
        for tree in trees {
            for entry in walker(&tree).build().filter_map(Result::ok) {
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                let path = entry.into_path();
                if is_dir {
                    f.watch(path)?;
                } else {
                    files.insert(path);
                }
            }
        }
        Ok(files)
    }
}

impl Folders {
    fn watch(&mut self, dir: PathBuf) -> Result<(), WatchError> {
        if self.watched.contains(&dir) {
            return Ok(());
        }
        self.watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Folder {
                path: dir.clone(),
                source,
            })?;
        self.watched.insert(dir);
        Ok(())
    }
}

/// `root` and every folder below it that `.gitignore` does not exclude.
fn folders_under(root: &Path) -> Vec<PathBuf> {
    walker(root)
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_dir()))
        .map(ignore::DirEntry::into_path)
        .collect()
}
