//! Rendering: the YAML a resource names, made into the exact objects tether applies.
//!
//! Rendering fills in the namespace, points `image:` fields that name a tether image at
//! what was built, and stamps ownership labels, so the rendered form is everything that
//! decides whether an object must be sent again.

use std::{collections::BTreeMap, path::Path};

use kube::api::DynamicObject;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::registry::reference::repository_as_written;

/// Labels every object tether applies carries; `down` and the safety sweep select on them.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const SESSION_LABEL: &str = "tether.dev/session";
pub const RESOURCE_LABEL: &str = "tether.dev/resource";
/// The hash of the rendered object, compared to skip unchanged objects.
pub const HASH_ANNOTATION: &str = "tether.dev/rendered-hash";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: cannot read")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: invalid YAML: {message}")]
    Yaml {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{file}: document {index} is not a Kubernetes object: {message}")]
    NotAnObject {
        file: String,
        index: usize,
        message: String,
    },
    #[error("rendering the {what} needs `{program}` on PATH, and there is none")]
    ToolMissing { what: String, program: String },
    #[error("rendering the {what} failed (`{command}`): {message}")]
    Render {
        what: String,
        command: String,
        message: String,
    },
}

/// Reads every YAML document of `path` that is not empty.
pub fn read(path: &Path) -> Result<Vec<DynamicObject>, ManifestError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

pub fn parse(file: &str, text: &str) -> Result<Vec<DynamicObject>, ManifestError> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| {
            let (line, col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            ManifestError::Yaml {
                file: file.to_owned(),
                line,
                col,
                message: e.to_string(),
            }
        })?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject =
            serde_yaml_ng::from_value(value).map_err(|e| ManifestError::NotAnObject {
                file: file.to_owned(),
                index: index + 1,
                message: e.to_string(),
            })?;
        if obj.types.is_none() || obj.metadata.name.is_none() {
            return Err(ManifestError::NotAnObject {
                file: file.to_owned(),
                index: index + 1,
                message: "it needs apiVersion, kind and metadata.name".into(),
            });
        }
        out.push(obj);
    }
    Ok(out)
}

/// Replaces `image: NAME` (and `NAME:tag`, `NAME@digest`) in containers and init containers with
/// the built reference. Returns the image names it replaced.
pub fn pin_images(obj: &mut DynamicObject, built: &BTreeMap<String, String>) -> Vec<String> {
    let mut used = Vec::new();
    let Some(spec) = pod_spec_mut(&mut obj.data) else {
        return used;
    };
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(|c| c.as_array_mut()) else {
            continue;
        };
        for c in containers {
            let Some(image) = c.get("image").and_then(|i| i.as_str()) else {
                continue;
            };
            let name = repository_as_written(image);
            if let Some(reference) = built.get(name) {
                used.push(name.to_owned());
                c["image"] = serde_json::Value::String(reference.clone());
            }
        }
    }
    used
}

/// The pod spec of a workload object (Deployment, StatefulSet, DaemonSet, ReplicaSet,
/// Job: `spec.template.spec`; CronJob: one level deeper; a bare Pod: `spec`).
pub fn pod_spec_mut(data: &mut serde_json::Value) -> Option<&mut serde_json::Value> {
    let spec = data.get_mut("spec")?;
    if spec.get("containers").is_some() {
        return Some(spec);
    }
    if spec.get("jobTemplate").is_some() {
        return spec.pointer_mut("/jobTemplate/spec/template/spec");
    }
    spec.pointer_mut("/template/spec")
}

/// Image names referenced by a workload's containers, as written in the manifest.
pub fn image_names(obj: &DynamicObject) -> Vec<String> {
    let mut data = obj.data.clone();
    let Some(spec) = pod_spec_mut(&mut data) else {
        return Vec::new();
    };
    ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec.get(l).and_then(|c| c.as_array()))
        .flatten()
        .filter_map(|c| c.get("image").and_then(|i| i.as_str()))
        .map(|i| repository_as_written(i).to_owned())
        .collect()
}

