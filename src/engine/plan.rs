//! The plan of a round: from a change set, the project and the facts one walk gathered
//! ([`Facts`]), decide what to build, what to apply, and which changed files are an input
//! of nothing. Pure: no file, cluster or clock is read here, so every decision has a unit
//! test, and the round only carries it out.
//!
//! [`live`] then moves the builds that live-update rules cover to syncs.
//!
//! Data comes from the watcher ([`ChangeSet`]), `tether.toml` ([`Project`]) and
//! `engine::facts` (input files, digests and image uses as they are now); it goes to the
//! session's round, which builds [`Plan::builds`] and applies [`Plan::applies`].

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    config::{Project, Resource},
    deploy::sources,
    watch::ChangeSet,
};

/// An image's input digest as the walk found it, or why it could not be taken (the build
/// reports that error).
pub type Digest = Result<String, Arc<std::io::Error>>;

/// What is true of the project's files now, gathered once per change set.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Per image: the change set's paths that are among its input files (the walk honours
    /// `.gitignore`/`.dockerignore`); the rest of the walk is not kept.
    pub inputs: BTreeMap<String, BTreeSet<PathBuf>>,
    /// Per image: the digest of those files, its Dockerfile and its host build.
    pub digests: BTreeMap<String, Digest>,
    /// Per resource: the project's images its manifests name.
    pub uses: BTreeMap<String, BTreeSet<String>>,
    /// Per resource: its manifests' objects, per source, as this change set read them;
    /// the round renders and applies these, so no renderer runs twice.
    pub objects: BTreeMap<String, Vec<sources::Read>>,
    /// Changed paths that no longer exist: a deleted input still changes a digest.
    pub gone: BTreeSet<PathBuf>,
}

/// What a round does.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Images to build, each with the one digest this round builds it at.
    pub builds: BTreeMap<String, Digest>,
    /// Resources to apply, with the images each uses.
    pub applies: BTreeMap<String, BTreeSet<String>>,
    /// Changed files that are an input of no image and no manifest, relative to the
    /// project's root as the developer thinks of them.
    pub unrelated: Vec<PathBuf>,
    /// A `tether.toml` of the project changed: reload it, then plan from the new one.
    pub reload: bool,
    /// Images whose change goes into their running containers instead of a build.
    pub syncs: BTreeMap<String, live::Sync>,
    /// Images with live-update rules that are built anyway, and why, in words.
    pub rebuilds: BTreeMap<String, String>,
}

/// How a reloaded `tether.toml` differs from the one running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Resources whose declaration changed (manifests, namespace, dependencies, forwards).
    pub changed: Vec<String>,
    /// Added resources that declare port-forwards: those bind when `up` starts, so they
    /// wait for the next one.
    pub unforwarded: Vec<String>,
}

impl Plan {
    /// Both plans at once: a change set that also changed `tether.toml`.
    pub fn merge(mut self, other: Plan) -> Plan {
        self.builds.extend(other.builds);
        for (r, used) in other.applies {
            self.applies.entry(r).or_default().extend(used);
        }
        self.unrelated.extend(other.unrelated);
        self.reload |= other.reload;
        // A build of the other plan wins over a sync of this one.
        self.syncs.extend(other.syncs);
        self.syncs.retain(|i, _| !self.builds.contains_key(i));
        self.rebuilds.extend(other.rebuilds);
        self
    }
}

/// The plan for a change set. `last` holds, per image, the digest of its last successful
/// build: an input touched without a change of content (a save without edits) builds nothing.
pub fn plan(
    change: &ChangeSet,
    project: &Project,
    facts: &Facts,
    last: &BTreeMap<String, String>,
) -> Plan {
    let configs = project.config_files();
    let mut touched_images = BTreeSet::new();
    let mut applies = BTreeSet::new();
    let mut unrelated = Vec::new();
    let mut reload = false;
    for path in &change.paths {
        if configs.contains(path) {
            reload = true;
            continue;
        }
        let mut related = false;
        for image in project.images.values() {
            let is_input = facts
                .inputs
                .get(&image.name)
                .is_some_and(|files| files.contains(path))
                || *path == image.dockerfile
                || (facts.gone.contains(path) && image.inputs.iter().any(|i| path.starts_with(i)));
            if is_input {
                touched_images.insert(image.name.clone());
                related = true;
            }
        }
        for r in project.resources.values() {
            if r.renders_from(path) {
                applies.insert(r.name.clone());
                related = true;
            }
        }
        // A host build's output that a sync rule sends: written by tether's own round.
        let synced_output = project.images.values().any(|i| {
            i.host_build.is_some()
                && i.live_update
                    .as_ref()
                    .is_some_and(|l| l.target(path).is_some())
        });
        if !related && !synced_output {
            unrelated.push(
                path.strip_prefix(&project.root)
                    .unwrap_or(path)
                    .to_path_buf(),
            );
        }
    }
    let changed = touched_images
        .into_iter()
        .filter(|i| !unchanged(facts, last, i));
    let mut plan = complete(project, facts, last, changed.collect(), applies);
    // After a rescan every file is listed: only what changed is worth a word.
    if change.rescan.is_none() {
        plan.unrelated = unrelated;
    }
    plan.reload = reload;
    plan
}

