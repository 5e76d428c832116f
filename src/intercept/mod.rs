//! Intercepts: install the traffic agent next to a Service's workload, point the Service
//! at it, attach this machine to every replica's agent, and put everything back exactly.
//!
//! Layout:
//! - [`spec`]: the changes as pure functions (plan, sidecar, repoint, restore).
//! - [`image`]: the agent image (`FROM scratch` + a static tether), pushed once per binary.
//! - [`attach`]: port-forwards and tunnel sessions to every ready agent.
//! - [`env`]: the intercepted container's environment, for `--env-file`.
//!
//! Install order keeps callers served throughout: the Deployment gets the sidecar and its
//! original spec recorded in one update; once every replica runs the agent (which passes
//! traffic to the app while no laptop is attached), the Service's targetPort moves to the
//! agent, its original spec recorded in the same update. Restore goes the other way:
//! Service first, then Deployment, each from its record, the records then removed.

pub mod attach;
pub mod env;
pub mod image;
pub mod spec;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
    core::v1::Service,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

pub use self::spec::{Installed, Target};
use crate::deploy::{Workload, rollout};

#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    #[error(
        "there is no Service `{service}` in namespace `{namespace}`\n  hint: `tether list -n {namespace}` shows what can be intercepted"
    )]
    NoService { service: String, namespace: String },
    #[error("Service `{0}` has no selector, so no workload of tether's to put an agent in")]
    NoSelector(String),
    #[error("no Deployment runs the pods of Service `{0}`")]
    NoWorkload(String),
    #[error("Service `{service}` is served by {kind} {name}; only Deployments can be intercepted")]
    UnsupportedKind {
        service: String,
        kind: String,
        name: String,
    },
    #[error("Service `{service}` selects the pods of several Deployments ({}); intercept one that selects a single Deployment", names.join(", "))]
    ManyWorkloads { service: String, names: Vec<String> },
    #[error(
        "Service `{service}` does not serve port {port}; it serves {} (service port → container port)\n  hint: name a service port or the container port it leads to",
        served.join(", ")
    )]
    PortNotServed {
        service: String,
        port: u16,
        served: Vec<String>,
    },
    #[error("Service `{0}`'s port is not TCP; only TCP can be intercepted")]
    NotTcp(String),
    #[error(
        "nothing listens on 127.0.0.1:{0}; start your process first, then intercept\n  (nothing was changed in the cluster)"
    )]
    NothingListening(u16),
    #[error(
        "Service `{service}` is already intercepted on port {port}; `tether leave {service}` first"
    )]
    OtherPort { service: String, port: i32 },
    #[error("Service `{0}` is not intercepted")]
    NotIntercepted(String),
    #[error("bad --header `{0}`: expected NAME=VALUE")]
    BadHeader(String),
    #[error("the agent image: {0}")]
    AgentImage(String),
    #[error("the agent did not start: {reason}\n  (the Service and Deployment were restored)")]
    Rollout { reason: String },
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Env(String),
    #[error("cluster: {0}")]
    Kube(String),
}

impl InterceptError {
    /// Whether the user's input was wrong (exit code 2) rather than something failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            InterceptError::NoService { .. }
                | InterceptError::NoSelector(_)
                | InterceptError::NoWorkload(_)
                | InterceptError::UnsupportedKind { .. }
                | InterceptError::ManyWorkloads { .. }
                | InterceptError::PortNotServed { .. }
                | InterceptError::NotTcp(_)
                | InterceptError::NothingListening(_)
                | InterceptError::OtherPort { .. }
                | InterceptError::NotIntercepted(_)
                | InterceptError::BadHeader(_)
        )
    }
}

fn kube_err(what: impl std::fmt::Display) -> impl FnOnce(kube::Error) -> InterceptError {
    move |e| InterceptError::Kube(format!("{what}: {e}"))
}

/// A Service and what intercepting `port` of it means, read without changing anything.
pub struct Found {
    pub service: Service,
    pub deployment: Deployment,
    pub target: Target,
}

/// Reads the Service and its one Deployment and resolves `port`.
pub async fn find(
    client: &Client,
    namespace: &str,
    service: &str,
    port: u16,
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
    let original = spec::original_service(&svc)?;
    let deployments: Vec<Deployment> = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Deployments"))?
        .items;
    // Workloads of other kinds, to name them when no Deployment matches.
    let others = other_workloads(client, namespace, &original).await;
    let target = spec::plan(&original, &deployments, &others, port)?;
    if let Some(i) = spec::installed(&svc) {
        if i.service_port != target.service_port {
            return Err(InterceptError::OtherPort {
                service: service.to_owned(),
                port: i.service_port,
            });
        }
    }
    let deployment = deployments
        .into_iter()
        .find(|d| d.name_any() == target.deployment)
        .ok_or_else(|| InterceptError::NoWorkload(service.to_owned()))?;
    Ok(Found {
        service: svc,
        deployment,
        target,
    })
}

