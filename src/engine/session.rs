//! The inner loop of `tether up`: build what changed, deploy in dependency order, wait for
//! readiness, keep forwards and log tailers pointed at the right pods, and go again on
//! every change set.
//!
//! A round takes a set of resources: the images they use are built in parallel, and each
//! resource deploys as soon as its own images are built and the resources it depends on
//! are ready. Rounds do not overlap; change sets that arrive during a round are merged
//! into the next one.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Mutex, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    event::{Event, UpdateTiming},
    observe::Observing,
};
use crate::{
    build::{Builder, Built, HashCache, inputs},
    config::Project,
    deploy::{Deployer, Workload, manifest, rollout},
    kube::PodSet,
    logs,
    watch::ChangeSet,
};

/// How `up` behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Stop after the first round: success once everything is ready, failure at the first
    /// error that waiting cannot fix, or at `timeout`.
    pub ci: bool,
    /// How long a resource may take to become ready in `--ci` mode.
    pub timeout: Duration,
}

/// An image build's outcome as deploys wait for it: `None` while it runs.
type BuildResult = watch::Receiver<Option<Result<Built, String>>>;

/// The result of the first round in `--ci` mode.
#[derive(Debug)]
pub struct Failure {
    pub resource: String,
    pub error: String,
}

pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    project: Project,
    builder: Builder,
    deployer: Deployer,
    options: Options,
    event_tx: mpsc::UnboundedSender<Event>,
    shutdown: CancellationToken,
    /// Per image: the digest cache, held for the whole build so one image never builds twice at once.
    caches: HashMap<String, Mutex<HashCache>>,
    /// Per image: the last successful build.
    built: std::sync::Mutex<BTreeMap<String, Built>>,
    /// Per resource: the images its manifests use.
    uses: std::sync::Mutex<BTreeMap<String, Vec<String>>>,
    /// Per resource: ready for dependents.
    ready: BTreeMap<String, watch::Sender<bool>>,
    /// Per resource: the pods its forwards send traffic to.
    targets: BTreeMap<String, watch::Sender<Option<PodSet>>>,
    /// Per resource: the watches of its pods, logs and rollout.
    observing: std::sync::Mutex<BTreeMap<String, Observing>>,
    log_tx: mpsc::Sender<logs::LogLine>,
}

impl Session {
    pub fn new(
        project: Project,
        builder: Builder,
        deployer: Deployer,
        options: Options,
        event_tx: mpsc::UnboundedSender<Event>,
        shutdown: CancellationToken,
    ) -> Session {
        let caches = project
            .images
            .keys()
            .map(|n| (n.clone(), Mutex::new(HashCache::default())))
            .collect();
        let ready = project
            .resources
            .keys()
            .map(|n| (n.clone(), watch::channel(false).0))
            .collect();
        let targets = project
            .resources
            .keys()
            .map(|n| (n.clone(), watch::channel(None).0))
            .collect();
        let uses = project
            .resources
            .keys()
            .map(|n| (n.clone(), images_used(&project, n)))
            .collect();
        // Log lines pass through a bounded channel so a chatty pod slows its own
        // follower, never the engine.
        let (log_tx, mut log_rx) = mpsc::channel::<logs::LogLine>(1024);
        let forward_tx = event_tx.clone();
        tokio::spawn(async move {
            while let Some(line) = log_rx.recv().await {
                if forward_tx.send(Event::Log(line)).is_err() {
                    return;
                }
            }
        });
        Session {
            inner: Arc::new(Inner {
                project,
                builder,
                deployer,
                options,
                event_tx,
                shutdown,
                caches,
                built: std::sync::Mutex::new(BTreeMap::new()),
                uses: std::sync::Mutex::new(uses),
                ready,
                targets,
                observing: std::sync::Mutex::new(BTreeMap::new()),
                log_tx,
            }),
        }
    }