/// The plan for `resources` as named (the first round, a trigger): every image they use
/// is built at its current digest.
pub fn resources(project: &Project, facts: &Facts, resources: &BTreeSet<String>) -> Plan {
    let applies: BTreeSet<String> = resources
        .iter()
        .filter(|r| project.resources.contains_key(*r))
        .cloned()
        .collect();
    complete(project, facts, &BTreeMap::new(), BTreeSet::new(), applies)
}

/// The plan after `tether.toml` changed from `old` to `new`: new and changed resources
/// are applied, and every image whose digest moved (a new Dockerfile, other inputs, a
/// new host build) is built, with the resources that use it.
pub fn reloaded(
    old: &Project,
    new: &Project,
    facts: &Facts,
    last: &BTreeMap<String, String>,
) -> (Plan, ConfigChange) {
    let mut diff = ConfigChange::default();
    for (name, r) in &new.resources {
        match old.resources.get(name) {
            None => {
                diff.added.push(name.clone());
                if !r.port_forwards.is_empty() {
                    diff.unforwarded.push(name.clone());
                }
            }
            Some(was) if declared_differently(was, r) => diff.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    diff.removed = old
        .resources
        .keys()
        .filter(|n| !new.resources.contains_key(*n))
        .cloned()
        .collect();
    let images = new
        .images
        .keys()
        .filter(|i| !unchanged(facts, last, i))
        .cloned()
        .collect();
    let applies = diff.added.iter().chain(&diff.changed).cloned().collect();
    (complete(new, facts, last, images, applies), diff)
}

/// Adds to `applies` every resource that uses a changed image, and builds every image an
/// applied resource uses that has never been built (a resource that starts using one).
fn complete(
    project: &Project,
    facts: &Facts,
    last: &BTreeMap<String, String>,
    mut images: BTreeSet<String>,
    mut applies: BTreeSet<String>,
) -> Plan {
    for (r, used) in &facts.uses {
        if project.resources.contains_key(r) && used.iter().any(|i| images.contains(i)) {
            applies.insert(r.clone());
        }
    }
    let uses = |r: &String| facts.uses.get(r).cloned().unwrap_or_default();
    for r in &applies {
        images.extend(uses(r).into_iter().filter(|i| !last.contains_key(i)));
    }
    let builds = images
        .into_iter()
        .filter(|i| project.images.contains_key(i))
        .map(|i| {
            let digest = facts.digests.get(&i).cloned().unwrap_or_else(|| {
                Err(Arc::new(std::io::Error::other("its inputs were not read")))
            });
            (i, digest)
        })
        .collect();
    Plan {
        builds,
        applies: applies.iter().map(|r| (r.clone(), uses(r))).collect(),
        unrelated: Vec::new(),
        reload: false,
        syncs: BTreeMap::new(),
        rebuilds: BTreeMap::new(),
    }
}

/// Whether `image`'s digest is the one last built. An unreadable input counts as changed,
/// so the build says what is wrong.
fn unchanged(facts: &Facts, last: &BTreeMap<String, String>, image: &str) -> bool {
    matches!(
        (facts.digests.get(image), last.get(image)),
        (Some(Ok(now)), Some(was)) if now == was
    )
}

fn declared_differently(a: &Resource, b: &Resource) -> bool {
    a.manifests != b.manifests
        || a.namespace != b.namespace
        || a.depends_on != b.depends_on
        || a.port_forwards != b.port_forwards
        || a.ready_cmd != b.ready_cmd
        || a.status_cmd != b.status_cmd
        || a.overrides != b.overrides
}

/// Everything the watcher must watch: image inputs and Dockerfiles, manifests, config files.
pub fn watch_roots(project: &Project) -> Vec<PathBuf> {
    let mut roots: BTreeSet<PathBuf> = project
        .images
        .values()
        .flat_map(|i| i.inputs.iter().chain([&i.dockerfile]).cloned())
        .collect();
    roots.extend(
        project
            .resources
            .values()
            .flat_map(|r| r.manifests.iter().flat_map(|m| m.inputs()))
            .map(Path::to_path_buf),
    );
    roots.extend(project.config_files());
    roots.into_iter().collect()
}

pub mod live;
#[cfg(test)]
mod tests;
