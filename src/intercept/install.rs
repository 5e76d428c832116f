//! Installing an intercept: the attach Secret, the agent in the Deployment (one JSON
//! patch), a wait until every replica runs it (watched, not polled), then the Service's
//! intercepted targetPorts pointed at the agent (a second patch). Everything that can refuse is
//! checked before the first change; a rollout that fails is undone before its reason is
//! returned.
//!
//! Install order keeps callers served throughout: the agent passes traffic to the app
//! while no laptop is attached, so the Service moves to it only once every replica runs it.

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Pod, discovery::v1::EndpointSlice},
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};

use super::{
    InterceptError,
    find::Found,
    patch,
    raw::Raw,
    restore, secret,
    spec::{self, AGENT_CONTAINER, Installed, InterceptedPort},
};
use crate::deploy::{Workload, rollout};

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

/// An installed intercept, as the laptop needs it to attach.
#[derive(Debug, Clone)]
pub struct Install {
    pub installed: Installed,
    pub kind: InstallKind,
    /// The attach token, from the Deployment's attach Secret.
    pub token: String,
}

/// How long the agent's rollout may take.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(180);

/// Installs (or finds) the agent and points the Service at it. On a rollout that fails,
/// restores what it changed before returning the reason.
pub async fn install(
    client: &Client,
    found: &Found,
    image: &str,
    mut progress: impl FnMut(&str),
) -> Result<Install, InterceptError> {
    let t = found.first();
    let previous = spec::installed(&found.service);
    let app_ports: Vec<u16> = found.targets.iter().map(|t| t.app_port).collect();
    // An agent that is there keeps its ports (`find` made sure the same Service ports
    // are asked for), so laptops attached to it are not cut off.
    let (agent_ports, control_port) = match &previous {
        Some(p) => (
            found
                .targets
                .iter()
                .map(|t| {
                    p.ports
                        .iter()
                        .find(|r| r.service_port == t.service_port)
                        .map_or(0, |r| r.agent_port)
                })
                .collect(),
            p.control_port,
        ),
        None => spec::agent_ports(&found.deployment, &app_ports),
    };
    let mut installed = Installed {
        deployment: t.deployment.clone(),
        container: previous
            .as_ref()
            .map_or_else(|| t.container.clone(), |p| p.container.clone()),
        ports: found
            .targets
            .iter()
            .zip(agent_ports)
            .map(|(t, agent_port)| InterceptedPort {
                service_port: t.service_port,
                app_port: t.app_port,
                agent_port,
                original_target_port: t.original_target_port.clone(),
            })
            .collect(),
        control_port,
        image: image.to_owned(),
    };
    if let Some(p) = &previous {
        // In the order the agent there has them, so the same ports are the same record.
        let order = p.service_ports();
        installed
            .ports
            .sort_by_key(|r| order.iter().position(|o| *o == r.service_port));
    }
    if let Some(p) = installed
        .ports
        .iter()
        .find(|p| p.original_target_port == Some(IntOrString::Int(i32::from(p.agent_port))))
    {
        return Err(InterceptError::Corrupt(format!(
            "Service {} port {} leads to tether's agent port {} but carries no record of where it led before; `tether leave {}` and set its targetPort by hand",
            t.service, p.service_port, p.agent_port, t.service
        )));
    }
    let live_image = agent_image_of(&found.deployment);
    let kind = match (&previous, live_image.as_deref()) {
        (Some(p), Some(live)) if p == &installed && live == image => InstallKind::Present,
        (_, Some(_)) => InstallKind::Upgraded,
        (_, None) => InstallKind::Fresh,
    };
    // Refuse up front what the API server would refuse half-way.
    patch::check_room(
        &to_json(&found.deployment),
        "Deployment",
        &patch::deployment_annotations(&t.service),
    )?;
    patch::check_room(
        &to_json(&found.service),
        "Service",
        &patch::service_annotations(&installed)?,
    )?;

    let token = secret::ensure(client, &t.namespace, &t.deployment).await?;
    let deployments = Raw::new::<Deployment>(client, &t.namespace);
    let services = Raw::new::<k8s_openapi::api::core::v1::Service>(client, &t.namespace);
    if kind != InstallKind::Present {
        progress(&format!(
            "adding the agent to Deployment {} (image {image})",
            t.deployment
        ));
        let added = deployments
            .patch(&t.deployment, |live| {
                patch::install_deployment(live, &installed, &t.service).map(Some)
            })
            .await;
        if let Err(e) = added {
            if kind == InstallKind::Fresh {
                let _ = secret::delete(client, &t.namespace, &t.deployment).await;
            }
            return Err(e);
        }
    }
    let workload = Workload {
        kind: crate::kube::WorkloadKind::Deployment,
        namespace: t.namespace.clone(),
        name: t.deployment.clone(),
        selector: found.pod_selector.clone(),
    };
    if let Err(reason) = wait_rolled_out(client, &workload).await {
        if kind != InstallKind::Present {
            let _ = restore::restore(client, &t.namespace, &t.service).await;
        }
        return Err(InterceptError::Rollout { reason });
    }
    // Something else (a redeploy by `tether up`, a `kubectl apply`) may have put the
    // Service's own targetPorts back while the agent stayed: repoint them then too.
    let live_ports = found.service.spec.as_ref().and_then(|s| s.ports.as_ref());
    let leads_to_agent = installed.ports.iter().all(|p| {
        live_ports.into_iter().flatten().any(|live| {
            live.port == p.service_port
                && live.target_port == Some(IntOrString::Int(i32::from(p.agent_port)))
        })
    });
    if kind != InstallKind::Present || !leads_to_agent {
        services
            .patch(&t.service, |live| {
                patch::repoint_service(live, &installed).map(Some)
            })
            .await?;
        progress("waiting for the Service's endpoints to lead to the agent");
        let agent_ports: Vec<u16> = installed.ports.iter().map(|p| p.agent_port).collect();
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            endpoints_lead_to(client, &t.namespace, &t.service, &agent_ports),
        )
        .await;
        // The EndpointSlices are what kube-proxy reads; it rewrites the node's rules at
        // most once per `minSyncPeriod` (1 s by default). Until then new connections still
        // reach the app directly, so "ready" waits that long too.
        tokio::time::sleep(KUBE_PROXY_SYNC).await;
    }
    Ok(Install {
        installed,
        kind,
        token,
    })
}

