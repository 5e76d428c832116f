//! Reading what is intercepted: the rows of `tether list` (every Service, what it leads
//! to, what is intercepted) and the intercepts `uninstall` restores, found by tether's
//! records on the Services and Deployments, in one namespace or all.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Service},
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{Api, Client, ResourceExt, api::ListParams};
use serde::Serialize;

use super::{
    InterceptError,
    error::kube_err,
    find::other_workloads,
    spec::{self, PortSpec},
};

fn apis<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// One intercepted Service (or a Deployment whose Service is gone), found by its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub namespace: String,
    pub service: String,
}

/// Every Service with tether's records, in `namespace` or everywhere.
pub async fn intercepted(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<Leftover>, InterceptError> {
    let services: Api<Service> = apis(client, namespace);
    let deployments: Api<Deployment> = apis(client, namespace);
    let mut out = Vec::new();
    for s in services
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Services"))?
        .items
    {
        let a = &s.metadata.annotations;
        if spec::annotation(a, spec::INTERCEPT).is_some()
            || spec::annotation(a, spec::LEGACY_ORIGINAL_SPEC).is_some()
        {
            out.push(Leftover {
                namespace: s.namespace().unwrap_or_default(),
                service: s.name_any(),
            });
        }
    }
    // A crash between the two updates leaves only the Deployment changed.
    for d in deployments
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Deployments"))?
        .items
    {
        if let Some(svc) = spec::annotation(&d.metadata.annotations, spec::FOR_SERVICE) {
            let l = Leftover {
                namespace: d.namespace().unwrap_or_default(),
                service: svc.to_owned(),
            };
            if !out.contains(&l) {
                out.push(l);
            }
        }
    }
    Ok(out)
}

/// A row of `tether list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub namespace: String,
    pub service: String,
    /// `port→targetPort` of each Service port, as it is without tether.
    pub ports: String,
    pub workload: String,
    /// What is intercepted, in words.
    pub intercept: String,
    /// The (first) intercepted Service port, when one is.
    pub intercepted_port: Option<i32>,
    /// Every intercepted Service port.
    pub intercepted_ports: Vec<i32>,
}

/// The Services of `namespace` (every namespace for `None`): what each leads to, and what
/// is intercepted.
pub async fn list(client: &Client, namespace: Option<&str>) -> Result<Vec<Row>, InterceptError> {
    let services: Vec<Service> = apis::<Service>(client, namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Services"))?
        .items;
    let mut deployments: BTreeMap<String, Vec<Deployment>> = BTreeMap::new();
    for d in apis::<Deployment>(client, namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Deployments"))?
        .items
    {
        deployments
            .entry(d.namespace().unwrap_or_default())
            .or_default()
            .push(d);
    }
    let mut rows = Vec::new();
    for svc in services {
        let ns = svc.namespace().unwrap_or_default();
        let original = spec::original_service(&svc);
        let ports: Vec<String> = original
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
            .iter()
            .map(|p| match &p.target_port {
                Some(t) => format!("{}→{}", p.port, intstr(t)),
                None => p.port.to_string(),
            })
            .collect();
        let first_port = original
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref()?.first().map(|p| p.port))
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(1);
        let port = PortSpec {
            local: 1,
            remote: Some(spec::Remote::Number(first_port)),
        };
        let in_ns = deployments.get(&ns).map(Vec::as_slice).unwrap_or_default();
        let mut planned = spec::plan(&original, in_ns, &[], &port);
        // Workloads of other kinds are looked up only to name them.
        if matches!(planned, Err(InterceptError::NoWorkload(_))) {
            let others = other_workloads(client, &ns, &original).await;
            planned = spec::plan(&original, in_ns, &others, &port);
        }
        let workload = match planned {
            Ok(t) => format!("Deployment/{}", t.deployment),
            Err(InterceptError::NoSelector(_)) => "- (no selector)".into(),
            Err(InterceptError::UnsupportedKind { kind, name, .. }) => {
                format!("{kind}/{name} (not interceptable)")
            }
            Err(InterceptError::ManyWorkloads { names, .. }) => {
                format!("several: {}", names.join(","))
            }
            Err(InterceptError::OtherService {
                deployment,
                service,
            }) => format!("Deployment/{deployment} (its agent serves {service})"),
            Err(_) => "-".into(),
        };
        let record = spec::installed(&svc);
        let intercept = match &record {
            Some(i) => {
                let ports: Vec<String> = i.service_ports().iter().map(i32::to_string).collect();
                let s = if ports.len() == 1 { "" } else { "s" };
                format!(
                    "port{s} {} (agent {})",
                    ports.join(","),
                    short_image(&i.image)
                )
            }
            None if spec::annotation(&svc.metadata.annotations, spec::LEGACY_ORIGINAL_SPEC)
                .is_some() =>
            {
                "installing or broken: `tether uninstall`".into()
            }
            None => "-".into(),
        };
        rows.push(Row {
            namespace: ns,
            service: svc.name_any(),
            ports: ports.join(","),
            workload,
            intercept,
            intercepted_port: record
                .as_ref()
                .and_then(|r| r.ports.first())
                .map(|p| p.service_port),
            intercepted_ports: record.map(|r| r.service_ports()).unwrap_or_default(),
        });
    }
    Ok(rows)
}

fn intstr(t: &IntOrString) -> String {
    match t {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

fn short_image(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}
