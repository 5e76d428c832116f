//! Sync or rebuild: which of a plan's builds can go straight into the running containers
//! instead, by the image's live-update rules, and in words why the others cannot.
//!
//! An image is synced only when every resource that uses it would otherwise not be
//! redeployed: a rollout starts pods from the image, so a synced change must be in it.
//! For the same reason a resource redeployed while its containers hold synced changes
//! gets its image rebuilt.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use super::{Facts, Plan};
use crate::{
    config::{Image, Project},
    watch::ChangeSet,
};

/// What runs in the containers now, as far as live update cares.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// Images whose deployed containers run under tether's supervisor.
    pub supervised: BTreeSet<String>,
    /// Images whose containers hold synced changes their image does not have.
    pub synced: BTreeSet<String>,
}

/// A change that goes into the running containers of `resources`.
#[derive(Debug, Clone)]
pub struct Sync {
    /// The image's input digest after this change: what the containers hold once synced,
    /// and what a fallback builds.
    pub digest: super::Digest,
    /// The changed files of the image's inputs, absolute.
    pub changed: Vec<PathBuf>,
    /// Indexes into `live_update.run` of the steps this change triggers.
    pub runs: Vec<usize>,
    /// The resources whose pods receive it.
    pub resources: BTreeSet<String>,
}

/// Moves from `plan.builds` to `plan.syncs` every image whose change its rules cover, and
/// records in `plan.rebuilds` why each other supervised image is built.
pub fn decide(
    mut plan: Plan,
    change: &ChangeSet,
    project: &Project,
    facts: &Facts,
    running: &Running,
) -> Plan {
    let users = |image: &str| -> BTreeSet<String> {
        facts
            .uses
            .iter()
            .filter(|(_, used)| used.contains(image))
            .map(|(r, _)| r.clone())
            .collect()
    };
    // Syncable by its own rules.
    let mut candidates = BTreeMap::new();
    for name in plan.builds.keys() {
        let Some(image) = project.images.get(name) else {
            continue;
        };
        if image.live_update.is_none() || !running.supervised.contains(name) {
            continue;
        }
        let changed = changed_inputs(image, change, facts);
        match refusal(image, &changed, change) {
            Some(reason) => {
                plan.rebuilds.insert(name.clone(), reason);
            }
            None => {
                candidates.insert(name.clone(), changed);
            }
        }
    }
    // Resources redeployed anyway: their manifests changed, or another image they use
    // is built. Their images are built too, until nothing moves.
    let manifest_changed: BTreeSet<&String> = project
        .resources
        .values()
        .filter(|r| change.paths.iter().any(|p| r.renders_from(p)))
        .map(|r| &r.name)
        .collect();
    loop {
        let redeployed: BTreeMap<&String, String> = plan
            .applies
            .iter()
            .filter_map(|(r, used)| {
                if manifest_changed.contains(r) {
                    return Some((r, format!("`{r}`'s manifests changed too")));
                }
                used.iter()
                    .find(|i| plan.builds.contains_key(*i) && !candidates.contains_key(*i))
                    .map(|i| (r, format!("`{r}` is redeployed for image `{i}`")))
            })
            .collect();
        let demoted: Vec<(String, String)> = candidates
            .keys()
            .filter_map(|i| {
                users(i)
                    .iter()
                    .find_map(|r| redeployed.get(r).cloned())
                    .map(|why| (i.clone(), why))
            })
            .collect();
        if demoted.is_empty() {
            break;
        }
        for (image, why) in demoted {
            candidates.remove(&image);
            plan.rebuilds.insert(image, why);
        }
    }
    // A redeployed resource whose containers hold synced changes: build them in.
    for (r, used) in &plan.applies {
        for i in used {
            if running.synced.contains(i) && !plan.builds.contains_key(i) {
                if let Some(digest) = facts.digests.get(i) {
                    plan.builds.insert(i.clone(), digest.clone());
                    plan.rebuilds.insert(
                        i.clone(),
                        format!("`{r}` is redeployed, so its synced changes go into an image"),
                    );
                }
            }
        }
    }
    for (name, changed) in candidates {
        let Some(digest) = plan.builds.remove(&name) else {
            continue;
        };
        let resources = users(&name);
        for r in &resources {
            plan.applies.remove(r);
        }
        let runs = project.images[&name]
            .live_update
            .as_ref()
            .map(|l| {
                l.run
                    .iter()
                    .enumerate()
                    .filter(|(_, rule)| {
                        rule.trigger.is_empty()
                            || changed
                                .iter()
                                .any(|f| rule.trigger.iter().any(|t| t.matches(f)))
                    })
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default();
        plan.syncs.insert(
            name,
            Sync {
                digest,
                changed,
                runs,
                resources,
            },
        );
    }
    plan
}

/// The changed paths that are inputs of `image` (deleted ones included).
fn changed_inputs(image: &Image, change: &ChangeSet, facts: &Facts) -> Vec<PathBuf> {
    change
        .paths
        .iter()
        .filter(|p| {
            facts
                .inputs
                .get(&image.name)
                .is_some_and(|files| files.contains(*p))
                || (facts.gone.contains(*p) && image.inputs.iter().any(|i| p.starts_with(i)))
        })
        .cloned()
        .collect()
}

/// Why this change of `image` must be built into a new image, if it must.
fn refusal(image: &Image, changed: &[PathBuf], change: &ChangeSet) -> Option<String> {
    let live = image.live_update.as_ref()?;
    if change.rescan.is_some() {
        return Some("the watcher rescanned, so what changed is not known file by file".into());
    }
    if change.paths.contains(&image.dockerfile) {
        return Some(format!("{} changed", shown(&image.dockerfile, image)));
    }
    if let Some((file, pattern)) = changed
        .iter()
        .find_map(|f| live.falls_back_on(f).map(|p| (f, p)))
    {
        return Some(format!(
            "{} matches fall_back_on `{}`",
            shown(file, image),
            pattern.written
        ));
    }
    // With a host build, every input goes through it and its outputs are what syncs.
    if image.host_build.is_none() {
        if let Some(file) = changed.iter().find(|f| live.target(f).is_none()) {
            return Some(format!(
                "{} is an input no sync rule covers",
                shown(file, image)
            ));
        }
    }
    None
}

/// `path` as the developer wrote paths: relative to the folder of the image's tether.toml.
fn shown(path: &Path, image: &Image) -> String {
    let dir = image
        .declared_at
        .file
        .parent()
        .unwrap_or_else(|| Path::new("/"));
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests;
