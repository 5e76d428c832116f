//! What can go wrong in a workshop run, and which of it is the user's input.

use std::path::PathBuf;

use crate::config::Location;

#[derive(Debug, thiserror::Error)]
pub enum WorkshopError {
    #[error("no workshop.toml in {dir} nor in {dir}/workspace-demo")]
    NotFound { dir: PathBuf },
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    #[error("{path}: cannot read or write the workshop's progress")]
    Progress {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the workshop's progress is not valid JSON (remove it or run --reset)")]
    ProgressParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("reset command `{command}` failed: {reason}")]
    Reset { command: String, reason: String },
    #[error("--step {step}: the workshop has steps 1 to {count}")]
    NoSuchStep { step: usize, count: usize },
    #[error("cannot use the terminal")]
    Terminal(#[source] std::io::Error),
}

impl WorkshopError {
    /// Exit 2: the steps file, the folder or a flag is wrong.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::NotFound { .. } | Self::Invalid { .. } | Self::NoSuchStep { .. }
        )
    }
}
