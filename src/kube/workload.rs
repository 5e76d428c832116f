//! [`Workload`]: a Deployment, StatefulSet or DaemonSet among the objects a resource
//! renders, and how its pods are found (its label selector).

use std::{collections::BTreeMap, fmt};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
};

/// The kinds of workload tether waits for, forwards to and tails: each has a rollout
/// of its own and pods found by its selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    /// The kind as the API names it (`kind:` in a manifest); `None` for any other kind.
    pub fn parse(kind: &str) -> Option<WorkloadKind> {
        match kind {
            "Deployment" => Some(WorkloadKind::Deployment),
            "StatefulSet" => Some(WorkloadKind::StatefulSet),
            "DaemonSet" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload whose pods tether waits for, forwards to and tails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// `spec.selector.matchLabels`: how its pods are found.
    pub selector: BTreeMap<String, String>,
}

impl Workload {
    /// The workloads among rendered objects (namespace already filled in).
    pub fn from_objects(objects: &[DynamicObject]) -> Vec<Workload> {
        objects
            .iter()
            .filter_map(|o| {
                let kind = WorkloadKind::parse(&o.types.as_ref()?.kind)?;
                let labels = o.data.pointer("/spec/selector/matchLabels")?.as_object()?;
                let selector = labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect();
                Some(Workload {
                    kind,
                    namespace: o.metadata.namespace.clone()?,
                    name: o.metadata.name.clone()?,
                    selector,
                })
            })
            .collect()
    }

    pub fn label_selector(&self) -> String {
        self.selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The workload's pods now, in one list: for one-off commands that keep no
    /// [`super::PodSet`].
    pub async fn pods(&self, client: &Client) -> kube::Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(client.clone(), &self.namespace);
        Ok(api
            .list(&ListParams::default().labels(&self.label_selector()))
            .await?
            .items)
    }
}
