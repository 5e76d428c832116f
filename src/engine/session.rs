//! The inner loop of `tether up`: for each change set, gather the facts (one walk), plan
//! (pure, `engine::plan`), then run the round: build what the plan says, deploy in
//! dependency order, wait for readiness, keep forwards and log followers pointed at the
//! right pods.
//!
//! Each stage hands the next what it consumes: the plan carries one digest per image to
//! its build, each build's result goes to the deploys that wait for it, and the round
//! returns what it built, which the loop keeps for the next plan. A changed `tether.toml`
//! is loaded again before planning; when it is invalid the running one stays, and the
//! developer is told why. Rounds do not overlap; change sets that arrive during a round
//! are merged into the next one.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex as SyncMutex},
    time::{Duration, Instant},
};

use tokio::{
    sync::{Mutex, mpsc, watch},
    task::JoinSet,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    checks,
    error::RoundError,
    event::{Event, UpdateTiming},
    facts,
    live::{self, Live},
    memory,
    observe::Observing,
    plan::{self, Digest, Facts, Plan},
};
use crate::{
    build::{BuildError, BuildTimings, Builder, Built, HashCache},
    config::Project,
    deploy::{Deployer, Workload, replicas, rollout, sources},
    kube::PodSet,
    logs, shared,
    watch::{ChangeSet, Watch},
};

/// How `up` behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after the first round: success once everything is ready, failure at the first
    /// error that waiting cannot fix, or at `timeout`.
    pub ci: bool,
    /// How long a resource may take to become ready in `--ci` mode.
    pub timeout: Duration,
    /// Sync changes that live-update rules cover into the running containers.
    pub live_update: bool,
    /// The profile the run uses: a reloaded `tether.toml` is run in it too.
    pub profile: Option<crate::config::ProfileRun>,
}

/// How often a running build reports how long it has taken: a few seconds of silence
/// are normal, more looks stuck.
const BUILD_TICK: Duration = Duration::from_secs(5);

/// Runs `work`, a build of `image`, and reports its elapsed time every [`BUILD_TICK`]
/// while it runs.
pub(super) async fn ticking<T>(
    events: &mpsc::UnboundedSender<Event>,
    image: &str,
    work: impl Future<Output = T>,
) -> T {
    let started = Instant::now();
    let mut tick = tokio::time::interval_at((started + BUILD_TICK).into(), BUILD_TICK);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tick.tick() => {
                let _ = events.send(Event::Building {
                    image: image.to_owned(),
                    elapsed: started.elapsed(),
                });
            }
        }
    }
}

/// An image build's outcome as deploys wait for it: `None` while it runs.
type BuildResult = watch::Receiver<Option<Result<Built, Arc<BuildError>>>>;

/// A resource that did not become ready in a round.
#[derive(Debug)]
pub struct Failure {
    pub resource: String,
    pub error: Arc<RoundError>,
}

/// What a round works from: the project and the facts its plan was made from, and the
/// change set (with the time its walk took) that started it.
struct Basis {
    project: Arc<Project>,
    facts: Arc<Facts>,
    change: Option<ChangeSet>,
    walk: Duration,
    /// Build images even when the registry already holds their content (a trigger).
    force: bool,
}

/// What a round hands back to the loop.
struct Outcome {
    failures: Vec<Failure>,
    /// The images this round built (or found in the registry), by name.
    built: BTreeMap<String, Built>,
}

pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    /// The project as last loaded; replaced only by the loop when `tether.toml` reloads.
    /// A round is handed its own `Arc` and never reads this.
    project: SyncMutex<Arc<Project>>,
    builder: Builder,
    deployer: Deployer,
    options: Options,
    event_tx: mpsc::UnboundedSender<Event>,
    shutdown: CancellationToken,
    /// Per image: file hashes kept between walks, so unchanged files are not read again.
    caches: Mutex<BTreeMap<String, HashCache>>,
    /// Per image: its last successful build. Written by the loop after each round; a
    /// round is handed a copy.
    last: SyncMutex<BTreeMap<String, Built>>,
    /// The resources ready for their dependents.
    ready: watch::Sender<BTreeSet<String>>,
    /// Per resource: the pods its forwards send traffic to.
    targets: BTreeMap<String, watch::Sender<Option<PodSet>>>,
    /// Per resource: the watches of its pods, logs and rollout.
    observing: std::sync::Mutex<BTreeMap<String, Observing>>,
    /// Where the log followers' lines go: bounded, so a chatty pod slows its own
    /// follower, never the engine.
    log_tx: mpsc::Sender<logs::LogLine>,
    /// Tasks that outlive a round (the log history's writer, forwards): `up` waits for them to end
    /// after shutdown instead of guessing how long they take.
    tasks: TaskTracker,
    /// Supervised containers, what was synced into them, the image baselines.
    live: Arc<Live>,
    /// Per resource: the task that keeps new pods at the synced state.
    keepers: SyncMutex<BTreeMap<String, tokio::task::AbortHandle>>,
    /// Per resource: the task that runs its `status_cmd`.
    status: SyncMutex<BTreeMap<String, tokio::task::AbortHandle>>,
}

