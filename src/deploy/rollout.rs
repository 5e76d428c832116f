//! Waiting for workloads to be ready, and saying in words why they are not.
//!
//! A reason is read from what the cluster already knows: container states (image pull,
//! crash loop, with the crashed container's last log lines), pod conditions
//! (unschedulable) and events (failing probes).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, StatefulSet},
    core::v1::{Event, Pod},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, ListParams, LogParams},
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

    /// The workload's pods now.
    pub async fn pods(&self, client: &Client) -> kube::Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(client.clone(), &self.namespace);
        Ok(api
            .list(&ListParams::default().labels(&self.label_selector()))
            .await?
            .items)
    }
}

/// Pod counts for display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodCounts {
    pub ready: usize,
    pub total: usize,
    pub restarts: u32,
}

pub fn count(pods: &[Pod]) -> PodCounts {
    let mut c = PodCounts::default();
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        c.total += 1;
        if is_ready(p) {
            c.ready += 1;
        }
        c.restarts += p
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .map(|cs| cs.restart_count.max(0) as u32)
            .sum::<u32>();
    }
    c
}

pub fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the workload's latest spec is fully rolled out and available.
pub async fn rolled_out(client: &Client, w: &Workload) -> kube::Result<bool> {
    Ok(match w.kind.as_str() {
        "Deployment" => {
            let d = Api::<Deployment>::namespaced(client.clone(), &w.namespace)
                .get(&w.name)
                .await?;
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let generation = d.metadata.generation.unwrap_or(0);
            d.status.is_some_and(|s| {
                s.observed_generation.unwrap_or(0) >= generation
                    && s.updated_replicas.unwrap_or(0) == want
                    && s.replicas.unwrap_or(0) == want
                    && s.available_replicas.unwrap_or(0) == want
            })
        }
        "StatefulSet" => {
            let d = Api::<StatefulSet>::namespaced(client.clone(), &w.namespace)
                .get(&w.name)
                .await?;
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let generation = d.metadata.generation.unwrap_or(0);
            d.status.is_some_and(|s| {
                s.observed_generation.unwrap_or(0) >= generation
                    && s.ready_replicas.unwrap_or(0) == want
                    && s.updated_replicas.unwrap_or(0) == want
                    && s.current_revision == s.update_revision
            })
        }
        "DaemonSet" => {
            let d = Api::<DaemonSet>::namespaced(client.clone(), &w.namespace)
                .get(&w.name)
                .await?;
            let generation = d.metadata.generation.unwrap_or(0);
            d.status.is_some_and(|s| {
                s.observed_generation.unwrap_or(0) >= generation
                    && s.number_ready == s.desired_number_scheduled
                    && s.updated_number_scheduled.unwrap_or(0) == s.desired_number_scheduled
            })
        }
        _ => true,
    })
}

/// Why a pod is not ready, or `None` when nothing is known to be wrong yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub reason: String,
    /// True when waiting will not help (the image cannot be pulled, the process keeps
    /// crashing): `up --ci` fails at once instead of running into its timeout.
    pub fatal: bool,
}

/// Looks at the workload's pods and says what holds the first unready one back.
pub async fn explain(client: &Client, w: &Workload) -> Option<NotReady> {
    let pods = w.pods(client).await.ok()?;
    let pod = pods
        .iter()
        .find(|p| !is_ready(p) && p.metadata.deletion_timestamp.is_none())?;
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    for cs in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.as_deref().unwrap_or("");
        let message = waiting.message.as_deref().unwrap_or("").trim();
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
                return Some(NotReady {
                    reason: format!("pod {name}: cannot pull image {}: {message}", cs.image),
                    fatal: reason != "ErrImagePull",
                });
            }
            "CrashLoopBackOff" => {
                let exit = cs
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| format!("exit code {}", t.exit_code))
                    .unwrap_or_else(|| "exited".into());
                let logs = last_logs(client, &w.namespace, &name, &cs.name).await;
                return Some(NotReady {
                    reason: format!(
                        "pod {name}: container {} keeps crashing ({exit}, {} restarts); last log lines:\n{logs}",
                        cs.name, cs.restart_count
                    ),
                    fatal: cs.restart_count >= 2,
                });
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                return Some(NotReady {
                    reason: format!("pod {name}: container {} cannot start: {message}", cs.name),
                    fatal: true,
                });
            }
            _ => {}
        }
    }
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled" && c.status == "False" {
            return Some(NotReady {
                reason: format!(
                    "pod {name} is unschedulable: {}",
                    c.message.as_deref().unwrap_or("no reason given")
                ),
                fatal: false,
            });
        }
    }
    let running = status
        .container_statuses
        .iter()
        .flatten()
        .any(|cs| cs.state.as_ref().is_some_and(|s| s.running.is_some()));
    if running {
        if let Some(probe) = probe_failure(client, &w.namespace, &name).await {
            return Some(NotReady {
                reason: format!("pod {name}: {probe}"),
                fatal: false,
            });
        }
    }
    None
}

/// The newest "Unhealthy" event of the pod: a failing readiness or liveness probe.
async fn probe_failure(client: &Client, namespace: &str, pod: &str) -> Option<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().fields(&format!("involvedObject.name={pod},reason=Unhealthy"));
    let events = api.list(&lp).await.ok()?.items;
    let newest = events
        .into_iter()
        .max_by_key(|e| e.last_timestamp.clone().map(|t| t.0))?;
    newest.message.map(|m| m.trim().to_owned())
}

/// The last lines the crashed container printed before it died.
async fn last_logs(client: &Client, namespace: &str, pod: &str, container: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams {
        container: Some(container.to_owned()),
        previous: true,
        tail_lines: Some(10),
        ..LogParams::default()
    };
    match api.logs(pod, &params).await {
        Ok(text) if !text.trim().is_empty() => text
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(_) => "    (it printed nothing)".into(),
        Err(e) => format!("    (logs unavailable: {e})"),
    }
}

/// How often readiness is polled: short enough that "ready" shows promptly after a
/// redeploy, long enough to be no load on the API server.
pub const POLL: Duration = Duration::from_millis(250);
