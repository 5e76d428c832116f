//! [`Agent`]: the agent's shared state (its settings, the registry of laptops), cheap to
//! clone into every task; the ports it serves are given to [`Agent::serve_traffic`]. The control side ([`control`](super::control))
//! writes the registry, the traffic side ([`traffic`](super::traffic)) reads it.

use tokio::sync::watch;

use super::registry::Registry;
use crate::tunnel::{LaptopInfo, Limits, Settings};

/// What the agent runs with, validated from its arguments and environment.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The token a laptop must present; `None` refuses every laptop.
    pub token: Option<String>,
    /// What refusals call the intercepted thing (the Service's name).
    pub service: String,
    /// Heartbeat and bounds of every laptop's session.
    pub session: Settings,
}

impl AgentConfig {
    /// The bounds a laptop's session gets: a laptop opens only short queries, never
    /// traffic, so it needs few streams (and so holds at most 6 MiB of its bytes).
    pub const LAPTOP_LIMITS: Limits = Limits {
        max_streams: 16,
        opens_per_second: 64,
        max_queued: 32 * 1024,
    };

    /// Settings for laptops that attach with `token`.
    pub fn new(token: &str) -> AgentConfig {
        AgentConfig {
            token: Some(token.to_owned()),
            service: "this workload".into(),
            session: Settings {
                limits: AgentConfig::LAPTOP_LIMITS,
                ..Settings::default()
            },
        }
    }
}

/// The agent's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Agent {
    pub(super) config: std::sync::Arc<AgentConfig>,
    pub(super) registry: Registry,
}

impl Agent {
    pub fn new(config: AgentConfig) -> Agent {
        Agent {
            config: std::sync::Arc::new(config),
            registry: Registry::default(),
        }
    }

    /// Whether a laptop takes traffic now, as a watch for logs and tests.
    pub fn attached(&self) -> watch::Receiver<bool> {
        let mut count = self.registry.watch_count();
        let (tx, out) = watch::channel(*count.borrow() > 0);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = count.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
                let now = *count.borrow_and_update() > 0;
                tx.send_if_modified(|a| std::mem::replace(a, now) != now);
            }
        });
        out
    }

    /// How many laptops take traffic now, as a watch.
    pub fn attached_count(&self) -> watch::Receiver<usize> {
        self.registry.watch_count()
    }

    /// The laptops attached now, oldest first.
    pub fn laptops(&self) -> Vec<LaptopInfo> {
        self.registry.laptops()
    }

    /// The routing seam the per-request router reads.
    pub fn routes(&self) -> Registry {
        self.registry.clone()
    }
}
