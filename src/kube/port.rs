//! A port-forward to one port of one pod, opened within a time limit: what every
//! laptop-side dial to an agent or supervisor starts with.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::Portforwarder};
use tokio::io::DuplexStream;

/// Why a port-forward did not open, said as a developer reads it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("port-forward to {pod} took over {} s", limit.as_secs())]
    Timeout { pod: String, limit: Duration },
    #[error("port-forward to {pod}: {source}")]
    Open {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("the port-forward gave no stream")]
    NoStream,
}

/// Opens a port-forward to `pod:port` within `limit`. The stream lives as long as the
/// returned forwarder does.
pub async fn open(
    api: &Api<Pod>,
    pod: &str,
    port: u16,
    limit: Duration,
) -> Result<(Portforwarder, DuplexStream), OpenError> {
    let mut forwarder = tokio::time::timeout(limit, api.portforward(pod, &[port]))
        .await
        .map_err(|_| OpenError::Timeout {
            pod: pod.to_owned(),
            limit,
        })?
        .map_err(|source| OpenError::Open {
            pod: pod.to_owned(),
            source,
        })?;
    let stream = forwarder.take_stream(port).ok_or(OpenError::NoStream)?;
    Ok((forwarder, stream))
}
