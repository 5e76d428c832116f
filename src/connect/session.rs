//! Opening a session to the cluster, as `tether connect` and `tether run` both do: the
//! namespace checked, the agent image in the registry, the agent installed (or found), the
//! link up. What is checked comes before what is changed.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, api::ListParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    ConnectError, TunnelNet,
    error::kube_err,
    install,
    link::{Event, Link},
};
use crate::{build::Registry, intercept::attach::whoami};

/// A session whose link is up.
pub struct Opened {
    pub net: TunnelNet,
    /// What the link says from now on (lost, reconnected, refused).
    pub events: mpsc::UnboundedReceiver<Event>,
}

/// Fails with [`ConnectError::NoNamespace`] unless `namespace` exists.
pub async fn check_namespace(client: &Client, namespace: &str) -> Result<(), ConnectError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces
        .get_opt(namespace)
        .await
        .map_err(kube_err(format!("reading namespace {namespace}")))?
    {
        Some(_) => Ok(()),
        None => Err(ConnectError::NoNamespace(namespace.to_owned())),
    }
}

/// Installs (or finds) the agent and brings the link up; the link runs until `shutdown`.
pub async fn open(
    client: &Client,
    namespace: &str,
    shutdown: CancellationToken,
    progress: impl FnMut(&str) + Send,
) -> Result<Opened, ConnectError> {
    let registry = Registry::resolve(None, client)
        .await
        .map_err(ConnectError::Registry)?;
    let image = crate::intercept::image::ensure(&registry, progress)
        .await
        .map_err(ConnectError::Agent)?;
    let token = install::ensure(client, &image).await?;
    // Which namespaces exist, so `x.NS` of one of them is a cluster name; a user who may
    // not list them still has the session's own.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut known: HashSet<String> = namespaces
        .list_metadata(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect()
        })
        .unwrap_or_default();
    known.insert(namespace.to_owned());
    let (event_tx, mut events) = mpsc::unbounded_channel();
    let link = Link::start(client.clone(), token, whoami(), event_tx, shutdown);
    match events.recv().await {
        Some(Event::Connected { .. }) => {}
        Some(Event::Refused { reason }) => return Err(ConnectError::Refused(reason)),
        Some(Event::Lost { reason }) => return Err(ConnectError::NotReady(0, reason)),
        None => return Err(ConnectError::NotReady(0, "the link stopped".into())),
    }
    Ok(Opened {
        net: TunnelNet::new(link, namespace, known),
        events,
    })
}
