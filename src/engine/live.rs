//! Live update in the engine: what the session knows of supervised containers, how a
//! deploy gets the supervisor, and how a planned sync reaches every pod.
//!
//! A sync runs the image's host build (if any), hashes the files the rules cover, and
//! sends each running pod's supervisor what that container needs (see
//! [`files::needed`]), over the API server's port-forward to the supervisor's port.
//! Pods that appear later (a scale-up, a replaced pod) get the same from [`Live::keep`],
//! so no pod serves the old code once a sync was made.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{OnceCell, mpsc};

use super::{event::Event, plan::live::Running};
use crate::{
    build::{BuildError, Registry, registry::ImageEntry, run_host_build},
    config::{Image, Project, Resource},
    intercept::secret,
    kube::{PodSet, port},
    live::{
        FileUpdate, LiveError, RunStep, Supervisor, Update,
        files::{self, Covered, Held},
        inject::{Injection, Supervised},
        wire::CONTROL_PORT,
    },
};

/// How long opening a port-forward to a supervisor may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an update may take in the pod: its transfer, `run` steps (each bounded there)
/// and the restart until the app's ports answer.
const APPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a sync did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the host build failed")]
    HostBuild(#[source] BuildError),
    #[error("cannot read the files the sync rules cover")]
    Files(#[source] std::io::Error),
    #[error("no running pod of `{0}` to sync into")]
    NoPods(String),
    #[error("the supervisor in pod {pod} cannot be reached: {reason}")]
    Unreachable { pod: String, reason: String },
    #[error("pod {pod}")]
    Pod {
        pod: String,
        #[source]
        source: LiveError,
    },
    #[error("image `{0}` has no live-update rules")]
    NoRules(String),
}

impl SyncError {
    /// Whether a full rebuild still gets the change to the cluster (the sync path is what
    /// failed), as opposed to a failure of the developer's own build or commands, which a
    /// rebuild would repeat.
    pub fn falls_back(&self) -> bool {
        match self {
            SyncError::HostBuild(_) => false,
            // A target the container cannot write still reaches it inside an image.
            SyncError::Pod { source, .. } => {
                !source.is_bad_update() || matches!(source, LiveError::NotWritable { .. })
            }
            _ => true,
        }
    }
}

/// What one sync did, as the views say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub image: String,
    /// The changed local files that caused it, relative to the project.
    pub sources: Vec<String>,
    /// Container paths written (in the pod that needed most).
    pub files: Vec<String>,
    pub deleted: usize,
    pub host_build: bool,
    pub pods: usize,
    /// The `run` steps that ran.
    pub runs: Vec<String>,
    /// The slowest pod's restart, up to its ports answering.
    pub restarted: Option<Duration>,
    /// Sending and writing, without the host build and the restart.
    pub sync: Duration,
    pub host_build_time: Duration,
}

impl SyncReport {
    /// The users service's binary synced into one pod, for the tests of every view.
    #[cfg(test)]
    pub fn example() -> SyncReport {
        SyncReport {
            image: "users".into(),
            sources: vec!["src/routes.rs".into()],
            files: vec!["/users".into()],
            deleted: 0,
            host_build: true,
            pods: 1,
            runs: vec![],
            restarted: Some(Duration::from_millis(212)),
            sync: Duration::from_millis(40),
            host_build_time: Duration::from_secs(9),
        }
    }
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.files.is_empty() && self.deleted == 0 && self.runs.is_empty() {
            return write!(
                f,
                "nothing to sync: the containers already hold {}",
                if self.host_build {
                    "the host build's output"
                } else {
                    "these files"
                }
            );
        }
        let n = self.files.len();
        write!(f, "synced {n} file{}", if n == 1 { "" } else { "s" })?;
        let targets = self.files.join(", ");
        match (self.sources.is_empty(), self.host_build) {
            (false, true) => write!(
                f,
                " ({} → {targets} via host build)",
                self.sources.join(", ")
            )?,
            (false, false) => write!(f, " ({} → {targets})", self.sources.join(", "))?,
            (true, _) if n > 0 => write!(f, " ({targets})")?,
            _ => {}
        }
        if self.deleted > 0 {
            write!(f, ", deleted {}", self.deleted)?;
        }
        if self.pods != 1 {
            write!(f, " into {} pods", self.pods)?;
        }
        if !self.runs.is_empty() {
            write!(f, ", ran {}", self.runs.join("; "))?;
        }
        match self.restarted {
            Some(d) => write!(f, " and restarted in {:.2} s", d.as_secs_f64()),
            None => write!(f, " in {:.2} s", self.sync.as_secs_f64()),
        }
    }
}

