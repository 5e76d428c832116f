//! The Docker-API engine (Docker, or podman's compatible service), through bollard:
//! build an image from a packed context, push it. Progress lines go to a callback so the
//! caller decides where build output is shown.

use bollard::{
    Docker,
    query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder},
};
use futures::StreamExt;

use super::{BuildError, context::DOCKERFILE_IN_TAR};

/// What an engine says it is (`docker version`'s server part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// The platform's name (`Docker Engine - Community`, `Podman Engine`).
    pub product: String,
    pub version: String,
    pub api_version: String,
}

/// A connection to the engine named by `DOCKER_HOST` (or the platform default).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects and agrees on an API version first: podman serves an older API than
    /// bollard's default, and every later call depends on the agreed one.
    pub async fn connect() -> Result<Engine, BuildError> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let docker = Docker::connect_with_defaults()
            .map_err(|e| BuildError::Engine(format!("cannot connect to {host}: {e}")))?
            .negotiate_version()
            .await
            .map_err(|e| {
                BuildError::Engine(format!(
                    "no Docker-API engine answers at {host} ({e}); start one or set DOCKER_HOST"
                ))
            })?;
        Ok(Engine { docker })
    }

    /// Pings the engine and reads its version: what `tether doctor` shows of the engine
    /// `tether up` builds with.
    pub async fn describe(&self) -> Result<EngineVersion, BuildError> {
        let call = |what| move |source| BuildError::EngineCall { what, source };
        self.docker.ping().await.map_err(call("ping"))?;
        let v = self.docker.version().await.map_err(call("version"))?;
        // Podman names itself in its first component; its platform is the host's distro.
        let product = v
            .components
            .and_then(|c| c.into_iter().next())
            .map(|c| c.name)
            .or(v.platform.map(|p| p.name))
            .filter(|n| !n.is_empty());
        Ok(EngineVersion {
            product: product.unwrap_or_else(|| "Docker-API engine".into()),
            version: v.version.unwrap_or_else(|| "?".into()),
            api_version: v.api_version.unwrap_or_else(|| "?".into()),
        })
    }

    /// Builds `tar` (from [`super::context::pack`]) and tags the result `reference`.
    pub async fn build(
        &self,
        tar: Vec<u8>,
        reference: &str,
        mut progress: impl FnMut(&str),
    ) -> Result<(), BuildError> {
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(DOCKERFILE_IN_TAR)
            .t(reference)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut last_lines = Vec::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| BuildError::Build {
                reference: reference.to_owned(),
                message: e.to_string(),
                output: last_lines.join("\n"),
            })?;
            if let Some(detail) = info.error_detail {
                return Err(BuildError::Build {
                    reference: reference.to_owned(),
                    message: detail.message.unwrap_or_else(|| "build failed".into()),
                    output: last_lines.join("\n"),
                });
            }
            if let Some(line) = info
                .stream
                .as_deref()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
            {
                progress(line);
                last_lines.push(line.to_owned());
                if last_lines.len() > 20 {
                    last_lines.remove(0);
                }
            }
        }
        Ok(())
    }

    /// Pushes `repository:tag` to the registry the repository names, with the user's
    /// `credentials` for it when there are any.
    pub async fn push(
        &self,
        repository: &str,
        tag: &str,
        credentials: Option<bollard::auth::DockerCredentials>,
        mut progress: impl FnMut(&str),
    ) -> Result<(), BuildError> {
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let mut stream = self
            .docker
            .push_image(repository, Some(options), credentials);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| BuildError::Push {
                reference: format!("{repository}:{tag}"),
                message: e.to_string(),
            })?;
            if let Some(detail) = info.error_detail {
                return Err(BuildError::Push {
                    reference: format!("{repository}:{tag}"),
                    message: detail.message.unwrap_or_else(|| "push failed".into()),
                });
            }
            if let Some(status) = info.status.as_deref() {
                progress(status);
            }
        }
        Ok(())
    }

    /// Removes a local image; used by tests to leave the engine as they found it.
    pub async fn remove_image(&self, reference: &str) -> Result<(), BuildError> {
        self.docker
            .remove_image(
                reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| BuildError::Engine(format!("cannot remove {reference}: {e}")))
    }
}
