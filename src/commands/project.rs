//! The project a command acts on, loaded from `-C DIR` as every command loads it.

use super::Failure;
use crate::{cli::Target, config::Project};

/// Loads tether.toml; a config error is bad input (exit 2) and names file:line:col.
pub fn load(target: &Target) -> Result<Project, Failure> {
    Project::load(&target.dir).map_err(|e| Failure::BadInput(e.into()))
}
