//! What stops a deploy, keeping its cause.

use std::{path::PathBuf, sync::Arc};

use super::{ApplyError, manifest};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    /// A source read once for the round, and shared with its plan.
    #[error(transparent)]
    Read(Arc<manifest::ManifestError>),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Live(#[from] crate::live::inject::InjectError),
    #[error("cannot write the record of applied objects at {path}")]
    Record {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
