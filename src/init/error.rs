//! The errors of `tether init`; all but a failed read or write are the user's to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{} already exists\n  hint: edit it, or pass --force to write a new one over it",
        path.display()
    )]
    Exists { path: PathBuf },
    #[error(
        "no Dockerfile in {}\n  hint: tether init needs a file named Dockerfile (or Dockerfile.NAME) beside the manifests",
        dir.display()
    )]
    NoDockerfile { dir: PathBuf },
    #[error(
        "no Kubernetes manifests in {}{skipped}\n  hint: tether init reads YAML files in the folder and in k8s/, manifests/ and deploy/",
        dir.display()
    )]
    NoManifests {
        dir: PathBuf,
        /// The YAML files that were read but hold no Kubernetes object, and why.
        skipped: String,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// Whether the user's input was wrong (exit code 2) rather than something failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Exists { .. } | Self::NoDockerfile { .. } | Self::NoManifests { .. }
        )
    }
}
