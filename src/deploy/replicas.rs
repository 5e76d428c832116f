//! Replica counts set by hand (`tether scale`, the TUI's `+`/`-`), kept in
//! `.tether/replicas.json` with a digest of the project's `tether.toml` files. `up`
//! renders them over the manifests' counts, so a redeploy does not undo a scale, until
//! one of those files changes: then the declared count is back in charge.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{ObjectRef, manifest};
use crate::{config::Project, state_dir};

const FILE: &str = "replicas.json";

/// The counts in force for one project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    /// [`config_digest`] of the project when the counts were set.
    config: String,
    workloads: Vec<Override>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub resource: String,
    pub workload: ObjectRef,
    pub replicas: i32,
}

impl Overrides {
    fn path(root: &Path) -> PathBuf {
        root.join(state_dir::NAME).join(FILE)
    }

    /// The counts in force for `project`: none when the file is missing or unreadable, or
    /// when a `tether.toml` changed since they were set.
    pub fn load(project: &Project) -> Overrides {
        let digest = config_digest(project);
        fs::read(Self::path(&project.root))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Overrides>(&bytes).ok())
            .filter(|o| o.config == digest)
            .unwrap_or(Overrides {
                config: digest,
                workloads: Vec::new(),
            })
    }

    /// The resources whose counts a change of `tether.toml` has just ended, forgetting
    /// them: their declared counts are back in charge, and each must be applied again.
    pub fn dropped(project: &Project) -> Vec<String> {
        let Some(kept) = fs::read(Self::path(&project.root))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Overrides>(&bytes).ok())
        else {
            return Vec::new();
        };
        if kept.config == config_digest(project) {
            return Vec::new();
        }
        let _ = Self::clear(&project.root);
        let mut resources: Vec<String> = kept.workloads.into_iter().map(|o| o.resource).collect();
        resources.sort();
        resources.dedup();
        resources
    }

    /// Sets `workload`'s count, replacing an earlier one.
    pub fn set(&mut self, resource: &str, workload: &ObjectRef, replicas: i32) {
        self.workloads.retain(|o| &o.workload != workload);
        self.workloads.push(Override {
            resource: resource.to_owned(),
            workload: workload.clone(),
            replicas,
        });
    }

    pub fn save(&self, project: &Project) -> io::Result<()> {
        state_dir::ensure(&project.root)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        state_dir::write_private(&Self::path(&project.root), &bytes)
    }

    /// Forgets every count of the project at `root` (`down`).
    pub fn clear(root: &Path) -> io::Result<()> {
        match fs::remove_file(Self::path(root)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes the counts of `resource`'s workloads into its rendered `objects`, stamping
    /// them again so their hash says what is sent. Returns how many it changed.
    pub fn apply(
        &self,
        resource: &str,
        session: &str,
        objects: &mut [(ObjectRef, DynamicObject)],
    ) -> usize {
        let mut changed = 0;
        for o in self.workloads.iter().filter(|o| o.resource == resource) {
            for (_, obj) in objects
                .iter_mut()
                .filter(|(r, _)| same_workload(r, &o.workload))
            {
                let Some(spec) = obj.data.get_mut("spec").and_then(|s| s.as_object_mut()) else {
                    continue;
                };
                if spec.get("replicas").and_then(|n| n.as_i64()) == Some(i64::from(o.replicas)) {
                    continue;
                }
                spec.insert("replicas".into(), o.replicas.into());
                manifest::stamp(obj, session, resource);
                changed += 1;
            }
        }
        changed
    }
}

/// Kind, namespace and name decide; the API version may move (`apps/v1beta2` → `apps/v1`).
fn same_workload(a: &ObjectRef, b: &ObjectRef) -> bool {
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

/// A digest of the content of the project's `tether.toml` files: a changed file is a
/// changed digest.
pub fn config_digest(project: &Project) -> String {
    let mut h = Sha256::new();
    for file in project.config_files() {
        h.update(file.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(fs::read(&file).unwrap_or_default());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(name: &str, replicas: i64) -> (ObjectRef, DynamicObject) {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": name, "namespace": "pubsub" },
            "spec": { "replicas": replicas, "template": {} },
        }))
        .unwrap();
        let r = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("pubsub".into()),
            name: name.into(),
        };
        (r, obj)
    }

    #[test]
    fn a_count_set_by_hand_replaces_the_manifests_and_changes_the_hash() {
        let mut objects = vec![deployment("medicine", 2), deployment("patient", 1)];
        for (_, o) in &mut objects {
            manifest::stamp(o, "s", "medicine");
        }
        let before = manifest::hash_of(&objects[0].1).map(str::to_owned);
        let mut overrides = Overrides::default();
        overrides.set("medicine", &objects[0].0.clone(), 3);
        assert_eq!(overrides.apply("medicine", "s", &mut objects), 1);
        assert_eq!(objects[0].1.data["spec"]["replicas"], 3);
        assert_ne!(manifest::hash_of(&objects[0].1).map(str::to_owned), before);
        // Another resource's workload of the same name is not touched, nor is another name.
        assert_eq!(objects[1].1.data["spec"]["replicas"], 1);
        assert_eq!(overrides.apply("patient", "s", &mut objects), 0);
        // Applied again, nothing changes: the hash is stable.
        let stamped = manifest::hash_of(&objects[0].1).map(str::to_owned);
        assert_eq!(overrides.apply("medicine", "s", &mut objects), 0);
        assert_eq!(manifest::hash_of(&objects[0].1).map(str::to_owned), stamped);
    }

    #[test]
    fn a_later_count_for_the_same_workload_wins() {
        let (r, _) = deployment("medicine", 2);
        let mut overrides = Overrides::default();
        overrides.set("medicine", &r, 3);
        overrides.set("medicine", &r, 5);
        assert_eq!(overrides.workloads.len(), 1);
        assert_eq!(overrides.workloads[0].replicas, 5);
    }
}
