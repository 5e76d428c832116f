//! The laptop's side of a running intercept: one port-forward and tunnel session to the
//! agent of every ready replica, following pods as they come and go, and every stream an
//! agent opens carried to the local process.
//!
//! Events go out on `event_tx` for the command to print; nothing here prints.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, ResourceExt, api::ListParams};
use tokio::{net::TcpStream, sync::mpsc};
use tokio_util::sync::CancellationToken;

use super::spec::AGENT_CONTAINER;
use crate::{
    deploy::rollout,
    tunnel::{Filter, Heartbeat, HelloMeta, Role, Session, Side},
};

/// What the attacher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The tunnel to this pod's agent is up; `attached` of `ready` replicas now.
    Attached {
        pod: String,
        attached: usize,
        ready: usize,
    },
    Detached {
        pod: String,
        reason: String,
    },
    /// A connection the agent sent could not reach the local process.
    LocalRefused {
        error: String,
    },
}

/// Where to attach and what to ask for.
#[derive(Debug, Clone)]
pub struct Attach {
    pub namespace: String,
    /// The Deployment's `matchLabels`, as a label selector.
    pub selector: String,
    pub control_port: u16,
    pub local: SocketAddr,
    pub filter: Filter,
}

/// Attaches to every ready agent until `shutdown`.
pub async fn run(
    client: Client,
    attach: Attach,
    event_tx: mpsc::UnboundedSender<Event>,
    shutdown: CancellationToken,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &attach.namespace);
    // pod name → (its task's token, whether its session is up)
    let mut tasks: HashMap<String, CancellationToken> = HashMap::new();
    let (up_tx, mut up_rx) = mpsc::unbounded_channel::<(String, bool)>();
    let mut up: HashMap<String, bool> = HashMap::new();
    let mut ready_count = 0usize;
    loop {
        if let Ok(list) = pods
            .list(&ListParams::default().labels(&attach.selector))
            .await
        {
            let ready: Vec<String> = list
                .items
                .iter()
                .filter(|p| rollout::is_ready(p) && has_agent(p))
                .map(|p| p.name_any())
                .collect();
            ready_count = ready.len();
            for name in &ready {
                if !tasks.contains_key(name) {
                    let token = shutdown.child_token();
                    tasks.insert(name.clone(), token.clone());
                    tokio::spawn(pod_loop(
                        pods.clone(),
                        name.clone(),
                        attach.clone(),
                        event_tx.clone(),
                        up_tx.clone(),
                        token,
                    ));
                }
            }
            tasks.retain(|name, token| {
                let keep = ready.contains(name);
                if !keep {
                    token.cancel();
                    up.remove(name);
                }
                keep
            });
        }
        let deadline = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    for t in tasks.values() { t.cancel(); }
                    return;
                }
                _ = &mut deadline => break,
                Some((pod, is_up)) = up_rx.recv() => {
                    if is_up && tasks.contains_key(&pod) {
                        up.insert(pod.clone(), true);
                        let attached = up.values().filter(|u| **u).count();
                        let _ = event_tx.send(Event::Attached { pod, attached, ready: ready_count.max(attached) });
                    } else {
                        up.insert(pod, false);
                    }
                }
            }
        }
    }
}

fn has_agent(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .is_some_and(|s| s.containers.iter().any(|c| c.name == AGENT_CONTAINER))
}

/// Keeps one pod's tunnel up until `token`: reconnects after a drop, quickly at first.
async fn pod_loop(
    pods: Api<Pod>,
    pod: String,
    attach: Attach,
    event_tx: mpsc::UnboundedSender<Event>,
    up_tx: mpsc::UnboundedSender<(String, bool)>,
    token: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = Instant::now();
        let reason = tokio::select! {
            _ = token.cancelled() => return,
            r = one_session(&pods, &pod, &attach, &event_tx, &up_tx) => r,
        };
        let _ = up_tx.send((pod.clone(), false));
        let _ = event_tx.send(Event::Detached {
            pod: pod.clone(),
            reason,
        });
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(200);
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One port-forward and session; returns why it ended.
async fn one_session(
    pods: &Api<Pod>,
    pod: &str,
    attach: &Attach,
    event_tx: &mpsc::UnboundedSender<Event>,
    up_tx: &mpsc::UnboundedSender<(String, bool)>,
) -> String {
    let mut pf = match pods.portforward(pod, &[attach.control_port]).await {
        Ok(pf) => pf,
        Err(e) => return format!("port-forward to {pod}:{} failed: {e}", attach.control_port),
    };
    let Some(stream) = pf.take_stream(attach.control_port) else {
        return "the port-forward gave no stream".into();
    };
    let meta = HelloMeta {
        role: Role::Laptop,
        name: whoami(),
        filter: attach.filter.clone(),
        ..HelloMeta::default()
    };
    let mut session = match Session::start(stream, Side::Dialer, meta, Heartbeat::default()).await {
        Ok(s) => s,
        Err(e) => {
            pf.abort();
            return e.to_string();
        }
    };
    let _ = up_tx.send((pod.to_owned(), true));
    while let Some(incoming) = session.accept().await {
        let (local, event_tx) = (attach.local, event_tx.clone());
        tokio::spawn(async move {
            let mut stream = incoming.stream;
            match TcpStream::connect(local).await {
                Ok(mut conn) => {
                    let _ = conn.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut conn).await;
                }
                Err(e) => {
                    let _ = event_tx.send(Event::LocalRefused {
                        error: format!("{local}: {e}"),
                    });
                }
            }
        });
    }
    let reason = session.close_reason();
    drop(session);
    pf.abort();
    reason
}

/// `user@host`, for the agent's logs.
fn whoami() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "laptop".into());
    format!("{user}@{host}")
}
