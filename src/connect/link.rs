//! The laptop's link to the connect agent: one API-server port-forward and tunnel session
//! to the agent's ready pod, kept up by itself. The agent's pods are followed with a
//! reflector (no polling); when the session ends (the API server restarted, the pod was
//! replaced, the laptop slept) the link says so and dials again with a backoff, and the
//! callers of [`Link::opener`] wait for it instead of failing at once.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::install::{CONTROL_PORT, NAMESPACE, SELECTOR};
use crate::{
    deploy::rollout,
    tunnel::{Heartbeat, HelloMeta, Opener, Role, Session, Side, TunnelError},
};

/// What the link reports, for the command to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Connected {
        pod: String,
        after: Duration,
    },
    Lost {
        reason: String,
    },
    /// The agent refused this laptop (a wrong token): not retried.
    Refused {
        reason: String,
    },
}

/// How a command tells its user, after its own prefix (`connect: `, `run: `).
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Connected { pod, after } => {
                write!(f, "reconnected to {pod} after {} ms", after.as_millis())
            }
            Event::Lost { reason } => {
                write!(
                    f,
                    "the link to the cluster was lost ({reason}); reconnecting"
                )
            }
            Event::Refused { reason } => {
                write!(f, "the connect agent refused this laptop: {reason}")
            }
        }
    }
}

/// The link's current session, shared with every caller.
#[derive(Clone)]
pub struct Link {
    current: watch::Receiver<Option<(String, Opener)>>,
}

impl Link {
    /// Starts the link; it runs until `shutdown`.
    pub fn start(
        client: Client,
        token: String,
        name: String,
        events: mpsc::UnboundedSender<Event>,
        shutdown: CancellationToken,
    ) -> Link {
        let (tx, current) = watch::channel(None);
        tokio::spawn(keep(client, token, name, tx, events, shutdown));
        Link { current }
    }

    /// The session to open streams on, waiting up to `limit` for one to be up.
    pub async fn opener(&self, limit: Duration) -> Option<Opener> {
        let mut current = self.current.clone();
        let usable = |c: &Option<(String, Opener)>| c.as_ref().is_some_and(|(_, o)| !o.is_closed());
        let found = tokio::time::timeout(limit, current.wait_for(usable)).await;
        match found {
            Ok(Ok(c)) => c.as_ref().map(|(_, o)| o.clone()),
            _ => None,
        }
    }

    /// The agent pod the session runs to, while one does.
    pub fn pod(&self) -> Option<String> {
        let c = self.current.borrow();
        c.as_ref()
            .filter(|(_, o)| !o.is_closed())
            .map(|(p, _)| p.clone())
    }
}

async fn keep(
    client: Client,
    token: String,
    name: String,
    tx: watch::Sender<Option<(String, Opener)>>,
    events: mpsc::UnboundedSender<Event>,
    shutdown: CancellationToken,
) {
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let (store, writer) = reflector::store();
    let cfg = watcher::Config::default().labels(SELECTOR);
    let changes = reflector(writer, watcher(pods.clone(), cfg)).default_backoff();
    // The reflector runs on its own, so the store stays current while a session is up.
    let (changed_tx, mut changed) = watch::channel(());
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut changes = changes.boxed();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    c = changes.next() => match c {
                        Some(_) => { changed_tx.send_replace(()); }
                        None => return,
                    },
                }
            }
        }
    });
    let mut backoff = Duration::from_millis(100);
    let mut lost_at = Instant::now();
    loop {
        // The newest ready, not terminating pod of the agent.
        let ready = store
            .state()
            .iter()
            .filter(|p| rollout::is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .max_by_key(|p| p.metadata.creation_timestamp.clone())
            .map(|p| p.name_any());
        let Some(pod) = ready else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                c = changed.changed() => if c.is_err() { return },
            }
            continue;
        };
        let dialled = tokio::select! {
            _ = shutdown.cancelled() => return,
            d = dial(&pods, &pod, &token, &name) => d,
        };
        match dialled {
            Ok((session, forward)) => {
                backoff = Duration::from_millis(100);
                let _ = events.send(Event::Connected {
                    pod: pod.clone(),
                    after: lost_at.elapsed(),
                });
                tx.send_replace(Some((pod.clone(), session.opener())));
                let reason = tokio::select! {
                    _ = shutdown.cancelled() => {
                        session.go_away("the laptop disconnected").await;
                        return;
                    }
                    r = session.closed() => r,
                };
                drop(forward);
                lost_at = Instant::now();
                let _ = events.send(Event::Lost { reason });
            }
            Err(Dial::Refused(reason)) => {
                tx.send_replace(None);
                let _ = events.send(Event::Refused { reason });
                return;
            }
            Err(Dial::Failed(reason)) => {
                tracing::debug!(%pod, "dialling the connect agent failed: {reason}");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

enum Dial {
    Refused(String),
    Failed(String),
}

/// One port-forward to the pod's control port and a session over it.
async fn dial(
    pods: &Api<Pod>,
    pod: &str,
    token: &str,
    name: &str,
) -> Result<(Session, kube::api::Portforwarder), Dial> {
    let (forward, stream) =
        crate::kube::port::open(pods, pod, CONTROL_PORT, Duration::from_secs(10))
            .await
            .map_err(|e| Dial::Failed(e.to_string()))?;
    let meta = HelloMeta {
        role: Role::Laptop,
        name: name.to_owned(),
        token: token.to_owned(),
        ..HelloMeta::default()
    };
    match Session::start(stream, Side::Dialer, meta, Heartbeat::default()).await {
        Ok(session) => Ok((session, forward)),
        Err(TunnelError::GoAway(reason)) => Err(Dial::Refused(reason)),
        Err(e) => Err(Dial::Failed(e.to_string())),
    }
}
