//! A resource's Deployment or StatefulSet scaled by hand, live: the count goes to the
//! cluster at once and into [`Overrides`], so the next deploy of the resource keeps it.
//!
//! The workloads come from the record of what `up` applied, so `tether scale` works with
//! or without an `up` running. The patch drops tether's rendered-hash annotation: the
//! next apply then sends the object whatever the manifests say, and the count the
//! cluster runs is always the one tether last rendered or was told.

use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
};

use super::{ObjectRef, Record, manifest, replicas::Overrides};
use crate::config::Project;

/// The field manager of counts set by hand; `up`'s own apply takes the field back.
const FIELD_MANAGER: &str = "tether-scale";

/// How the count changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    To(i32),
    /// Up or down from what the cluster has now (the TUI's `+` and `-`), never below 0.
    By(i32),
}

/// What a scale did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaled {
    pub workload: ObjectRef,
    pub from: i32,
    pub to: i32,
}

impl std::fmt::Display for Scaled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = &self.workload;
        write!(
            f,
            "scaled {} {} from {} to {} replicas (kept by `tether up` until tether.toml changes)",
            w.kind, w.name, self.from, self.to
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("`{resource}` is not a resource of this project (resources: {known})")]
    UnknownResource { resource: String, known: String },
    #[error(
        "`{resource}` has no Deployment or StatefulSet deployed by tether here: run `tether up` first"
    )]
    NothingDeployed { resource: String },
    #[error("`{resource}` has several workloads: name one with --workload ({names})")]
    Ambiguous { resource: String, names: String },
    #[error("`{resource}` has no workload `{name}` (its workloads: {names})")]
    NoSuchWorkload {
        resource: String,
        name: String,
        names: String,
    },
    #[error("{count} is not a replica count: it must be 0 or more")]
    Negative { count: i32 },
    #[error("could not read {workload}")]
    Read {
        workload: ObjectRef,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("could not scale {workload}")]
    Patch {
        workload: ObjectRef,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    Config(#[from] Box<crate::config::ConfigError>),
    #[error("cannot read the record of applied objects at {}", .path.display())]
    Record {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scaled, but could not keep the count in {}", .path.display())]
    Keep {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ScaleError {
    /// Whether the user named something wrong (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ScaleError::UnknownResource { .. }
                | ScaleError::Config(_)
                | ScaleError::NothingDeployed { .. }
                | ScaleError::Ambiguous { .. }
                | ScaleError::NoSuchWorkload { .. }
                | ScaleError::Negative { .. }
        )
    }
}

/// Scales the resources of the project at `root` in one cluster, reading `tether.toml`
/// and the record as they are at each call (an `up` may have changed both).
#[derive(Clone)]
pub struct Scaler {
    pub client: Client,
    pub root: std::path::PathBuf,
    pub cluster_id: String,
}

impl Scaler {
    pub async fn scale(
        &self,
        resource: &str,
        workload: Option<&str>,
        count: Count,
    ) -> Result<Scaled, ScaleError> {
        let project = Project::load(&self.root).map_err(Box::new)?;
        let path = Record::path(&self.root, &self.cluster_id);
        let record = Record::load(&path)
            .map_err(|source| ScaleError::Record { path, source })?
            .unwrap_or_default();
        scale(&self.client, &project, &record, resource, workload, count).await
    }
}

/// Scales `workload` (or the resource's only one) of `resource` by `count`, and keeps
/// the new count for later deploys.
pub async fn scale(
    client: &Client,
    project: &Project,
    record: &Record,
    resource: &str,
    workload: Option<&str>,
    count: Count,
) -> Result<Scaled, ScaleError> {
    if !project.resources.contains_key(resource) {
        return Err(ScaleError::UnknownResource {
            resource: resource.to_owned(),
            known: project
                .resources
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if let Count::To(n) = count
        && n < 0
    {
        return Err(ScaleError::Negative { count: n });
    }
    let target = choose(record, resource, workload)?;
    let api = api(client, &target);
    let live = api
        .get(&target.name)
        .await
        .map_err(|source| ScaleError::Read {
            workload: target.clone(),
            source: Box::new(source),
        })?;
    let from = live
        .data
        .pointer("/spec/replicas")
        .and_then(|n| n.as_i64())
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(1);
    let to = match count {
        Count::To(n) => n,
        Count::By(d) => from.saturating_add(d).max(0),
    };
    let patch = serde_json::json!({
        "metadata": { "annotations": { manifest::HASH_ANNOTATION: null } },
        "spec": { "replicas": to },
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(&target.name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|source| ScaleError::Patch {
            workload: target.clone(),
            source: Box::new(source),
        })?;
    let mut overrides = Overrides::load(project);
    overrides.set(resource, &target, to);
    overrides.save(project).map_err(|source| ScaleError::Keep {
        path: project.root.join(crate::state_dir::NAME),
        source,
    })?;
    Ok(Scaled {
        workload: target,
        from,
        to,
    })
}

/// The workload to scale: the one named, or the resource's only scalable one.
fn choose(record: &Record, resource: &str, name: Option<&str>) -> Result<ObjectRef, ScaleError> {
    let scalable: Vec<&ObjectRef> = record
        .objects
        .iter()
        .filter(|e| e.resource == resource)
        .map(|e| &e.object)
        .filter(|o| matches!(o.kind.as_str(), "Deployment" | "StatefulSet"))
        .collect();
    let names = || {
        scalable
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, scalable.as_slice()) {
        (_, []) => Err(ScaleError::NothingDeployed {
            resource: resource.to_owned(),
        }),
        (None, [only]) => Ok((*only).clone()),
        (None, _) => Err(ScaleError::Ambiguous {
            resource: resource.to_owned(),
            names: names(),
        }),
        (Some(n), _) => scalable
            .iter()
            .find(|o| o.name == n || format!("{}/{}", o.kind, o.name) == n)
            .map(|o| (*o).clone())
            .ok_or_else(|| ScaleError::NoSuchWorkload {
                resource: resource.to_owned(),
                name: n.to_owned(),
                names: names(),
            }),
    }
}

fn api(client: &Client, r: &ObjectRef) -> Api<DynamicObject> {
    let (group, version) = r
        .api_version
        .split_once('/')
        .unwrap_or(("", &r.api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &r.kind));
    match &r.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::record::Entry;

    fn record(objects: &[(&str, &str, &str)]) -> Record {
        Record {
            objects: objects
                .iter()
                .map(|(resource, kind, name)| Entry {
                    object: ObjectRef {
                        api_version: "apps/v1".into(),
                        kind: (*kind).into(),
                        namespace: Some("pubsub".into()),
                        name: (*name).into(),
                    },
                    resource: (*resource).into(),
                    created: true,
                    uid: None,
                })
                .collect(),
            ..Record::default()
        }
    }

    #[test]
    fn the_only_workload_is_chosen_and_several_need_a_name() {
        let r = record(&[
            ("medicine", "Deployment", "medicine"),
            ("medicine", "Service", "medicine"),
            ("kafka", "StatefulSet", "kafka"),
            ("kafka", "Deployment", "kafka-ui"),
        ]);
        assert_eq!(choose(&r, "medicine", None).unwrap().name, "medicine");
        let err = choose(&r, "kafka", None).unwrap_err().to_string();
        assert_eq!(
            err,
            "`kafka` has several workloads: name one with --workload (StatefulSet/kafka, Deployment/kafka-ui)"
        );
        assert_eq!(
            choose(&r, "kafka", Some("StatefulSet/kafka")).unwrap().kind,
            "StatefulSet"
        );
        assert!(matches!(
            choose(&r, "kafka", Some("zookeeper")),
            Err(ScaleError::NoSuchWorkload { .. })
        ));
        assert!(matches!(
            choose(&r, "topics", None),
            Err(ScaleError::NothingDeployed { .. })
        ));
    }
}
