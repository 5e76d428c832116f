//! The tunnel's errors: what can end a handshake or a session, and why.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("the tunnel's byte stream failed")]
    Io(#[from] std::io::Error),
    #[error("the peer is not a tether tunnel (bad hello)")]
    NotTether,
    #[error("the peer's hello is not valid: its settings do not parse")]
    BadHello(#[source] serde_json::Error),
    #[error(
        "protocol version mismatch: this side speaks {ours}, the peer {theirs}; \
         the agent must come from the same tether version as the laptop"
    )]
    Version { ours: u16, theirs: u16 },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the peer said goodbye: {0}")]
    GoAway(String),
    #[error("no frame from the peer for {0:?}: it is gone")]
    Silent(Duration),
    #[error("the session is closed")]
    Closed,
    #[error("timed out waiting for the peer's hello")]
    HelloTimeout,
}
