//! What can fail when watching. Every variant is a failure of this machine (exit 1): the
//! paths come from a `tether.toml` that already loaded.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot start the file watcher")]
    Start {
        #[source]
        source: notify::Error,
    },
    #[error("cannot watch {}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}
