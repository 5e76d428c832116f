//! Port-forwards that bind their local port once and outlive pods.
//!
//! The local listener is bound when `up` starts and never re-bound, so the URL a developer
//! has open keeps working. Each accepted connection picks a ready pod of the workload at
//! that moment and tunnels through the API server's port-forward: a pod restart or a
//! redeploy only affects connections that were open on the old pod. Health is reported
//! from what actually happens: no ready pod, or a tunnel that fails, shows as unhealthy.

use std::{net::SocketAddr, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, ResourceExt};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};
use tokio_util::sync::CancellationToken;

use crate::deploy::{Workload, rollout};

/// A forward's state as the developer should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Bound, waiting for the workload to have a ready pod.
    Waiting,
    /// The last tunnel (or check) reached this pod.
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

/// Binds `127.0.0.1:local`; done once, before anything is deployed, so a port in use is
/// reported at once.
pub async fn bind(local: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], local))).await
}

/// Serves one forward until `shutdown`. `target` holds the workload whose pods receive the
/// traffic; it may change when the resource is redeployed.
pub async fn serve(
    listener: TcpListener,
    client: Client,
    resource: String,
    remote: u16,
    target: watch::Receiver<Option<Workload>>,
    health_tx: mpsc::UnboundedSender<HealthEvent>,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<Health>();
    // Deduplicates reports so a busy forward does not flood the event stream.
    let reporter = {
        let resource = resource.clone();
        async move {
            let mut last = None;
            while let Some(h) = report_rx.recv().await {
                if last.as_ref() != Some(&h) {
                    last = Some(h.clone());
                    let _ = health_tx.send(HealthEvent {
                        resource: resource.clone(),
                        local,
                        health: h,
                    });
                }
            }
        }
    };
    tokio::spawn(reporter);
    let _ = report_tx.send(Health::Waiting);

    // A cheap periodic check keeps the health honest while nobody connects.
    let checker = {
        let (client, target, report_tx, shutdown) = (
            client.clone(),
            target.clone(),
            report_tx.clone(),
            shutdown.clone(),
        );
        async move {
            loop {
                let w = target.borrow().clone();
                if let Some(w) = w {
                    match ready_pod(&client, &w).await {
                        Ok(Some(pod)) => {
                            let _ = report_tx.send(Health::Healthy { pod });
                        }
                        Ok(None) => {
                            let _ = report_tx.send(Health::Unhealthy {
                                reason: format!("no ready pod of {} {}", w.kind, w.name),
                            });
                        }
                        Err(e) => {
                            let _ = report_tx.send(Health::Unhealthy { reason: e });
                        }
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    tokio::spawn(checker);

    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((conn, _)) = accepted else { continue };
        let (client, target, report_tx) = (client.clone(), target.clone(), report_tx.clone());
        tokio::spawn(async move {
            let w = target.borrow().clone();
            let Some(w) = w else {
                let _ = report_tx.send(Health::Waiting);
                return;
            };
            match tunnel(conn, &client, &w, remote).await {
                Ok(pod) => {
                    let _ = report_tx.send(Health::Healthy { pod });
                }
                Err(reason) => {
                    let _ = report_tx.send(Health::Unhealthy { reason });
                }
            }
        });
    }
}

/// The newest ready pod of `w`.
async fn ready_pod(client: &Client, w: &Workload) -> Result<Option<String>, String> {
    let pods = w
        .pods(client)
        .await
        .map_err(|e| format!("cannot list pods: {e}"))?;
    Ok(pods
        .into_iter()
        .filter(rollout::is_ready)
        .max_by_key(|p| p.creation_timestamp().map(|t| t.0))
        .map(|p| p.name_any()))
}

/// Carries one connection to `remote` on a ready pod; returns the pod's name.
async fn tunnel(
    mut conn: TcpStream,
    client: &Client,
    w: &Workload,
    remote: u16,
) -> Result<String, String> {
    let pod = ready_pod(client, w)
        .await?
        .ok_or_else(|| format!("no ready pod of {} {}", w.kind, w.name))?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &w.namespace);
    let mut pf = api
        .portforward(&pod, &[remote])
        .await
        .map_err(|e| format!("port-forward to {pod}:{remote} failed: {e}"))?;
    let mut upstream = pf
        .take_stream(remote)
        .ok_or_else(|| format!("port-forward to {pod}:{remote} gave no stream"))?;
    let copied = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    drop(upstream);
    pf.abort();
    match copied {
        Ok(_) => Ok(pod),
        // The client hanging up mid-response is its business, not a broken forward.
        Err(e)
            if e.kind() == std::io::ErrorKind::ConnectionReset
                || e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(pod)
        }
        Err(e) => Err(format!("tunnel to {pod}:{remote} broke: {e}")),
    }
}
