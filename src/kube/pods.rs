//! [`PodSet`]: the pods of one workload, kept current by one watch.
//!
//! One reflector per workload (a label-selected pod `watcher`, with backoff, feeding a
//! `reflector` store) holds its pods. Readers take snapshots of the store and wait on
//! [`PodSet::changes`], so a pod that starts crash-looping long after a rollout is seen
//! within the watch's latency, and nobody lists pods on a timer. The watch runs while any
//! clone of the set is alive. Pod counts and readiness are pure functions of pods.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Workload;

/// The pods of one workload; cheap to clone, every clone reads the same store.
#[derive(Clone)]
pub struct PodSet {
    inner: Arc<Inner>,
}

struct Inner {
    workload: Workload,
    /// The workload's namespace, for the readers that stream logs or port-forward.
    api: Api<Pod>,
    store: Store<Pod>,
    state: watch::Receiver<WatchState>,
    /// Stops the watch when the last clone goes.
    _stop: DropGuard,
}

/// How current the store is, as readers wait on it.
#[derive(Debug, Clone, Default)]
pub struct WatchState {
    /// Bumped after every change the watch applied to the store (0: not listed yet).
    pub version: u64,
    /// The watch's last failure, cleared by its next event; the watch retries with backoff.
    pub error: Option<Arc<watcher::Error>>,
}

impl PodSet {
    /// Starts watching `workload`'s pods (on the current runtime).
    pub fn watch(client: Client, workload: Workload) -> PodSet {
        let api: Api<Pod> = Api::namespaced(client, &workload.namespace);
        let (store, writer) = reflector::store();
        let (state_tx, state) = watch::channel(WatchState::default());
        let config = watcher::Config::default().labels(&workload.label_selector());
        let events = reflector::reflector(writer, watcher(api.clone(), config).default_backoff());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            loop {
                let event = tokio::select! {
                    _ = stopped.cancelled() => return,
                    e = events.next() => e,
                };
                let Some(event) = event else { return };
                state_tx.send_if_modified(|s| match event {
                    // A relist fills the store in one go, at InitDone: nothing new to read before.
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => false,
                    Ok(_) => {
                        s.version += 1;
                        s.error = None;
                        true
                    }
                    Err(e) => {
                        s.error = Some(Arc::new(e));
                        true
                    }
                });
            }
        });
        PodSet {
            inner: Arc::new(Inner {
                workload,
                api,
                store,
                state,
                _stop: stop.drop_guard(),
            }),
        }
    }

    pub fn workload(&self) -> &Workload {
        &self.inner.workload
    }

    /// Pods of the workload's namespace: for log streams and port-forwards.
    pub fn api(&self) -> &Api<Pod> {
        &self.inner.api
    }

    /// A receiver that wakes on every change of the store (or of the watch's health) after
    /// this call: read the store after each wake, so no change goes unseen.
    pub fn changes(&self) -> watch::Receiver<WatchState> {
        let mut rx = self.inner.state.clone();
        rx.mark_unchanged();
        rx
    }

    /// Whether the first list has filled the store: before that, "no pods" means "not known".
    pub fn listed(&self) -> bool {
        self.inner.state.borrow().version > 0
    }

    /// The watch's last failure, if it has not recovered since.
    pub fn error(&self) -> Option<Arc<watcher::Error>> {
        self.inner.state.borrow().error.clone()
    }

    /// Every pod in the store, those being deleted included (their logs still matter).
    pub fn all(&self) -> Vec<Arc<Pod>> {
        self.inner.store.state()
    }

    /// The pods that count: those not being deleted.
    pub fn live(&self) -> Vec<Arc<Pod>> {
        self.inner
            .store
            .state_filter(|p| p.metadata.deletion_timestamp.is_none())
    }

    /// The pod named `name`, while it is in the store.
    pub fn get(&self, name: &str) -> Option<Arc<Pod>> {
        self.inner
            .store
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }

    /// The newest ready pod: where a new connection goes.
    pub fn newest_ready(&self) -> Option<Arc<Pod>> {
        newest_ready(self.live())
    }

    pub fn counts(&self) -> PodCounts {
        count(self.live().iter().map(|p| &**p))
    }
}

/// Pod counts for display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodCounts {
    pub ready: usize,
    pub total: usize,
    pub restarts: u32,
}

/// One replica, for the resource list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replica {
    pub pod: String,
    pub ready: bool,
    pub restarts: u32,
}

/// The pods that are not being deleted, by name.
pub fn replicas<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Vec<Replica> {
    let mut v: Vec<Replica> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| Replica {
            pod: p.name_any(),
            ready: is_ready(p),
            restarts: restarts(p),
        })
        .collect();
    v.sort_by(|a, b| a.pod.cmp(&b.pod));
    v
}

fn restarts(p: &Pod) -> u32 {
    p.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|cs| cs.restart_count.max(0) as u32)
        .sum()
}

/// Counts of the pods that are not being deleted.
pub fn count<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> PodCounts {
    let mut c = PodCounts::default();
    for p in pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        c.total += 1;
        if is_ready(p) {
            c.ready += 1;
        }
        c.restarts += restarts(p);
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

/// The ready pod created last: after a redeploy that is a pod of the new version.
fn newest_ready(pods: Vec<Arc<Pod>>) -> Option<Arc<Pod>> {
    pods.into_iter()
        .filter(|p| is_ready(p))
        .max_by_key(|p| (p.creation_timestamp().map(|t| t.0), p.name_any()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, created: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "status": {"conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" }}
                ]}
            }))
            .expect("a valid pod"),
        )
    }

    #[test]
    fn the_newest_ready_pod_receives_new_connections() {
        let pods = vec![
            pod("old", "2026-01-01T10:00:00Z", true),
            pod("new", "2026-01-01T11:00:00Z", true),
            pod("newest-unready", "2026-01-01T12:00:00Z", false),
        ];
        assert_eq!(
            newest_ready(pods).map(|p| p.name_any()).as_deref(),
            Some("new")
        );
        assert!(newest_ready(vec![pod("x", "2026-01-01T10:00:00Z", false)]).is_none());
    }
}
