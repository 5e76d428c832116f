//! The project a command acts on, loaded from `-C DIR` as every command loads it.

use super::Failure;
use crate::{
    cli::Target,
    cluster::{AllowList, Cluster},
    config::Project,
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