/// A typed object as raw JSON, for the checks that read it so.
fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// kube-proxy's default `minSyncPeriod`, with a margin for the sync itself.
const KUBE_PROXY_SYNC: Duration = Duration::from_millis(1500);

/// Resolves once the Service's EndpointSlices carry every agent port with a ready
/// endpoint; kube-proxy follows them within about a second.
async fn endpoints_lead_to(client: &Client, namespace: &str, service: &str, ports: &[u16]) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let cfg = watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
    let leads = |s: &EndpointSlice| {
        ports.iter().all(|port| {
            s.ports
                .iter()
                .flatten()
                .any(|p| p.port == Some(i32::from(*port)))
        }) && s
            .endpoints
            .iter()
            .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
    };
    let mut slices = watcher(api, cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(next) = slices.next().await {
        if next.is_ok_and(|s| leads(&s)) {
            return;
        }
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
        .find(|c| c.name == AGENT_CONTAINER)?
        .image
        .clone()
}

/// Whether the Deployment's latest spec runs on every replica and is available.
fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    d.status.as_ref().is_some_and(|s| {
        s.observed_generation.unwrap_or(0) >= generation
            && s.updated_replicas.unwrap_or(0) == want
            && s.replicas.unwrap_or(0) == want
            && s.available_replicas.unwrap_or(0) == want
    })
}

/// What the rollout wait sees: the Deployment changed, or one of its pods did.
enum Seen {
    Deployment(Box<Deployment>),
    Pod,
}

/// Waits until every replica runs the latest spec, following the Deployment and its pods
/// with watchers; the reason in words when it does not (a fatal one at once).
async fn wait_rolled_out(client: &Client, w: &Workload) -> Result<(), String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &w.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &w.namespace);
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", w.name));
    let of_pods = watcher::Config::default().labels(&w.label_selector());
    let seen = stream::select(
        watcher(deployments, by_name)
            .default_backoff()
            .applied_objects()
            .map_ok(|d| Seen::Deployment(Box::new(d))),
        watcher(pods, of_pods)
            .default_backoff()
            .touched_objects()
            .map_ok(|_| Seen::Pod),
    );
    let mut last_reason = None;
    let watch = async {
        let mut seen = seen.boxed();
        while let Some(next) = seen.next().await {
            match next {
                Ok(Seen::Deployment(d)) if rolled_out(&d) => return Ok(()),
                Ok(Seen::Deployment(_)) => {}
                Ok(Seen::Pod) => {
                    let why = rollout::explain(client, w).await;
                    if let Some(n) = why.as_ref().filter(|n| n.fatal) {
                        return Err(n.reason.clone());
                    }
                    last_reason = why.map(|n| n.reason);
                }
                Err(e) => last_reason = Some(format!("watching Deployment {}: {e}", w.name)),
            }
        }
        Err(format!("the watch of Deployment {} ended", w.name))
    };
    let outcome = tokio::time::timeout(ROLLOUT_LIMIT, watch).await;
    match outcome {
        Ok(r) => r,
        Err(_) => Err(last_reason.unwrap_or_else(|| {
            format!(
                "Deployment {} was not rolled out after {ROLLOUT_LIMIT:?}",
                w.name
            )
        })),
    }
}
