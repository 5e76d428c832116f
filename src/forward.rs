//! Port-forwards that bind their local port once and outlive pods.
//!
//! The local listener is bound when `up` starts and never re-bound, so the URL a developer
//! has open keeps working. Each accepted connection goes to the newest ready pod of the
//! workload at that moment, read from the workload's [`PodSet`] (no API call), and tunnels
//! through the API server's port-forward: a pod restart or a redeploy only affects
//! connections that were open on the old pod.
//!
//! Health is reported from what actually happens, never assumed: no ready pod, a
//! port-forward that does not open within [`DIAL_TIMEOUT`], the pod's side saying on the
//! port-forward's error channel that its dial failed ("connection refused" when nothing
//! listens on the port in the pod), a tunnel that breaks. So that the health is honest
//! before anyone connects, one probe (a connection opened and closed, as a TCP readiness
//! probe does) runs whenever the newest ready pod changes, and again with backoff while
//! it fails; a healthy forward is not probed on a timer.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use futures::{
    FutureExt,
    future::{BoxFuture, Fuse},
};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt, api::Portforwarder, runtime::watcher};
use tokio::{
    io::DuplexStream,
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};
use tokio_util::sync::CancellationToken;

use crate::kube::{PodSet, WorkloadKind};

/// How long opening a port-forward through the API server may take before the forward
/// counts as unhealthy: long enough for a busy API server, short enough that a developer
/// is told rather than left waiting.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a probe waits for the pod's side to report a failed dial. A refusal comes back
/// within milliseconds; silence means the pod accepted the connection.
const REFUSAL_WAIT: Duration = Duration::from_millis(500);

/// How long a finished tunnel waits for an error that raced its end.
const TAIL_WAIT: Duration = Duration::from_millis(100);

/// Re-probing a failing forward: first after this, doubling up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// A forward's state as the developer should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Bound, waiting for the workload to have a ready pod.
    Waiting,
    /// The last tunnel (or probe) reached this pod.
    Healthy {
        pod: String,
    },
    Unhealthy {
        reason: String,
    },
}

/// A health change of the forward on `local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub resource: String,
    pub local: u16,
    pub health: Health,
}

/// Why a forward cannot carry a connection now.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no ready pod of {kind} {name}")]
    NoReadyPod { kind: WorkloadKind, name: String },
    #[error("cannot watch the pods of {kind} {name}")]
    Watch {
        kind: WorkloadKind,
        name: String,
        #[source]
        source: Arc<watcher::Error>,
    },
    #[error("port-forward to {pod}:{port} failed")]
    Open {
        pod: String,
        port: u16,
        #[source]
        source: kube::Error,
    },
    #[error("port-forward to {pod}:{port} did not open within {}s", DIAL_TIMEOUT.as_secs())]
    OpenTimeout { pod: String, port: u16 },
    #[error("port-forward to {pod}:{port} gave no stream")]
    NoStream { pod: String, port: u16 },
    #[error("connection refused by pod {pod} on port {port}: nothing listens there")]
    Refused { pod: String, port: u16 },
    /// The pod's side could not dial the port for another reason; its words.
    #[error("pod {pod} cannot be reached on port {port}: {message}")]
    Dial {
        pod: String,
        port: u16,
        message: String,
    },
    #[error("tunnel to {pod}:{port} broke")]
    Broke {
        pod: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

impl ForwardError {
    /// The error and its causes in one line, as views show a reason.
    fn reason(&self) -> String {
        let mut reason = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        reason
    }
}

/// Binds `127.0.0.1:local`; done once, before anything is deployed, so a port in use is
/// reported at once.
pub async fn bind(local: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], local))).await
}

/// Serves one forward until `shutdown`. `target` holds the pods that receive the traffic;
/// it changes when the resource is redeployed with other workloads.
pub async fn serve(
    listener: TcpListener,
    resource: String,
    remote: u16,
    target: watch::Receiver<Option<PodSet>>,
    health_tx: mpsc::UnboundedSender<HealthEvent>,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let (report_tx, report_rx) = mpsc::unbounded_channel::<Health>();
    tokio::spawn(report(resource, local, report_rx, health_tx));
    let _ = report_tx.send(Health::Waiting);
    tokio::spawn(watch_health(
        target.clone(),
        remote,
        report_tx.clone(),
        shutdown.clone(),
    ));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((conn, _)) = accepted else { continue };
        let set = target.borrow().clone();
        let report_tx = report_tx.clone();
        tokio::spawn(async move {
            let Some(set) = set else {
                let _ = report_tx.send(Health::Waiting);
                return;
            };
            let _ = report_tx.send(match tunnel(conn, &set, remote).await {
                Ok(pod) => Health::Healthy { pod },
                Err(e) => Health::Unhealthy { reason: e.reason() },
            });
        });
    }
}

