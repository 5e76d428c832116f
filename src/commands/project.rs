//! The project a command acts on, loaded from `-C DIR` as every command loads it.

use std::path::Path;

use anyhow::anyhow;

use super::Failure;
use crate::{
    cli::Target,
    cluster::{AllowList, Cluster},
    config::{FILE_NAME, Project},
};

/// Loads tether.toml; a config error is bad input (exit 2) and names file:line:col.
pub fn load(target: &Target) -> Result<Project, Failure> {
    Project::load(&target.dir).map_err(|e| Failure::BadInput(e.into()))
}

/// The cluster of `--context` (or the current one), if `allow` (the project's guard, a
/// profile's) lets it be changed.
pub async fn cluster(target: &Target, allow: &AllowList) -> Result<Cluster, Failure> {
    Cluster::connect_guarded(target.context.as_deref(), allow)
        .await
        .map_err(Failure::classify)
}

/// The project of the nearest tether.toml in `dir` or above it, where the context guard
/// finds its allow list: `intercept --profile` and `connect --profile` run in a service
/// folder but take no `-C`.
pub fn nearest(dir: &Path) -> Result<Project, Failure> {
    nearest_if_any(dir)?.ok_or_else(|| {
        Failure::BadInput(anyhow!(
            "--profile names a profile of tether.toml, and there is none in {} or above it",
            dir.display()
        ))
    })
}

/// The project of the nearest tether.toml in `dir` or above it, if there is one.
pub fn nearest_if_any(dir: &Path) -> Result<Option<Project>, Failure> {
    let start = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Some(root) = start.ancestors().find(|d| d.join(FILE_NAME).is_file()) else {
        return Ok(None);
    };
    Project::load(root)
        .map(Some)
        .map_err(|e| Failure::BadInput(e.into()))
}
