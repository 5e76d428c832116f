//! The facts a plan reads, gathered once per change set: which changed paths are each
//! image's input files (one walk per image, whatever the number of changed paths), its
//! digest over all those files, each resource's objects (kustomize and Helm run once,
//! here) and the images they name. Reads the disk; the decisions are made from the result by the pure
//! `engine::plan`, and the round applies the same objects.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
};

use super::plan::Facts;
use crate::{
    build::{HashCache, inputs},
    config::Project,
    deploy::{manifest, sources},
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
            // Only what the plan asks (is this changed path an input?) is kept: a tree of
            // 100,000 files would otherwise be held twice while a round runs.
            let changed_inputs = files.into_iter().filter(|f| changed.contains(f)).collect();
            facts.inputs.insert(name.clone(), changed_inputs);
            digest
        });
        facts.digests.insert(name.clone(), digest.map_err(Arc::new));
    }
    for (name, resource) in &project.resources {
        let read = sources::read(resource);
        // An unreadable manifest names no image here; applying it reports the error.
        let used = read
            .iter()
            .flatten()
            .flat_map(|s| &s.objects)
            .flat_map(manifest::image_names)
            .filter(|i| project.images.contains_key(i))
            .collect();
        facts.uses.insert(name.clone(), used);
        facts.objects.insert(name.clone(), read);
    }
    facts
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::config::{Image, Location, Resource};

    #[test]
    fn one_walk_gives_inputs_digests_uses_and_what_is_gone() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("src")).unwrap();
        fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(d.join("src/main.rs"), "fn main() {}").unwrap();
        fs::write(d.join("src/lib.rs"), "").unwrap();
        fs::write(
            d.join("k8s.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: web, image: web}\n  - {name: side, image: busybox}\n",
        )
        .unwrap();
        let at = Location {
            file: d.join("tether.toml"),
            line: 1,
            col: 1,
        };
        let project = Project {
            root: d.to_path_buf(),
            allow_contexts: vec![],
            registry: None,
            profiles: BTreeMap::new(),
            default_profile: None,
            images: BTreeMap::from([(
                "web".to_owned(),
                Image {
                    name: "web".into(),
                    context: d.to_path_buf(),
                    dockerfile: d.join("Dockerfile"),
                    host_build: None,
                    inputs: vec![d.join("src")],
                    live_update: None,
                    declared_at: at.clone(),
                },
            )]),
            resources: BTreeMap::from([(
                "web".to_owned(),
                Resource {
                    name: "web".into(),
                    namespace: "api".into(),
                    force_namespace: false,
                    manifests: vec![crate::config::Manifests::File(d.join("k8s.yaml"))],
                    depends_on: vec![],
                    port_forwards: vec![],
                    ready_cmd: None,
                    status_cmd: None,
                    overrides: Default::default(),
                    declared_at: at,
                },
            )]),
        };
        let mut caches = BTreeMap::new();
        let changed = BTreeSet::from([d.join("src/main.rs"), d.join("src/old.rs")]);
        let facts = gather(&project, &mut caches, &changed);
        assert_eq!(
            facts.inputs["web"],
            BTreeSet::from([d.join("src/main.rs")]),
            "the changed inputs only: src/lib.rs is an input but did not change"
        );
        assert_eq!(
            facts.uses["web"],
            BTreeSet::from(["web".to_owned()]),
            "busybox is not an image of the project"
        );
        assert_eq!(facts.gone, BTreeSet::from([d.join("src/old.rs")]));
        let first = facts.digests["web"].as_ref().unwrap().clone();
        assert_eq!(
            Some(&first),
            crate::build::inputs::digest(&project.images["web"], &mut HashCache::default())
                .ok()
                .as_ref(),
            "the same digest a build would take"
        );
        fs::write(d.join("src/main.rs"), "fn main() { edited() }").unwrap();
        let again = gather(&project, &mut caches, &changed);
        assert_ne!(again.digests["web"].as_ref().unwrap(), &first);
    }
}
