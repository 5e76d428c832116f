//! The facts a plan reads, gathered once per change set: each image's input files (one
//! walk per image, whatever the number of changed paths), its digest over those same
//! files, and the images each resource's manifests name. Reads the disk; the decisions
//! are made from the result by the pure `engine::plan`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
};

use super::plan::Facts;
use crate::{
    build::{HashCache, inputs},
    config::Project,
    deploy::manifest,
};

/// Walks `project` as it is now. `caches` keep file hashes across change sets (keyed by
/// image), so only files whose size or time moved are read again; `changed` are the
/// paths of the change set, of which those gone are noted.
pub fn gather(
    project: &Project,
    caches: &mut BTreeMap<String, HashCache>,
    changed: &BTreeSet<PathBuf>,
) -> Facts {
    let mut facts = Facts {
        gone: changed.iter().filter(|p| !p.exists()).cloned().collect(),
        ..Facts::default()
    };
    for (name, image) in &project.images {
        let cache = caches.entry(name.clone()).or_default();
        let digest = inputs::input_files(image).and_then(|files| {
            let digest = inputs::digest_of(image, &files, cache);
            facts
                .inputs
                .insert(name.clone(), files.into_iter().collect());
            digest
        });
        facts.digests.insert(name.clone(), digest.map_err(Arc::new));
    }
    for (name, resource) in &project.resources {
        // An unreadable manifest names no image here; applying it reports the error.
        let used = resource
            .manifests
            .iter()
            .filter_map(|m| manifest::read(m).ok())
            .flatten()
            .flat_map(|o| manifest::image_names(&o))
            .filter(|i| project.images.contains_key(i))
            .collect();
        facts.uses.insert(name.clone(), used);
    }
    facts
}
