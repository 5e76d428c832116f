//! The agent's errors: bad arguments (exit 2), ports it cannot bind (exit 1), and why a
//! laptop could not attach (logged; the laptop reads the reason in the GoAway).

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("bad agent arguments")]
    Args(#[source] clap::Error),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the cluster's DNS settings")]
    Dns(#[source] hickory_resolver::ResolveError),
}

impl AgentError {
    /// Whether the fault is in what the agent was given (exit 2) rather than where it runs.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, AgentError::Args(_))
    }
}

/// Why one laptop's attach ended before its session ran.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("the handshake failed")]
    Tunnel(#[from] crate::tunnel::TunnelError),
    #[error("refused: {0}")]
    Refused(String),
}
