//! Building images: decide whether a build is needed, run the host build, build with the
//! Docker API, push.
//!
//! Layout:
//! - [`inputs`]: which files an image depends on, and their digest (the build decision).
//! - [`context`] and [`dockerignore`]: the tar the engine builds from.
//! - [`docker`]: the engine, through bollard.
//! - [`registry`]: where images go and whether a tag is already there.
//!
//! Tags are derived from the input digest, so the same inputs always name the same image,
//! a deploy pins exactly what was built, and an image already in the registry is never
//! built again, not even after `tether up` restarts.

pub mod context;
pub mod docker;
pub mod dockerignore;
pub mod inputs;
pub mod registry;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::io::{AsyncBufReadExt, BufReader};

pub use self::{
    docker::{Engine, EngineVersion},
    inputs::HashCache,
    registry::{Registry, Source as RegistrySource},
};
use crate::config::{HostBuild, Image};

/// What can go wrong building an image, said so the developer knows where to look.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read the inputs of image `{image}`")]
    Inputs {
        image: String,
        /// Shared: the engine takes a digest once and hands its outcome to the build.
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("host build `{command}` failed ({status}){}", tail(output))]
    HostBuild {
        command: String,
        status: String,
        output: String,
    },
    #[error("Docker-API engine: {0}")]
    Engine(String),
    #[error("the Docker-API engine did not answer `{what}`")]
    EngineCall {
        what: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("building {reference} failed: {message}{}", tail(output))]
    Build {
        reference: String,
        message: String,
        output: String,
    },
    #[error("pushing {reference} failed: {message}")]
    Push { reference: String, message: String },
    #[error("registry: {0}")]
    Registry(String),
    #[error(transparent)]
    Access(#[from] crate::registry::AccessError),
}

fn tail(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!("\n{output}")
    }
}

/// The image a deploy should use, and how it came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub image: String,
    /// What manifests name: `registry/name:tag` as the cluster pulls it.
    pub reference: String,
    pub digest: String,
    /// `false` when the registry already had this exact content.
    pub rebuilt: bool,
    pub timings: BuildTimings,
}

/// Where a build's time went; the host build (usually a compiler) is kept apart from
/// tether's own work so the two are never confused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildTimings {
    pub digest: Duration,
    pub host_build: Duration,
    pub image_build: Duration,
    pub push: Duration,
}

/// Builds images for one registry through one engine. The engine is connected on first
/// use, so a project whose images are all in the registry needs no engine at all.
pub struct Builder {
    registry: Registry,
    engine: tokio::sync::OnceCell<Engine>,
}

impl Builder {
    pub fn new(registry: Registry) -> Builder {
        Builder {
            registry,
            engine: tokio::sync::OnceCell::new(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The tag for a digest: short enough to read, long enough never to collide in practice.
    pub fn tag_for(digest: &str) -> String {
        format!("tether-{}", &digest[..digest.len().min(20)])
    }

    /// Makes sure the registry holds `image` as its inputs are now; builds and pushes only
    /// when it does not, or when `force`d. `progress` receives build output lines.
    pub async fn ensure(
        &self,
        image: &Image,
        cache: &mut HashCache,
        force: bool,
        progress: impl FnMut(&str) + Send,
    ) -> Result<Built, BuildError> {
        let mut timings = BuildTimings::default();
        let started = Instant::now();
        let digest = inputs::digest(image, cache).map_err(|source| BuildError::Inputs {
            image: image.name.clone(),
            source: source.into(),
        })?;
        timings.digest = started.elapsed();
        self.ensure_at(image, digest, timings, force, progress)
            .await
    }

    /// [`Builder::ensure`] for inputs whose `digest` the caller already took (the engine
    /// takes one per image per round, in the same walk that planned the round).
    pub async fn ensure_at(
        &self,
        image: &Image,
        digest: String,
        mut timings: BuildTimings,
        force: bool,
        mut progress: impl FnMut(&str) + Send,
    ) -> Result<Built, BuildError> {
        let tag = Self::tag_for(&digest);
        let repository = format!("{}/{}", self.registry.push, image.name);
        let reference = format!("{}/{}:{tag}", self.registry.pull, image.name);
        let built = |rebuilt, timings| Built {
            image: image.name.clone(),
            reference: reference.clone(),
            digest: digest.clone(),
            rebuilt,
            timings,
        };
        if !force && self.registry.has_tag(&image.name, &tag).await? {
            return Ok(built(false, timings));
        }

        if let Some(host) = &image.host_build {
            let t = Instant::now();
            run_host_build(host, &mut progress).await?;
            timings.host_build = t.elapsed();
        }
        let engine = self.engine.get_or_try_init(Engine::connect).await?;
        let t = Instant::now();
        let (context, dockerfile) = (image.context.clone(), image.dockerfile.clone());
        let tar = tokio::task::spawn_blocking(move || context::pack(&context, &dockerfile))
            .await
            .map_err(|e| BuildError::Engine(format!("packing the context panicked: {e}")))?
            .map_err(|source| BuildError::Inputs {
                image: image.name.clone(),
                source: source.into(),
            })?;
        let local = format!("{repository}:{tag}");
        engine.build(tar, &local, &mut progress).await?;
        timings.image_build = t.elapsed();
        let t = Instant::now();
        let credentials = self.registry.access().push_credentials().await?;
        engine
            .push(&repository, &tag, credentials, &mut progress)
            .await?;
        timings.push = t.elapsed();
        Ok(built(true, timings))
    }
}

/// Runs the host build, streaming its output; keeps the last lines for the error. Also
/// what a live update runs before it syncs the build's output.
pub async fn run_host_build(
    host: &HostBuild,
    progress: &mut (impl FnMut(&str) + Send),
) -> Result<(), BuildError> {
    let command = host.argv.join(" ");
    let fail = |status: String, output: &[String]| BuildError::HostBuild {
        command: command.clone(),
        status,
        output: output.join("\n"),
    };
    let mut child = tokio::process::Command::new(&host.argv[0])
        .args(&host.argv[1..])
        .current_dir(&host.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}"), &[]))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(fail("no output pipes".into(), &[]));
    };
    // Merge both streams line by line; compilers report on stderr.
    let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for pipe in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        Box::new(stderr),
    ] {
        let line_tx = line_tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(line_tx);
    let mut last = Vec::new();
    while let Some(line) = line_rx.recv().await {
        progress(&line);
        last.push(line);
        if last.len() > 30 {
            last.remove(0);
        }
    }
    let status = child.wait().await.map_err(|e| fail(e.to_string(), &last))?;
    if status.success() {
        Ok(())
    } else {
        Err(fail(status.to_string(), &last))
    }
}
