//! `tether-agent connect`: the connect agent, one Deployment in tether's own namespace
//! that laptops attach to (through the API server's port-forward, with the connect token)
//! to reach the cluster from inside: names looked up with the cluster's DNS, TCP dialled
//! from the pod. It holds no route and needs no API access: its ServiceAccount has no
//! token mounted.
//!
//! Layout:
//! - [`args`]: its command line, into a [`ConnectConfig`].
//! - [`resolve`]: names as a pod in the laptop's namespace would try them, asked of the
//!   cluster's DNS (hickory), never the bare name upstream.
//! - [`dial`]: `tcp:` streams: dial, answer one reply line, splice.
//! - [`serve`]: the control port: checked attaches, each laptop's streams answered.

pub mod args;
pub mod dial;
pub mod resolve;
pub mod serve;

pub use self::{args::ConnectArgs, serve::ConnectAgent};

/// The agent's config, validated from its arguments and environment.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// The token a laptop must present; `None` refuses every laptop.
    pub token: Option<String>,
    /// The cluster's DNS domain (`cluster.local`).
    pub domain: String,
    /// How long a dial may take before the laptop is told "unreachable".
    pub dial_timeout: std::time::Duration,
    /// Heartbeat and bounds of every laptop's session.
    pub session: crate::tunnel::Settings,
}