/// Passes health changes on, deduplicated, so a busy forward does not flood the events.
async fn report(
    resource: String,
    local: u16,
    mut report_rx: mpsc::UnboundedReceiver<Health>,
    health_tx: mpsc::UnboundedSender<HealthEvent>,
) {
    let mut last = None;
    while let Some(h) = report_rx.recv().await {
        if last.as_ref() != Some(&h) {
            last = Some(h.clone());
            let event = HealthEvent {
                resource: resource.clone(),
                local,
                health: h,
            };
            if health_tx.send(event).is_err() {
                return;
            }
        }
    }
}

/// Keeps the health honest while nobody connects: follows the newest ready pod of the
/// target and probes each new one, and a failing one again with backoff.
async fn watch_health(
    mut target: watch::Receiver<Option<PodSet>>,
    remote: u16,
    report_tx: mpsc::UnboundedSender<Health>,
    shutdown: CancellationToken,
) {
    // The pod whose probe passed: it is not probed again while it stays the newest ready.
    let mut probed: Option<String> = None;
    // The last probe failed: probe again after `retry`.
    let mut failing = false;
    let mut retry = RETRY_MIN;
    let mut set = target.borrow_and_update().clone();
    let mut changes = set.as_ref().map(PodSet::changes);
    loop {
        let health = match &set {
            None => Some(Health::Waiting),
            Some(set) if !set.listed() => Some(match set.error() {
                Some(source) => unhealthy(ForwardError::Watch {
                    kind: set.workload().kind,
                    name: set.workload().name.clone(),
                    source,
                }),
                None => Health::Waiting,
            }),
            Some(set) => match set.newest_ready().map(|p| p.name_any()) {
                None => Some(unhealthy(no_ready_pod(set))),
                Some(pod) if probed.as_deref() == Some(pod.as_str()) => None,
                Some(pod) => {
                    let result = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = probe(set, &pod, remote) => r,
                    };
                    failing = result.is_err();
                    Some(match result {
                        Ok(()) => {
                            probed = Some(pod.clone());
                            retry = RETRY_MIN;
                            Health::Healthy { pod }
                        }
                        Err(e) => unhealthy(e),
                    })
                }
            },
        };
        if let Some(h) = health {
            if !matches!(h, Health::Healthy { .. }) {
                // The next ready pod is probed afresh, even if it has the same name.
                probed = None;
            }
            let _ = report_tx.send(h);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = target.changed() => {
                if r.is_err() {
                    return;
                }
                set = target.borrow_and_update().clone();
                changes = set.as_ref().map(PodSet::changes);
                probed = None;
            }
            _ = changed(changes.as_mut()) => {}
            _ = tokio::time::sleep(retry), if failing => retry = (retry * 2).min(RETRY_MAX),
        }
    }
}

fn unhealthy(e: ForwardError) -> Health {
    Health::Unhealthy { reason: e.reason() }
}

fn no_ready_pod(set: &PodSet) -> ForwardError {
    ForwardError::NoReadyPod {
        kind: set.workload().kind,
        name: set.workload().name.clone(),
    }
}

/// Resolves when the pod set changes; never without one.
async fn changed(changes: Option<&mut watch::Receiver<crate::kube::WatchState>>) {
    let Some(c) = changes else {
        return std::future::pending().await;
    };
    if c.changed().await.is_err() {
        // The set's watch only ends when the set is dropped, which the caller prevents.
        std::future::pending::<()>().await;
    }
}

/// A port-forward to one port of one pod.
struct Dialed {
    forwarder: Portforwarder,
    stream: DuplexStream,
    /// Resolves with the pod side's error message, or `None` when the port-forward ends
    /// without one. Fused: it is polled again after it resolved.
    error: Fuse<BoxFuture<'static, Option<String>>>,
}