/// A workload's kind, name and pod template labels.
type Candidate = (
    &'static str,
    String,
    Option<std::collections::BTreeMap<String, String>>,
);

async fn other_workloads(client: &Client, ns: &str, svc: &Service) -> Vec<spec::OtherWorkload> {
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

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallKind {
    /// The agent was added now.
    Fresh,
    /// The agent was there already, with this image: nothing changed.
    Present,
    /// The agent was there with another image and was replaced.
    Upgraded,
}

/// Installs (or finds) the agent and points the Service at it. On a rollout that fails,
/// restores both objects before returning the reason.
pub async fn install(
    client: &Client,
    found: &Found,
    image: &str,
    mut progress: impl FnMut(&str),
) -> Result<(Installed, InstallKind), InterceptError> {
    let t = &found.target;
    let previous = spec::installed(&found.service);
    let (agent_port, control_port) = match &previous {
        Some(p) => (p.agent_port, p.control_port),
        None => {
            // Ports are chosen on the original spec, so an agent already there is ignored.
            let original = spec::original_deployment(&found.deployment)?;
            spec::agent_ports(&original, t.app_port)
        }
    };
    let installed = Installed {
        deployment: t.deployment.clone(),
        container: t.container.clone(),
        service_port: t.service_port,
        app_port: t.app_port,
        agent_port,
        control_port,
        image: image.to_owned(),
    };
    let live_image = agent_image_of(&found.deployment);
    let kind = match (&previous, live_image.as_deref()) {
        (Some(p), Some(live)) if p == &installed && live == image => InstallKind::Present,
        (_, Some(_)) => InstallKind::Upgraded,
        (_, None) => InstallKind::Fresh,
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &t.namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &t.namespace);
    if kind != InstallKind::Present {
        progress(&format!(
            "adding the agent to Deployment {} (image {image})",
            t.deployment
        ));
        replace(&deployments, &t.deployment, |d| {
            spec::with_agent(d, &installed, &t.service).map(Some)
        })
        .await?;
    }
    let workload = Workload {
        kind: "Deployment".into(),
        namespace: t.namespace.clone(),
        name: t.deployment.clone(),
        selector: selector_of(&found.deployment),
    };
    if let Err(reason) = wait_rolled_out(client, &workload, Duration::from_secs(180)).await {
        if kind != InstallKind::Present {
            let _ = restore(client, &t.namespace, &t.service).await;
        }
        return Err(InterceptError::Rollout { reason });
    }
    // Something else (a redeploy by `tether up`, a `kubectl apply`) may have put the
    // Service's own targetPort back while the agent stayed: repoint it then too.
    let leads_to_agent = found
        .service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref()?.get(t.port_index)?.target_port.clone())
        == Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(
                installed.agent_port,
            )),
        );
    if kind != InstallKind::Present || !leads_to_agent {
        replace(&services, &t.service, |s| {
            spec::repointed(s, t, &installed).map(Some)
        })
        .await?;
        progress("waiting for the Service's endpoints to lead to the agent");
        wait_endpoints(client, &t.namespace, &t.service, installed.agent_port).await;
        // The EndpointSlices are what kube-proxy reads; it rewrites the node's rules at
        // most once per `minSyncPeriod` (1 s by default). Until then new connections still
        // reach the app directly, so "ready" waits that long too.
        tokio::time::sleep(KUBE_PROXY_SYNC).await;
    }
    Ok((installed, kind))
}

/// kube-proxy's default `minSyncPeriod`, with a margin for the sync itself.
const KUBE_PROXY_SYNC: Duration = Duration::from_millis(1500);

/// Waits (a few seconds at most) until the Service's EndpointSlices carry the agent
/// port; kube-proxy follows them within about a second. Best effort: a cluster that
/// is slow here still routes once it catches up.
async fn wait_endpoints(client: &Client, namespace: &str, service: &str, port: u16) {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(list) = api.list(&lp).await {
            let leads = list.items.iter().any(|s| {
                s.ports
                    .iter()
                    .flatten()
                    .any(|p| p.port == Some(i32::from(port)))
                    && s.endpoints
                        .iter()
                        .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
            });
            if leads {
                return;
            }
        }
        tokio::time::sleep(rollout::POLL).await;
    }
}

