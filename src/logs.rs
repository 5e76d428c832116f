//! Logs of every pod and replica of a resource, fanned into one stream.
//!
//! A pod watcher notices each container instance (pod, container, restart) as it starts
//! running and follows its log; a new replica or a restarted container joins by itself,
//! and a follower ends with its container.

use std::collections::HashSet;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    api::LogParams,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::deploy::Workload;

/// One line a container printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub resource: String,
    pub pod: String,
    pub container: String,
    pub text: String,
}

/// Follows the logs of `workload`'s pods until `shutdown`.
pub async fn follow(
    client: Client,
    resource: String,
    workload: Workload,
    line_tx: mpsc::Sender<LogLine>,
    shutdown: CancellationToken,
) {
    let api: Api<Pod> = Api::namespaced(client, &workload.namespace);
    let config = watcher::Config::default().labels(&workload.label_selector());
    let mut pods = watcher(api.clone(), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    // Container instances already followed: (pod uid, container, restart count).
    let mut seen: HashSet<(String, String, i32)> = HashSet::new();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = pods.try_next() => n,
        };
        let pod = match next {
            Ok(Some(pod)) => pod,
            Ok(None) => return,
            // The watcher retries with backoff; a transient error only skips an event.
            Err(_) => continue,
        };
        let uid = pod.uid().unwrap_or_default();
        let name = pod.name_any();
        for cs in pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            let running = cs.state.as_ref().is_some_and(|s| s.running.is_some());
            if !running || !seen.insert((uid.clone(), cs.name.clone(), cs.restart_count)) {
                continue;
            }
            let follower = follow_container(
                api.clone(),
                resource.clone(),
                name.clone(),
                cs.name.clone(),
                line_tx.clone(),
                shutdown.clone(),
            );
            tokio::spawn(follower);
        }
    }
}

async fn follow_container(
    api: Api<Pod>,
    resource: String,
    pod: String,
    container: String,
    line_tx: mpsc::Sender<LogLine>,
    shutdown: CancellationToken,
) {
    let params = LogParams {
        container: Some(container.clone()),
        follow: true,
        ..LogParams::default()
    };
    let Ok(stream) = api.log_stream(&pod, &params).await else {
        return;
    };
    let mut lines = stream.lines();
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = lines.next() => l,
        };
        let Some(Ok(text)) = line else { return };
        let line = LogLine {
            resource: resource.clone(),
            pod: pod.clone(),
            container: container.clone(),
            text,
        };
        if line_tx.send(line).await.is_err() {
            return;
        }
    }
}