/// Opens a port-forward to `pod:port`, within [`DIAL_TIMEOUT`].
async fn dial(api: &Api<Pod>, pod: &str, port: u16) -> Result<Dialed, ForwardError> {
    let mut forwarder = tokio::time::timeout(DIAL_TIMEOUT, api.portforward(pod, &[port]))
        .await
        .map_err(|_| ForwardError::OpenTimeout {
            pod: pod.to_owned(),
            port,
        })?
        .map_err(|source| ForwardError::Open {
            pod: pod.to_owned(),
            port,
            source,
        })?;
    let no_stream = || ForwardError::NoStream {
        pod: pod.to_owned(),
        port,
    };
    let stream = forwarder.take_stream(port).ok_or_else(no_stream)?;
    let error = forwarder.take_error(port).ok_or_else(no_stream)?;
    let error: Pin<Box<dyn Future<Output = Option<String>> + Send>> = Box::pin(error);
    Ok(Dialed {
        forwarder,
        stream,
        error: error.fuse(),
    })
}

/// The pod side's words about a failed dial, as an error.
fn refusal(pod: &str, port: u16, message: String) -> ForwardError {
    if message.contains("connection refused") {
        ForwardError::Refused {
            pod: pod.to_owned(),
            port,
        }
    } else {
        ForwardError::Dial {
            pod: pod.to_owned(),
            port,
            message: message.trim().to_owned(),
        }
    }
}

/// Opens and closes one connection to `pod:port`: does anything accept it?
async fn probe(set: &PodSet, pod: &str, port: u16) -> Result<(), ForwardError> {
    let mut dialed = dial(set.api(), pod, port).await?;
    let verdict = tokio::time::timeout(REFUSAL_WAIT, &mut dialed.error).await;
    drop(dialed.stream);
    dialed.forwarder.abort();
    match verdict {
        Ok(Some(message)) => Err(refusal(pod, port, message)),
        _ => Ok(()),
    }
}

/// The newest ready pod, waiting up to `limit` for one: a connection made just as `up`
/// starts, or while the only pod restarts, is carried once a pod is ready again instead
/// of being cut.
async fn ready_pod_within(set: &PodSet, limit: Duration) -> Option<Arc<Pod>> {
    let mut changes = set.changes();
    let wait = async {
        loop {
            if let Some(pod) = set.newest_ready() {
                return pod;
            }
            if changes.changed().await.is_err() {
                // The set's watch only ends when the set is dropped, which we prevent.
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::time::timeout(limit, wait).await.ok()
}

/// Carries one connection to `port` on the newest ready pod; returns the pod's name.
async fn tunnel(mut conn: TcpStream, set: &PodSet, port: u16) -> Result<String, ForwardError> {
    let pod = ready_pod_within(set, DIAL_TIMEOUT)
        .await
        .map(|p| p.name_any())
        .ok_or_else(|| no_ready_pod(set))?;
    let mut dialed = dial(set.api(), &pod, port).await?;
    let copied = tokio::select! {
        biased;
        Some(message) = &mut dialed.error => Err(refusal(&pod, port, message)),
        c = tokio::io::copy_bidirectional(&mut conn, &mut dialed.stream) => Ok(c),
    };
    // A refusal closes the stream too: the copy may have seen the close first.
    let raced = match copied {
        Ok(_) => tokio::time::timeout(TAIL_WAIT, &mut dialed.error)
            .await
            .ok()
            .flatten(),
        Err(_) => None,
    };
    drop(dialed.stream);
    dialed.forwarder.abort();
    if let Some(message) = raced {
        return Err(refusal(&pod, port, message));
    }
    match copied? {
        Ok(_) => Ok(pod),
        // The client hanging up mid-response is its business, not a broken forward.
        Err(e)
            if e.kind() == std::io::ErrorKind::ConnectionReset
                || e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(pod)
        }
        Err(source) => Err(ForwardError::Broke { pod, port, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelets_refusal_reads_as_nothing_listening() {
        // As the dev cluster's containerd words it.
        let message = "error forwarding port 9999 to pod 5d0c, uid : failed to execute portforward in network namespace \"/var/run/netns/cni-1\": failed to connect to localhost:9999 inside namespace \"5d0c\", IPv4: dial tcp4 127.0.0.1:9999: connect: connection refused IPv6 dial tcp6 [::1]:9999: connect: connection refused ";
        assert_eq!(
            refusal("web-1", 9999, message.into()).reason(),
            "connection refused by pod web-1 on port 9999: nothing listens there"
        );
        assert_eq!(
            refusal("web-1", 9999, " no route to host\n".into()).reason(),
            "pod web-1 cannot be reached on port 9999: no route to host"
        );
    }
}
