//! Finding what an intercept would change, without changing anything: the Service, its
//! one Deployment (or the reason it cannot be intercepted, naming workloads of other
//! kinds), the ports, and whether the local process listens.

use std::{net::SocketAddr, time::Duration};

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
    core::v1::Service,
};
use kube::{Api, Client, ResourceExt, api::ListParams};

use super::{
    InterceptError,
    error::kube_err,
    spec::{self, PortSpec, Target},
};

/// A Service and what intercepting `ports` of it means, read without changing anything.
pub struct Found {
    pub service: Service,
    pub deployment: Deployment,
    /// One per `-p`, in order; never empty.
    pub targets: Vec<Target>,
    /// The Service's selector: it selects exactly the Deployment's pods (the plan made
    /// sure only one Deployment matches), also when the Deployment's own selector uses
    /// `matchExpressions`.
    pub pod_selector: std::collections::BTreeMap<String, String>,
}

impl Found {
    /// The first intercepted port's target: the Service, Deployment and container the
    /// messages name.
    pub fn first(&self) -> &Target {
        // `find` returns a Found only with at least one target.
        &self.targets[0]
    }
}

/// Reads the Service and its one Deployment and resolves `ports`; changes nothing.
pub async fn find(
    client: &Client,
    namespace: &str,
    service: &str,
    ports: &[PortSpec],
) -> Result<Found, InterceptError> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let svc = services
        .get_opt(service)
        .await
        .map_err(kube_err(format!("reading Service {service}")))?
        .ok_or_else(|| InterceptError::NoService {
            service: service.to_owned(),
            namespace: namespace.to_owned(),
        })?;
    let original = spec::original_service(&svc);
    let deployments: Vec<Deployment> = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Deployments"))?
        .items;
    // Workloads of other kinds, to name them when no Deployment matches.
    let others = other_workloads(client, namespace, &original).await;
    let targets = spec::plan_ports(&original, &deployments, &others, ports)?;
    // The command line asks for at least one `-p`.
    let Some(first) = targets.first() else {
        return Err(InterceptError::BadPort(String::new()));
    };
    // Laptops sharing an agent (personal intercepts) take the same ports.
    if let Some(i) = spec::installed(&svc) {
        let mut want: Vec<i32> = targets.iter().map(|t| t.service_port).collect();
        let mut have = i.service_ports();
        want.sort_unstable();
        have.sort_unstable();
        if want != have {
            return Err(InterceptError::OtherPort {
                service: service.to_owned(),
                ports: i.service_ports(),
            });
        }
    }
    let deployment = deployments
        .into_iter()
        .find(|d| d.name_any() == first.deployment)
        .ok_or_else(|| InterceptError::NoWorkload(service.to_owned()))?;
    let pod_selector = original
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    Ok(Found {
        pod_selector,
        service: svc,
        deployment,
        targets,
    })
}

/// A workload's kind, name and pod template labels.
type Candidate = (
    &'static str,
    String,
    Option<std::collections::BTreeMap<String, String>>,
);

pub(super) async fn other_workloads(
    client: &Client,
    ns: &str,
    svc: &Service,
) -> Vec<spec::OtherWorkload> {
    let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return Vec::new();
    };
    let selects = |labels: Option<&std::collections::BTreeMap<String, String>>| {
        labels.is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
    };
    // (kind, name, pod template labels) of every other workload kind; then one filter.
    let mut candidates: Vec<Candidate> = Vec::new();
    let lp = ListParams::default();
    if let Ok(l) = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
    {
        candidates.extend(l.items.into_iter().map(|s| {
            let labels = s
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref()?.labels.clone());
            ("StatefulSet", s.name_any(), labels)
        }));
    }
    if let Ok(l) = Api::<DaemonSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
    {
        candidates.extend(l.items.into_iter().map(|s| {
            let labels = s
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref()?.labels.clone());
            ("DaemonSet", s.name_any(), labels)
        }));
    }
    if let Ok(l) = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
    {
        // A ReplicaSet with an owner belongs to a Deployment, which is handled already.
        candidates.extend(
            l.items
                .into_iter()
                .filter(|r| r.metadata.owner_references.is_none())
                .map(|s| {
                    let labels = s
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref()?.metadata.as_ref()?.labels.clone());
                    ("ReplicaSet", s.name_any(), labels)
                }),
        );
    }
    candidates
        .into_iter()
        .filter(|(_, _, labels)| selects(labels.as_ref()))
        .map(|(kind, name, _)| spec::OtherWorkload {
            kind: kind.into(),
            name,
        })
        .collect()
}

/// Where the local process listens: 127.0.0.1, else [::1]. Checked before any change.
pub async fn local_listener(port: u16) -> Result<SocketAddr, InterceptError> {
    for addr in [
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
    ] {
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
        {
            return Ok(addr);
        }
    }
    Err(InterceptError::NothingListening(port))
}
