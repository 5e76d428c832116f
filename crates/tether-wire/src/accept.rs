//! The accept loop every listener of tether's shares (the agents' ports, connect's proxy,
//! `run`'s published ports): the next connection with `TCP_NODELAY` set, a failed accept
//! (out of file descriptors, a connection reset before it was taken) waited out briefly
//! rather than ending the listener, and nothing once `shutdown` is cancelled.

use std::{net::SocketAddr, time::Duration};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a failed accept is waited out: the failures are passing, and retrying at once
/// would spin.
const AFTER_FAILURE: Duration = Duration::from_millis(50);

/// The next connection on `listener`, or `None` once `shutdown` is cancelled.
pub async fn next(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok((conn, peer)) => {
                // Tunnels and proxies carry small exchanges: never hold one back.
                let _ = conn.set_nodelay(true);
                return Some((conn, peer));
            }
            Err(e) => {
                tracing::debug!("accept failed: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(AFTER_FAILURE) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}