/// Stamps ownership labels and the content hash. The hash covers everything else, so it
/// changes exactly when the object tether would send changes.
pub fn stamp(obj: &mut DynamicObject, session: &str, resource: &str) {
    let labels = obj.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(MANAGED_BY.into(), "tether".into());
    labels.insert(SESSION_LABEL.into(), session.into());
    labels.insert(RESOURCE_LABEL.into(), resource.into());
    if let Some(a) = obj.metadata.annotations.as_mut() {
        a.remove(HASH_ANNOTATION);
        if a.is_empty() {
            obj.metadata.annotations = None;
        }
    }
    let hash = content_hash(obj);
    obj.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_ANNOTATION.into(), hash);
}

fn content_hash(obj: &DynamicObject) -> String {
    // serde_json's map is ordered (BTreeMap), so equal objects serialise to equal bytes.
    let bytes = serde_json::to_vec(obj).unwrap_or_default();
    hex::encode(&Sha256::digest(bytes)[..12])
}

/// The hash stamped by [`stamp`], if any.
pub fn hash_of(obj: &DynamicObject) -> Option<&str> {
    obj.metadata
        .annotations
        .as_ref()?
        .get(HASH_ANNOTATION)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: users\nspec:\n  template:\n    spec:\n      containers:\n      - name: users\n        image: users\n      - name: side\n        image: busybox:1.36\n---\n# just a comment\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: users-svc\n";

    #[test]
    fn parses_documents_and_pins_only_tether_images() {
        let mut objs = parse("k8s/users.yaml", DEPLOY).unwrap();
        assert_eq!(objs.len(), 2);
        let built = BTreeMap::from([(
            "users".to_owned(),
            "127.0.0.1:5000/users:tether-1".to_owned(),
        )]);
        assert_eq!(image_names(&objs[0]), ["users", "busybox"]);
        assert_eq!(pin_images(&mut objs[0], &built), ["users"]);
        let spec = pod_spec_mut(&mut objs[0].data).unwrap();
        assert_eq!(
            spec["containers"][0]["image"],
            "127.0.0.1:5000/users:tether-1"
        );
        assert_eq!(spec["containers"][1]["image"], "busybox:1.36");
    }

    #[test]
    fn images_written_with_a_registry_port_or_digest_are_pinned_by_their_repository() {
        let yaml = DEPLOY
            .replace("image: users", "image: localhost:5000/users:old")
            .replace("image: busybox:1.36", "image: ghcr.io/org/side@sha256:0123");
        let mut objs = parse("k8s/users.yaml", &yaml).unwrap();
        assert_eq!(
            image_names(&objs[0]),
            ["localhost:5000/users", "ghcr.io/org/side"]
        );
        let built = BTreeMap::from([(
            "localhost:5000/users".to_owned(),
            "localhost:5000/users:tether-2".to_owned(),
        )]);
        assert_eq!(pin_images(&mut objs[0], &built), ["localhost:5000/users"]);
        let spec = pod_spec_mut(&mut objs[0].data).unwrap();
        assert_eq!(
            spec["containers"][0]["image"],
            "localhost:5000/users:tether-2"
        );
    }

    #[test]
    fn yaml_errors_name_file_line_and_column() {
        let e = parse("k8s/x.yaml", "kind: Service\nmetadata: [\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k8s/x.yaml:"), "{e}");
        let e = parse("k8s/x.yaml", "just: text\n").unwrap_err().to_string();
        assert!(e.contains("document 1 is not a Kubernetes object"), "{e}");
    }

    #[test]
    fn hash_changes_with_content_and_not_with_restamping() {
        let mut a = parse("f", DEPLOY).unwrap().remove(1);
        stamp(&mut a, "s1", "users");
        let h1 = hash_of(&a).unwrap().to_owned();
        stamp(&mut a, "s1", "users");
        assert_eq!(hash_of(&a).unwrap(), h1);
        a.data["spec"] = serde_json::json!({"ports": [{"port": 80}]});
        stamp(&mut a, "s1", "users");
        assert_ne!(hash_of(&a).unwrap(), h1);
    }
}
