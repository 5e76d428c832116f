//! [`Workload`]: a Deployment, StatefulSet or DaemonSet among the objects a resource
//! renders, and how its pods are found (its label selector).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
};

/// A workload whose pods tether waits for, forwards to and tails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: String,
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
                let kind = o.types.as_ref()?.kind.clone();
                if !matches!(kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
                    return None;
                }
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
