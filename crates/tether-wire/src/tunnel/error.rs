//! The tunnel's errors: what can end a handshake or a session, and why.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    // The cause is in the message too: the laptop shows this error as one line.
    #[error("the tunnel's byte stream failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer is not a tether tunnel (bad hello)")]
    NotTether,
    #[error("the peer's hello is not valid: {0}")]
    BadHello(#[source] serde_json::Error),
    #[error("{0} streams are open on this session already, the most its peer allows")]
    TooManyStreams(usize),
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
