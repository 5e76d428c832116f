//! Watching the files a project depends on, and turning bursts of events into change sets.
//!
//! Folders are watched one by one, found with the same `.gitignore`-aware walk that decides
//! an image's inputs, so ignored trees (`target/`, `node_modules/`) are never entered and
//! never cost a watch. Events are gathered until the tree has been quiet for a moment,
//! then handed on as one set, stamped with when the first of them happened: the start of
//! the save-to-serving clock.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::build::inputs::walker;

/// Files that changed together.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub paths: BTreeSet<PathBuf>,
    /// When the first event of the set arrived.
    pub first_event: Instant,
    /// When the set was handed on: `settled - first_event` is the debounce cost.
    pub settled: Instant,
}

/// How long the tree must be quiet before a set is handed on. Editors write a file in
/// several steps within a few milliseconds; 30 ms joins them without being felt.
pub const QUIET: Duration = Duration::from_millis(30);
/// A set is handed on after this long even if events keep coming (a long `git checkout`).
pub const MAX_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {message}")]
pub struct WatchError {
    pub path: PathBuf,
    pub message: String,
}

/// Watches `roots` (folders walked, files watched through their folder) and sends change
/// sets on `change_tx` until `shutdown`. Returns the number of folders watched.
pub fn spawn(
    roots: &[PathBuf],
    change_tx: mpsc::Sender<ChangeSet>,
    shutdown: CancellationToken,
) -> Result<usize, WatchError> {
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<notify::Event>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let _ = event_tx.send(ev);
        }
    })
    .map_err(|e| WatchError {
        path: PathBuf::new(),
        message: e.to_string(),
    })?;
    let watcher = Arc::new(Mutex::new(watcher));
    let mut dirs = BTreeSet::new();
    for root in roots {
        if root.is_dir() {
            dirs.extend(folders_under(root));
        } else if let Some(parent) = root.parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    let count = dirs.len();
    {
        let mut w = watcher.lock().map_err(|_| WatchError {
            path: PathBuf::new(),
            message: "watcher lock poisoned".into(),
        })?;
        for dir in &dirs {
            w.watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| WatchError {
                    path: dir.clone(),
                    message: e.to_string(),
                })?;
        }
    }
    let input_roots: Vec<PathBuf> = roots.iter().filter(|r| r.is_dir()).cloned().collect();
    tokio::spawn(async move {
        // Keeps the watcher alive as long as this task runs.
        let watcher = watcher;
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = event_rx.recv() => match e { Some(e) => e, None => return },
            };
            let first_event = Instant::now();
            let mut paths = BTreeSet::new();
            let take = |ev: notify::Event, paths: &mut BTreeSet<PathBuf>| {
                if matches!(ev.kind, EventKind::Access(_)) {
                    return;
                }
                for p in ev.paths {
                    // A new folder inside a watched tree is watched too, unless ignored.
                    if matches!(ev.kind, EventKind::Create(_))
                        && p.is_dir()
                        && input_roots.iter().any(|r| p.starts_with(r))
                    {
                        if let Ok(mut w) = watcher.lock() {
                            for d in folders_under(&p) {
                                let _ = w.watch(&d, RecursiveMode::NonRecursive);
                            }
                        }
                    }
                    paths.insert(p);
                }
            };
            take(first, &mut paths);
            let deadline = tokio::time::Instant::from_std(first_event + MAX_WAIT);
            loop {
                let quiet = tokio::time::sleep(QUIET);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = quiet => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                    e = event_rx.recv() => match e {
                        Some(e) => take(e, &mut paths),
                        None => return,
                    },
                }
            }
            if paths.is_empty() {
                continue;
            }
            let set = ChangeSet {
                paths,
                first_event,
                settled: Instant::now(),
            };
            if change_tx.send(set).await.is_err() {
                return;
            }
        }
    });
    Ok(count)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_writes_is_one_change_set_and_ignored_trees_are_not_watched() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().to_path_buf();
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::create_dir_all(d.join("target/debug")).unwrap();
        std::fs::write(d.join(".gitignore"), "/target\n").unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let watched = spawn(std::slice::from_ref(&d), tx, shutdown.clone()).unwrap();
        assert_eq!(watched, 2, "the root and src/, not target/");

        std::fs::write(d.join("src/a.rs"), "1").unwrap();
        std::fs::write(d.join("src/b.rs"), "2").unwrap();
        std::fs::write(d.join("target/debug/x"), "ignored").unwrap();
        let set = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(set.paths.contains(&d.join("src/a.rs")), "{set:?}");
        assert!(set.paths.contains(&d.join("src/b.rs")), "{set:?}");
        assert!(
            !set.paths.iter().any(|p| p.starts_with(d.join("target"))),
            "{set:?}"
        );
        assert!(set.settled >= set.first_event);
        shutdown.cancel();
    }
}
