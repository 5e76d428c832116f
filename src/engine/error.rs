//! Why a resource did not get to ready in a round, kept typed with its cause so views can
//! say it in full and `--ci` can decide its exit.

use std::{fmt::Write as _, sync::Arc};

use crate::{build::BuildError, deploy::DeployError, shared::SharedError};

#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("image `{image}` did not build")]
    Build {
        image: String,
        #[source]
        source: Arc<BuildError>,
    },
    #[error("the build of `{image}` was abandoned")]
    Abandoned { image: String },
    #[error("cannot deploy")]
    Deploy(#[source] DeployError),
    /// Joining the shared instance was refused or failed.
    #[error("cannot use the shared instance")]
    Shared(#[source] Arc<SharedError>),
    /// The rollout's own words (image pull, crash loop, probe, timeout).
    #[error("{0}")]
    NotReady(String),
    #[error("cannot prepare live update: {0}")]
    LiveUpdate(String),
    #[error("no resource `{0}` in tether.toml")]
    NoResource(String),
    #[error("stopped before everything was ready")]
    Stopped,
}

impl RoundError {
    /// A refusal the user must resolve (a shared instance runs another version).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Shared(e) if e.is_bad_input())
    }
}

/// `error` and every cause below it, one after the other: what a developer reads.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut s = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let _ = write!(s, ": {c}");
        cause = c.source();
    }
    s
}
