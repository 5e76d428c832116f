//! The watcher on real temporary trees: bursts, ignored trees, new folders, lost events.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use notify::EventKind;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ChangeSet, Rescan, spawn, start::start};
#[tokio::test]
async fn a_burst_of_writes_is_one_change_set_and_ignored_trees_are_not_watched() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().to_path_buf();
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::create_dir_all(d.join("target/debug")).unwrap();
    std::fs::write(d.join(".gitignore"), "/target\n").unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let watch = spawn(std::slice::from_ref(&d), tx, shutdown.clone()).unwrap();
    assert_eq!(watch.folders(), 2, "the root and src/, not target/");

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

/// Change sets until one holds `want`, or `None` after `limit`.
async fn until_seen(
    rx: &mut mpsc::Receiver<ChangeSet>,
    want: &Path,
    limit: Duration,
) -> Option<ChangeSet> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let set = tokio::time::timeout_at(deadline, rx.recv()).await.ok()??;
        if set.paths.contains(want) {
            return Some(set);
        }
    }
}

fn tree() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().canonicalize().unwrap();
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::write(d.join("src/a.rs"), "1").unwrap();
    (t, d)
}

#[tokio::test]
async fn files_in_folders_made_after_start_are_seen_even_when_written_at_once() {
    let (_t, d) = tree();
    let (tx, mut rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    spawn(std::slice::from_ref(&d), tx, shutdown.clone()).unwrap();

    // `mkdir -p` and a write straight after: the file exists before any watch on its
    // folder could have been added.
    std::fs::create_dir_all(d.join("src/new/deep")).unwrap();
    std::fs::write(d.join("src/new/deep/f.rs"), "x").unwrap();
    let first = d.join("src/new/deep/f.rs");
    assert!(
        until_seen(&mut rx, &first, Duration::from_secs(3))
            .await
            .is_some(),
        "a file written into a new folder at once was never reported"
    );
    // And later writes there are seen too: the new folders are watched.
    let later = d.join("src/new/deep/g.rs");
    std::fs::write(&later, "y").unwrap();
    assert!(
        until_seen(&mut rx, &later, Duration::from_secs(3))
            .await
            .is_some(),
        "a later write into a new folder was never reported"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn an_overflow_rescans_every_input() {
    let (_t, d) = tree();
    let (tx, mut rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let (_, raw_tx) = start(std::slice::from_ref(&d), tx, shutdown.clone()).unwrap();
    // What notify reports when the kernel's event queue overflowed: events were lost,
    // so what changed is unknown.
    raw_tx
        .send(Ok(
            notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)
        ))
        .unwrap();
    let set = until_seen(&mut rx, &d.join("src/a.rs"), Duration::from_secs(3)).await;
    let set = set.expect("an overflow was dropped: no rescan followed");
    assert!(matches!(set.rescan, Some(Rescan::Overflow)), "{set:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_watcher_error_rescans_every_input() {
    let (_t, d) = tree();
    let (tx, mut rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let (_, raw_tx) = start(std::slice::from_ref(&d), tx, shutdown.clone()).unwrap();
    raw_tx
        .send(Err(notify::Error::generic("inotify read failed")))
        .unwrap();
    let set = until_seen(&mut rx, &d.join("src/a.rs"), Duration::from_secs(3)).await;
    let set = set.expect("a watcher error was dropped: no rescan followed");
    assert!(
        matches!(&set.rescan, Some(Rescan::Error(e)) if e.to_string().contains("inotify read failed")),
        "{set:?}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_folder_removed_and_made_again_is_watched_again() {
    let (_t, d) = tree();
    let (tx, mut rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    spawn(std::slice::from_ref(&d), tx, shutdown.clone()).unwrap();
    std::fs::remove_dir_all(d.join("src")).unwrap();
    assert!(
        until_seen(&mut rx, &d.join("src"), Duration::from_secs(3))
            .await
            .is_some(),
        "the removal was reported"
    );
    std::fs::create_dir(d.join("src")).unwrap();
    // Reported with the folder, once it is watched again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = d.join("src/b.rs");
    std::fs::write(&again, "2").unwrap();
    assert!(
        until_seen(&mut rx, &again, Duration::from_secs(3))
            .await
            .is_some(),
        "a write into the folder made again was never reported"
    );
    shutdown.cancel();
}
