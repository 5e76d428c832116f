//! The laptop's side of a running intercept: one port-forward and tunnel session to the
//! agent of every ready replica, following pods as they come and go (a reflector on the
//! Service's pods, no polling), and every stream an agent opens carried to the local
//! process listening for the port it names. Each Hello carries the intercept's attach
//! token.
//!
//! Events go out on `event_tx` for the command to print; nothing here prints. The
//! sessions that are up are shared in [`Sessions`], so the command can ask their agents
//! who is attached before it leaves.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt as _, reflector, reflector::Store, watcher},
};
use tokio::{net::TcpStream, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::spec::AGENT_CONTAINER;
use crate::{
    deploy::rollout,
    tunnel::{
        Filter, Heartbeat, HelloMeta, Opener, Role, Session, Side, TunnelError, traffic_port,
    },
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
    /// The agent said no (another laptop holds what this one asked for, a bad token):
    /// its reason, as it gave it. Not retried.
    Refused {
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
    /// The Service's selector, as a label selector: the pods the agent runs in.
    pub selector: String,
    pub control_port: u16,
    /// Where each agent port's streams go: the local process's address for it.
    pub locals: Vec<(u16, SocketAddr)>,
    pub filter: Filter,
    /// The intercept's attach token, from its Secret.
    pub token: String,
    /// Who this laptop is, in every agent's view: [`whoami`].
    pub name: String,
}

impl Attach {
    /// The local address for a stream the agent opened: the one of the agent port it
    /// names, or the only one when it names none.
    fn local_for(&self, target: &str) -> Option<SocketAddr> {
        match traffic_port(target) {
            Some(port) => self
                .locals
                .iter()
                .find(|(agent, _)| *agent == port)
                .map(|(_, local)| *local),
            None if target.is_empty() && self.locals.len() == 1 => {
                self.locals.first().map(|(_, local)| *local)
            }
            None => None,
        }
    }
}

/// How long leaving waits for the agents to be told; a laptop going away is never held
/// up for long by an agent that does not answer.
const GOODBYE_LIMIT: Duration = Duration::from_secs(3);

/// The sessions that are up, by pod.
pub type Sessions = Arc<Mutex<BTreeMap<String, Opener>>>;

/// Attaches to every ready agent until `shutdown`.
pub async fn run(
    client: Client,
    attach: Attach,
    sessions: Sessions,
    event_tx: mpsc::UnboundedSender<Event>,
    shutdown: CancellationToken,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &attach.namespace);
    let (store, writer) = reflector::store();
    let cfg = watcher::Config::default().labels(&attach.selector);
    let mut changes = reflector(writer, watcher(pods.clone(), cfg))
        .default_backoff()
        .boxed();
    // pod name → its task's token
    let mut tasks: HashMap<String, CancellationToken> = HashMap::new();
    let (up_tx, mut up_rx) = mpsc::unbounded_channel::<(String, bool)>();
    let mut up: HashMap<String, bool> = HashMap::new();
    let mut ready_count = 0usize;
    // The pods' loops, waited for at the end so each says goodbye to its agent.
    let loops = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                for t in tasks.values() { t.cancel(); }
                loops.close();
                let _ = tokio::time::timeout(GOODBYE_LIMIT, loops.wait()).await;
                return;
            }
            change = changes.next() => {
                if change.is_none() {
                    return;
                }
                let ready: Vec<String> = store
                    .state()
                    .iter()
                    .filter(|p| rollout::is_ready(p) && has_agent(p))
                    .map(|p| p.name_any())
                    .collect();
                ready_count = ready.len();
                for name in &ready {
                    if !tasks.contains_key(name) {
                        let token = shutdown.child_token();
                        tasks.insert(name.clone(), token.clone());
                        loops.spawn(pod_loop(
                            pods.clone(),
                            store.clone(),
                            name.clone(),
                            attach.clone(),
                            sessions.clone(),
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

fn has_agent(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .is_some_and(|s| s.containers.iter().any(|c| c.name == AGENT_CONTAINER))
}

/// How one session ended.
enum End {
    /// The agent said no; retrying would get the same answer.
    Refused(String),
    /// The connection went; reconnect.
    Dropped(String),
}

/// Keeps one pod's tunnel up until `token`: reconnects after a drop, quickly at first.
#[allow(clippy::too_many_arguments)]
async fn pod_loop(
    pods: Api<Pod>,
    store: Store<Pod>,
    pod: String,
    attach: Attach,
    sessions: Sessions,
    event_tx: mpsc::UnboundedSender<Event>,
    up_tx: mpsc::UnboundedSender<(String, bool)>,
    token: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = Instant::now();
        let end = one_session(&pods, &pod, &attach, &sessions, &event_tx, &up_tx, &token).await;
        if token.is_cancelled() {
            break;
        }
        if let Ok(mut s) = sessions.lock() {
            s.remove(&pod);
        }
        let _ = up_tx.send((pod.clone(), false));
        let end = match end {
            // An agent stopping with its pod is not a refusal.
            End::Refused(reason) if terminating(&store, &pod) => End::Dropped(reason),
            other => other,
        };
        match end {
            End::Refused(reason) => {
                let _ = event_tx.send(Event::Refused { pod, reason });
                return;
            }
            End::Dropped(reason) => {
                let _ = event_tx.send(Event::Detached {
                    pod: pod.clone(),
                    reason,
                });
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(200);
        }
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    if let Ok(mut s) = sessions.lock() {
        s.remove(&pod);
    }
}

fn terminating(store: &Store<Pod>, pod: &str) -> bool {
    store
        .state()
        .iter()
        .find(|p| p.name_any() == pod)
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

/// The prefix the session gives its close reason when the peer sent GoAway.
const PEER_LEFT: &str = "the peer left: ";

/// One port-forward and session; how it ended.
async fn one_session(
    pods: &Api<Pod>,
    pod: &str,
    attach: &Attach,
    sessions: &Sessions,
    event_tx: &mpsc::UnboundedSender<Event>,
    up_tx: &mpsc::UnboundedSender<(String, bool)>,
    token: &CancellationToken,
) -> End {
    let connect = async {
        pods.portforward(pod, &[attach.control_port])
            .await
            .map_err(|e| format!("port-forward to {pod}:{} failed: {e}", attach.control_port))
    };
    let pf = tokio::select! {
        _ = token.cancelled() => return End::Dropped("the laptop left".into()),
        pf = connect => pf,
    };
    let mut pf = match pf {
        Ok(pf) => pf,
        Err(e) => return End::Dropped(e),
    };
    let Some(stream) = pf.take_stream(attach.control_port) else {
        return End::Dropped("the port-forward gave no stream".into());
    };
    let meta = HelloMeta {
        role: Role::Laptop,
        name: attach.name.clone(),
        filter: attach.filter.clone(),
        token: attach.token.clone(),
    };
    let started = tokio::select! {
        _ = token.cancelled() => {
            pf.abort();
            return End::Dropped("the laptop left".into());
        }
        s = Session::start(stream, Side::Dialer, meta, Heartbeat::default()) => s,
    };
    let mut session = match started {
        Ok(s) => s,
        Err(TunnelError::GoAway(reason)) => {
            pf.abort();
            return End::Refused(reason);
        }
        Err(e) => {
            pf.abort();
            return End::Dropped(e.to_string());
        }
    };
    if let Ok(mut s) = sessions.lock() {
        s.insert(pod.to_owned(), session.opener());
    }
    let _ = up_tx.send((pod.to_owned(), true));
    loop {
        let incoming = tokio::select! {
            _ = token.cancelled() => {
                // Said, not just dropped: the agent forgets this laptop at once, so
                // another laptop leaving right after is not told it is still here.
                session.go_away("the laptop left").await;
                drop(session);
                // The goodbye is written into the port-forward; give it a moment to
                // cross the API server before the forward is torn down.
                let _ = tokio::time::timeout(Duration::from_millis(500), pf.join()).await;
                return End::Dropped("the laptop left".into());
            }
            incoming = session.accept() => incoming,
        };
        let Some(incoming) = incoming else { break };
        let event_tx = event_tx.clone();
        let Some(local) = attach.local_for(&incoming.target) else {
            let _ = event_tx.send(Event::LocalRefused {
                error: format!(
                    "the agent sent a stream for `{}`, which this intercept does not take",
                    incoming.target
                ),
            });
            continue;
        };
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
    // The agent sends GoAway only to refuse a laptop (see the agent's attach).
    match reason.strip_prefix(PEER_LEFT) {
        Some(why) => End::Refused(why.to_owned()),
        None => End::Dropped(reason),
    }
}

/// `user@host pid N`: who this laptop is in the agents' logs and answers; the pid tells
/// two laptops of one user on one machine apart.
pub fn whoami() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "laptop".into());
    format!("{user}@{host} pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(locals: &[(u16, u16)]) -> Attach {
        Attach {
            namespace: "api".into(),
            selector: "app=web".into(),
            control_port: 9901,
            locals: locals
                .iter()
                .map(|(agent, local)| (*agent, SocketAddr::from(([127, 0, 0, 1], *local))))
                .collect(),
            filter: Filter::default(),
            token: String::new(),
            name: "me".into(),
        }
    }

    #[test]
    fn each_stream_goes_to_the_local_port_of_the_agent_port_it_names() {
        let two = attach(&[(9902, 18777), (9903, 18778)]);
        let port = |a: &Attach, t: &str| a.local_for(t).map(|l| l.port());
        assert_eq!(port(&two, "port:9902"), Some(18777));
        assert_eq!(port(&two, "port:9903"), Some(18778));
        assert_eq!(port(&two, "port:9904"), None, "a port it does not take");
        assert_eq!(port(&two, ""), None, "ambiguous with several ports");
        assert_eq!(port(&attach(&[(9902, 18777)]), ""), Some(18777));
        assert_eq!(port(&two, "tcp:orders:80"), None);
    }
}
