//! Whether workloads are rolled out and their pods ready, and saying in words why not.
//!
//! [`Observer`] follows one resource's workloads as long as they are deployed: each
//! workload object through a watch of its own (rolled out or not) and its pods through
//! the [`PodSet`]s that forwards and logs share. Every change gives a new [`Observed`]:
//! pod counts, restarts, readiness and the reason a pod is not ready, read from what the
//! cluster already knows: container states (image pull, crash loop, with the crashed
//! container's last log lines), pod conditions (unschedulable) and events (failing probes).
//! Nothing here polls; callers put their own timeout around a wait.

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, StatefulSet},
    core::v1::{ContainerStatus, Event, Pod},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, LogParams},
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::kube::{PodSet, WatchState, WorkloadKind};

// These moved to the kube layer; re-exported for the callers that name them here.
pub use crate::kube::{PodCounts, Replica, Workload, count, is_ready, replicas};

/// Whether the Deployment's latest spec is fully rolled out and available.
pub fn deployment_rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    d.status.as_ref().is_some_and(|s| {
        s.observed_generation.unwrap_or(0) >= generation
            && s.updated_replicas.unwrap_or(0) == want
            && s.replicas.unwrap_or(0) == want
            && s.available_replicas.unwrap_or(0) == want
    })
}

/// Why a Deployment's controller cannot make the pods it wants, from its
/// `ReplicaFailure` condition: a pod refused at admission (by a ResourceQuota, a
/// LimitRange, Pod Security) never exists, so no pod can say it. The ReplicaSet
/// controller's message (`pods "web-…" is forbidden: exceeded quota: tether-quota, …`)
/// is the reason.
pub fn deployment_trouble(d: &Deployment) -> Option<NotReady> {
    let failure = d
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")?;
    let message = failure.message.as_deref().unwrap_or("").trim();
    let reason = failure.reason.as_deref().unwrap_or("FailedCreate");
    Some(NotReady {
        reason: format!(
            "deployment {} cannot create its pods ({reason}): {}",
            d.metadata.name.as_deref().unwrap_or_default(),
            if message.is_empty() {
                "no message given"
            } else {
                message
            }
        ),
        // The controller retries, and a quota freed elsewhere lets it through.
        fatal: false,
    })
}

pub fn stateful_set_rolled_out(d: &StatefulSet) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    d.status.as_ref().is_some_and(|s| {
        s.observed_generation.unwrap_or(0) >= generation
            && s.ready_replicas.unwrap_or(0) == want
            && s.updated_replicas.unwrap_or(0) == want
            && s.current_revision == s.update_revision
    })
}

pub fn daemon_set_rolled_out(d: &DaemonSet) -> bool {
    let generation = d.metadata.generation.unwrap_or(0);
    d.status.as_ref().is_some_and(|s| {
        s.observed_generation.unwrap_or(0) >= generation
            && s.number_ready == s.desired_number_scheduled
            && s.updated_number_scheduled.unwrap_or(0) == s.desired_number_scheduled
    })
}

