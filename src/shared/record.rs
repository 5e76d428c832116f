//! One shared instance as the cluster keeps it: the data of ConfigMap
//! `tether-shared-RESOURCE` in the instance's namespace. A ConfigMap rather than a Lease:
//! its data holds the owner, the digest, the objects and the consumers as text that
//! `kubectl get configmap -o yaml` shows as is, and its resourceVersion gives the
//! optimistic updates a Lease would; nothing here expires, so a Lease's renewals would
//! only be noise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use kube::api::DynamicObject;

use crate::deploy::{ObjectRef, manifest};

/// Data keys of the ConfigMap.
const OWNER: &str = "owner";
const DIGEST: &str = "digest";
const OBJECTS: &str = "objects";
const CONSUMERS: &str = "consumers";

/// One instance: who made it, what runs, who uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The identity that created it (the API server's name for the credentials): the
    /// one consumer who may deploy another version over it.
    pub owner: String,
    /// A digest over `parts`: equal digests are the same rendering.
    pub digest: String,
    /// What was deployed, object by object, to say a difference in words and for the
    /// last consumer out to delete (by UID).
    pub parts: Vec<Part>,
    /// Who uses it now; the instance goes with the last of them.
    pub consumers: Vec<Consumer>,
}

/// One deployed object of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub object: ObjectRef,
    /// tether's rendered hash of the object (it covers everything sent).
    pub hash: String,
    /// The image references its containers run.
    #[serde(default)]
    pub images: Vec<String>,
    /// Its UID once applied, so the last consumer deletes this object and no namesake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// One consumer: an identity in one checkout, so one user's two checkouts count twice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Consumer {
    pub user: String,
    /// The checkout's ownership label value (a hash of its host and path).
    pub checkout: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("it has no `{0}`")]
    Missing(&'static str),
    #[error("its `{key}` is not what tether writes")]
    Invalid {
        key: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// The ConfigMap of `resource`'s instance (a name of at most 63 characters).
pub fn config_map_name(resource: &str) -> String {
    cut(format!("tether-shared-{resource}"))
}

/// The ownership label value of `resource`'s instance objects: the same for every
/// consumer, so whoever is last out may delete what another consumer applied, and the
/// rendered hash (which covers the label) is the same from every checkout.
pub fn label(resource: &str) -> String {
    cut(format!("shared-{resource}"))
}

fn cut(s: String) -> String {
    s.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// The parts of a rendering (objects as [`crate::deploy::Deployer::render`] stamped them).
pub fn parts_of(objects: &[(ObjectRef, DynamicObject)]) -> Vec<Part> {
    objects
        .iter()
        .map(|(r, obj)| {
            let mut images = Vec::new();
            images_in(&obj.data, &mut images);
            images.sort();
            images.dedup();
            Part {
                object: r.clone(),
                hash: manifest::hash_of(obj).unwrap_or_default().to_owned(),
                images,
                uid: None,
            }
        })
        .collect()
}

/// Every container's image anywhere in `v` (a pod, a workload's template, a CronJob's).
fn images_in(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "containers" || k == "initContainers" {
                    let images = v.as_array().into_iter().flatten();
                    out.extend(images.filter_map(|c| c.get("image")?.as_str().map(str::to_owned)));
                } else {
                    images_in(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| images_in(v, out)),
        _ => {}
    }
}

impl Instance {
    /// The digest of a rendering: its objects and their hashes, in a fixed order.
    pub fn digest_of(parts: &[Part]) -> String {
        let mut lines: Vec<_> = parts
            .iter()
            .map(|p| format!("{}\t{}", p.object, p.hash))
            .collect();
        lines.sort();
        hex::encode(&Sha256::digest(lines.join("\n").as_bytes())[..12])
    }

    /// The consumers in words: `alice, bob`.
    pub fn consumers_in_words(&self) -> String {
        let mut users: Vec<_> = self.consumers.iter().map(|c| c.user.as_str()).collect();
        users.dedup();
        if users.is_empty() {
            "none".to_owned()
        } else {
            users.join(", ")
        }
    }

    pub fn encode(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (OWNER.to_owned(), self.owner.clone()),
            (DIGEST.to_owned(), self.digest.clone()),
            (OBJECTS.to_owned(), pretty(&self.parts)),
            (CONSUMERS.to_owned(), pretty(&self.consumers)),
        ])
    }

    pub fn decode(data: &BTreeMap<String, String>) -> Result<Instance, RecordError> {
        let get = |key: &'static str| data.get(key).ok_or(RecordError::Missing(key));
        Ok(Instance {
            owner: get(OWNER)?.clone(),
            digest: get(DIGEST)?.clone(),
            parts: parse(OBJECTS, get(OBJECTS)?)?,
            consumers: parse(CONSUMERS, get(CONSUMERS)?)?,
        })
    }
}

/// Pretty JSON, for people reading the ConfigMap. Lists of plain structs of strings:
/// serialising them cannot fail.
fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(key: &'static str, text: &str) -> Result<T, RecordError> {
    serde_json::from_str(text).map_err(|source| RecordError::Invalid { key, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, hash: &str) -> Part {
        Part {
            object: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("stage".into()),
                name: name.into(),
            },
            hash: hash.into(),
            images: vec!["busybox:1.36".into()],
            uid: None,
        }
    }

    #[test]
    fn an_instance_round_trips_through_config_map_data() {
        let parts = vec![part("pipeline", "abc")];
        let i = Instance {
            owner: "alice".into(),
            digest: Instance::digest_of(&parts),
            parts,
            consumers: vec![Consumer {
                user: "alice".into(),
                checkout: "shop-0123456789".into(),
            }],
        };
        let data = i.encode();
        assert_eq!(data["owner"], "alice");
        assert!(data["consumers"].contains("shop-0123456789"));
        assert_eq!(Instance::decode(&data).unwrap(), i);
        let mut broken = data.clone();
        broken.insert("objects".into(), "[{".into());
        let e = Instance::decode(&broken).unwrap_err().to_string();
        assert_eq!(e, "its `objects` is not what tether writes");
        broken.remove("owner");
        assert_eq!(
            Instance::decode(&broken).unwrap_err().to_string(),
            "it has no `owner`"
        );
    }

    #[test]
    fn the_digest_ignores_order_and_uids_and_sees_hashes() {
        let (a, b) = (part("a", "1"), part("b", "2"));
        let mut with_uid = a.clone();
        with_uid.uid = Some("uid".into());
        assert_eq!(
            Instance::digest_of(&[a.clone(), b.clone()]),
            Instance::digest_of(&[b.clone(), with_uid])
        );
        assert_ne!(
            Instance::digest_of(&[a.clone(), b]),
            Instance::digest_of(&[a, part("b", "3")])
        );
    }

    #[test]
    fn parts_carry_each_objects_hash_and_images() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "pipeline", "annotations": {"tether.dev/rendered-hash": "h1"}},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "i", "image": "busybox:1.36"}],
                "containers": [{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "busybox:1.36"}],
            }}},
        }))
        .unwrap();
        let parts = parts_of(&[(part("pipeline", "x").object, obj)]);
        assert_eq!(parts[0].hash, "h1");
        assert_eq!(parts[0].images, ["busybox:1.36", "nginx:1"]);
    }

    #[test]
    fn names_fit_kubernetes() {
        assert_eq!(config_map_name("pipeline"), "tether-shared-pipeline");
        assert_eq!(label("pipeline"), "shared-pipeline");
        let long = "x".repeat(70);
        assert_eq!(config_map_name(&long).len(), 63);
        assert_eq!(label(&long).len(), 63);
    }
}