    /// Images each resource uses, for views that list them before anything is built.
    pub fn images_by_resource(&self) -> BTreeMap<String, Vec<String>> {
        self.inner
            .uses
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    /// Where the forwards of `resource` find their pods.
    pub fn forward_target(&self, resource: &str) -> Option<watch::Receiver<Option<PodSet>>> {
        self.inner
            .targets
            .get(resource)
            .map(watch::Sender::subscribe)
    }

    /// Everything the watcher must watch: image inputs, manifests, config files.
    pub fn watch_roots(&self) -> Vec<PathBuf> {
        let p = &self.inner.project;
        let mut roots: BTreeSet<PathBuf> = p
            .images
            .values()
            .flat_map(|i| i.inputs.iter().cloned())
            .collect();
        roots.extend(
            p.resources
                .values()
                .flat_map(|r| r.manifests.iter().cloned()),
        );
        roots.into_iter().collect()
    }

    /// The first round over every resource. In `--ci` mode the failures, if any.
    pub async fn start(&self) -> Vec<Failure> {
        let all: BTreeSet<String> = self.inner.project.resources.keys().cloned().collect();
        self.inner.clone().round(all, None, false).await
    }

    /// Runs rounds for change sets and triggers until shutdown.
    pub async fn run(
        &self,
        mut change_rx: mpsc::Receiver<ChangeSet>,
        mut trigger_rx: mpsc::Receiver<String>,
    ) {
        let inner = &self.inner;
        loop {
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                set = change_rx.recv() => {
                    let Some(mut set) = set else { return };
                    // Merge what queued up during the last round.
                    while let Ok(more) = change_rx.try_recv() {
                        set.paths.extend(more.paths);
                        set.settled = more.settled;
                    }
                    let resources = inner.plan(&set).await;
                    if !resources.is_empty() {
                        inner.clone().round_until_shutdown(resources, Some(set), false).await;
                    }
                }
                name = trigger_rx.recv() => {
                    let Some(name) = name else { return };
                    // A trigger rebuilds even when the registry has the image: the
                    // developer asked for it (a flaky build, a changed base image).
                    if inner.project.resources.contains_key(&name) {
                        inner.clone().round_until_shutdown(BTreeSet::from([name]), None, true).await;
                    }
                }
            }
        }
    }
}

impl Inner {
    fn emit(&self, e: Event) {
        let _ = self.event_tx.send(e);
    }

    fn uses(&self, resource: &str) -> Vec<String> {
        self.uses
            .lock()
            .ok()
            .and_then(|u| u.get(resource).cloned())
            .unwrap_or_default()
    }

    /// Which resources a change set affects. Reports the plan, including the files that
    /// are inputs of nothing, so a developer always sees why something did or did not build.
    async fn plan(&self, set: &ChangeSet) -> BTreeSet<String> {
        let p = &self.project;
        let mut images = BTreeSet::new();
        let mut resources = BTreeSet::new();
        let mut unrelated = Vec::new();
        for path in &set.paths {
            let mut related = false;
            for image in p.images.values() {
                if image
                    .inputs
                    .iter()
                    .any(|i| path == i || path.starts_with(i))
                    && is_input(image, path)
                {
                    images.insert(image.name.clone());
                    related = true;
                }
            }
            for r in p.resources.values() {
                if r.manifests.iter().any(|m| m == path) {
                    resources.insert(r.name.clone());
                    related = true;
                }
            }
            if !related {
                // Relative to the project, as the developer thinks of it.
                unrelated.push(path.strip_prefix(&p.root).unwrap_or(path).to_path_buf());
            }
        }
        // A touched input whose content is unchanged (a save without edits) needs nothing.
        let mut changed_images = BTreeSet::new();
        for name in images {
            let (Some(image), Some(cache)) = (p.images.get(&name), self.caches.get(&name)) else {
                continue;
            };
            let digest = inputs::digest(image, &mut *cache.lock().await).ok();
            let last = self
                .built
                .lock()
                .ok()
                .and_then(|b| b.get(&name).map(|b| b.digest.clone()));
            if digest.is_none() || digest != last {
                changed_images.insert(name);
            }
        }
        // Manifests may now use other images.
        if let Ok(mut uses) = self.uses.lock() {
            for r in &resources {
                uses.insert(r.clone(), images_used(p, r));
            }
        }
        for (r, used) in self.uses.lock().map(|u| u.clone()).unwrap_or_default() {
            if used.iter().any(|i| changed_images.contains(i)) {
                resources.insert(r);
            }
        }
        self.emit(Event::ChangeSeen {
            images: changed_images.iter().cloned().collect(),
            resources: resources.iter().cloned().collect(),
            unrelated,
        });
        resources
    }