/// The session's live-update state. Only the loop's rounds write it.
pub struct Live {
    pub enabled: bool,
    agent_image: OnceCell<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    images: BTreeMap<String, ImageLive>,
    resources: BTreeMap<String, ResourceLive>,
    /// What each pinned image reference runs, read from the registry once: a reference
    /// names one image for good.
    entries: BTreeMap<String, ImageEntry>,
}

struct ImageLive {
    /// The covered files as the image holds them.
    baseline: Held,
    /// The input digest the containers hold through syncs, when it is not the image's.
    synced: Option<String>,
    /// Bumped by every sync; a pod below it needs one.
    generation: u64,
    /// Deployed under the supervisor by the last apply.
    supervised: bool,
}

#[derive(Clone)]
struct ResourceLive {
    token: String,
    containers: Vec<Supervised>,
    /// Pod name → the generation of each image it holds.
    pods: BTreeMap<String, u64>,
}

/// An [`Injection`] with owned parts, made before a render.
pub struct Prepared {
    agent_image: String,
    secret: String,
    token: String,
    images: BTreeMap<String, ImageEntry>,
}

impl Prepared {
    pub fn injection(&self) -> Injection<'_> {
        Injection {
            agent_image: &self.agent_image,
            secret: &self.secret,
            token: &self.token,
            images: &self.images,
        }
    }
}

/// The Secret that holds a resource's supervisor token.
pub fn secret_name(resource: &str) -> String {
    format!("tether-live-{resource}")
}