fn agent_image_of(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == spec::AGENT_CONTAINER)?
        .image
        .clone()
}

pub fn selector_of(d: &Deployment) -> std::collections::BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
}

/// Waits until every replica runs the latest spec; the reason in words when it does not.
async fn wait_rolled_out(client: &Client, w: &Workload, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match rollout::rolled_out(client, w).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(format!("cannot read Deployment {}: {e}", w.name)),
        }
        let why = rollout::explain(client, w).await;
        if let Some(n) = why.as_ref().filter(|n| n.fatal) {
            return Err(n.reason.clone());
        }
        if started.elapsed() > timeout {
            return Err(why.map(|n| n.reason).unwrap_or_else(|| {
                format!("Deployment {} was not rolled out after {timeout:?}", w.name)
            }));
        }
        tokio::time::sleep(rollout::POLL).await;
    }
}

/// GET, change, PUT; again on a conflict (someone else wrote in between).
async fn replace<K>(
    api: &Api<K>,
    name: &str,
    change: impl Fn(&K) -> Result<Option<K>, InterceptError>,
) -> Result<bool, InterceptError>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    for _ in 0..5 {
        let live = api
            .get(name)
            .await
            .map_err(kube_err(format!("reading {name}")))?;
        let Some(new) = change(&live)? else {
            return Ok(false);
        };
        match api.replace(name, &PostParams::default(), &new).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.is_conflict() => continue,
            Err(e) => return Err(kube_err(format!("updating {name}"))(e)),
        }
    }
    Err(InterceptError::Kube(format!(
        "{name} kept changing under tether; try again"
    )))
}

/// What `restore` put back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    pub service: bool,
    pub deployments: Vec<String>,
}

/// Puts the Service and the Deployment changed for it back as recorded, records removed.
pub async fn restore(
    client: &Client,
    namespace: &str,
    service: &str,
) -> Result<Restored, InterceptError> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut done = Restored::default();
    if services
        .get_opt(service)
        .await
        .map_err(kube_err(format!("reading Service {service}")))?
        .is_some()
    {
        done.service = replace(&services, service, spec::restored_service).await?;
    }
    for d in deployments
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Deployments"))?
        .items
    {
        if spec::annotation(&d.metadata.annotations, spec::FOR_SERVICE) == Some(service)
            && replace(&deployments, &d.name_any(), spec::restored_deployment).await?
        {
            done.deployments.push(d.name_any());
        }
    }
    Ok(done)
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
    let (services, deployments): (Api<Service>, Api<Deployment>) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let mut out = Vec::new();
    for s in services
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Services"))?
        .items
    {
        if spec::annotation(&s.metadata.annotations, spec::ORIGINAL_SPEC).is_some() {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub service: String,
    pub ports: String,
    pub workload: String,
    pub intercept: String,
}

/// The namespace's Services: what each leads to, and what is intercepted.
pub async fn list(client: &Client, namespace: &str) -> Result<Vec<Row>, InterceptError> {
    let services: Vec<Service> = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Services"))?
        .items;
    let deployments: Vec<Deployment> = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Deployments"))?
        .items;
    let mut rows = Vec::new();
    for svc in services {
        let original = spec::original_service(&svc)?;
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
            .unwrap_or(0);
        let others = other_workloads(client, namespace, &original).await;
        let workload = match spec::plan(&original, &deployments, &others, first_port) {
            Ok(t) => format!("Deployment/{}", t.deployment),
            Err(InterceptError::NoSelector(_)) => "- (no selector)".into(),
            Err(InterceptError::UnsupportedKind { kind, name, .. }) => {
                format!("{kind}/{name} (not interceptable)")
            }
            Err(InterceptError::ManyWorkloads { names, .. }) => {
                format!("several: {}", names.join(","))
            }
            Err(_) => "-".into(),
        };
        let intercept = match spec::installed(&svc) {
            Some(i) => format!("port {} (agent {})", i.service_port, short_image(&i.image)),
            None if spec::annotation(&svc.metadata.annotations, spec::ORIGINAL_SPEC).is_some() => {
                "installing or broken: `tether uninstall`".into()
            }
            None => "-".into(),
        };
        rows.push(Row {
            service: svc.name_any(),
            ports: ports.join(","),
            workload,
            intercept,
        });
    }
    Ok(rows)
}

fn intstr(t: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match t {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

fn short_image(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}