    /// A round that a shutdown cuts short.
    async fn round_until_shutdown(
        self: Arc<Self>,
        resources: BTreeSet<String>,
        change: Option<ChangeSet>,
        force: bool,
    ) {
        let shutdown = self.shutdown.clone();
        tokio::select! {
            _ = self.round(resources, change, force) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// Builds and deploys `resources`; returns the failures. `force` builds images even
    /// when the registry already holds their content.
    async fn round(
        self: Arc<Self>,
        resources: BTreeSet<String>,
        change: Option<ChangeSet>,
        force: bool,
    ) -> Vec<Failure> {
        let images: BTreeSet<String> = resources.iter().flat_map(|r| self.uses(r)).collect();
        for r in &resources {
            if let Some(tx) = self.ready.get(r) {
                tx.send_replace(false);
            }
        }
        let mut image_results: HashMap<String, BuildResult> = HashMap::new();
        for name in images {
            let (tx, rx) = watch::channel(None);
            image_results.insert(name.clone(), rx);
            let me = self.clone();
            tokio::spawn(async move {
                let result = me.build(&name, force).await;
                tx.send_replace(Some(result));
            });
        }
        let mut tasks = tokio::task::JoinSet::new();
        for r in resources {
            let me = self.clone();
            let waits: Vec<_> = me
                .uses(&r)
                .into_iter()
                .filter_map(|i| image_results.get(&i).cloned().map(|rx| (i, rx)))
                .collect();
            let change = change.clone();
            tasks.spawn(async move {
                let result = me.deploy(&r, waits, change.as_ref()).await;
                match result {
                    Ok(()) => None,
                    Err(error) => {
                        me.emit(Event::Failed {
                            resource: r.clone(),
                            error: error.clone(),
                        });
                        Some(Failure { resource: r, error })
                    }
                }
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok(Some(f)) = done {
                failures.push(f);
            }
        }
        failures
    }

    async fn build(&self, name: &str, force: bool) -> Result<Built, String> {
        let Some(image) = self.project.images.get(name) else {
            return Err(format!("no image `{name}` in tether.toml"));
        };
        let Some(cache) = self.caches.get(name) else {
            return Err(format!("no cache for image `{name}`"));
        };
        let mut cache = cache.lock().await;
        self.emit(Event::BuildStarted {
            image: name.to_owned(),
        });
        let event_tx = self.event_tx.clone();
        let progress = |line: &str| {
            let _ = event_tx.send(Event::BuildOutput {
                image: name.to_owned(),
                line: line.to_owned(),
            });
        };
        let result = tokio::select! {
            r = self.builder.ensure(image, &mut cache, force, progress) => r.map_err(|e| e.to_string()),
            _ = self.shutdown.cancelled() => Err("stopped".to_owned()),
        };
        if let (Ok(b), Ok(mut built)) = (&result, self.built.lock()) {
            built.insert(name.to_owned(), b.clone());
        }
        self.emit(Event::BuildDone {
            image: name.to_owned(),
            result: result.clone(),
        });
        result
    }

    async fn deploy(
        &self,
        name: &str,
        waits: Vec<(String, BuildResult)>,
        change: Option<&ChangeSet>,
    ) -> Result<(), String> {
        let Some(resource) = self.project.resources.get(name) else {
            return Err(format!("no resource `{name}`"));
        };
        // This resource's images.
        let mut timing = UpdateTiming::default();
        for (image, mut rx) in waits {
            let result = rx
                .wait_for(Option::is_some)
                .await
                .map_err(|_| format!("build of `{image}` was abandoned"))?
                .clone();
            match result {
                Some(Ok(b)) => {
                    timing.digest += b.timings.digest;
                    timing.host_build += b.timings.host_build;
                    timing.image_build += b.timings.image_build;
                    timing.push += b.timings.push;
                }
                Some(Err(e)) => return Err(format!("image `{image}` did not build: {e}")),
                None => {}
            }
        }
        // The resources it depends on.
        for dep in &resource.depends_on {
            if let Some(tx) = self.ready.get(dep) {
                let mut rx = tx.subscribe();
                if !*rx.borrow() {
                    self.emit(Event::Waiting {
                        resource: name.to_owned(),
                        reason: format!("waiting for `{dep}` to be ready"),
                    });
                }
                tokio::select! {
                    r = rx.wait_for(|ready| *ready) => { r.map_err(|_| "stopped".to_owned())?; }
                    _ = self.shutdown.cancelled() => return Err("stopped".into()),
                }
            }
        }
        self.emit(Event::DeployStarted {
            resource: name.to_owned(),
        });
        let references: BTreeMap<String, String> = self
            .built
            .lock()
            .map(|b| {
                b.iter()
                    .map(|(k, v)| (k.clone(), v.reference.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let t = Instant::now();
        let rendered = self
            .deployer
            .render(resource, &references)
            .await
            .map_err(|e| e.to_string())?;
        let counts = self
            .deployer
            .apply(name, &rendered)
            .await
            .map_err(|e| e.to_string())?;
        timing.apply = t.elapsed();
        self.emit(Event::Applied {
            resource: name.to_owned(),
            counts,
        });
        let observed = self.observe(name, &rendered.workloads);

        let t = Instant::now();
        self.wait_ready(name, observed).await?;
        timing.rollout = t.elapsed();
        let update = change.map(|c| {
            timing.watch = c.settled.duration_since(c.first_event);
            timing.total = c.first_event.elapsed();
            timing
        });
        // Ready first: what the resource's observer reports from now on comes after it.
        self.emit(Event::Ready {
            resource: name.to_owned(),
            update,
        });
        if let Some(tx) = self.ready.get(name) {
            tx.send_replace(true);
        }
        Ok(())
    }

    /// Waits until the rollout of the last apply is done, saying why not as that changes.
    /// In `--ci` mode gives up at a reason waiting cannot fix, or after the timeout.
    async fn wait_ready(
        &self,
        name: &str,
        mut observed: watch::Receiver<rollout::Observed>,
    ) -> Result<(), String> {
        let mut last_reason: Option<String> = None;
        let wait = async {
            loop {
                let now = observed.borrow_and_update().clone();
                if now.rolled_out {
                    return Ok(());
                }
                if let Some(why) = now.trouble {
                    if self.options.ci && why.fatal {
                        return Err(why.reason);
                    }
                    if last_reason.as_deref() != Some(why.reason.as_str()) {
                        self.emit(Event::Waiting {
                            resource: name.to_owned(),
                            reason: why.reason.clone(),
                        });
                        last_reason = Some(why.reason);
                    }
                }
                tokio::select! {
                    _ = self.shutdown.cancelled() => return Err("stopped".to_owned()),
                    r = observed.changed() => if r.is_err() { return Err("stopped".to_owned()) },
                }
            }
        };
        if !self.options.ci {
            return wait.await;
        }
        match tokio::time::timeout(self.options.timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "not ready after {}s{}",
                self.options.timeout.as_secs(),
                last_reason.map(|r| format!(": {r}")).unwrap_or_default()
            )),
        }
    }

    /// Keeps one set of watches per resource: its pods (for forwards, logs and readiness)
    /// while its workloads stay the same, and a fresh rollout observer for each apply.
    fn observe(&self, name: &str, workloads: &[Workload]) -> watch::Receiver<rollout::Observed> {
        let client = self.deployer.client();
        let settled = match self.ready.get(name) {
            Some(tx) => tx.subscribe(),
            None => watch::channel(false).1,
        };
        // A panic elsewhere while the lock was held leaves the map usable.
        let mut observing = self.observing.lock().unwrap_or_else(|e| e.into_inner());
        // Other workloads: the old watches stop as they drop.
        let kept = observing
            .remove(name)
            .filter(|o| o.workloads() == workloads);
        let mut o = kept.unwrap_or_else(|| {
            let fresh = Observing::start(client, name, workloads, &self.log_tx, &self.shutdown);
            if let Some(tx) = self.targets.get(name) {
                tx.send_replace(fresh.forward_target());
            }
            fresh
        });
        let observed = o.applied(client, name, settled, &self.event_tx, &self.shutdown);
        observing.insert(name.to_owned(), o);
        observed
    }
}

/// Whether `path` is one of `image`'s inputs now (not ignored). A deleted file counts: its
/// removal changes the digest.
fn is_input(image: &crate::config::Image, path: &Path) -> bool {
    if !path.exists() {
        return true;
    }
    inputs::input_files(image).is_ok_and(|files| files.iter().any(|f| f == path))
}

/// The project's images that `resource`'s manifests name.
fn images_used(project: &Project, resource: &str) -> Vec<String> {
    let Some(r) = project.resources.get(resource) else {
        return Vec::new();
    };
    let mut used: Vec<String> = r
        .manifests
        .iter()
        .filter_map(|m| manifest::read(m).ok())
        .flatten()
        .flat_map(|o| manifest::image_names(&o))
        .filter(|i| project.images.contains_key(i))
        .collect();
    used.sort();
    used.dedup();
    used
}
