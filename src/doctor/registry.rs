//! Check 5: the registry images go to, asked from the laptop for `/v2/` through
//! [`crate::registry`]'s access, so the user's credentials and the token flow are those a
//! push uses: a registry that wants credentials the Docker config lacks fails with the
//! `docker login` that fixes it.

use std::time::Duration;

use super::{
    error::{DoctorError, within},
    report::Line,
};
use crate::build::{Registry, RegistrySource as Source};

pub const LAPTOP: &str = "registry from the laptop";

/// The HTTPS probe, a plain-HTTP retry for a loopback registry and a token fetch.
const LIMIT: Duration = Duration::from_secs(20);

/// Where the registry's name came from, for the line.
fn shown(source: Source) -> &'static str {
    match source {
        Source::Config => "tether.toml",
        Source::Env => "TETHER_REGISTRY",
        Source::ClusterAdvert => "the cluster's local-registry-hosting",
    }
}

/// The registry's line; the registry when it answers, for the check from the cluster.
pub async fn laptop(registry: &Registry, named: Source) -> Result<Line, DoctorError> {
    let host = registry.push.clone();
    let status = within(
        LIMIT,
        format!("registry {host}"),
        "start the registry: scripts/dev-cluster up (or check the registry's address)",
        async {
            registry
                .access()
                .send(reqwest::Method::GET, "/v2/", "application/json", "")
                .await
                .map(|r| r.status().as_u16())
                .map_err(|source| DoctorError::Registry {
                    host: host.clone(),
                    source,
                })
        },
    )
    .await?;
    if !(200..300).contains(&status) {
        return Err(DoctorError::NotARegistry { host, status });
    }
    let base = registry.access().base().await;
    Ok(Line::pass(
        LAPTOP,
        format!(
            "{host} (from {}) answers {base}/v2/ (HTTP {status})",
            shown(named)
        ),
    ))
}