/// Whether the workload's latest spec is fully rolled out and available, read once: for
/// one-off commands; a running `up` watches through [`Observer`].
pub async fn rolled_out(client: &Client, w: &Workload) -> kube::Result<bool> {
    let ns = &w.namespace;
    Ok(match w.kind {
        WorkloadKind::Deployment => deployment_rolled_out(
            &Api::<Deployment>::namespaced(client.clone(), ns)
                .get(&w.name)
                .await?,
        ),
        WorkloadKind::StatefulSet => stateful_set_rolled_out(
            &Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get(&w.name)
                .await?,
        ),
        WorkloadKind::DaemonSet => daemon_set_rolled_out(
            &Api::<DaemonSet>::namespaced(client.clone(), ns)
                .get(&w.name)
                .await?,
        ),
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

/// Lists the workload's pods once and says what holds the first unready one back: for
/// one-off commands; a running `up` reads [`Observed::trouble`].
pub async fn explain(client: &Client, w: &Workload) -> Option<NotReady> {
    let pods = w.pods(client).await.ok()?;
    explain_pods(client, pods.iter()).await
}

/// What holds the first unready pod among `pods` back. Reads the pod's status, and only
/// for a crash loop or a running container its previous logs or its events.
pub async fn explain_pods<'a>(
    client: &Client,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<NotReady> {
    let pod = pods
        .into_iter()
        .find(|p| !is_ready(p) && p.metadata.deletion_timestamp.is_none())?;
    let name = pod.name_any();
    let namespace = pod.namespace().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let init = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|cs| (true, cs));
    let main = status
        .container_statuses
        .iter()
        .flatten()
        .map(|cs| (false, cs));
    for (is_init, cs) in init.chain(main) {
        if let Some(why) = container_trouble(&name, cs, is_init) {
            return Some(why);
        }
        let crash_looping = cs
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
        if crash_looping {
            let exit = last_exit(cs).unwrap_or_else(|| "exited".into());
            let logs = last_logs(client, &namespace, &name, &cs.name).await;
            return Some(NotReady {
                reason: format!(
                    "pod {name}: container {} keeps crashing ({exit}, {} restarts); last log lines:\n{logs}",
                    cs.name, cs.restart_count
                ),
                fatal: cs.restart_count >= 2,
            });
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
    let running: Vec<&ContainerStatus> = status
        .container_statuses
        .iter()
        .flatten()
        .filter(|cs| cs.state.as_ref().is_some_and(|s| s.running.is_some()))
        .collect();
    if !running.is_empty() {
        if let Some(probe) = probe_failure(client, &namespace, &name).await {
            return Some(NotReady {
                reason: format!("pod {name}: {probe}"),
                fatal: false,
            });
        }
    }
    // A container that came back after dying and is not ready again yet.
    running
        .into_iter()
        .find(|cs| !cs.ready && cs.restart_count > 0)
        .map(|cs| NotReady {
            reason: format!(
                "pod {name}: container {} restarted ({}, {} restarts) and is not ready yet",
                cs.name,
                last_exit(cs).unwrap_or_else(|| "exited".into()),
                cs.restart_count
            ),
            fatal: false,
        })
}

/// What a container's own state says is wrong, without asking the API server. An init
/// container that exited 0 did its job.
fn container_trouble(pod: &str, cs: &ContainerStatus, is_init: bool) -> Option<NotReady> {
    let state = cs.state.as_ref()?;
    if let Some(t) = state
        .terminated
        .as_ref()
        .filter(|t| !is_init || t.exit_code != 0)
    {
        return Some(NotReady {
            reason: format!(
                "pod {pod}: container {} exited (exit code {}{})",
                cs.name,
                t.exit_code,
                t.reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            ),
            fatal: false,
        });
    }
    let waiting = state.waiting.as_ref()?;
    let reason = waiting.reason.as_deref().unwrap_or("");
    let message = waiting.message.as_deref().unwrap_or("").trim();
    match reason {
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => Some(NotReady {
            reason: format!("pod {pod}: cannot pull image {}: {message}", cs.image),
            fatal: reason != "ErrImagePull",
        }),
        "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
            Some(NotReady {
                reason: format!("pod {pod}: container {} cannot start: {message}", cs.name),
                fatal: !kubelet_retries(message),
            })
        }
        _ => None,
    }
}

/// A container-config failure the kubelet gets past by itself: its watch of a Secret or
/// ConfigMap the pod uses had not synced in time (a slow or restarting API server), and
/// it tries again on its next sync of the pod.
fn kubelet_retries(message: &str) -> bool {
    [
        "failed to sync secret cache",
        "failed to sync configmap cache",
    ]
    .iter()
    .any(|m| message.starts_with(m))
}

/// "exit code N" of the container's last run, when it has one.
fn last_exit(cs: &ContainerStatus) -> Option<String> {
    cs.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| format!("exit code {}", t.exit_code))
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

/// How often one-off commands that keep no watch (intercept's install) poll readiness.
/// `up` does not poll: it reads an [`Observer`].
pub const POLL: Duration = Duration::from_millis(250);

/// One resource's workloads and pods as they are now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub counts: PodCounts,
    pub replicas: Vec<Replica>,
    /// Every workload's latest spec is rolled out and available (its controller says so).
    pub rolled_out: bool,
    /// Every workload's pods have been listed once: before that "no pods" is not known,
    /// so nothing is said about them (an unchanged workload is rolled out at once).
    pub listed: bool,
    /// Every pod is listed and ready: a pod that stops being ready shows here at once,
    /// before its controller's status catches up.
    pub pods_ready: bool,
    /// Why a pod is not ready, when something is known to be wrong.
    pub trouble: Option<NotReady>,
}

/// Follows one resource's workloads until dropped, publishing an [`Observed`] on every
/// change.
pub struct Observer {
    observed: watch::Receiver<Observed>,
    _stop: DropGuard,
}

impl Observer {
    /// Starts observing the workloads of `sets` (on the current runtime).
    pub fn start(client: Client, sets: Vec<PodSet>) -> Observer {
        let (tx, observed) = watch::channel(Observed::default());
        let stop = CancellationToken::new();
        tokio::spawn(observe(client, sets, tx, stop.clone()));
        Observer {
            observed,
            _stop: stop.drop_guard(),
        }
    }

    /// The latest observation, waking on each change.
    pub fn observed(&self) -> watch::Receiver<Observed> {
        self.observed.clone()
    }
}

async fn observe(
    client: Client,
    sets: Vec<PodSet>,
    tx: watch::Sender<Observed>,
    stop: CancellationToken,
) {
    let mut rolled_out = vec![false; sets.len()];
    // What a workload object says holds its pods back, where no pod can say it.
    let mut refused: Vec<Option<NotReady>> = vec![None; sets.len()];
    let mut rollouts = futures::stream::select_all(
        sets.iter()
            .enumerate()
            .map(|(i, s)| rollout_watch(&client, s.workload()).map(move |r| (i, r))),
    );
    let mut changes: Vec<watch::Receiver<WatchState>> = sets.iter().map(PodSet::changes).collect();
    loop {
        let pods: Vec<Arc<Pod>> = sets.iter().flat_map(PodSet::live).collect();
        let listed = sets.iter().all(PodSet::listed);
        let pods_ready = listed && pods.iter().all(|p| is_ready(p));
        // A workload whose pods are refused has none to explain: every pod it has is
        // ready, and it still is not rolled out.
        let refusal = refused.iter().flatten().next().cloned();
        let trouble = if pods_ready {
            refusal
        } else {
            explain_pods(&client, pods.iter().map(|p| &**p))
                .await
                .or(refusal)
        };
        let now = Observed {
            counts: count(pods.iter().map(|p| &**p)),
            replicas: replicas(pods.iter().map(|p| &**p)),
            rolled_out: rolled_out.iter().all(|r| *r),
            listed,
            pods_ready,
            trouble,
        };
        tx.send_if_modified(|o| {
            let changed = *o != now;
            *o = now;
            changed
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            Some((i, r)) = rollouts.next() => match r {
                Ok(Some((done, why))) => {
                    rolled_out[i] = done;
                    refused[i] = why;
                }
                // Deleted (by someone else, or not yet created).
                Ok(None) => {
                    rolled_out[i] = false;
                    refused[i] = None;
                }
                // The watch retries with backoff; the last answer stands meanwhile.
                Err(_) => {}
            },
            _ = any_changed(&mut changes) => {}
        }
    }
}

/// Resolves when any of the pod sets changes.
async fn any_changed(changes: &mut [watch::Receiver<WatchState>]) {
    if changes.is_empty() {
        return std::future::pending().await;
    }
    let waits = changes.iter_mut().map(|c| Box::pin(c.changed()));
    if futures::future::select_all(waits).await.0.is_err() {
        // A pod set's watch only ends when the set is dropped, which this task prevents.
        std::future::pending::<()>().await;
    }
}

/// A workload object's verdict: rolled out or not, and what its own status says holds
/// its pods back.
type Verdict = (bool, Option<NotReady>);

/// Whether the workload is rolled out, each time its object changes.
fn rollout_watch(
    client: &Client,
    w: &Workload,
) -> BoxStream<'static, Result<Option<Verdict>, watcher::Error>> {
    fn watch<K>(
        api: Api<K>,
        name: &str,
        verdict: fn(&K) -> Verdict,
    ) -> BoxStream<'static, Result<Option<Verdict>, watcher::Error>>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    {
        watcher::watch_object(api, name)
            .default_backoff()
            .map(move |r| r.map(|o| o.as_ref().map(verdict)))
            .boxed()
    }
    let (c, ns) = (client.clone(), w.namespace.as_str());
    match w.kind {
        WorkloadKind::Deployment => watch(Api::namespaced(c, ns), &w.name, |d| {
            (deployment_rolled_out(d), deployment_trouble(d))
        }),
        WorkloadKind::StatefulSet => watch(Api::namespaced(c, ns), &w.name, |d| {
            (stateful_set_rolled_out(d), None)
        }),
        WorkloadKind::DaemonSet => watch(Api::namespaced(c, ns), &w.name, |d| {
            (daemon_set_rolled_out(d), None)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(statuses: serde_json::Value, ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "ns"},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": statuses,
            }
        }))
        .expect("a valid pod")
    }

    #[test]
    fn counts_take_restarts_and_readiness_of_live_pods() {
        let restarted = pod(
            serde_json::json!([{"name": "web", "image": "i", "imageID": "", "ready": false,
                "restartCount": 2, "state": {"running": {}}}]),
            false,
        );
        let fine = pod(
            serde_json::json!([{"name": "web", "image": "i", "imageID": "", "ready": true,
                "restartCount": 0, "state": {"running": {}}}]),
            true,
        );
        let mut leaving = fine.clone();
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().expect("a timestamp"),
            ));
        assert_eq!(
            count([&restarted, &fine, &leaving]),
            PodCounts {
                ready: 1,
                total: 2,
                restarts: 2
            }
        );
    }

    #[test]
    fn a_container_that_exited_says_its_exit_code() {
        let p = pod(
            serde_json::json!([{"name": "web", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]),
            false,
        );
        let cs = &p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default()[0];
        let why = container_trouble("web-1", cs, false).expect("a reason");
        assert_eq!(
            why.reason,
            "pod web-1: container web exited (exit code 3, Error)"
        );
        assert!(!why.fatal, "the kubelet restarts it");
    }

    #[test]
    fn a_secret_cache_that_has_not_synced_is_waited_out_and_a_missing_secret_is_not() {
        let waiting = |message: &str| {
            let p = pod(
                serde_json::json!([{"name": "tether-agent", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0, "state": {"waiting": {
                        "reason": "CreateContainerConfigError", "message": message}}}]),
                false,
            );
            let cs = p
                .status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default()
                .remove(0);
            container_trouble("web-1", &cs, false).expect("a reason")
        };
        let slow = waiting("failed to sync secret cache: timed out waiting for the condition");
        assert!(!slow.fatal, "the kubelet retries: {}", slow.reason);
        assert!(slow.reason.contains("failed to sync secret cache"));
        let missing = waiting("secret \"tether-agent-web\" not found");
        assert!(missing.fatal, "{}", missing.reason);
    }

    #[test]
    fn a_quota_that_refuses_the_pods_is_said_from_the_deployment() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hello", "namespace": "dev-alice", "generation": 1},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "unavailableReplicas": 1, "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."},
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                 "message": "pods \"hello-5d8c7b9f4-x2x9q\" is forbidden: exceeded quota: tether-quota, requested: pods=1, used: pods=0, limited: pods=0"},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
            ]}
        }))
        .expect("a valid deployment");
        let why = deployment_trouble(&d).expect("a reason");
        assert_eq!(
            why.reason,
            "deployment hello cannot create its pods (FailedCreate): pods \"hello-5d8c7b9f4-x2x9q\" is forbidden: exceeded quota: tether-quota, requested: pods=1, used: pods=0, limited: pods=0"
        );
        assert!(!why.fatal);
        let mut fine = d;
        if let Some(s) = fine.status.as_mut() {
            s.conditions = None;
        }
        assert_eq!(deployment_trouble(&fine), None);
    }

    #[test]
    fn a_deployment_is_rolled_out_when_its_controller_caught_up() {
        let d = |observed: i64, available: i32| -> Deployment {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "generation": 2},
                "spec": {"replicas": 1, "selector": {}, "template": {}},
                "status": {"observedGeneration": observed, "replicas": 1, "updatedReplicas": 1,
                    "availableReplicas": available}
            }))
            .expect("a valid deployment")
        };
        assert!(deployment_rolled_out(&d(2, 1)));
        assert!(
            !deployment_rolled_out(&d(1, 1)),
            "the new spec is not seen yet"
        );
        assert!(!deployment_rolled_out(&d(2, 0)), "no pod is available");
    }
}
