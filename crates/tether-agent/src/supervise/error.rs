//! The supervisor's errors: what stops it from starting (exit 2 for bad arguments, 126 or
//! 127 when the app cannot be started, as a shell would, 1 otherwise), and why one update
//! failed in the state directory or at a target (the laptop reads the reason in the reply).

use std::{io, net::SocketAddr, path::PathBuf};

/// Why the supervisor could not start.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("bad supervise arguments")]
    Args(#[source] clap::Error),
    #[error("cannot use the state directory {}", dir.display())]
    State {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot watch for exited processes")]
    Reaper(#[source] io::Error),
    #[error("cannot start the app `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
}

impl SuperviseError {
    /// The exit code: the kubelet shows it, and a shell's convention reads best there.
    pub fn exit_code(&self) -> i32 {
        match self {
            SuperviseError::Args(e) => e.exit_code(),
            SuperviseError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
            SuperviseError::Spawn { .. } => 126,
            _ => 1,
        }
    }
}

/// Why an update could not be written or stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    BadRequest(String),
    #[error("cannot write {path}")]
    NotWritable {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the update ended after {got} of the {want} bytes of {path}: nothing was written")]
    Truncated { path: String, got: u64, want: u64 },
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub(super) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { what, path, source }
    }
}