impl Live {
    pub fn new(enabled: bool) -> Live {
        Live {
            enabled,
            agent_image: OnceCell::new(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the planner needs to know.
    pub fn running(&self) -> Running {
        let s = self.state();
        Running {
            supervised: s
                .images
                .iter()
                .filter(|(_, i)| i.supervised)
                .map(|(n, _)| n.clone())
                .collect(),
            synced: s
                .images
                .iter()
                .filter(|(_, i)| i.synced.is_some())
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }

    /// `last` with the digests the containers hold through syncs.
    pub fn in_containers(&self, mut last: BTreeMap<String, String>) -> BTreeMap<String, String> {
        for (name, image) in &self.state().images {
            if let Some(d) = &image.synced {
                last.insert(name.clone(), d.clone());
            }
        }
        last
    }

    /// After `image` was built (or found in the registry) at `digest`: its covered files
    /// as the image holds them. With a host build whose output was not made by this build,
    /// what the image holds is not known, so the first sync sends every covered file.
    pub async fn built(&self, image: &Image, rebuilt: bool) {
        let Some(rules) = image.live_update.clone() else {
            return;
        };
        let known = rebuilt || image.host_build.is_none();
        let baseline = if known {
            tokio::task::spawn_blocking(move || files::covered(&rules).map(|c| files::held(&c)))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        } else {
            Held::new()
        };
        let mut s = self.state();
        let entry = s.images.entry(image.name.clone()).or_insert(ImageLive {
            baseline: Held::new(),
            synced: None,
            generation: 0,
            supervised: false,
        });
        entry.baseline = baseline;
        entry.synced = None;
        entry.generation = 0;
    }

    /// Everything a render needs to supervise `resource`'s containers of `images` (name →
    /// the reference it is pinned at), or `None` when none of them has rules.
    pub async fn prepare(
        &self,
        project: &Project,
        client: &Client,
        registry: &Registry,
        resource: &Resource,
        images: &BTreeMap<String, String>,
        mut progress: impl FnMut(&str) + Send,
    ) -> Result<Option<Prepared>, String> {
        let live: Vec<(&String, &String)> = images
            .iter()
            .filter(|(i, _)| {
                project
                    .images
                    .get(*i)
                    .is_some_and(|i| i.live_update.is_some())
            })
            .collect();
        if !self.enabled || live.is_empty() {
            return Ok(None);
        }
        let agent_image = self
            .agent_image
            .get_or_try_init(|| async {
                crate::intercept::image::ensure(registry, &mut progress)
                    .await
                    .map_err(|e| format!("the supervisor's image: {}", super::report(&e)))
            })
            .await?
            .clone();
        let mut entries = BTreeMap::new();
        for (name, reference) in live {
            let known = self.state().entries.get(reference).cloned();
            let entry = match known {
                Some(entry) => entry,
                None => {
                    let tag = reference.rsplit_once(':').map_or("latest", |(_, t)| t);
                    let entry = registry
                        .entry(name, tag)
                        .await
                        .map_err(|e| format!("what image `{name}` runs: {e}"))?;
                    self.state()
                        .entries
                        .insert(reference.clone(), entry.clone());
                    entry
                }
            };
            entries.insert(name.clone(), entry);
        }
        let secret = secret_name(&resource.name);
        // The token this session already deployed with, else the Secret's (or a new one).
        let known = self
            .state()
            .resources
            .get(&resource.name)
            .map(|r| r.token.clone());
        let token = match known {
            Some(t) => t,
            None => token(client, &resource.namespace, &secret).await?,
        };
        Ok(Some(Prepared {
            agent_image,
            secret,
            token,
            images: entries,
        }))
    }

    /// After `resource` was applied and is ready: which of its containers are supervised.
    /// Its pods start from their images, so what was synced into the old ones is gone.
    pub fn deployed(
        &self,
        resource: &str,
        prepared: Option<&Prepared>,
        supervised: Vec<Supervised>,
    ) {
        let mut s = self.state();
        match prepared {
            Some(p) if !supervised.is_empty() => {
                for c in &supervised {
                    if let Some(i) = s.images.get_mut(&c.image) {
                        i.supervised = true;
                    }
                }
                s.resources.insert(
                    resource.to_owned(),
                    ResourceLive {
                        token: p.token.clone(),
                        containers: supervised,
                        pods: BTreeMap::new(),
                    },
                );
            }
            _ => {
                if let Some(old) = s.resources.remove(resource) {
                    for c in old.containers {
                        if let Some(i) = s.images.get_mut(&c.image) {
                            i.supervised = false;
                        }
                    }
                }
            }
        }
    }

    /// Runs the host build of the image if it has one, then brings every running pod in
    /// `pods` (by resource) to the covered files as they are now.
    pub async fn sync(
        &self,
        project: &Project,
        request: Request<'_>,
        pods: &BTreeMap<String, PodSet>,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Result<SyncReport, SyncError> {
        let Request {
            image,
            digest,
            changed,
            runs,
            replay,
        } = request;
        let img = project
            .images
            .get(image)
            .ok_or_else(|| SyncError::NoRules(image.to_owned()))?;
        let rules = img
            .live_update
            .clone()
            .ok_or_else(|| SyncError::NoRules(image.to_owned()))?;
        let mut host_build_time = Duration::ZERO;
        if let (Some(host), false) = (&img.host_build, replay) {
            let t = Instant::now();
            let mut progress = |line: &str| {
                let _ = events.send(Event::BuildOutput {
                    image: image.to_owned(),
                    line: line.to_owned(),
                });
            };
            super::session::ticking(events, image, run_host_build(host, &mut progress))
                .await
                .map_err(SyncError::HostBuild)?;
            host_build_time = t.elapsed();
        }
        let t = Instant::now();
        let now = tokio::task::spawn_blocking(move || files::covered(&rules))
            .await
            .map_err(|e| SyncError::Files(std::io::Error::other(e.to_string())))?
            .map_err(SyncError::Files)?;
        let run: Vec<RunStep> = img
            .live_update
            .as_ref()
            .map(|l| {
                runs.iter()
                    .filter_map(|i| l.run.get(*i))
                    .map(|r| RunStep {
                        argv: r.argv.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let generation = {
            let mut s = self.state();
            s.images.get_mut(image).map_or(1, |i| {
                if !replay {
                    i.generation += 1;
                }
                i.generation
            })
        };
        let mut report = SyncReport {
            image: image.to_owned(),
            sources: changed
                .iter()
                .map(|p| {
                    p.strip_prefix(&project.root)
                        .unwrap_or(p)
                        .display()
                        .to_string()
                })
                .collect(),
            files: Vec::new(),
            deleted: 0,
            host_build: img.host_build.is_some(),
            pods: 0,
            runs: run.iter().map(|r| r.argv.join(" ")).collect(),
            restarted: None,
            sync: Duration::ZERO,
            host_build_time,
        };
        for (resource, set) in pods {
            let Some(live) = self.state().resources.get(resource).cloned() else {
                continue;
            };
            let Some(container) = live.containers.iter().find(|c| c.image == image).cloned() else {
                continue;
            };
            let running: Vec<String> = set
                .live()
                .iter()
                .filter(|p| container_running(p, &container.container))
                .map(|p| p.name_any())
                .filter(|p| !replay || live.pods.get(p).is_none_or(|g| *g < generation))
                .collect();
            if running.is_empty() && !replay {
                return Err(SyncError::NoPods(resource.clone()));
            }
            let plan = PodPlan {
                token: &live.token,
                image,
                now: &now,
                generation,
                run: &run,
                restart: img.live_update.as_ref().is_some_and(|l| l.restart),
                ports: &container.ports,
            };
            let results = join_all(
                running
                    .iter()
                    .map(|pod| self.sync_pod(set.api(), pod, &plan)),
            )
            .await;
            for (pod, result) in running.iter().zip(results) {
                let done = result?;
                report.pods += 1;
                if done.sent.len() >= report.files.len() {
                    report.files = done.sent;
                }
                report.deleted = report.deleted.max(done.deleted);
                report.restarted = report.restarted.max(done.restarted);
                self.state()
                    .resources
                    .get_mut(resource)
                    .map(|r| r.pods.insert(pod.clone(), generation));
            }
        }
        report.sync = t
            .elapsed()
            .saturating_sub(report.restarted.unwrap_or_default());
        if let Some(i) = self.state().images.get_mut(image) {
            i.synced = digest.or(i.synced.take());
        }
        Ok(report)
    }

    /// Brings one pod to `plan.now`: asks its supervisor what it holds, sends the
    /// difference.
    async fn sync_pod(
        &self,
        api: &Api<Pod>,
        pod: &str,
        plan: &PodPlan<'_>,
    ) -> Result<PodSynced, SyncError> {
        let PodPlan {
            token,
            image,
            now,
            generation,
            run,
            restart,
            ports,
        } = *plan;
        let unreachable = |reason: String| SyncError::Unreachable {
            pod: pod.to_owned(),
            reason,
        };
        let (forwarder, stream) = port::open(api, pod, CONTROL_PORT, DIAL_TIMEOUT)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let in_pod = |source| SyncError::Pod {
            pod: pod.to_owned(),
            source,
        };
        let supervisor = tokio::time::timeout(DIAL_TIMEOUT, Supervisor::attach(stream, token))
            .await
            .map_err(|_| unreachable(format!("no answer within {DIAL_TIMEOUT:?}")))?
            .map_err(|e| match e {
                LiveError::Refused { .. } => in_pod(e),
                e => unreachable(super::report(&e)),
            })?;
        let held = supervisor.state().await.map_err(in_pod)?;
        let baseline = self
            .state()
            .images
            .get(image)
            .map(|i| i.baseline.clone())
            .unwrap_or_default();
        let needed = files::needed(now, &baseline, &held.files);
        let mut update = Update {
            generation,
            files: Vec::with_capacity(needed.send.len()),
            deletes: needed.delete.clone(),
            run: run.to_vec(),
            restart: restart && (!needed.is_empty() || !run.is_empty()),
            wait_ports: ports.to_vec(),
        };
        for (path, file) in &needed.send {
            let content = tokio::fs::read(&file.local)
                .await
                .map_err(SyncError::Files)?;
            update.files.push(FileUpdate {
                path: (*path).to_owned(),
                mode: file.mode,
                content: content.into(),
            });
        }
        let sent = needed.send.iter().map(|(p, _)| (*p).to_owned()).collect();
        if needed.is_empty() && run.is_empty() {
            forwarder.abort();
            return Ok(PodSynced {
                sent,
                deleted: 0,
                restarted: None,
            });
        }
        let applied = tokio::time::timeout(APPLY_TIMEOUT, supervisor.apply(&update))
            .await
            .map_err(|_| unreachable(format!("no answer to the update within {APPLY_TIMEOUT:?}")))?
            .map_err(in_pod)?;
        forwarder.abort();
        Ok(PodSynced {
            sent,
            deleted: needed.delete.len(),
            restarted: applied.restarted,
        })
    }

    /// Keeps the pods of `resource` that appear after a sync (scale-up, replacement) at
    /// the synced state, until `set` changes or the session ends. Says what it did.
    pub async fn keep(
        self: Arc<Self>,
        project: Arc<Project>,
        resource: String,
        set: PodSet,
        events: mpsc::UnboundedSender<Event>,
    ) {
        let mut changes = set.changes();
        loop {
            if changes.changed().await.is_err() {
                return;
            }
            let Some(live) = self.state().resources.get(&resource).cloned() else {
                continue;
            };
            for container in &live.containers {
                let generation = self
                    .state()
                    .images
                    .get(&container.image)
                    .map_or(0, |i| i.generation);
                if generation == 0 {
                    continue; // nothing was synced since the image
                }
                let behind = set.live().iter().any(|p| {
                    container_running(p, &container.container)
                        && live.pods.get(&p.name_any()).is_none_or(|g| *g < generation)
                });
                if !behind {
                    continue;
                }
                let pods = BTreeMap::from([(resource.clone(), set.clone())]);
                let request = Request {
                    image: &container.image,
                    digest: None,
                    changed: &[],
                    runs: &[],
                    replay: true,
                };
                let result = self.sync(&project, request, &pods, &events).await;
                let _ = events.send(match result {
                    Ok(report) if report.pods == 0 => continue,
                    Ok(report) => Event::Synced {
                        resource: resource.clone(),
                        report: Arc::new(report),
                    },
                    Err(e) => Event::SyncFailed {
                        resource: resource.clone(),
                        image: container.image.clone(),
                        reason: super::report(&e),
                        rebuild: false,
                    },
                });
            }
        }
    }
}

/// What a sync asks of the supervisors.
pub struct Request<'a> {
    pub image: &'a str,
    /// The input digest the containers hold once synced; `None` keeps what they held.
    pub digest: Option<String>,
    /// The changed files that caused it.
    pub changed: &'a [std::path::PathBuf],
    /// Indexes into the image's `live_update.run`.
    pub runs: &'a [usize],
    /// Bring pods that appeared since the last sync to it: no host build, no new state,
    /// only the pods behind.
    pub replay: bool,
}

/// One sync as every pod of a resource receives it.
#[derive(Clone, Copy)]
struct PodPlan<'a> {
    token: &'a str,
    image: &'a str,
    now: &'a BTreeMap<String, Covered>,
    generation: u64,
    run: &'a [RunStep],
    restart: bool,
    ports: &'a [u16],
}

struct PodSynced {
    sent: Vec<String>,
    deleted: usize,
    restarted: Option<Duration>,
}

/// Whether `container` of `pod` is running (its supervisor can answer).
fn container_running(pod: &Pod, container: &str) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.name == container && c.state.as_ref().is_some_and(|s| s.running.is_some())
                })
            })
}

/// The resource's token: kept in its Secret across sessions, so re-applying it changes
/// nothing; new when there is none.
async fn token(client: &Client, namespace: &str, name: &str) -> Result<String, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api
        .get_opt(name)
        .await
        .map_err(|e| format!("cannot read Secret {namespace}/{name}: {e}"))?;
    match existing.as_ref().and_then(secret::token_of) {
        Some(t) => Ok(t),
        None => {
            secret::random_token().map_err(|e| format!("cannot read /dev/urandom for a token: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SyncReport {
        SyncReport::example()
    }

    #[test]
    fn a_sync_says_what_went_where_and_how() {
        assert_eq!(
            report().to_string(),
            "synced 1 file (src/routes.rs → /users via host build) and restarted in 0.21 s"
        );
        let mut r = report();
        r.host_build = false;
        r.sources = vec!["static/a.css".into(), "static/b.css".into()];
        r.files = vec!["/www/a.css".into(), "/www/b.css".into()];
        r.pods = 2;
        r.restarted = None;
        r.runs = vec!["/bin/true".into()];
        assert_eq!(
            r.to_string(),
            "synced 2 files (static/a.css, static/b.css → /www/a.css, /www/b.css) into 2 pods, ran /bin/true in 0.04 s"
        );
        let mut same = report();
        same.files.clear();
        assert_eq!(
            same.to_string(),
            "nothing to sync: the containers already hold the host build's output"
        );
    }

    #[test]
    fn only_a_failure_of_the_sync_path_falls_back_to_a_rebuild() {
        let run = SyncError::Pod {
            pod: "p".into(),
            source: LiveError::RunFailed {
                argv: vec!["x".into()],
                code: Some(1),
                output: String::new(),
            },
        };
        assert!(!run.falls_back());
        assert!(
            SyncError::Unreachable {
                pod: "p".into(),
                reason: "r".into()
            }
            .falls_back()
        );
        assert!(SyncError::NoPods("users".into()).falls_back());
    }
}