impl Session {
    pub fn new(
        project: Project,
        builder: Builder,
        deployer: Deployer,
        options: Options,
        event_tx: mpsc::UnboundedSender<Event>,
        log_tx: mpsc::Sender<logs::LogLine>,
        shutdown: CancellationToken,
    ) -> Session {
        let targets = project
            .resources
            .keys()
            .map(|n| (n.clone(), watch::channel(None).0))
            .collect();
        let tasks = TaskTracker::new();
        let live_update = options.live_update;
        Session {
            inner: Arc::new(Inner {
                project: SyncMutex::new(Arc::new(project)),
                builder,
                deployer,
                options,
                event_tx,
                shutdown,
                caches: Mutex::new(BTreeMap::new()),
                last: SyncMutex::new(BTreeMap::new()),
                ready: watch::channel(BTreeSet::new()).0,
                targets,
                observing: std::sync::Mutex::new(BTreeMap::new()),
                log_tx,
                tasks,
                live: Arc::new(Live::new(live_update)),
                keepers: SyncMutex::new(BTreeMap::new()),
                status: SyncMutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The tracker of tasks that outlive a round. Once the session is dropped and the
    /// shutdown token cancelled, `close` + `wait` returns when they have all ended.
    pub fn tasks(&self) -> TaskTracker {
        self.inner.tasks.clone()
    }

    /// The project's resources, for views that list them before the first round; the
    /// images each uses follow with the first plan ([`Event::Planned`]).
    pub fn resources(&self) -> Vec<String> {
        self.inner.project().resources.keys().cloned().collect()
    }

    /// Where the forwards of `resource` find their pods.
    pub fn forward_target(&self, resource: &str) -> Option<watch::Receiver<Option<PodSet>>> {
        self.inner
            .targets
            .get(resource)
            .map(watch::Sender::subscribe)
    }

    /// Everything the watcher must watch: image inputs and Dockerfiles, manifests, config files.
    pub fn watch_roots(&self) -> Vec<PathBuf> {
        plan::watch_roots(&self.inner.project())
    }

    /// The first round over every resource. In `--ci` mode the failures, if any.
    pub async fn start(&self) -> Vec<Failure> {
        let inner = &self.inner;
        let project = inner.project();
        let all: BTreeSet<String> = project.resources.keys().cloned().collect();
        let (facts, walk) = inner.gather(&project, &BTreeSet::new()).await;
        let plan = plan::resources(&project, &facts, &all);
        inner.emit(Event::Planned {
            images: plan
                .applies
                .iter()
                .map(|(r, used)| (r.clone(), used.iter().cloned().collect()))
                .collect(),
        });
        let basis = Basis {
            project,
            facts,
            change: None,
            walk,
            force: false,
        };
        inner.clone().round(basis, plan).await
    }

    /// Runs rounds for change sets and triggers until shutdown. `watch` learns the roots
    /// of a reloaded `tether.toml`.
    pub async fn run(
        &self,
        watch: Watch,
        mut change_rx: mpsc::Receiver<ChangeSet>,
        mut trigger_rx: mpsc::Receiver<String>,
    ) {
        let inner = &self.inner;
        loop {
            // Idle until the next change set or trigger: the code that starting and the
            // last round ran stays in the page cache, not in this process.
            memory::release_code_pages();
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                set = change_rx.recv() => {
                    let Some(mut set) = set else { return };
                    // Merge what queued up during the last round.
                    while let Ok(more) = change_rx.try_recv() {
                        set.merge(more);
                    }
                    inner.clone().on_change(set, &watch).await;
                }
                name = trigger_rx.recv() => {
                    let Some(name) = name else { return };
                    // A trigger rebuilds even when the registry has the image: the
                    // developer asked for it (a flaky build, a changed base image).
                    let project = inner.project();
                    if project.resources.contains_key(&name) {
                        let (facts, walk) = inner.gather(&project, &BTreeSet::new()).await;
                        let plan = plan::resources(&project, &facts, &BTreeSet::from([name]));
                        let basis = Basis { project, facts, change: None, walk, force: true };
                        inner.clone().round_until_shutdown(basis, plan).await;
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

    fn project(&self) -> Arc<Project> {
        self.project
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The digest of each image's last successful build.
    fn last_digests(&self) -> BTreeMap<String, String> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(i, b)| (i.clone(), b.digest.clone()))
            .collect()
    }

    /// One walk of `project` (off the async threads), and how long it took.
    async fn gather(
        &self,
        project: &Arc<Project>,
        changed: &BTreeSet<PathBuf>,
    ) -> (Arc<Facts>, Duration) {
        let mut caches = self.caches.lock().await;
        let mut taken = std::mem::take(&mut *caches);
        let (project, changed) = (project.clone(), changed.clone());
        let t = Instant::now();
        let walked = tokio::task::spawn_blocking(move || {
            let facts = facts::gather(&project, &mut taken, &changed);
            memory::release_freed_memory();
            (facts, taken)
        })
        .await;
        match walked {
            Ok((facts, kept)) => {
                *caches = kept;
                (Arc::new(facts), t.elapsed())
            }
            // The walk panicked: plan from nothing rather than stop the loop; the hash
            // cache starts again empty.
            Err(_) => (Arc::default(), t.elapsed()),
        }
    }

    /// Plans a change set (reloading `tether.toml` first when it changed), says what the
    /// plan is, including the files that are inputs of nothing, and runs it.
    async fn on_change(self: Arc<Self>, set: ChangeSet, watch: &Watch) {
        let mut project = self.project();
        // What the containers hold: a synced change is not built again when it is undone.
        let last = self.live.in_containers(self.last_digests());
        let (mut facts, mut walk) = self.gather(&project, &set.paths).await;
        let mut plan = plan::plan(&set, &project, &facts, &last);
        let mut unwatched = set.unwatched.clone();
        if plan.reload {
            let loaded = Project::load(&project.root).and_then(|new| match &self.options.profile {
                Some(run) => run.apply(new),
                None => Ok(new),
            });
            match loaded {
                Ok(new) => {
                    let new = Arc::new(new);
                    if let Err(e) = watch.add(&plan::watch_roots(&new)) {
                        unwatched.push(Arc::new(e));
                    }
                    let (new_facts, new_walk) = self.gather(&new, &set.paths).await;
                    let (reload_plan, change) = plan::reloaded(&project, &new, &new_facts, &last);
                    plan = plan::plan(&set, &new, &new_facts, &last).merge(reload_plan);
                    // Counts scaled by hand last until tether.toml changes: apply the
                    // declared ones again.
                    for r in replicas::Overrides::dropped(&new) {
                        if new.resources.contains_key(&r) {
                            let used = new_facts.uses.get(&r).cloned().unwrap_or_default();
                            plan.applies.entry(r.clone()).or_insert(used);
                            self.emit(Event::Scaled {
                                resource: r,
                                summary: "replica count set by hand dropped: tether.toml changed"
                                    .to_owned(),
                            });
                        }
                    }
                    facts = new_facts;
                    walk += new_walk;
                    *self.project.lock().unwrap_or_else(|e| e.into_inner()) = new.clone();
                    project = new;
                    self.emit(Event::ConfigReloaded { change });
                }
                Err(error) => self.emit(Event::ConfigRejected {
                    error: Arc::new(error),
                }),
            }
        }
        let plan = plan::live::decide(plan, &set, &project, &facts, &self.live.running());
        self.emit(Event::ChangeSeen {
            syncs: plan.syncs.keys().cloned().collect(),
            rebuilds: plan.rebuilds.clone(),
            images: plan.builds.keys().cloned().collect(),
            resources: plan
                .applies
                .iter()
                .map(|(r, used)| (r.clone(), used.iter().cloned().collect()))
                .collect(),
            unrelated: plan.unrelated.clone(),
            rescan: set.rescan.clone(),
            unwatched,
        });
        if !plan.applies.is_empty() || !plan.builds.is_empty() || !plan.syncs.is_empty() {
            let basis = Basis {
                project,
                facts,
                change: Some(set),
                walk,
                force: false,
            };
            self.round_until_shutdown(basis, plan).await;
        }
    }

    /// A round that a shutdown cuts short.
    async fn round_until_shutdown(self: Arc<Self>, basis: Basis, plan: Plan) {
        let shutdown = self.shutdown.clone();
        tokio::select! {
            _ = self.round(basis, plan) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// Runs `plan`, made from `basis`, and keeps what it built for the next plan; returns
    /// the failures.
    async fn round(self: Arc<Self>, basis: Basis, plan: Plan) -> Vec<Failure> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let outcome = self.clone().carry_out(Arc::new(basis), plan, last).await;
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(outcome.built);
        outcome.failures
    }

    /// Builds `plan.builds` and deploys `plan.applies`, with the objects the basis's walk
    /// read. Each deploy waits for its own images' builds and pins the others at their
    /// `last` build.
    async fn carry_out(
        self: Arc<Self>,
        basis: Arc<Basis>,
        plan: Plan,
        last: BTreeMap<String, Built>,
    ) -> Outcome {
        self.ready.send_modify(|ready| {
            for r in plan.applies.keys() {
                ready.remove(r);
            }
        });
        let mut builds = JoinSet::new();
        let mut results: HashMap<String, BuildResult> = HashMap::new();
        for (name, digest) in plan.builds {
            let (tx, rx) = watch::channel(None);
            results.insert(name.clone(), rx);
            let (me, basis) = (self.clone(), basis.clone());
            builds.spawn(async move {
                let result = me.build(&basis.project, &name, digest, basis.force).await;
                tx.send_replace(Some(result.clone()));
                (name, result)
            });
        }
        let mut deploys = JoinSet::new();
        for (r, images) in plan.applies {
            let waits: Vec<(String, BuildResult)> = images
                .iter()
                .filter_map(|i| results.get(i).map(|rx| (i.clone(), rx.clone())))
                .collect();
            let pinned: BTreeMap<String, String> = images
                .iter()
                .filter(|i| !results.contains_key(*i))
                .filter_map(|i| last.get(i).map(|b| (i.clone(), b.reference.clone())))
                .collect();
            let (me, basis) = (self.clone(), basis.clone());
            deploys.spawn(async move {
                let result = me.deploy(&basis, &r, waits, pinned).await;
                result.err().map(|error| {
                    let error = Arc::new(error);
                    me.emit(Event::Failed {
                        resource: r.clone(),
                        error: error.clone(),
                    });
                    Failure { resource: r, error }
                })
            });
        }
        let mut syncs = JoinSet::new();
        for (image, sync) in plan.syncs {
            let (me, basis) = (self.clone(), basis.clone());
            syncs.spawn(async move {
                let fell_back = me.sync(&basis, &image, &sync).await;
                fell_back.then_some((image, sync))
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = deploys.join_next().await {
            if let Ok(Some(f)) = done {
                failures.push(f);
            }
        }
        let mut built = BTreeMap::new();
        while let Some(done) = builds.join_next().await {
            if let Ok((name, Ok(b))) = done {
                built.insert(name, b);
            }
        }
        // Syncs that could not reach their containers: the change goes in by a build.
        let mut fallback = Plan::default();
        while let Some(done) = syncs.join_next().await {
            if let Ok(Some((image, sync))) = done {
                for r in sync.resources {
                    let used = basis.facts.uses.get(&r).cloned().unwrap_or_default();
                    fallback.applies.insert(r, used);
                }
                fallback.builds.insert(image, sync.digest);
            }
        }
        if !fallback.builds.is_empty() {
            let last = last
                .into_iter()
                .chain(built.iter().map(|(i, b)| (i.clone(), b.clone())))
                .collect();
            let more = Box::pin(self.clone().carry_out(basis, fallback, last)).await;
            failures.extend(more.failures);
            built.extend(more.built);
        }
        Outcome { failures, built }
    }

    /// Carries out the sync of `image`; says what it did, or why it failed. Returns whether
    /// a full build must take over.
    async fn sync(&self, basis: &Basis, image: &str, sync: &plan::live::Sync) -> bool {
        let Basis {
            project,
            change,
            walk,
            ..
        } = basis;
        let pods: BTreeMap<String, PodSet> = sync
            .resources
            .iter()
            .filter_map(|r| {
                let set = self.targets.get(r)?.borrow().clone()?;
                Some((r.clone(), set))
            })
            .collect();
        let request = live::Request {
            image,
            digest: sync.digest.as_ref().ok().cloned(),
            changed: &sync.changed,
            runs: &sync.runs,
            replay: false,
        };
        let result = self
            .live
            .sync(project, request, &pods, &self.event_tx)
            .await;
        match result {
            Ok(report) => {
                let report = Arc::new(report);
                for r in &sync.resources {
                    self.emit(Event::Synced {
                        resource: r.clone(),
                        report: report.clone(),
                    });
                    self.emit(Event::Ready {
                        resource: r.clone(),
                        update: change.as_ref().map(|c| UpdateTiming {
                            watch: c.settled.duration_since(c.first_event),
                            digest: *walk,
                            host_build: report.host_build_time,
                            sync: report.sync,
                            restart: report.restarted.unwrap_or_default(),
                            total: c.first_event.elapsed(),
                            ..UpdateTiming::default()
                        }),
                    });
                }
                false
            }
            Err(e) => {
                let rebuild = e.falls_back();
                for r in &sync.resources {
                    self.emit(Event::SyncFailed {
                        resource: r.clone(),
                        image: image.to_owned(),
                        reason: super::report(&e),
                        rebuild,
                    });
                }
                rebuild
            }
        }
    }

    /// Builds `name` at the `digest` the plan saw.
    async fn build(
        &self,
        project: &Project,
        name: &str,
        digest: Digest,
        force: bool,
    ) -> Result<Built, Arc<BuildError>> {
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
        let inputs_error = |source| BuildError::Inputs {
            image: name.to_owned(),
            source,
        };
        let result = match (project.images.get(name), digest) {
            (Some(image), Ok(digest)) => {
                let work =
                    self.builder
                        .ensure_at(image, digest, BuildTimings::default(), force, progress);
                ticking(&self.event_tx, name, work).await
            }
            (_, Err(source)) => Err(inputs_error(source)),
            (None, Ok(_)) => Err(inputs_error(Arc::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the image is no longer in tether.toml",
            )))),
        }
        .map_err(Arc::new);
        if let (Ok(b), Some(image)) = (&result, project.images.get(name)) {
            self.live.built(image, b.rebuilt).await;
        }
        self.emit(Event::BuildDone {
            image: name.to_owned(),
            result: result.clone(),
        });
        result
    }

    /// Deploys `name`'s objects, as the basis's walk read them, once its images are
    /// built (`waits`) and the resources it depends on are ready. `pinned` are the
    /// references of its images this round does not build.
    async fn deploy(
        &self,
        basis: &Basis,
        name: &str,
        waits: Vec<(String, BuildResult)>,
        mut pinned: BTreeMap<String, String>,
    ) -> Result<(), RoundError> {
        let project = &basis.project;
        let Some(resource) = project.resources.get(name) else {
            return Err(RoundError::NoResource(name.to_owned()));
        };
        // Only a walk that panicked leaves a resource unread: read it now.
        let unread;
        let read = match basis.facts.objects.get(name) {
            Some(read) => read,
            None => {
                unread = sources::read(resource);
                &unread
            }
        };
        // This resource's images.
        let mut timing = UpdateTiming {
            digest: basis.walk,
            ..UpdateTiming::default()
        };
        for (image, mut rx) in waits {
            let result = rx
                .wait_for(Option::is_some)
                .await
                .map_err(|_| RoundError::Abandoned {
                    image: image.clone(),
                })?
                .clone();
            match result {
                Some(Ok(b)) => {
                    timing.host_build += b.timings.host_build;
                    timing.image_build += b.timings.image_build;
                    timing.push += b.timings.push;
                    pinned.insert(image, b.reference);
                }
                Some(Err(source)) => return Err(RoundError::Build { image, source }),
                None => {}
            }
        }
        // The resources it depends on.
        let mut ready = self.ready.subscribe();
        for dep in &resource.depends_on {
            if !ready.borrow().contains(dep) {
                self.emit(Event::Waiting {
                    resource: name.to_owned(),
                    reason: format!("waiting for `{dep}` to be ready"),
                });
            }
            tokio::select! {
                r = ready.wait_for(|ready| ready.contains(dep)) => { r.map_err(|_| RoundError::Stopped)?; }
                _ = self.shutdown.cancelled() => return Err(RoundError::Stopped),
            }
        }
        self.emit(Event::DeployStarted {
            resource: name.to_owned(),
        });
        let t = Instant::now();
        // A shared instance is every consumer's: none of them syncs into it.
        let shared = self.shared_profile(project, name);
        let prepared = if shared.is_some() {
            None
        } else {
            self.live
                .prepare(
                    project,
                    self.deployer.client(),
                    self.builder.registry(),
                    resource,
                    &pinned,
                    |line: &str| {
                        self.emit(Event::Waiting {
                            resource: name.to_owned(),
                            reason: line.to_owned(),
                        })
                    },
                )
                .await
                .map_err(RoundError::LiveUpdate)?
        };
        let mut rendered = self
            .deployer
            .render(
                resource,
                read,
                &pinned,
                prepared.as_ref().map(|p| p.injection()).as_ref(),
            )
            .await
            .map_err(RoundError::Deploy)?;
        // A count scaled by hand stands until tether.toml changes.
        replicas::Overrides::load(project).apply(
            name,
            self.deployer.session(),
            &mut rendered.objects,
        );
        let joined = match &shared {
            Some(run) => Some(self.join_shared(run, resource, &rendered).await?),
            None => None,
        };
        // A reused instance runs this rendering already: nothing is sent.
        if joined != Some(shared::Joined::Reused) {
            let counts = self
                .deployer
                .apply(name, &rendered)
                .await
                .map_err(RoundError::Deploy)?;
            self.emit(Event::Applied {
                resource: name.to_owned(),
                counts,
            });
            // The last consumer out deletes these objects by UID.
            if shared.is_some() {
                shared::Store::new(self.deployer.client().clone(), &resource.namespace, name)
                    .note_uids(&self.deployer.uids(name))
                    .await
                    .map_err(|e| RoundError::Shared(Arc::new(e)))?;
            }
        }
        timing.apply = t.elapsed();
        let observed = self.observe(name, &rendered.workloads);

        let t = Instant::now();
        self.wait_ready(name, observed)
            .await
            .map_err(RoundError::NotReady)?;
        if let Some(argv) = &resource.ready_cmd {
            self.wait_ready_cmd(name, argv)
                .await
                .map_err(RoundError::NotReady)?;
        }
        timing.rollout = t.elapsed();
        let update = basis.change.as_ref().map(|c| {
            timing.watch = c.settled.duration_since(c.first_event);
            timing.total = c.first_event.elapsed();
            timing
        });
        self.live
            .deployed(name, prepared.as_ref(), rendered.supervised.clone());
        self.keep_synced(project, name);
        self.keep_status(name, resource.status_cmd.as_deref());
        // Ready first: what the resource's observer reports from now on comes after it.
        self.emit(Event::Ready {
            resource: name.to_owned(),
            update,
        });
        self.ready.send_modify(|ready| {
            ready.insert(name.to_owned());
        });
        Ok(())
    }

    /// The run's profile when `name` is one of its shared resources.
    fn shared_profile(&self, project: &Project, name: &str) -> Option<crate::config::ProfileRun> {
        let run = self.options.profile.as_ref()?;
        let profile = project.profiles.get(&run.name)?;
        profile.is_shared(name).then(|| run.clone())
    }

    /// Joins the shared instance of `resource` with this rendering: made by this run,
    /// reused as it runs, or redeployed by its owner; another rendering of someone
    /// else's is refused with the difference.
    async fn join_shared(
        &self,
        run: &crate::config::ProfileRun,
        resource: &crate::config::Resource,
        rendered: &crate::deploy::Rendered,
    ) -> Result<shared::Joined, RoundError> {
        let store = shared::Store::new(
            self.deployer.client().clone(),
            &resource.namespace,
            &resource.name,
        );
        let me = shared::Consumer {
            user: run.user.clone(),
            checkout: self.deployer.session().to_owned(),
        };
        let parts = shared::parts_of(&rendered.objects);
        let (joined, instance) = store
            .join(&me, &parts)
            .await
            .map_err(|e| RoundError::Shared(Arc::new(e)))?;
        let what = match joined {
            shared::Joined::Created => "created",
            shared::Joined::Reused => "reused",
            shared::Joined::Redeployed => "redeployed by its owner",
        };
        self.emit(Event::Shared {
            resource: resource.name.clone(),
            note: format!(
                "shared instance in {}: {what} (owner {}, consumers {})",
                store.namespace(),
                instance.owner,
                instance.consumers_in_words()
            ),
        });
        Ok(joined)
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

    /// Waits until `argv`, run in a ready pod of `name`, exits 0; in `--ci` mode for at
    /// most the timeout.
    async fn wait_ready_cmd(&self, name: &str, argv: &[String]) -> Result<(), String> {
        let Some(set) = self.targets.get(name).and_then(|t| t.borrow().clone()) else {
            return Ok(());
        };
        let mut last = None;
        let wait = checks::until_ready(&set, argv, |reason| {
            self.emit(Event::Waiting {
                resource: name.to_owned(),
                reason: reason.clone(),
            });
            last = Some(reason);
        });
        let limit = if self.options.ci {
            self.options.timeout
        } else {
            Duration::MAX
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => Err("stopped".to_owned()),
            done = tokio::time::timeout(limit, wait) => match done {
                Ok(()) => Ok(()),
                Err(_) => Err(format!(
                    "not ready after {}s: {}",
                    limit.as_secs(),
                    last.unwrap_or_else(|| format!("ready_cmd `{}` did not pass", argv.join(" ")))
                )),
            },
        }
    }

    /// (Re)starts the task that feeds `name`'s status panel from its `status_cmd`, on
    /// the pods of this deploy; stops it when the resource has none any more.
    fn keep_status(&self, name: &str, argv: Option<&[String]>) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = status.remove(name) {
            old.abort();
        }
        let (Some(argv), Some(set)) = (
            argv,
            self.targets.get(name).and_then(|t| t.borrow().clone()),
        ) else {
            return;
        };
        let task = checks::keep_status(set, argv.to_vec(), name.to_owned(), self.event_tx.clone());
        let shutdown = self.shutdown.clone();
        let handle = self.tasks.spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = shutdown.cancelled() => {}
            }
        });
        status.insert(name.to_owned(), handle.abort_handle());
    }

    /// (Re)starts the task that brings pods of `name` appearing after a sync to the synced
    /// state.
    fn keep_synced(&self, project: &Project, name: &str) {
        let Some(set) = self.targets.get(name).and_then(|t| t.borrow().clone()) else {
            return;
        };
        let keeper = self.live.clone().keep(
            Arc::new(project.clone()),
            name.to_owned(),
            set,
            self.event_tx.clone(),
        );
        let shutdown = self.shutdown.clone();
        let handle = self.tasks.spawn(async move {
            tokio::select! {
                _ = keeper => {}
                _ = shutdown.cancelled() => {}
            }
        });
        let mut keepers = self.keepers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = keepers.insert(name.to_owned(), handle.abort_handle()) {
            old.abort();
        }
    }

    /// Keeps one set of watches per resource: its pods (for forwards, logs and readiness)
    /// while its workloads stay the same, and a fresh rollout observer for each apply.
    fn observe(&self, name: &str, workloads: &[Workload]) -> watch::Receiver<rollout::Observed> {
        let client = self.deployer.client();
        let settled = self.ready.subscribe();
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
