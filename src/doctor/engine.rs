//! Check 4: the Docker-API engine `tether up` builds with, connected the same way
//! ([`Engine::connect`]: `DOCKER_HOST` or the platform's socket), pinged, and its version.

use std::time::Duration;

use super::{
    error::{DoctorError, within},
    report::Line,
};
use crate::build::Engine;

pub const ENGINE: &str = "Docker API";

const LIMIT: Duration = Duration::from_secs(10);

pub async fn engine() -> Result<Line, DoctorError> {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let version = within(
        LIMIT,
        format!("the engine at {host}"),
        "check the engine at DOCKER_HOST (`docker version`), or restart it",
        async {
            let engine = Engine::connect().await.map_err(DoctorError::Engine)?;
            engine.describe().await.map_err(DoctorError::Engine)
        },
    )
    .await?;
    Ok(Line::pass(
        ENGINE,
        format!(
            "{} {} at {host} (API {})",
            version.product, version.version, version.api_version
        ),
    ))
}
