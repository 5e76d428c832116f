//! Check 6: whether the cluster pulls from the registry. The agent image (a static
//! tether-agent `FROM scratch`, [`crate::intercept::image`]) is pushed if the registry lacks
//! it (or, when that would take compiling one, the [`probe_image`]), and a
//! short-lived pod runs it (`tether-agent --version`, `imagePullPolicy: Always`, so the kubelet
//! really asks the registry). A watch on the pod decides: pulled once a container
//! has an image id or has started; failed on the kubelet's pull errors, with its message.
//! The pod is deleted whatever happens: passed, failed, timed out or interrupted.

use std::time::Duration;

use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use tokio_util::sync::CancellationToken;

use super::{
    error::{DoctorError, within},
    probe_image,
    report::Line,
};
use crate::{
    build::Registry,
    intercept::{InterceptError, image},
};

pub const CLUSTER: &str = "registry from the cluster";

/// Where the tiny probe image goes.
const PROBE_REPOSITORY: &str = "tether-doctor-probe";
/// A build (of a `FROM scratch` image, no base to pull) and a push of a few kB or MB.
const IMAGE_LIMIT: Duration = Duration::from_secs(120);
/// From creating the pod to the kubelet having pulled its image.
const PULL_LIMIT: Duration = Duration::from_secs(90);
const DELETE_LIMIT: Duration = Duration::from_secs(10);

/// The kubelet's reasons for a container waiting on an image it cannot get.
const PULL_FAILURES: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];

/// What the pod says about its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    Yes { image_id: String },
    Failed { reason: String, message: String },
    NotYet,
}

/// Pushes the agent image and has a pod in `namespace` pull it.
pub async fn cluster(
    client: &Client,
    namespace: &str,
    registry: &Registry,
    cancel: &CancellationToken,
) -> Result<Line, DoctorError> {
    let reference = within(
        IMAGE_LIMIT,
        format!("the push of the probe image to {}", registry.push),
        "check that the engine can push to the registry (the Docker API line)",
        async {
            tokio::select! {
                pushed = push(registry) => pushed.map_err(|source| DoctorError::ProbeImage {
                    registry: registry.push.clone(),
                    source,
                }),
                () = cancel.cancelled() => Err(DoctorError::Cancelled),
            }
        },
    )
    .await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let name = format!("tether-doctor-{}", suffix());
    pods.create(&PostParams::default(), &probe_pod(&name, &reference))
        .await
        .map_err(|source| DoctorError::Pod {
            what: "create",
            namespace: namespace.to_owned(),
            source,
        })?;
    let outcome = tokio::select! {
        watched = within(
            PULL_LIMIT,
            format!("the kubelet pulling {reference}"),
            "see `kubectl describe pod` of a pod using the image: the node may be slow, or \
             the registry unreachable from it",
            watch(&pods, &name, namespace),
        ) => watched,
        () = cancel.cancelled() => Err(DoctorError::Cancelled),
    };
    // Whatever came of it, the pod goes: never leave a probe behind.
    let deleted = tokio::time::timeout(
        DELETE_LIMIT,
        pods.delete(&name, &DeleteParams::background().grace_period(0)),
    )
    .await;
    if !matches!(deleted, Ok(Ok(_))) {
        tracing::warn!("could not delete the probe pod {namespace}/{name}; delete it by hand");
    }
    let image_id = outcome?;
    Ok(Line::pass(
        CLUSTER,
        format!("a pod in namespace {namespace} pulled {reference} ({image_id})"),
    ))
}

/// The agent image when it needs no compiler (so intercepts later find it in the
/// registry), else the tiny probe image.
async fn push(registry: &Registry) -> Result<String, InterceptError> {
    let progress = |line: &str| tracing::info!("{line}");
    if image::ready_without_build() {
        image::ensure(registry, progress).await
    } else {
        image::push_binary(
            registry,
            PROBE_REPOSITORY,
            &probe_image::exit_zero(),
            progress,
        )
        .await
    }
}

/// Follows the pod until its image is pulled or cannot be.
async fn watch(pods: &Api<Pod>, name: &str, namespace: &str) -> Result<String, DoctorError> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(pods.clone(), config).applied_objects());
    while let Some(pod) = events
        .try_next()
        .await
        .map_err(|source| DoctorError::Watch {
            namespace: namespace.to_owned(),
            source,
        })?
    {
        match pulled(&pod) {
            Pulled::Yes { image_id } => return Ok(image_id),
            Pulled::Failed { reason, message } => {
                return Err(DoctorError::Pull {
                    image: image_of(&pod),
                    reason,
                    message,
                });
            }
            Pulled::NotYet => {}
        }
    }
    Err(DoctorError::PodGone)
}

/// Whether the pod's image has been pulled, from its container statuses.
pub fn pulled(pod: &Pod) -> Pulled {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    for status in statuses {
        let state = status.state.as_ref();
        let started = state.is_some_and(|s| s.running.is_some() || s.terminated.is_some());
        if !status.image_id.is_empty() || started {
            return Pulled::Yes {
                image_id: status.image_id.clone(),
            };
        }
        if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.clone().unwrap_or_default();
            if PULL_FAILURES.contains(&reason.as_str()) {
                return Pulled::Failed {
                    reason,
                    message: waiting.message.clone().unwrap_or_default(),
                };
            }
        }
    }
    Pulled::NotYet
}

fn image_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// A pod that pulls `image` afresh, runs `tether-agent --version` once and is done.
fn probe_pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/managed-by": "tether",
                "app.kubernetes.io/component": "doctor-probe",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "activeDeadlineSeconds": 120,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "probe",
                "image": image,
                "imagePullPolicy": "Always",
                "args": ["--version"],
                "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
            }],
        },
    }))
    .expect("a fixed pod spec that matches the Pod schema")
}

/// A short suffix that keeps probes of concurrent doctors apart.
fn suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:06x}",
        (nanos ^ u128::from(std::process::id()) << 24) & 0xff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "probe", "image": "127.0.0.1:5000/tether-agent:x"}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_image_id_or_a_started_container_means_pulled() {
        let p = pod(serde_json::json!({"containerStatuses": [{
            "name": "probe", "image": "x", "imageID": "sha256:abc", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0}},
        }]}));
        assert_eq!(
            pulled(&p),
            Pulled::Yes {
                image_id: "sha256:abc".into()
            }
        );
    }

    #[test]
    fn the_kubelets_pull_error_fails_with_its_message() {
        let p = pod(serde_json::json!({"containerStatuses": [{
            "name": "probe", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "dial tcp 127.0.0.1:5001: connect: connection refused"}},
        }]}));
        assert_eq!(
            pulled(&p),
            Pulled::Failed {
                reason: "ErrImagePull".into(),
                message: "dial tcp 127.0.0.1:5001: connect: connection refused".into()
            }
        );
    }

    #[test]
    fn a_pending_pod_or_one_creating_its_container_is_not_yet_decided() {
        assert_eq!(
            pulled(&pod(serde_json::json!({"phase": "Pending"}))),
            Pulled::NotYet
        );
        let creating = pod(serde_json::json!({"containerStatuses": [{
            "name": "probe", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }]}));
        assert_eq!(pulled(&creating), Pulled::NotYet);
    }

    #[test]
    fn the_probe_pod_pulls_afresh_and_runs_once() {
        let p = probe_pod("tether-doctor-1", "r/tether-agent:t");
        let spec = p.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
    }
}
